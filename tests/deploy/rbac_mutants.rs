//! RBAC minimality as a mutation test. Every mutant of a shipped role removes one verb, one resource or one API
//! group from one rule (a rule left empty goes away): the tenant Role of deploy/static/backup-ns.yaml and the
//! ClusterRoles of deploy/static/backup-ns-controller.yaml. Each mutant gets one simulated night of the static
//! install (the scenario of schedules.rs, shortened): the tenant's CronJob backs up; for the tenant Role's mutants
//! the verify CronJob of deploy/static/backup-ns-verify.yaml (made daily) then proves the backup by restoring it
//! into a real PostgreSQL and must leave no claim or pod behind; the controller's CronJob sweeps a due snapshot
//! and a crashed verify run's claim and pod; the exporter serves what it watches. A mutant must make that night
//! fail; a rule whose
//! mutant survives is listed with the reason it stays (in `rbac_model::UNNEEDED_ON_BOTH`, or in [`UNNEEDED`] when
//! only kube-sim lets it survive), and the lists must match exactly, so neither an
//! unneeded grant nor a stale excuse goes unnoticed.
//!
//! The mutants share one simulator in sequence, which is sound because kube-sim authorizes each request against
//! the stored roles: a mutant is applied, its night runs, the shipped role is restored. The exporter is the one
//! long-running process, so it is restarted around each of its own role's mutants (a watch is authorized when it
//! starts). The refusals (the tenant's 403 on another namespace's snapshots and on every content write) are in
//! rbac.rs.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use serde_json::Value;

use super::docs;
use super::rbac_model::{
    CONTROLLER, REBIND, TENANT, TENANT_ROLE, UNNEEDED_ON_BOTH, WAIT_WATCH, mutants_of,
    tenant_manifest,
};
use super::stage::{Stage, vienna};

const SYSTEM: &str = "backup-ns-system";

/// Mutants that leave the night intact on kube-sim only, beyond [`UNNEEDED_ON_BOTH`]: (role, mutant, reason).
const UNNEEDED: &[(&str, &str, &str)] = &[
    (
        TENANT_ROLE,
        "rule 7 (volumesnapshots): verb \"watch\"",
        WAIT_WATCH,
    ),
    (CONTROLLER, "rule 0 (volumesnapshots): verb \"get\"", REBIND),
];

