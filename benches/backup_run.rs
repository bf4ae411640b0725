//! Benchmark: what a `backup-ns run` of a PostgreSQL plan costs beyond its dump (`cargo bench --bench
//! backup_run`). Side by side in one process, against a throwaway PostgreSQL (tests/support) holding
//! `BENCH_ROWS` rows (default 200,000) and an in-process kube-sim whose CSI driver takes `BENCH_CSI_MS` (default
//! 200 ms) to make a snapshot ready:
//! - the dump alone: `pg_dump | gzip > FILE` on this host, the pipeline the hook runs in the container;
//! - `backup-ns run PLAN` (the real binary, as a child process) of a plan with that one postgres hook.
//!
//! Per round it prints both wall times, the CSI driver's time to ready, the run's steps (from `--output json`) and
//! the API requests the run spent by verb and resource, exec sessions included (kube-sim's request log). The CSI
//! driver's time to ready is measured, not assumed: from the store event that added the run's VolumeSnapshot to
//! the one that made it readyToUse, which is `BENCH_CSI_MS` plus the driver's copy of the volume. At the end: the
//! medians and the ratio run_wall / (dump_alone + CSI time to ready), goal ≤ 1.1, and the median of the rounds'
//! own ratios (each run against the dump beside it). Prints figures; asserts only that every run succeeded.
//!
//! Knobs: `BENCH_ROWS`, `BENCH_ROUNDS` (default 9), `BENCH_CSI_MS`, and `BENCH_LOG`: a `BACKUP_NS_LOG` filter
//! (e.g. `backup_ns=debug,kube_client=debug`) for one more run after the measured rounds, whose timestamped log
//! is printed: where a run's wall time goes, request by request; `BENCH_BIN`: the `backup-ns` binary to run instead
//! of this build's (say, a copy built from another commit, to compare two builds under the same load).

#[path = "../tests/support/mod.rs"]
mod support;

use kube_sim::Sim;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::postgres::Postgres;

const BASE: &str = r#"apiVersion: v1
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
deletionPolicy: Delete
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: pgdata
  namespace: shop
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"#;

/// Pod `db-0` whose container `postgres` has `env` and mounts `pgdata`.
fn pod(env: &[(String, String)]) -> String {
    let mut y = String::from(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: db-0\n  namespace: shop\nspec:\n  containers:\n  - name: postgres\n    image: postgres\n    env:\n",
    );
    for (k, v) in env {
        y.push_str(&format!("    - name: {k}\n      value: \"{v}\"\n"));
    }
    y.push_str("    volumeMounts:\n    - name: data\n      mountPath: /var/lib/postgresql/data\n  volumes:\n  - name: data\n    persistentVolumeClaim:\n      claimName: pgdata\n");
    y
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Per VolumeSnapshot name: when the store added it, and when it first showed readyToUse.
type Readiness = Arc<Mutex<BTreeMap<String, (Option<Instant>, Option<Instant>)>>>;

/// Notes the instants of [`Readiness`] from the store's events until the store goes away.
async fn watch_readiness(mut events: kube_sim::store::Subscription, readiness: Readiness) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        if event.plural != "volumesnapshots" {
            continue;
        }
        let at = Instant::now();
        let name = event.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut seen = readiness.lock().expect("readiness");
        let (added, ready) = seen.entry(name).or_default();
        if event.etype == kube_sim::store::EventType::Added {
            added.get_or_insert(at);
        }
        if event.object["status"]["readyToUse"] == true {
            ready.get_or_insert(at);
        }
    }
}

