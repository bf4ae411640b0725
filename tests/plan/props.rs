//! Bounded property test: random and mutated plans never panic the loader/validator, and the outcome is always
//! either a plan (with only warnings) or at least one error diagnostic.

use backup_ns::plan::{Format, Profiles, SourceFile, load_source};
use proptest::prelude::*;
use std::path::Path;

const KEYS: &[&str] = &[
    "name",
    "namespace",
    "targets",
    "hooks",
    "pre",
    "post",
    "type",
    "workload",
    "container",
    "timeout",
    "onError",
    "when",
    "dumpFile",
    "threshold",
    "port",
    "password",
    "script",
    "command",
    "snapshot",
    "nameTemplate",
    "readyTimeout",
    "labels",
    "retention",
    "daily",
    "days",
    "lock",
    "slots",
    "dryRun",
    "vars",
    "postgres",
    "exec",
    "rhai",
];

fn check(text: &str, format: Format) {
    let source = SourceFile::new("prop", text);
    let (plan, diags) = load_source(
        &source,
        format,
        Some(Path::new("plans")),
        &Profiles::builtin(),
    );
    match plan {
        Some(_) => assert!(
            diags.iter().all(|d| !d.is_error()),
            "a plan with errors was returned"
        ),
        None => assert!(
            diags.iter().any(|d| d.is_error()),
            "no plan and no error for:\n{text}"
        ),
    }
    for d in &diags {
        // Rendering and locating must not panic either, whatever the spans are.
        let _ = d.render(60);
        let _ = d.to_json();
    }
}

fn scalar() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        (-5i64..70000).prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z0-9{}/._ -]{0,12}".prop_map(serde_json::Value::from),
        prop::sample::select(KEYS).prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("15m")),
        Just(serde_json::Value::from("deployment/app")),
    ]
}

fn tree() -> impl Strategy<Value = serde_json::Value> {
    scalar().prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(KEYS).prop_map(str::to_string),
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn examples() -> Vec<(String, Format)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("plans").unwrap() {
        let path = entry.unwrap().path();
        if let Some(format) = Format::from_path(&path) {
            out.push((std::fs::read_to_string(&path).unwrap(), format));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_documents_never_panic_and_always_get_an_answer(doc in tree()) {
        let yaml = serde_saphyr::to_string(&doc).unwrap();
        check(&yaml, Format::Yaml);
        if doc.is_object() && let Ok(toml) = toml::to_string(&doc) {
            check(&toml, Format::Toml);
        }
    }

    #[test]
    fn mutated_example_plans_never_panic_and_always_get_an_answer(
        pick in 0usize..64,
        at in 0usize..4096,
        len in 0usize..16,
        insert in "[ -~\n]{0,8}",
    ) {
        let examples = examples();
        let (text, format) = &examples[pick % examples.len()];
        let mut bytes = text.clone().into_bytes();
        let start = at % (bytes.len() + 1);
        let end = (start + len).min(bytes.len());
        bytes.splice(start..end, insert.bytes());
        // Mutations may split a multi-byte character; the loader receives text, so repair it lossily.
        let mutated = String::from_utf8_lossy(&bytes).into_owned();
        check(&mutated, *format);
    }
}

#[test]
fn arbitrary_bytes_as_text_never_panic() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&"\\PC{0,200}", |text| {
            check(&text, Format::Yaml);
            check(&text, Format::Toml);
            Ok(())
        })
        .unwrap();
}
