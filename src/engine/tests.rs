//! Runner tests on in-memory fakes: step order, onError, `when`, dry runs, exit codes, cancellation.

use super::report::{Signal, StepOutcome};
use super::runner::{Engine, RunOptions};
use super::steps::RunIdentity;
use crate::Exit;
use crate::clock::Clock;
use crate::plan::{self, ExecHook, Hook, HookAction, OnError, Plan, When};
use crate::vocab::exec::*;
use crate::vocab::lock::*;
use crate::vocab::ports::*;
use crate::vocab::retention::RetentionPolicy;
use crate::vocab::workload::*;
use chrono::TimeZone;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, entry: impl Into<String>) {
    log.lock().unwrap().push(entry.into());
}

#[derive(Clone, Copy, PartialEq)]
enum Readiness {
    Ready,
    Never,
}

struct FakeCluster {
    log: Log,
    pvcs: Vec<String>,
    readiness: Readiness,
    snapshots: Mutex<Vec<String>>,
    /// Retention answers with an error (as after a persisting API failure).
    retention_fails: std::sync::atomic::AtomicBool,
    /// What a ready snapshot reports: stored when, cut when.
    times: SnapshotTimes,
}

fn ok<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(async move { v })
}

impl ClusterPort for FakeCluster {
    fn check_namespace<'a>(&'a self, ns: &'a str) -> BoxFuture<'a, Result<(), PortError>> {
        push(&self.log, format!("namespace {ns}"));
        ok(Ok(()))
    }
    fn check_pvc<'a>(&'a self, _: &'a str, pvc: &'a str) -> BoxFuture<'a, Result<(), PortError>> {
        push(&self.log, format!("pvc {pvc}"));
        if self.pvcs.iter().any(|p| p == pvc) {
            ok(Ok(()))
        } else {
            ok(Err(PortError::new(format!("PVC {pvc} does not exist"))))
        }
    }
    fn check_snapshot_class<'a>(
        &'a self,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, PortError>> {
        ok(Ok("csi".into()))
    }
    fn snapshots_in<'a>(
        &'a self,
        ns: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ExistingSnapshot>, PortError>> {
        push(&self.log, format!("snapshots {ns}"));
        ok(Ok(Vec::new()))
    }
    fn create_snapshot<'a>(
        &'a self,
        r: &'a SnapshotRequest,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        push(&self.log, format!("create {}", r.pvc));
        self.snapshots.lock().unwrap().push(r.name.clone());
        ok(Ok(()))
    }
    fn wait_snapshot_ready<'a>(
        &'a self,
        _: &'a str,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SnapshotTimes, WaitError>> {
        push(&self.log, "wait");
        match self.readiness {
            Readiness::Ready => ok(Ok(self.times)),
            Readiness::Never => ok(Err(WaitError::NotReady {
                object: format!("VolumeSnapshot {name}"),
                after: timeout,
            })),
        }
    }
    fn delete_snapshot<'a>(
        &'a self,
        _: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        push(&self.log, "delete");
        self.snapshots.lock().unwrap().retain(|n| n != name);
        ok(Ok(()))
    }
    fn create_group_snapshot<'a>(
        &'a self,
        r: &'a GroupSnapshotRequest,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        push(&self.log, format!("create-group {}", r.pvcs.join(",")));
        ok(Ok(()))
    }
    fn wait_group_snapshot_ready<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: Duration,
    ) -> BoxFuture<'a, Result<Vec<GroupMember>, WaitError>> {
        push(&self.log, "wait-group");
        let members = self
            .pvcs
            .iter()
            .map(|p| GroupMember {
                name: format!("member-{p}"),
                pvc: p.clone(),
                times: self.times,
            })
            .collect();
        ok(Ok(members))
    }
    fn delete_group_snapshot<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        push(&self.log, "delete-group");
        ok(Ok(()))
    }
    fn annotate_snapshot<'a>(
        &'a self,
        _: &'a str,
        name: &'a str,
        annotations: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        for (k, v) in annotations {
            push(&self.log, format!("annotate {name} {k}={v}"));
        }
        ok(Ok(()))
    }
    fn label_snapshot<'a>(
        &'a self,
        _: &'a str,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        push(
            &self.log,
            format!("label {name} {}", labels[crate::labels::PVC]),
        );
        ok(Ok(()))
    }
    fn emit_event<'a>(&'a self, e: &'a EngineEvent) -> BoxFuture<'a, Result<(), PortError>> {
        push(&self.log, format!("event {}", e.reason));
        ok(Ok(()))
    }
    fn apply_retention<'a>(
        &'a self,
        _: &'a str,
        pvcs: &'a [String],
        policy: &'a RetentionPolicy,
        sweep: bool,
    ) -> BoxFuture<'a, Result<RetentionOutcome, PortError>> {
        push(
            &self.log,
            format!(
                "retention {} {} sweep={sweep}",
                pvcs.join(","),
                policy.to_annotation()
            ),
        );
        if self.retention_fails.load(Ordering::SeqCst) {
            return ok(Err(PortError::new(
                "could not list volumesnapshots in namespace shop: HTTP 503",
            )));
        }
        ok(Ok(RetentionOutcome::default()))
    }
}

