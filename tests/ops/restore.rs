//! `backup-ns restore`: manifests (size from restoreSize, modes and class from the source claim), a real restore
//! that binds with the snapshot's data, and the refusals (existing claim, snapshot not ready, missing snapshot).

use crate::support::{Env, eventually, snapshot_yaml, start};

/// A snapshot the sim's CSI driver really takes (of shop/data, with a file in it), plus seeded ones.
async fn with_snapshots() -> Env {
    let mut yaml = String::from(
        r#"
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: real-1
  namespace: shop
  labels: {backup-ns.sh/type: adhoc, backup-ns.sh/retain: days}
spec:
  source: {persistentVolumeClaimName: data}
"#,
    );
    yaml.push_str(&snapshot_yaml(
        "shop",
        "not-ready-1",
        "2025-01-09T00:00:00Z",
        "snapcontent-nr",
        false,
        &[("backup-ns.sh/type", "cronjob")],
    ));
    yaml.push_str(&snapshot_yaml(
        "shop",
        "seeded-1",
        "2025-01-08T00:00:00Z",
        "snapcontent-seeded",
        true,
        &[("backup-ns.sh/type", "cronjob")],
    ));
    let sim = {
        // The file must exist before the driver copies the volume, so write it as soon as the claim is bound.
        let env = start("").await;
        let dir = env.sim.pvc_dir("shop", "data");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("orders.csv"), "id,total\n1,42\n").unwrap();
        env.sim.apply_yaml(&yaml).unwrap();
        env
    };
    eventually("snapshot real-1 is ready", || {
        sim.sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some("shop"),
                "real-1",
            )
            .is_some_and(|v| v["status"]["readyToUse"] == true)
    })
    .await;
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_manifest_takes_size_from_the_snapshot_and_modes_and_class_from_the_source_claim()
 {
    let env = with_snapshots().await;
    let run = env
        .run(
            &[
                "restore",
                "seeded-1",
                "--pvc",
                "data-restored",
                "-n",
                "shop",
                "-o",
                "yaml",
            ],
            &[],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    insta::assert_snapshot!("restore_manifest_yaml", run.stdout);
    assert!(
        env.sim
            .get(
                "v1",
                "persistentvolumeclaims",
                Some("shop"),
                "data-restored"
            )
            .is_none(),
        "-o prints without creating"
    );

    let run = env
        .run(
            &[
                "restore",
                "seeded-1",
                "--pvc",
                "x",
                "-n",
                "shop",
                "-o",
                "json",
                "--storage-class",
                "slow",
                "--access-mode",
                "ReadWriteOnce",
            ],
            &[],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let pvc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(pvc["spec"]["storageClassName"], "slow");
    assert_eq!(
        pvc["spec"]["accessModes"],
        serde_json::json!(["ReadWriteOnce"])
    );
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_creates_a_claim_that_binds_with_the_snapshot_data() {
    let env = with_snapshots().await;
    let run = env
        .run(
            &[
                "restore",
                "real-1",
                "--pvc",
                "data-restored",
                "-n",
                "shop",
                "--wait",
                "--timeout",
                "20s",
            ],
            &[],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with("persistentvolumeclaim/data-restored created in namespace shop from VolumeSnapshot real-1"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("persistentvolumeclaim/data-restored is Bound (volume pvc-"),
        "{run:?}"
    );
    let pvc = env
        .sim
        .get(
            "v1",
            "persistentvolumeclaims",
            Some("shop"),
            "data-restored",
        )
        .unwrap();
    assert_eq!(pvc["spec"]["dataSource"]["name"], "real-1");
    assert_eq!(
        pvc["spec"]["accessModes"],
        serde_json::json!(["ReadWriteMany"])
    );
    assert_eq!(pvc["spec"]["storageClassName"], "csi-hostpath-sc");
    let restored =
        std::fs::read_to_string(env.sim.pvc_dir("shop", "data-restored").join("orders.csv"))
            .unwrap();
    assert_eq!(restored, "id,total\n1,42\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_to_overwrite_an_existing_claim() {
    let env = with_snapshots().await;
    let before = env
        .sim
        .get("v1", "persistentvolumeclaims", Some("shop"), "data")
        .unwrap();
    let run = env
        .run(&["restore", "real-1", "--pvc", "data", "-n", "shop"], &[])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "PersistentVolumeClaim shop/data already exists and restore never overwrites a claim; choose another --pvc name"
        ),
        "{run:?}"
    );
    let after = env
        .sim
        .get("v1", "persistentvolumeclaims", Some("shop"), "data")
        .unwrap();
    assert_eq!(
        before["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_snapshot_that_is_not_ready_and_names_a_missing_one() {
    let env = with_snapshots().await;
    let run = env
        .run(&["restore", "not-ready-1", "--pvc", "n", "-n", "shop"], &[])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("VolumeSnapshot shop/not-ready-1 is not ready to use"),
        "{run:?}"
    );
    let run = env
        .run(
            &[
                "restore",
                "not-ready-1",
                "--pvc",
                "n",
                "-n",
                "shop",
                "-o",
                "yaml",
            ],
            &[],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        env.sim
            .get("v1", "persistentvolumeclaims", Some("shop"), "n")
            .is_none()
    );

    let run = env
        .run(&["restore", "nope", "--pvc", "n", "-n", "shop"], &[])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("VolumeSnapshot shop/nope does not exist; `backup-ns list -n shop` shows the snapshots there"),
        "{run:?}"
    );
    // A near name that does exist is suggested.
    let run = env
        .run(&["restore", "seeded1", "--pvc", "n", "-n", "shop"], &[])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "VolumeSnapshot shop/seeded1 does not exist (did you mean `seeded-1`?); `backup-ns list -n shop`"
        ),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_claim_that_never_binds_fails_with_a_hint() {
    let env = with_snapshots().await;
    // seeded-1 has no VolumeSnapshotContent behind it, so the sim keeps the claim Pending.
    let run = env
        .run(
            &[
                "restore",
                "seeded-1",
                "--pvc",
                "pending",
                "-n",
                "shop",
                "--wait",
                "--timeout",
                "1s",
            ],
            &[],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("PersistentVolumeClaim shop/pending did not become ready within 1s"),
        "{run:?}"
    );
    assert!(run.stderr.contains("WaitForFirstConsumer"), "{run:?}");
}
