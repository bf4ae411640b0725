//! Starting a simulator with fixtures and a `Cluster` connected to it.

use backup_ns::cluster::{Cluster, ConnectOptions};
use kube_sim::Sim;
use std::time::Duration;

/// A namespace, a default snapshot class (Retain, like many production classes) and a Bound PVC.
pub const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-hostpath-snapclass
  annotations:
    snapshot.storage.kubernetes.io/is-default-class: "true"
driver: hostpath.csi.k8s.io
deletionPolicy: Retain
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: shop
  labels:
    app: db
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"#;

pub struct Env {
    pub sim: Sim,
    pub cluster: Cluster,
    // Keeps the service-account namespace file path pointing at nothing real.
    _tmp: tempfile::TempDir,
}

/// Starts a sim with `yaml` applied and connects to it with namespace `shop`.
pub async fn start(yaml: &str) -> Env {
    let sim = Sim::builder()
        .snapshot_delay(Duration::from_millis(50))
        .start()
        .await
        .expect("kube-sim did not start");
    // Early kube-sim builds subscribed their controllers only when the controller task first ran, so fixtures
    // applied before our first await were never reconciled; a short pause keeps these tests independent of that.
    tokio::time::sleep(Duration::from_millis(20)).await;
    if !yaml.trim().is_empty() {
        sim.apply_yaml(yaml).expect("fixture YAML applies");
    }
    // The sim's PVC controller binds claims asynchronously; fixtures start from bound claims, as a preflight
    // would demand. (Claims restored from a missing snapshot stay Pending and are skipped.)
    eventually("the fixture PVCs are Bound", || {
        sim.list("persistentvolumeclaims", None)
            .iter()
            .all(|p| p["status"]["phase"] == "Bound" || p["spec"]["dataSource"].is_object())
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(sim.kubeconfig_path().to_path_buf()),
        namespace: Some("shop".into()),
        service_account_namespace_file: Some(tmp.path().join("no-sa")),
        ..Default::default()
    })
    .await
    .expect("client connects to kube-sim");
    Env {
        sim,
        cluster,
        _tmp: tmp,
    }
}

/// Waits (bounded) until `check` holds, polling the simulator's state directly (test-side only).
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}