/// Exec fake: a script containing `FAIL` exits 1, one containing `SLOW` never finishes; others exit 0.
struct FakeExec {
    log: Log,
}

impl ContainerExec for FakeExec {
    fn exec<'a>(
        &'a self,
        request: ExecRequest,
        _: StdoutSink<'a>,
    ) -> BoxFuture<'a, Result<ExecResult, ExecError>> {
        Box::pin(async move {
            let script = match &request.stdin {
                Stdin::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            let tag = ["PRE", "POST-OK", "POST-ALWAYS", "FAIL", "SLOW"]
                .into_iter()
                .rev()
                .find(|t| script.contains(&format!("echo {t}")) || script.contains(t))
                .unwrap_or("kill");
            push(&self.log, format!("exec {tag}"));
            if tag == "SLOW" {
                std::future::pending::<()>().await;
            }
            Ok(ExecResult {
                exit_code: i32::from(tag == "FAIL"),
                stdout: Vec::new(),
                stderr: Vec::new(),
            })
        })
    }
}

struct FakeResolver;

impl PodResolver for FakeResolver {
    fn resolve<'a>(
        &'a self,
        namespace: &'a str,
        workload: &'a WorkloadRef,
        container: &'a str,
    ) -> BoxFuture<'a, Result<ContainerRef, ResolveError>> {
        if workload.name == "missing" {
            return ok(Err(ResolveError::NotFound {
                namespace: namespace.into(),
                workload: workload.clone(),
                near: None,
            }));
        }
        ok(Ok(ContainerRef {
            namespace: namespace.into(),
            pod: format!("{}-0", workload.name),
            container: container.into(),
        }))
    }
}

struct FakeLock {
    log: Log,
    timeout: bool,
    held: Arc<AtomicUsize>,
}

struct FakeSlot {
    log: Log,
    held: Arc<AtomicUsize>,
}

impl HeldSlot for FakeSlot {
    fn describe(&self) -> String {
        "slot 1".into()
    }
}

impl Drop for FakeSlot {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
        push(&self.log, "unlock");
    }
}

impl NodeLock for FakeLock {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn HeldSlot>, LockFailure>> {
        Box::pin(async move {
            if self.timeout {
                return Err(LockFailure::Timeout(
                    "all 1 lock slot(s) stayed busy".into(),
                ));
            }
            push(&self.log, "lock");
            self.held.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(FakeSlot {
                log: Arc::clone(&self.log),
                held: Arc::clone(&self.held),
            }) as Box<dyn HeldSlot>)
        })
    }
}

struct Harness {
    engine: Engine,
    log: Log,
    held: Arc<AtomicUsize>,
    cluster: Arc<FakeCluster>,
}

fn harness(readiness: Readiness, lock_timeout: bool) -> Harness {
    harness_with(readiness, lock_timeout, SnapshotTimes::default())
}

