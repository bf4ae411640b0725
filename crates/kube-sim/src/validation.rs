//! Validation of writes: object names for every type, and for CRD-backed types the version's openAPIV3Schema
//! (types, enums, required, pattern, minimum, int-or-string) plus its `x-kubernetes-validations` CEL rules,
//! evaluated by [`crate::cel`] (the subset of CEL the snapshot CRDs use). Failures are 422 Invalid.

use serde_json::Value;

use crate::cel;
use crate::resources::ResourceInfo;
use crate::status::ApiError;

/// Object names must be DNS-1123 subdomains (lowercase alphanumerics, `-` and `.`, at most 253 characters).
pub fn validate_name(res: &ResourceInfo, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &res.group,
            &res.kind,
            name,
            &[(
                "metadata.name".to_string(),
                format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                ),
            )],
        ))
    }
}

/// Validate `obj` (and, on update, the transition from `old`) against the resource's schema.
pub fn validate(
    res: &ResourceInfo,
    version: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    decodable(res, version, obj)?;
    let Some(schema) = res.version(version).and_then(|v| v.schema.as_ref()) else {
        return Ok(());
    };
    let mut errors = Vec::new();
    // metadata is validated by the apiserver itself, not by the CRD schema.
    if let (Some(props), Some(o)) = (
        schema.get("properties").and_then(Value::as_object),
        obj.as_object(),
    ) {
        for (k, sub) in props {
            if k == "metadata" || k == "apiVersion" || k == "kind" {
                continue;
            }
            if let Some(v) = o.get(k) {
                check(sub, v, old.and_then(|o| o.get(k)), k, &mut errors);
            }
        }
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !o.contains_key(r) {
                    errors.push((r.to_string(), "Required value".to_string()));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(ApiError::invalid(&res.group, &res.kind, name, &errors))
    }
}

/// The apiserver decodes a claim's resource quantities before anything else: one that is not a quantity makes the
/// whole body undecodable (400 BadRequest, no details), not an Invalid field.
fn decodable(res: &ResourceInfo, version: &str, obj: &Value) -> Result<(), ApiError> {
    if res.group.is_empty() && res.kind == "PersistentVolumeClaim" {
        for list in ["/spec/resources/requests", "/spec/resources/limits"] {
            let bad = obj
                .pointer(list)
                .and_then(Value::as_object)
                .is_some_and(|m| m.values().any(|q| !is_quantity(q)));
            if bad {
                return Err(ApiError::bad_request(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: quantities must match the regular \
                     expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                    kind = res.kind
                )));
            }
        }
    }
    Ok(())
}

/// `^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$`, or a JSON number.
fn is_quantity(q: &Value) -> bool {
    let Some(s) = q.as_str() else {
        return q.is_number();
    };
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits = s.len()
        - s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
            .len();
    if digits == 0 {
        return false;
    }
    let rest = s[digits..].trim_start_matches(|c: char| "eEinumkKMGTP".contains(c));
    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    rest.chars().all(|c| c.is_ascii_digit())
}

/// Fields of `obj` that the resource's schema does not declare (`spec.foo`), honouring
/// `x-kubernetes-preserve-unknown-fields` and `additionalProperties`. Empty for types without a schema.
pub fn unknown_fields(res: &ResourceInfo, version: &str, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(schema) = res.version(version).and_then(|v| v.schema.as_ref()) {
        walk_unknown(schema, obj, "", &mut out, true);
    }
    out
}

