//! A year under chaos: `backup-ns run` for three namespaces (one with two PVCs) and `backup-ns controller -A`,
//! day after day on kube-sim's simulated clock, against a real PostgreSQL, while the API fails 5 % of requests
//! (500, 429, a timeout, 409), exec streams drop mid-dump, and snapshots are slow or never ready.
//!
//! After every day the cluster is checked against a reference model of GFS retention written here, from the
//! runs that succeeded, without the product's policy code: each PVC holds exactly the model's snapshots with the
//! model's tier labels and `delete-after`; foreign snapshots are untouched; every PVC that had a backup still has
//! a ready one; a failed run leaves no new snapshot and no partial dump; every failure shows in the exit code
//! and an Event.
//!
//! The fault seed is printed first; `BACKUP_NS_CHAOS_SEED=N` replays it. The default span is 45 days from
//! 2025-11-25 (crossing two month ends and a year end); `BACKUP_NS_CHAOS_DAYS=400` runs the full year by hand.

use crate::support::postgres::Postgres;
use crate::{Env, both, fixtures_settled, gunzip, listing};
use chrono::{Datelike, NaiveDate};
use kube_sim::{Fault, FaultAction, Sim};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Namespaces and the PVCs each plan backs up (the dump goes to the first).
const NAMESPACES: [(&str, &[&str]); 3] = [
    ("shop", &["pgdata", "files"]),
    ("blog", &["pgdata"]),
    ("wiki", &["pgdata"]),
];

/// The plans' tier counts, small so that a short span sees every tier drop labels.
const TIERS: [(&str, usize); 4] = [("daily", 4), ("weekly", 3), ("monthly", 2), ("yearly", 1)];

const DEFAULT_DAYS: u32 = 45;
const DEFAULT_SEED: u64 = 20_251_125;
const DUMP: &str = "dump.sql.gz";

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 11, 25).unwrap()
}

fn env_number(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}=`{v}` is not a whole number")),
        Err(_) => default,
    }
}

fn fixture(pg: &Postgres) -> String {
    let mut y = String::from(
        "apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-hostpath-snapclass
  annotations:
    snapshot.storage.kubernetes.io/is-default-class: \"true\"
driver: hostpath.csi.k8s.io
deletionPolicy: Delete
",
    );
    for (ns, pvcs) in NAMESPACES.iter().chain([("other", &["pgdata"][..])].iter()) {
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        ));
        for pvc in *pvcs {
            y.push_str(&format!(
                "---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {pvc}
  namespace: {ns}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"
            ));
        }
        if *ns == "other" {
            continue;
        }
        y.push_str(&format!(
            "---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: {ns}
spec:
  containers:
  - name: postgres
    image: postgres
    env:
"
        ));
        for (k, v) in pg.container_env(ns) {
            y.push_str(&format!("    - name: {k}\n      value: \"{v}\"\n"));
        }
        y.push_str("    volumeMounts:\n");
        for (i, _) in pvcs.iter().enumerate() {
            y.push_str(&format!("    - name: v{i}\n      mountPath: /mnt/v{i}\n"));
        }
        y.push_str("  volumes:\n");
        for (i, pvc) in pvcs.iter().enumerate() {
            y.push_str(&format!(
                "  - name: v{i}\n    persistentVolumeClaim:\n      claimName: {pvc}\n"
            ));
        }
    }
    y
}

/// Snapshots that backup-ns must never touch: no backup-ns labels, in each namespace and in one it never runs in.
fn foreign_snapshots() -> String {
    let mut y = String::new();
    for ns in ["shop", "blog", "wiki", "other"] {
        y.push_str(&format!(
            "---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: hand-made
  namespace: {ns}
  labels:
    team: storage
spec:
  source:
    persistentVolumeClaimName: pgdata
"
        ));
    }
    y
}

