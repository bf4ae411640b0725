//! The commands as a user runs them: the real binary against the simulator, clean environment, pinned clock.

use crate::support::{Env, Seed, labels, names, namespace_doc, seed_docs, start, utc};
use std::process::Output;

/// Runs `backup-ns ARGS --kubeconfig SIM` with only BACKUP_NS_NOW and TZ set (the sim keeps serving meanwhile).
pub async fn backup_ns(env: &Env, args: &[&str], now: &str) -> Output {
    backup_ns_with(env, args, now, &[]).await
}

/// [`backup_ns`] with `vars` added to the environment (the original's `BAK_*` variables).
pub async fn backup_ns_with(env: &Env, args: &[&str], now: &str, vars: &[(&str, &str)]) -> Output {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    full.push("--kubeconfig".into());
    full.push(env.sim.kubeconfig_path().display().to_string());
    let now = now.to_string();
    let home = env.tmp.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin!("backup-ns"))
            .env_clear()
            .env("HOME", home)
            .env("BACKUP_NS_NOW", now)
            .env("TZ", "UTC")
            .envs(vars)
            .args(&full)
            .output()
            .expect("run backup-ns")
    })
    .await
    .unwrap()
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A namespace with `n` managed daily snapshots, all but the newest past their delete-after.
pub fn doomed_namespace(env: &Env, ns: &str, n: i64) {
    let mut yaml = namespace_doc(ns);
    for i in 0..n {
        let created = utc("2025-02-28T00:30:00Z") - chrono::Duration::days(i);
        let mut l = labels(&[
            ("backup-ns.sh/retain", "daily_weekly_monthly"),
            ("backup-ns.sh/pvc", "data"),
        ]);
        if i == 0 {
            l.insert(
                "backup-ns.sh/daily".into(),
                created.date_naive().to_string(),
            );
        } else {
            l.insert("backup-ns.sh/delete-after".into(), "2025-02-01".into());
        }
        yaml.push_str("---\n");
        yaml.push_str(&seed_docs(&Seed {
            namespace: ns,
            name: &format!("data-{i:03}"),
            pvc: "data",
            labels: l,
            retention: None,
            created,
            policy: "Delete",
        }));
    }
    env.sim.apply_yaml(&yaml).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_dry_run_writes_nothing_and_lists_once_per_page() {
    let env = start().await;
    doomed_namespace(&env, "a", 4);
    doomed_namespace(&env, "b", 4);
    env.sim.requests().reset();
    let out = backup_ns(
        &env,
        &[
            "controller",
            "-A",
            "--dry-run",
            "--force",
            "--page-size",
            "3",
            "-o",
            "json",
        ],
        "2025-03-01T04:30:00Z",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["retention"]["counts"]["deleted"], 6, "{report:#}");
    assert_eq!(report["retention"]["dry_run"], true);
    let r = env.sim.requests();
    assert_eq!(
        r.count("list", "volumesnapshots"),
        3,
        "ceil(8 / 3) pages: {:?}",
        r.snapshot()
    );
    for verb in ["patch", "delete", "create", "update"] {
        for res in ["volumesnapshots", "volumesnapshotcontents"] {
            assert_eq!(r.count(verb, res), 0, "{verb} {res} in a dry run");
        }
    }
    assert_eq!(names(&env.sim, "a").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_plan_gives_a_reason_per_snapshot_as_table_and_json() {
    let env = start().await;
    doomed_namespace(&env, "shop", 3);
    let out = backup_ns(
        &env,
        &["retention", "plan", "-n", "shop"],
        "2025-03-01T04:30:00Z",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("NAMESPACE  PVC   SNAPSHOT"), "{table}");
    assert!(
        table.contains("delete-after 2025-02-01 is before today 2025-03-01"),
        "{table}"
    );
    let out = backup_ns(
        &env,
        &["retention", "plan", "-n", "shop", "-o", "json"],
        "2025-03-01T04:30:00Z",
    )
    .await;
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Two of three managed snapshots would go: the guard withholds them, and the plan says why.
    let withheld: Vec<&serde_json::Value> = plan["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "report" && d["problem"]["kind"] == "guard_withheld")
        .collect();
    assert_eq!(withheld.len(), 2, "{plan:#}");
    assert!(withheld.iter().all(|d| {
        d["reason"]
            .as_str()
            .is_some_and(|r| r.contains("is before today 2025-03-01"))
    }));
    assert_eq!(plan["guards"][0]["tripped"], true);
    let out = backup_ns(
        &env,
        &["retention", "plan", "-n", "shop", "--force", "-o", "json"],
        "2025-03-01T04:30:00Z",
    )
    .await;
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let deletes = plan["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "delete")
        .count();
    assert_eq!(deletes, 2, "{plan:#}");
    assert_eq!(names(&env.sim, "shop").len(), 3, "plan writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_apply_only_moves_tier_labels() {
    let env = start().await;
    let mut yaml = namespace_doc("shop");
    for i in 0..9i64 {
        let created = utc("2025-02-28T00:30:00Z") - chrono::Duration::days(i);
        yaml.push_str("---\n");
        yaml.push_str(&seed_docs(&Seed {
            namespace: "shop",
            name: &format!("data-{i}"),
            pvc: "data",
            labels: labels(&[
                ("backup-ns.sh/retain", "daily_weekly_monthly"),
                ("backup-ns.sh/pvc", "data"),
                ("backup-ns.sh/daily", &created.date_naive().to_string()),
            ]),
            retention: None,
            created,
            policy: "Delete",
        }));
    }
    env.sim.apply_yaml(&yaml).unwrap();
    let out = backup_ns(
        &env,
        &["retention", "apply", "-n", "shop"],
        "2025-03-01T04:30:00Z",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = env.sim.list("volumesnapshots", Some("shop"));
    let with_daily = listed
        .iter()
        .filter(|v| !v["metadata"]["labels"]["backup-ns.sh/daily"].is_null())
        .count();
    let marked = listed
        .iter()
        .filter(|v| !v["metadata"]["labels"]["backup-ns.sh/delete-after"].is_null())
        .count();
    assert_eq!((listed.len(), with_daily, marked), (9, 7, 0));
}

#[test]
fn every_retention_command_has_examples_in_its_help() {
    for cmd in [
        vec!["retention", "apply"],
        vec!["retention", "plan"],
        vec!["prune"],
        vec!["sync-labels"],
        vec!["rebind"],
        vec!["controller"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin!("backup-ns"))
            .env_clear()
            .args(&args)
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && help.contains("Examples:"),
            "{cmd:?}: {help}"
        );
    }
}

#[test]
fn the_controller_cronjob_args_and_env_parse() {
    // deploy/static/backup-ns-controller.yaml runs `controller -A --log-format json` with its ConfigMap as env; a bad
    // kubeconfig then fails at connect (exit 1), not at parsing (exit 2).
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/static/backup-ns-controller.yaml"
    ))
    .unwrap();
    assert!(manifest.contains(r#"args: ["controller", "-A", "--log-format", "json"]"#));
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin!("backup-ns"))
        .env_clear()
        .env("RETAIN_LAST_DAILY", "7")
        .env("RETAIN_LAST_WEEKLY", "4")
        .env("RETAIN_LAST_MONTHLY", "12")
        .env("BACKUP_NS_GUARD_MAX_SHARE", "50")
        .env("TZ", "Europe/Vienna")
        .args([
            "controller",
            "-A",
            "--log-format",
            "json",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_pushes_its_outcome_but_not_for_a_dry_run() {
    let env = start().await;
    doomed_namespace(&env, "a", 3);
    let (url, seen) = crate::pushgateway::start(200).await;
    let now = "2025-03-01T04:30:00Z";

    let dry = backup_ns(
        &env,
        &[
            "controller",
            "-A",
            "--dry-run",
            "--force",
            "--pushgateway",
            &url,
        ],
        now,
    )
    .await;
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(seen.lock().unwrap().is_empty(), "a dry run pushes nothing");

    let out = backup_ns(
        &env,
        &[
            "controller",
            "-A",
            "--force",
            "--delete-pause",
            "0s",
            "--pushgateway",
            &url,
        ],
        now,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let body = &seen[0].body;
    // POST replaces only the pushed metric names, so earlier groups' other series survive.
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/metrics/job/backup-ns-controller");
    assert!(body.contains("backup_ns_controller_success 1\n"), "{body}");
    assert!(
        body.contains("backup_ns_controller_snapshots_deleted 2\n"),
        "{body}"
    );
    let finished = utc(now).timestamp();
    assert!(
        body.contains(&format!(
            "backup_ns_controller_last_completion_timestamp_seconds {finished}\n"
        )),
        "the completion time follows BACKUP_NS_NOW: {body}"
    );
}