/// Drop `null` values of fields whose schema is not `nullable`, as the apiserver does before validation
/// (typed clients often send `"field": null` for unset options).
fn drop_nulls(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                o.retain(|k, cv| {
                    !(cv.is_null()
                        && props.get(k).is_some_and(|p| {
                            p.get("nullable").and_then(Value::as_bool) != Some(true)
                        }))
                });
                for (k, cv) in o.iter_mut() {
                    if let Some(sub) = props.get(k) {
                        drop_nulls(sub, cv);
                    }
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for cv in o.values_mut() {
                    drop_nulls(ap, cv);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    drop_nulls(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Remove undeclared fields and non-nullable nulls, as the apiserver prunes custom resources with structural
/// schemas.
pub fn prune(res: &ResourceInfo, version: &str, obj: &mut Value) {
    if let Some(schema) = res.version(version).and_then(|v| v.schema.clone()) {
        if let Some(m) = obj.as_object_mut() {
            // Top-level nulls (status: null) go too; metadata is the apiserver's own business.
            m.retain(|k, v| !(v.is_null() && k != "metadata"));
        }
        drop_nulls(&schema, obj);
    }
    let unknown = unknown_fields(res, version, obj);
    for path in unknown {
        let parts: Vec<&str> = path.split('.').collect();
        let Some((last, parents)) = parts.split_last() else {
            continue;
        };
        let ptr: String = parents
            .iter()
            .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
            .collect();
        if let Some(m) = obj.pointer_mut(&ptr).and_then(Value::as_object_mut) {
            m.remove(*last);
        }
    }
}

fn walk_unknown(schema: &Value, v: &Value, path: &str, out: &mut Vec<String>, top: bool) {
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(o) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, cv) in o {
                    if top && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    match props.get(k) {
                        Some(sub) => walk_unknown(sub, cv, &join(k), out, false),
                        // Keys with dots or slashes cannot be addressed by the pruning path; report them too.
                        None => out.push(join(k)),
                    }
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, cv) in o {
                    walk_unknown(ap, cv, &join(k), out, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    walk_unknown(item_schema, item, path, out, false);
                }
            }
        }
        _ => {}
    }
}

/// The apiserver's strict-decoding refusal for undeclared fields (`fieldValidation=Strict`).
pub fn strict_error(res: &ResourceInfo, version: &str, unknown: &[String]) -> ApiError {
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    ApiError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        fields.join(", "),
        kind = res.kind
    ))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Object(_) => "\"object\"".to_string(),
        Value::Array(_) => "\"array\"".to_string(),
        other => other.to_string(),
    }
}

fn check(
    schema: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    errors: &mut Vec<(String, String)>,
) {
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if v.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if int_or_string {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            errors.push((
                path.to_string(),
                format!(
                    "Invalid value: {}: {path} in body must be of type int-or-string: \"{}\"",
                    show(v),
                    type_name(v)
                ),
            ));
            return;
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            errors.push((
                path.to_string(),
                format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {t}: \"{actual}\""
                ),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(show).collect();
        errors.push((
            path.to_string(),
            format!(
                "Unsupported value: {}: supported values: {}",
                show(v),
                list.join(", ")
            ),
        ));
    }
    if let (Some(p), Some(s)) = (schema.get("pattern").and_then(Value::as_str), v.as_str())
        && let Ok(re) = regex::Regex::new(p)
        && !re.is_match(s)
    {
        errors.push((
            path.to_string(),
            format!("Invalid value: \"{s}\": {path} in body should match '{p}'"),
        ));
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64())
        && n < min
    {
        errors.push((
            path.to_string(),
            format!("Invalid value: {v}: {path} in body should be greater than or equal to {min}"),
        ));
    }
    match v {
        Value::Object(o) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if let Some(cv) = o.get(k) {
                        check(
                            sub,
                            cv,
                            old.and_then(|x| x.get(k)),
                            &format!("{path}.{k}"),
                            errors,
                        );
                    }
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, cv) in o {
                    check(
                        ap,
                        cv,
                        old.and_then(|x| x.get(k)),
                        &format!("{path}[{k}]"),
                        errors,
                    );
                }
            }
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !o.contains_key(r) {
                        errors.push((format!("{path}.{r}"), "Required value".to_string()));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, None, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            let Some(text) = rule.get("rule").and_then(Value::as_str) else {
                continue;
            };
            // Transition rules (those that mention oldSelf) only run on update, when an old value exists.
            if text.contains("oldSelf") && old.is_none() {
                continue;
            }
            let message = rule
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("failed rule: {text}"));
            match cel::evaluate(text, v, old) {
                Ok(true) => {}
                Ok(false) => errors.push((
                    path.to_string(),
                    format!("Invalid value: {}: {message}", show_kind(v)),
                )),
                Err(e) => errors.push((
                    path.to_string(),
                    format!("Invalid value: {}: {e}", show_kind(v)),
                )),
            }
        }
    }
}

