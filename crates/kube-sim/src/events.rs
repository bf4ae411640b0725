//! Events are one resource with two APIs, as in the apiserver: they are stored as core/v1 Events, and
//! `events.k8s.io/v1` is a view converted on the way in and out (`regarding` ↔ `involvedObject`, `note` ↔
//! `message`, `reportingController` ↔ `reportingComponent`, `deprecatedSource`/`deprecatedFirstTimestamp`/
//! `deprecatedLastTimestamp`/`deprecatedCount` ↔ `source`/`firstTimestamp`/`lastTimestamp`/`count`; the other
//! fields are shared). So an Event written through either API is listed by both (`kubectl get events`).

use serde_json::{Map, Value, json};

/// The API group of the view.
pub const GROUP: &str = "events.k8s.io";

/// `(core/v1 field, events.k8s.io/v1 field)` pairs that are renamed; every other field is the same in both.
const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Whether `group`/`plural` is the `events.k8s.io` view.
#[must_use]
pub fn is_view(group: &str, plural: &str) -> bool {
    group == GROUP && plural == "events"
}

fn rename(obj: &Value, from: usize, api_version: &str) -> Value {
    let Some(fields) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (key, value) in fields {
        let renamed = RENAMED
            .iter()
            .find(|pair| [pair.0, pair.1][from] == key.as_str())
            .map_or(key.as_str(), |pair| [pair.1, pair.0][from]);
        out.insert(renamed.to_string(), value.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// A stored core/v1 Event as `events.k8s.io/v1`.
#[must_use]
pub fn to_view(core: &Value) -> Value {
    rename(core, 0, "events.k8s.io/v1")
}

/// An `events.k8s.io/v1` Event as the core/v1 Event it is stored as.
#[must_use]
pub fn to_core(view: &Value) -> Value {
    rename(view, 1, "v1")
}

/// A field selector on the view, as a selector on the stored core Events (`regarding.name=x` →
/// `involvedObject.name=x`).
#[must_use]
pub fn core_field_selector(selector: &str) -> String {
    selector
        .split(',')
        .map(|term| {
            RENAMED
                .iter()
                .find_map(|(core, view)| {
                    term.strip_prefix(view)
                        .filter(|rest| rest.starts_with(['.', '=', '!']))
                        .map(|rest| format!("{core}{rest}"))
                })
                .unwrap_or_else(|| term.to_string())
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_between_the_two_apis() {
        let view = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "pvc.1", "namespace": "app"}, "eventTime": "2025-01-01T00:00:00.000000Z",
            "regarding": {"kind": "PersistentVolumeClaim", "name": "data"}, "note": "backed up",
            "reason": "BackupSucceeded", "type": "Normal", "action": "Backup",
            "reportingController": "backup-ns.sh/backup-ns", "reportingInstance": "pod-1"});
        let core = to_core(&view);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "data");
        assert_eq!(core["message"], "backed up");
        assert_eq!(core["reportingComponent"], "backup-ns.sh/backup-ns");
        assert_eq!(core["reason"], "BackupSucceeded");
        assert_eq!(to_view(&core), view);
    }

    #[test]
    fn view_field_selectors_select_the_stored_fields() {
        assert_eq!(
            core_field_selector("regarding.name=data,type!=Normal,note=x"),
            "involvedObject.name=data,type!=Normal,message=x"
        );
    }
}
