//! Benchmark of retention against a cluster (`cargo bench --bench retention_cluster`), on an in-process kube-sim
//! seeded with 10,000 VolumeSnapshots (and their contents) across 1,000 namespaces and 2,000 PVCs.
//!
//! Per PVC: 5 nightly snapshots, policy annotation daily=2: the 3rd newest loses its daily label and is marked,
//! the 4th (bare) is marked, the 5th is past its delete-after and is deleted. So a real run changes 4,000 objects
//! by patch and deletes 2,000.
//!
//! Measured (from the sim's request log, by verb and resource, plus wall time):
//! 1. `controller --dry-run`: one paged list of snapshots, label sync planned against one paged list of contents,
//!    retention planned; no writes. This is exactly the composition `backup-ns controller` runs
//!    (`retention::apply::list_scope` → `retention::sync::sync_listed` → `retention::apply::apply_listed`).
//! 2. a real apply (tiers, mark, sweep; `--delete-pause 0s`), then 3. a re-run (converged: one list, no writes).
//!
//! Printed beside it: the kubectl calls and fixed sleeps the original's scripts would need for the same data,
//! derived from original-behaviour.md (see `original_kubectl_calls`). Prints figures only; asserts the expected
//! shape (list requests = ceil(N / page size), patches = changed objects), never timings.

use backup_ns::clock::Clock;
use backup_ns::cluster::{Cluster, ConnectOptions};
use backup_ns::retention::Options;
use backup_ns::retention::apply::{self, ApplyOptions};
use backup_ns::retention::sync;
use backup_ns::vocab::scope::Scope;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const NAMESPACES: usize = 1_000;
const PVCS_PER_NAMESPACE: usize = 2;
const SNAPSHOTS_PER_PVC: usize = 5;
const PAGE: u32 = 500;
const NOW: &str = "2025-03-01T04:30:00Z";

fn vm_hwm_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or("unavailable".into(), |kib| {
            format!("{:.0} MiB", kib / 1024.0)
        })
}

fn seed_yaml() -> String {
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc);
    let mut out = String::with_capacity(NAMESPACES * PVCS_PER_NAMESPACE * SNAPSHOTS_PER_PVC * 1200);
    for n in 0..NAMESPACES {
        let ns = format!("tenant-{n:04}");
        out.push_str(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string(),
        );
        out.push_str("\n---\n");
        for p in 0..PVCS_PER_NAMESPACE {
            let pvc = format!("data-{p}");
            for k in 0..SNAPSHOTS_PER_PVC {
                let created =
                    now - chrono::Duration::days(k as i64 + 1) - chrono::Duration::hours(4);
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
                out.push_str(&vsc.to_string());
                out.push_str("\n---\n");
                out.push_str(&vs.to_string());
                out.push_str("\n---\n");
            }
        }
    }
    out
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