fn harness_with(readiness: Readiness, lock_timeout: bool, times: SnapshotTimes) -> Harness {
    let log: Log = Arc::default();
    let held = Arc::new(AtomicUsize::new(0));
    let cluster = Arc::new(FakeCluster {
        log: Arc::clone(&log),
        pvcs: vec!["data".into(), "files".into()],
        readiness,
        snapshots: Mutex::default(),
        retention_fails: std::sync::atomic::AtomicBool::new(false),
        times,
    });
    let engine = Engine {
        cluster: cluster.clone(),
        exec: Arc::new(FakeExec {
            log: Arc::clone(&log),
        }),
        resolver: Arc::new(FakeResolver),
        lock: Arc::new(FakeLock {
            log: Arc::clone(&log),
            timeout: lock_timeout,
            held: Arc::clone(&held),
        }),
        clock: Clock::fixed(
            chrono::Utc.with_ymd_and_hms(2025, 1, 8, 2, 0, 0).unwrap(),
            chrono_tz::UTC,
        ),
    };
    Harness {
        engine,
        log,
        held,
        cluster,
    }
}

fn exec_hook(word: &str, on_error: OnError, when: Option<When>) -> Hook {
    Hook {
        name: None,
        action: HookAction::Exec(ExecHook {
            workload: "deployment/app".parse().unwrap(),
            container: "app".into(),
            command: vec!["echo".into(), word.into()],
        }),
        timeout: Duration::from_secs(5),
        on_error,
        when,
    }
}

fn plan_with(pre: Vec<Hook>, post: Vec<Hook>) -> Plan {
    let mut plan = Plan::new("shop", ["data", "files"]);
    plan.lock.enabled = true;
    plan.hooks = plan::Hooks { pre, post };
    plan
}

fn opts(dry_run: bool) -> RunOptions {
    RunOptions {
        namespace: "shop".into(),
        dry_run,
        identity: RunIdentity {
            pod: Some("backup-job-abc".into()),
        },
        env_config: None,
        retention_sweep: false,
    }
}

fn no_cancel() -> super::Cancel {
    let (tx, rx) = tokio::sync::watch::channel(None);
    std::mem::forget(tx);
    rx
}

fn log_of(h: &Harness) -> Vec<String> {
    h.log.lock().unwrap().clone()
}

#[tokio::test]
async fn steps_run_in_order_lock_preflight_hooks_snapshots_wait_post_retention_events_unlock() {
    let h = harness(Readiness::Ready, false);
    let plan = plan_with(
        vec![exec_hook("PRE", OnError::Fail, None)],
        vec![exec_hook("POST-OK", OnError::Fail, None)],
    );
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Success, "{report:#?}");
    assert_eq!(
        log_of(&h),
        [
            "lock",
            "namespace shop",
            "pvc data",
            "pvc files",
            // One list of the namespace for both PVCs' tier labels, sent beside the pre-hooks.
            "snapshots shop",
            "exec PRE",
            "create data",
            "create files",
            "wait",
            "wait",
            "exec POST-OK",
            // The plan's own policy goes to retention.
            r#"retention data,files {"daily":7,"monthly":12,"weekly":4} sweep=false"#,
            "event BackupSucceeded",
            "event BackupSucceeded",
            "event BackupSucceeded",
            "unlock",
        ]
    );
    let steps: Vec<&str> = report.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(
        steps,
        [
            "lock",
            "preflight",
            "pre[0]/exec",
            "snapshot",
            "snapshot",
            "wait-ready",
            "wait-ready",
            "post[0]/exec",
            "retention",
            "events",
            "unlock"
        ]
    );
    assert_eq!(report.snapshots.len(), 2);
    assert_eq!(
        report.snapshots[0].labels[crate::labels::POD],
        "backup-job-abc"
    );
    assert_eq!(h.held.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_retention_failure_after_the_snapshots_are_ready_reports_the_backup_as_taken() {
    let h = harness(Readiness::Ready, false);
    h.cluster.retention_fails.store(true, Ordering::SeqCst);
    let plan = plan_with(vec![], vec![]);
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::BackupTakenStepFailed, "{report:#?}");
    assert_eq!(report.exit_code, 6);
    assert!(report.backup_taken);
    assert_eq!(report.failed_after_backup, ["retention"]);
    let events: Vec<String> = log_of(&h)
        .into_iter()
        .filter(|l| l.starts_with("event"))
        .collect();
    assert_eq!(
        events,
        [
            "event BackupSucceeded",
            "event RetentionFailed",
            "event BackupSucceeded",
            "event RetentionFailed",
            "event BackupSucceeded",
            "event RetentionFailed",
        ],
        "no BackupFailed for a backup that exists"
    );
    let table = report.to_table();
    assert!(
        table.contains("backup of plan shop taken; retention failed (exit 6): retention failed: "),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["backup_taken"], true);
    assert_eq!(json["failed_after_backup"][0], "retention");
}