fn show_kind(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".to_string(),
        Value::Array(_) => "\"array\"".to_string(),
        Value::String(_) => "\"string\"".to_string(),
        other => format!("\"{}\"", type_name(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{Registry, embedded_crd_objects};
    use serde_json::json;

    fn reg() -> Registry {
        let mut r = Registry::default();
        let crds = embedded_crd_objects();
        r.set_crds(crds.iter());
        r
    }

    fn vs(spec: Value) -> Value {
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": "s"}, "spec": spec})
    }

    #[test]
    fn a_claim_whose_size_is_not_a_quantity_cannot_be_decoded() {
        let r = reg();
        let res = r.by_plural("", "persistentvolumeclaims").expect("pvc");
        let claim = |size: Value| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
                   "spec": {"resources": {"requests": {"storage": size}}}})
        };
        for good in [
            json!("1Gi"),
            json!("500M"),
            json!("1e3"),
            json!("+1.5"),
            json!(1024),
        ] {
            assert!(
                validate(res, "v1", &claim(good.clone()), None).is_ok(),
                "{good}"
            );
        }
        for bad in [json!("lots"), json!("1 Gi"), json!("Gi"), json!(true)] {
            let e = validate(res, "v1", &claim(bad.clone()), None).expect_err("not a quantity");
            assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"), "{bad}");
        }
    }

    #[test]
    fn a_volume_snapshot_needs_exactly_one_source() {
        let r = reg();
        let res = r
            .by_plural("snapshot.storage.k8s.io", "volumesnapshots")
            .expect("vs");
        validate(
            res,
            "v1",
            &vs(json!({"source": {"persistentVolumeClaimName": "data"}})),
            None,
        )
        .expect("valid");
        let err = validate(
            res,
            "v1",
            &vs(json!({"source": {"persistentVolumeClaimName": "data", "volumeSnapshotContentName": "c"}})),
            None,
        )
        .expect_err("both sources");
        assert_eq!(err.code, 422);
        assert!(err.message.contains("spec.source"), "{}", err.message);
        let err = validate(res, "v1", &vs(json!({})), None).expect_err("no source");
        assert!(
            err.message.contains("spec.source: Required value"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_source_of_a_volume_snapshot_is_immutable() {
        let r = reg();
        let res = r
            .by_plural("snapshot.storage.k8s.io", "volumesnapshots")
            .expect("vs");
        let old = vs(json!({"source": {"persistentVolumeClaimName": "data"}}));
        let new = vs(json!({"source": {"persistentVolumeClaimName": "other"}}));
        let err = validate(res, "v1", &new, Some(&old)).expect_err("immutable");
        assert!(err.message.contains("immutable"), "{}", err.message);
    }

    #[test]
    fn undeclared_fields_are_found_and_pruned() {
        let r = reg();
        let res = r
            .by_plural("snapshot.storage.k8s.io", "volumesnapshots")
            .expect("vs");
        let mut obj =
            vs(json!({"source": {"persistentVolumeClaimName": "data", "typo": 1}, "extra": true}));
        obj["metadata"]["labels"] = json!({"a": "b"});
        let mut unknown = unknown_fields(res, "v1", &obj);
        unknown.sort();
        assert_eq!(
            unknown,
            vec!["spec.extra".to_string(), "spec.source.typo".to_string()]
        );
        prune(res, "v1", &mut obj);
        assert_eq!(
            obj["spec"],
            json!({"source": {"persistentVolumeClaimName": "data"}})
        );
        assert_eq!(
            obj["metadata"]["labels"]["a"], "b",
            "metadata is never pruned"
        );
        let mut with_nulls = vs(
            json!({"source": {"persistentVolumeClaimName": "data", "volumeSnapshotContentName": null}, "volumeSnapshotClassName": null}),
        );
        with_nulls["status"] = Value::Null;
        prune(res, "v1", &mut with_nulls);
        assert_eq!(
            with_nulls["spec"],
            json!({"source": {"persistentVolumeClaimName": "data"}})
        );
        assert!(with_nulls.get("status").is_none());
        validate(res, "v1", &with_nulls, None).expect("valid once nulls are dropped");
        assert!(
            strict_error(res, "v1", &["spec.extra".into()])
                .message
                .contains("strict decoding error: unknown field \"spec.extra\"")
        );
    }

    #[test]
    fn enums_and_types_are_enforced_on_contents_and_classes() {
        let r = reg();
        let class = r
            .by_plural("snapshot.storage.k8s.io", "volumesnapshotclasses")
            .expect("class");
        let bad = json!({"metadata": {"name": "c"}, "driver": "d", "deletionPolicy": "Keep"});
        let err = validate(class, "v1", &bad, None).expect_err("enum");
        assert!(
            err.message.contains("Unsupported value: \"Keep\""),
            "{}",
            err.message
        );
        let vsc = r
            .by_plural("snapshot.storage.k8s.io", "volumesnapshotcontents")
            .expect("vsc");
        let bad = json!({"metadata": {"name": "c"}, "spec": {"deletionPolicy": "Retain", "driver": 3,
            "source": {"snapshotHandle": "h"}, "volumeSnapshotRef": {"name": "s", "namespace": "n"}}});
        let err = validate(vsc, "v1", &bad, None).expect_err("type");
        assert!(
            err.message
                .contains("spec.driver in body must be of type string"),
            "{}",
            err.message
        );
    }
}
