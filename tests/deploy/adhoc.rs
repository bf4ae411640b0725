//! `backup-ns adhoc --follow` against the installed static manifests: it creates the Job from the tenant's
//! CronJob, kube-sim runs the Job's pod (the built backup-ns, in-cluster, as the tenant ServiceAccount), the pod's
//! log streams to the caller's stdout while it runs, and the exit code mirrors the Job: 0 for a Job that
//! completed, 1 for one that failed (here: its database hook cannot reach the server).

use std::time::Duration;

use chrono::NaiveDate;
use serde_json::Value;

use super::rbac_model::{TENANT, tenant_manifest};
use super::stage::{Stage, point_hooks, vienna};
use super::{docs, text};

/// `backup-ns adhoc --follow` as the cluster admin (the user who starts it); bounded in time.
async fn adhoc_follow(stage: &Stage, from: &str) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_backup-ns"));
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", stage.home())
        .env("TZ", "UTC")
        .env("KUBECONFIG", stage.sim.kubeconfig_path())
        .args([
            "adhoc",
            "-n",
            TENANT,
            "--from",
            from,
            "--follow",
            "--timeout",
            "60s",
        ])
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("backup-ns adhoc finished within 90s")
        .expect("backup-ns starts")
}

/// The created Job's name, from adhoc's first line (`job.batch/NAME created ...`).
fn job_name(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("job.batch/"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no job line: {}", text(out)))
        .to_owned()
}

fn job_condition(stage: &Stage, name: &str) -> String {
    let job = stage
        .sim
        .get("batch/v1", "jobs", Some(TENANT), name)
        .unwrap_or_else(|| panic!("job {name} exists"));
    job.pointer("/status/conditions/0/type")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adhoc_follow_streams_the_jobs_log_and_its_exit_code_mirrors_the_job() {
    let day = NaiveDate::from_ymd_opt(2025, 6, 2).expect("date");
    let stage = Stage::start(vienna(day, 14, 0)).await;
    let tenant = stage.localize(&tenant_manifest(TENANT));

    // A second CronJob whose plan's hook points at a port where no server listens: its Job fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port();
    let mut broken = Vec::new();
    for mut d in docs(&tenant) {
        match d["kind"].as_str() {
            Some("ConfigMap") => {
                d["metadata"]["name"] = "backup-ns-plan-broken".into();
                let plan = d["data"]["plan.yaml"].as_str().expect("plan").to_owned();
                let plan = plan
                    .lines()
                    .filter(|l| {
                        !l.trim_start().starts_with("host:") && !l.trim_start().starts_with("port:")
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                d["data"]["plan.yaml"] = point_hooks(&plan, "postgres", closed).into();
            }
            Some("CronJob") => {
                d["metadata"]["name"] = "backup-broken".into();
                let pod = &mut d["spec"]["jobTemplate"]["spec"]["template"]["spec"];
                pod["volumes"][0]["configMap"]["name"] = "backup-ns-plan-broken".into();
            }
            _ => continue,
        }
        broken.push(serde_json::to_string(&d).expect("JSON"));
    }
    assert_eq!(
        broken.len(),
        2,
        "the tenant manifest's ConfigMap and CronJob"
    );
    // The controller file defines the ClusterRole the tenant's preflight reads the cluster with.
    broken.splice(0..0, [Stage::controller_static(), tenant]);
    stage.apply(&broken).await;

    // A Job that completes: exit 0, the pod's log on stdout, an adhoc snapshot.
    let ok = adhoc_follow(&stage, "cronjob/backup").await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let name = job_name(&ok);
    assert_eq!(job_condition(&stage, &name), "Complete", "{}", text(&ok));
    let stdout = String::from_utf8_lossy(&ok.stdout);
    // The streamed log is the pod's own: its JSON lines (--log-format json) name the snapshot it cut.
    let snapshots = stage.sim.list("volumesnapshots", Some(TENANT));
    assert_eq!(snapshots.len(), 1, "{snapshots:#?}");
    let vs = &snapshots[0];
    assert_eq!(vs["metadata"]["labels"]["backup-ns.sh/type"], "adhoc");
    let vs_name = vs["metadata"]["name"].as_str().expect("name");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with('{') && l.contains(vs_name)),
        "the pod's log names {vs_name}: {}",
        text(&ok)
    );
    assert!(
        stdout.lines().last().unwrap_or("").contains("completed"),
        "{}",
        text(&ok)
    );

    // A Job that fails: exit 1, the hook's error streamed, the Job Failed.
    let failed = adhoc_follow(&stage, "cronjob/backup-broken").await;
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let name = job_name(&failed);
    assert_eq!(job_condition(&stage, &name), "Failed", "{}", text(&failed));
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with('{') && l.contains(&closed.to_string())),
        "the pod's log shows the hook's failure: {}",
        text(&failed)
    );
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains(&format!("Job {TENANT}/{name} failed")),
        "{}",
        text(&failed)
    );
    assert_eq!(
        stage.sim.list("volumesnapshots", Some(TENANT)).len(),
        1,
        "the failed Job cut no snapshot"
    );
}
