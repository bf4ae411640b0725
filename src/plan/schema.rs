//! The JSON Schema of plan files, derived from the raw types ([`super::raw`], schemars) and committed at
//! `schema/plan.schema.json` so editors validate plans as they are typed.

use super::raw::Plan;

/// The schema as pretty-printed JSON with a trailing newline (the exact bytes of the committed file).
pub fn plan_schema_json() -> String {
    let schema = schemars::schema_for!(Plan);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
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
