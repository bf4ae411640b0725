//! Retention safety rule: a snapshot that a claim is being restored from (the claim names it as `dataSource` and
//! is not Bound yet) is not deleted while that restore is in flight, even when retention says it is due. The
//! deletion is deferred, naming the claim; once the claim is gone (or Bound), the next pass deletes it.
//!
//! kube-sim binds a same-namespace restore at once, so the claim in flight here restores across namespaces
//! (`dataSourceRef.namespace`), which kube-sim leaves Pending; the same-namespace reading of `dataSource` and
//! `dataSourceRef` is unit-tested in `cluster::core`.

use crate::cli::{backup_ns, doomed_namespace, text};
use crate::support::{names, namespace_doc, start};
use serde_json::Value;

const NOW: &str = "2025-03-01T04:30:00Z";

fn restoring_claim(snapshot: &str) -> String {
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: restore-1, namespace: staging}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
  dataSourceRef: {{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: {snapshot}, namespace: shop}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_a_pending_claim_restores_from_is_not_deleted_until_the_restore_is_done() {
    let env = start().await;
    // data-000 holds the daily slot; data-001 and data-002 are due.
    doomed_namespace(&env, "shop", 3);
    env.sim
        .apply_yaml(&format!(
            "{}---\n{}",
            namespace_doc("staging"),
            restoring_claim("data-001")
        ))
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let claim = env
        .sim
        .list("persistentvolumeclaims", Some("staging"))
        .into_iter()
        .find(|c| c["metadata"]["name"] == "restore-1")
        .expect("the claim exists");
    assert_ne!(claim["status"]["phase"], "Bound", "{claim:#}");

    let args = [
        "prune",
        "-A",
        "--delete-pause",
        "0s",
        "--force",
        "-o",
        "json",
    ];
    let out = backup_ns(&env, &args, NOW).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(names(&env.sim, "shop"), ["data-000", "data-001"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let held = report["outcomes"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == "data-001"))
        .unwrap_or_else(|| panic!("an outcome for data-001: {report:#}"));
    assert_eq!(held["status"], "deferred", "{held:#}");
    assert_eq!(
        held["reason"], "claim staging/restore-1 is being restored from it (not Bound yet)",
        "{held:#}"
    );
    // The text report names it with the fix.
    let out = backup_ns(
        &env,
        &["prune", "-A", "--delete-pause", "0s", "--force"],
        NOW,
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("data-001") && stdout.contains("wait until staging/restore-1 is Bound"),
        "{stdout}"
    );

    // The restore is over (its claim deleted): the next pass deletes the snapshot.
    env.sim
        .delete("v1", "persistentvolumeclaims", Some("staging"), "restore-1")
        .unwrap();
    let out = backup_ns(&env, &args, NOW).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(names(&env.sim, "shop"), ["data-000"]);
}
