//! The request log: counters per (verb, resource) of every API request served, for tests and benchmarks; on
//! request (`track_objects`), also per named object, so a test can prove how often each object was written; and,
//! when a shape file is set (`KUBE_SIM_REQUEST_SHAPES`), each distinct request shape appended to it once, so the
//! shapes a whole test suite sends can be collected and replayed against a real apiserver.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The environment variable naming the file that request shapes are appended to (see [`RequestShape`]).
pub const SHAPES_ENV: &str = "KUBE_SIM_REQUEST_SHAPES";

/// Counters keyed by (verb, resource), e.g. ("list", "volumesnapshots") or ("create", "pods/exec").
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<BTreeMap<(String, String), u64>>>,
    /// `None` until [`RequestLog::track_objects`]: a benchmark of 100,000 objects should not pay for it.
    objects: Arc<Mutex<Option<BTreeMap<ObjectKey, u64>>>>,
    /// The shape file and the shapes already written to it by this log.
    shapes: Arc<Mutex<Option<ShapeSink>>>,
}

#[derive(Debug)]
struct ShapeSink {
    path: PathBuf,
    seen: BTreeSet<String>,
}

/// What a request is, without its values: the verb, the API group and version, the resource (with its
/// subresource), whether the path names a namespace, the names of the query parameters, and the body's media
/// type. One line of the shape file: `verb group/version resource ns|all query-keys|- media-type|-`, the core
/// group written `core`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestShape {
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`).
    pub verb: String,
    /// API group, empty for core.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource, `plural/sub` for a subresource.
    pub resource: String,
    /// Whether the path names a namespace.
    pub namespaced: bool,
    /// Names of the query parameters, sorted.
    pub query: Vec<String>,
    /// Media type of the body (`Content-Type` without parameters), when the request has one.
    pub media_type: Option<String>,
}

impl RequestShape {
    /// The shape file's line for this shape.
    pub fn line(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        let query = if self.query.is_empty() {
            "-".to_string()
        } else {
            self.query.join(",")
        };
        format!(
            "{} {group}/{} {} {} {query} {}",
            self.verb,
            self.version,
            self.resource,
            if self.namespaced { "ns" } else { "all" },
            self.media_type.as_deref().unwrap_or("-"),
        )
    }
}

/// (verb, resource, namespace or empty, name) of a request on one named object.
pub type ObjectKey = (String, String, String, String);

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), u64>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends each distinct request shape to `path` from now on (`None` stops). Lines are appended, never
    /// rewritten, so several simulators (or test processes) may share one file; duplicates across them are left
    /// for the reader to drop.
    pub fn record_shapes_to(&self, path: Option<PathBuf>) {
        *self.shapes.lock().unwrap_or_else(|e| e.into_inner()) = path.map(|path| ShapeSink {
            path,
            seen: BTreeSet::new(),
        });
    }

    /// Records one request's shape, when a shape file is set. A file that cannot be written is reported once on
    /// stderr and then no longer tried: the request itself is served either way.
    pub fn record_shape(&self, shape: &RequestShape) {
        let mut guard = self.shapes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sink) = guard.as_mut() else {
            return;
        };
        let line = shape.line();
        if !sink.seen.insert(line.clone()) {
            return;
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&sink.path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "kube-sim: cannot append request shapes to {}: {e}",
                sink.path.display()
            );
            *guard = None;
        }
    }

    /// Count one request.
    pub fn record(&self, verb: &str, resource: &str) {
        *self
            .lock()
            .entry((verb.to_string(), resource.to_string()))
            .or_insert(0) += 1;
    }

    /// Starts (or, `false`, stops and forgets) counting requests per named object.
    pub fn track_objects(&self, on: bool) {
        *self.objects.lock().unwrap_or_else(|e| e.into_inner()) = on.then(BTreeMap::new);
    }

    /// Count one request on a named object (only while [`track_objects`](Self::track_objects) is on).
    pub fn record_object(&self, verb: &str, resource: &str, namespace: Option<&str>, name: &str) {
        if let Some(map) = self
            .objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            *map.entry((
                verb.to_string(),
                resource.to_string(),
                namespace.unwrap_or_default().to_string(),
                name.to_string(),
            ))
            .or_insert(0) += 1;
        }
    }

    /// The per-object counters since tracking started (empty when it is off).
    pub fn by_object(&self) -> BTreeMap<ObjectKey, u64> {
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }

    /// Count of one (verb, resource).
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.lock()
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Sum over all resources of one verb.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// All counters.
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.lock().clone()
    }

    /// Forget everything.
    pub fn reset(&self) {
        self.lock().clear();
        if let Some(map) = self
            .objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            map.clear();
        }
    }

    /// As JSON: `[{"verb": .., "resource": .., "count": ..}]`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.lock()
                .iter()
                .map(|((v, r), c)| serde_json::json!({"verb": v, "resource": r, "count": c}))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(verb: &str, query: &[&str], media: Option<&str>) -> RequestShape {
        RequestShape {
            verb: verb.into(),
            group: String::new(),
            version: "v1".into(),
            resource: "pods/log".into(),
            namespaced: true,
            query: query.iter().map(|q| q.to_string()).collect(),
            media_type: media.map(str::to_string),
        }
    }

    #[test]
    fn each_distinct_shape_is_appended_once_and_the_core_group_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shapes");
        let log = RequestLog::default();
        log.record_shape(&shape("get", &[], None));
        assert!(!path.exists(), "nothing is written before a file is set");
        log.record_shapes_to(Some(path.clone()));
        log.record_shape(&shape("get", &["container", "follow"], None));
        log.record_shape(&shape("get", &["container", "follow"], None));
        log.record_shape(&shape("patch", &[], Some("application/merge-patch+json")));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "get core/v1 pods/log ns container,follow -\npatch core/v1 pods/log ns - application/merge-patch+json\n"
        );
    }
}