fn print_requests(sim: &kube_sim::Sim) -> u64 {
    let snap = sim.requests().snapshot();
    let mut total = 0;
    for ((verb, resource), n) in &snap {
        println!("    {verb:<7} {resource:<28} {n:>7}");
        total += n;
    }
    println!("    total                                {total:>7}");
    total
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let sim = kube_sim::Sim::builder()
        .state_dir(tmp.path().join("sim"))
        .start()
        .await
        .expect("kube-sim starts");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let total = NAMESPACES * PVCS_PER_NAMESPACE * SNAPSHOTS_PER_PVC;
    let t = Instant::now();
    sim.apply_yaml(&seed_yaml()).expect("seed applies");
    println!(
        "seeded {total} snapshots + {total} contents in {NAMESPACES} namespaces, {} PVCs ({:.1} s)",
        NAMESPACES * PVCS_PER_NAMESPACE,
        t.elapsed().as_secs_f64()
    );
    let cluster = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(sim.kubeconfig_path().to_path_buf()),
        namespace: Some("default".into()),
        service_account_namespace_file: Some(tmp.path().join("no-sa")),
        ..Default::default()
    })
    .await
    .expect("client connects");
    let clock = Clock::fixed(
        DateTime::parse_from_rfc3339(NOW)
            .unwrap()
            .with_timezone(&Utc),
        chrono_tz::UTC,
    );
    let mut options = ApplyOptions {
        scope: Scope::All,
        policy: Options::default(),
        dry_run: true,
        delete_pause: Duration::ZERO,
        page_size: PAGE,
        ..ApplyOptions::default()
    };
    let pages = total.div_ceil(PAGE as usize) as u64;

    // 1. controller --dry-run
    sim.requests().reset();
    let t = Instant::now();
    let listed = apply::list_scope(&cluster, &Scope::All, None, PAGE)
        .await
        .expect("list");
    let contents = apply::list_contents(&cluster, PAGE)
        .await
        .expect("list contents");
    let synced = sync::sync_listed(&cluster, &listed, &contents, true, 8).await;
    let dry = apply::apply_listed(&cluster, &listed, Some(&contents), &options, &clock).await;
    let dry_wall = t.elapsed();
    println!(
        "\n1. controller -A --dry-run: {:.2} s wall",
        dry_wall.as_secs_f64()
    );
    println!("    {}", synced.summary_line());
    println!("    {}", dry.summary_line());
    print_requests(&sim);
    assert_eq!(sim.requests().count("list", "volumesnapshots"), pages);
    assert_eq!(
        sim.requests().count("list", "volumesnapshotcontents"),
        pages
    );

    // 2. real apply (tiers + mark + sweep), delete pause 0s
    options.dry_run = false;
    sim.requests().reset();
    let t = Instant::now();
    let real = apply::apply(&cluster, &options, &clock)
        .await
        .expect("apply");
    let real_wall = t.elapsed();
    println!(
        "\n2. retention apply, all phases, --delete-pause 0s: {:.2} s wall",
        real_wall.as_secs_f64()
    );
    println!("    {}", real.summary_line());
    print_requests(&sim);
    let r = sim.requests();
    assert_eq!(r.count("list", "volumesnapshots"), pages);
    assert_eq!(
        r.count("patch", "volumesnapshots") as usize,
        real.counts.patched
    );
    assert_eq!(
        real.counts.patched,
        4 * NAMESPACES,
        "patches = changed objects"
    );
    assert_eq!(real.counts.deleted, 2 * NAMESPACES);
    assert_eq!(real.counts.failed, 0);
    // At most two requests per deletion, none of them a read: every seeded content says Retain.
    assert_eq!(r.count("list", "volumesnapshotcontents"), pages);
    assert_eq!(
        r.count("patch", "volumesnapshotcontents") as usize,
        real.counts.deleted
    );
    assert_eq!(
        r.count("delete", "volumesnapshots") as usize,
        real.counts.deleted
    );
    assert_eq!(r.count("get", "volumesnapshots"), 0);
    assert_eq!(r.count("get", "volumesnapshotcontents"), 0);
    println!(
        "    with the default --delete-pause 5s the deletions would add {:.0} s of pacing",
        real.counts.deleted.saturating_sub(1) as f64 * 5.0
    );

    // 3. converged re-run
    sim.requests().reset();
    let t = Instant::now();
    let again = apply::apply(&cluster, &options, &clock)
        .await
        .expect("apply");
    println!(
        "\n3. re-run (converged): {:.2} s wall",
        t.elapsed().as_secs_f64()
    );
    println!("    {}", again.summary_line());
    print_requests(&sim);
    assert!(again.outcomes.is_empty());

    let orig = original_kubectl_calls(
        NAMESPACES as u64,
        (NAMESPACES * PVCS_PER_NAMESPACE) as u64,
        total as u64,
        dry.counts.labels_removed as u64,
        dry.counts.marked as u64,
        dry.counts.deleted as u64,
        synced.patched as u64,
    );
    let ours_dry = 2 * pages;
    println!("\nside by side, same data (controller: sync + retention + mark + sweep):");
    println!("    original kubectl calls (one process each), derived from original-behaviour.md:");
    let mut orig_total = 0;
    for (what, n) in &orig.calls {
        println!("      {what:<26} {n:>7}");
        orig_total += n;
    }
    println!(
        "      total                      {orig_total:>7}   + fixed sleeps {:.0} s ({:.1} h)",
        orig.sleep_s,
        orig.sleep_s / 3600.0
    );
    println!(
        "    backup-ns: dry run {ours_dry} requests; real retention run {} requests (label sync would add {} VSC patches)",
        sim_total_of(&real),
        synced.patched
    );
    println!(
        "\npeak RSS (bench process incl. the simulator and its 20,000 objects): {}",
        vm_hwm_mib()
    );
    sim.shutdown().await;
}

/// Requests of the real run, recomputed from its counts for the summary line (the sim's log was reset since).
fn sim_total_of(report: &apply::ApplyReport) -> String {
    format!(
        "{} lists + {} patches + {} deletions (each: patch VSC deletionPolicy under test ops, delete VS with \
         uid/resourceVersion preconditions)",
        2 * (report.counts.listed).div_ceil(PAGE as usize),
        report.counts.patched,
        report.counts.deleted
    )
}
