//! Retention against the cluster: one paginated list of VolumeSnapshots, the pure planner, then only the changed
//! objects are written.
//!
//! This is THE function both the cluster-wide controller (`backup-ns controller`, `prune`, `retention apply`) and
//! the engine's in-namespace `run` call. Its shape:
//! - one list for the whole scope (`-A` or one namespace, optional label selector), never per namespace or PVC;
//! - the decisions of one snapshot become ONE JSON patch carrying `test` ops (see `cluster::label_patch`), so a
//!   concurrent edit is rejected instead of clobbered, and the number of patches equals the changed objects;
//! - a deletion costs at most two requests and reads nothing again: the bound content's `deletionPolicy` is switched
//!   to `Delete` by one JSON patch whose `test` ops require the policy and the bound snapshot the content list saw
//!   (skipped when it already says `Delete`), then the snapshot is deleted with DeleteOptions preconditions on its
//!   uid and the resourceVersion the list saw. A snapshot pinned or changed since the list fails that with 409 and
//!   is left alone (someone pinning a snapshot by hand a second ago wins); only then a third request patches the
//!   content's policy back. (The cluster layer reads a 409'd snapshot once and deletes it under its fresh
//!   resourceVersion if only controllers wrote it: its uid and labels are as listed.);
//! - writes run `concurrency` at once (each deletion is self-contained, so workers never share an object), and
//!   deletions start no closer than `delete_pause` apart across all workers;
//! - every failure is recorded and the rest continue; a re-run converges because the planner is idempotent;
//! - what happened comes back typed ([`Outcome`]: the [`Operation`], the planned [`Action`]s, a [`Status`]), so a
//!   caller matches on it instead of reading rendered text.
//!
//! The cluster is reached through [`SnapshotStore`] (implemented by `cluster/`); every request is one call on it.
//!
//! In-namespace runs (a tenant's CronJob) usually may not patch cluster-scoped VolumeSnapshotContents:
//! [`ContentPolicy::LeaveToController`] deletes only snapshots whose content already says `Delete` and reports the
//! others as deferred to the controller.

use crate::Exit;
use crate::clock::Clock;
use crate::labels::{self, DELETE_AFTER, LabelChanges};
use crate::retention::in_order::InOrder;
use crate::retention::policy::{self, Action, Decision, ObservedSnapshot, Options, RetentionPlan};
use crate::retention::port::{Deleted, ListedContent, ListedSnapshot, SnapshotStore};
use crate::vocab::scope::Scope;
use serde::{Serialize, Serializer};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Default page size of the VolumeSnapshot list.
pub const DEFAULT_PAGE_SIZE: u32 = crate::vocab::scope::DEFAULT_PAGE_SIZE;

/// Writes in flight at once by default (`--concurrency`): label patches, and deletions within their pace.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Default pause between two deletions, as in the original (it slept 5 s after each).
pub const DEFAULT_DELETE_PAUSE: Duration = Duration::from_secs(5);

/// Who switches a bound VolumeSnapshotContent to `deletionPolicy: Delete` before its snapshot is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentPolicy {
    /// This run patches the content (the controller's identity may patch VSCs cluster-wide).
    #[default]
    Patch,
    /// This run deletes only snapshots whose content is already `Delete` (or that have none); the others are
    /// reported as [`Status::Deferred`] for the controller. For in-namespace runs without VSC rights.
    LeaveToController,
}

/// What to apply and how.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// `-A` or one namespace.
    pub scope: Scope,
    /// Extra label selector for the list (combined with nothing else: unmanaged snapshots are ignored anyway).
    pub selector: Option<String>,
    /// Only snapshots of this PVC (`backup-ns.sh/pvc`, else the snapshot's source PVC).
    pub pvc: Option<String>,
    /// Planner settings: defaults, grace, guard, force, phases.
    pub policy: Options,
    /// Plan and report, write nothing.
    pub dry_run: bool,
    /// Pause between two deletions (`0s` in tests).
    pub delete_pause: Duration,
    /// Page size of the list (`limit`).
    pub page_size: u32,
    pub content_policy: ContentPolicy,
    /// Writes in flight at once (at least 1). Deletions still start no closer than `delete_pause` apart.
    pub concurrency: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            scope: Scope::All,
            selector: None,
            pvc: None,
            policy: Options::default(),
            dry_run: false,
            delete_pause: DEFAULT_DELETE_PAUSE,
            page_size: DEFAULT_PAGE_SIZE,
            content_policy: ContentPolicy::Patch,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Why a retention run could not even start.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The one list of the scope failed; nothing was planned or written.
    #[error("could not list the VolumeSnapshots to plan retention: {0}")]
    List(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// How one object's change ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Written.
    Applied,
    /// `--dry-run`: would have been written.
    DryRun,
    /// Nothing to send: the object already looks as planned (or was already gone).
    Unchanged,
    /// Deliberately not done by this run, with why (another run will), and the command that does it now.
    Deferred { reason: String, fix: String },
    /// Tried and failed; the run exits non-zero.
    Failed { error: String },
}

