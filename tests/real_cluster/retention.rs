//! Retention on the real cluster. History is seeded as real snapshots (the driver really cuts each) whose labels
//! say how old they are for retention (`delete-after` in the past, or no tier label), and `BACKUP_NS_NOW` moves the
//! controller's clock between passes. Each deletion goes through the real snapshot controller: the controller
//! switches the `Retain` content to `Delete`, deletes the VolumeSnapshot, and the csi-snapshotter has the driver
//! remove its file. A snapshot pinned or relabelled between the list and the writes is kept, deterministically:
//! the test calls the library's list and apply steps itself and edits the snapshots in between.

use crate::cluster::{RealCluster, eventually, plan_file, text};
use backup_ns::clock::Clock;
use backup_ns::cluster::{Cluster, ConnectOptions};
use backup_ns::retention::Options;
use backup_ns::retention::apply::{ApplyOptions, ContentPolicy, Status, apply_listed, list_scope};
use backup_ns::vocab::scope::Scope;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;

/// Real snapshots of `ns/data` named `names`, with the managed labels plus `extra`, waited for until ready.
fn seed(cluster: &RealCluster, ns: &str, names: &[&str], extra: &str) {
    let manifest: String = names
        .iter()
        .map(|name| {
            format!(
                "---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: {name}
  namespace: {ns}
  labels: {{backup-ns.sh/retain: daily_weekly_monthly, backup-ns.sh/pvc: data{extra}}}
spec: {{source: {{persistentVolumeClaimName: data}}}}
"
            )
        })
        .collect();
    cluster.apply(&manifest);
    for name in names {
        cluster.wait_for(
            ns,
            &format!("volumesnapshot/{name}"),
            "{.status.readyToUse}",
            "true",
        );
    }
}

