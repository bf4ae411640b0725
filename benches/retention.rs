//! Benchmark of the pure retention planner on 100,000 snapshots (`cargo bench --bench retention`).
//!
//! Setup: one PVC's year of nightly history is produced by the real pipeline (creation labels + planner, policy
//! 7/4/12, grace 1 day), stopped just before the last night's retention run so the measured run has real work.
//! That history is replicated, with per-namespace time jitter, across 2 PVCs per namespace until there are
//! 100,000 snapshots. Prints wall time of `plan()` (min and median of several runs) and peak RSS (VmHWM).
//! Target on the 2-core box: < 200 ms and < 200 MB.

use backup_ns::clock::Clock;
use backup_ns::labels::{self, PriorSnapshot};
use backup_ns::retention::policy::{self, Action, ObservedSnapshot, Options};
use backup_ns::vocab::retention::{RetentionPolicy, TierCounts};
use chrono::{Duration, TimeZone, Utc};
use std::time::Instant;

const TOTAL: usize = 100_000;
const PVCS_PER_NAMESPACE: usize = 2;
const RUNS: usize = 7;

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn rss_text() -> String {
    vm_hwm_kib().map_or_else(
        || "unavailable (no /proc/self/status)".to_string(),
        |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
    )
}

/// A year of nightly history for one PVC, produced by the real creation rule and planner.
fn template_history() -> (Vec<ObservedSnapshot>, chrono::DateTime<Utc>) {
    let counts = TierCounts::ORIGINAL_DEFAULTS;
    let annotation = RetentionPolicy::Tiers(counts).to_annotation();
    let options = Options::default();
    let mut live: Vec<ObservedSnapshot> = Vec::new();
    let mut t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 30, 0).unwrap();
    for night in 0..366 {
        let clock = Clock::fixed(t, chrono_tz::UTC);
        let prior: Vec<PriorSnapshot<'_>> = live
            .iter()
            .map(|s| PriorSnapshot {
                labels: &s.labels,
                source_pvc: Some(&s.pvc),
                created: s.created,
                ready: s.ready,
            })
            .collect();
        let mut l =
            labels::creation_labels("data", &RetentionPolicy::Tiers(counts), &prior, &clock);
        drop(prior);
        l.insert(labels::TYPE.to_string(), labels::TYPE_CRONJOB.to_string());
        live.push(ObservedSnapshot {
            namespace: String::new(),
            name: format!("data-{}", t.format("%Y-%m-%d-%H%M%S")),
            pvc: "data".to_string(),
            labels: l,
            retention: Some(annotation.clone()),
            created: Some(t),
            ready: true,
            content: Some(format!("snapcontent-{night}")),
            deleting: false,
            group: None,
            run_id: None,
        });
        if night < 365 {
            let p = policy::plan(&live, &options, &clock.at(t + Duration::minutes(1)));
            policy::apply_decisions(&mut live, &p.decisions);
            t += Duration::days(1);
        }
    }
    (live, t + Duration::minutes(1))
}