/// What happened to one snapshot: its planned actions and how writing them ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub namespace: String,
    pub name: String,
    pub pvc: String,
    /// The VolumeGroupSnapshot the snapshot is a member of, when it is deleted through it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `delete`, or `patch` (tier label removals and/or a mark, sent as one JSON patch).
    pub operation: Operation,
    /// The planned actions; written as their labels, e.g. `remove daily`, `mark 2025-01-03`, `delete`.
    #[serde(serialize_with = "action_labels")]
    pub actions: Vec<Action>,
    #[serde(flatten)]
    pub status: Status,
}

impl Outcome {
    /// The outcome of a planned write; its PVC and actions move into it (the plan keeps only what writing needs).
    fn of<V: ListedSnapshot>(
        vs: &V,
        pvc: String,
        operation: Operation,
        actions: Vec<Action>,
        status: Status,
    ) -> Outcome {
        Outcome {
            namespace: vs.namespace().to_string(),
            name: vs.name().to_string(),
            pvc,
            group: None,
            operation,
            actions,
            status,
        }
    }

    /// The planned actions as the report prints them: `remove daily, mark 2025-01-03`.
    pub fn actions_text(&self) -> String {
        let labels: Vec<String> = self.actions.iter().map(Action::label).collect();
        labels.join(", ")
    }

    /// True when the plan marked this snapshot for deletion (a `delete-after` label).
    pub fn marks(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Mark { .. }))
    }
}

fn action_labels<S: Serializer>(actions: &[Action], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(actions.iter().map(Action::label))
}

/// The one request an [`Outcome`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Patch,
    Delete,
}

/// Counters of one run, for summaries and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// VolumeSnapshots the list returned.
    pub listed: usize,
    /// Of those, carrying `backup-ns.sh/retain`.
    pub managed: usize,
    /// Objects whose labels were (or, dry-run, would be) patched.
    pub patched: usize,
    /// Tier labels removed (or would be).
    pub labels_removed: usize,
    /// Snapshots marked with `delete-after` (or would be).
    pub marked: usize,
    /// Snapshots deleted (or would be).
    pub deleted: usize,
    pub deferred: usize,
    pub unchanged: usize,
    pub failed: usize,
    /// Problems reported by the planner (unparsable dates, protected newest, guard withheld ...).
    pub reports: usize,
}

impl Counts {
    /// Counts an outcome that did not go through (unchanged, deferred, failed); `true` when it did (or, dry-run,
    /// would), for the caller to count as what it was.
    fn tally(&mut self, status: &Status) -> bool {
        match status {
            Status::Applied | Status::DryRun => return true,
            Status::Unchanged => self.unchanged += 1,
            Status::Failed { .. } => self.failed += 1,
            Status::Deferred { .. } => self.deferred += 1,
        }
        false
    }
}

/// The result of [`apply`]: the plan, what happened to every change, counters.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub dry_run: bool,
    pub counts: Counts,
    /// Snapshots that could not be read (bad timestamps ...); they are left alone.
    pub unreadable: Vec<String>,
    pub outcomes: Vec<Outcome>,
    pub plan: RetentionPlan,
}

impl ApplyReport {
    /// Exit code: 5 when the guard refused somewhere, else 1 when anything failed, else 0.
    pub fn exit(&self) -> Exit {
        if self.plan.guard_refused() {
            Exit::GuardTripped
        } else if self.counts.failed > 0 {
            Exit::Failure
        } else {
            Exit::Success
        }
    }

    /// Outcomes that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.status, Status::Failed { .. }))
    }

    /// One line of counters, e.g. for the controller's summary.
    pub fn summary_line(&self) -> String {
        let c = &self.counts;
        let verb = if self.dry_run { "would " } else { "" };
        format!(
            "retention: {} snapshot(s) listed, {} managed; {verb}patch {} ({} tier label(s) removed, {} marked), \
             {verb}delete {}; {} deferred, {} failed, {} report(s)",
            c.listed,
            c.managed,
            c.patched,
            c.labels_removed,
            c.marked,
            c.deleted,
            c.deferred,
            c.failed,
            c.reports
        )
    }

    /// Human output: the guard verdicts, every change with its status, then the summary line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for g in &self.plan.guards {
            if g.tripped {
                let _ = writeln!(out, "GUARD {}: {}", g.namespace, g.reason);
            }
        }
        for name in &self.unreadable {
            let _ = writeln!(out, "UNREADABLE {name}");
        }
        for o in &self.outcomes {
            let status = match &o.status {
                Status::Applied => "ok".to_string(),
                Status::DryRun => "dry-run".to_string(),
                Status::Unchanged => "unchanged".to_string(),
                Status::Deferred { reason, .. } => format!("deferred: {reason}"),
                Status::Failed { error } => format!("FAILED: {error}"),
            };
            let operation = match (o.operation, &o.group) {
                (Operation::Patch, _) => "patch".to_string(),
                (Operation::Delete, None) => "delete".to_string(),
                (Operation::Delete, Some(group)) => {
                    format!("delete with VolumeGroupSnapshot {group}")
                }
            };
            let _ = writeln!(
                out,
                "{}/{} [{}] {operation}: {status}",
                o.namespace,
                o.name,
                o.actions_text(),
            );
            if let Status::Deferred { fix, .. } = &o.status {
                let _ = writeln!(out, "  fix: {fix}");
            }
        }
        for d in &self.plan.decisions {
            let Action::Report { problem } = &d.action else {
                continue;
            };
            let _ = writeln!(out, "REPORT {}/{}: {}", d.namespace, d.name, d.reason);
            if let Some(fix) = problem.fix(&d.namespace, &d.name) {
                let _ = writeln!(out, "  fix: {fix}");
            }
        }
        let _ = writeln!(out, "{}", self.summary_line());
        out
    }
}

