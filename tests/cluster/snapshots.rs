//! Snapshots over the wire: create, wait ready, list in pages, guarded label patches, delete ordering.

use crate::support::{BASE, eventually, start};
use backup_ns::cluster::snapshots::DEFAULT_PAGE_SIZE;
use backup_ns::cluster::{ClusterError, NewGroupSnapshot, NewSnapshot};
use backup_ns::labels::LabelChanges;
use backup_ns::vocab::scope::Scope;
use kube_sim::faults::{Fault, FaultAction};
use std::collections::BTreeMap;
use std::time::Duration;

fn new_snapshot(name: &str, pvc: &str) -> NewSnapshot {
    NewSnapshot {
        namespace: "shop".into(),
        name: name.into(),
        pvc: pvc.into(),
        class: None,
        labels: [
            ("backup-ns.sh/pvc".to_string(), pvc.to_string()),
            ("backup-ns.sh/daily".to_string(), "2025-01-01".to_string()),
        ]
        .into(),
        annotations: [(
            "backup-ns.sh/retention".to_string(),
            r#"{"daily":7}"#.to_string(),
        )]
        .into(),
    }
}

#[tokio::test]
async fn a_created_snapshot_is_awaited_until_ready_through_a_watch() {
    let env = start(BASE).await;
    let created = env
        .cluster
        .create_snapshot(&new_snapshot("data-1", "data"))
        .await
        .unwrap();
    assert_eq!(created.source_pvc(), Some("data"));
    let ready = env
        .cluster
        .wait_snapshot_ready("shop", "data-1", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(ready.ready());
    assert!(
        ready.bound_content().is_some(),
        "ready snapshot has a bound content"
    );
    assert_eq!(ready.label("backup-ns.sh/daily"), Some("2025-01-01"));
    assert_eq!(
        ready.metadata.annotations.as_ref().unwrap()["backup-ns.sh/retention"],
        r#"{"daily":7}"#
    );
    // A watch, not polling: no repeated GETs of the snapshot.
    assert!(
        env.sim.requests().count("get", "volumesnapshots") <= 1,
        "requests: {:?}",
        env.sim.requests().snapshot()
    );
    let fetched = env
        .cluster
        .get_snapshot("shop", "data-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched.name(), "data-1");
    assert!(
        env.cluster
            .get_snapshot("shop", "nope")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn creating_an_existing_snapshot_is_a_conflict_naming_it() {
    let env = start(BASE).await;
    env.cluster
        .create_snapshot(&new_snapshot("dup", "data"))
        .await
        .unwrap();
    let err = env
        .cluster
        .create_snapshot(&new_snapshot("dup", "data"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ClusterError::Create { .. }), "{text}");
    assert!(
        text.contains("VolumeSnapshot shop/dup") && text.contains("409"),
        "{text}"
    );
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_continues_with_its_own_object() {
    let env = start(BASE).await;
    env.sim.faults().add(Fault::nth(
        "create",
        "volumesnapshots",
        1,
        FaultAction::LostAnswer,
    ));
    let created = env
        .cluster
        .create_snapshot(&new_snapshot("lost", "data"))
        .await
        .unwrap();
    assert_eq!(created.name(), "lost");
    assert_eq!(env.sim.requests().count("create", "volumesnapshots"), 2);
    assert_eq!(env.cluster.retries(), 1);
    let stored = env
        .sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("shop"),
            "lost",
        )
        .unwrap();
    assert_eq!(
        stored["metadata"]["annotations"]["backup-ns.sh/run-id"],
        env.cluster.run_id()
    );
}

#[tokio::test]
async fn a_retried_create_that_meets_a_foreign_object_is_an_error() {
    let env = start(BASE).await;
    // Someone else's snapshot appears under our name while our first attempt gets no answer.
    env.sim
        .apply_yaml(
            "apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: taken
  namespace: shop
spec:
  source:
    persistentVolumeClaimName: data
",
        )
        .unwrap();
    env.sim.faults().add(Fault::nth(
        "create",
        "volumesnapshots",
        1,
        FaultAction::ConnectionReset,
    ));
    let err = env
        .cluster
        .create_snapshot(&new_snapshot("taken", "data"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ClusterError::Create { .. }), "{text}");
    assert!(
        text.contains("`taken` already exists and was not created by backup-ns"),
        "{text}"
    );
}

#[tokio::test]
async fn a_snapshot_that_never_becomes_ready_times_out() {
    let env = start(BASE).await;
    env.sim.faults().add(Fault::snapshot_never_ready());
    env.cluster
        .create_snapshot(&new_snapshot("slow", "data"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = env
        .cluster
        .wait_snapshot_ready("shop", "slow", Duration::from_millis(400))
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::NotReady { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        err.to_string(),
        "VolumeSnapshot shop/slow did not become ready within 400ms"
    );
}

/// The snapshot controller writes a write conflict it met into `status.error` and clears it when its retry
/// succeeds (seen on the real cluster under load): the wait goes on past it and ends ready.
#[tokio::test]
async fn a_conflict_the_controller_retries_past_does_not_fail_the_wait() {
    let env = start(BASE).await;
    env.sim.faults().add(Fault::snapshot_never_ready());
    env.cluster
        .create_snapshot(&new_snapshot("retried", "data"))
        .await
        .unwrap();
    let status = |status: &str| {
        format!(
            "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {{name: retried, namespace: shop}}\n\
             spec: {{source: {{persistentVolumeClaimName: data}}}}\nstatus: {status}\n"
        )
    };
    env.sim
        .apply_yaml(&status(
            "{readyToUse: false, error: {message: 'Failed to create snapshot: error updating status for volume \
             snapshot content snapcontent-1: Operation cannot be fulfilled on volumesnapshotcontents \
             \"snapcontent-1\": the object has been modified; please apply your changes to the latest version \
             and try again'}}",
        ))
        .unwrap();
    let wait = env
        .cluster
        .wait_snapshot_ready("shop", "retried", Duration::from_secs(20));
    let ready_later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        env.sim
            .apply_yaml(&status(
                "{readyToUse: true, creationTime: '2025-01-01T00:00:00Z'}",
            ))
            .unwrap();
    };
    let (ready, ()) = tokio::join!(wait, ready_later);
    let ready = ready.unwrap();
    assert!(ready.ready());
}

#[tokio::test]
async fn a_controller_error_fails_the_wait_at_once_with_its_message() {
    let env = start(BASE).await;
    env.cluster
        .create_snapshot(&new_snapshot("orphan", "no-such-pvc"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = env
        .cluster
        .wait_snapshot_ready("shop", "orphan", Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not fail fast"
    );
    match &err {
        ClusterError::SnapshotFailed { message, .. } => {
            assert!(
                message.contains("no-such-pvc"),
                "controller message: {message}"
            )
        }
        other => panic!("expected SnapshotFailed, got {other}"),
    }
}

#[tokio::test]
async fn lists_are_paginated_with_limit_and_continue() {
    let env = start(BASE).await;
    let mut yaml = String::new();
    for i in 0..23 {
        let ns = if i % 2 == 0 { "shop" } else { "other" };
        yaml.push_str(&format!(
            "---\napiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: s{i:02}\n  \
             namespace: {ns}\n  labels:\n    backup-ns.sh/pvc: data\n    parity: \"{}\"\nspec:\n  source:\n    \
             volumeSnapshotContentName: pre-{i}\n",
            i % 2
        ));
    }
    env.sim
        .apply_yaml("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n")
        .unwrap();
    env.sim.apply_yaml(&yaml).unwrap();
    env.sim.requests().reset();

    let all = env
        .cluster
        .list_snapshots(&Scope::All, None, 5)
        .await
        .unwrap();
    assert_eq!(all.len(), 23);
    assert_eq!(
        env.sim.requests().count("list", "volumesnapshots"),
        5,
        "ceil(23 / 5) pages"
    );

    let shop = env
        .cluster
        .list_snapshots(&Scope::Namespace("shop".into()), None, 4)
        .await
        .unwrap();
    assert_eq!(shop.len(), 12);
    assert!(shop.iter().all(|s| s.namespace() == "shop"));

    let odd = env
        .cluster
        .list_snapshots(&Scope::All, Some("parity=1"), DEFAULT_PAGE_SIZE)
        .await
        .unwrap();
    assert_eq!(odd.len(), 11);
    let mut names: Vec<&str> = all.iter().map(|s| s.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 23, "no snapshot listed twice across pages");

    // A page failing midway, and on every retry, fails the whole list (no partial result), naming the scope.
    env.sim
        .faults()
        .add(Fault::nth("list", "volumesnapshots", 2, FaultAction::InternalError).persisting());
    let err = env
        .cluster
        .list_snapshots(&Scope::All, None, 5)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "could not list volumesnapshots.snapshot.storage.k8s.io in all namespaces:"
        ),
        "{text}"
    );
    assert!(text.contains("HTTP 500"), "{text}");
}

#[tokio::test]
async fn label_patches_apply_and_refuse_to_clobber_a_concurrent_edit() {
    let env = start(BASE).await;
    env.cluster
        .create_snapshot(&new_snapshot("lbl", "data"))
        .await
        .unwrap();
    // The simulated snapshot controller writes status asynchronously; every resourceVersion below must be ours.
    env.cluster
        .wait_snapshot_ready("shop", "lbl", Duration::from_secs(10))
        .await
        .unwrap();
    let read = env
        .cluster
        .get_snapshot("shop", "lbl")
        .await
        .unwrap()
        .unwrap();

    // Someone else moves the daily label after we read it.
    let other = LabelChanges::new().set("backup-ns.sh/daily", "2025-01-02");
    env.cluster
        .patch_snapshot_labels(&read, &other)
        .await
        .unwrap()
        .unwrap();

    // Our stale removal must not go through.
    let ours = LabelChanges::new().remove("backup-ns.sh/daily");
    let err = env
        .cluster
        .patch_snapshot_labels(&read, &ours)
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let now = env
        .cluster
        .get_snapshot("shop", "lbl")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.label("backup-ns.sh/daily"), Some("2025-01-02"));

    // Re-read and retry converges; an add is guarded by the resourceVersion.
    let changes = LabelChanges::new()
        .remove("backup-ns.sh/daily")
        .set("backup-ns.sh/delete-after", "2025-02-01");
    let patched = env
        .cluster
        .patch_snapshot_labels(&now, &changes)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(patched.label("backup-ns.sh/daily"), None);
    assert_eq!(
        patched.label("backup-ns.sh/delete-after"),
        Some("2025-02-01")
    );
    let stale_add = LabelChanges::new().set("backup-ns.sh/weekly", "2025-w01");
    assert!(
        env.cluster
            .patch_snapshot_labels(&now, &stale_add)
            .await
            .unwrap_err()
            .is_conflict()
    );

    // Nothing to change: nothing is sent.
    let before = env.sim.requests().count("patch", "volumesnapshots");
    let same = LabelChanges::new().set("backup-ns.sh/delete-after", "2025-02-01");
    assert!(
        env.cluster
            .patch_snapshot_labels(&patched, &same)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(env.sim.requests().count("patch", "volumesnapshots"), before);
}

#[tokio::test]
async fn content_labels_are_patched_on_the_cluster_scoped_object() {
    let env = start(BASE).await;
    env.cluster
        .create_snapshot(&new_snapshot("c1", "data"))
        .await
        .unwrap();
    let vs = env
        .cluster
        .wait_snapshot_ready("shop", "c1", Duration::from_secs(10))
        .await
        .unwrap();
    let content_name = vs.bound_content().unwrap().to_string();
    let vsc = env
        .cluster
        .get_snapshot_content(&content_name)
        .await
        .unwrap()
        .unwrap();
    let changes = LabelChanges::new().set("backup-ns.sh/pvc", "data");
    let patched = env
        .cluster
        .patch_content_labels(&vsc, &changes)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        patched.metadata.labels.as_ref().unwrap()["backup-ns.sh/pvc"],
        "data"
    );
    let listed = env
        .cluster
        .list_snapshot_contents(Some("backup-ns.sh/pvc=data"), 2)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn delete_switches_the_content_to_delete_before_deleting_the_snapshot() {
    let env = start(BASE).await;
    env.cluster
        .create_snapshot(&new_snapshot("gone", "data"))
        .await
        .unwrap();
    let vs = env
        .cluster
        .wait_snapshot_ready("shop", "gone", Duration::from_secs(10))
        .await
        .unwrap();
    let content = vs.bound_content().unwrap().to_string();
    let vsc = env
        .cluster
        .get_snapshot_content(&content)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(vsc.spec.deletion_policy, "Retain", "the class's policy");

    // Ordering: if the VS delete fails (on every retry too), the content has already been switched to Delete.
    env.sim
        .faults()
        .add(Fault::nth("delete", "volumesnapshots", 1, FaultAction::InternalError).persisting());
    let err = env
        .cluster
        .delete_snapshot("shop", "gone")
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Delete { .. }), "{err}");
    let vsc = env
        .sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshotcontents",
            None,
            &content,
        )
        .unwrap();
    assert_eq!(vsc["spec"]["deletionPolicy"], "Delete");
    assert!(
        env.sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some("shop"),
                "gone"
            )
            .is_some()
    );

    // Retry converges: the VS goes, and with a Delete policy its content too.
    env.sim.faults().clear();
    let outcome = env.cluster.delete_snapshot("shop", "gone").await.unwrap();
    assert_eq!(outcome.content.as_deref(), Some(content.as_str()));
    assert!(!outcome.policy_patched, "already Delete on the retry");
    eventually("the snapshot and its content are gone", || {
        env.sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some("shop"),
                "gone",
            )
            .is_none()
            && env
                .sim
                .get(
                    "snapshot.storage.k8s.io/v1",
                    "volumesnapshotcontents",
                    None,
                    &content,
                )
                .is_none()
    })
    .await;
    let again = env.cluster.delete_snapshot("shop", "gone").await.unwrap();
    assert!(again.already_gone);
}

