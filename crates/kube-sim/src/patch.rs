//! The patch types the apiserver accepts: JSON merge (RFC 7386), JSON patch (RFC 6902, including `test`),
//! strategic merge (merge semantics plus merge-by-key lists and the `$patch`/`$setElementOrder` directives kubectl
//! sends) and server-side apply (approximated as a merge of the applied configuration).

use serde_json::{Map, Value};

use crate::status::ApiError;

/// Which patch format a request carries, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// application/merge-patch+json
    Merge,
    /// application/json-patch+json
    Json,
    /// application/strategic-merge-patch+json
    Strategic,
    /// application/apply-patch+yaml
    Apply,
}

impl PatchType {
    /// From a Content-Type header value.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Apply `patch` (raw body) of type `kind` to `doc`.
/// `strategic_allowed` is false for custom resources, which reject strategic merge like a real apiserver.
pub fn apply_patch(
    doc: &mut Value,
    kind: PatchType,
    body: &[u8],
    strategic_allowed: bool,
) -> Result<(), ApiError> {
    match kind {
        PatchType::Merge => {
            let p: Value = parse_json(body)?;
            json_patch::merge(doc, &p);
            Ok(())
        }
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            // kube-apiserver gives no detail here (not even which op failed), and clients must cope with that.
            json_patch::patch(doc, &p).map_err(|_| {
                ApiError::new(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                )
            })
        }
        PatchType::Strategic => {
            if !strategic_allowed {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                ));
            }
            let p: Value = parse_json(body)?;
            strategic_merge(doc, &p, "");
            Ok(())
        }
        PatchType::Apply => {
            let text =
                std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let p: Value = serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            apply_merge(doc, &p, "");
            Ok(())
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// The merge key of a list field, for the built-in types kubectl and backup-ns patch.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "volumeClaimTemplates"
        | "conditions" => Some(match field {
            "conditions" => "type",
            _ => "name",
        }),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => Some("containerPort"),
        "finalizers" | "ownerReferences" => None,
        _ => None,
    }
}

/// Strategic merge patch with merge semantics, merge-by-key lists and the common directives.
pub fn strategic_merge(doc: &mut Value, patch: &Value, field: &str) {
    let Value::Object(p) = patch else {
        *doc = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = p.clone();
        clean.remove("$patch");
        *doc = Value::Object(clean);
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let _ = field;
    let Some(d) = doc.as_object_mut() else { return };
    for (k, v) in p {
        if k.starts_with('$') {
            // $setElementOrder/..., $retainKeys, $deleteFromPrimitiveList/...: ordering hints and retention
            // directives; merge semantics are enough for the simulator, except the primitive-list deletion.
            if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/")
                && let (Some(Value::Array(cur)), Some(del)) = (d.get_mut(list), v.as_array())
            {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            d.remove(k);
            continue;
        }
        match (d.get_mut(k), v, merge_key(k)) {
            (Some(Value::Array(cur)), Value::Array(items), Some(key)) => {
                merge_list(cur, items, key)
            }
            (Some(cur @ Value::Object(_)), Value::Object(_), _) => strategic_merge(cur, v, k),
            _ => {
                let mut fresh = Value::Null;
                if v.is_object() {
                    strategic_merge(&mut fresh, v, k);
                } else {
                    fresh = v.clone();
                }
                d.insert(k.clone(), fresh);
            }
        }
    }
}

fn merge_list(cur: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key).cloned();
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        let pos = id
            .as_ref()
            .and_then(|id| cur.iter().position(|c| c.get(key) == Some(id)));
        match (pos, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut cur[i], item, key),
            (None, false) => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, item, key);
                cur.push(fresh);
            }
        }
    }
}

/// Server-side apply, approximated: the applied configuration is merged into the live object (maps merge,
/// keyed lists merge by key, other lists are replaced). Field ownership is not tracked.
fn apply_merge(doc: &mut Value, patch: &Value, field: &str) {
    strategic_merge(doc, patch, field);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes_labels() {
        let mut doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        apply_patch(
            &mut doc,
            PatchType::Merge,
            br#"{"metadata":{"labels":{"a":null,"c":"3"}}}"#,
            true,
        )
        .expect("ok");
        assert_eq!(doc, json!({"metadata": {"labels": {"b": "2", "c": "3"}}}));
    }

    #[test]
    fn json_patch_test_operation_guards_the_change() {
        let mut doc = json!({"spec": {"deletionPolicy": "Retain"}});
        let ok = br#"[{"op":"test","path":"/spec/deletionPolicy","value":"Retain"},{"op":"replace","path":"/spec/deletionPolicy","value":"Delete"}]"#;
        apply_patch(&mut doc, PatchType::Json, ok, true).expect("test passes");
        assert_eq!(doc["spec"]["deletionPolicy"], "Delete");
        let failing = br#"[{"op":"test","path":"/spec/deletionPolicy","value":"Retain"},{"op":"replace","path":"/spec/deletionPolicy","value":"X"}]"#;
        let err = apply_patch(&mut doc, PatchType::Json, failing, true).expect_err("test fails");
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message, "the server rejected our request due to an error in our request",
            "kube-apiserver's whole message"
        );
        assert_eq!(
            doc["spec"]["deletionPolicy"], "Delete",
            "a failed patch changes nothing"
        );
    }

    #[test]
    fn json_patch_escapes_slashes_in_label_keys() {
        let mut doc = json!({"metadata": {"labels": {"backup-ns.sh/daily": "2025-01-01"}}});
        apply_patch(
            &mut doc,
            PatchType::Json,
            br#"[{"op":"remove","path":"/metadata/labels/backup-ns.sh~1daily"}]"#,
            true,
        )
        .expect("ok");
        assert_eq!(doc["metadata"]["labels"], json!({}));
    }

    #[test]
    fn strategic_merge_merges_containers_by_name_and_honours_delete() {
        let mut doc = json!({"spec": {"containers": [
            {"name": "a", "image": "x:1", "env": [{"name": "K", "value": "1"}]},
            {"name": "b", "image": "y:1"}]}});
        let p = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "image": "x:2", "env": [{"name": "L", "value": "2"}]},
                           {"name": "b", "$patch": "delete"}]}});
        apply_patch(
            &mut doc,
            PatchType::Strategic,
            p.to_string().as_bytes(),
            true,
        )
        .expect("ok");
        assert_eq!(doc["spec"]["containers"].as_array().map(Vec::len), Some(1));
        assert_eq!(doc["spec"]["containers"][0]["image"], "x:2");
        assert_eq!(
            doc["spec"]["containers"][0]["env"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn strategic_merge_is_refused_for_custom_resources() {
        let mut doc = json!({});
        let err = apply_patch(&mut doc, PatchType::Strategic, b"{}", false).expect_err("415");
        assert_eq!(err.code, 415);
    }

    #[test]
    fn content_types_map_to_patch_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("text/plain"), None);
    }
}