/// Lists the scope in pages and reads every VolumeSnapshot. Exposed so a caller that needs the list for something
/// else too (the controller's label sync) lists once.
pub async fn list_scope<C: SnapshotStore>(
    cluster: &C,
    scope: &Scope,
    selector: Option<&str>,
    page_size: u32,
) -> Result<Vec<C::Vs>, ApplyError> {
    cluster
        .list_snapshots(scope, selector, page_size)
        .await
        .map_err(|e| ApplyError::List(Box::new(e)))
}

/// The one list of `options`' scope and selector.
async fn list_options<C: SnapshotStore>(
    cluster: &C,
    options: &ApplyOptions,
) -> Result<Vec<C::Vs>, ApplyError> {
    list_scope(
        cluster,
        &options.scope,
        options.selector.as_deref(),
        options.page_size,
    )
    .await
}

/// Plans and applies retention for `options.scope` at `clock`'s now. See the module docs.
pub async fn apply<C: SnapshotStore>(
    cluster: &C,
    options: &ApplyOptions,
    clock: &Clock,
) -> Result<ApplyReport, ApplyError> {
    let listed = list_options(cluster, options).await?;
    Ok(apply_listed(cluster, &listed, None, options, clock).await)
}

/// Retention for several PVCs of one namespace (`run`'s step): ONE list of `options.scope`, then each PVC planned
/// and applied on its own, as if by [`apply`] with `options.pvc` set to it (the guard weighs each PVC alone).
/// Meant for [`ContentPolicy::LeaveToController`] (which lists no contents); with [`ContentPolicy::Patch`] each
/// PVC with deletions would list the contents again.
/// Returns one report per PVC, in the order given; a PVC whose writes failed is the last one tried, since the
/// step fails there.
pub async fn apply_pvcs<C: SnapshotStore>(
    cluster: &C,
    pvcs: &[String],
    options: &ApplyOptions,
    clock: &Clock,
) -> Result<Vec<ApplyReport>, ApplyError> {
    let listed = list_options(cluster, options).await?;
    let mut reports = Vec::with_capacity(pvcs.len());
    for pvc in pvcs {
        let options = ApplyOptions {
            pvc: Some(pvc.clone()),
            ..options.clone()
        };
        let report = apply_listed(cluster, &listed, None, &options, clock).await;
        let failed = report.counts.failed > 0;
        reports.push(report);
        if failed {
            break;
        }
    }
    Ok(reports)
}

/// Which listed snapshots (by index) belong to each group, by namespace and group name.
pub type GroupMembers = HashMap<(String, String), Vec<usize>>;

/// Plans only: the same list and planner as [`apply`], no writes (what `retention plan` shows). Returns how many of
/// the read snapshots retention manages, the ones that could not be read (in list order), the plan, and the
/// groups' members as listed (not being deleted).
///
/// The planner's namespaces are independent and its plan comes out in namespace order, so `listed` is read and
/// planned one namespace at a time: the planner's own copy of the snapshots ([`ObservedSnapshot`]s) exists for
/// one namespace at a time, never for a whole cluster's list.
pub fn plan_listed<S: ListedSnapshot>(
    listed: &[S],
    options: &ApplyOptions,
    clock: &Clock,
) -> (usize, Vec<String>, RetentionPlan, GroupMembers) {
    let mut by_namespace: Vec<usize> = (0..listed.len()).collect();
    by_namespace.sort_by(|&a, &b| listed[a].namespace().cmp(listed[b].namespace()));
    let pvc = options.pvc.as_deref();
    let mut managed = 0;
    let mut unreadable = Vec::new();
    let mut members = GroupMembers::new();
    let mut plan = RetentionPlan::default();
    // Namespaces are planned apart, so the planner's copy never covers the whole list. A `--pvc` run still reads
    // every snapshot of its namespace: the run rule needs the other PVCs' snapshots of a run
    // ([`policy::plan_focused`] keeps only the PVC's decisions).
    for group in by_namespace.chunk_by(|&a, &b| listed[a].namespace() == listed[b].namespace()) {
        let (indices, snapshots) = read_snapshots(group, listed, &mut unreadable);
        for (&i, s) in indices.iter().zip(&snapshots) {
            if s.is_managed() && pvc.is_none_or(|p| s.pvc == p) {
                managed += 1;
            }
            if let (Some(g), false) = (&s.group, s.deleting) {
                members
                    .entry((s.namespace.clone(), g.clone()))
                    .or_default()
                    .push(i);
            }
        }
        let part = policy::plan_focused(&snapshots, pvc, &options.policy, clock);
        plan.decisions.extend(part.decisions);
        plan.guards.extend(part.guards);
        plan.policies.extend(part.policies);
    }
    // The plan lives as long as the run's report: no growth slack kept.
    plan.decisions.shrink_to_fit();
    unreadable.sort_by_key(|(i, _)| *i);
    (
        managed,
        unreadable.into_iter().map(|(_, why)| why).collect(),
        plan,
        members,
    )
}

