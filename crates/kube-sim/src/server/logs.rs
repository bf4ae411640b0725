//! `GET /api/v1/namespaces/NS/pods/NAME/log`: a container's output from the store's pod log buffers, with the
//! query parameters of `PodLogOptions` that kubectl and kube-rs send — `container` (required when the pod has
//! several), `tailLines`, `sinceSeconds` / `sinceTime`, `limitBytes`, `timestamps`, and `follow`, which streams new
//! output as a chunked body (the technique of the watch endpoint) until the pod reaches Succeeded or Failed or is
//! deleted. Containers never restart here, so `previous=true` gets the kubelet's "not found" answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::SinkExt;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::{Shared, is_true, stream_body};
use crate::container::log_container;
use crate::pods::PodPhase;
use crate::resources::ResourceInfo;
use crate::status::ApiError;
use crate::store::EventType;

/// How often a quiet follower checks that its client is still there.
const CLIENT_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The parsed `PodLogOptions` of one request.
#[derive(Debug, Default, PartialEq)]
struct Options {
    container: Option<String>,
    follow: bool,
    previous: bool,
    timestamps: bool,
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
    since: Option<DateTime<Utc>>,
}

impl Options {
    /// Parse and validate like the apiserver (422 `PodLogOptions "NAME" is invalid: ...`).
    fn parse(q: &HashMap<String, String>, pod: &str, now: DateTime<Utc>) -> Result<Self, ApiError> {
        let mut causes = Vec::new();
        let mut int = |key: &str, min: i64, rule: &str| -> Option<i64> {
            let raw = q.get(key)?;
            match raw.parse::<i64>() {
                Ok(n) if n >= min => Some(n),
                Ok(n) => {
                    causes.push((key.to_string(), format!("Invalid value: {n}: {rule}")));
                    None
                }
                Err(_) => {
                    causes.push((
                        key.to_string(),
                        format!("Invalid value: {raw:?}: must be an integer"),
                    ));
                    None
                }
            }
        };
        let tail_lines = int("tailLines", 0, "must be greater than or equal to 0");
        let limit_bytes = int("limitBytes", 1, "must be greater than 0");
        let since_seconds = int("sinceSeconds", 1, "must be greater than 0");
        let since_time = match q.get("sinceTime") {
            None => None,
            Some(raw) => match DateTime::parse_from_rfc3339(raw) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(e) => {
                    causes.push((
                        "sinceTime".to_string(),
                        format!("Invalid value: {raw:?}: {e}"),
                    ));
                    None
                }
            },
        };
        if q.contains_key("sinceSeconds") && q.contains_key("sinceTime") {
            causes.push((
                String::new(),
                "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                    .to_string(),
            ));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid("", "PodLogOptions", pod, &causes));
        }
        Ok(Options {
            container: q.get("container").cloned(),
            follow: is_true(q, "follow"),
            previous: is_true(q, "previous"),
            timestamps: is_true(q, "timestamps"),
            tail_lines: tail_lines.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            limit_bytes: limit_bytes.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            since: since_time.or_else(|| since_seconds.map(|s| now - chrono::Duration::seconds(s))),
        })
    }
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
}

/// The kubelet's answer for a container that has not started yet, if `container` is waiting in a Pending pod.
fn waiting(pod: &Value, pod_name: &str, container: &str) -> Option<ApiError> {
    if phase(pod) != "Pending" {
        return None;
    }
    let reason = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|all| {
            all.iter()
                .find(|st| st.get("name").and_then(Value::as_str) == Some(container))
        })
        .and_then(|st| st.pointer("/state/waiting/reason"))
        .and_then(Value::as_str)
        .unwrap_or("ContainerCreating");
    Some(ApiError::bad_request(format!(
        "container \"{container}\" in pod \"{pod_name}\" is waiting to start: {reason}"
    )))
}

/// Cut `chunk` to what `limit` still allows and count it down.
fn within(limit: &mut Option<usize>, mut chunk: Vec<u8>) -> Vec<u8> {
    if let Some(left) = limit {
        chunk.truncate(*left);
        *left -= chunk.len();
    }
    chunk
}

