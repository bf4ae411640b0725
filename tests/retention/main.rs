//! CLI tests of `backup-ns retention simulate`: golden outputs (insta) with a pinned clock, and exit codes for bad
//! input. Every command runs with a cleared environment so no ambient TZ or BACKUP_NS_NOW leaks in.

use assert_cmd::Command;

fn backup_ns() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("backup-ns"));
    cmd.env_clear()
        .env("BACKUP_NS_NOW", "2025-01-01T12:00:00Z")
        .env("TZ", "UTC");
    cmd
}

fn stdout_of(args: &[&str]) -> String {
    let out = backup_ns().args(args).output().expect("run backup-ns");
    assert!(
        out.status.success(),
        "backup-ns {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn simulate_shows_a_calendar_and_month_end_restore_points() {
    let text = stdout_of(&[
        "retention",
        "simulate",
        "--policy",
        "daily=7,weekly=4,monthly=12",
        "--days",
        "400",
    ]);
    insta::assert_snapshot!("simulate_gfs_400_days", text);
}

#[test]
fn simulate_until_answers_what_is_left_in_march_in_the_local_zone() {
    let out = backup_ns()
        .env("TZ", "Europe/Vienna")
        .args([
            "retention",
            "simulate",
            "--policy",
            "daily=7,weekly=4,monthly=12,yearly=2",
            "--until",
            "2026-03-31",
        ])
        .output()
        .expect("run backup-ns");
    assert!(out.status.success());
    insta::assert_snapshot!(
        "simulate_until_march_vienna",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn simulate_days_policy_as_json() {
    let json = stdout_of(&[
        "retention",
        "simulate",
        "--policy",
        "days=5",
        "--days",
        "9",
        "--start",
        "2025-03-01",
        "-o",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    insta::assert_json_snapshot!("simulate_days_json", value);
}

#[test]
fn simulate_small_gfs_policy_as_json() {
    let json = stdout_of(&[
        "retention",
        "simulate",
        "--policy",
        "daily=2,weekly=1,monthly=1",
        "--days",
        "16",
        "--start",
        "2024-12-25",
        "--grace-days",
        "0",
        "-o",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    insta::assert_json_snapshot!("simulate_gfs_json", value);
}

fn failure(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = backup_ns();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().expect("run backup-ns");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_policy_is_a_usage_error_naming_the_key() {
    let (code, stderr) = failure(&["retention", "simulate", "--policy", "hourly=3"], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "unknown policy key `hourly`; expected daily, weekly, monthly, yearly or days"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unknown_tz_is_a_usage_error_naming_the_variable() {
    let (code, stderr) = failure(&["retention", "simulate"], &[("TZ", "Mars/Olympus")]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: TZ=`Mars/Olympus` is not a known IANA time zone"),
        "{stderr}"
    );
}

#[test]
fn a_bad_backup_ns_now_is_a_usage_error_naming_the_variable() {
    let (code, stderr) = failure(&["retention", "simulate"], &[("BACKUP_NS_NOW", "tomorrow")]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: BACKUP_NS_NOW=`tomorrow` is not an RFC 3339 time"),
        "{stderr}"
    );
}

#[test]
fn until_before_start_and_zero_days_are_usage_errors() {
    let (code, stderr) = failure(&["retention", "simulate", "--until", "2024-12-31"], &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "error: --until 2024-12-31 is before the first backup on 2025-01-01\n"
    );
    let (code, stderr) = failure(&["retention", "simulate", "--days", "0"], &[]);
    assert_eq!(code, 2);
    assert_eq!(stderr, "error: --days must be between 1 and 20000, got 0\n");
}

#[test]
fn tiers_left_out_of_the_policy_use_the_retain_last_defaults() {
    let out = backup_ns()
        .env("RETAIN_LAST_WEEKLY", "1")
        .args([
            "retention",
            "simulate",
            "--policy",
            "daily=2",
            "--days",
            "3",
            "-o",
            "json",
        ])
        .output()
        .expect("run backup-ns");
    assert!(out.status.success());
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(
        value["counts"],
        serde_json::json!({"daily": 2, "weekly": 1, "monthly": 12, "yearly": 0})
    );
    let (code, stderr) = failure(&["retention", "simulate"], &[("RETAIN_LAST_DAILY", "lots")]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "error: RETAIN_LAST_DAILY=`lots` is not a whole number of snapshots (0 to 100000)\n"
    );
}

/// A plan file and a profiles file in a fresh directory.
fn plan_dir(plan: &str, profiles: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("plan.yaml"), plan).expect("write plan");
    std::fs::write(dir.path().join("shared-profiles.yaml"), profiles).expect("write profiles");
    dir
}

#[test]
fn simulate_takes_policy_and_time_zone_from_the_plan() {
    let dir = plan_dir(
        "name: shop\ntargets: [data]\ntimeZone: Europe/Vienna\nretention: long\n",
        "long:\n  daily: 3\n  weekly: 2\n  monthly: 6\n  yearly: 1\n",
    );
    let plan = dir.path().join("plan.yaml");
    let profiles = dir.path().join("shared-profiles.yaml");
    let args = ["retention", "simulate", "--days", "200", "-o", "json"];
    let from_plan = backup_ns()
        .env_remove("TZ")
        .args(args)
        .arg("--plan")
        .arg(&plan)
        .arg("--profiles")
        .arg(&profiles)
        .output()
        .expect("run backup-ns");
    assert!(
        from_plan.status.success(),
        "{}",
        String::from_utf8_lossy(&from_plan.stderr)
    );
    let from_flags = backup_ns()
        .env("TZ", "Europe/Vienna")
        .args(args)
        .args(["--policy", "daily=3,weekly=2,monthly=6,yearly=1"])
        .output()
        .expect("run backup-ns");
    assert!(from_flags.status.success());
    assert_eq!(
        String::from_utf8_lossy(&from_plan.stdout),
        String::from_utf8_lossy(&from_flags.stdout),
        "the plan's profile and zone simulate exactly like the same flags"
    );
    // The same plan in UTC differs: the zone really came from the plan.
    let in_utc = stdout_of(&[
        "retention",
        "simulate",
        "--days",
        "200",
        "-o",
        "json",
        "--policy",
        "daily=3,weekly=2,monthly=6,yearly=1",
    ]);
    let value: serde_json::Value = serde_json::from_slice(&from_plan.stdout).expect("JSON");
    assert_eq!(
        value["counts"],
        serde_json::json!({"daily": 3, "weekly": 2, "monthly": 6, "yearly": 1})
    );
    assert_ne!(in_utc, String::from_utf8_lossy(&from_plan.stdout));
}

#[test]
fn simulate_with_a_days_plan_keeps_its_days() {
    let dir = plan_dir(
        "name: shop\ntargets: [data]\nretention: {days: 10}\n",
        "unused:\n  days: 3\n",
    );
    let text = stdout_of(&[
        "retention",
        "simulate",
        "--days",
        "30",
        "-o",
        "json",
        "--plan",
        dir.path().join("plan.yaml").to_str().expect("utf-8 path"),
    ]);
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(value["policy"], serde_json::json!({"days": 10}), "{value}");
    assert_eq!(value["tz"], "UTC", "no timeZone in the plan: TZ");
    let present = value["checkpoints"]
        .as_array()
        .and_then(|c| c.last())
        .map(|c| c["present"].clone());
    // Taken on the last day and the ten days before it: ten whole days old is not yet due.
    assert_eq!(present, Some(serde_json::json!(11)), "{value}");
}

#[test]
fn plan_and_policy_together_and_a_bad_plan_are_usage_errors() {
    let dir = plan_dir(
        "name: shop\ntargets: [data]\ntimeZone: Mars/Olympus\n",
        "x:\n  days: 1\n",
    );
    let plan = dir.path().join("plan.yaml");
    let plan = plan.to_str().expect("utf-8 path");
    let (code, stderr) = failure(
        &[
            "retention",
            "simulate",
            "--plan",
            plan,
            "--policy",
            "days=3",
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--policy"), "{stderr}");
    let (code, stderr) = failure(&["retention", "simulate", "--plan", plan], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("plan::unknown-time-zone")
            && stderr.contains("`Mars/Olympus` is not a known time zone")
            && stderr.contains("plan.yaml:3:11"),
        "{stderr}"
    );
    let (code, stderr) = failure(&["retention", "simulate", "--profiles", plan], &[]);
    assert_eq!(code, 2, "--profiles needs --plan: {stderr}");
}