#[tokio::test]
async fn a_post_hook_failure_after_the_snapshots_are_ready_reports_the_backup_as_taken() {
    let h = harness(Readiness::Ready, false);
    let plan = plan_with(vec![], vec![exec_hook("FAIL", OnError::Fail, None)]);
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::BackupTakenStepFailed, "{report:#?}");
    assert_eq!(report.failed_after_backup, ["post[0]/exec"]);
    assert!(log_of(&h).contains(&"event PostHookFailed".to_string()));
    assert!(!log_of(&h).contains(&"event BackupFailed".to_string()));
}

#[tokio::test]
async fn a_failed_pre_hook_takes_no_snapshot_skips_success_post_hooks_but_runs_always_ones() {
    let h = harness(Readiness::Ready, false);
    let plan = plan_with(
        vec![
            exec_hook("FAIL", OnError::Fail, None),
            exec_hook("PRE", OnError::Fail, None),
        ],
        vec![
            exec_hook("POST-OK", OnError::Fail, Some(When::Success)),
            exec_hook("POST-ALWAYS", OnError::Fail, Some(When::Always)),
        ],
    );
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Failure);
    assert_eq!(report.exit_code, 1);
    let log = log_of(&h);
    assert!(!log.iter().any(|l| l.starts_with("create")), "{log:?}");
    assert!(
        !log.iter().any(|l| l == "exec PRE" || l == "exec POST-OK"),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l == "exec POST-ALWAYS"), "{log:?}");
    assert!(log.iter().any(|l| l == "event BackupFailed"), "{log:?}");
    assert_eq!(log.last().map(String::as_str), Some("unlock"));
    assert!(report.error.as_deref().unwrap().contains("pre[0]/exec"));
    assert!(h.cluster.snapshots.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_named_hook_is_shown_by_its_name_in_the_steps_the_table_and_the_hook_reports() {
    let h = harness(Readiness::Ready, false);
    let named = Hook {
        name: Some("flush-cache".into()),
        ..exec_hook("PRE", OnError::Fail, None)
    };
    let plan = plan_with(vec![named, exec_hook("PRE-2", OnError::Fail, None)], vec![]);
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Success, "{}", report.to_table());
    let hook_steps: Vec<&str> = report
        .steps
        .iter()
        .map(|s| s.step.as_str())
        .filter(|s| s.starts_with("pre["))
        .collect();
    assert_eq!(hook_steps, ["pre[0]/exec/flush-cache", "pre[1]/exec"]);
    let reports: Vec<&str> = report.hooks.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(reports, hook_steps);
    assert!(
        report
            .to_table()
            .lines()
            .any(|l| l.starts_with("pre[0]/exec/flush-cache ")),
        "{}",
        report.to_table()
    );
}

