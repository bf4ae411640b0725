//! Core objects over the wire: namespace and PVC preflight, restore from a snapshot, Events.

use crate::support::{BASE, eventually, start};
use backup_ns::cluster::core::{EventType, NewEvent, RestorePvc, pvc_reference};
use backup_ns::cluster::{ClusterError, NewSnapshot};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::time::Duration;

#[tokio::test]
async fn preflight_finds_the_namespace_and_a_bound_pvc_and_names_what_is_missing() {
    let env = start(BASE).await;
    env.cluster.require_namespace("shop").await.unwrap();
    let err = env.cluster.require_namespace("nope").await.unwrap_err();
    assert_eq!(err.to_string(), "Namespace nope does not exist");

    let pvc = env.cluster.require_bound_pvc("shop", "data").await.unwrap();
    assert_eq!(pvc.metadata.name.as_deref(), Some("data"));
    let err = env
        .cluster
        .require_bound_pvc("shop", "missing")
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Missing { .. }));
    assert_eq!(
        err.to_string(),
        "PersistentVolumeClaim shop/missing does not exist"
    );
}

#[tokio::test]
async fn a_pvc_that_is_not_bound_is_refused_with_its_phase() {
    // A claim restored from a snapshot that does not exist stays Pending.
    let env = start(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: \
         PersistentVolumeClaim\nmetadata:\n  name: pending\n  namespace: shop\nspec:\n  accessModes: \
         [ReadWriteOnce]\n  dataSource:\n    apiGroup: snapshot.storage.k8s.io\n    kind: VolumeSnapshot\n    \
         name: no-such-snapshot\n  resources:\n    requests:\n      storage: 1Gi\n",
    )
    .await;
    eventually("the claim is marked Pending", || {
        env.sim
            .get("v1", "persistentvolumeclaims", Some("shop"), "pending")
            .unwrap()["status"]["phase"]
            == "Pending"
    })
    .await;
    let err = env
        .cluster
        .require_bound_pvc("shop", "pending")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "PersistentVolumeClaim shop/pending: is Pending, not Bound; a snapshot needs a bound volume"
    );
}

#[tokio::test]
async fn a_snapshot_restores_into_a_new_bound_pvc_and_an_existing_one_is_never_overwritten() {
    let env = start(BASE).await;
    std::fs::write(env.sim.pvc_dir("shop", "data").join("dump.sql"), b"hello").unwrap();
    env.cluster
        .create_snapshot(&NewSnapshot {
            namespace: "shop".into(),
            name: "snap".into(),
            pvc: "data".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let vs = env
        .cluster
        .wait_snapshot_ready("shop", "snap", Duration::from_secs(10))
        .await
        .unwrap();
    let size = vs
        .status
        .as_ref()
        .and_then(|s| s.restore_size.clone())
        .unwrap_or(Quantity("1Gi".into()));
    let restore = RestorePvc {
        namespace: "shop".into(),
        name: "data-restored".into(),
        snapshot: "snap".into(),
        size,
        ..Default::default()
    };
    env.cluster.create_pvc(&restore.to_object()).await.unwrap();
    env.cluster
        .wait_pvc_bound("shop", "data-restored", Duration::from_secs(10))
        .await
        .unwrap();
    let restored =
        std::fs::read(env.sim.pvc_dir("shop", "data-restored").join("dump.sql")).unwrap();
    assert_eq!(restored, b"hello");

    let err = env
        .cluster
        .create_pvc(&restore.to_object())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
}

#[tokio::test]
async fn events_are_recorded_on_the_pvc() {
    let env = start(BASE).await;
    let pvc = env.cluster.require_bound_pvc("shop", "data").await.unwrap();
    env.cluster
        .emit_event(&NewEvent {
            regarding: pvc_reference(&pvc),
            event_type: EventType::Normal,
            reason: "BackupSucceeded".into(),
            action: "Backup".into(),
            note: "snapshot data-1 is ready".into(),
        })
        .await
        .unwrap();
    let events = env.cluster.events_about("shop", "data").await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason.as_deref(), Some("BackupSucceeded"));
    assert_eq!(events[0].note.as_deref(), Some("snapshot data-1 is ready"));
    assert_eq!(events[0].type_.as_deref(), Some("Normal"));
}
