//! Plans beyond a single dump: multi-PVC with a rhai hook and post-hooks, group consistency, dry runs, the
//! original's BAK_* environment, and invalid plans.

use crate::databases::{pg_fixture, pg_plan};
use crate::support::postgres::Postgres;
use crate::{both, listing, pod, pvc, start};
use backup_ns::labels;

fn two_pvc_fixture() -> String {
    format!(
        "{}{}{}",
        pvc("data"),
        pvc("files"),
        pod(
            "app-0",
            "app",
            &[],
            &[("data", "/data"), ("files", "/files")]
        )
    )
}

const FLUSH: &str = r#"
// Flush the app, then record who asked: exercises exec_ok, args, vars, targets, namespace and now().
exec_ok(args.workload, args.container, ["sh", "-c", "echo flushed > /data/flushed"]);
let stamp = now();
if stamp != "2025-01-08T02:00:00Z" { fail(`unexpected now(): ${stamp}`); }
exec_ok(args.workload, args.container, `echo ${vars.team} ${namespace} ${targets.len()} > /files/meta`);
log("flushed");
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_pvc_plan_runs_a_rhai_hook_before_and_post_hooks_after_the_snapshots() {
    let env = start(&two_pvc_fixture()).await;
    std::fs::create_dir_all(env.tmp.path().join("hooks")).unwrap();
    std::fs::write(env.tmp.path().join("hooks/flush.rhai"), FLUSH).unwrap();
    let plan = env.plan(
        "multi.yaml",
        "name: multi
namespace: shop
targets: [data, files]
vars:
  team: blue
hooks:
  pre:
    - name: flush-cache
      type: rhai
      script: flush.rhai
      args:
        workload: pod/app-0
        container: app
      timeout: 1m
  post:
    - type: exec
      workload: pod/app-0
      container: app
      command: [touch, /data/post-ok]
      when: success
    - type: exec
      workload: pod/app-0
      container: app
      command: [sh, -c, 'exit 3']
      onError: continue
    - type: exec
      workload: pod/app-0
      container: app
      command: [touch, /data/post-always]
      when: always
",
    );
    let validate = env.run(&["validate", plan.to_str().unwrap()], &[]).await;
    assert_eq!(validate.status.code(), Some(0), "{}", both(&validate));

    let out = env
        .run(
            &["run", plan.to_str().unwrap(), "-o", "json"],
            &[("BACKUP_NS_NOW", "2025-01-08T02:00:00Z")],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcomes: Vec<(String, String)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (step, outcome) in [
        // A named hook is shown by its name; unnamed ones keep their position-and-type names.
        ("pre[0]/rhai/flush-cache", "ok"),
        ("post[0]/exec", "ok"),
        ("post[1]/exec", "warning"),
        ("post[2]/exec", "ok"),
    ] {
        assert!(
            outcomes.contains(&(step.to_string(), outcome.to_string())),
            "{step} {outcome}: {outcomes:?}"
        );
    }
    assert_eq!(
        report["hooks"][0]["name"], "pre[0]/rhai/flush-cache",
        "{report}"
    );
    assert_eq!(
        std::fs::read_to_string(env.pvc_dir("files").join("meta")).unwrap(),
        "blue shop 2\n"
    );
    assert_eq!(
        listing(&env.pvc_dir("data")),
        ["flushed", "post-always", "post-ok"]
    );

    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2);
    let mut pvcs: Vec<&str> = snaps
        .iter()
        .map(|s| s["metadata"]["labels"][labels::PVC].as_str().unwrap())
        .collect();
    pvcs.sort();
    assert_eq!(pvcs, ["data", "files"]);
    // Both PVCs get their own tier labels (the original only labelled the first PVC of a namespace).
    for s in &snaps {
        assert_eq!(s["metadata"]["labels"][labels::DAILY], "2025-01-08");
        assert!(
            s["metadata"]["name"]
                .as_str()
                .unwrap()
                .contains("-2025-01-08-020000-")
        );
    }
    // The snapshot has what the pre-hook wrote, not what the post-hooks wrote afterwards.
    let data_snap = snaps
        .iter()
        .find(|s| s["metadata"]["labels"][labels::PVC] == "data")
        .unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let restored = env.restore(&data_snap, "data-restored").await;
    assert_eq!(listing(&restored), ["flushed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_consistency_creates_one_group_snapshot_and_labels_each_member() {
    let env = start(&two_pvc_fixture()).await;
    std::fs::write(env.pvc_dir("data").join("a"), "A").unwrap();
    std::fs::write(env.pvc_dir("files").join("b"), "B").unwrap();
    let plan = env.plan(
        "group.yaml",
        "name: grouped\nnamespace: shop\ntargets: [data, files]\nsnapshot:\n  consistency: group\n  readyTimeout: 1m\n",
    );
    let dry = env
        .run(&["run", plan.to_str().unwrap(), "--dry-run"], &[])
        .await;
    assert_eq!(dry.status.code(), Some(0), "{}", both(&dry));
    let yaml = String::from_utf8_lossy(&dry.stdout);
    assert!(yaml.contains("kind: VolumeGroupSnapshot"), "{yaml}");
    assert!(yaml.contains("backup-ns.sh/group:"), "{yaml}");
    assert!(
        env.sim
            .list("volumegroupsnapshots", Some("shop"))
            .is_empty()
    );

    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let groups = env.sim.list("volumegroupsnapshots", Some("shop"));
    assert_eq!(groups.len(), 1, "{groups:#?}");
    assert_eq!(groups[0]["metadata"]["labels"][labels::PLAN], "grouped");
    let members = env.snapshots();
    assert_eq!(members.len(), 2, "{members:#?}");
    for m in &members {
        let l = &m["metadata"]["labels"];
        let pvc = l[labels::PVC].as_str().expect("member has its pvc label");
        assert_eq!(l[labels::PLAN], "grouped");
        assert!(l[labels::DAILY].is_string());
        let restored = env
            .restore(
                m["metadata"]["name"].as_str().unwrap(),
                &format!("{pvc}-back"),
            )
            .await;
        let expected = if pvc == "data" { ["a"] } else { ["b"] };
        assert_eq!(listing(&restored), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_checks_the_database_prints_the_snapshot_and_writes_nothing() {
    let pg = Postgres::start();
    pg.create_database("shop");
    let env = start(&pg_fixture(&pg, "shop")).await;
    let plan = env.plan("p.yaml", &pg_plan(pg.port, ""));
    let out = env
        .run(&["run", plan.to_str().unwrap(), "--dry-run"], &[])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kind: VolumeSnapshot"), "{stdout}");
    assert!(
        stdout.contains("persistentVolumeClaimName: pgdata"),
        "{stdout}"
    );
    assert!(stdout.contains("backup-ns.sh/plan: shop"), "{stdout}");
    assert!(stdout.contains("dry run OK"), "{stdout}");
    assert!(env.snapshots().is_empty());
    assert!(listing(&env.pvc_dir("pgdata")).is_empty());
    assert!(env.events_about("pgdata").await.is_empty());

    // The in-container check really runs: a wrong port fails the dry run.
    let bad = env.plan("bad.yaml", &pg_plan(crate::support::free_port(), ""));
    let out = env
        .run(&["run", bad.to_str().unwrap(), "--dry-run"], &[])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SELECT 1 failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_plan_the_originals_bak_variables_drive_the_run_through_the_create_alias() {
    let env = start(&pvc("data")).await;
    let out = env
        .run(
            &["create"],
            &[
                ("BAK_NAMESPACE", "shop"),
                ("BAK_PVC_NAME", "data"),
                ("BAK_DB_SKIP", "true"),
                ("BAK_LABEL_VS_TYPE", "cronjob"),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["metadata"]["labels"][labels::TYPE], "cronjob");
    let env_config = snaps[0]["metadata"]["annotations"][labels::ANNOTATION_ENV_CONFIG]
        .as_str()
        .expect("env-config annotation");
    assert!(env_config.contains("BAK_PVC_NAME='data'"), "{env_config}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_plan_exits_2_with_a_diagnostic_and_touches_nothing() {
    let env = start(&pvc("data")).await;
    let plan = env.plan(
        "bad.yaml",
        "name: Bad_Name\ntargets: [data]\nretension: 3\n",
    );
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("retension"), "{stderr}");
    assert!(
        stderr.contains("the plan is invalid; nothing was done"),
        "{stderr}"
    );
    assert!(env.snapshots().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_push_their_outcome_and_a_failure_never_claims_a_success_time() {
    let env = start(&pvc("data")).await;
    let (url, seen) = crate::support::pushgateway::start(200).await;
    let bak = |pvc: &'static str| {
        [
            ("BAK_NAMESPACE", "shop"),
            ("BAK_PVC_NAME", pvc),
            ("BAK_DB_SKIP", "true"),
            ("BACKUP_NS_NOW", "2025-03-01T00:15:00Z"),
        ]
    };

    let ok = env.run(&["run", "--pushgateway", &url], &bak("data")).await;
    assert_eq!(ok.status.code(), Some(0), "{}", both(&ok));
    let failed = env
        .run(&["run", "--pushgateway", &url], &bak("missing"))
        .await;
    assert_eq!(failed.status.code(), Some(1), "{}", both(&failed));

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for push in &seen {
        // POST: only the pushed names are replaced, so the failure keeps the group's last success time.
        assert_eq!(push.method, "POST");
        assert_eq!(
            push.path,
            "/metrics/job/backup-ns-run/namespace/shop/plan/backup"
        );
    }
    let success_time = "backup_ns_run_last_success_timestamp_seconds 1740788100\n";
    assert!(
        seen[0].body.contains("backup_ns_run_success 1\n"),
        "{}",
        seen[0].body
    );
    assert!(seen[0].body.contains(success_time), "{}", seen[0].body);
    assert!(
        seen[0].body.contains("backup_ns_run_snapshots_created 1\n"),
        "{}",
        seen[0].body
    );
    assert!(
        seen[1].body.contains("backup_ns_run_success 0\n"),
        "{}",
        seen[1].body
    );
    assert!(
        seen[1].body.contains("backup_ns_run_exit_code 1\n"),
        "{}",
        seen[1].body
    );
    assert!(
        !seen[1].body.contains("last_success_timestamp"),
        "{}",
        seen[1].body
    );
}
