//! The runner: lock → preflight → pre-hooks → snapshots → wait ready → post-hooks → retention → events → unlock.
//!
//! Every step is traced (name, target, duration, outcome) and recorded in the [`RunReport`]. A signal (the
//! `cancel` channel) stops the running hook through `hooks::run_until` (which kills the remote process and removes
//! the partial dump); `when: always` post-hooks still run, the lock is released and a failure event is emitted.

use super::report::{FailureKind, RunReport, Signal, StepOutcome, StepRecord};
use super::steps::{self, HookStep, RunIdentity, StepAction};
use crate::clock::Clock;
use crate::hooks::hot::HotSession;
use crate::hooks::{self, HookError, HookReport};
use crate::labels::HookWindow;
use crate::plan::{Consistency, OnError, Plan, When};
use crate::vocab::exec::{ContainerExec, PodResolver};
use crate::vocab::lock::{HeldSlot, LockFailure, NodeLock};
use crate::vocab::ports::{
    ClusterPort, EngineEvent, EventSubject, ExistingSnapshot, GroupSnapshotRequest, PortError,
    SnapshotRequest, SnapshotTimes, WaitError,
};
use crate::vocab::workload::ContainerRef;
use chrono::Timelike as _;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How the cleanup names a snapshot (or group) deleted because a signal stopped the run before it was ready.
const STOPPED: &str = "unproven (the run was stopped before it was ready)";

/// The ports the engine runs on.
#[derive(Clone)]
pub struct Engine {
    pub cluster: Arc<dyn ClusterPort>,
    pub exec: Arc<dyn ContainerExec>,
    pub resolver: Arc<dyn PodResolver>,
    /// Used only when the plan has `lock.enabled: true` (and not for dry runs).
    pub lock: Arc<dyn NodeLock>,
    pub clock: Clock,
}

/// Per-run inputs besides the plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The namespace in effect (plan, `--namespace`, service account or kubeconfig context).
    pub namespace: String,
    pub dry_run: bool,
    pub identity: RunIdentity,
    /// The original's `backup-ns.sh/env-config` annotation, for plans built from `BAK_*` variables.
    pub env_config: Option<String>,
    /// Let retention delete snapshots whose deletion needs a VolumeSnapshotContent patch.
    pub retention_sweep: bool,
}

/// A receiver that becomes `Some(signal)` when the run must stop.
pub type Cancel = watch::Receiver<Option<Signal>>;

