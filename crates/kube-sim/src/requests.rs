//! The request log: counters per (verb, resource) of every API request served, for tests and benchmarks; on
//! request (`track_objects`), also per named object, so a test can prove how often each object was written.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Counters keyed by (verb, resource), e.g. ("list", "volumesnapshots") or ("create", "pods/exec").
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<BTreeMap<(String, String), u64>>>,
    /// `None` until [`RequestLog::track_objects`]: a benchmark of 100,000 objects should not pay for it.
    objects: Arc<Mutex<Option<BTreeMap<ObjectKey, u64>>>>,
}

/// (verb, resource, namespace or empty, name) of a request on one named object.
pub type ObjectKey = (String, String, String, String);

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), u64>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
