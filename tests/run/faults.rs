//! `run` and `controller` against a flaky apiserver (kube-sim's fault injection): one transient fault in each
//! request they make is retried and the night still succeeds; a persisting fault fails the step in time, naming
//! the request; and 60 nights under 5 % random transient faults end with exactly the snapshots of the same 60
//! nights without faults.

use crate::{Env, both, pod, pvc, start};
use kube_sim::{Fault, FaultAction};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A PVC with a pod mounting it (the exec hook's target), backed up nightly with GFS retention.
fn fixture() -> String {
    format!(
        "{}{}",
        pvc("data"),
        pod("app-0", "app", &[], &[("data", "/data")])
    )
}

const PLAN: &str = "name: app
namespace: shop
targets: [data]
hooks:
  pre:
    - type: exec
      workload: pod/app-0
      container: app
      command: [touch, /data/flushed]
snapshot:
  nameTemplate: \"{pvc}-{timestamp}\"
  type: cronjob
retention:
  daily: 3
  weekly: 2
  monthly: 1
";

/// 01:00 UTC on day `n` after 2025-01-01.
fn night(n: u32) -> String {
    let day = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Days::new(n.into());
    format!("{day}T01:00:00Z")
}

/// The outcome of one night: `run`, then `controller`, both as JSON, with their exit codes.
struct Night {
    run: std::process::Output,
    controller: std::process::Output,
}

impl Night {
    fn ok(&self) -> bool {
        self.run.status.code() == Some(0) && self.controller.status.code() == Some(0)
    }

    fn retries(&self) -> u64 {
        let of = |out: &std::process::Output| {
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .and_then(|v| v["api_retries"].as_u64())
                .unwrap_or(0)
        };
        of(&self.run) + of(&self.controller)
    }

    fn describe(&self) -> String {
        format!(
            "run: {}\ncontroller: {}",
            both(&self.run),
            both(&self.controller)
        )
    }
}

async fn one_night(env: &Env, n: u32) -> Night {
    let plan = env.tmp.path().join("app.yaml");
    if !plan.exists() {
        env.plan("app.yaml", PLAN);
    }
    let now = night(n);
    // The sim's clock follows the nights too: retention orders snapshots by their creation time.
    env.sim
        .clock()
        .set(chrono::DateTime::parse_from_rfc3339(&now).unwrap().to_utc());
    let clock = [("BACKUP_NS_NOW", now.as_str())];
    let run = env
        .run(&["run", plan.to_str().unwrap(), "-o", "json"], &clock)
        .await;
    let controller = env.controller(&["-n", "shop"], &clock).await;
    Night { run, controller }
}

fn snapshot_names(env: &Env) -> BTreeSet<String> {
    env.snapshots()
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_transient_fault_in_each_request_of_run_and_controller_is_retried_and_the_night_succeeds()
 {
    let env = start(&fixture()).await;
    // Nights without faults first, so that retention has tier labels to remove and snapshots to delete. (Every
    // seventh night, from night 10 on, the weekly tier keeps the snapshot that would go: the start is chosen so
    // that both nights of the delete's faults have a deletion.)
    for n in 0..14 {
        let night = one_night(&env, n).await;
        assert!(night.ok(), "warm-up night {n}: {}", night.describe());
    }
    let actions = [
        FaultAction::InternalError,
        FaultAction::ServiceUnavailable,
        FaultAction::Timeout {
            after: Duration::from_millis(50),
        },
        FaultAction::ConnectionReset,
    ];
    let requests = [
        ("get", "namespaces"),
        ("get", "persistentvolumeclaims"),
        ("list", "volumesnapshotclasses"),
        ("get", "pods"),
        ("create", "pods/exec"),
        ("list", "volumesnapshots"),
        ("create", "volumesnapshots"),
        ("watch", "volumesnapshots"),
        ("patch", "volumesnapshots"),
        ("delete", "volumesnapshots"),
        ("list", "volumesnapshotcontents"),
        ("patch", "volumesnapshotcontents"),
        ("create", "events"),
    ];
    // Retention reads no snapshot or content one by one (deletions go as listed), so no `get` of either is here.
    let mut n = 14;
    for (i, (verb, resource)) in requests.into_iter().enumerate() {
        for action in [actions[i % actions.len()], actions[(i + 1) % actions.len()]] {
            env.sim.faults().clear();
            env.sim.faults().add(Fault::nth(verb, resource, 1, action));
            let night = one_night(&env, n).await;
            n += 1;
            let case = format!("{action:?} on {verb} {resource}");
            assert_eq!(
                env.sim.faults().fired(),
                [1],
                "{case}: the request was not made\n{}",
                night.describe()
            );
            assert!(night.ok(), "{case}\n{}", night.describe());
            assert!(
                night.retries() >= 1,
                "{case}: retry not counted\n{}",
                night.describe()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisting_fault_fails_the_step_within_its_deadline_naming_the_request() {
    let env = start(&fixture()).await;
    env.sim.faults().add(Fault::request(
        "list",
        "volumesnapshots",
        FaultAction::ServiceUnavailable,
    ));
    let started = Instant::now();
    let night = one_night(&env, 0).await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(night.run.status.code(), Some(1), "{}", night.describe());
    let stderr = String::from_utf8_lossy(&night.run.stderr);
    assert!(
        stderr.contains("could not list volumesnapshots.snapshot.storage.k8s.io in namespace shop")
            && stderr.contains("HTTP 503"),
        "{stderr}"
    );
    assert!(
        snapshot_names(&env).is_empty(),
        "no snapshot without its labels' list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_nights_under_random_transient_faults_end_with_the_snapshots_of_sixty_calm_nights() {
    const SEED: u64 = 18;
    println!("random fault seed: {SEED}");
    let calm = start(&fixture()).await;
    let flaky = start(&fixture()).await;
    // 5 % of all requests, split over the four kinds of transient failure.
    for (i, (per_mille, action)) in [
        (13, FaultAction::InternalError),
        (13, FaultAction::ServiceUnavailable),
        (
            12,
            FaultAction::Timeout {
                after: Duration::from_millis(20),
            },
        ),
        (12, FaultAction::ConnectionReset),
    ]
    .into_iter()
    .enumerate()
    {
        flaky
            .sim
            .faults()
            .add(Fault::random(per_mille, SEED + i as u64, action));
    }
    let mut retries = 0;
    for n in 0..60 {
        let a = one_night(&calm, n).await;
        assert!(a.ok(), "calm night {n}: {}", a.describe());
        let b = one_night(&flaky, n).await;
        assert!(b.ok(), "flaky night {n} (seed {SEED}): {}", b.describe());
        retries += b.retries();
        // Compared every night, so a divergence names the night it began.
        assert_eq!(
            snapshot_names(&flaky),
            snapshot_names(&calm),
            "night {n} (seed {SEED})\nflaky: {}",
            b.describe()
        );
    }
    let fired: u64 = flaky.sim.faults().fired().iter().sum();
    println!("faults injected: {fired}, retries: {retries}");
    assert!(
        fired > 0 && retries >= fired,
        "{fired} faults, {retries} retries"
    );
    assert_eq!(snapshot_names(&flaky), snapshot_names(&calm));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_failure_after_a_ready_snapshot_reports_the_backup_as_taken_with_exit_6() {
    let env = start(&fixture()).await;
    for n in 0..5 {
        let night = one_night(&env, n).await;
        assert!(night.ok(), "night {n}: {}", night.describe());
    }
    // Retention's label patches fail on every attempt; the snapshot of the night is ready before that.
    env.sim.faults().add(Fault::request(
        "patch",
        "volumesnapshots",
        FaultAction::InternalError,
    ));
    let night = one_night(&env, 5).await;
    assert_eq!(night.run.status.code(), Some(6), "{}", night.describe());
    let report: serde_json::Value = serde_json::from_slice(&night.run.stdout).unwrap();
    assert_eq!(report["backup_taken"], true, "{report:#}");
    assert_eq!(report["failed_after_backup"][0], "retention");
    assert!(
        snapshot_names(&env).contains(&format!("data-{}-010000", &night_day(5))),
        "the night's snapshot stays"
    );
    let events = env.events_about("data").await;
    let last_two = &events[events.len() - 2..];
    assert_eq!(
        last_two,
        ["Normal BackupSucceeded", "Warning RetentionFailed"],
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.ends_with("BackupFailed")),
        "{events:?}"
    );
}

/// `YYYY-MM-DD` of night `n`.
fn night_day(n: u32) -> String {
    night(n)[..10].to_string()
}

/// The hook window: a snapshot the CSI driver says it cut an hour before the pre-hooks finished (or an hour after
/// the post-hooks began) fails the run with a clear message and is deleted; one cut inside the window carries the
/// window in its `backup-ns.sh/hook-window` annotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_cut_outside_its_hook_window_fails_the_run_and_is_deleted() {
    let env = start(&fixture()).await;
    let night = one_night(&env, 0).await;
    assert!(night.ok(), "{}", night.describe());
    let snapshots = env.snapshots();
    assert_eq!(snapshots.len(), 1);
    let window = snapshots[0]["metadata"]["annotations"]["backup-ns.sh/hook-window"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let cut = snapshots[0]["status"]["creationTime"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (start, end) = window.split_once('/').unwrap_or(("", ""));
    assert!(
        !start.is_empty() && start <= cut.as_str() && cut.as_str() <= end,
        "the recorded window {window} holds the cut {cut}"
    );

    for (n, seconds) in [(1, -3600), (2, 3600)] {
        env.sim.faults().clear();
        env.sim
            .faults()
            .add(Fault::snapshot_creation_time_skew(seconds));
        let night = one_night(&env, n).await;
        assert_eq!(
            night.run.status.code(),
            Some(1),
            "{seconds} s: {}",
            night.describe()
        );
        let stderr = String::from_utf8_lossy(&night.run.stderr);
        assert!(
            stderr.contains("status.creationTime), outside its hook window")
                && stderr.contains("it may be inconsistent, so it is deleted"),
            "{stderr}"
        );
        assert_eq!(
            snapshot_names(&env).len(),
            1,
            "only the first night's snapshot is left: {:?}",
            snapshot_names(&env)
        );
    }
}
