//! Hostile plan files through the real binary: every input class ends in a result (never a panic, exit 101),
//! with a diagnostic that names the problem. Timing is the benchmark's job (`benches/hostile_plans.rs`); the
//! timeout here only turns a hang into a failure instead of a stuck test run.

use super::hostile_inputs as inputs;
use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Far above what any case needs; only there so that a regression to unbounded work fails the test.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn backup_ns() -> Command {
    let mut cmd = Command::cargo_bin("backup-ns").expect("backup-ns binary is built by cargo test");
    cmd.env_clear()
        .env("COLUMNS", "100")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .timeout(HANG_GUARD);
    cmd
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn write(dir: &Path, file: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn validate(args: &[&str], plan: &Path) -> Outcome {
    let out = backup_ns()
        .arg("validate")
        .args(args)
        .arg(plan)
        .output()
        .expect("backup-ns runs");
    let outcome = Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_ne!(
        outcome.code,
        101,
        "backup-ns panicked:\n{}",
        &outcome.stderr[..outcome.stderr.len().min(4000)]
    );
    assert_ne!(outcome.code, -1, "backup-ns was killed (hang guard)");
    outcome
}

fn json(plan: &Path) -> Vec<serde_json::Value> {
    let out = validate(&["--format", "json"], plan);
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .expect("stdout is one JSON array")
        .as_array()
        .unwrap()
        .clone()
}

fn codes(items: &[serde_json::Value]) -> Vec<&str> {
    items.iter().map(|d| d["code"].as_str().unwrap()).collect()
}

#[test]
fn an_alias_bomb_stops_at_the_expanded_node_limit_with_a_diagnostic_at_the_alias() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "bomb.yaml", inputs::alias_bomb(12, 9));
    let items = json(&plan);
    assert_eq!(codes(&items), ["plan::too-complex"], "{items:?}");
    let text = std::fs::read_to_string(&plan).unwrap();
    let line = items[0]["line"].as_u64().unwrap() as usize;
    let column = items[0]["column"].as_u64().unwrap() as usize;
    let at = &text.lines().nth(line - 1).unwrap()[column - 1..];
    assert!(at.starts_with("*l"), "points at an alias: {at:?}");
}

#[test]
fn a_very_long_line_is_cut_in_the_snippet_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "long.yaml", inputs::long_line(1_000_000));
    let out = validate(&[], &plan);
    assert_eq!(out.code, 1, "{}", &out.stderr[..out.stderr.len().min(2000)]);
    assert!(out.stderr.contains("plan::invalid-name"), "{}", out.stderr);
    let widest = out.stderr.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 200, "a snippet line of {widest} characters");
}

#[test]
fn a_label_far_right_on_a_wide_line_is_still_shown() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "wide.yaml", inputs::wide_flow(500_000));
    let out = validate(&[], &plan);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("unknown key `colour`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("colour: red"),
        "the label's neighbourhood is in the snippet"
    );
    let widest = out.stderr.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 200, "a snippet line of {widest} characters");
}

#[test]
fn thousands_of_unknown_keys_print_one_hundred_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "keys.yaml", inputs::many_unknown_keys(20_000));
    let out = validate(&[], &plan);
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr.matches("plan::unknown-key").count(), 100);
    assert!(
        out.stderr
            .contains("19900 more diagnostics in this file are not shown"),
        "{}",
        &out.stderr[out.stderr.len().saturating_sub(2000)..]
    );
    // The totals still count everything.
    assert!(
        out.stderr.contains("20000 error(s)"),
        "{}",
        &out.stderr[out.stderr.len() - 300..]
    );
    let items = json(&plan);
    assert_eq!(items.len(), 101);
    assert_eq!(items[100]["code"], "plan::more-diagnostics");
}

#[test]
fn long_lists_of_targets_and_hooks_end_in_their_duplicate_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let targets = write(dir.path(), "targets.yaml", inputs::many_targets(20_000));
    let items = json(&targets);
    assert_eq!(codes(&items), ["plan::duplicate-target"]);
    let hooks = write(dir.path(), "hooks.yaml", inputs::many_hooks(5_000));
    let items = json(&hooks);
    assert_eq!(codes(&items), ["plan::duplicate-hook-name"]);
    assert!(
        items[0]["message"]
            .as_str()
            .unwrap()
            .contains("first on line 6")
    );
}

#[test]
fn many_keys_on_one_line_end_in_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(
        dir.path(),
        "one-line.yaml",
        inputs::many_keys_one_line(20_000),
    );
    let items = json(&plan);
    assert_eq!(items.len(), 101);
    assert!(
        codes(&items[..100])
            .iter()
            .all(|c| *c == "plan::unknown-key")
    );
}

#[test]
fn more_values_than_the_node_limit_is_a_diagnostic_not_a_memory_blowup() {
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in [
        ("huge.yaml", inputs::many_unknown_keys(300_000)),
        ("huge.toml", inputs::many_unknown_keys_toml(300_000)),
        ("array.toml", format!("x = [{}]\n", "1,".repeat(300_000))),
    ] {
        let plan = write(dir.path(), file, text);
        let items = json(&plan);
        assert_eq!(
            codes(&items),
            ["plan::too-complex"],
            "{file}: {:?}",
            &items[..items.len().min(3)]
        );
    }
}