/// The snapshots `listed[i]` for each `i` in `indices` that can be read, with their indices; each unreadable one
/// is added to `unreadable` with its index.
fn read_snapshots<S: ListedSnapshot>(
    indices: &[usize],
    listed: &[S],
    unreadable: &mut Vec<(usize, String)>,
) -> (Vec<usize>, Vec<ObservedSnapshot>) {
    let mut read = Vec::with_capacity(indices.len());
    let mut snapshots = Vec::with_capacity(indices.len());
    for &i in indices {
        let vs = &listed[i];
        let value = match vs.to_json() {
            Ok(v) => v,
            Err(e) => {
                unreadable.push((i, format!("{}/{}: {e}", vs.namespace(), vs.name())));
                continue;
            }
        };
        match ObservedSnapshot::from_volume_snapshot(&value) {
            Ok(s) => {
                read.push(i);
                snapshots.push(s);
            }
            Err(e) => unreadable.push((i, format!("{}/{}: {e}", vs.namespace(), vs.name()))),
        }
    }
    (read, snapshots)
}

/// Lists every VolumeSnapshotContent in pages: what deletions switch policies against and label sync reads.
pub async fn list_contents<C: SnapshotStore>(
    cluster: &C,
    page_size: u32,
) -> Result<Vec<C::Vsc>, C::Error> {
    cluster.list_contents(page_size).await
}

/// [`apply`] on an already listed scope. `contents`: the VolumeSnapshotContents as listed, if the caller has them
/// (the controller lists them once for label sync and retention); without them, a run that deletes under
/// [`ContentPolicy::Patch`] lists them itself, once.
pub async fn apply_listed<C: SnapshotStore>(
    cluster: &C,
    listed: &[C::Vs],
    contents: Option<&[C::Vsc]>,
    options: &ApplyOptions,
    clock: &Clock,
) -> ApplyReport {
    let mut work = prepare(listed, options, clock);
    let mut outcomes = write_patches(cluster, &mut work, options).await;
    outcomes.extend(write_deletions(cluster, &mut work, contents, options).await);
    work.finish(outcomes, options)
}

/// One object's label patch as planned: the tier removals and the mark of one snapshot, one request.
pub(crate) struct PlannedPatch<'a, V> {
    pub vs: &'a V,
    pub changes: LabelChanges,
    actions: Vec<Action>,
    pvc: String,
    removed: usize,
    marked: usize,
}

/// One snapshot to delete as planned.
pub(crate) struct PlannedDelete<'a, V> {
    pub vs: &'a V,
    actions: Vec<Action>,
    pvc: String,
    /// The VolumeGroupSnapshot it is a member of, with all its members as listed: deleted through
    /// the group, and held back when any member is. Members of other PVCs are here too when a `--pvc` run
    /// deletes the group: their contents are switched (or checked) with this one's.
    group: Option<(String, Vec<&'a V>)>,
}

/// A run's plan turned into writes, before any is sent: every object appears once, in exactly one of the lists,
/// with its final state worked out (a snapshot that is deleted is never patched first).
pub(crate) struct Work<'a, V> {
    plan: RetentionPlan,
    unreadable: Vec<String>,
    counts: Counts,
    pub patches: Vec<PlannedPatch<'a, V>>,
    pub deletions: Vec<PlannedDelete<'a, V>>,
}

impl<V> Work<'_, V> {
    /// The report of a run whose writes ended as `outcomes`.
    pub(crate) fn finish(self, outcomes: Vec<Outcome>, options: &ApplyOptions) -> ApplyReport {
        ApplyReport {
            dry_run: options.dry_run,
            counts: self.counts,
            unreadable: self.unreadable,
            outcomes,
            plan: self.plan,
        }
    }
}