fn plan(ns: &str, pvcs: &[&str], port: u16) -> String {
    let tiers: String = TIERS
        .iter()
        .map(|(tier, n)| format!("  {tier}: {n}\n"))
        .collect();
    format!(
        "name: {ns}
namespace: {ns}
targets: [{targets}]
hooks:
  pre:
    - type: postgres
      workload: pod/db-0
      container: postgres
      host: 127.0.0.1
      port: {port}
      dumpFile: /mnt/v0/{DUMP}
      timeout: 30s
snapshot:
  nameTemplate: \"{{pvc}}-{{timestamp}}\"
  type: cronjob
  readyTimeout: 2s
retention:
{tiers}",
        targets = pvcs.join(", ")
    )
}

/// One snapshot as the reference model holds it: the day of its run, its tier labels (tier → value) and its
/// `delete-after`, if marked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelSnapshot {
    day: NaiveDate,
    tiers: BTreeMap<&'static str, String>,
    delete_after: Option<NaiveDate>,
}

/// The period a tier's label names, written as the label's value: the day, the ISO week, the month, the year.
fn period(tier: &str, day: NaiveDate) -> String {
    match tier {
        "daily" => day.format("%Y-%m-%d").to_string(),
        "weekly" => {
            let week = day.iso_week();
            format!("{}-w{:02}", week.year(), week.week())
        }
        "monthly" => day.format("%Y-%m").to_string(),
        "yearly" => day.year().to_string(),
        other => unreachable!("no tier {other}"),
    }
}

/// GFS retention as the README describes it, for one PVC: a successful run's snapshot takes each tier whose
/// current period no kept snapshot holds; each tier stays on its newest N snapshots; a snapshot left without a
/// tier is marked `delete-after = today + 1` (the grace day), and deleted once that date has passed; the newest
/// snapshot is never marked or deleted.
#[derive(Debug, Default)]
struct ModelPvc {
    /// Oldest first.
    snapshots: Vec<ModelSnapshot>,
}

impl ModelPvc {
    fn backup(&mut self, day: NaiveDate) {
        let mut tiers = BTreeMap::new();
        for (tier, _) in TIERS {
            let now = period(tier, day);
            if !self
                .snapshots
                .iter()
                .any(|s| s.tiers.get(tier) == Some(&now))
            {
                tiers.insert(tier, now);
            }
        }
        self.snapshots.push(ModelSnapshot {
            day,
            tiers,
            delete_after: None,
        });
    }

    fn retention(&mut self, today: NaiveDate) {
        for (tier, keep) in TIERS {
            let mut held = 0;
            for s in self.snapshots.iter_mut().rev() {
                if s.tiers.contains_key(tier) {
                    held += 1;
                    if held > keep {
                        s.tiers.remove(tier);
                    }
                }
            }
        }
        let newest = self.snapshots.len().saturating_sub(1);
        let due: Vec<bool> = self
            .snapshots
            .iter()
            .enumerate()
            .map(|(i, s)| i != newest && s.delete_after.is_some_and(|d| d < today))
            .collect();
        for (i, s) in self.snapshots.iter_mut().enumerate() {
            if i != newest && s.tiers.is_empty() && s.delete_after.is_none() {
                s.delete_after = today.succ_opt();
            }
        }
        let mut k = 0;
        self.snapshots.retain(|_| {
            k += 1;
            !due[k - 1]
        });
    }

    /// `name → (tier labels, delete-after)` as the cluster should show them.
    fn expected(&self, pvc: &str) -> BTreeMap<String, (BTreeMap<String, String>, Option<String>)> {
        self.snapshots
            .iter()
            .map(|s| {
                (
                    format!("{pvc}-{}-010000", s.day),
                    (
                        s.tiers
                            .iter()
                            .map(|(t, v)| (t.to_string(), v.clone()))
                            .collect(),
                        s.delete_after.map(|d| d.to_string()),
                    ),
                )
            })
            .collect()
    }
}

