//! The JSON Schema of plan files, generated from the model types (schemars) and committed at
//! `schema/plan.schema.json` so editors validate plans as they are typed.

use super::model::Plan;

/// The schema as pretty-printed JSON with a trailing newline (the exact bytes of the committed file).
pub fn plan_schema_json() -> String {
    let schema = schemars::schema_for!(Plan);
    let mut value = serde_json::to_value(&schema).unwrap_or_default();
    fit_to_file_format(&mut value);
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
}

/// The model types describe the *validated* plan, where every default is filled in, so schemars marks
/// almost every field required. In a plan file only these are required; the converter fills in the rest.
const REQUIRED: &[(&str, &[&str])] = &[
    ("Hook", &["type"]),
    ("PostgresHook", &["workload"]),
    ("MysqlHook", &["workload"]),
    ("RhaiHook", &["script"]),
    ("ExecHook", &["workload", "container", "command"]),
    ("Snapshot", &[]),
    ("Lock", &[]),
];

fn fit_to_file_format(schema: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let Some(defs) = schema.get_mut("$defs").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, required) in REQUIRED {
        if let Some(def) = defs.get_mut(*name).and_then(Value::as_object_mut) {
            def.insert("required".into(), json!(required));
        }
    }
    // Hook properties come from the hook itself and from its `type` variant; reject anything else, as the
    // validator does.
    if let Some(hook) = defs.get_mut("Hook").and_then(Value::as_object_mut) {
        hook.insert("unevaluatedProperties".into(), json!(false));
    }
    if let Some(variants) = defs
        .get_mut("Retention")
        .and_then(|r| r.get_mut("anyOf"))
        .and_then(Value::as_array_mut)
    {
        for v in variants.iter_mut() {
            // Unspecified tiers are 0; `days` stays required for the TTL form.
            if let Some(req) = v.get_mut("required").and_then(Value::as_array_mut) {
                req.retain(|k| k == "days");
            }
        }
        variants.insert(
            0,
            json!({
                "description": "A named retention profile: built-in `standard` (7/4/12), `adhoc` (30 days), `extended` (14/8/24/5), or one from retention-profiles.yaml.",
                "type": "string"
            }),
        );
    }
}

/// Path of the committed schema, relative to the repository root.
pub const COMMITTED_PATH: &str = "schema/plan.schema.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_describes_the_plan_file_keys() {
        let text = plan_schema_json();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let props = &v["properties"];
        for key in [
            "name",
            "namespace",
            "targets",
            "hooks",
            "snapshot",
            "retention",
            "lock",
            "dryRun",
            "vars",
        ] {
            assert!(props.get(key).is_some(), "schema lacks `{key}`");
        }
        assert_eq!(v["required"], serde_json::json!(["name", "targets"]));
        assert_eq!(
            v["$defs"]["PostgresHook"]["required"],
            serde_json::json!(["workload"])
        );
        assert_eq!(v["$defs"]["Retention"]["anyOf"][0]["type"], "string");
    }
}