/// Plans `listed` and groups the decisions per object (keeping the plan's order: namespace, PVC, newest first).
pub(crate) fn prepare<'a, V: ListedSnapshot>(
    listed: &'a [V],
    options: &ApplyOptions,
    clock: &Clock,
) -> Work<'a, V> {
    let (managed, unreadable, plan, members) = plan_listed(listed, options, clock);
    let by_key: HashMap<(&str, &str), &V> = listed
        .iter()
        .map(|vs| ((vs.namespace(), vs.name()), vs))
        .collect();
    let group_of = |d: &Decision| {
        let group = d.group.as_deref()?;
        let all: Vec<&V> = members
            .get(&(d.namespace.clone(), group.to_string()))
            .map(|indices| indices.iter().map(|&i| &listed[i]).collect())
            .unwrap_or_default();
        Some((group.to_string(), all))
    };
    let mut counts = Counts {
        listed: listed.len(),
        managed,
        ..Counts::default()
    };
    let mut order: Vec<(&str, &str)> = Vec::new();
    let mut grouped: HashMap<(&str, &str), Vec<&Decision>> = HashMap::new();
    for d in &plan.decisions {
        if matches!(d.action, Action::Report { .. }) {
            counts.reports += 1;
            continue;
        }
        let key = (d.namespace.as_str(), d.name.as_str());
        grouped
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(d);
    }
    let mut patches = Vec::new();
    let mut deletions = Vec::new();
    for key in order {
        let decisions = &grouped[&key];
        let Some(vs) = by_key.get(&key).copied() else {
            continue;
        };
        let actions: Vec<Action> = decisions.iter().map(|d| d.action.clone()).collect();
        let pvc = decisions[0].pvc.clone();
        if decisions.iter().any(|d| d.action == Action::Delete) {
            let group = group_of(decisions[0]);
            deletions.push(PlannedDelete {
                vs,
                actions,
                pvc,
                group,
            });
            continue;
        }
        let mut changes = LabelChanges::new();
        let (mut removed, mut marked) = (0, 0);
        for d in decisions {
            match &d.action {
                Action::RemoveLabel { tier } => {
                    changes = changes.remove(tier.key());
                    removed += 1;
                }
                Action::Mark { delete_after } => {
                    changes = changes.set(DELETE_AFTER, labels::format_date(*delete_after));
                    marked += 1;
                }
                Action::Delete | Action::Report { .. } => {}
            }
        }
        patches.push(PlannedPatch {
            vs,
            changes,
            actions,
            pvc,
            removed,
            marked,
        });
    }
    drop(grouped);
    // Both lists live through the whole run: no growth slack kept.
    patches.shrink_to_fit();
    deletions.shrink_to_fit();
    Work {
        plan,
        unreadable,
        counts,
        patches,
        deletions,
    }
}

/// Sends the planned label patches, `options.concurrency` in flight (independent objects: a few at once hide
/// the round-trip latency). Outcomes come back in the plan's order; `statuses` of each patch are also returned so
/// a caller (the controller's label sync) knows which snapshots now carry their planned labels.
pub(crate) async fn write_patches<C: SnapshotStore>(
    cluster: &C,
    work: &mut Work<'_, C::Vs>,
    options: &ApplyOptions,
) -> Vec<Outcome> {
    let mut writes = InOrder::new(options.concurrency, work.patches.len());
    for p in &work.patches {
        writes
            .push(patch_one(cluster, p.vs, &p.changes, options.dry_run))
            .await;
    }
    let statuses = writes.finish().await;
    // Room for the deletions' outcomes too, which the callers append: the run's outcomes are allocated once.
    let mut outcomes = Vec::with_capacity(work.patches.len() + work.deletions.len());
    let counts = &mut work.counts;
    outcomes.extend(work.patches.iter_mut().zip(statuses).map(|(p, status)| {
        if counts.tally(&status) {
            counts.patched += 1;
            counts.labels_removed += p.removed;
            counts.marked += p.marked;
        }
        let (pvc, actions) = (std::mem::take(&mut p.pvc), std::mem::take(&mut p.actions));
        Outcome::of(p.vs, pvc, Operation::Patch, actions, status)
    }));
    outcomes
}