#[tokio::test]
async fn on_error_continue_records_a_warning_and_the_backup_goes_on() {
    let h = harness(Readiness::Ready, false);
    let plan = plan_with(vec![exec_hook("FAIL", OnError::Continue, None)], vec![]);
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Success, "{report:#?}");
    assert_eq!(report.steps[2].outcome, StepOutcome::Warning);
    assert_eq!(h.cluster.snapshots.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_dry_run_writes_nothing_takes_no_lock_and_lists_the_snapshots_it_would_create() {
    let h = harness(Readiness::Ready, false);
    let plan = plan_with(vec![exec_hook("PRE", OnError::Fail, None)], vec![]);
    let report = h.engine.run(&plan, &opts(true), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Success, "{report:#?}");
    let log = log_of(&h);
    for write in ["lock", "create", "event", "retention", "exec"] {
        assert!(
            !log.iter().any(|l| l.starts_with(write)),
            "{write}: {log:?}"
        );
    }
    assert_eq!(report.snapshots.len(), 2);
    assert!(
        report.snapshots[0]
            .name
            .starts_with("data-2025-01-08-020000-")
    );
}

#[tokio::test]
async fn a_snapshot_that_never_becomes_ready_exits_4_and_is_deleted() {
    let h = harness(Readiness::Never, false);
    let plan = plan_with(vec![], vec![]);
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::SnapshotNotReady);
    assert_eq!(report.exit_code, 4);
    assert!(h.cluster.snapshots.lock().unwrap().is_empty());
    assert!(report.snapshots.is_empty());
    assert!(log_of(&h).iter().all(|l| !l.starts_with("retention")));
}

/// A snapshot stored now and cut `offset` seconds later (by the driver's report).
fn cut_at(offset: i64) -> SnapshotTimes {
    let stored = chrono::Utc::now();
    SnapshotTimes {
        object_created: Some(stored),
        cut: Some(stored + chrono::Duration::seconds(offset)),
    }
}

#[tokio::test]
async fn a_snapshot_cut_inside_the_hook_window_gets_the_window_annotation() {
    let h = harness_with(Readiness::Ready, false, cut_at(0));
    let plan = plan_with(vec![], vec![exec_hook("POST-OK", OnError::Fail, None)]);
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Success, "{:?}", report.error);
    let log = log_of(&h);
    let annotated: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("annotate ") && l.contains(" backup-ns.sh/hook-window="))
        .collect();
    assert_eq!(annotated.len(), 2, "{log:?}");
    let window = annotated[0].split('=').nth(1).unwrap();
    assert!(
        crate::labels::HookWindow::from_annotation(window).is_some(),
        "{window}"
    );
    let post = log.iter().position(|l| l == "exec POST-OK").unwrap();
    let last_annotation = log
        .iter()
        .rposition(|l| l.starts_with("annotate "))
        .unwrap();
    assert!(
        last_annotation < post,
        "checked before the post-hooks: {log:?}"
    );
}

#[tokio::test]
async fn a_snapshot_cut_before_the_pre_hooks_finished_fails_the_run_and_is_deleted() {
    for offset in [-3600, 3600] {
        let h = harness_with(Readiness::Ready, false, cut_at(offset));
        let plan = plan_with(vec![], vec![]);
        let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
        assert_eq!(report.exit(), Exit::Failure, "{offset}");
        let error = report.error.clone().unwrap_or_default();
        assert!(
            error.contains("outside its hook window") && error.contains("status.creationTime"),
            "{error}"
        );
        assert!(h.cluster.snapshots.lock().unwrap().is_empty(), "deleted");
        assert!(!report.backup_taken);
        assert!(log_of(&h).iter().all(|l| !l.starts_with("annotate ")));
    }
}

#[tokio::test]
async fn a_group_whose_member_was_cut_outside_the_hook_window_is_deleted_whole() {
    let h = harness_with(Readiness::Ready, false, cut_at(-3600));
    let mut plan = plan_with(vec![], vec![]);
    plan.snapshot.consistency = plan::Consistency::Group;
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Failure);
    assert!(
        report
            .error
            .as_deref()
            .is_some_and(|e| e.contains("outside its hook window")),
        "{:?}",
        report.error
    );
    assert!(
        log_of(&h).contains(&"delete-group".to_string()),
        "{:?}",
        log_of(&h)
    );
    assert!(report.group_snapshot.is_none() && report.snapshots.is_empty());
    assert!(!report.backup_taken);

    let h = harness_with(Readiness::Ready, false, cut_at(0));
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Success, "{:?}", report.error);
    assert!(
        log_of(&h)
            .iter()
            .any(|l| l.starts_with("annotate member-data backup-ns.sh/hook-window=")),
        "{:?}",
        log_of(&h)
    );
}

