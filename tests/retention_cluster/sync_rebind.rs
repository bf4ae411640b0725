//! Label sync (unchanged contents cost no request) and rebind after the namespace was deleted and re-created.

use crate::cli::{backup_ns, text};
use crate::support::{Seed, content_name, labels, namespace_doc, seed_docs, start, utc};
use backup_ns::cluster::NewSnapshot;
use backup_ns::cluster::rebind::{RebindError, RebindOptions, rebind};
use backup_ns::labels::LabelChanges;
use backup_ns::retention::sync::sync_labels;
use backup_ns::vocab::scope::Scope;
use std::time::Duration;

#[tokio::test]
async fn label_sync_copies_backup_ns_labels_drops_stale_ones_and_skips_unchanged_contents() {
    let env = start().await;
    let mut yaml = namespace_doc("shop");
    for (i, daily) in ["2025-02-28", "2025-02-27", "2025-02-26"]
        .iter()
        .enumerate()
    {
        yaml.push_str("---\n");
        yaml.push_str(&seed_docs(&Seed {
            namespace: "shop",
            name: &format!("data-{i}"),
            pvc: "data",
            labels: labels(&[
                ("backup-ns.sh/retain", "daily_weekly_monthly"),
                ("backup-ns.sh/pvc", "data"),
                ("backup-ns.sh/daily", daily),
                ("app", "shop"),
            ]),
            retention: None,
            created: utc(&format!("{daily}T00:30:00Z")),
            policy: "Retain",
        }));
    }
    env.sim.apply_yaml(&yaml).unwrap();
    // A content with a stale tier label and a label of its own.
    let stale = env
        .cluster
        .get_snapshot_content(&content_name("shop", "data-2"))
        .await
        .unwrap()
        .unwrap();
    env.cluster
        .patch_content_labels(
            &stale,
            &LabelChanges::new()
                .set("backup-ns.sh/weekly", "2025-w01")
                .set("owner", "storage"),
        )
        .await
        .unwrap();

    let first = sync_labels(&env.cluster, &Scope::All, None, 500, false, 4)
        .await
        .unwrap();
    assert_eq!(
        (first.patched, first.unchanged, first.failed),
        (3, 0, 0),
        "{}",
        first.render_text()
    );
    let vsc = env
        .sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshotcontents",
            None,
            &content_name("shop", "data-2"),
        )
        .unwrap();
    let l = &vsc["metadata"]["labels"];
    assert_eq!(l["backup-ns.sh/daily"], "2025-02-26");
    assert_eq!(l["backup-ns.sh/pvc"], "data");
    assert!(
        l["backup-ns.sh/weekly"].is_null(),
        "stale label dropped: {l}"
    );
    assert_eq!(l["owner"], "storage", "foreign labels are left alone");
    assert!(l["app"].is_null(), "only backup-ns.sh/* labels are copied");

    env.sim.requests().reset();
    let second = sync_labels(&env.cluster, &Scope::All, None, 500, false, 4)
        .await
        .unwrap();
    assert_eq!((second.patched, second.unchanged), (0, 3));
    let r = env.sim.requests();
    assert_eq!(
        r.count("patch", "volumesnapshotcontents"),
        0,
        "{:?}",
        r.snapshot()
    );
    assert_eq!(
        r.total(),
        2,
        "one list of snapshots, one of contents: {:?}",
        r.snapshot()
    );
}

