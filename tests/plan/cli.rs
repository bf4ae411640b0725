//! The real binary: exit codes 0/1/2, JSON output, help text, schema output.

use assert_cmd::Command;
use predicates::prelude::*;

fn backup_ns() -> Command {
    let mut cmd = Command::cargo_bin("backup-ns").expect("backup-ns binary is built by cargo test");
    cmd.env_clear().current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// `validate --format json PLANS...` on plans that are invalid: exit code 1 and one JSON array on stdout.
fn invalid_json<I, S>(plans: I) -> serde_json::Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = backup_ns()
        .args(["validate", "--format", "json"])
        .args(plans)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).expect("stdout is one JSON array")
}

#[test]
fn validate_accepts_every_example_plan() {
    backup_ns()
        .args(["validate", "plans/"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("valid: plans/postgres-app.yaml"))
        .stdout(predicate::str::contains("valid: plans/inventory.toml"));
}

#[test]
fn validate_exits_1_and_prints_json_for_an_invalid_plan() {
    let json = invalid_json([
        "tests/fixtures/plans/invalid/unknown-key-top.yaml",
        "tests/fixtures/plans/invalid/unknown-key-top.toml",
    ]);
    let items = json.as_array().expect("an array");
    assert_eq!(items.len(), 2, "{json}");
    for item in items {
        let obj = item.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "code", "column", "file", "help", "labels", "line", "message", "severity"
            ]
        );
        assert_eq!(item["code"], "plan::unknown-key");
        assert_eq!(item["severity"], "error");
        assert_eq!(
            (item["line"].as_u64(), item["column"].as_u64()),
            (Some(4), Some(1))
        );
        assert!(item["message"].as_str().unwrap().contains("taregts"));
        // The "did you mean" and the labels reach CI annotations too.
        assert_eq!(item["help"], "did you mean `targets`?");
        let label = &item["labels"][0];
        assert_eq!(label["primary"], true);
        assert_eq!(label["text"], "unknown key");
        assert_eq!(
            (label["line"].as_u64(), label["column"].as_u64()),
            (Some(4), Some(1))
        );
        assert_eq!(
            (label["end_line"].as_u64(), label["end_column"].as_u64()),
            (Some(4), Some(8))
        );
        assert_eq!(label["length"], 7);
    }
}

#[test]
fn hook_name_diagnostics_in_json_carry_code_line_and_column_in_both_plan_formats() {
    let fixtures = [
        (
            "duplicate-hook-name.toml",
            "plan::duplicate-hook-name",
            11,
            8,
        ),
        (
            "duplicate-hook-name.yaml",
            "plan::duplicate-hook-name",
            11,
            13,
        ),
        ("invalid-hook-name.toml", "plan::invalid-name", 5, 8),
        ("invalid-hook-name.yaml", "plan::invalid-name", 6, 13),
    ];
    let paths: Vec<String> = fixtures
        .iter()
        .map(|(file, ..)| format!("tests/fixtures/plans/invalid/{file}"))
        .collect();
    let json = invalid_json(&paths);
    let items = json.as_array().expect("an array");
    assert_eq!(items.len(), fixtures.len(), "{json}");
    for (item, (path, (_, code, line, column))) in items.iter().zip(paths.iter().zip(fixtures)) {
        assert_eq!(item["file"], path.as_str(), "{item}");
        assert_eq!(item["code"], code, "{item}");
        assert_eq!(
            (item["line"].as_u64(), item["column"].as_u64()),
            (Some(line), Some(column)),
            "{item}"
        );
    }
    insta::with_settings!({
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_json_snapshot!("hook_name_diagnostics_json", json);
    });
}

#[test]
fn validate_reports_every_problem_of_a_file_not_just_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("many.yaml");
    std::fs::write(
        &plan,
        "name: Bad_Name\ntargets: [data, data]\nsnapshot:\n  readyTimeout: soon\n  colour: blue\nretention: standart\n",
    )
    .unwrap();
    let json = invalid_json([&plan]);
    let codes: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "plan::invalid-name",
            "plan::duplicate-target",
            "plan::bad-duration",
            "plan::unknown-key",
            "plan::unknown-profile"
        ]
    );
}

