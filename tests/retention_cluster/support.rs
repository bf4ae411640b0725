//! Seeding snapshots (with `status.creationTime` verbatim) and contents into a simulator, and reading them back.

use backup_ns::clock::Clock;
use backup_ns::cluster::{Cluster, ConnectOptions};
use backup_ns::retention::Options;
use backup_ns::retention::apply::{ApplyOptions, ContentPolicy};
use backup_ns::vocab::scope::Scope;
use chrono::{DateTime, Utc};
use kube_sim::Sim;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

pub const CLASS: &str = r#"
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-hostpath-snapclass
  annotations:
    snapshot.storage.kubernetes.io/is-default-class: "true"
driver: hostpath.csi.k8s.io
deletionPolicy: Retain
"#;

pub struct Env {
    pub sim: Sim,
    pub cluster: Cluster,
    pub tmp: tempfile::TempDir,
}

/// Starts a simulator with the Retain default class and connects a client to it.
pub async fn start() -> Env {
    let tmp = tempfile::tempdir().expect("temp dir");
    let sim = Sim::builder()
        .state_dir(tmp.path().join("sim"))
        .snapshot_delay(Duration::from_millis(20))
        .start()
        .await
        .expect("kube-sim did not start");
    // Let the sim's controllers subscribe before fixtures are applied (single-threaded test runtime).
    tokio::time::sleep(Duration::from_millis(20)).await;
    sim.apply_yaml(CLASS).expect("class applies");
    let cluster = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(sim.kubeconfig_path().to_path_buf()),
        namespace: Some("default".into()),
        service_account_namespace_file: Some(tmp.path().join("no-sa")),
        ..Default::default()
    })
    .await
    .expect("client connects to kube-sim");
    Env { sim, cluster, tmp }
}

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

pub fn clock(s: &str) -> Clock {
    Clock::fixed(utc(s), chrono_tz::UTC)
}

/// A seeded snapshot: a ready VS bound to a VSC (deletionPolicy `policy`).
pub struct Seed<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub pvc: &'a str,
    pub labels: BTreeMap<String, String>,
    pub retention: Option<&'a str>,
    pub created: DateTime<Utc>,
    pub policy: &'a str,
}

pub fn content_name(ns: &str, name: &str) -> String {
    format!("snapcontent-{ns}-{name}")
}

/// The JSON documents (valid YAML) for one seeded snapshot and its content.
pub fn seed_docs(s: &Seed<'_>) -> String {
    let content = content_name(s.namespace, s.name);
    let mut annotations = serde_json::Map::new();
    if let Some(r) = s.retention {
        annotations.insert("backup-ns.sh/retention".into(), json!(r));
    }
    let vs = json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": s.name, "namespace": s.namespace, "labels": s.labels, "annotations": annotations},
        "spec": {"source": {"persistentVolumeClaimName": s.pvc}, "volumeSnapshotClassName": "csi-hostpath-snapclass"},
        "status": {"boundVolumeSnapshotContentName": content,
                   "creationTime": s.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                   "readyToUse": true, "restoreSize": "1Gi"}
    });
    let vsc = json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
        "metadata": {"name": content},
        "spec": {"deletionPolicy": s.policy, "driver": "hostpath.csi.k8s.io",
                 "source": {"volumeHandle": format!("vol-{}-{}", s.namespace, s.pvc)},
                 "volumeSnapshotClassName": "csi-hostpath-snapclass",
                 "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                                       "name": s.name, "namespace": s.namespace}},
        "status": {"snapshotHandle": format!("handle-{content}"), "readyToUse": true,
                   "creationTime": s.created.timestamp_nanos_opt().unwrap_or(0)}
    });
    format!("{vsc}\n---\n{vs}\n")
}

pub fn namespace_doc(ns: &str) -> String {
    format!(
        "{}\n",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    )
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Apply options for tests: the given scope, no pause.
pub fn options(scope: Scope, policy: Options) -> ApplyOptions {
    ApplyOptions {
        scope,
        policy,
        delete_pause: Duration::ZERO,
        content_policy: ContentPolicy::Patch,
        ..ApplyOptions::default()
    }
}

/// Snapshot names in a namespace, sorted.
pub fn names(sim: &Sim, ns: &str) -> Vec<String> {
    let mut v: Vec<String> = sim
        .list("volumesnapshots", Some(ns))
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

pub fn label_of(obj: &Value, key: &str) -> Option<String> {
    obj["metadata"]["labels"][key].as_str().map(str::to_string)
}

/// The number of VolumeSnapshotContents once the snapshot controller has caught up with deletions (it removes a
/// `Delete` content asynchronously after its snapshot goes, as the real one does). Waits at most 10 s for `want`.
pub async fn settled_content_count(sim: &Sim, want: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = sim.list("volumesnapshotcontents", None).len();
        if n == want || std::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits (at most 10 s) until every claim in `ns` is Bound: the simulator binds them asynchronously, and `run`'s
/// preflight wants them Bound.
pub async fn claims_bound(sim: &Sim, ns: &str) {
    let bound = || {
        sim.list("persistentvolumeclaims", Some(ns))
            .iter()
            .all(|c| c["status"]["phase"] == "Bound")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !bound() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(bound(), "the claims in {ns} did not bind");
}
