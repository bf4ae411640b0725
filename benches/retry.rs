//! What the retry layer (src/cluster/retry.rs) costs when nothing fails (`cargo bench --bench retry`): the same
//! `backup-ns run` (preflight, snapshot, wait until ready, retention, Events) against an in-process kube-sim,
//! with and without the layer, alternating, several rounds. Prints the requests of each run (from the sim's
//! request log, by verb and resource) and the median wall time of each variant; asserts only that the request
//! counts are identical (the layer must not add requests when nothing fails), never timings.

use backup_ns::clock::Clock;
use backup_ns::cluster::engine_port::EnginePort;
use backup_ns::cluster::{Cluster, ConnectOptions};
use backup_ns::engine::{Engine, RunIdentity, RunOptions};
use backup_ns::lock::{FileLock, LockConfig};
use backup_ns::plan::Plan;
use kube_sim::Sim;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 15;

const CLASS: &str = r#"
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-hostpath-snapclass
  annotations:
    snapshot.storage.kubernetes.io/is-default-class: "true"
driver: hostpath.csi.k8s.io
deletionPolicy: Delete
"#;

/// A fresh namespace with one PVC per run, so that every run meets the same state.
fn namespace(ns: &str) -> String {
    format!(
        "apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: {ns}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"
    )
}

/// One run; returns the requests it made and its wall time.
async fn one_run(
    sim: &Sim,
    with_layer: bool,
    round: usize,
) -> (BTreeMap<(String, String), u64>, Duration) {
    let ns = format!(
        "shop-{round}-{}",
        if with_layer { "with" } else { "without" }
    );
    sim.apply_yaml(&namespace(&ns)).expect("namespace applies");
    for _ in 0..250 {
        let bound = sim
            .get("v1", "persistentvolumeclaims", Some(&ns), "data")
            .is_some_and(|p| p["status"]["phase"] == "Bound");
        if bound {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(sim.kubeconfig_path().to_path_buf()),
        namespace: Some(ns.clone()),
        service_account_namespace_file: Some(tmp.path().join("no-sa")),
        without_retry_layer: !with_layer,
        ..ConnectOptions::default()
    })
    .await
    .expect("connects to kube-sim");
    let clock = Clock::system(chrono_tz::UTC);
    let engine = Engine {
        cluster: Arc::new(EnginePort::new(cluster.clone(), clock, Duration::ZERO)),
        exec: Arc::new(cluster.container_exec()),
        resolver: Arc::new(cluster.pod_resolver()),
        lock: Arc::new(FileLock::new(LockConfig {
            dir: tmp.path().to_path_buf(),
            slots: 1,
            timeout: Duration::from_secs(5),
        })),
        clock,
    };
    let plan = Plan::new("bench", ["data"]);
    let opts = RunOptions {
        namespace: ns,
        dry_run: false,
        identity: RunIdentity { pod: None },
        env_config: None,
        retention_sweep: false,
    };
    let (_tx, cancel) = tokio::sync::watch::channel(None);
    sim.requests().reset();
    let started = Instant::now();
    let report = engine.run(&plan, &opts, cancel).await;
    let wall = started.elapsed();
    assert!(report.success, "{}", report.to_table());
    assert_eq!(cluster.retries(), 0, "nothing failed, nothing was retried");
    (sim.requests().snapshot(), wall)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sim = Sim::builder()
        .snapshot_delay(Duration::from_millis(20))
        .start()
        .await
        .expect("kube-sim starts");
    sim.apply_yaml(CLASS).expect("class applies");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut with_requests, mut without_requests) = (BTreeMap::new(), BTreeMap::new());
    for round in 0..ROUNDS {
        // Alternate the order so that warm-up and drift affect both variants alike.
        for with_layer in [round % 2 == 0, round % 2 != 0] {
            let (requests, wall) = one_run(&sim, with_layer, round).await;
            if with_layer {
                with.push(wall);
                with_requests = requests;
            } else {
                without.push(wall);
                without_requests = requests;
            }
        }
    }
    let total = |r: &BTreeMap<(String, String), u64>| r.values().sum::<u64>();
    println!("backup-ns run against kube-sim, nothing failing, {ROUNDS} rounds each:");
    println!(
        "  without the retry layer: {} requests, median wall time {:.1} ms",
        total(&without_requests),
        median(without).as_secs_f64() * 1000.0
    );
    println!(
        "  with the retry layer:    {} requests, median wall time {:.1} ms",
        total(&with_requests),
        median(with).as_secs_f64() * 1000.0
    );
    for ((verb, resource), n) in &with_requests {
        println!("    {verb:<6} {resource:<40} {n}");
    }
    assert_eq!(
        with_requests, without_requests,
        "the retry layer must not change the requests of a run"
    );
}