/// `BACKUP_NS_NOW` for `now`.
fn rfc3339(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One `backup-ns controller -n NS` pass at `now`, as JSON; fails the test unless it exits with `exit`.
fn controller(
    cluster: &RealCluster,
    ns: &str,
    now: DateTime<Utc>,
    extra: &[&str],
    exit: i32,
) -> Value {
    let mut args = vec!["controller", "-n", ns, "--delete-pause", "0s", "-o", "json"];
    args.extend_from_slice(extra);
    let out = cluster.backup_ns(&args, &[("BACKUP_NS_NOW", &rfc3339(now))]);
    assert_eq!(out.status.code(), Some(exit), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// Waits until the snapshot controller has removed the snapshot (it stays Terminating under the controller's
/// finalizers until its content is gone), the content, and the driver its file.
fn assert_storage_gone(
    cluster: &RealCluster,
    ns: &str,
    snapshot: &str,
    content: &str,
    handle: &str,
) {
    eventually(&format!("VolumeSnapshot {ns}/{snapshot} deleted"), || {
        let out = cluster.kubectl_output(&["-n", ns, "get", "volumesnapshot", snapshot], "");
        (!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound"))
            .then_some(())
    });
    eventually(&format!("VolumeSnapshotContent {content} deleted"), || {
        let out = cluster.kubectl_output(&["get", "volumesnapshotcontent", content], "");
        (!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound"))
            .then_some(())
    });
    let file = cluster.snapshot_file(handle);
    eventually(
        &format!("the driver's file {} removed", file.display()),
        || (!file.exists()).then_some(()),
    );
}

#[test]
fn controller_passes_delete_through_the_real_snapshot_controller_and_the_driver_files_go() {
    let cluster = RealCluster::shared();
    let ns = "retention";
    cluster.namespace_with_claims(ns, &["data"]);
    let doomed = ["doomed-1", "doomed-2", "doomed-3"];
    let bare = ["bare-1", "bare-2", "bare-3"];
    seed(
        cluster,
        ns,
        &doomed,
        ", backup-ns.sh/delete-after: \"2000-01-01\"",
    );
    seed(cluster, ns, &bare, "");
    // The newest snapshot, from a real run, takes today's tiers and keeps them.
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = plan_file(dir.path(), "app", ns, &["data"], false);
    let out = cluster.backup_ns(&["run", plan.to_str().expect("utf8 path")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let kept: Vec<String> = cluster
        .snapshot_names(ns)
        .into_iter()
        .filter(|n| n.starts_with("data-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let storage = |names: &[&str]| -> Vec<(String, String)> {
        names.iter().map(|n| cluster.content_of(ns, n)).collect()
    };
    let (doomed_storage, bare_storage) = (storage(&doomed), storage(&bare));
    for (content, handle) in doomed_storage.iter().chain(&bare_storage) {
        let policy = cluster.kubectl(&[
            "get",
            "volumesnapshotcontent",
            content,
            "-o",
            "jsonpath={.spec.deletionPolicy}",
        ]);
        assert_eq!(policy, "Retain", "the default class's policy on {content}");
        assert!(cluster.snapshot_file(handle).is_file());
    }

    // Pass 1, today: the snapshots past their delete-after go (3 of 7, under the guard's share); the bare ones
    // are marked for after the grace day.
    let now = Utc::now();
    let report = controller(cluster, ns, now, &[], 0);
    assert_eq!(report["retention"]["counts"]["deleted"], 3, "{report:#}");
    for (name, (content, handle)) in doomed.iter().zip(&doomed_storage) {
        assert_storage_gone(cluster, ns, name, content, handle);
    }
    let mut left = kept.clone();
    left.extend(bare.iter().map(|b| (*b).to_owned()));
    left.sort();
    assert_eq!(cluster.snapshot_names(ns), left);
    for name in bare {
        let vs = cluster.get_json(&["-n", ns, "volumesnapshot", name]);
        assert!(
            vs["metadata"]["labels"]["backup-ns.sh/delete-after"].is_string(),
            "{name} is marked: {vs:#}"
        );
    }

    // Pass 2, three days later: the marked ones are due, 3 of 4, so the mass-deletion guard refuses (exit 5,
    // nothing deleted) until forced.
    let later = now + chrono::Duration::days(3);
    controller(cluster, ns, later, &[], 5);
    assert_eq!(
        cluster.snapshot_names(ns),
        left,
        "the guard deletes nothing"
    );
    let report = controller(cluster, ns, later, &["--force"], 0);
    assert_eq!(report["retention"]["counts"]["deleted"], 3, "{report:#}");
    for (name, (content, handle)) in bare.iter().zip(&bare_storage) {
        assert_storage_gone(cluster, ns, name, content, handle);
    }
    assert_eq!(cluster.snapshot_names(ns), kept);
    let (_, keeper_handle) = cluster.content_of(ns, &kept[0]);
    assert!(cluster.snapshot_file(&keeper_handle).is_file());

    // Pass 3 has nothing left to do.
    let report = controller(cluster, ns, later, &[], 0);
    assert_eq!(
        report["retention"]["outcomes"],
        serde_json::json!([]),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_pinned_or_relabelled_between_the_list_and_the_writes_is_kept() {
    let cluster = RealCluster::shared();
    let ns = "retention-race";
    tokio::task::block_in_place(|| {
        cluster.namespace_with_claims(ns, &["data"]);
        // Oldest first: the newest snapshot of a claim is never marked, so the bare one must not be it.
        seed(cluster, ns, &["bare"], "");
        seed(
            cluster,
            ns,
            &["doomed"],
            ", backup-ns.sh/delete-after: \"2000-01-01\"",
        );
        seed(
            cluster,
            ns,
            &["keep"],
            ", backup-ns.sh/daily: \"2099-01-01\"",
        );
    });
    let client = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(cluster.kubeconfig()),
        namespace: Some(ns.into()),
        ..Default::default()
    })
    .await
    .expect("a client of the real apiserver");
    let options = ApplyOptions {
        scope: Scope::Namespace(ns.into()),
        policy: Options {
            force: true,
            ..Options::default()
        },
        delete_pause: Duration::ZERO,
        content_policy: ContentPolicy::Patch,
        ..ApplyOptions::default()
    };
    let listed = list_scope(&client, &options.scope, None, 500)
        .await
        .expect("listing the namespace");
    assert_eq!(listed.len(), 3);

    // Between the list and the writes: a user pins the doomed snapshot (drops `retain`), and someone labels the
    // bare one, which retention is about to mark (its patch is guarded by the resourceVersion it listed).
    let (doomed_content, doomed_handle) = cluster.content_of(ns, "doomed");
    tokio::task::block_in_place(|| {
        cluster.kubectl(&[
            "-n",
            ns,
            "label",
            "volumesnapshot",
            "doomed",
            "backup-ns.sh/retain-",
        ]);
        cluster.kubectl(&["-n", ns, "label", "volumesnapshot", "bare", "team=shop"]);
    });

    let now = Clock::fixed(Utc::now(), chrono_tz::UTC);
    let report = apply_listed(&client, &listed, None, &options, &now).await;
    let status = |name: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("no outcome for {name}: {}", report.render_text()))
            .status
            .clone()
    };
    assert!(
        matches!(status("doomed"), Status::Deferred { .. }),
        "{}",
        report.render_text()
    );
    assert!(
        matches!(status("bare"), Status::Failed { ref error } if error.contains("concurrently")),
        "the real apiserver refuses the guarded patch: {}",
        report.render_text()
    );
    tokio::task::block_in_place(|| {
        assert_eq!(cluster.snapshot_names(ns), ["bare", "doomed", "keep"]);
        let bare = cluster.get_json(&["-n", ns, "volumesnapshot", "bare"]);
        assert_eq!(bare["metadata"]["labels"]["team"], "shop");
        assert!(
            bare["metadata"]["labels"]["backup-ns.sh/delete-after"].is_null(),
            "not clobbered: {bare:#}"
        );
        let policy = cluster.kubectl(&[
            "get",
            "volumesnapshotcontent",
            &doomed_content,
            "-o",
            "jsonpath={.spec.deletionPolicy}",
        ]);
        assert_eq!(
            policy, "Retain",
            "the pinned snapshot's content is untouched"
        );
        assert!(cluster.snapshot_file(&doomed_handle).is_file());
    });
}

/// The DeleteOptions preconditions themselves, as a raw request: a stale resourceVersion or another uid is a 409
/// Conflict from the real apiserver and the object stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_with_a_stale_precondition_is_a_409_conflict_and_deletes_nothing() {
    use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
    let cluster = RealCluster::shared();
    let ns = "retention-precondition";
    tokio::task::block_in_place(|| {
        cluster.namespace_with_claims(ns, &["data"]);
        seed(cluster, ns, &["snap"], "");
    });
    let client = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(cluster.kubeconfig()),
        namespace: Some(ns.into()),
        ..Default::default()
    })
    .await
    .expect("a client of the real apiserver");
    let api: kube::Api<DynamicObject> = kube::Api::namespaced_with(
        client.client().clone(),
        ns,
        &ApiResource {
            group: "snapshot.storage.k8s.io".into(),
            version: "v1".into(),
            api_version: "snapshot.storage.k8s.io/v1".into(),
            kind: "VolumeSnapshot".into(),
            plural: "volumesnapshots".into(),
        },
    );
    let listed = api.get("snap").await.expect("get");
    api.patch(
        "snap",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"team": "shop"}}})),
    )
    .await
    .expect("relabel");
    for preconditions in [
        Preconditions {
            uid: None,
            resource_version: listed.metadata.resource_version.clone(),
        },
        Preconditions {
            uid: Some("00000000-0000-0000-0000-000000000000".into()),
            resource_version: None,
        },
    ] {
        let params = DeleteParams {
            preconditions: Some(preconditions.clone()),
            ..DeleteParams::default()
        };
        match api.delete("snap", &params).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 409, "{preconditions:?}: {status:?}");
                assert_eq!(status.reason, "Conflict", "{status:?}");
            }
            other => panic!("{preconditions:?}: want a 409, got {other:?}"),
        }
    }
    assert!(api.get_opt("snap").await.expect("get").is_some(), "kept");
}