fn main() {
    let setup = Instant::now();
    let (template, now) = template_history();
    let per_pvc = template.len();
    let mut snapshots: Vec<ObservedSnapshot> = Vec::with_capacity(TOTAL);
    let mut ns_index = 0usize;
    'fill: loop {
        let namespace = format!("tenant-{ns_index:05}");
        // Jitter creation times per namespace (CronJobs do not all fire at the same second).
        let jitter = Duration::seconds((ns_index as i64 * 37) % 1800);
        for p in 0..PVCS_PER_NAMESPACE {
            let pvc = if p == 0 { "data" } else { "db" };
            for s in &template {
                if snapshots.len() == TOTAL {
                    break 'fill;
                }
                let mut s = s.clone();
                // One run per night backs up both PVCs: the same plan label and run id on both snapshots.
                s.run_id = Some(format!("{namespace}-{}", s.name));
                s.labels.insert(labels::PLAN.to_string(), "app".to_string());
                s.namespace.clone_from(&namespace);
                s.name = s.name.replacen("data", pvc, 1);
                s.pvc = pvc.to_string();
                s.labels.insert(labels::PVC.to_string(), pvc.to_string());
                s.created = s.created.map(|c| c + jitter);
                snapshots.push(s);
            }
        }
        ns_index += 1;
    }
    let namespaces = snapshots
        .iter()
        .map(|s| s.namespace.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    println!(
        "setup: {} snapshots, {} namespaces x {} PVCs, {} snapshots per PVC (a year of nightly 7/4/12 history), built in {:.0} ms",
        snapshots.len(),
        namespaces,
        PVCS_PER_NAMESPACE,
        per_pvc,
        setup.elapsed().as_secs_f64() * 1000.0
    );
    println!("peak RSS after setup: {}", rss_text());

    let clock = Clock::fixed(now, chrono_tz::UTC);
    let options = Options::default();
    let mut times = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let plan = policy::plan(&snapshots, &options, &clock);
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        last = Some(plan);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let Some(plan) = last else {
        eprintln!("no runs");
        std::process::exit(1);
    };
    let count = |f: fn(&Action) -> bool| plan.decisions.iter().filter(|d| f(&d.action)).count();
    println!(
        "plan(): min {:.1} ms, median {:.1} ms over {RUNS} runs (target < 200 ms); both PVCs of a night in one run",
        times[0],
        times[RUNS / 2]
    );
    println!(
        "decisions: {} remove-label, {} mark, {} delete, {} report; {} guard verdicts, {} tripped",
        count(|a| matches!(a, Action::RemoveLabel { .. })),
        count(|a| matches!(a, Action::Mark { .. })),
        count(|a| matches!(a, Action::Delete)),
        count(|a| matches!(a, Action::Report { .. })),
        plan.guards.len(),
        plan.guards.iter().filter(|g| g.tripped).count(),
    );
    println!("peak RSS after planning: {} (target < 200 MB)", rss_text());

    // The same history without run ids (as snapshots of older versions): the run rule has nothing to join.
    let anonymous: Vec<ObservedSnapshot> = snapshots
        .iter()
        .cloned()
        .map(|mut s| {
            s.run_id = None;
            s
        })
        .collect();
    let mut alone = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let plan = policy::plan(&anonymous, &options, &clock);
        alone.push(start.elapsed().as_secs_f64() * 1000.0);
        drop(plan);
    }
    drop(anonymous);
    alone.sort_by(|a, b| a.total_cmp(b));
    println!(
        "plan() without run ids: min {:.1} ms, median {:.1} ms (the run rule's own cost is the difference)",
        alone[0],
        alone[RUNS / 2]
    );

    // The cluster layer's conversion, measured on a slice so its JSON does not dominate the RSS figure above.
    let sample: Vec<serde_json::Value> = snapshots
        .iter()
        .take(10_000)
        .map(|s| {
            serde_json::json!({
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshot",
                "metadata": {
                    "name": s.name, "namespace": s.namespace, "labels": s.labels,
                    "annotations": {"backup-ns.sh/retention": s.retention},
                    "creationTimestamp": s.created.map(|c| c.to_rfc3339()),
                },
                "spec": {"source": {"persistentVolumeClaimName": s.pvc}, "volumeSnapshotClassName": "csi"},
                "status": {"readyToUse": s.ready, "boundVolumeSnapshotContentName": s.content,
                           "creationTime": s.created.map(|c| c.to_rfc3339())},
            })
        })
        .collect();
    let start = Instant::now();
    let parsed = sample
        .iter()
        .filter_map(|v| ObservedSnapshot::from_volume_snapshot(v).ok())
        .count();
    println!(
        "ObservedSnapshot::from_volume_snapshot: {parsed} objects in {:.1} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
}