/// Completes when `cancel` carries a signal (never, if the sender is gone without one).
async fn cancelled(mut cancel: Cancel) {
    if cancel.wait_for(Option::is_some).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn signal_of(cancel: &Cancel) -> Option<Signal> {
    *cancel.borrow()
}

/// The mutable state of one run.
struct Run {
    report: RunReport,
    /// Failures after the backup was taken, as `(Event reason, message)`: reported in their own Events.
    later_failures: Vec<(&'static str, String)>,
}

impl Run {
    fn record(
        &mut self,
        step: &str,
        target: &str,
        outcome: StepOutcome,
        started: Instant,
        message: impl Into<String>,
    ) {
        let message = message.into();
        let duration = started.elapsed();
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        match outcome {
            StepOutcome::Ok | StepOutcome::Skipped => tracing::info!(
                step,
                target,
                duration_ms,
                outcome = outcome.as_str(),
                "{message}"
            ),
            _ => tracing::warn!(
                step,
                target,
                duration_ms,
                outcome = outcome.as_str(),
                "{message}"
            ),
        }
        self.report.steps.push(StepRecord {
            step: step.to_string(),
            target: target.to_string(),
            outcome,
            duration,
            message,
        });
    }

    /// Records a failure of `step` after the backup was taken: the run still has its backup, and says so.
    fn fail_after_backup(&mut self, step: &str, reason: &'static str, message: &str) {
        self.report.failed_after_backup.push(step.to_string());
        self.later_failures.push((reason, message.to_string()));
        self.fail(FailureKind::AfterBackup, message);
    }

    /// Records a signal that stopped `step`. After the backup was taken, the backup stands and the stop gets its
    /// own `RunStopped` Event (as a failed post-hook gets `PostHookFailed`); the exit code is the signal's.
    fn stopped(&mut self, signal: Signal, step: &str, message: &str) {
        if self.report.backup_taken {
            self.report.failed_after_backup.push(step.to_string());
            self.later_failures
                .push(("RunStopped", message.to_string()));
        }
        self.fail(FailureKind::Signal(signal), message);
    }

    /// Records the first failure (later ones do not change the exit code).
    fn fail(&mut self, kind: FailureKind, message: &str) {
        if self.report.failure.is_none() {
            self.report.failure = Some(kind);
            self.report.error = Some(message.to_string());
        }
    }

    fn failed(&self) -> bool {
        self.report.failure.is_some()
    }
}

/// Records a hook that failed: a signal stops the run; `onError: continue` makes it a warning; otherwise the
/// run fails (after the backup was taken, as a failure after backup).
fn hook_failed(
    step: &HookStep,
    target: &str,
    started: Instant,
    e: HookError,
    cancel: &Cancel,
    run: &mut Run,
) {
    if let HookError::Cancelled { cleanup, .. } = &e {
        let signal = signal_of(cancel).unwrap_or(Signal::Terminate);
        let message = format!("hook {} stopped by a signal: {cleanup}", step.name);
        run.record(
            &step.name,
            target,
            StepOutcome::Cancelled,
            started,
            &*message,
        );
        run.stopped(signal, &step.name, &message);
        return;
    }
    let message = e.to_string();
    if step.on_error == OnError::Continue {
        run.record(
            &step.name,
            target,
            StepOutcome::Warning,
            started,
            format!("{message} (onError: continue)"),
        );
    } else {
        run.record(&step.name, target, StepOutcome::Failed, started, &*message);
        if run.report.backup_taken && !run.failed() {
            run.fail_after_backup(&step.name, "PostHookFailed", &message);
        } else {
            run.fail(FailureKind::StepFailed, &message);
        }
    }
}

/// A created snapshot of this run.
struct Created {
    name: String,
    pvc: String,
}

impl Engine {
    /// Runs `plan`. Never panics; every outcome is in the report (and its exit code).
    #[tracing::instrument(skip_all, fields(plan = %plan.name, namespace = %opts.namespace, dry_run = opts.dry_run))]
    pub async fn run(&self, plan: &Plan, opts: &RunOptions, cancel: Cancel) -> RunReport {
        let mut run = Run {
            report: RunReport {
                plan: plan.name.clone(),
                namespace: opts.namespace.clone(),
                dry_run: opts.dry_run,
                success: false,
                exit_code: 0,
                error: None,
                steps: Vec::new(),
                snapshots: Vec::new(),
                group_snapshot: None,
                hooks: Vec::new(),
                backup_taken: false,
                failed_after_backup: Vec::new(),
                api_retries: 0,
                failure: None,
            },
            later_failures: Vec::new(),
        };

        let guard = self.lock_step(plan, opts, &cancel, &mut run).await;
        if !run.failed() {
            self.body(plan, opts, &cancel, &mut run).await;
        }
        if !opts.dry_run {
            self.events(plan, opts, &mut run).await;
        }
        if let Some(guard) = guard {
            let started = Instant::now();
            let slot = guard.describe();
            drop(guard);
            run.record(
                "unlock",
                &slot,
                StepOutcome::Ok,
                started,
                "lock slot released",
            );
        }

        run.report.success = run.report.failure.is_none();
        run.report.exit_code = run.report.exit().code();
        run.report
    }

    #[tracing::instrument(skip_all, fields(step = "lock"))]
    async fn lock_step(
        &self,
        plan: &Plan,
        opts: &RunOptions,
        cancel: &Cancel,
        run: &mut Run,
    ) -> Option<Box<dyn HeldSlot>> {
        if !plan.lock.enabled || opts.dry_run {
            return None;
        }
        let started = Instant::now();
        let target = plan.lock.dir.clone();
        tokio::select! {
            taken = self.lock.acquire() => match taken {
                Ok(guard) => {
                    run.record("lock", &target, StepOutcome::Ok, started, format!("took {}", guard.describe()));
                    Some(guard)
                }
                Err(e) => {
                    let kind = match e {
                        LockFailure::Timeout(_) => FailureKind::LockTimeout,
                        LockFailure::Other(_) => FailureKind::StepFailed,
                    };
                    let message = e.to_string();
                    run.record("lock", &target, StepOutcome::Failed, started, message.clone());
                    run.fail(kind, &message);
                    None
                }
            },
            () = cancelled(cancel.clone()) => {
                let signal = signal_of(cancel).unwrap_or(Signal::Terminate);
                run.record("lock", &target, StepOutcome::Cancelled, started, "stopped by a signal while waiting for a lock slot");
                run.fail(FailureKind::Signal(signal), "stopped by a signal while waiting for a lock slot");
                None
            }
        }
    }

    async fn body(&self, plan: &Plan, opts: &RunOptions, cancel: &Cancel, run: &mut Run) {
        let (pre, post) = steps::hook_steps(plan);
        let ns = opts.namespace.as_str();

        // Preflight: everything is checked and every problem reported at once, in the plan's order. The reads
        // are independent, so they go out together: the namespace beside the snapshot class, then (in a
        // namespace that exists) every PVC beside every hook target.
        let started = Instant::now();
        let mut problems = Vec::new();
        let (namespace, class) = tokio::join!(
            self.cluster.check_namespace(ns),
            self.cluster
                .check_snapshot_class(plan.snapshot.class.as_deref())
        );
        // Everything but a missing namespace is reported at once: a mistyped workload shows up together with a
        // missing PVC, not only after the PVC is fixed.
        let namespace_ok = match namespace {
            Ok(()) => true,
            Err(e) => {
                problems.push(e.message);
                false
            }
        };
        let mut resolved: BTreeMap<String, ContainerRef> = BTreeMap::new();
        let mut hook_problems = Vec::new();
        if namespace_ok {
            let pvcs = futures::future::join_all(
                plan.targets
                    .iter()
                    .map(|pvc| self.cluster.check_pvc(ns, pvc)),
            );
            let targets = futures::future::join_all(
                pre.iter()
                    .chain(post.iter())
                    .map(|step| self.preflight_target(ns, step)),
            );
            let (pvcs, targets) = tokio::join!(pvcs, targets);
            problems.extend(pvcs.into_iter().filter_map(|r| r.err().map(|e| e.message)));
            for (step, target) in pre.iter().chain(post.iter()).zip(targets) {
                match target {
                    Ok(Some(target)) => {
                        resolved.insert(step.name.clone(), target);
                    }
                    Ok(None) => {}
                    Err(e) => hook_problems.push(format!("hook {}: {e}", step.name)),
                }
            }
        }
        let class = match class {
            Ok(c) => c,
            Err(e) => {
                problems.push(e.message);
                String::new()
            }
        };
        problems.extend(hook_problems);
        if !problems.is_empty() {
            let message = problems.join("; ");
            run.record("preflight", ns, StepOutcome::Failed, started, &*message);
            run.fail(FailureKind::StepFailed, &message);
            return;
        }
        run.record(
            "preflight",
            ns,
            StepOutcome::Ok,
            started,
            format!(
                "namespace, {} PVC(s), snapshot class {class} and {} hook target(s) OK",
                plan.targets.len(),
                resolved.len()
            ),
        );

        // Pre-hooks. A `mode: hot` hook opens its session here and holds it across the snapshots. Meanwhile the
        // namespace's snapshots are listed for the tier labels: the list does not depend on the hooks, and a dump
        // takes far longer than a list (retention, after the snapshots, labels tiers from a fresh list anyway).
        let mut sessions: Vec<HotSession> = Vec::new();
        let pre_hooks = async {
            for step in &pre {
                if run.failed() {
                    run.record(
                        &step.name,
                        "",
                        StepOutcome::Skipped,
                        Instant::now(),
                        "an earlier step failed",
                    );
                    continue;
                }
                if step.is_hot() && !opts.dry_run {
                    sessions.extend(self.hot_begin(step, &resolved, cancel, run).await);
                    continue;
                }
                self.hook(plan, opts, step, &resolved, cancel, true, run)
                    .await;
            }
        };
        let ((), existing) = tokio::join!(pre_hooks, self.cluster.snapshots_in(ns));

        // Snapshots and wait.
        let mut created: Vec<Created> = Vec::new();
        if !run.failed() {
            self.snapshot_step(plan, opts, &class, existing, cancel, run, &mut created)
                .await;
        } else {
            run.record(
                "snapshot",
                &plan.targets.join(","),
                StepOutcome::Skipped,
                Instant::now(),
                "no snapshot: an earlier step failed",
            );
        }

        // The hot sessions end once the snapshots are ready (or the run failed), before the post-hooks.
        self.hot_end(ns, cancel, run, &mut created, sessions).await;

        // Post-hooks: `success` only after success, `always` regardless (even after a signal).
        for step in &post {
            let runs = match step.when {
                When::Always => true,
                When::Success => !run.failed(),
            };
            if !runs {
                run.record(
                    &step.name,
                    "",
                    StepOutcome::Skipped,
                    Instant::now(),
                    "when: success, but the backup failed",
                );
                continue;
            }
            let honour_cancel = signal_of(cancel).is_none();
            self.hook(plan, opts, step, &resolved, cancel, honour_cancel, run)
                .await;
        }

        // Retention.
        let started = Instant::now();
        let targets = plan.targets.join(",");
        if run.failed() || opts.dry_run || created.is_empty() {
            let why = if opts.dry_run {
                "dry run"
            } else {
                "no new snapshot"
            };
            run.record("retention", &targets, StepOutcome::Skipped, started, why);
        } else {
            // A signal abandons retention between requests: each label move or deletion is whole or not sent,
            // and the next run or the controller converges from what is there.
            let applied = tokio::select! {
                applied = self.cluster.apply_retention(
                    ns,
                    &plan.targets,
                    &plan.retention.policy,
                    opts.retention_sweep,
                ) => Some(applied),
                () = cancelled(cancel.clone()) => None,
            };
            match applied {
                None => {
                    let signal = signal_of(cancel).unwrap_or(Signal::Terminate);
                    let message = "retention stopped by a signal; the backup stands".to_string();
                    run.record(
                        "retention",
                        &targets,
                        StepOutcome::Cancelled,
                        started,
                        &*message,
                    );
                    run.stopped(signal, "retention", &message);
                }
                Some(Ok(outcome)) => run.record(
                    "retention",
                    &targets,
                    StepOutcome::Ok,
                    started,
                    outcome.summary,
                ),
                Some(Err(e)) => {
                    let message = format!("retention failed: {e}");
                    run.record(
                        "retention",
                        &targets,
                        StepOutcome::Failed,
                        started,
                        &*message,
                    );
                    if run.report.backup_taken {
                        run.fail_after_backup("retention", "RetentionFailed", &message);
                    } else {
                        run.fail(FailureKind::StepFailed, &message);
                    }
                }
            }
        }
    }

    /// The container a hook step runs in (`None` for a rhai hook, which only has its default target checked).
    async fn preflight_target(
        &self,
        ns: &str,
        step: &HookStep,
    ) -> Result<Option<ContainerRef>, crate::vocab::exec::ResolveError> {
        match &step.action {
            StepAction::Container {
                workload,
                container,
                ..
            } => self
                .resolver
                .resolve(ns, workload, container)
                .await
                .map(Some),
            StepAction::Rhai { target, .. } => {
                if let Some((workload, container)) = target {
                    self.resolver.resolve(ns, workload, container).await?;
                }
                Ok(None)
            }
        }
    }

    /// Runs (or, for dry runs, checks) one hook and records it.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(skip_all, fields(step = %step.name))]
    async fn hook(
        &self,
        plan: &Plan,
        opts: &RunOptions,
        step: &HookStep,
        resolved: &BTreeMap<String, ContainerRef>,
        cancel: &Cancel,
        honour_cancel: bool,
        run: &mut Run,
    ) {
        let started = Instant::now();
        let stop = {
            let cancel = cancel.clone();
            async move {
                if honour_cancel {
                    cancelled(cancel).await;
                } else {
                    std::future::pending::<()>().await;
                }
            }
        };
        let (target, outcome): (String, Result<HookReport, HookError>) = match &step.action {
            StepAction::Container { action, .. } => {
                let Some(target) = resolved.get(&step.name) else {
                    let message = format!("hook {}: no resolved target", step.name);
                    run.record(&step.name, "", StepOutcome::Failed, started, &*message);
                    run.fail(FailureKind::StepFailed, &message);
                    return;
                };
                if opts.dry_run && step.is_hot() {
                    run.record(
                        &step.name,
                        &target.to_string(),
                        StepOutcome::Ok,
                        started,
                        "would hold a hot session across the snapshots (dry run: not connected)",
                    );
                    return;
                }
                let outcome = if opts.dry_run {
                    hooks::check(&step.name, action, self.exec.as_ref(), target, step.timeout).await
                } else {
                    let exec = self.exec.as_ref();
                    hooks::run_until(&step.name, action, exec, target, step.timeout, stop).await
                };
                (target.to_string(), outcome)
            }
            StepAction::Rhai {
                script,
                source,
                args,
                ..
            } => {
                let path = script.display().to_string();
                if opts.dry_run {
                    let outcome = hooks::rhai::compile_source(&path, source)
                        .map(|_| HookReport {
                            duration: started.elapsed(),
                            checked_only: true,
                            stdout_tail: "compiled".into(),
                            ..HookReport::new(&step.name, crate::vocab::hook::HookKind::Rhai, None)
                        })
                        .map_err(|diagnostic| HookError::Script {
                            hook: step.name.clone(),
                            diagnostic,
                        });
                    (path, outcome)
                } else {
                    let hook = hooks::rhai::RhaiRun {
                        name: step.name.clone(),
                        path: path.clone(),
                        source: source.clone(),
                        namespace: opts.namespace.clone(),
                        targets: plan.targets.clone(),
                        vars: steps::string_vars(&plan.vars),
                        args: args.clone(),
                        timeout: step.timeout,
                        limits: hooks::rhai::RhaiLimits::default(),
                    };
                    let clock = self.clock;
                    let ctx = hooks::rhai::RhaiContext {
                        exec: Arc::clone(&self.exec),
                        resolver: Arc::clone(&self.resolver),
                        now: Arc::new(move || clock.now_utc()),
                    };
                    (path, hooks::rhai::run_until(&hook, &ctx, stop).await)
                }
            }
        };
        match outcome {
            Ok(report) => {
                let message = match (report.dump_size, report.checked_only) {
                    (_, true) => "checked (dry run)".to_string(),
                    (Some(size), false) => format!("dump written: {size} bytes"),
                    (None, false) => "ok".to_string(),
                };
                run.record(&step.name, &target, StepOutcome::Ok, started, message);
                run.report.hooks.push(report);
            }
            Err(e) => hook_failed(step, &target, started, e, cancel, run),
        }
    }

    /// Opens the session of a `mode: hot` hook; `None` when it did not open (recorded like any hook failure).
    #[tracing::instrument(skip_all, fields(step = %step.name))]
    async fn hot_begin(
        &self,
        step: &HookStep,
        resolved: &BTreeMap<String, ContainerRef>,
        cancel: &Cancel,
        run: &mut Run,
    ) -> Option<HotSession> {
        let started = Instant::now();
        let StepAction::Container { action, .. } = &step.action else {
            return None;
        };
        let Some(target) = resolved.get(&step.name) else {
            let message = format!("hook {}: no resolved target", step.name);
            run.record(&step.name, "", StepOutcome::Failed, started, &*message);
            run.fail(FailureKind::StepFailed, &message);
            return None;
        };
        let exec = Arc::clone(&self.exec);
        let stop = cancelled(cancel.clone());
        match hooks::hot::begin(&step.name, action, exec, target, step.timeout, stop).await {
            Ok(session) => {
                run.record(
                    &step.name,
                    &target.to_string(),
                    StepOutcome::Ok,
                    started,
                    format!("hot session open: {}", session.opened_as()),
                );
                run.report.hooks.push(session.report());
                Some(session)
            }
            Err(e) => {
                hook_failed(step, &target.to_string(), started, e, cancel, run);
                None
            }
        }
    }

    /// Ends every hot session: after ready snapshots, in the same session (`pg_backup_stop()` with its
    /// backup_label recorded on each snapshot, `UNLOCK TABLES`); after a failure or a signal, by closing it, which
    /// aborts the backup on the server. A session that cannot finish leaves snapshots nobody can restore
    /// consistently: they are deleted and the run fails.
    async fn hot_end(
        &self,
        ns: &str,
        cancel: &Cancel,
        run: &mut Run,
        created: &mut Vec<Created>,
        sessions: Vec<HotSession>,
    ) {
        for session in sessions {
            let started = Instant::now();
            let step = format!("{}/end", session.name());
            if run.failed() || created.is_empty() {
                let cleanup = session.abort().await;
                run.record(&step, "", StepOutcome::Skipped, started, cleanup);
                continue;
            }
            let finished = session.finish(cancelled(cancel.clone())).await;
            let problem = match finished {
                Ok(finish) => {
                    let annotation = BTreeMap::from([(
                        crate::labels::ANNOTATION_HOT_BACKUP.to_string(),
                        finish.record.to_annotation(),
                    )]);
                    let mut problem = None;
                    for c in created.iter() {
                        if let Err(e) = self
                            .cluster
                            .annotate_snapshot(ns, &c.name, &annotation)
                            .await
                        {
                            problem = Some(format!(
                                "cannot record the hot backup on VolumeSnapshot {}: {e}",
                                c.name
                            ));
                            break;
                        }
                    }
                    let summary = finish.summary();
                    if let Some(r) = run
                        .report
                        .hooks
                        .iter_mut()
                        .find(|r| r.name == finish.report.name)
                    {
                        *r = finish.report;
                    }
                    match problem {
                        None => {
                            run.record(&step, "", StepOutcome::Ok, started, summary);
                            continue;
                        }
                        Some(p) => p,
                    }
                }
                Err(HookError::Cancelled { cleanup, .. }) => {
                    let signal = signal_of(cancel).unwrap_or(Signal::Terminate);
                    let message = format!("hook {} stopped by a signal: {cleanup}", step);
                    run.record(&step, "", StepOutcome::Cancelled, started, &*message);
                    run.fail(FailureKind::Signal(signal), &message);
                    self.drop_inconsistent(ns, created, run).await;
                    continue;
                }
                Err(e) => e.to_string(),
            };
            let message = format!(
                "{problem}; the snapshots cut during the hot session cannot be restored consistently"
            );
            run.record(&step, "", StepOutcome::Failed, started, &*message);
            run.fail(FailureKind::StepFailed, &message);
            self.drop_inconsistent(ns, created, run).await;
        }
    }

    /// Deletes this run's snapshots after a hot session failed to end properly: they are no backup.
    async fn drop_inconsistent(&self, ns: &str, created: &mut Vec<Created>, run: &mut Run) {
        run.report.backup_taken = false;
        self.remove_created(ns, created, "inconsistent", run).await;
    }

    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(skip_all, fields(step = "snapshot", targets = %plan.targets.join(",")))]
    async fn snapshot_step(
        &self,
        plan: &Plan,
        opts: &RunOptions,
        class: &str,
        existing: Result<Vec<ExistingSnapshot>, PortError>,
        cancel: &Cancel,
        run: &mut Run,
        created: &mut Vec<Created>,
    ) {
        let ns = opts.namespace.as_str();
        let started = Instant::now();
        let timestamp = steps::timestamp(&self.clock);
        let annotations =
            steps::snapshot_annotations(plan, &run.report.hooks, opts.env_config.as_deref());
        // Labels come from each PVC's existing snapshots (first of the day/week/month gets the tier).
        // One list of the namespace serves every PVC of the plan.
        let existing: Vec<ExistingSnapshot> = match existing {
            Ok(list) => list,
            Err(e) => {
                let targets = plan.targets.join(",");
                let message = format!("cannot list the snapshots of namespace {ns}: {e}");
                run.record(
                    "snapshot",
                    &targets,
                    StepOutcome::Failed,
                    started,
                    &*message,
                );
                run.fail(FailureKind::StepFailed, &message);
                return;
            }
        };
        let mut requests = Vec::new();
        for pvc in &plan.targets {
            let labels = steps::snapshot_labels(plan, pvc, &opts.identity, &existing, &self.clock);
            let name =
                plan.snapshot
                    .render_name(pvc, &timestamp, &steps::random_suffix(), &plan.name);
            requests.push(SnapshotRequest {
                namespace: ns.to_string(),
                name,
                pvc: pvc.clone(),
                class: plan.snapshot.class.clone(),
                labels,
                annotations: annotations.clone(),
            });
        }

        if plan.snapshot.consistency == Consistency::Group {
            self.group_step(
                plan, opts, class, cancel, run, created, requests, &timestamp,
            )
            .await;
            return;
        }

        if opts.dry_run {
            for r in &requests {
                run.record(
                    "snapshot",
                    &r.pvc,
                    StepOutcome::Ok,
                    started,
                    format!("would create VolumeSnapshot {} (dry run)", r.name),
                );
            }
            run.report.snapshots = requests;
            return;
        }

        // The hook window opens here: the pre-hooks are done. `first_sent` is when the first create went out.
        let window_opened = Instant::now();
        let mut first_sent: Option<Instant> = None;
        for r in &requests {
            let one = Instant::now();
            first_sent.get_or_insert(one);
            match self.cluster.create_snapshot(r).await {
                Ok(()) => {
                    run.record(
                        "snapshot",
                        &r.pvc,
                        StepOutcome::Ok,
                        one,
                        format!("created VolumeSnapshot {} (class {class})", r.name),
                    );
                    created.push(Created {
                        name: r.name.clone(),
                        pvc: r.pvc.clone(),
                    });
                    run.report.snapshots.push(r.clone());
                }
                Err(e) => {
                    let message = format!("cannot create the snapshot of PVC {}: {e}", r.pvc);
                    run.record("snapshot", &r.pvc, StepOutcome::Failed, one, &*message);
                    run.fail(FailureKind::StepFailed, &message);
                    self.remove_created(ns, created, "incomplete", run).await;
                    return;
                }
            }
        }

        if !plan.snapshot.wait_until_ready {
            // Not waited for: nobody knows yet whether a backup exists, so later failures fail the run.
            return;
        }
        let mut not_ready = Vec::new();
        let mut times: Vec<(String, SnapshotTimes)> = Vec::new();
        for c in created.iter() {
            let one = Instant::now();
            let waited = tokio::select! {
                w = self.cluster.wait_snapshot_ready(ns, &c.name, plan.snapshot.ready_timeout) => Some(w),
                () = cancelled(cancel.clone()) => None,
            };
            match waited {
                Some(Ok(t)) => {
                    times.push((c.name.clone(), t));
                    run.record("wait-ready", &c.name, StepOutcome::Ok, one, "readyToUse")
                }
                Some(Err(e)) => {
                    let kind = match e {
                        WaitError::NotReady { .. } => FailureKind::SnapshotNotReady,
                        _ => FailureKind::StepFailed,
                    };
                    let message = e.to_string();
                    run.record("wait-ready", &c.name, StepOutcome::Failed, one, &*message);
                    run.fail(kind, &message);
                    not_ready.push(c.name.clone());
                }
                None => {
                    let signal = signal_of(cancel).unwrap_or(Signal::Terminate);
                    let message = format!("stopped by a signal while waiting for {}", c.name);
                    run.record(
                        "wait-ready",
                        &c.name,
                        StepOutcome::Cancelled,
                        one,
                        &*message,
                    );
                    run.fail(FailureKind::Signal(signal), &message);
                    // The run never proved these ready inside the hook window, and it reports no backup: a
                    // snapshot that turned ready later would be a backup nobody vouched for, holding a tier slot.
                    self.remove_created(ns, created, STOPPED, run).await;
                    return;
                }
            }
        }
        if not_ready.is_empty()
            && let Some(first_sent) = first_sent
        {
            let outside = self
                .hook_window(ns, &times, window_opened, first_sent, run)
                .await;
            not_ready.extend(outside);
        }
        if not_ready.is_empty() && !created.is_empty() && !run.failed() {
            run.report.backup_taken = true;
        }
        if !not_ready.is_empty() {
            // A snapshot that never became usable is not a backup: remove it so nobody restores from it.
            let mut remove: Vec<Created> = created
                .drain(..)
                .filter(|c| not_ready.contains(&c.name))
                .collect();
            self.remove_created(ns, &mut remove, "unusable", run).await;
        }
    }

    /// Proves each ready snapshot was cut inside the hook window: after the pre-hooks finished (`opened`), before
    /// the post-hooks begin (now). The window is reckoned on the API server's clock, so that it compares with the
    /// driver's `status.creationTime` whatever this process's clock says (a pinned BACKUP_NS_NOW, a skewed node):
    /// the first snapshot's `metadata.creationTimestamp` anchors it, and the time elapsed here (monotonic)
    /// stretches it back to `opened` and on to now. Both ends are widened to whole seconds, the precision of
    /// Kubernetes timestamps. The window is recorded on every snapshot; the names of those cut outside it are
    /// returned (the run fails, and the caller deletes them).
    async fn hook_window(
        &self,
        ns: &str,
        times: &[(String, SnapshotTimes)],
        opened: Instant,
        first_sent: Instant,
        run: &mut Run,
    ) -> Vec<String> {
        let started = Instant::now();
        let Some(anchor) = times.first().and_then(|(_, t)| t.object_created) else {
            return Vec::new();
        };
        let whole_seconds = |d: Duration| {
            chrono::Duration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2) + 1)
        };
        let anchor = anchor.with_nanosecond(0).unwrap_or(anchor);
        let window = HookWindow {
            start: anchor - whole_seconds(first_sent.saturating_duration_since(opened)),
            end: anchor + whole_seconds(started.saturating_duration_since(first_sent)),
        };
        let annotation = BTreeMap::from([(
            crate::labels::ANNOTATION_HOOK_WINDOW.to_string(),
            window.to_annotation(),
        )]);
        let mut outside = Vec::new();
        for (name, t) in times {
            if let Some(cut) = t.cut
                && !window.contains(cut)
            {
                let message = format!(
                    "VolumeSnapshot {name} was cut at {} (status.creationTime), outside its hook window {} \
                     (after the pre-hooks finished, before the post-hooks began): it may be inconsistent, so it \
                     is deleted",
                    cut.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    window.to_annotation()
                );
                run.record("hook-window", name, StepOutcome::Failed, started, &*message);
                run.fail(FailureKind::StepFailed, &message);
                outside.push(name.clone());
                continue;
            }
            let proven = if t.cut.is_some() {
                "cut inside the hook window"
            } else {
                "no status.creationTime reported; hook window recorded"
            };
            match self.cluster.annotate_snapshot(ns, name, &annotation).await {
                Ok(()) => run.record(
                    "hook-window",
                    name,
                    StepOutcome::Ok,
                    started,
                    format!("{proven} {}", window.to_annotation()),
                ),
                Err(e) => run.record(
                    "hook-window",
                    name,
                    StepOutcome::Warning,
                    started,
                    format!("{proven}; could not record it: {e}"),
                ),
            }
        }
        outside
    }

    /// Deletes the snapshots this run created that it cannot vouch for; `why` ends each cleanup line
    /// ("unusable", or "unproven: the run was stopped by a signal before it was ready").
    async fn remove_created(&self, ns: &str, created: &mut Vec<Created>, why: &str, run: &mut Run) {
        for c in created.drain(..) {
            let started = Instant::now();
            match self.cluster.delete_snapshot(ns, &c.name).await {
                Ok(()) => {
                    run.report.snapshots.retain(|s| s.name != c.name);
                    run.record(
                        "cleanup",
                        &c.name,
                        StepOutcome::Ok,
                        started,
                        format!("deleted {why} snapshot of PVC {}", c.pvc),
                    );
                }
                Err(e) => run.record(
                    "cleanup",
                    &c.name,
                    StepOutcome::Warning,
                    started,
                    format!("could not delete the {why} snapshot: {e}"),
                ),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(skip_all, fields(step = "group-snapshot"))]
    async fn group_step(
        &self,
        plan: &Plan,
        opts: &RunOptions,
        class: &str,
        cancel: &Cancel,
        run: &mut Run,
        created: &mut Vec<Created>,
        members: Vec<SnapshotRequest>,
        timestamp: &str,
    ) {
        let ns = opts.namespace.as_str();
        let started = Instant::now();
        let name =
            plan.snapshot
                .render_name(&plan.name, timestamp, &steps::random_suffix(), &plan.name);
        // The group carries the run-wide labels; tier labels are per PVC and go on the members once they exist.
        let mut labels = plan.snapshot.labels.clone();
        if let Some(first) = members.first() {
            for key in [
                crate::labels::TYPE,
                crate::labels::PLAN,
                crate::labels::POD,
                crate::labels::RETAIN,
            ] {
                if let Some(v) = first.labels.get(key) {
                    labels.insert(key.to_string(), v.clone());
                }
            }
        }
        let request = GroupSnapshotRequest {
            namespace: ns.to_string(),
            name: name.clone(),
            pvcs: plan.targets.clone(),
            // `snapshot.class` names a VolumeSnapshotClass; a group uses the default VolumeGroupSnapshotClass.
            class: None,
            labels,
            annotations: members
                .first()
                .map(|m| m.annotations.clone())
                .unwrap_or_default(),
        };
        run.report.group_snapshot = Some(request.clone());
        // The hook window opens here (the pre-hooks are done); see `hook_window`.
        let window_opened = Instant::now();
        if opts.dry_run {
            run.record(
                "snapshot",
                &plan.targets.join(","),
                StepOutcome::Ok,
                started,
                format!("would create VolumeGroupSnapshot {name} (dry run)"),
            );
            run.report.snapshots = members;
            return;
        }
        let first_sent = Instant::now();
        if let Err(e) = self.cluster.create_group_snapshot(&request).await {
            let message = format!("cannot create the group snapshot {name}: {e}");
            run.record(
                "snapshot",
                &plan.targets.join(","),
                StepOutcome::Failed,
                started,
                &*message,
            );
            run.fail(FailureKind::StepFailed, &message);
            return;
        }
        run.record(
            "snapshot",
            &plan.targets.join(","),
            StepOutcome::Ok,
            started,
            format!("created VolumeGroupSnapshot {name} (class {class})"),
        );
        let one = Instant::now();
        // Members only exist once the group is ready, and they need their labels: always wait for a group.
        let timeout = plan.snapshot.ready_timeout;
        let waited = tokio::select! {
            w = self.cluster.wait_group_snapshot_ready(ns, &name, timeout) => Some(w),
            () = cancelled(cancel.clone()) => None,
        };
        let found = match waited {
            Some(Ok(found)) => found,
            Some(Err(e)) => {
                let kind = match e {
                    WaitError::NotReady { .. } => FailureKind::SnapshotNotReady,
                    _ => FailureKind::StepFailed,
                };
                let message = e.to_string();
                run.record("wait-ready", &name, StepOutcome::Failed, one, &*message);
                run.fail(kind, &message);
                if let Err(e) = self.cluster.delete_group_snapshot(ns, &name).await {
                    tracing::warn!(group = %name, error = %e, "could not delete the unusable group snapshot");
                }
                run.report.group_snapshot = None;
                return;
            }
            None => {
                let signal = signal_of(cancel).unwrap_or(Signal::Terminate);
                let message = format!("stopped by a signal while waiting for {name}");
                run.record("wait-ready", &name, StepOutcome::Cancelled, one, &*message);
                run.fail(FailureKind::Signal(signal), &message);
                // As for single snapshots: an unproven group is not left behind.
                if let Err(e) = self.cluster.delete_group_snapshot(ns, &name).await {
                    tracing::warn!(group = %name, error = %e, "could not delete the {STOPPED} group snapshot");
                }
                run.report.group_snapshot = None;
                return;
            }
        };
        run.record(
            "wait-ready",
            &name,
            StepOutcome::Ok,
            one,
            format!("readyToUse with {} member snapshot(s)", found.len()),
        );
        let times: Vec<(String, SnapshotTimes)> =
            found.iter().map(|m| (m.name.clone(), m.times)).collect();
        for member in found {
            let Some(wanted) = members.iter().find(|m| m.pvc == member.pvc) else {
                let message = format!(
                    "group snapshot {name} covers PVC {} which is not a target of the plan",
                    member.pvc
                );
                run.record("label", &member.name, StepOutcome::Failed, one, &*message);
                run.fail(FailureKind::StepFailed, &message);
                continue;
            };
            let started = Instant::now();
            match self
                .cluster
                .label_snapshot(ns, &member.name, &wanted.labels)
                .await
            {
                Ok(()) => {
                    run.record(
                        "label",
                        &member.name,
                        StepOutcome::Ok,
                        started,
                        format!("retention labels for PVC {}", member.pvc),
                    );
                    created.push(Created {
                        name: member.name.clone(),
                        pvc: member.pvc.clone(),
                    });
                    run.report.snapshots.push(SnapshotRequest {
                        name: member.name.clone(),
                        ..wanted.clone()
                    });
                }
                Err(e) => {
                    let message = format!("cannot label member snapshot {}: {e}", member.name);
                    run.record(
                        "label",
                        &member.name,
                        StepOutcome::Failed,
                        started,
                        &*message,
                    );
                    run.fail(FailureKind::StepFailed, &message);
                }
            }
        }
        let missing: Vec<&str> = members
            .iter()
            .filter(|m| !created.iter().any(|c| c.pvc == m.pvc))
            .map(|m| m.pvc.as_str())
            .collect();
        if !missing.is_empty() && !run.failed() {
            let message = format!(
                "group snapshot {name} has no member for PVC(s) {}",
                missing.join(", ")
            );
            run.record("wait-ready", &name, StepOutcome::Failed, one, &*message);
            run.fail(FailureKind::StepFailed, &message);
        }
        if !run.failed() {
            let outside = self
                .hook_window(ns, &times, window_opened, first_sent, run)
                .await;
            if !outside.is_empty() {
                // One member cut outside the window makes the whole group inconsistent: it goes, members and all.
                let started = Instant::now();
                match self.cluster.delete_group_snapshot(ns, &name).await {
                    Ok(()) => run.record(
                        "cleanup",
                        &name,
                        StepOutcome::Ok,
                        started,
                        "deleted the group snapshot cut outside its hook window",
                    ),
                    Err(e) => run.record(
                        "cleanup",
                        &name,
                        StepOutcome::Warning,
                        started,
                        format!("could not delete the group snapshot: {e}"),
                    ),
                }
                created.clear();
                run.report.snapshots.clear();
                run.report.group_snapshot = None;
            }
        }
        if !run.failed() && !created.is_empty() {
            run.report.backup_taken = true;
        }
    }

    /// Success or failure Events on every target PVC and, in a cluster, on the job's pod.
    #[tracing::instrument(skip_all, fields(step = "events"))]
    async fn events(&self, plan: &Plan, opts: &RunOptions, run: &mut Run) {
        let started = Instant::now();
        // A backup that was taken is reported as such even when a later step failed; that failure gets its own
        // Event below, so an alert on `BackupFailed` never fires for a backup that exists.
        let ok = !run.failed() || run.report.backup_taken;
        let (reason, note_for) = if ok {
            ("BackupSucceeded", None)
        } else {
            ("BackupFailed", run.report.error.clone())
        };
        let mut subjects: Vec<(EventSubject, String)> = Vec::new();
        for pvc in &plan.targets {
            let note = match &note_for {
                None => {
                    let snap = run
                        .report
                        .snapshots
                        .iter()
                        .find(|s| &s.pvc == pvc)
                        .map_or_else(|| "no snapshot".to_string(), |s| s.name.clone());
                    format!("backup-ns plan {}: snapshot {snap} is ready", plan.name)
                }
                Some(e) => format!("backup-ns plan {} failed: {e}", plan.name),
            };
            subjects.push((EventSubject::Pvc(pvc.clone()), note));
        }
        if let Some(pod) = &opts.identity.pod {
            let note = match &note_for {
                None => format!(
                    "backup-ns plan {}: {} snapshot(s) ready",
                    plan.name,
                    run.report.snapshots.len()
                ),
                Some(e) => format!("backup-ns plan {} failed: {e}", plan.name),
            };
            subjects.push((EventSubject::Pod(pod.clone()), note));
        }
        let mut events: Vec<(EventSubject, String, &'static str, bool)> = Vec::new();
        for (subject, note) in subjects {
            events.push((subject.clone(), note, reason, !ok));
            for (later, message) in &run.later_failures {
                let note = format!("backup-ns plan {}: backup taken; {message}", plan.name);
                events.push((subject.clone(), note, later, true));
            }
        }
        let reasons: Vec<&str> = std::iter::once(reason)
            .chain(run.later_failures.iter().map(|(r, _)| *r))
            .collect();
        let reason = reasons.join(", ");
        let mut emitted = 0;
        let mut problems = Vec::new();
        for (subject, note, reason, warning) in events {
            let event = EngineEvent {
                namespace: opts.namespace.clone(),
                subject,
                warning,
                reason: reason.to_string(),
                note,
            };
            match self.cluster.emit_event(&event).await {
                Ok(()) => emitted += 1,
                Err(e) => problems.push(e.message),
            }
        }
        // Events are best effort: a missing PVC cannot carry one, and that must not hide the real error.
        let (outcome, message) = if problems.is_empty() {
            (StepOutcome::Ok, format!("{emitted} event(s) {reason}"))
        } else {
            (
                StepOutcome::Warning,
                format!(
                    "{emitted} event(s) {reason}; not emitted: {}",
                    problems.join("; ")
                ),
            )
        };
        run.record("events", &opts.namespace, outcome, started, message);
    }
}