/// The Job `job` of `ns` once finished (true: complete), or None when it has not finished within `secs`.
async fn outcome(stage: &Stage, ns: &str, job: &str, secs: u64) -> Option<bool> {
    for _ in 0..secs * 20 {
        if let Some(j) = stage.sim.get("batch/v1", "jobs", Some(ns), job)
            && let Some(c) = j.pointer("/status/conditions/0")
            && c["status"] == "True"
        {
            return Some(c["type"] == "Complete");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Fires `ns/cronjob` at `at`; Err when its Job fails or hangs for `secs` (a hung Job and its pod are deleted, so
/// that the next night's run is not held back by `concurrencyPolicy: Forbid`).
async fn fire(
    stage: &Stage,
    ns: &str,
    cronjob: &str,
    at: chrono::DateTime<Utc>,
    secs: u64,
) -> Result<(), String> {
    stage.sim.clock().set(at + chrono::Duration::minutes(1));
    let job = format!("{cronjob}-{}", at.timestamp() / 60);
    match outcome(stage, ns, &job, secs).await {
        Some(true) => Ok(()),
        Some(false) => {
            let log = stage
                .sim
                .list("pods", Some(ns))
                .iter()
                .filter(|p| p["metadata"]["labels"]["job-name"] == job.as_str())
                .filter_map(|p| {
                    let pod = p["metadata"]["name"].as_str()?;
                    let c = p["spec"]["containers"][0]["name"].as_str()?;
                    let bytes = stage.sim.shared().logs.read(ns, pod, c, 0).bytes;
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let tail: String = text.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
                    Some(tail)
                })
                .collect::<String>();
            Err(format!("job {ns}/{job} failed: {log}"))
        }
        None => {
            for pod in stage.sim.list("pods", Some(ns)) {
                if pod["metadata"]["labels"]["job-name"] == job.as_str() {
                    let name = pod["metadata"]["name"].as_str().expect("name");
                    let _ = stage.sim.delete("v1", "pods", Some(ns), name);
                }
            }
            let _ = stage.sim.delete("batch/v1", "jobs", Some(ns), &job);
            Err(format!("job {ns}/{job} did not finish within {secs}s"))
        }
    }
}

/// The exporter's pod and the address its process listens on (from its log), once it is up.
async fn exporter(stage: &Stage, not: Option<&str>) -> (String, String) {
    for _ in 0..200 {
        for pod in stage.sim.list("pods", Some(SYSTEM)) {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            if pod["metadata"]["labels"]["app.kubernetes.io/component"] != "exporter"
                || Some(name) == not
                || pod["metadata"]["deletionTimestamp"].is_string()
            {
                continue;
            }
            let log = stage.sim.shared().logs.read(SYSTEM, name, "exporter", 0);
            let log = String::from_utf8_lossy(&log.bytes);
            if let Some(addr) = log
                .lines()
                .find_map(|l| l.strip_prefix("backup-ns exporter listening on http://"))
                .and_then(|rest| rest.strip_suffix("/metrics"))
            {
                return (name.to_owned(), addr.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the exporter did not start listening within 10s");
}

/// Deletes the exporter's pod; its Deployment starts a new process, whose address is returned.
async fn restart_exporter(stage: &Stage, pod: &str) -> (String, String) {
    stage
        .sim
        .delete("v1", "pods", Some(SYSTEM), pod)
        .expect("delete the exporter pod");
    exporter(stage, Some(pod)).await
}

async fn metrics(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if conn.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut body = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut body)).await;
    body
}

/// The run label of a verify run's objects.
const RUN_LABEL: &str = "backup-ns.sh/verify-run";

/// The names of `TENANT`'s pods and claims that carry the verify run label.
fn verify_objects(sim: &kube_sim::Sim) -> Vec<String> {
    ["pods", "persistentvolumeclaims"]
        .iter()
        .flat_map(|plural| {
            sim.list(plural, Some(TENANT))
                .into_iter()
                .filter(|o| o["metadata"]["labels"][RUN_LABEL].is_string())
                .map(move |o| {
                    format!(
                        "{plural}/{}",
                        o["metadata"]["name"].as_str().unwrap_or_default()
                    )
                })
        })
        .collect()
}

/// A crashed verify run's claim and pod, created at 03:00 of `day` with a 1h timeout: the verify run at 03:45
/// leaves them (its run may still be going), the controller at 04:30 must remove them.
fn crashed_verify_run(day: NaiveDate) -> String {
    let created = vienna(day, 3, 0).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let meta = format!(
        "metadata:\n  name: backup-ns-verify-crashed\n  namespace: {TENANT}\n  creationTimestamp: \"{created}\"\n  \
         labels: {{{RUN_LABEL}: crashed}}\n  annotations: {{backup-ns.sh/verify-timeout: 1h}}\n"
    );
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\n{meta}spec:\n  accessModes: [ReadWriteOnce]\n  \
         resources: {{requests: {{storage: 1Gi}}}}\n---\napiVersion: v1\nkind: Pod\n{meta}spec:\n  \
         containers: [{{name: verify, image: postgres:17}}]\n"
    )
}

/// One night of the scenario on `day` (`verify`: with the verify CronJob); Err says what went wrong.
async fn night(
    stage: &Stage,
    day: NaiveDate,
    exporter_addr: &str,
    verify: bool,
) -> Result<(), String> {
    let sim = &stage.sim;
    sim.apply_yaml(&crashed_verify_run(day))
        .expect("a crashed verify run's objects");
    // A snapshot that is due: retained by days and past its delete-after. The controller must delete it and its
    // content (which the Retain class makes survive a plain snapshot deletion).
    let due = format!("due-{day}");
    sim.apply_yaml(&format!(
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: {due}\n  namespace: \
         {TENANT}\n  labels:\n    backup-ns.sh/retain: days\n    backup-ns.sh/pvc: data\n    \
         backup-ns.sh/delete-after: \"{}\"\nspec:\n  source:\n    persistentVolumeClaimName: data\n",
        day - chrono::Duration::days(2)
    ))
    .expect("the due snapshot");
    let mut content = None;
    for _ in 0..200 {
        content = sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some(TENANT),
                &due,
            )
            .and_then(|v| {
                v["status"]["boundVolumeSnapshotContentName"]
                    .as_str()
                    .map(str::to_owned)
            });
        if content.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let content = content.expect("the due snapshot is bound");
    let succeeded = |sim: &kube_sim::Sim| {
        sim.list("events", Some(TENANT))
            .iter()
            .filter(|e| e["reason"] == "BackupSucceeded")
            .count()
    };
    let events = succeeded(sim);

    fire(stage, TENANT, "backup", vienna(day, 0, 15), 10).await?;
    let tonight = format!("data-{day}-");
    let snapshot = sim
        .list("volumesnapshots", Some(TENANT))
        .into_iter()
        .find(|s| {
            s["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&tonight))
        })
        .ok_or("no snapshot tonight")?;
    if snapshot["status"]["readyToUse"] != true
        || snapshot["metadata"]["labels"]["backup-ns.sh/daily"] != day.to_string()
    {
        return Err(format!(
            "tonight's snapshot is not ready and labelled: {snapshot:#}"
        ));
    }
    if succeeded(sim) <= events {
        return Err("no BackupSucceeded event".into());
    }

    if verify {
        fire(stage, TENANT, "backup-verify", vienna(day, 3, 45), 60).await?;
        let verified = sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some(TENANT),
                snapshot["metadata"]["name"].as_str().unwrap_or_default(),
            )
            .and_then(|s| {
                s["metadata"]["annotations"]["backup-ns.sh/verify-result"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        if !verified.starts_with("passed: ") {
            return Err(format!("tonight's snapshot was not verified: `{verified}`"));
        }
        let left: Vec<String> = verify_objects(sim)
            .into_iter()
            .filter(|o| !o.ends_with("/backup-ns-verify-crashed"))
            .collect();
        if !left.is_empty() {
            return Err(format!("the verify run left {left:?} behind"));
        }
    }

    fire(
        stage,
        SYSTEM,
        "backup-ns-controller",
        vienna(day, 4, 30),
        10,
    )
    .await?;
    let left = verify_objects(sim);
    if !left.is_empty() {
        return Err(format!(
            "the controller did not remove the crashed verify run's {left:?}"
        ));
    }
    if sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some(TENANT),
            &due,
        )
        .is_some()
    {
        return Err(format!("the due snapshot {due} was not deleted"));
    }
    if sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshotcontents",
            None,
            &content,
        )
        .is_some()
    {
        return Err(format!(
            "the due snapshot's content {content} was left behind"
        ));
    }

    // The exporter has seen every snapshot the night left.
    let want = format!(
        "backup_ns_exporter_snapshots_seen {}\n",
        sim.list("volumesnapshots", None).len()
    );
    // Twice in a row, 200 ms apart: a role without `watch` lets the exporter list again after each refused watch
    // (synced for the few milliseconds before the next refusal, then backing off for seconds), and one lucky
    // poll in such a window must not pass for a live watch.
    let mut live = 0;
    for _ in 0..40 {
        let body = metrics(exporter_addr).await;
        if body.contains("backup_ns_exporter_synced 1\n") && body.contains(&want) {
            live += 1;
            if live == 2 {
                return Ok(());
            }
        } else {
            live = 0;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("the exporter does not show {want:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_role_mutant_breaks_a_night_except_the_listed_ones() {
    let first = NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
    let stage = Stage::start(vienna(first, 0, 0)).await;
    let listen = "\"--listen\", \":9153\"";
    let controller = Stage::controller_static();
    assert!(controller.contains(listen), "the exporter's args moved");
    // Several simulations run at once on this machine: the exporter listens on a free local port.
    let controller = controller.replace(listen, "\"--listen\", \"127.0.0.1:0\"");
    let tenant = stage.localize(&tenant_manifest(TENANT));
    // The weekly verify CronJob, daily here so that each night can run it; only the nights that fire it at 03:45
    // run it (a night without verify moves the clock past 03:45 to the controller's 04:30, beyond the deadline).
    let weekly = "schedule: \"45 3 * * 0\"";
    let verify = super::read("deploy/static/backup-ns-verify.yaml");
    assert!(
        verify.contains(weekly),
        "the verify CronJob's schedule moved"
    );
    let verify = verify
        .replace("namespace: my-app", &format!("namespace: {TENANT}"))
        .replace(
            weekly,
            "schedule: \"45 3 * * *\"\n  startingDeadlineSeconds: 600",
        );
    stage
        .apply(&[controller.clone(), tenant.clone(), verify])
        .await;
    let (mut exporter_pod, mut addr) = exporter(&stage, None).await;

    let shipped: Vec<Value> = docs(&tenant)
        .into_iter()
        .chain(docs(&controller))
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .collect();
    assert_eq!(shipped.len(), 4, "the tenant Role and three ClusterRoles");

    // The scenario holds with the shipped roles (two nights, so the guard sees more than the due snapshot).
    let mut day = first;
    for _ in 0..2 {
        if let Err(why) = night(&stage, day, &addr, true).await {
            panic!(
                "night {day} fails with the shipped roles: {why}\n{}",
                super::stage::pod_logs(&stage.sim, TENANT)
            );
        }
        day += chrono::Duration::days(1);
    }

    let mut survivors = BTreeSet::new();
    let mut killed = Vec::new();
    for role in &shipped {
        for mutant in mutants_of(role) {
            stage
                .sim
                .apply_yaml(&mutant.doc.to_string())
                .expect("apply the mutant");
            let exporter_role = mutant.role == "ClusterRole/backup-ns-exporter";
            if exporter_role {
                (exporter_pod, addr) = restart_exporter(&stage, &exporter_pod).await;
            }
            let result = night(&stage, day, &addr, mutant.role == TENANT_ROLE).await;
            day += chrono::Duration::days(1);
            stage
                .sim
                .apply_yaml(&role.to_string())
                .expect("restore the role");
            if exporter_role {
                (exporter_pod, addr) = restart_exporter(&stage, &exporter_pod).await;
            }
            match result {
                Ok(()) => {
                    survivors.insert((mutant.role, mutant.what));
                }
                Err(why) => killed.push(format!("{} {}: {why}", mutant.role, mutant.what)),
            }
        }
    }
    // After the mutants, the shipped roles still make a good night (nothing was left broken).
    if let Err(why) = night(&stage, day, &addr, true).await {
        panic!(
            "the shipped roles fail after the mutants: {why}\n{}",
            super::stage::pod_logs(&stage.sim, TENANT)
        );
    }

    let listed: BTreeSet<(String, String)> = UNNEEDED_ON_BOTH
        .iter()
        .chain(UNNEEDED)
        .map(|(role, what, _)| ((*role).to_owned(), (*what).to_owned()))
        .collect();
    let line = |(role, what): &(String, String)| format!("  {role} {what}");
    let unlisted: Vec<String> = survivors.difference(&listed).map(line).collect();
    let stale: Vec<String> = listed.difference(&survivors).map(line).collect();
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "mutants that broke no night but are not listed in UNNEEDED (remove the grant or list why it stays):\n{}\n\
         listed in UNNEEDED but the night now needs them (remove them from the list):\n{}\nkilled:\n{}",
        unlisted.join("\n"),
        stale.join("\n"),
        killed.join("\n")
    );
}
