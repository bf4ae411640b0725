//! `LabelChanges` → an RFC 6902 JSON patch that only applies if nobody changed those labels since we read them.
//!
//! Replacing or removing a label carries a `test` op on the label's current value, so a concurrent edit of that
//! label makes the apiserver reject the whole patch instead of clobbering it. JSON patch cannot test that a key is
//! *absent*, so adding a label tests the object's `resourceVersion` instead: stricter (any concurrent write makes
//! it fail), but a failed patch is only a conflict, and re-reading and retrying converges.

use crate::labels::LabelChanges;
use kube::core::ObjectMeta;
use serde_json::{Value, json};

/// Escapes a label key for a JSON pointer (`/` → `~1`, `~` → `~0`), e.g. `backup-ns.sh~1daily`.
pub fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The JSON patch turning `current`'s labels into the requested ones, or `None` when nothing would change
/// (unchanged objects are not patched at all).
pub fn label_patch(current: &ObjectMeta, changes: &LabelChanges) -> Option<Value> {
    let labels = current.labels.as_ref();
    let mut tests = Vec::new();
    let mut ops = Vec::new();
    let mut additions = serde_json::Map::new();
    for (key, wanted) in changes.iter() {
        let have = labels.and_then(|l| l.get(key));
        let path = format!("/metadata/labels/{}", pointer_escape(key));
        match (have, wanted) {
            (Some(old), Some(new)) if old == new => {}
            (None, None) => {}
            (Some(old), Some(new)) => {
                tests.push(json!({"op": "test", "path": path, "value": old}));
                ops.push(json!({"op": "replace", "path": path, "value": new}));
            }
            (Some(old), None) => {
                tests.push(json!({"op": "test", "path": path, "value": old}));
                ops.push(json!({"op": "remove", "path": path}));
            }
            (None, Some(new)) => {
                additions.insert(key.to_string(), Value::String(new.to_string()));
            }
        }
    }
    if tests.is_empty() && ops.is_empty() && additions.is_empty() {
        return None;
    }
    if !additions.is_empty() {
        if let Some(rv) = current.resource_version.as_deref() {
            tests.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}));
        }
        if labels.is_none() {
            ops.push(json!({"op": "add", "path": "/metadata/labels", "value": additions}));
        } else {
            for (key, value) in additions {
                let path = format!("/metadata/labels/{}", pointer_escape(&key));
                ops.push(json!({"op": "add", "path": path, "value": value}));
            }
        }
    }
    tests.extend(ops);
    Some(Value::Array(tests))
}

/// Whether an apiserver rejection of a patch with `test` ops means "the test failed", i.e. a concurrent edit.
/// The apiserver answers 422 for a failed test (409 is used by some servers). kube-apiserver (1.36, measured on the
/// real cluster) says only its generic "the server rejected our request due to an error in our request", for a
/// failed test and for a tested label that vanished alike; other servers pass the JSON patch library's message on:
/// Go's "testing value ... failed", Rust's "value did not match", "missing path" / "path is invalid". A 422 for an
/// invalid label value names the object and field ("... is invalid: metadata.labels: ...") instead.
/// kube-apiserver's whole message when a JSON patch does not apply to the stored object.
const JSON_PATCH_REJECTED: &str = "the server rejected our request due to an error in our request";

pub fn is_test_failure(code: u16, message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    code == 409
        || (code == 422
            && (message == JSON_PATCH_REJECTED
                || ["test", "did not match", "missing path", "path is invalid"]
                    .iter()
                    .any(|m| message.contains(m))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(labels: Option<&[(&str, &str)]>, rv: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            labels: labels.map(|l| {
                l.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            resource_version: rv.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn replacing_and_removing_labels_test_their_current_values_first() {
        let current = meta(
            Some(&[
                ("backup-ns.sh/daily", "2025-01-01"),
                ("backup-ns.sh/weekly", "2025-w01"),
            ]),
            Some("7"),
        );
        let changes = LabelChanges::new()
            .set("backup-ns.sh/daily", "2025-01-02")
            .remove("backup-ns.sh/weekly");
        let patch = label_patch(&current, &changes).unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/labels/backup-ns.sh~1daily", "value": "2025-01-01"},
                {"op": "test", "path": "/metadata/labels/backup-ns.sh~1weekly", "value": "2025-w01"},
                {"op": "replace", "path": "/metadata/labels/backup-ns.sh~1daily", "value": "2025-01-02"},
                {"op": "remove", "path": "/metadata/labels/backup-ns.sh~1weekly"},
            ])
        );
    }

    #[test]
    fn adding_a_label_tests_the_resource_version() {
        let current = meta(Some(&[("app", "x")]), Some("42"));
        let patch = label_patch(
            &current,
            &LabelChanges::new().set("backup-ns.sh/delete-after", "2025-02-01"),
        )
        .unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
                {"op": "add", "path": "/metadata/labels/backup-ns.sh~1delete-after", "value": "2025-02-01"},
            ])
        );
    }

    #[test]
    fn adding_to_an_object_without_labels_creates_the_map() {
        let patch = label_patch(&meta(None, None), &LabelChanges::new().set("a", "1")).unwrap();
        assert_eq!(
            patch,
            json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "1"}}])
        );
    }

    #[test]
    fn unchanged_labels_produce_no_patch() {
        let current = meta(Some(&[("a", "1")]), Some("3"));
        let changes = LabelChanges::new().set("a", "1").remove("b");
        assert_eq!(label_patch(&current, &changes), None);
    }

    #[test]
    fn keys_with_tilde_and_slash_are_escaped() {
        assert_eq!(pointer_escape("a~b/c"), "a~0b~1c");
    }

    #[test]
    fn the_patch_deserialises_as_a_json_patch() {
        let current = meta(Some(&[("a", "1")]), Some("3"));
        let patch =
            label_patch(&current, &LabelChanges::new().set("a", "2").set("b", "x")).unwrap();
        let parsed: json_patch::Patch = serde_json::from_value(patch).unwrap();
        assert_eq!(parsed.0.len(), 4);
    }

    #[test]
    fn only_test_failures_count_as_conflicts() {
        assert!(is_test_failure(
            422,
            "testing value /metadata/labels/a failed: test failed"
        ));
        assert!(is_test_failure(
            422,
            "operation '/0' failed at path '/metadata/labels/a': value did not match"
        ));
        assert!(is_test_failure(
            422,
            "the server rejected our request due to an error in our request"
        ));
        assert!(is_test_failure(409, "conflict"));
        assert!(!is_test_failure(
            422,
            "metadata.labels: Invalid value: \"a b\""
        ));
        assert!(!is_test_failure(
            422,
            "VolumeSnapshot.snapshot.storage.k8s.io \"a\" is invalid: metadata.labels: Invalid value: \"a b\""
        ));
        assert!(!is_test_failure(500, "test"));
    }
}
