//! The shipped CronJobs' jobs through the real Job controller and scheduler, on a cluster of this test's own (the
//! controller's job runs retention over every namespace, so it must not meet the other tests' snapshots):
//! - `backup-ns adhoc --follow` streams the Job pod's log and its exit code mirrors the Job: 0 and an `adhoc`
//!   snapshot when it completes, 1 when it fails;
//! - a job from the controller CronJob (`kubectl create job --from=cronjob/backup-ns-controller`) runs as the
//!   controller ServiceAccount: it deletes the snapshot that is past its delete-after, whose driver file goes with
//!   it through the real snapshot controller, and copies a kept snapshot's labels back onto its content.

use crate::cluster::{RealCluster, eventually, text};
use crate::docs;
use crate::rbac_model::{controller_manifest_without_pause, tenant_manifest};
use serde_json::Value;

const NS: &str = "jobs-app";

/// A snapshot-only plan of `targets` with the node lock off (the lock is covered by kube-sim's deploy tests).
fn plan(targets: &str) -> String {
    format!(
        "name: app\ntargets: [{targets}]\nsnapshot:\n  type: cronjob\nretention: standard\nlock:\n  enabled: false\n"
    )
}

/// The tenant manifest for [`NS`], its hostPath lock dir `locks`, with the plan snapshot-only, and beside its
/// CronJob `backup` a CronJob `backup-broken` whose plan names a claim that does not exist.
fn tenant(locks: &std::path::Path) -> String {
    let text = tenant_manifest(NS).replace(
        "path: /mnt/host-backup-locks",
        &format!("path: {}", locks.display()),
    );
    let mut out = Vec::new();
    for mut d in docs(&text) {
        let kind = d["kind"].as_str().unwrap_or_default().to_owned();
        if kind == "ConfigMap" && d["metadata"]["name"] == "backup-ns-plan" {
            d["data"]["plan.yaml"] = plan("data").into();
            let mut broken = d.clone();
            broken["metadata"]["name"] = "backup-ns-plan-broken".into();
            broken["data"]["plan.yaml"] = plan("missing").into();
            out.push(broken);
        }
        if kind == "CronJob" {
            let mut broken = d.clone();
            broken["metadata"]["name"] = "backup-broken".into();
            let volumes = broken
                .pointer_mut("/spec/jobTemplate/spec/template/spec/volumes")
                .and_then(Value::as_array_mut)
                .expect("the CronJob's volumes");
            let plan = volumes
                .iter_mut()
                .find_map(|v| v.pointer_mut("/configMap/name"))
                .expect("the CronJob mounts its plan from a ConfigMap");
            *plan = "backup-ns-plan-broken".into();
            out.push(broken);
        }
        out.push(d);
    }
    out.iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string(d).expect("JSON")))
        .collect()
}

/// `adhoc --follow` from `cronjob`: its output and the Job's name (from its first line, `job.batch/NAME created`).
fn adhoc_follow(cluster: &RealCluster, cronjob: &str) -> (std::process::Output, String) {
    let out = cluster.backup_ns(
        &[
            "adhoc",
            "-n",
            NS,
            "--from",
            cronjob,
            "--retain-days",
            "7",
            "--follow",
            "--timeout",
            "120s",
        ],
        &[],
    );
    let job = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("job.batch/"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no job line: {}", text(&out)))
        .to_owned();
    (out, job)
}

fn job_condition(cluster: &RealCluster, ns: &str, job: &str) -> String {
    cluster
        .get_json(&["-n", ns, "job", job])
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter().find(|c| {
                c["status"] == "True" && (c["type"] == "Complete" || c["type"] == "Failed")
            })
        })
        .and_then(|c| c["type"].as_str())
        .unwrap_or("none")
        .to_owned()
}