/// What the cluster shows for one PVC's managed snapshots, in the model's shape.
fn observed(
    sim: &Sim,
    ns: &str,
    pvc: &str,
) -> BTreeMap<String, (BTreeMap<String, String>, Option<String>)> {
    sim.list("volumesnapshots", Some(ns))
        .iter()
        .filter(|s| {
            let l = &s["metadata"]["labels"];
            l["backup-ns.sh/retain"].is_string() && l["backup-ns.sh/pvc"] == pvc
        })
        .map(|s| {
            let l = &s["metadata"]["labels"];
            let tiers = TIERS
                .iter()
                .filter_map(|(t, _)| {
                    l[format!("backup-ns.sh/{t}")]
                        .as_str()
                        .map(|v| (t.to_string(), v.to_string()))
                })
                .collect();
            (
                s["metadata"]["name"].as_str().unwrap_or_default().into(),
                (
                    tiers,
                    l["backup-ns.sh/delete-after"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

fn snapshot_names(sim: &Sim, ns: &str) -> BTreeSet<String> {
    sim.list("volumesnapshots", Some(ns))
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

/// How many Events of `reason` the namespace holds.
fn events(sim: &Sim, ns: &str, reason: &str) -> usize {
    sim.list("events", Some(ns))
        .iter()
        .filter(|e| e["reason"] == reason)
        .count()
}

/// `(name, resourceVersion, labels)` of every snapshot without backup-ns labels.
fn foreign(sim: &Sim) -> Vec<String> {
    let mut out: Vec<String> = sim
        .list("volumesnapshots", None)
        .iter()
        .filter(|s| {
            !s["metadata"]["labels"]
                .as_object()
                .is_some_and(|l| l.keys().any(|k| k.starts_with("backup-ns.sh/")))
        })
        .map(|s| {
            format!(
                "{}/{} rv={} labels={} ready={}",
                s["metadata"]["namespace"].as_str().unwrap_or_default(),
                s["metadata"]["name"].as_str().unwrap_or_default(),
                s["metadata"]["resourceVersion"],
                s["metadata"]["labels"],
                s["status"]["readyToUse"]
            )
        })
        .collect();
    out.sort();
    out
}

/// The day's faults for one namespace's run, drawn from the test's generator.
#[derive(Debug)]
struct DayFaults {
    faults: Vec<Fault>,
    what: Vec<String>,
}

fn draw_faults(rng: &mut rand::rngs::StdRng, ns: &str) -> DayFaults {
    let mut faults = Vec::new();
    let mut what = Vec::new();
    if rng.random_range(0..100) < 6 {
        // The hook's execs: the check with the dump, then the runner's kill after a lost stream; any of them may
        // lose its stream (a third is drawn too, and on a day with no third exec its fault never fires).
        let nth = rng.random_range(1..=3);
        let after = Duration::from_millis(rng.random_range(5..120));
        faults.push(Fault::exec_drop(Some(ns), nth, after));
        what.push(format!("exec {nth} dropped after {after:?}"));
    }
    let snapshot = rng.random_range(0..100);
    if snapshot < 3 {
        faults.push(Fault::snapshot_never_ready_in(ns));
        what.push("snapshots never ready".into());
    } else if snapshot < 10 {
        let delay = Duration::from_millis(rng.random_range(200..1200));
        faults.push(Fault::snapshot_slow(Some(ns), delay));
        what.push(format!("snapshots {delay:?} slow"));
    }
    DayFaults { faults, what }
}

/// The PVC directory holds at most the complete dump and its record: no partial file, no pid file, the dump
/// ends as pg_dump ends a finished one (its trailer comment; newer versions add an `\unrestrict` line after it),
/// and a record, when there is one, names this very dump.
fn assert_no_partial_dump(sim: &Sim, ns: &str, pvc: &str, context: &str) {
    let dir = sim.pvc_dir(ns, pvc);
    let files = listing(&dir);
    let record = format!("{DUMP}.sha256");
    assert!(
        files.is_empty() || files == [DUMP] || files == [DUMP, record.as_str()],
        "{context}: {ns}/{pvc} holds {files:?}"
    );
    if files.is_empty() {
        return;
    }
    if files.len() == 2 {
        let sum = ring::digest::digest(
            &ring::digest::SHA256,
            &std::fs::read(dir.join(DUMP)).expect("the dump"),
        );
        let hex: String = sum.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            std::fs::read_to_string(dir.join(&record)).expect("the record"),
            format!("{hex}  {DUMP}\n"),
            "{context}: {ns}/{pvc}'s record names another dump"
        );
    }
    let sql = String::from_utf8_lossy(&gunzip(&dir.join(DUMP))).into_owned();
    assert!(
        sql.contains("\n-- PostgreSQL database dump complete\n"),
        "{context}: {ns}/{pvc}'s dump is cut: …{}",
        &sql[sql.len().saturating_sub(200)..]
    );
}

#[derive(Debug, Default)]
struct Tally {
    runs_ok: u32,
    runs_retention_failed: u32,
    runs_failed: u32,
    exit_codes: BTreeMap<i32, u32>,
    day_faults: u32,
    api_faults: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_of_nights_under_chaos_keeps_exactly_the_gfs_set_of_the_runs_that_succeeded() {
    let seed = env_number("BACKUP_NS_CHAOS_SEED", DEFAULT_SEED);
    let days = env_number("BACKUP_NS_CHAOS_DAYS", DEFAULT_DAYS.into()) as u32;
    println!(
        "chaos seed: {seed} (replay with BACKUP_NS_CHAOS_SEED={seed}), {days} days from {}",
        first_day()
    );
    let started = Instant::now();
    let pg = Postgres::start();
    for (ns, _) in NAMESPACES {
        pg.create_database(ns);
        pg.psql(
            ns,
            "CREATE TABLE items (id serial PRIMARY KEY, day date NOT NULL, body text NOT NULL)",
        );
    }
    let sim = Sim::builder()
        .snapshot_delay(Duration::from_millis(20))
        .clock(Some(first_day().and_hms_opt(0, 0, 0).unwrap().and_utc()))
        .start()
        .await
        .expect("kube-sim starts");
    tokio::time::sleep(Duration::from_millis(20)).await;
    sim.apply_yaml(&fixture(&pg)).expect("fixture applies");
    sim.apply_yaml(&foreign_snapshots())
        .expect("foreign snapshots apply");
    let env = Env {
        sim,
        tmp: tempfile::tempdir().unwrap(),
    };
    env.eventually(
        "PVCs are Bound, pods Running, foreign snapshots ready",
        |sim| {
            fixtures_settled(sim)
                && sim
                    .list("volumesnapshots", None)
                    .iter()
                    .all(|s| s["status"]["readyToUse"] == true)
        },
    )
    .await;
    let untouched = foreign(&env.sim);
    assert_eq!(untouched.len(), 4, "{untouched:#?}");
    let plans: Vec<_> = NAMESPACES
        .iter()
        .map(|(ns, pvcs)| env.plan(&format!("{ns}.yaml"), &plan(ns, pvcs, pg.port)))
        .collect();

    // 5 % of all API requests, split over the four kinds of failure.
    let api_faults = [
        Fault::random(13, seed, FaultAction::InternalError),
        Fault::random(13, seed + 1, FaultAction::TooManyRequests),
        Fault::random(
            12,
            seed + 2,
            FaultAction::Timeout {
                after: Duration::from_millis(20),
            },
        ),
        Fault::random(12, seed + 3, FaultAction::Conflict),
    ];
    for fault in &api_faults {
        env.sim.faults().add(fault.clone());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut model: BTreeMap<(&str, &str), ModelPvc> = BTreeMap::new();
    let mut tally = Tally::default();

    for n in 0..days {
        let day = first_day() + chrono::Days::new(n.into());
        let now = format!("{day}T01:00:00Z");
        env.sim
            .clock()
            .set(chrono::DateTime::parse_from_rfc3339(&now).unwrap().to_utc());
        let clock = [("BACKUP_NS_NOW", now.as_str())];
        for ((ns, pvcs), plan) in NAMESPACES.iter().zip(&plans) {
            pg.psql(
                ns,
                &format!(
                    "INSERT INTO items (day, body) SELECT '{day}', md5(g::text) FROM generate_series(1, 40) g"
                ),
            );
            let day_faults = draw_faults(&mut rng, ns);
            tally.day_faults += day_faults.faults.len() as u32;
            for fault in &day_faults.faults {
                env.sim.faults().add(fault.clone());
            }
            let before = snapshot_names(&env.sim, ns);
            let failed_events = events(&env.sim, ns, "BackupFailed");
            let warnings_after_backup = events(&env.sim, ns, "RetentionFailed");
            let out = env
                .run(&["run", plan.to_str().unwrap(), "-o", "json"], &clock)
                .await;
            for fault in &day_faults.faults {
                env.sim.faults().remove(fault);
            }
            let context = format!(
                "day {n} ({day}), {ns}, seed {seed}, faults {:?}\n{}",
                day_faults.what,
                both(&out)
            );
            let code = out.status.code().unwrap_or(-1);
            *tally.exit_codes.entry(code).or_default() += 1;
            let after = snapshot_names(&env.sim, ns);
            let todays: BTreeSet<String> = pvcs
                .iter()
                .map(|pvc| format!("{pvc}-{day}-010000"))
                .collect();
            match code {
                0 | 6 => {
                    for name in &todays {
                        let vs = env
                            .sim
                            .get(
                                "snapshot.storage.k8s.io/v1",
                                "volumesnapshots",
                                Some(ns),
                                name,
                            )
                            .unwrap_or_else(|| panic!("{context}\n{name} is missing"));
                        assert_eq!(vs["status"]["readyToUse"], true, "{context}\n{vs:#}");
                    }
                    for pvc in *pvcs {
                        model.entry((ns, pvc)).or_default().backup(day);
                    }
                    if code == 0 {
                        tally.runs_ok += 1;
                    } else {
                        tally.runs_retention_failed += 1;
                        assert!(
                            events(&env.sim, ns, "RetentionFailed") > warnings_after_backup,
                            "{context}\nexit 6 without a RetentionFailed Event"
                        );
                    }
                }
                _ => {
                    tally.runs_failed += 1;
                    let report: serde_json::Value =
                        serde_json::from_slice(&out.stdout).unwrap_or_default();
                    println!(
                        "day {n} {ns}: exit {code} ({:?}): {}",
                        day_faults.what,
                        report["error"].as_str().unwrap_or("(no JSON report)")
                    );
                    assert!(
                        after.is_subset(&before),
                        "{context}\na failed run left snapshots: {:?}",
                        after.difference(&before).collect::<Vec<_>>()
                    );
                    assert!(
                        events(&env.sim, ns, "BackupFailed") > failed_events,
                        "{context}\na failed run without a BackupFailed Event"
                    );
                }
            }
            for pvc in *pvcs {
                assert_no_partial_dump(&env.sim, ns, pvc, &context);
            }
        }

        let controller = env.controller(&["-A"], &clock).await;
        let context = format!(
            "day {n} ({day}), seed {seed}, controller\n{}",
            both(&controller)
        );
        assert_eq!(controller.status.code(), Some(0), "{context}");
        for ((ns, pvc), m) in model.iter_mut() {
            m.retention(day);
            assert_eq!(
                observed(&env.sim, ns, pvc),
                m.expected(pvc),
                "{context}\n{ns}/{pvc} differs from the model (left: cluster, right: model)"
            );
            assert!(
                env.sim
                    .list("volumesnapshots", Some(ns))
                    .iter()
                    .any(|s| s["metadata"]["labels"]["backup-ns.sh/pvc"] == *pvc
                        && s["status"]["readyToUse"] == true),
                "{context}\n{ns}/{pvc} has no ready snapshot"
            );
        }
        assert_eq!(
            foreign(&env.sim),
            untouched,
            "{context}\nforeign snapshots changed"
        );
    }

    tally.api_faults = env.sim.faults().fired().iter().sum();
    let runs = tally.runs_ok + tally.runs_retention_failed + tally.runs_failed;
    println!(
        "{days} days in {:.1?}: {runs} runs ({} succeeded, {} backed up with retention failed, {} failed; exit codes {:?}), \
         {} controller passes; faults injected: {} API requests, {} exec drops and slow or never-ready snapshots",
        started.elapsed(),
        tally.runs_ok,
        tally.runs_retention_failed,
        tally.runs_failed,
        tally.exit_codes,
        days,
        tally.api_faults,
        tally.day_faults,
    );
    assert!(
        tally.api_faults > 0 && tally.runs_failed > 0 && tally.runs_ok > 0,
        "the chaos must have bitten: {tally:?}"
    );
}
