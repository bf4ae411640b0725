//! Two tenants on one node: deploy/static/backup-ns.yaml installed in two namespaces, both CronJobs firing at
//! 00:15, both pods mounting the same hostPath lock dir, both plans with `lock.slots: 1`. The node-level lock
//! serialises them: from the pods' own JSON logs, the second run was already waiting while the first held the slot,
//! took it only after the first released it, and both backups succeed.
//!
//! Each plan gets one more pre-hook, a 1 s `sleep` in the app's container, so that a run holds the slot long enough
//! for both pods to be alive together (without it the first run could end before the second pod starts, and
//! nothing would be contended).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::rbac_model::{OTHER, TENANT, tenant_manifest};
use super::stage::{Stage, vienna};

/// When one run waited for, held and released the lock, from its log.
#[derive(Debug)]
struct Hold {
    pod: String,
    /// When it started to wait for a slot (the lock step's start).
    waiting: DateTime<Utc>,
    /// When it held a slot (the lock step's end).
    took: DateTime<Utc>,
    /// When it released it (the unlock step's end).
    released: DateTime<Utc>,
}

fn at(line: &Value) -> DateTime<Utc> {
    line["timestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("a timestamp in {line}"))
        .with_timezone(&Utc)
}

/// The lock hold of the one backup pod of `ns`, from the JSON lines of its log.
fn hold(stage: &Stage, ns: &str) -> Hold {
    let pods: Vec<Value> = stage
        .sim
        .list("pods", Some(ns))
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["job-name"].is_string())
        .collect();
    assert_eq!(pods.len(), 1, "one backup pod in {ns}");
    let pod = pods[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let log = stage.sim.shared().logs.read(ns, &pod, "backup", 0);
    let lines: Vec<Value> = String::from_utf8_lossy(&log.bytes)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let step = |name: &str| {
        lines
            .iter()
            .find(|l| l["step"] == name && l["outcome"] == "ok" && l["duration_ms"].is_u64())
            .unwrap_or_else(|| panic!("no {name} step in {pod}'s log: {lines:#?}"))
    };
    let lock = step("lock");
    assert!(
        lock["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("took slot 1 ")),
        "{lock}"
    );
    let took = at(lock);
    let waited = chrono::Duration::milliseconds(lock["duration_ms"].as_i64().expect("ms"));
    let released = at(step("unlock"));
    Hold {
        pod,
        waiting: took - waited,
        took,
        released,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_firing_together_on_one_slot_run_one_after_the_other_and_both_succeed() {
    let day = NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
    let stage = Stage::start(vienna(day, 0, 0)).await;
    stage.pg.create_database(OTHER);
    let env = stage.pg.container_env(OTHER);
    let container = ("postgres", "postgres:17", "/var/lib/postgresql/data");
    stage.app(OTHER, "Deployment", "app-base", container, &env);

    let lock = "      dir: /mnt/host-backup-locks\n";
    let snapshot = "    snapshot:\n";
    let manifests: Vec<String> = [TENANT, OTHER]
        .iter()
        .map(|ns| {
            let text = stage.localize(&tenant_manifest(ns));
            assert!(
                text.contains(lock) && text.contains(snapshot),
                "the plan moved"
            );
            text.replace(lock, &format!("{lock}      slots: 1\n"))
                .replace(
                    snapshot,
                    &format!(
                        "        - type: exec\n          workload: deployment/app-base\n          \
                     container: postgres\n          command: [sleep, \"1\"]\n{snapshot}"
                    ),
                )
        })
        .collect();
    let mut all = vec![Stage::controller_static()];
    all.extend(manifests);
    stage.apply(&all).await;

    // Both CronJobs are due at the same minute; both Jobs complete.
    let backup = vienna(day, 0, 15);
    stage.night(TENANT, "backup", backup).await;
    stage.night(OTHER, "backup", backup).await;

    let mut holds = [hold(&stage, TENANT), hold(&stage, OTHER)];
    holds.sort_by_key(|h| h.took);
    let [first, second] = &holds;
    assert!(
        first.released <= second.took,
        "the slot was held by both at once: {holds:#?}"
    );
    assert!(
        second.waiting < first.released,
        "the second run ({}) was waiting while the first ({}) held the slot: {holds:#?}",
        second.pod,
        first.pod
    );
    for ns in [TENANT, OTHER] {
        assert_eq!(
            stage.sim.list("volumesnapshots", Some(ns)).len(),
            1,
            "{ns} has its snapshot"
        );
    }
}
