//! Benchmark of the controller against a cluster (`cargo bench --bench retention_cluster`): an in-process kube-sim
//! seeded with 1,000, 10,000 and 100,000 VolumeSnapshots (and their contents; `RETENTION_BENCH_SIZES=1000,10000`
//! picks sizes), and `backup-ns controller -A` run as a child process against it, so the figures separate the
//! two: the child's CPU and peak RSS are backup-ns's, the bench process's own CPU during the run is the
//! simulator's (the bench itself only waits). The child runs under GNU time (`/usr/bin/time`): Linux carries a
//! process's peak RSS across exec, so a child spawned straight from this bench (which holds the simulator's
//! objects) would report the bench's peak, not its own.
//!
//! Per size, snapshots / 10 namespaces with 2 PVCs of 5 nightly snapshots, policy annotation daily=2: the 3rd
//! newest loses its daily label and is marked, the 4th (bare) is marked, the 5th is past its delete-after and is
//! deleted. So a real run patches 40 % of the snapshots, deletes 20 %, and syncs the labels of the others'
//! contents (each written once, with its final labels).
//!
//! Measured per size, for 1. `controller -A --dry-run`, 2. the real run (`--delete-pause 0s`), 3. the converged
//! re-run: requests by verb (the simulator's request log), wall time, CPU of backup-ns and of kube-sim, the
//! controller's peak RSS. Printed beside it: the kubectl processes and fixed sleeps the original's scripts would
//! need for the same data (see `original_kubectl_calls`). Asserts the request floor (list pages, one write per
//! changed object, two per deletion), never timings.
//!
//! `cargo bench --bench retention_cluster -- --real` adds the real cluster beside kube-sim (default sizes 10,000
//! and 100,000; `RETENTION_BENCH_SIZES` still picks): per size, after the kube-sim part, `scripts/cluster up
//! --only-api` starts etcd and kube-apiserver (the binaries that `scripts/cluster build` caches; the bench fails
//! naming that command when they are missing), the same documents are seeded through the apiserver (each object
//! created, then its status set through `/status`; 32 requests in flight), and the same three controller runs
//! are measured: requests by verb from the apiserver's `apiserver_request_total` (diffed around each run, kept to
//! the resources the controller uses), wall time, backup-ns's CPU and peak RSS (GNU time), and the CPU of
//! kube-apiserver and of etcd separately (`/proc/PID/stat`, diffed around each run). The same request floor is
//! asserted, and a table pairs each run's figures on both clusters. The cluster is stopped at the end, also when
//! the bench panics.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "retention_cluster/real.rs"]
mod real;

const PVCS_PER_NAMESPACE: usize = 2;
const SNAPSHOTS_PER_PVC: usize = 5;
const PAGE: u32 = 500;
const NOW: &str = "2025-03-01T04:30:00Z";

