//! Watch streams: newline-delimited JSON events with resourceVersion semantics (replay from the history,
//! 410 Gone for compacted versions, initial ADDED events when no version is given or sendInitialEvents=true),
//! label/field filtering with DELETED on selector exit, periodic BOOKMARKs, and an end at timeoutSeconds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::{Shared, stream_body};
use crate::resources::ResourceInfo;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Event, EventType};

const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

struct Filter {
    ns: Option<String>,
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    fn in_scope(&self, ev: &Event, res: &ResourceInfo) -> bool {
        ev.group == res.group
            && ev.plural == res.plural
            && self
                .ns
                .as_ref()
                .is_none_or(|ns| !res.namespaced || &ev.namespace == ns)
    }
    fn matches(&self, obj: &Value) -> bool {
        self.labels.as_ref().is_none_or(|l| l.matches_object(obj))
            && self.fields.as_ref().is_none_or(|f| f.matches(obj))
    }
}

fn key(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

fn line(etype: &str, mut obj: Value, api_version: &str) -> Vec<u8> {
    if etype != "ERROR" {
        obj["apiVersion"] = json!(api_version);
    }
    let mut v = json!({"type": etype, "object": obj})
        .to_string()
        .into_bytes();
    v.push(b'\n');
    v
}

/// Translate one store event into 0 or 1 wire event for this watch, tracking which objects the client knows.
fn translate(
    ev: &Event,
    filter: &Filter,
    known: &mut HashSet<String>,
) -> Option<(&'static str, Value)> {
    let k = key(&ev.object);
    let matches = filter.matches(&ev.object);
    match ev.etype {
        EventType::Deleted => {
            if known.remove(&k) || matches {
                Some(("DELETED", ev.object.clone()))
            } else {
                None
            }
        }
        _ => {
            if matches {
                let t = if known.insert(k) { "ADDED" } else { "MODIFIED" };
                Some((t, ev.object.clone()))
            } else if known.remove(&k) {
                Some(("DELETED", ev.object.clone()))
            } else {
                None
            }
        }
    }
}

/// Serve a watch request.
pub fn serve(
    shared: Arc<Shared>,
    res: ResourceInfo,
    version: String,
    ns: Option<String>,
    name: Option<String>,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let mut fields = q
        .get("fieldSelector")
        .filter(|s| !s.is_empty())
        .map(|s| FieldSelector::parse(s))
        .transpose()?;
    if let Some(n) = name {
        fields.get_or_insert_with(FieldSelector::default).0.push((
            "metadata.name".into(),
            false,
            n,
        ));
    }
    let filter = Filter {
        ns,
        labels: q
            .get("labelSelector")
            .filter(|s| !s.is_empty())
            .map(|s| LabelSelector::parse(s))
            .transpose()?,
        fields,
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let initial_events = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let rv: Option<u64> = q
        .get("resourceVersion")
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))
        })
        .transpose()?;
    let api_version = res.api_version(&version);

    // Decide the starting point atomically with the subscription so no event is lost.
    let mut known = HashSet::new();
    let mut first: Vec<Vec<u8>> = Vec::new();
    let (mut rx, mut last_rv) = match rv {
        Some(rv) if rv != 0 && !initial_events => {
            let (past, rx) = shared.store.watch_from(rv)?;
            // Objects that existed at `rv` are known to the client: seed `known` from the current state minus
            // what the replay will add.
            // (one set of the replay's additions, so resuming costs O(objects + events), not their product).
            let added_after: HashSet<String> = past
                .iter()
                .filter(|e| e.etype == EventType::Added)
                .map(|e| key(&e.object))
                .collect();
            for obj in shared.store.all_of(&res.group, &res.plural) {
                let created_after = added_after.contains(&key(&obj));
                if filter.matches(&obj) && !created_after {
                    known.insert(key(&obj));
                }
            }
            let mut last = rv;
            for ev in past.iter().filter(|e| filter.in_scope(e, &res)) {
                if let Some((t, o)) = translate(ev, &filter, &mut known) {
                    first.push(line(t, o, &api_version));
                }
                last = last.max(ev.rv);
            }
            (rx, last.max(shared.store.current_rv().min(rv)))
        }
        _ => {
            let (objs, at, rx) = shared.store.snapshot_and_subscribe(&res.group, &res.plural);
            for obj in objs {
                let scoped = filter.ns.as_ref().is_none_or(|ns| {
                    !res.namespaced
                        || obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
                });
                if scoped && filter.matches(&obj) {
                    known.insert(key(&obj));
                    first.push(line("ADDED", obj, &api_version));
                }
            }
            if initial_events {
                first.push(line(
                    "BOOKMARK",
                    json!({"kind": res.kind, "metadata": {"resourceVersion": at.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}}),
                    &api_version,
                ));
            }
            (rx, at)
        }
    };

    let (mut tx, body_rx) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(64);
    let kind = res.kind.clone();
    tokio::spawn(async move {
        for l in first {
            if tx.send(Ok(l)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick() => {
                    if bookmarks {
                        let b = line("BOOKMARK", json!({"kind": kind, "metadata": {"resourceVersion": last_rv.to_string()}}), &api_version);
                        if tx.send(Ok(b)).await.is_err() { return; }
                    } else if tx.is_closed() {
                        return;
                    }
                }
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv { continue; }
                        last_rv = ev.rv;
                        if !filter.in_scope(&ev, &res) { continue; }
                        if let Some((t, o)) = translate(&ev, &filter, &mut known)
                            && tx.send(Ok(line(t, o, &api_version))).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let gone = ApiError::expired(last_rv).to_status();
                        let _ = tx.send(Ok(line("ERROR", gone, &api_version))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        stream_body(body_rx),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(etype: EventType, name: &str, label: Option<&str>) -> Event {
        let mut object = json!({"metadata": {"name": name, "namespace": "app"}});
        if let Some(l) = label {
            object["metadata"]["labels"] = json!({"tier": l});
        }
        Event {
            rv: 1,
            etype,
            group: String::new(),
            plural: "configmaps".into(),
            namespace: "app".into(),
            object,
        }
    }

    #[test]
    fn objects_leaving_the_selector_are_reported_as_deleted() {
        let filter = Filter {
            ns: Some("app".into()),
            labels: Some(LabelSelector::parse("tier=gold").expect("selector")),
            fields: None,
        };
        let mut known = HashSet::new();
        let seq = [
            (ev(EventType::Added, "a", Some("gold")), Some("ADDED")),
            (ev(EventType::Modified, "a", Some("gold")), Some("MODIFIED")),
            (
                ev(EventType::Modified, "a", Some("silver")),
                Some("DELETED"),
            ),
            (ev(EventType::Modified, "a", Some("silver")), None),
            (ev(EventType::Modified, "a", Some("gold")), Some("ADDED")),
            (ev(EventType::Added, "b", None), None),
            (ev(EventType::Deleted, "a", Some("gold")), Some("DELETED")),
        ];
        for (i, (e, want)) in seq.iter().enumerate() {
            assert_eq!(
                translate(e, &filter, &mut known).map(|(t, _)| t),
                *want,
                "step {i}"
            );
        }
        assert!(known.is_empty());
    }
}
