//! One side of the comparison (kube-sim or the real apiserver) and what is compared of an answer: the status
//! code, a Status's reason and details, and the fields the product reads of each kind (src/cluster/: listed.rs's
//! compact snapshots and contents, the k8s-openapi types of core.rs, jobs.rs, resolve.rs, verify.rs). Values the
//! server generates (uids, resourceVersions, timestamps) are compared by presence, and a uid inside a name (a
//! content's `snapcontent-<uid>`) is written `<uid>`, since each side has its own.

use http_body_util::BodyExt as _;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// An answer, reduced to what is compared: field path → value (or `"<present>"`).
pub type Projection = BTreeMap<String, Value>;

/// A cluster to send requests to, with the answers of earlier steps kept by name for placeholders.
pub struct Side {
    pub name: &'static str,
    pub kubeconfig: std::path::PathBuf,
    client: kube::Client,
    saved: HashMap<String, Value>,
}

/// An answer: the status code and the body (JSON, or a string when it is not).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub body: Value,
}

impl Side {
    pub async fn connect(name: &'static str, kubeconfig: &Path) -> Side {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig)
            .unwrap_or_else(|e| panic!("{name}: reading {}: {e}", kubeconfig.display()));
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{name}: kubeconfig: {e}"));
        Side {
            name,
            kubeconfig: kubeconfig.to_path_buf(),
            client: kube::Client::try_from(config)
                .unwrap_or_else(|e| panic!("{name}: client: {e}")),
            saved: HashMap::new(),
        }
    }

    /// `text` with each `{at:STEP:/json/pointer}` replaced by that field of the answer saved as STEP (a string's
    /// value, anything else as JSON).
    pub fn fill(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("{at:") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .map(|e| start + e)
                .unwrap_or_else(|| panic!("unterminated placeholder in {text}"));
            let (step, pointer) = rest[start + 4..end]
                .split_once(':')
                .unwrap_or_else(|| panic!("placeholder without a pointer in {text}"));
            let saved = self
                .saved
                .get(step)
                .unwrap_or_else(|| panic!("{}: no answer saved as {step:?} for {text}", self.name));
            match saved.pointer(pointer) {
                Some(Value::String(s)) => out.push_str(s),
                Some(v) => out.push_str(&v.to_string()),
                None => panic!("{}: {step} has no {pointer} (for {text})", self.name),
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    pub fn save(&mut self, step: &str, body: Value) {
        self.saved.insert(step.to_string(), body);
    }

    /// Sends one request as cluster-admin; a transport error is an answer with code 0.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        media: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let mut req = http::Request::builder().method(method).uri(path);
        if let Some(m) = media {
            req = req.header(http::header::CONTENT_TYPE, m);
        }
        req = req.header(http::header::ACCEPT, "application/json");
        let req = req
            .body(kube::client::Body::from(
                body.unwrap_or_default().as_bytes().to_vec(),
            ))
            .expect("a valid request");
        let resp = match self.client.send(req).await {
            Ok(r) => r,
            Err(e) => {
                return Reply {
                    code: 0,
                    body: Value::String(format!("transport error: {e}")),
                };
            }
        };
        let code = resp.status().as_u16();
        let bytes = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return Reply {
                    code,
                    body: Value::String(format!("reading the body: {e}")),
                };
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let watch = path.contains("watch=true");
        let parsed = if watch {
            None
        } else {
            serde_json::from_str(&text).ok()
        };
        let body = parsed.unwrap_or_else(|| {
            // A watch answers JSON lines: one event each.
            let events: Option<Vec<Value>> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).ok())
                .collect();
            match events {
                Some(ev) if !ev.is_empty() || watch => {
                    serde_json::json!({"kind": "WatchEvents", "events": ev})
                }
                _ => Value::String(text.into_owned()),
            }
        });
        Reply { code, body }
    }
}

/// How a field is compared.
#[derive(Clone, Copy)]
enum Mode {
    /// Its value.
    Value,
    /// Only whether it is there (generated: uids, resourceVersions, times, handles).
    Present,
}
use Mode::{Present, Value as Val};

/// The metadata every object is compared on.
const META: &[(&str, Mode)] = &[
    ("/metadata/name", Val),
    ("/metadata/namespace", Val),
    ("/metadata/uid", Present),
    ("/metadata/resourceVersion", Present),
    ("/metadata/creationTimestamp", Present),
    ("/metadata/deletionTimestamp", Present),
    ("/metadata/labels", Val),
    ("/metadata/finalizers", Val),
];

