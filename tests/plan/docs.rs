//! The README documents what the code does: every plan key of the schema, every diagnostic code, every exit code
//! of `validate`, and every example plan carries the schema line.

use backup_ns::plan::Code;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md exists")
}

fn collect_keys(value: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            for v in map.values() {
                collect_keys(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_keys(v, out)),
        _ => {}
    }
}

#[test]
fn the_plan_reference_documents_every_schema_key() {
    let readme = readme();
    let reference = readme
        .split("## Plan reference")
        .nth(1)
        .expect("README has a `## Plan reference` section");
    let schema: serde_json::Value =
        serde_json::from_str(&backup_ns::plan::schema::plan_schema_json()).unwrap();
    let mut keys = std::collections::BTreeSet::new();
    collect_keys(&schema, &mut keys);
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !reference.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README plan reference lacks keys: {missing:?}"
    );
}

#[test]
fn the_readme_lists_every_diagnostic_code_and_validate_exit_code() {
    let readme = readme();
    for code in Code::ALL {
        assert!(
            readme.contains(code.as_str()),
            "README lacks {}",
            code.as_str()
        );
    }
    for line in ["| 0 |", "| 1 |", "| 2 |"] {
        assert!(
            readme.contains(line),
            "README lacks the exit code row `{line}`"
        );
    }
}

#[test]
fn example_plans_start_with_the_schema_line() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/plans")).unwrap() {
        let path = entry.unwrap().path();
        if !backup_ns::plan::is_plan_file(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/plan.schema.json\n"),
            "{} does not start with the schema line",
            path.display()
        );
    }
}