fn sizes(default: &[usize]) -> Vec<usize> {
    std::env::var("RETENTION_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// CPU time (user + system) this process has used so far: the simulator's, since the bench only waits.
fn self_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn tv(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000)
}

/// One controller run as a child process.
struct Run {
    wall: Duration,
    /// backup-ns: the child's user + system CPU.
    cpu: Duration,
    max_rss_kib: i64,
    report: Value,
}

/// A run with the server side's figures around it.
struct Measured {
    run: Run,
    /// CPU per server process during the run: kube-sim (this process), or kube-apiserver and etcd.
    servers: Vec<(&'static str, Duration)>,
    /// Requests by (verb, resource).
    requests: BTreeMap<(String, String), u64>,
}

impl Measured {
    fn total(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// The three runs of one size on one cluster.
struct Figures {
    dry: Measured,
    real: Measured,
    again: Measured,
}

/// The cluster a run is measured on.
enum Side<'a> {
    Sim(&'a kube_sim::Sim),
    Real(&'a real::Cluster),
}

impl Side<'_> {
    fn name(&self) -> &'static str {
        match self {
            Side::Sim(_) => "kube-sim",
            Side::Real(_) => "real cluster",
        }
    }

    async fn measure(&self, home: &Path, extra: &[&str]) -> Measured {
        match self {
            Side::Sim(sim) => {
                sim.requests().reset();
                let before = self_cpu();
                let run = controller(sim.kubeconfig_path(), home, extra);
                let servers = vec![("kube-sim", self_cpu().saturating_sub(before))];
                Measured {
                    run,
                    servers,
                    requests: sim.requests().snapshot(),
                }
            }
            Side::Real(cluster) => {
                let requests_before = cluster.requests().await;
                let (api, etcd) = (cluster.cpu("kube-apiserver"), cluster.cpu("etcd"));
                let run = controller(&cluster.kubeconfig(), home, extra);
                let servers = vec![
                    (
                        "kube-apiserver",
                        cluster.cpu("kube-apiserver").saturating_sub(api),
                    ),
                    ("etcd", cluster.cpu("etcd").saturating_sub(etcd)),
                ];
                let mut requests = cluster.requests().await;
                for (key, n) in &mut requests {
                    *n -= requests_before.get(key).copied().unwrap_or(0);
                }
                requests.retain(|_, n| *n > 0);
                Measured {
                    run,
                    servers,
                    requests,
                }
            }
        }
    }
}

const GNU_TIME: &str = "/usr/bin/time";

fn controller(kubeconfig: &std::path::Path, home: &std::path::Path, extra: &[&str]) -> Run {
    assert!(
        std::path::Path::new(GNU_TIME).exists(),
        "this bench measures the controller under GNU time: apt-get install time"
    );
    let out = tempfile::NamedTempFile::new().expect("report file");
    let usage_file = tempfile::NamedTempFile::new().expect("usage file");
    let mut cmd = Command::new(GNU_TIME);
    cmd.arg("-f")
        .arg("%M %U %S")
        .arg("-o")
        .arg(usage_file.path())
        .arg(env!("CARGO_BIN_EXE_backup-ns"));
    cmd.env_clear()
        .env("HOME", home)
        .env("BACKUP_NS_NOW", NOW)
        .args([
            "controller",
            "-A",
            "--page-size",
            &PAGE.to_string(),
            "-o",
            "json",
        ])
        .args(extra)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .stdout(out.reopen().expect("report file"))
        .stderr(Stdio::null());
    let start = Instant::now();
    let status = cmd.status().expect("spawn backup-ns under GNU time");
    let wall = start.elapsed();
    assert!(
        status.success(),
        "controller {extra:?} exited with {status}"
    );
    let usage = std::fs::read_to_string(usage_file.path()).expect("GNU time's output");
    let fields: Vec<&str> = usage
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let number = |i: usize| -> f64 {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("GNU time wrote {usage:?}"))
    };
    let report = serde_json::from_reader(std::io::BufReader::new(out.reopen().expect("report")))
        .expect("the controller's JSON report");
    Run {
        wall,
        cpu: Duration::from_secs_f64(number(1) + number(2)),
        max_rss_kib: number(0) as i64,
        report,
    }
}

/// The seed documents of namespaces `from..to` for kube-sim (seeded in slices, so 100,000 snapshots never sit in
/// one string).
fn seed_yaml(from: usize, to: usize) -> String {
    let mut out =
        String::with_capacity((to - from) * PVCS_PER_NAMESPACE * SNAPSHOTS_PER_PVC * 1200);
    for n in from..to {
        let (namespace, pairs) = seed_namespace(n);
        out.push_str(&namespace.to_string());
        out.push_str("\n---\n");
        for (vsc, vs) in pairs {
            out.push_str(&vsc.to_string());
            out.push_str("\n---\n");
            out.push_str(&vs.to_string());
            out.push_str("\n---\n");
        }
    }
    out
}

/// Namespace number `n` and its (content, snapshot) pairs, with their statuses: the same documents for kube-sim
/// and for the real cluster.
fn seed_namespace(n: usize) -> (Value, Vec<(Value, Value)>) {
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc);
    let ns = format!("tenant-{n:05}");
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let mut pairs = Vec::with_capacity(PVCS_PER_NAMESPACE * SNAPSHOTS_PER_PVC);
    for p in 0..PVCS_PER_NAMESPACE {
        let pvc = format!("data-{p}");
        for k in 0..SNAPSHOTS_PER_PVC {
            let created = now - chrono::Duration::days(k as i64 + 1) - chrono::Duration::hours(4);
            let date = created.date_naive().to_string();
            let name = format!("{pvc}-{date}");
            let content = format!("snapcontent-{ns}-{name}");
            let mut labels = BTreeMap::from([
                (
                    "backup-ns.sh/retain".to_string(),
                    "daily_weekly_monthly".to_string(),
                ),
                ("backup-ns.sh/pvc".to_string(), pvc.clone()),
                ("backup-ns.sh/type".to_string(), "cronjob".to_string()),
            ]);
            match k {
                0..=2 => {
                    labels.insert("backup-ns.sh/daily".into(), date.clone());
                }
                3 => {}
                _ => {
                    labels.insert("backup-ns.sh/delete-after".into(), "2025-02-20".into());
                }
            }
            let annotations = if k == 0 {
                json!({"backup-ns.sh/retention": r#"{"daily":2,"weekly":4,"monthly":12}"#})
            } else {
                json!({})
            };
            let vsc = json!({
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                "metadata": {"name": content},
                "spec": {"deletionPolicy": "Retain", "driver": "hostpath.csi.k8s.io",
                         "source": {"volumeHandle": format!("vol-{ns}-{pvc}")},
                         "volumeSnapshotClassName": "csi-hostpath-snapclass",
                         "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                                               "name": name, "namespace": ns}},
                "status": {"snapshotHandle": format!("handle-{content}"), "readyToUse": true}
            });
            let vs = json!({
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
                "spec": {"source": {"persistentVolumeClaimName": pvc}, "volumeSnapshotClassName": "csi-hostpath-snapclass"},
                "status": {"boundVolumeSnapshotContentName": content,
                           "creationTime": created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                           "readyToUse": true, "restoreSize": "1Gi"}
            });
            pairs.push((vsc, vs));
        }
    }
    (namespace, pairs)
}

/// kubectl calls of the original's scripts for the same data (original-behaviour.md, "Retention, marking,
/// deletion"), assuming its loops as documented:
/// - retention: 1 list to find namespaces with managed snapshots; per namespace 1 list for its PVC values; per
///   PVC and tier (daily/weekly/monthly) 1 list; 1 `kubectl label` per removed tier label; sleep 0.5 s per PVC;
/// - mark: 1 list; 1 `kubectl label` per marked snapshot; sleep 0.5 s after each;
/// - sweep: 1 list; per deletion 1 get (bound content name), 1 patch of the content, 1 delete; sleep 5 s each;
/// - label sync: 1 list; per managed snapshot 1 get of its content, 1 `kubectl label` if it differs.
struct Original {
    calls: BTreeMap<&'static str, u64>,
    sleep_s: f64,
}

fn original_kubectl_calls(
    namespaces: u64,
    pvcs: u64,
    snapshots: u64,
    removed: u64,
    marked: u64,
    deleted: u64,
    vsc_out_of_sync: u64,
) -> Original {
    let mut calls = BTreeMap::new();
    calls.insert("retention: list", 1 + namespaces + pvcs * 3);
    calls.insert("retention: label", removed);
    calls.insert("mark: list", 1);
    calls.insert("mark: label", marked);
    calls.insert("sweep: list", 1);
    calls.insert("sweep: get+patch+delete", deleted * 3);
    calls.insert("sync: list", 1);
    calls.insert("sync: get vsc", snapshots);
    calls.insert("sync: label vsc", vsc_out_of_sync);
    Original {
        calls,
        sleep_s: pvcs as f64 * 0.5 + marked as f64 * 0.5 + deleted as f64 * 5.0,
    }
}

/// A run's requests by verb and resource, then by verb.
fn print_requests(requests: &BTreeMap<(String, String), u64>) {
    let mut by_verb: BTreeMap<&str, u64> = BTreeMap::new();
    for ((verb, resource), n) in requests {
        println!("      {verb:<7} {resource:<28} {n:>8}");
        *by_verb.entry(verb.as_str()).or_default() += n;
    }
    let verbs: Vec<String> = by_verb.iter().map(|(v, n)| format!("{v} {n}")).collect();
    println!(
        "      by verb: {}; total {}",
        verbs.join(", "),
        by_verb.values().sum::<u64>()
    );
}

/// "kube-sim 0.26 s" or "kube-apiserver 1.20 s, etcd 0.30 s".
fn servers_cpu(m: &Measured) -> String {
    m.servers
        .iter()
        .map(|(name, cpu)| format!("{name} {:.2} s", cpu.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_measured(what: &str, m: &Measured) {
    println!(
        "    {what}: wall {:.2} s; CPU backup-ns {:.2} s, {}; controller peak RSS {:.0} MiB",
        m.run.wall.as_secs_f64(),
        m.run.cpu.as_secs_f64(),
        servers_cpu(m),
        m.run.max_rss_kib as f64 / 1024.0
    );
    print_requests(&m.requests);
}

fn count(report: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(report, |v, k| &v[*k])
        .as_u64()
        .unwrap_or_else(|| panic!("{path:?} in the report"))
}

fn main() {
    // `cargo bench` passes `--bench` too; `--real` is ours.
    let with_real = std::env::args().skip(1).any(|a| a == "--real");
    if with_real {
        real::require_binaries();
    }
    let sizes = sizes(if with_real {
        &[10_000, 100_000]
    } else {
        &[1_000, 10_000, 100_000]
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    for size in sizes {
        let sim = rt.block_on(one_size(size));
        if with_real {
            let real = rt.block_on(one_size_real(size));
            print_side_by_side(&sim, &real);
        }
    }
}

/// The three controller runs on one cluster, each printed, with the request floor asserted.
async fn three_runs(side: &Side<'_>, home: &Path, total: usize) -> Figures {
    let pages = total.div_ceil(PAGE as usize) as u64;
    let lists = |r: &BTreeMap<(String, String), u64>, resource: &str| {
        r.get(&("list".to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    };

    // 1. controller --dry-run
    let dry = side.measure(home, &["--dry-run"]).await;
    println!("  1. controller -A --dry-run ({})", side.name());
    print_measured("dry run", &dry);
    let r = &dry.requests;
    assert_eq!(lists(r, "volumesnapshots"), pages);
    assert_eq!(lists(r, "volumesnapshotcontents"), pages);
    // Besides the two lists above, the sweep of crashed `verify` runs lists claims and pods (one page each).
    assert!(
        r.keys().all(|(verb, _)| verb == "list"),
        "a dry run only lists: {r:?}"
    );

    // 2. the real run, delete pause 0s
    let real = side.measure(home, &["--delete-pause", "0s"]).await;
    println!("  2. controller -A --delete-pause 0s ({})", side.name());
    print_measured("real run", &real);
    let report = &real.run.report;
    let patched = count(report, &["retention", "counts", "patched"]);
    let deleted = count(report, &["retention", "counts", "deleted"]);
    let synced = count(report, &["sync", "patched"]);
    assert_eq!(count(report, &["retention", "counts", "failed"]), 0);
    assert_eq!(
        patched as usize,
        total * 2 / 5,
        "patches = changed snapshots"
    );
    assert_eq!(deleted as usize, total / 5);
    let get = |verb: &str, resource: &str| {
        real.requests
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(get("patch", "volumesnapshots"), patched);
    assert_eq!(get("patch", "volumesnapshotcontents"), synced + deleted);
    assert_eq!(get("delete", "volumesnapshots"), deleted);
    assert_eq!(
        get("get", "volumesnapshots") + get("get", "volumesnapshotcontents"),
        0
    );
    println!(
        "      with the default --delete-pause 5s the deletions would add {:.1} h of pacing",
        deleted.saturating_sub(1) as f64 * 5.0 / 3600.0
    );

    // 3. converged re-run
    let again = side.measure(home, &["--delete-pause", "0s"]).await;
    println!("  3. re-run (converged) ({})", side.name());
    print_measured("re-run", &again);
    let r = &again.requests;
    assert!(
        r.keys().all(|(verb, _)| verb == "list"),
        "a converged run only lists: {r:?}"
    );
    Figures { dry, real, again }
}

async fn one_size(total: usize) -> Figures {
    let namespaces = total / (PVCS_PER_NAMESPACE * SNAPSHOTS_PER_PVC);
    let total = namespaces * PVCS_PER_NAMESPACE * SNAPSHOTS_PER_PVC;
    let tmp = tempfile::tempdir().expect("temp dir");
    let sim = kube_sim::Sim::builder()
        .state_dir(tmp.path().join("sim"))
        .start()
        .await
        .expect("kube-sim starts");
    let t = Instant::now();
    for from in (0..namespaces).step_by(100) {
        sim.apply_yaml(&seed_yaml(from, (from + 100).min(namespaces)))
            .expect("seed applies");
    }
    println!(
        "\n== {total} snapshots + {total} contents in {namespaces} namespaces, {} PVCs (seeded in {:.1} s)",
        namespaces * PVCS_PER_NAMESPACE,
        t.elapsed().as_secs_f64()
    );
    let figures = three_runs(&Side::Sim(&sim), tmp.path(), total).await;
    let (dry, real) = (&figures.dry.run, &figures.real.run);

    let orig = original_kubectl_calls(
        namespaces as u64,
        (namespaces * PVCS_PER_NAMESPACE) as u64,
        total as u64,
        count(&dry.report, &["retention", "counts", "labels_removed"]),
        count(&dry.report, &["retention", "counts", "marked"]),
        count(&dry.report, &["retention", "counts", "deleted"]),
        count(&dry.report, &["sync", "patched"]),
    );
    let orig_total: u64 = orig.calls.values().sum();
    println!(
        "  original, same data: kubectl processes (one per call, from original-behaviour.md):"
    );
    for (what, n) in &orig.calls {
        println!("      {what:<26} {n:>8}");
    }
    println!(
        "      total                      {orig_total:>8}   + fixed sleeps {:.0} s ({:.1} h)",
        orig.sleep_s,
        orig.sleep_s / 3600.0
    );
    println!(
        "  backup-ns, same data: {} requests in {:.2} s (one process)",
        sim_total(real),
        real.wall.as_secs_f64()
    );
    sim.shutdown().await;
    figures
}

/// The same data and runs on the real cluster: etcd and kube-apiserver of `scripts/cluster up --only-api`.
async fn one_size_real(total: usize) -> Figures {
    let namespaces = total / (PVCS_PER_NAMESPACE * SNAPSHOTS_PER_PVC);
    let total = namespaces * PVCS_PER_NAMESPACE * SNAPSHOTS_PER_PVC;
    println!("\n== {total} snapshots + {total} contents on the real cluster");
    let cluster = real::Cluster::up().await;
    let (api, etcd) = (cluster.cpu("kube-apiserver"), cluster.cpu("etcd"));
    let t = Instant::now();
    let requests = cluster.seed(namespaces).await;
    let seed_wall = t.elapsed();
    println!(
        "  seeded in {:.1} s: {requests} requests ({:.0}/s, {} in flight), CPU kube-apiserver {:.1} s, etcd {:.1} s",
        seed_wall.as_secs_f64(),
        requests as f64 / seed_wall.as_secs_f64(),
        real::SEED_CONCURRENCY,
        cluster
            .cpu("kube-apiserver")
            .saturating_sub(api)
            .as_secs_f64(),
        cluster.cpu("etcd").saturating_sub(etcd).as_secs_f64(),
    );
    let home = tempfile::tempdir().expect("temp dir");
    three_runs(&Side::Real(&cluster), home.path(), total).await
}

/// One line per run and cluster: the kube-sim figures above, and the real cluster's below them.
fn print_side_by_side(sim: &Figures, real: &Figures) {
    println!("  side by side, same data and runs (kube-sim, then the real cluster):");
    println!(
        "    {:<8} {:<13} {:>9} {:>9} {:>13}  {:<40} {:>9}",
        "run", "cluster", "requests", "wall", "CPU backup-ns", "CPU server", "peak RSS"
    );
    let runs = [
        ("dry run", &sim.dry, &real.dry),
        ("real", &sim.real, &real.real),
        ("re-run", &sim.again, &real.again),
    ];
    for (what, on_sim, on_real) in runs {
        for (cluster, m) in [("kube-sim", on_sim), ("real cluster", on_real)] {
            println!(
                "    {what:<8} {cluster:<13} {:>9} {:>7.2} s {:>11.2} s  {:<40} {:>5.0} MiB",
                m.total(),
                m.run.wall.as_secs_f64(),
                m.run.cpu.as_secs_f64(),
                servers_cpu(m),
                m.run.max_rss_kib as f64 / 1024.0
            );
        }
    }
}

/// The real run's requests, recomputed from its report.
fn sim_total(run: &Run) -> u64 {
    let listed = count(&run.report, &["retention", "counts", "listed"]);
    2 * listed.div_ceil(u64::from(PAGE))
        + count(&run.report, &["retention", "counts", "patched"])
        + count(&run.report, &["sync", "patched"])
        + 2 * count(&run.report, &["retention", "counts", "deleted"])
}