/// Per kind, the fields the product reads beyond the metadata.
fn fields_of(kind: &str) -> &'static [(&'static str, Mode)] {
    match kind {
        "VolumeSnapshot" => &[
            ("/metadata/annotations/backup-ns.sh~1retention", Val),
            ("/metadata/annotations/backup-ns.sh~1run-id", Val),
            ("/spec/source/persistentVolumeClaimName", Val),
            ("/spec/source/volumeSnapshotContentName", Val),
            ("/spec/volumeSnapshotClassName", Val),
            ("/status/boundVolumeSnapshotContentName", Val),
            ("/status/creationTime", Present),
            ("/status/readyToUse", Val),
            ("/status/restoreSize", Val),
            ("/status/error", Present),
            ("/status/volumeGroupSnapshotName", Present),
        ],
        "VolumeSnapshotContent" => &[
            ("/spec/deletionPolicy", Val),
            ("/spec/driver", Val),
            ("/spec/volumeSnapshotClassName", Val),
            ("/spec/volumeSnapshotRef/name", Val),
            ("/spec/volumeSnapshotRef/namespace", Val),
            ("/spec/volumeSnapshotRef/uid", Present),
            ("/spec/source/volumeHandle", Present),
            ("/spec/source/snapshotHandle", Present),
            ("/status/snapshotHandle", Present),
            ("/status/readyToUse", Val),
            ("/status/restoreSize", Val),
            ("/status/creationTime", Present),
        ],
        "VolumeGroupSnapshot" => &[
            ("/spec/source/selector", Val),
            ("/spec/volumeGroupSnapshotClassName", Val),
            ("/status/boundVolumeGroupSnapshotContentName", Present),
            ("/status/readyToUse", Val),
            ("/status/creationTime", Present),
            ("/status/error", Present),
        ],
        "VolumeSnapshotClass" | "VolumeGroupSnapshotClass" => &[
            ("/driver", Val),
            ("/deletionPolicy", Val),
            (
                "/metadata/annotations/snapshot.storage.kubernetes.io~1is-default-class",
                Val,
            ),
        ],
        "StorageClass" => &[
            ("/provisioner", Val),
            ("/volumeBindingMode", Val),
            (
                "/metadata/annotations/storageclass.kubernetes.io~1is-default-class",
                Val,
            ),
        ],
        "PersistentVolumeClaim" => &[
            ("/spec/volumeName", Present),
            ("/spec/storageClassName", Val),
            ("/spec/dataSource", Val),
            ("/spec/accessModes", Val),
            ("/spec/resources/requests/storage", Val),
            ("/status/phase", Val),
            ("/status/capacity/storage", Val),
        ],
        "PersistentVolume" => &[
            ("/spec/csi/driver", Val),
            ("/spec/csi/volumeHandle", Present),
            ("/spec/claimRef/name", Val),
            ("/spec/claimRef/namespace", Val),
            ("/status/phase", Val),
        ],
        "Namespace" => &[("/status/phase", Val)],
        "Pod" => &[
            ("/spec/containers/0/name", Val),
            ("/spec/containers/0/image", Val),
            ("/spec/nodeName", Present),
            ("/status/phase", Val),
            ("/status/containerStatuses/0/name", Val),
        ],
        "Job" => &[
            ("/spec/template/spec/containers/0/image", Val),
            ("/status/active", Val),
            ("/status/succeeded", Val),
            ("/status/failed", Val),
        ],
        // events.k8s.io/v1 and core/v1 name the same fields differently; each is read through its own API.
        "Event" => &[
            ("/reason", Val),
            ("/type", Val),
            ("/note", Val),
            ("/message", Val),
            ("/action", Val),
            ("/reportingController", Val),
            ("/regarding/name", Val),
            ("/regarding/kind", Val),
            ("/involvedObject/name", Val),
            ("/involvedObject/kind", Val),
        ],
        "SelfSubjectAccessReview" => &[("/status/allowed", Val)],
        "ConfigMap" | "Secret" => &[("/data", Present)],
        _ => &[],
    }
}