/// Serve one log request.
pub fn serve(
    shared: Arc<Shared>,
    res: &ResourceInfo,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    // Subscribe before looking at the pod, so an end right after the look is not missed.
    let mut events = shared.store.subscribe();
    let mut changed = shared.logs.subscribe();
    let pod = shared.store.get(res, ns, name)?;
    let opts = Options::parse(q, name, shared.clock.now())?;
    let container = log_container(&pod, opts.container.as_deref())?;
    if opts.previous {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    if let Some(e) = waiting(&pod, name, &container) {
        return Err(e);
    }
    let mut offset = shared
        .logs
        .start(ns, name, &container, opts.tail_lines, opts.since);
    let mut limit = opts.limit_bytes;
    let first = shared.logs.read(ns, name, &container, offset);
    offset = first.end;
    let first = within(&mut limit, first.render(opts.timestamps));
    let text_plain = [(header::CONTENT_TYPE, "text/plain")];
    if !opts.follow || PodPhase::is_terminal(phase(&pod)) || limit == Some(0) {
        return Ok((StatusCode::OK, text_plain, first).into_response());
    }

    let (mut tx, body_rx) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(64);
    let (ns, name) = (ns.to_string(), name.to_string());
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Ok(first)).await.is_err() {
            return;
        }
        let mut check = tokio::time::interval(CLIENT_CHECK_EVERY);
        check.tick().await;
        let mut ended = false;
        loop {
            let more = shared.logs.read(&ns, &name, &container, offset);
            offset = more.end;
            let chunk = within(&mut limit, more.render(opts.timestamps));
            if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                return;
            }
            if ended || limit == Some(0) {
                return;
            }
            tokio::select! {
                // Output appended (or a pod's logs removed): read again.
                r = changed.changed() => if r.is_err() { return },
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        let this_pod = ev.group.is_empty()
                            && ev.plural == "pods"
                            && ev.namespace == ns
                            && ev.object.pointer("/metadata/name").and_then(Value::as_str) == Some(name.as_str());
                        // Drain what the container wrote before it ended, then end the response.
                        ended = this_pod
                            && (ev.etype == EventType::Deleted || PodPhase::is_terminal(phase(&ev.object)));
                    }
                    Err(RecvError::Lagged(_)) => {
                        ended = shared
                            .store
                            .find("", "pods", &ns, &name)
                            .is_none_or(|p| PodPhase::is_terminal(phase(&p)));
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = check.tick() => if tx.is_closed() { return },
            }
        }
    });
    Ok((StatusCode::OK, text_plain, stream_body(body_rx)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_validated_with_the_apiservers_rules() {
        let now: DateTime<Utc> = "2025-01-08T15:56:14Z".parse().expect("time");
        let ok = Options::parse(
            &query(&[
                ("container", "c"),
                ("follow", "true"),
                ("tailLines", "0"),
                ("sinceSeconds", "60"),
            ]),
            "p",
            now,
        )
        .expect("valid");
        assert_eq!(
            ok,
            Options {
                container: Some("c".into()),
                follow: true,
                tail_lines: Some(0),
                since: Some("2025-01-08T15:55:14Z".parse().expect("time")),
                ..Options::default()
            }
        );
        let bad = Options::parse(
            &query(&[
                ("tailLines", "-1"),
                ("limitBytes", "0"),
                ("sinceSeconds", "5"),
                ("sinceTime", "2025-01-08T15:00:00Z"),
            ]),
            "p",
            now,
        )
        .expect_err("invalid");
        assert_eq!(bad.code, 422);
        assert_eq!(
            bad.message,
            "PodLogOptions \"p\" is invalid: [tailLines: Invalid value: -1: must be greater than or equal to 0, \
             limitBytes: Invalid value: 0: must be greater than 0, : Forbidden: at most one of `sinceTime` or \
             `sinceSeconds` may be specified]"
        );
    }

    #[test]
    fn the_byte_limit_spans_every_chunk() {
        let mut limit = Some(5);
        assert_eq!(within(&mut limit, b"abc".to_vec()), b"abc");
        assert_eq!(within(&mut limit, b"defg".to_vec()), b"de");
        assert_eq!(limit, Some(0));
        assert_eq!(within(&mut None, b"xyz".to_vec()), b"xyz");
    }
}
