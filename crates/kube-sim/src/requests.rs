//! The request log: counters per (verb, resource) of every API request served, for tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Counters keyed by (verb, resource), e.g. ("list", "volumesnapshots") or ("create", "pods/exec").
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

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