#[tokio::test]
async fn a_failed_content_patch_leaves_the_snapshot_in_place() {
    let env = start(BASE).await;
    env.cluster
        .create_snapshot(&new_snapshot("keep", "data"))
        .await
        .unwrap();
    env.cluster
        .wait_snapshot_ready("shop", "keep", Duration::from_secs(10))
        .await
        .unwrap();
    env.sim.faults().add(Fault::request(
        "patch",
        "volumesnapshotcontents",
        FaultAction::InternalError,
    ));
    let err = env
        .cluster
        .delete_snapshot("shop", "keep")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("VolumeSnapshotContent"), "{err}");
    assert!(
        env.sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some("shop"),
                "keep"
            )
            .is_some()
    );
    assert_eq!(env.sim.requests().count("delete", "volumesnapshots"), 0);
}

#[tokio::test]
async fn the_default_class_is_found_by_its_annotation() {
    let env = start(BASE).await;
    let class = env
        .cluster
        .default_snapshot_class(None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(class.name(), "csi-hostpath-snapclass");
    assert!(
        env.cluster
            .default_snapshot_class(Some("other.csi"))
            .await
            .unwrap()
            .is_none()
    );
    env.sim
        .apply_yaml(
            "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata:\n  name: second\n  \
             annotations:\n    snapshot.storage.kubernetes.io/is-default-class: \"true\"\ndriver: \
             hostpath.csi.k8s.io\ndeletionPolicy: Delete\n",
        )
        .unwrap();
    let err = env.cluster.default_snapshot_class(None).await.unwrap_err();
    assert!(err.to_string().contains("more than one"), "{err}");
    assert!(
        env.cluster
            .get_snapshot_class("second")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_group_snapshot_covers_every_matching_pvc_and_becomes_ready() {
    let env = start(&format!(
        "{BASE}---\napiVersion: groupsnapshot.storage.k8s.io/v1\nkind: VolumeGroupSnapshotClass\nmetadata:\n  \
         name: group\n  annotations:\n    groupsnapshot.storage.kubernetes.io/is-default-class: \"true\"\ndriver: \
         hostpath.csi.k8s.io\ndeletionPolicy: Delete\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: logs\n  namespace: shop\n  \
         labels:\n    app: db\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      \
         storage: 1Gi\n"
    ))
    .await;
    let new = NewGroupSnapshot {
        namespace: "shop".into(),
        name: "g1".into(),
        pvc_selector: [("app".to_string(), "db".to_string())].into(),
        class: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
    };
    env.cluster.create_group_snapshot(&new).await.unwrap();
    let group = env
        .cluster
        .wait_group_snapshot_ready("shop", "g1", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(group.ready());
    let members = env.cluster.group_members("shop", "g1", 10).await.unwrap();
    assert_eq!(members.len(), 2, "one member snapshot per matching PVC");
    assert!(
        members.iter().all(|m| m.source_pvc().is_none()),
        "members bind pre-provisioned contents"
    );
}

#[tokio::test]
async fn an_unreachable_apiserver_is_reported_with_a_hint() {
    let env = start(BASE).await;
    let cluster = env.cluster.clone();
    env.sim.shutdown().await;
    let err = cluster.get_snapshot("shop", "x").await.unwrap_err();
    assert!(err.to_string().contains("check the server URL"), "{err}");
}

#[tokio::test]
async fn a_dangling_retained_content_is_rebound_to_a_new_snapshot_with_its_data() {
    use backup_ns::cluster::PreProvisioned;
    use backup_ns::cluster::core::RestorePvc;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    let env = start(BASE).await;
    std::fs::write(env.sim.pvc_dir("shop", "data").join("rows"), b"42").unwrap();
    env.cluster
        .create_snapshot(&new_snapshot("old", "data"))
        .await
        .unwrap();
    let vs = env
        .cluster
        .wait_snapshot_ready("shop", "old", Duration::from_secs(10))
        .await
        .unwrap();
    let old_content = vs.bound_content().unwrap().to_string();
    // The namespace's snapshot disappears (e.g. the namespace was deleted); the Retain content stays behind.
    let raw: kube::Api<backup_ns::cluster::VolumeSnapshot> =
        kube::Api::namespaced(env.cluster.client().clone(), "shop");
    raw.delete("old", &Default::default()).await.unwrap();
    eventually("the snapshot is gone", || {
        env.sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some("shop"),
                "old",
            )
            .is_none()
    })
    .await;
    let vsc = env
        .cluster
        .get_snapshot_content(&old_content)
        .await
        .unwrap()
        .expect("Retain content survives");
    let handle = vsc
        .status
        .as_ref()
        .and_then(|s| s.snapshot_handle.clone())
        .expect("the content has a snapshot handle");

    let rebind = PreProvisioned {
        content_name: "rebound-content".into(),
        namespace: "shop".into(),
        snapshot_name: "rebound".into(),
        driver: vsc.spec.driver.clone(),
        snapshot_handle: handle,
        class: vsc.spec.volume_snapshot_class_name.clone(),
        deletion_policy: "Retain".into(),
        labels: [("backup-ns.sh/pvc".to_string(), "data".to_string())].into(),
        annotations: BTreeMap::new(),
    };
    env.cluster.create_pre_provisioned(&rebind).await.unwrap();
    let ready = env
        .cluster
        .wait_snapshot_ready("shop", "rebound", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(ready.bound_content(), Some("rebound-content"));
    env.cluster
        .delete_snapshot_content(&old_content)
        .await
        .unwrap();
    env.cluster
        .delete_snapshot_content(&old_content)
        .await
        .unwrap();

    let restore = RestorePvc {
        namespace: "shop".into(),
        name: "back".into(),
        snapshot: "rebound".into(),
        size: Quantity("1Gi".into()),
        ..Default::default()
    };
    env.cluster.create_pvc(&restore.to_object()).await.unwrap();
    env.cluster
        .wait_pvc_bound("shop", "back", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(env.sim.pvc_dir("shop", "back").join("rows")).unwrap(),
        b"42"
    );
}

#[tokio::test]
async fn a_snapshot_watch_lists_first_then_streams_changes() {
    use futures::StreamExt;
    use kube::runtime::watcher::Event;

    let env = start(BASE).await;
    env.cluster
        .create_snapshot(&new_snapshot("before", "data"))
        .await
        .unwrap();
    let mut events = env
        .cluster
        .watch_snapshots(&Scope::Namespace("shop".into()), None);
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(Ok(Event::InitApply(vs)))) => initial.push(vs.name().to_string()),
            Ok(Some(Ok(Event::InitDone))) => break,
            Ok(Some(Ok(_))) => {}
            other => panic!("watch ended or failed during the initial list: {other:?}"),
        }
    }
    assert_eq!(initial, vec!["before"]);

    env.cluster
        .create_snapshot(&new_snapshot("after", "data"))
        .await
        .unwrap();
    env.cluster.delete_snapshot("shop", "after").await.unwrap();
    let (mut applied, mut deleted) = (false, false);
    while !(applied && deleted) {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(Ok(Event::Apply(vs)))) if vs.name() == "after" => applied = true,
            Ok(Some(Ok(Event::Delete(vs)))) if vs.name() == "after" => deleted = true,
            Ok(Some(Ok(_))) => {}
            other => panic!("watch ended or failed: {other:?}"),
        }
    }
}