#[test]
fn deep_nesting_is_a_diagnostic_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in [
        ("deep.yaml", inputs::deep_yaml(100_000)),
        ("deep.toml", inputs::deep_toml(100_000)),
    ] {
        let plan = write(dir.path(), file, text);
        let items = json(&plan);
        assert_eq!(items.len(), 1, "{file}: {items:?}");
        assert!(
            ["plan::too-complex", "plan::syntax"].contains(&items[0]["code"].as_str().unwrap()),
            "{file}: {items:?}"
        );
    }
}

#[test]
fn a_file_over_ten_mebibytes_is_refused_by_validate_run_and_plan_show() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "big.yaml", inputs::oversized());
    let items = json(&plan);
    assert_eq!(codes(&items), ["plan::too-large"]);
    assert!(items[0]["message"].as_str().unwrap().contains("10 MiB"));
    for (args, code) in [(vec!["run", "--dry-run"], 2), (vec!["plan", "show"], 1)] {
        let out = backup_ns()
            .args(&args)
            .arg(&plan)
            .output()
            .expect("backup-ns runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains("plan::too-large"), "{args:?}: {stderr}");
    }
    // A profiles file is read through the same gate.
    let small = write(dir.path(), "ok.yaml", inputs::HEADER);
    let profiles = write(dir.path(), "profiles.yaml", inputs::oversized());
    let out = backup_ns()
        .args(["validate", "--profiles"])
        .arg(&profiles)
        .arg(&small)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    assert!(stderr.contains("10 MiB"), "{stderr}");
}

#[test]
fn a_rhai_script_over_ten_mebibytes_is_refused_at_the_plan_line_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    // Valid rhai all the way (one long comment), so only the size is wrong.
    let mut script = String::from("// ");
    script.push_str(&"x".repeat(10 * 1024 * 1024));
    script.push('\n');
    write(dir.path(), "big.rhai", script);
    let plan = write(
        dir.path(),
        "plan.yaml",
        "name: app\ntargets: [data]\nhooks:\n  pre:\n    - type: rhai\n      script: big.rhai\n",
    );
    let items = json(&plan);
    assert_eq!(codes(&items), ["plan::too-large"], "{items:?}");
    assert!(items[0]["message"].as_str().unwrap().contains("10 MiB"));
    assert!(
        items[0]["message"]
            .as_str()
            .unwrap()
            .contains("rhai script")
    );
    assert_eq!(items[0]["line"], 6, "{items:?}");
    // A small script behind the same plan line is read and compiled as before.
    write(dir.path(), "big.rhai", "// fine\n");
    assert!(json(&plan).is_empty());
}

#[test]
fn invalid_utf8_and_nul_bytes_are_located_encoding_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let utf8 = write(dir.path(), "latin1.yaml", inputs::invalid_utf8());
    let items = json(&utf8);
    assert_eq!(codes(&items), ["plan::encoding"]);
    assert_eq!(
        (items[0]["line"].as_u64(), items[0]["column"].as_u64()),
        (Some(4), Some(15))
    );
    let nul = write(dir.path(), "nul.yaml", inputs::nul_byte());
    let items = json(&nul);
    assert_eq!(codes(&items), ["plan::encoding"]);
    assert_eq!(
        (items[0]["line"].as_u64(), items[0]["column"].as_u64()),
        (Some(4), Some(13))
    );
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "bom.yaml", inputs::bom());
    let out = validate(&[], &plan);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let toml = write(
        dir.path(),
        "bom.toml",
        [
            &[0xEF, 0xBB, 0xBF][..],
            b"name = \"app\"\ntargets = [\"data\"]\n",
        ]
        .concat(),
    );
    let out = validate(&[], &toml);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn garbage_bytes_end_in_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["garbage.yaml", "garbage.toml"] {
        let plan = write(dir.path(), file, inputs::garbage(256 * 1024));
        let out = validate(&[], &plan);
        assert_eq!(
            out.code,
            1,
            "{file}: {}",
            &out.stderr[..out.stderr.len().min(2000)]
        );
    }
}

#[test]
fn many_plan_files_in_one_directory_are_all_checked() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..500 {
        write(dir.path(), &format!("p{i:04}.yaml"), inputs::HEADER);
    }
    write(dir.path(), "p9999.yaml", "name: app\n");
    let out = validate(&[], dir.path());
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout.lines().count(), 500);
    assert!(
        out.stderr
            .contains("501 plan(s) checked: 500 valid, 1 invalid"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_closed_stderr_pipe_is_not_a_panic() {
    // `backup-ns validate big.yaml 2>&1 | head -1` used to exit 101 ("failed printing to stderr").
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "keys.yaml", inputs::many_unknown_keys(500));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("backup-ns"))
        .env_clear()
        .arg("validate")
        .arg(&plan)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}");
}