#[test]
fn validate_renders_human_diagnostics_with_snippet_and_help() {
    backup_ns()
        .env("COLUMNS", "100")
        .args([
            "validate",
            "tests/fixtures/plans/invalid/unknown-key-nested.yaml",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("plan::unknown-key"))
        .stderr(predicate::str::contains("unknown-key-nested.yaml:5:3"))
        .stderr(predicate::str::contains("did you mean `waitUntilReady`?"));
}

#[test]
fn warnings_pass_unless_denied() {
    let fixture = "tests/fixtures/plans/invalid/warning-literal-password.yaml";
    backup_ns()
        .args(["validate", fixture])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("plan::literal-secret"));
    backup_ns()
        .args(["validate", "--deny-warnings", fixture])
        .assert()
        .code(1);
}

#[test]
fn validate_exits_2_on_usage_errors() {
    backup_ns()
        .args(["validate", "does/not/exist.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does/not/exist.yaml"));
    backup_ns()
        .args(["validate", "--format", "xml", "plans/"])
        .assert()
        .code(2);
    backup_ns().args(["validate"]).assert().code(2);
    let empty = tempfile::tempdir().unwrap();
    backup_ns()
        .arg("validate")
        .arg(empty.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no plan files"));
}

#[test]
fn a_plan_that_is_not_utf8_is_invalid_with_a_located_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("latin1.yaml");
    std::fs::write(&plan, b"name: caf\xe9\ntargets: [data]\n").unwrap();
    let json = invalid_json([&plan]);
    assert_eq!(json[0]["code"], "plan::encoding");
    assert_eq!(json[0]["file"], plan.display().to_string());
    // At the offending byte, not just the file.
    assert_eq!(
        (json[0]["line"].as_u64(), json[0]["column"].as_u64()),
        (Some(1), Some(10))
    );
}

#[test]
fn validate_help_documents_the_exit_codes() {
    backup_ns()
        .args(["validate", "--help"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("0  every plan is valid"))
        .stdout(predicate::str::contains("1  at least one plan is invalid"))
        .stdout(predicate::str::contains("2  usage error"))
        .stdout(predicate::str::contains("Examples:"));
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/plan.schema.json"
    ))
    .expect("schema/plan.schema.json is committed");
    let out = backup_ns()
        .arg("schema")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert!(
        String::from_utf8(out).unwrap() == committed,
        "schema/plan.schema.json is stale; regenerate it with `cargo run -q -- schema > schema/plan.schema.json`"
    );
}

#[test]
fn plan_from_env_fails_with_exit_1_on_bad_values() {
    backup_ns()
        .args(["plan", "from-env"])
        .env("BAK_DB_POSTGRES", "maybe")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "BAK_DB_POSTGRES=maybe is not a boolean",
        ));
}

#[test]
fn plan_show_applies_env_and_flag_layers() {
    let out = backup_ns()
        .args([
            "plan",
            "show",
            "plans/postgres-app.yaml",
            "--format",
            "json",
            "--namespace",
            "from-flag",
        ])
        .env("BACKUP_NS_SNAPSHOT__READY_TIMEOUT", "20m")
        .env("BACKUP_NS_NAMESPACE", "from-env")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["namespace"], "from-flag");
    assert_eq!(json["snapshot"]["readyTimeout"], "20m");
    assert_eq!(json["retention"]["profile"], "standard");
}

#[test]
fn validate_uses_a_shared_profiles_file_given_with_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("shared.yaml");
    std::fs::write(&profiles, "platinum: { daily: 30, monthly: 36 }\n").unwrap();
    let plans = dir.path().join("plans");
    std::fs::create_dir(&plans).unwrap();
    std::fs::write(
        plans.join("p.yaml"),
        "name: app\ntargets: [data]\nretention: platinum\n",
    )
    .unwrap();
    backup_ns()
        .arg("validate")
        .arg(&plans)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("plan::unknown-profile"));
    backup_ns()
        .arg("validate")
        .arg("--profiles")
        .arg(&profiles)
        .arg(&plans)
        .assert()
        .code(0);
}