const PVC: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: shop
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebind_restores_a_retain_backup_after_its_namespace_was_deleted_and_recreated() {
    let env = start().await;
    env.sim
        .apply_yaml(&format!("{}---\n{PVC}", namespace_doc("shop")))
        .unwrap();
    for _ in 0..100 {
        if env
            .sim
            .list("persistentvolumeclaims", Some("shop"))
            .iter()
            .all(|p| p["status"]["phase"] == "Bound")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::write(
        env.sim.pvc_dir("shop", "data").join("orders.txt"),
        "42 orders\n",
    )
    .unwrap();
    env.cluster
        .create_snapshot(&NewSnapshot {
            namespace: "shop".into(),
            name: "data-2025-02-28-003000-abcdef".into(),
            pvc: "data".into(),
            class: None,
            labels: labels(&[
                ("backup-ns.sh/retain", "daily_weekly_monthly"),
                ("backup-ns.sh/pvc", "data"),
                ("backup-ns.sh/daily", "2025-02-28"),
            ]),
            annotations: Default::default(),
        })
        .await
        .unwrap();
    let original = env
        .cluster
        .wait_snapshot_ready(
            "shop",
            "data-2025-02-28-003000-abcdef",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let old_content = original.bound_content().unwrap().to_string();
    let created = original
        .status
        .as_ref()
        .unwrap()
        .creation_time
        .clone()
        .unwrap();
    // The daily controller run copied the labels onto the content.
    let out = backup_ns(&env, &["sync-labels", "-A"], "2025-02-28T04:30:00Z").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The namespace is deleted (its snapshots with it; the Retain content stays) and re-created.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(env.cluster.client().clone());
    namespaces
        .delete("shop", &Default::default())
        .await
        .unwrap();
    assert!(env.sim.list("volumesnapshots", Some("shop")).is_empty());
    env.sim.apply_yaml(&namespace_doc("shop")).unwrap();
    // A dry run shows the objects and creates nothing.
    let dry = rebind(
        &env.cluster,
        &RebindOptions {
            content: old_content.clone(),
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!dry.old_content_deleted);
    assert!(
        env.sim.list("volumesnapshots", Some("shop")).is_empty(),
        "dry run creates nothing"
    );

    let out = backup_ns(
        &env,
        &["rebind", &old_content, "-o", "json"],
        "2025-03-01T04:30:00Z",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let new_name = report["snapshot"].as_str().unwrap().to_string();
    let new_content = report["new_content"].as_str().unwrap().to_string();
    assert!(
        new_name.starts_with("data-2025-02-28-003000-")
            && new_name != "data-2025-02-28-003000-abcdef"
    );
    assert!(new_content.starts_with("restoredvsc-"));
    let rebound = env
        .cluster
        .wait_snapshot_ready("shop", &new_name, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(rebound.bound_content(), Some(new_content.as_str()));
    assert_eq!(
        rebound.status.as_ref().unwrap().creation_time.as_deref(),
        Some(created.as_str()),
        "keeps its creation time"
    );
    assert_eq!(rebound.label("backup-ns.sh/daily"), Some("2025-02-28"));
    assert_eq!(rebound.label("backup-ns.sh/pvc"), Some("data"));
    let vsc = env
        .cluster
        .get_snapshot_content(&new_content)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(vsc.spec.deletion_policy, "Retain");
    assert!(
        env.cluster
            .get_snapshot_content(&old_content)
            .await
            .unwrap()
            .is_none(),
        "old Retain content removed"
    );

    // The new content is bound: not dangling, refused (exit 2).
    let out = backup_ns(&env, &["rebind", &new_content], "2025-03-01T04:30:00Z").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("still bound"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn rebind_refuses_a_content_that_is_not_retain() {
    let env = start().await;
    env.sim
        .apply_yaml(&seed_docs(&Seed {
            namespace: "gone",
            name: "data-1",
            pvc: "data",
            labels: labels(&[("backup-ns.sh/pvc", "data")]),
            retention: None,
            created: utc("2025-01-01T00:00:00Z"),
            policy: "Delete",
        }))
        .unwrap();
    let content = content_name("gone", "data-1");
    // Make it dangling: drop the snapshot object only (kept content).
    env.sim.apply_yaml(&namespace_doc("gone")).unwrap();
    let err = rebind(
        &env.cluster,
        &RebindOptions {
            content: content.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RebindError::NotRetain { .. }), "{err}");
    assert!(
        env.cluster
            .get_snapshot_content(&content)
            .await
            .unwrap()
            .is_some(),
        "nothing deleted"
    );
}