/// What is compared of an answer.
pub fn project(reply: &Reply) -> Projection {
    let mut out = Projection::new();
    out.insert("code".into(), reply.code.into());
    let kind = reply
        .body
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "Status" => {
            for (field, pointer) in [
                ("status.reason", "/reason"),
                ("status.details.name", "/details/name"),
                ("status.details.group", "/details/group"),
                ("status.details.kind", "/details/kind"),
            ] {
                if let Some(v) = reply.body.pointer(pointer) {
                    out.insert(field.into(), normalise(v));
                }
            }
        }
        "WatchEvents" => {
            let events = reply.body["events"].as_array().cloned().unwrap_or_default();
            // Bookmarks come when the server chooses; the product skips them.
            let seen: Vec<Value> = events
                .iter()
                .filter(|e| e["type"] != "BOOKMARK" && ours(&e["object"]))
                .map(|e| {
                    Value::String(format!(
                        "{} {}",
                        e["type"].as_str().unwrap_or_default(),
                        e["object"]["metadata"]["name"].as_str().unwrap_or_default()
                    ))
                })
                .collect();
            out.insert("events".into(), normalise(&Value::Array(seen)));
        }
        k if k.ends_with("List") => {
            out.insert(
                "metadata.continue".into(),
                present(reply.body.pointer("/metadata/continue")),
            );
            // The real cluster is shared with the other tests: only this suite's objects are compared.
            let mut items: Vec<Value> = reply.body["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(ours)
                .collect();
            items.sort_by_key(|i| {
                let name = i["metadata"]["generateName"].as_str().map_or_else(
                    || normalise(&i["metadata"]["name"]).to_string(),
                    str::to_string,
                );
                (
                    name,
                    normalise(&i["spec"]["volumeSnapshotRef"]["name"]).to_string(),
                )
            });
            out.insert("items".into(), items.len().into());
            let item_kind = k.trim_end_matches("List");
            for (i, item) in items.iter().enumerate() {
                object(&mut out, &format!("items[{i}]"), item, item_kind);
            }
        }
        "" => {
            if let Value::String(s) = &reply.body {
                // Logs and the like: compared as text when short, by presence when not.
                out.insert(
                    "text".into(),
                    if s.len() < 200 {
                        Value::String(s.clone())
                    } else {
                        "<present>".into()
                    },
                );
            }
        }
        k => object(&mut out, "", &reply.body, k),
    }
    out
}

/// Whether a listed object is this suite's: in its namespace, or cluster-scoped and referring to nothing in
/// another namespace (classes; contents and volumes by the namespace they are bound in).
fn ours(item: &Value) -> bool {
    [
        "/metadata/namespace",
        "/spec/volumeSnapshotRef/namespace",
        "/spec/claimRef/namespace",
    ]
    .iter()
    .find_map(|p| item.pointer(p).and_then(Value::as_str))
    .is_none_or(|ns| ns == super::cases::NS)
}

fn object(out: &mut Projection, prefix: &str, obj: &Value, kind: &str) {
    for (pointer, mode) in META.iter().chain(fields_of(kind)) {
        let v = obj.pointer(pointer);
        // A generated name is its prefix and a random suffix: compared by the prefix.
        let generated = obj["metadata"]["generateName"]
            .as_str()
            .filter(|g| {
                *pointer == "/metadata/name"
                    && v.and_then(Value::as_str).is_some_and(|n| n.starts_with(g))
            })
            .map(|g| Value::String(format!("{g}<random>")));
        let v = generated.as_ref().or(v);
        let v = match mode {
            Val => match v {
                Some(v) => normalise(v),
                None => continue,
            },
            Present => present(v),
        };
        let field = pointer
            .trim_start_matches('/')
            .replace('/', ".")
            .replace("~1", "/");
        out.insert(
            format!(
                "{prefix}{}{field}",
                if prefix.is_empty() { "" } else { "." }
            ),
            v,
        );
    }
}

fn present(v: Option<&Value>) -> Value {
    Value::Bool(v.is_some_and(|v| !v.is_null()))
}

/// Sorts arrays of strings (finalizers), writes each uid inside a string as `<uid>` and each generated hash
/// (8 or more hex digits between dashes, as in a group member's name) as `<hash>`.
fn normalise(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(without_hashes(&without_uids(s))),
        Value::Array(a) => {
            let mut items: Vec<Value> = a.iter().map(normalise).collect();
            if items.iter().all(Value::is_string) {
                items.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            }
            Value::Array(items)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalise(v)))
                .collect::<Map<_, _>>(),
        ),
        v => v.clone(),
    }
}

fn without_uids(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if s.get(i..i + 36).is_some_and(is_uuid) {
            out.push_str("<uid>");
            i += 36;
        } else {
            let c = s[i..].chars().next().expect("a char at a boundary");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn without_hashes(s: &str) -> String {
    s.split('-')
        .map(|part| {
            if part.len() >= 8
                && part
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            {
                "<hash>"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn is_uuid(s: &str) -> bool {
    s.char_indices().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => c == '-',
        _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
    })
}

/// The fields on which two projections differ: (field, kube-sim's value, the real apiserver's value).
pub fn differences(sim: &Projection, real: &Projection) -> Vec<(String, Value, Value)> {
    let mut keys: Vec<&String> = sim.keys().chain(real.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (sim.get(k), real.get(k));
            (a != b).then(|| {
                (
                    k.clone(),
                    a.cloned().unwrap_or(Value::Null),
                    b.cloned().unwrap_or(Value::Null),
                )
            })
        })
        .collect()
}