#[tokio::test]
async fn a_lock_timeout_exits_3_before_anything_else() {
    let h = harness(Readiness::Ready, true);
    let plan = plan_with(vec![exec_hook("PRE", OnError::Fail, None)], vec![]);
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::LockTimeout);
    let log = log_of(&h);
    assert!(
        !log.iter()
            .any(|l| l.starts_with("exec") || l.starts_with("create"))
    );
}

#[tokio::test]
async fn a_missing_pvc_fails_preflight_with_its_name_and_runs_no_hook() {
    let h = harness(Readiness::Ready, false);
    let mut plan = plan_with(vec![exec_hook("PRE", OnError::Fail, None)], vec![]);
    plan.targets.push("gone".into());
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Failure);
    assert!(
        report
            .error
            .as_deref()
            .unwrap()
            .contains("PVC gone does not exist")
    );
    assert!(!log_of(&h).iter().any(|l| l.starts_with("exec")));
}

#[tokio::test]
async fn preflight_reports_a_missing_pvc_and_a_mistyped_workload_together() {
    let h = harness(Readiness::Ready, false);
    let mut hook = exec_hook("PRE", OnError::Fail, None);
    if let HookAction::Exec(e) = &mut hook.action {
        e.workload = "deployment/missing".parse().unwrap();
    }
    let mut plan = plan_with(vec![hook], vec![]);
    plan.targets.push("gone".into());
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Failure);
    let error = report.error.as_deref().unwrap();
    assert!(error.contains("PVC gone does not exist"), "{error}");
    assert!(
        error.contains("deployment/missing not found in namespace shop"),
        "{error}"
    );
}

#[tokio::test]
async fn sigterm_during_a_hook_cancels_it_releases_the_lock_emits_a_failure_and_exits_143() {
    let h = harness(Readiness::Ready, false);
    let plan = plan_with(
        vec![exec_hook("SLOW", OnError::Fail, None)],
        vec![exec_hook("POST-ALWAYS", OnError::Fail, Some(When::Always))],
    );
    let (tx, rx) = tokio::sync::watch::channel(None);
    let fire = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(Some(Signal::Terminate)).unwrap();
    };
    let o = opts(false);
    let (report, ()) = tokio::join!(h.engine.run(&plan, &o, rx), fire);
    assert_eq!(report.exit(), Exit::Terminated, "{report:#?}");
    let log = log_of(&h);
    assert!(log.iter().any(|l| l == "exec kill"), "{log:?}");
    assert!(log.iter().any(|l| l == "exec POST-ALWAYS"), "{log:?}");
    assert!(log.iter().any(|l| l == "event BackupFailed"), "{log:?}");
    assert!(!log.iter().any(|l| l.starts_with("create")));
    assert_eq!(h.held.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn group_consistency_makes_one_group_and_labels_each_member_for_its_pvc() {
    let h = harness(Readiness::Ready, false);
    let mut plan = plan_with(vec![], vec![]);
    plan.snapshot.consistency = plan::Consistency::Group;
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Success, "{report:#?}");
    let log = log_of(&h);
    assert!(
        log.contains(&"create-group data,files".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&"label member-data data".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&"label member-files files".to_string()),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("create data")));
    assert!(report.group_snapshot.is_some());
}

#[tokio::test]
async fn a_rhai_hooks_default_workload_is_resolved_in_preflight() {
    let h = harness(Readiness::Ready, false);
    let mut plan = plan_with(vec![], vec![]);
    plan.hooks.pre.push(Hook {
        name: None,
        action: HookAction::Rhai(plan::RhaiHook {
            script: "flush.rhai".into(),
            source: "log(\"hi\");".into(),
            workload: Some("deployment/missing".parse().unwrap()),
            container: Some("app".into()),
            args: BTreeMap::new(),
        }),
        timeout: Duration::from_secs(5),
        on_error: OnError::Fail,
        when: None,
    });
    let report = h.engine.run(&plan, &opts(false), no_cancel()).await;
    assert_eq!(report.exit(), Exit::Failure);
    assert_eq!(
        report.error.as_deref(),
        Some("hook pre[0]/rhai: deployment/missing not found in namespace shop")
    );
    assert!(h.cluster.snapshots.lock().unwrap().is_empty());
}