/// Paces deletions across all workers: each one starts at least `pause` after the one before, however many run
/// at once (the storage backend sees the original's rate, not `concurrency` times it).
struct Pace {
    pause: Duration,
    next: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Pace {
    fn new(pause: Duration) -> Self {
        Pace {
            pause,
            next: tokio::sync::Mutex::new(None),
        }
    }

    /// Waits for this deletion's turn. The lock is fair (FIFO), so turns are taken in the order asked.
    async fn turn(&self) {
        if self.pause.is_zero() {
            return;
        }
        let at = {
            let mut next = self.next.lock().await;
            let now = tokio::time::Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.pause);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// Sends the planned deletions, up to `options.concurrency` at once and paced by `options.delete_pause`
/// globally. Each deletion is self-contained (its content's guarded switch, then its snapshot's guarded delete),
/// so running several at once cannot make one act on another's object.
pub(crate) async fn write_deletions<C: SnapshotStore>(
    cluster: &C,
    work: &mut Work<'_, C::Vs>,
    contents: Option<&[C::Vsc]>,
    options: &ApplyOptions,
) -> Vec<Outcome> {
    // The contents' policies as listed, only when a real deletion may switch one.
    let needs_contents = !options.dry_run
        && !work.deletions.is_empty()
        && options.content_policy == ContentPolicy::Patch;
    let listed_contents: Result<Vec<C::Vsc>, String> = if needs_contents && contents.is_none() {
        list_contents(cluster, options.page_size)
            .await
            .map_err(|e| format!("could not list the VolumeSnapshotContents: {e}"))
    } else {
        Ok(Vec::new())
    };
    let by_content: HashMap<&str, &C::Vsc> = contents
        .unwrap_or_default()
        .iter()
        .chain(listed_contents.iter().flatten())
        .map(|c| (c.name(), c))
        .collect();
    let mut held = held_by_restores(cluster, &work.deletions, options).await;
    // One job per snapshot, or per group: a group's members are deleted by one request on their group.
    let mut jobs: Vec<Vec<usize>> = Vec::with_capacity(work.deletions.len());
    let mut job_of_group: HashMap<(&str, &str), usize> = HashMap::new();
    for (k, d) in work.deletions.iter().enumerate() {
        match &d.group {
            Some((group, _)) => {
                let key = (d.vs.namespace(), group.as_str());
                match job_of_group.get(&key) {
                    Some(&j) => jobs[j].push(k),
                    None => {
                        job_of_group.insert(key, jobs.len());
                        jobs.push(vec![k]);
                    }
                }
            }
            None => jobs.push(vec![k]),
        }
    }
    let pace = Pace::new(options.delete_pause);
    let list_failed = needs_contents
        .then(|| listed_contents.as_ref().err())
        .flatten();
    let mut writes = InOrder::new(options.concurrency, jobs.len());
    for job in &jobs {
        let (group, members) = match &work.deletions[job[0]].group {
            // Every member of the group as listed, this run's PVC or not: each content is switched first.
            Some((g, all)) if !all.is_empty() => (Some(g.as_str()), all.clone()),
            other => (
                other.as_ref().map(|(g, _)| g.as_str()),
                job.iter().map(|&k| work.deletions[k].vs).collect(),
            ),
        };
        let held = job.iter().find_map(|&k| held[k].take());
        writes
            .push(delete_paced(
                cluster,
                group,
                members,
                &by_content,
                options,
                &pace,
                list_failed,
                held,
            ))
            .await;
    }
    let job_statuses = writes.finish().await;
    let mut statuses: Vec<Option<Status>> = vec![None; work.deletions.len()];
    for (job, status) in jobs.iter().zip(job_statuses) {
        for &k in job {
            statuses[k] = Some(status.clone());
        }
    }
    let counts = &mut work.counts;
    work.deletions
        .iter_mut()
        .zip(statuses.into_iter().flatten())
        .map(|(d, status)| {
            if counts.tally(&status) {
                counts.deleted += 1;
            }
            let (pvc, actions) = (std::mem::take(&mut d.pvc), std::mem::take(&mut d.actions));
            Outcome {
                group: d.group.as_ref().map(|(g, _)| g.clone()),
                ..Outcome::of(d.vs, pvc, Operation::Delete, actions, status)
            }
        })
        .collect()
}

/// Safety rule: a snapshot that a claim is being restored from (the claim is not Bound yet) is not deleted while
/// the restore is in flight. For each planned deletion, the status that holds it back, if any. The claims are
/// listed once (only when something is to be deleted for real); when they cannot be listed, nothing is deleted.
async fn held_by_restores<C: SnapshotStore>(
    cluster: &C,
    deletions: &[PlannedDelete<'_, C::Vs>],
    options: &ApplyOptions,
) -> Vec<Option<Status>> {
    if options.dry_run || deletions.is_empty() {
        return vec![None; deletions.len()];
    }
    let restores = match cluster
        .restores_in_flight(&options.scope, options.page_size)
        .await
    {
        Ok(restores) => restores,
        Err(e) => {
            let status = |ns: &str| {
                if C::is_forbidden(&e) {
                    Status::Deferred {
                        reason: format!(
                            "cannot see whether a claim is being restored from it (listing claims is forbidden: {e})"
                        ),
                        fix: format!("backup-ns controller -n {ns}"),
                    }
                } else {
                    Status::Failed {
                        error: format!(
                            "not deleted: could not list the claims to see whether one is being restored from it: {e}"
                        ),
                    }
                }
            };
            return deletions
                .iter()
                .map(|d| Some(status(d.vs.namespace())))
                .collect();
        }
    };
    let by_snapshot: HashMap<(&str, &str), &str> = restores
        .iter()
        .map(|r| {
            (
                (r.namespace.as_str(), r.snapshot.as_str()),
                r.claim.as_str(),
            )
        })
        .collect();
    deletions
        .iter()
        .map(|d| {
            let ns = d.vs.namespace();
            if let Some(claim) = by_snapshot.get(&(ns, d.vs.name())) {
                return Some(Status::Deferred {
                    reason: format!("claim {claim} is being restored from it (not Bound yet)"),
                    fix: format!("wait until {claim} is Bound, then: backup-ns controller -n {ns}"),
                });
            }
            // A group goes whole: a restore from any member holds every member.
            let (group, members) = d.group.as_ref()?;
            members.iter().find_map(|member| {
                let member = member.name();
                let claim = by_snapshot.get(&(ns, member))?;
                Some(Status::Deferred {
                    reason: format!(
                        "claim {claim} is being restored from {member}, a member of its VolumeGroupSnapshot \
                         {group} (not Bound yet); the group goes whole or not at all"
                    ),
                    fix: format!("wait until {claim} is Bound, then: backup-ns controller -n {ns}"),
                })
            })
        })
        .collect()
}

/// One deletion in its turn: one snapshot, or (`group` set) the members of one VolumeGroupSnapshot, deleted
/// through their group. `list_failed`: the content list this deletion needed could not be read; `held`: what
/// holds it back ([`held_by_restores`]).
#[allow(clippy::too_many_arguments)]
async fn delete_paced<C: SnapshotStore>(
    cluster: &C,
    group: Option<&str>,
    members: Vec<&C::Vs>,
    contents: &HashMap<&str, &C::Vsc>,
    options: &ApplyOptions,
    pace: &Pace,
    list_failed: Option<&String>,
    held: Option<Status>,
) -> Status {
    if options.dry_run {
        return Status::DryRun;
    }
    if let Some(held) = held {
        return held;
    }
    if let Some(error) = list_failed {
        return Status::Failed {
            error: error.clone(),
        };
    }
    pace.turn().await;
    match group {
        Some(group) => {
            delete_group(cluster, group, &members, contents, options.content_policy).await
        }
        None => delete_one(cluster, members[0], contents, options.content_policy).await,
    }
}

/// Deletes the members of VolumeGroupSnapshot `group` (all of them planned for deletion) through their group:
/// each member's content is switched to `Delete` as for one snapshot, each member is read once to see it is still
/// as listed, then ONE delete of the group, which the snapshot controller carries out on every member. A group that is already gone is left at that: its members
/// go with it.
async fn delete_group<C: SnapshotStore>(
    cluster: &C,
    group: &str,
    members: &[&C::Vs],
    contents: &HashMap<&str, &C::Vsc>,
    policy: ContentPolicy,
) -> Status {
    let namespace = members[0].namespace();
    let mut switched: Vec<(&C::Vs, &C::Vsc, &str)> = Vec::new();
    for &vs in members {
        match switch_content(cluster, vs, contents, policy).await {
            Ok(Some((vsc, before))) => switched.push((vs, vsc, before)),
            Ok(None) => {}
            Err(status) => return switch_back(cluster, &switched, status).await,
        }
    }
    // Deleting the group carries no preconditions on its members: each is read once, and one pinned or relabelled
    // since the list keeps the group (one gone or going went with the group, or goes with it).
    for &vs in members {
        let changed = match cluster.snapshot_as_listed(vs).await {
            Ok(as_listed) => as_listed == Some(false),
            Err(e) => {
                let status = Status::Failed {
                    error: format!(
                        "could not read member {} of VolumeGroupSnapshot {group}: {e}",
                        vs.name()
                    ),
                };
                return switch_back(cluster, &switched, status).await;
            }
        };
        if changed {
            let status = Status::Deferred {
                reason: format!(
                    "member {} of VolumeGroupSnapshot {group} changed since the list (pinned, relabelled or gone); \
                     the group is left for the next run",
                    vs.name()
                ),
                fix: format!("backup-ns controller -n {namespace}"),
            };
            return switch_back(cluster, &switched, status).await;
        }
    }
    match cluster.delete_group_snapshot(namespace, group).await {
        Ok(Deleted::Now) => Status::Applied,
        // Gone already (an earlier PVC's pass of `run`, or another run, deleted it): its members go with it.
        // Members are never deleted one by one, not even those a group left behind.
        Ok(Deleted::AlreadyGone | Deleted::Changed) => Status::Unchanged,
        Err(e) => {
            let status = Status::Failed {
                error: format!("could not delete VolumeGroupSnapshot {group}: {e}"),
            };
            switch_back(cluster, &switched, status).await
        }
    }
}

/// After a group deletion that did not happen: the contents switched to `Delete` for it go back to their policy
/// (best effort; a failure is added to `status`).
async fn switch_back<C: SnapshotStore>(
    cluster: &C,
    switched: &[(&C::Vs, &C::Vsc, &str)],
    status: Status,
) -> Status {
    let mut problems = Vec::new();
    for &(vs, vsc, before) in switched {
        match cluster
            .switch_content_policy(vsc, vs, "Delete", before)
            .await
        {
            Ok(true) => {}
            Ok(false) => problems.push(format!(
                "content {} changed meanwhile and still says Delete",
                vsc.name()
            )),
            Err(e) => problems.push(format!(
                "switching content {} back to {before} failed: {e}",
                vsc.name()
            )),
        }
    }
    if problems.is_empty() {
        return status;
    }
    let text = match &status {
        Status::Deferred { reason, .. } => reason.clone(),
        Status::Failed { error } => error.clone(),
        other => format!("{other:?}"),
    };
    Status::Failed {
        error: format!("{text}; {}", problems.join("; ")),
    }
}

/// Makes sure `listed`'s content lets its storage snapshot go with it: with [`ContentPolicy::Patch`] it is switched
/// to `Delete` (guarded; returned with its policy before, for switching back), with
/// [`ContentPolicy::LeaveToController`] a content that does not say `Delete` defers the deletion. `Err`: the
/// status that ends this deletion here.
async fn switch_content<'c, C: SnapshotStore>(
    cluster: &C,
    listed: &C::Vs,
    contents: &HashMap<&str, &'c C::Vsc>,
    policy: ContentPolicy,
) -> Result<Option<(&'c C::Vsc, &'c str)>, Status> {
    let failed = |e: &C::Error| Status::Failed {
        error: e.to_string(),
    };
    // A later pass finishes what this one left: the controller's, with the rights to switch contents.
    let rerun = format!("backup-ns controller -n {}", listed.namespace());
    let Some(content) = listed.bound_content() else {
        return Ok(None);
    };
    match policy {
        ContentPolicy::Patch => {
            let Some(vsc) = contents.get(content).copied() else {
                return Ok(None);
            };
            if vsc.deletion_policy() == "Delete" {
                return Ok(None);
            }
            match cluster
                .switch_content_policy(vsc, listed, vsc.deletion_policy(), "Delete")
                .await
            {
                Ok(true) => Ok(Some((vsc, vsc.deletion_policy()))),
                Ok(false) => Err(Status::Deferred {
                    reason: format!(
                        "content {content} changed since the list (deletionPolicy or bound snapshot); \
                         left for the next run"
                    ),
                    fix: rerun,
                }),
                Err(e) => Err(failed(&e)),
            }
        }
        ContentPolicy::LeaveToController => match cluster.get_content(content).await {
            Ok(Some(vsc)) if vsc.deletion_policy() == "Delete" => Ok(None),
            Ok(Some(vsc)) => Err(Status::Deferred {
                reason: format!(
                    "content {content} has deletionPolicy {}; the controller switches it and deletes",
                    vsc.deletion_policy()
                ),
                fix: rerun,
            }),
            Ok(None) => Ok(None),
            Err(e) if C::is_forbidden(&e) => Err(Status::Deferred {
                reason: format!(
                    "may not read content {content}; the controller deletes this snapshot"
                ),
                fix: rerun,
            }),
            Err(e) => Err(failed(&e)),
        },
    }
}

/// One deletion as listed: at most two requests (the content's policy switch, the snapshot's guarded delete), a
/// third only to switch the policy back when the snapshot changed since the list. See the module docs.
async fn delete_one<C: SnapshotStore>(
    cluster: &C,
    listed: &C::Vs,
    contents: &HashMap<&str, &C::Vsc>,
    policy: ContentPolicy,
) -> Status {
    let failed = |e: &C::Error| Status::Failed {
        error: e.to_string(),
    };
    let rerun = format!("backup-ns controller -n {}", listed.namespace());
    // The content switched to `Delete` by this deletion, and its policy before.
    let switched = match switch_content(cluster, listed, contents, policy).await {
        Ok(switched) => switched,
        Err(status) => return status,
    };
    match cluster.delete_snapshot(listed).await {
        Ok(Deleted::AlreadyGone) => Status::Unchanged,
        Ok(Deleted::Now) => Status::Applied,
        Ok(Deleted::Changed) => {
            let reason =
                "it changed since the list (pinned or relabelled); left alone for the next run";
            let Some((vsc, before)) = switched else {
                return Status::Deferred {
                    reason: reason.to_string(),
                    fix: rerun,
                };
            };
            match cluster
                .switch_content_policy(vsc, listed, "Delete", before)
                .await
            {
                Ok(true) => Status::Deferred {
                    reason: format!("{reason}; content {} is back to {before}", vsc.name()),
                    fix: rerun,
                },
                Ok(false) => Status::Failed {
                    error: format!(
                        "{reason}, but content {} changed meanwhile and still says Delete; set its deletionPolicy \
                         back to {before} if the snapshot is to be kept",
                        vsc.name()
                    ),
                },
                Err(e) => Status::Failed {
                    error: format!(
                        "{reason}, but switching content {} back to {before} failed: {e}",
                        vsc.name()
                    ),
                },
            }
        }
        Err(e) => failed(&e),
    }
}

/// One guarded label patch; its status for the report.
async fn patch_one<C: SnapshotStore>(
    cluster: &C,
    vs: &C::Vs,
    changes: &LabelChanges,
    dry_run: bool,
) -> Status {
    if dry_run {
        return Status::DryRun;
    }
    match cluster.patch_snapshot_labels(vs, changes).await {
        Ok(true) => Status::Applied,
        Ok(false) => Status::Unchanged,
        Err(e) => Status::Failed {
            error: e.to_string(),
        },
    }
}