#[test]
fn adhoc_follows_its_job_to_either_end_and_the_controllers_job_prunes_and_syncs() {
    let cluster = RealCluster::up();
    let locks = tempfile::tempdir().expect("lock dir");
    cluster.namespace_with_claims(NS, &["data"]);
    cluster.kubectl_with_stdin(
        &["apply", "--server-side", "-f", "-"],
        &controller_manifest_without_pause(),
    );
    cluster.kubectl_with_stdin(
        &["apply", "--server-side", "-f", "-"],
        &tenant(locks.path()),
    );
    cluster.suspend_cronjobs();

    // A Job that completes: exit 0, the pod's own log streamed, an adhoc snapshot kept 7 days.
    let (ok, job) = adhoc_follow(&cluster, "cronjob/backup");
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert_eq!(
        job_condition(&cluster, NS, &job),
        "Complete",
        "{}",
        text(&ok)
    );
    let names = cluster.snapshot_names(NS);
    assert_eq!(names.len(), 1, "{names:?}\n{}", text(&ok));
    let adhoc = names[0].clone();
    let object = cluster.get_json(&["-n", NS, "volumesnapshot", &adhoc]);
    let labels = &object["metadata"]["labels"];
    assert_eq!(labels["backup-ns.sh/type"], "adhoc", "{object:#}");
    assert!(
        labels["backup-ns.sh/delete-after"].is_string(),
        "{object:#}"
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with('{') && l.contains(&adhoc)),
        "the pod's log names {adhoc}: {}",
        text(&ok)
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap_or_default()
            .contains("completed"),
        "{}",
        text(&ok)
    );

    // A Job that fails: exit 1, the pod's error in the streamed log, no snapshot.
    let (failed, job) = adhoc_follow(&cluster, "cronjob/backup-broken");
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert_eq!(
        job_condition(&cluster, NS, &job),
        "Failed",
        "{}",
        text(&failed)
    );
    assert!(
        text(&failed).contains("PersistentVolumeClaim jobs-app/missing does not exist"),
        "{}",
        text(&failed)
    );
    assert_eq!(cluster.snapshot_names(NS), std::slice::from_ref(&adhoc));

    // A nightly snapshot to keep, with its content's labels gone (as on a cluster the original left behind); the
    // adhoc one made due.
    cluster.kubectl(&[
        "-n",
        NS,
        "create",
        "job",
        "nightly",
        "--from=cronjob/backup",
    ]);
    let nightly = eventually("the nightly job's snapshot", || {
        (job_condition(&cluster, NS, "nightly") == "Complete")
            .then(|| cluster.snapshot_names(NS))
            .and_then(|names| names.into_iter().find(|n| *n != adhoc))
    });
    for name in [&adhoc, &nightly] {
        cluster.wait_for(
            NS,
            &format!("volumesnapshot/{name}"),
            "{.status.readyToUse}",
            "true",
        );
    }
    let (kept_content, kept_handle) = cluster.content_of(NS, &nightly);
    cluster.kubectl(&[
        "label",
        "volumesnapshotcontent",
        &kept_content,
        "backup-ns.sh/pvc-",
        "backup-ns.sh/type-",
    ]);
    cluster.kubectl(&[
        "-n",
        NS,
        "label",
        "volumesnapshot",
        &adhoc,
        "--overwrite",
        "backup-ns.sh/delete-after=2000-01-01",
    ]);
    let (due_content, due_handle) = cluster.content_of(NS, &adhoc);
    let due_file = cluster.snapshot_file(&due_handle);
    assert!(due_file.exists(), "{}", due_file.display());

    // The controller CronJob's job, as its ServiceAccount.
    let ctl = "backup-ns-system";
    cluster.kubectl(&[
        "-n",
        ctl,
        "create",
        "job",
        "retention",
        "--from=cronjob/backup-ns-controller",
    ]);
    eventually("the controller's job ends", || {
        (job_condition(&cluster, ctl, "retention") != "none").then_some(())
    });
    let logs = cluster.kubectl(&["-n", ctl, "logs", "job/retention"]);
    assert_eq!(
        job_condition(&cluster, ctl, "retention"),
        "Complete",
        "{logs}"
    );
    let pod = cluster.get_json(&["-n", ctl, "pods", "-l", "job-name=retention"]);
    assert_eq!(
        pod.pointer("/items/0/spec/serviceAccountName"),
        Some(&Value::from("backup-ns-controller")),
        "{pod:#}"
    );
    eventually(
        &format!("{NS}/{adhoc}, its content and its driver file gone"),
        || {
            let vs = cluster.kubectl_output(&["-n", NS, "get", "volumesnapshot", &adhoc], "");
            let vsc = cluster.kubectl_output(&["get", "volumesnapshotcontent", &due_content], "");
            (!vs.status.success() && !vsc.status.success() && !due_file.exists()).then_some(())
        },
    );
    assert_eq!(
        cluster.snapshot_names(NS),
        std::slice::from_ref(&nightly),
        "{logs}"
    );
    assert!(cluster.snapshot_file(&kept_handle).exists());
    let content = cluster.get_json(&["volumesnapshotcontent", &kept_content]);
    let labels = &content["metadata"]["labels"];
    assert_eq!(labels["backup-ns.sh/pvc"], "data", "{content:#}\n{logs}");
    assert_eq!(
        labels["backup-ns.sh/type"], "cronjob",
        "{content:#}\n{logs}"
    );
}