/// The time to ready of the one snapshot a run made (the map was cleared before it).
fn time_to_ready(readiness: &Readiness) -> Duration {
    for _ in 0..1000 {
        let seen = readiness.lock().expect("readiness");
        // Retention patches older snapshots too: the run's own is the one the store added.
        let made: Vec<_> = seen.values().filter(|(added, _)| added.is_some()).collect();
        assert!(made.len() <= 1, "one snapshot per run: {seen:?}");
        if let Some((Some(added), Some(ready))) = made.first() {
            return ready.duration_since(*added);
        }
        drop(seen);
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the run's snapshot was never seen ready in the store");
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// One `backup-ns run`: its wall time, its steps and the requests it made.
struct RunResult {
    wall: Duration,
    steps: Vec<(String, u64)>,
    requests: BTreeMap<(String, String), u64>,
    /// The CSI driver's time to ready of the run's snapshot.
    csi: Duration,
    /// The run's stderr: its log.
    log: String,
}

fn main() {
    let rows = env_u64("BENCH_ROWS", 200_000);
    let rounds = env_u64("BENCH_ROUNDS", 9) as usize;
    let csi = Duration::from_millis(env_u64("BENCH_CSI_MS", 200));

    let pg = Postgres::start();
    pg.create_database("shop");
    pg.psql(
        "shop",
        &format!(
            "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric(10,2), placed date, status text);
             INSERT INTO orders SELECT g, 'customer-' || (g * 7919 % 100000), (g % 10000) / 100.0, DATE '2026-01-01' + (g % 365), 'shipped' FROM generate_series(1, {rows}) g;"
        ),
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sim = runtime.block_on(async {
        let sim = Sim::builder()
            .snapshot_delay(csi)
            .start()
            .await
            .expect("kube-sim");
        tokio::time::sleep(Duration::from_millis(50)).await;
        sim.apply_yaml(&format!("{BASE}{}", pod(&pg.container_env("shop"))))
            .expect("fixture");
        for _ in 0..250 {
            if sim
                .get("v1", "pods", Some("shop"), "db-0")
                .is_some_and(|p| p["status"]["phase"] == "Running")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sim
    });
    // When each VolumeSnapshot was added to the store and when it became readyToUse, as the store's events tell.
    let readiness: Readiness = Arc::default();
    runtime.spawn(watch_readiness(
        sim.shared().store.subscribe(),
        Arc::clone(&readiness),
    ));
    let tmp = tempfile::Builder::new()
        .prefix("bns-bench-run-")
        .tempdir()
        .expect("temp dir");
    let plan = tmp.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "name: shop\nnamespace: shop\ntargets: [pgdata]\nhooks:\n  pre:\n    - type: postgres\n      workload: pod/db-0\n      container: postgres\n      host: 127.0.0.1\n      port: {}\n      dumpFile: /var/lib/postgresql/data/dump.sql.gz\n",
            pg.port
        ),
    )
    .expect("plan");

    let dump_alone = || {
        let out = tmp.path().join("alone.sql.gz");
        let started = Instant::now();
        let status = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -o pipefail; pg_dump --format=plain --clean --if-exists -h 127.0.0.1 -p {} -U {} shop </dev/null | gzip -c > {}",
                pg.port,
                pg.user,
                out.display()
            ))
            .env("PGPASSWORD", &pg.password)
            .status()
            .expect("pg_dump | gzip");
        let wall = started.elapsed();
        assert!(status.success(), "pg_dump | gzip failed");
        let size = std::fs::metadata(&out).map_or(0, |m| m.len());
        (wall, size)
    };
    let binary =
        std::env::var_os("BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_backup-ns").into());
    println!(
        "backup-ns binary: {}",
        std::path::Path::new(&binary).display()
    );
    let run_logged = |log: Option<&str>| {
        sim.requests().reset();
        readiness.lock().expect("readiness").clear();
        let mut command = Command::new(&binary);
        command
            .args(["run"])
            .arg(&plan)
            .args(["--output", "json", "--kubeconfig"])
            .arg(sim.kubeconfig_path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", tmp.path())
            .current_dir(tmp.path())
            .stdin(Stdio::null());
        if let Some(filter) = log {
            command.env("BACKUP_NS_LOG", filter);
        }
        let started = Instant::now();
        let out = command.output().expect("backup-ns run");
        let wall = started.elapsed();
        let requests = sim.requests().snapshot();
        assert!(
            out.status.success(),
            "backup-ns run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let csi = time_to_ready(&readiness);
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("one JSON report");
        let steps = report["steps"]
            .as_array()
            .map(|steps| {
                steps
                    .iter()
                    .map(|s| {
                        (
                            s["step"].as_str().unwrap_or("?").to_string(),
                            s["duration_ms"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        RunResult {
            wall,
            steps,
            requests,
            csi,
            log: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let run = || run_logged(None);

    // Warm-up: the first pg_dump and the first exec pay for cold caches.
    dump_alone();
    run();
    let mut alone = Vec::new();
    let mut runs = Vec::new();
    let mut paired = Vec::new();
    for round in 0..rounds {
        let (a, r) = if round % 2 == 0 {
            let a = dump_alone();
            (a, run())
        } else {
            let r = run();
            (dump_alone(), r)
        };
        let total: u64 = r.requests.values().sum();
        let execs = r
            .requests
            .iter()
            .filter(|((_, resource), _)| resource == "pods/exec")
            .map(|(_, n)| n)
            .sum::<u64>();
        let ratio = r.wall.as_secs_f64() / (a.0 + r.csi).as_secs_f64();
        println!(
            "round {}: pg_dump | gzip {:.3}s ({} bytes) | backup-ns run {:.3}s, CSI time to ready {:.3}s, ratio {:.3}; {total} API requests ({execs} exec sessions)",
            round + 1,
            a.0.as_secs_f64(),
            a.1,
            r.wall.as_secs_f64(),
            r.csi.as_secs_f64(),
            ratio,
        );
        println!(
            "  steps: {}",
            r.steps
                .iter()
                .map(|(s, ms)| format!("{s} {ms} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  requests: {}",
            r.requests
                .iter()
                .map(|((verb, resource), n)| format!("{verb} {resource} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        paired.push(ratio);
        alone.push(a.0);
        runs.push(r);
    }
    let alone = median(alone);
    let run_wall = median(runs.iter().map(|r| r.wall).collect());
    let ready = median(runs.iter().map(|r| r.csi).collect());
    let requests: Vec<u64> = runs.iter().map(|r| r.requests.values().sum()).collect();
    let ratio = run_wall.as_secs_f64() / (alone + ready).as_secs_f64();
    paired.sort_by(f64::total_cmp);
    println!(
        "median of {rounds} with {rows} rows: pg_dump | gzip alone {:.3}s, CSI time to ready {:.3}s (driver delay {:.3}s), backup-ns run {:.3}s; ratio run / (dump + CSI) = {ratio:.3} (goal ≤ 1.1: {}); median of the rounds' ratios {:.3}; API requests per run {:?}",
        alone.as_secs_f64(),
        ready.as_secs_f64(),
        csi.as_secs_f64(),
        run_wall.as_secs_f64(),
        if ratio <= 1.1 { "met" } else { "MISSED" },
        paired[paired.len() / 2],
        requests
    );
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        let traced = run_logged(Some(&filter));
        println!(
            "traced run ({filter}): {:.3}s, {} API requests; its log:\n{}",
            traced.wall.as_secs_f64(),
            traced.requests.values().sum::<u64>(),
            traced.log
        );
    }
    runtime.block_on(sim.shutdown());
}
