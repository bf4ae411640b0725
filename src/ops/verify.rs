//! `backup-ns verify`: proves a backup by restoring it. The snapshot is restored into a temporary claim (the source
//! claim's class and size), a pod of the database hook's own image mounts it read-only where the workload mounts
//! the source claim, starts a throwaway server on an emptyDir and loads the dump ([`crate::hooks::verify`] builds
//! its script and reads its log); the built-in checks and the plan's `verify.checks` are judged here (a rhai check
//! in the sandbox of [`crate::hooks::rhai_check`], on the rows the pod returned for its queries). The outcome
//! is recorded on the snapshot (`backup-ns.sh/verified-at`, `backup-ns.sh/verify-result`) and in an Event
//! (`BackupVerified` or `BackupVerifyFailed`).
//!
//! Every object the run creates carries `backup-ns.sh/verify-run=<run id>` and is removed on every path (pass,
//! fail, timeout, signal; `--keep` keeps the claim and takes the label off it), and records the run's timeout
//! (`backup-ns.sh/verify-timeout`). A crashed run's objects, older than that, are removed by the next run or the
//! controller ([`super::verify_leftovers`]). All I/O goes through `cluster/`.

use super::OpsError;
use super::restore::{RestoreRequest, restore_pvc, source_claim};
use super::verify_leftovers;
use crate::clock::Clock;
use crate::cluster::core::{EventType, NewEvent};
use crate::cluster::verify::{VerifyPod, claim_mount};
use crate::cluster::{Cluster, ClusterError, VolumeSnapshot};
use crate::engine::Signal;
use crate::hooks::rhai_check::{self, Answers};
use crate::hooks::verify::{
    Engine, HotPostgres, Source, Stage, VerifyOutput, VerifyScript, WORK_DIR, parse_output,
};
use crate::labels::{self, HookWindow, HotBackup};
use crate::plan::model::{CheckTest, Expect};
use crate::plan::{HookAction, HookKind, HookSelector, Plan, select_hook};
use crate::vocab::exec::PodResolver as _;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ObjectReference;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// What to verify, and how.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub namespace: String,
    /// A snapshot by name; `None`: the newest ready one of `pvc` (`--latest`).
    pub snapshot: Option<String>,
    pub pvc: Option<String>,
    /// The plan (`--plan`); `None`: the plan recorded on the snapshot (`backup-ns.sh/plan`).
    pub plan: Option<Plan>,
    /// The pod's image instead of the workload container's.
    pub image: Option<String>,
    /// `None`: the plan's `verify.timeout`.
    pub timeout: Option<Duration>,
    /// Keep the restored claim for inspection.
    pub keep: bool,
}

/// One check and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// A restored table and its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRows {
    pub name: String,
    pub rows: u64,
}

/// The whole verification; `-o json` prints it as is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub namespace: String,
    pub snapshot: String,
    pub pvc: String,
    pub run: String,
    pub image: String,
    pub passed: bool,
    /// Why it did not pass (the first failed check, a timeout, a signal).
    pub failure: Option<String>,
    pub checks: Vec<CheckOutcome>,
    pub tables: Vec<TableRows>,
    pub dump_bytes: Option<u64>,
    /// The claim left for inspection (`--keep`).
    pub kept_claim: Option<String>,
    /// Objects that could not be removed (each with why).
    pub cleanup_problems: Vec<String>,
    pub signal: Option<Signal>,
}

impl VerifyReport {
    /// The one-line summary that goes into the annotation and the Event.
    pub fn summary(&self) -> String {
        if self.passed {
            let rows: u64 = self.tables.iter().map(|t| t.rows).sum();
            format!(
                "passed: {} checks, {} tables, {rows} rows",
                self.checks.len(),
                self.tables.len()
            )
        } else {
            let why = self.failure.clone().unwrap_or_default();
            let mut line = format!("failed: {why}");
            if line.len() > 300 {
                let mut end = 297;
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                line.truncate(end);
                line.push_str("...");
            }
            line
        }
    }

    /// The human report.
    pub fn render_text(&self) -> String {
        let mut s = format!(
            "VolumeSnapshot {}/{} (PVC {}), verify run {}, image {}\n",
            self.namespace, self.snapshot, self.pvc, self.run, self.image
        );
        for c in &self.checks {
            s.push_str(&format!(
                "  {} {:<12} {}\n",
                if c.passed { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            ));
        }
        for t in &self.tables {
            s.push_str(&format!("  table {} rows {}\n", t.name, t.rows));
        }
        if let Some(claim) = &self.kept_claim {
            s.push_str(&format!("  kept claim {claim} for inspection\n"));
        }
        for p in &self.cleanup_problems {
            s.push_str(&format!("  warning: {p}\n"));
        }
        s.push_str(&format!("{}\n", self.summary()));
        s
    }
}

/// The database hook being verified, as the pod needs it.
struct DbTarget {
    engine: Engine,
    database: String,
    dump_file: String,
    /// A `mode: hot` hook: the snapshot holds the data directory, which the pod's server recovers.
    hot: bool,
    image: String,
    mount_path: String,
    sub_path: Option<String>,
    /// How long the dump may have been written before the snapshot's window opened.
    slack: Duration,
}

fn refused(message: impl Into<String>) -> OpsError {
    OpsError::VerifyRefused(message.into())
}

/// The plan recorded on the snapshot (the redacted plan JSON, which loads back as a plan).
fn recorded_plan(vs: &VolumeSnapshot) -> Result<Plan, OpsError> {
    let text = vs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::ANNOTATION_PLAN))
        .ok_or_else(|| {
            refused(format!(
                "VolumeSnapshot {} carries no {} annotation; pass --plan FILE to say which database hook wrote its dump",
                vs.name(),
                labels::ANNOTATION_PLAN
            ))
        })?;
    let source = crate::plan::SourceFile::new(labels::ANNOTATION_PLAN, text.clone());
    let profiles = crate::plan::Profiles::builtin();
    let (plan, diags) =
        crate::plan::load_source(&source, crate::plan::Format::Yaml, None, &profiles);
    plan.ok_or_else(|| {
        let first = diags
            .iter()
            .find(|d| d.is_error())
            .map(|d| d.message.clone())
            .unwrap_or_default();
        refused(format!(
            "the plan recorded on VolumeSnapshot {} does not load ({first}); pass --plan FILE",
            vs.name()
        ))
    })
}

/// The newest ready snapshot of `pvc`.
async fn latest(cluster: &Cluster, ns: &str, pvc: &str) -> Result<VolumeSnapshot, OpsError> {
    let list = cluster
        .list_snapshots(
            &crate::vocab::scope::Scope::Namespace(ns.to_string()),
            None,
            crate::cluster::snapshots::DEFAULT_PAGE_SIZE,
        )
        .await?;
    list.into_iter()
        .filter(|vs| {
            vs.ready()
                && labels::snapshot_pvc(vs.labels().unwrap_or(&BTreeMap::new()), vs.source_pvc())
                    == Some(pvc)
        })
        .max_by_key(|vs| vs.created())
        .ok_or_else(|| {
            refused(format!(
                "PVC {pvc} in namespace {ns} has no ready snapshot to verify (`backup-ns list -n {ns}`)"
            ))
        })
}

/// Picks the database hook and finds its image and where its container mounts `claim`.
async fn db_target(
    cluster: &Cluster,
    ns: &str,
    plan: &Plan,
    claim: &str,
    image: Option<&str>,
) -> Result<DbTarget, OpsError> {
    let selector = match &plan.verify.hook {
        Some(text) => Some(text.parse::<HookSelector>().map_err(refused)?),
        None => None,
    };
    let mut candidates = Vec::new();
    for kind in [HookKind::Postgres, HookKind::Mysql] {
        match select_hook(plan, kind, selector.as_ref()) {
            Ok(found) => candidates.push(found.hook.clone()),
            Err(crate::plan::SelectError::Ambiguous { .. }) if selector.is_none() => {
                candidates.extend(
                    plan.hooks
                        .pre
                        .iter()
                        .filter(|h| h.action.kind() == kind)
                        .cloned(),
                );
            }
            Err(_) => {}
        }
    }
    if candidates.is_empty() {
        return Err(refused(format!(
            "plan `{}` has no {}postgres or mysql hook, so there is no dump to verify",
            plan.name,
            selector
                .as_ref()
                .map(|s| format!("hook `{s}` that is a "))
                .unwrap_or_default()
        )));
    }
    let resolver = cluster.pod_resolver();
    let mut tried = Vec::new();
    for hook in &candidates {
        let (engine, dump, slack) = match &hook.action {
            HookAction::Postgres(p) => (Engine::Postgres, &p.dump, hook.timeout),
            HookAction::Mysql(m) => (Engine::Mysql, &m.dump, hook.timeout),
            _ => continue,
        };
        let hot = dump.mode == crate::vocab::hook::DbMode::Hot;
        if hot && engine == Engine::Postgres && plan.verify.restore_command.is_none() {
            return Err(refused(format!(
                "the postgres hook of plan `{}` has `mode: hot`: its snapshots hold the database's files, which \
                 recover only with the WAL archived up to pg_backup_stop(); give the archive's restore_command \
                 in the plan's `verify.restoreCommand` (e.g. `cp /archive/%f %p`, run in a pod of the hook's \
                 image), or restore one with `backup-ns restore` (it writes the backup_label back)",
                plan.name
            )));
        }
        let target = resolver
            .resolve(ns, &dump.workload, &dump.container)
            .await
            .map_err(|e| refused(format!("cannot find the database hook's container: {e}")))?;
        let pod = cluster
            .get_pod(ns, &target.pod)
            .await?
            .ok_or_else(|| refused(format!("pod {} is gone", target.pod)))?;
        match claim_mount(&pod, &dump.container, claim) {
            Some(mount) => {
                return Ok(DbTarget {
                    engine,
                    database: dump.database.clone(),
                    dump_file: dump.dump_file.clone(),
                    hot,
                    image: image.map_or(mount.image, str::to_string),
                    mount_path: mount.mount_path,
                    sub_path: mount.sub_path,
                    slack: slack + Duration::from_secs(1),
                });
            }
            None => tried.push(format!("{} (container {})", dump.workload, dump.container)),
        }
    }
    Err(refused(format!(
        "no database hook's container mounts PVC {claim} ({} do not), so the dump's place on it is unknown",
        tried.join(", ")
    )))
}

/// What the pod's server starts from: the dump, or a hot snapshot's data directory (and for PostgreSQL what its
/// copy recovers with: the recorded backup_label, the plan's `verify.restoreCommand`, the session's role).
fn script_source<'a>(
    target: &'a DbTarget,
    hot: Option<&'a HotBackup>,
    plan: &'a Plan,
) -> Source<'a> {
    match (hot, target.engine, plan.verify.restore_command.as_deref()) {
        (Some(record), Engine::Postgres, Some(restore_command)) => {
            Source::PostgresDataDir(HotPostgres {
                mount: &target.mount_path,
                backup_label: record.backup_label.as_deref().unwrap_or_default(),
                tablespace_map: record.tablespace_map.as_deref(),
                restore_command,
                user: record.user.as_deref().unwrap_or("postgres"),
            })
        }
        (Some(_), _, _) => Source::MysqlDataDir(&target.mount_path),
        (None, _, _) => Source::Dump(&target.dump_file),
    }
}

/// The objects this run created, for cleanup.
#[derive(Default)]
struct Created {
    claim: Option<String>,
    pod: Option<String>,
}

/// Verifies one snapshot. `cancel` carries SIGINT/SIGTERM: the run stops, cleans up and reports the signal.
pub async fn verify(
    cluster: &Cluster,
    request: &VerifyRequest,
    clock: &Clock,
    cancel: watch::Receiver<Option<Signal>>,
) -> Result<VerifyReport, OpsError> {
    let ns = request.namespace.as_str();
    let vs = match (&request.snapshot, &request.pvc) {
        (Some(name), _) => match cluster.get_snapshot(ns, name).await? {
            Some(vs) => vs,
            None => return Err(super::snapshot_missing(cluster, ns, name).await),
        },
        (None, Some(pvc)) => latest(cluster, ns, pvc).await?,
        (None, None) => {
            let plan = request
                .plan
                .as_ref()
                .ok_or_else(|| refused("--latest needs --pvc, or a --plan with a single target"))?;
            match plan.targets.as_slice() {
                [only] => latest(cluster, ns, only).await?,
                _ => {
                    return Err(refused(
                        "--latest needs --pvc: the plan has several targets",
                    ));
                }
            }
        }
    };
    let source_name = source_claim(&vs)
        .ok_or_else(|| refused(format!("VolumeSnapshot {} names no source PVC", vs.name())))?
        .to_string();
    let source = cluster.get_pvc(ns, &source_name).await?;
    let plan = match &request.plan {
        Some(plan) => plan.clone(),
        None => recorded_plan(&vs)?,
    };
    let mut target = db_target(cluster, ns, &plan, &source_name, request.image.as_deref()).await?;
    let mut hot = None;
    if target.hot {
        let Some(record) = super::restore::hot_record(&vs) else {
            return Err(refused(format!(
                "the database hook of plan `{}` has `mode: hot`, but VolumeSnapshot {} carries no {} annotation: it \
             was not cut while a hot session held the database",
                plan.name,
                vs.name(),
                labels::ANNOTATION_HOT_BACKUP
            )));
        };
        if target.engine == Engine::Postgres && record.backup_label.is_none() {
            return Err(refused(format!(
                "VolumeSnapshot {} records no backup_label in its {} annotation, so its copy cannot recover",
                vs.name(),
                labels::ANNOTATION_HOT_BACKUP
            )));
        }
        // The name the session connected to, after the container's env expanded the hook's `database`.
        if let Some(database) = &record.database {
            target.database = database.clone();
        }
        hot = Some(record);
    }
    let timeout = request.timeout.unwrap_or(plan.verify.timeout);
    let run = crate::engine::steps::random_suffix();
    let name = format!("backup-ns-verify-{run}");
    let restore = restore_pvc(
        &RestoreRequest {
            namespace: ns.to_string(),
            snapshot: vs.name().to_string(),
            pvc: name.clone(),
            storage_class: None,
            access_modes: Vec::new(),
        },
        &vs,
        source.as_ref(),
    )?;
    let mut report = VerifyReport {
        namespace: ns.to_string(),
        snapshot: vs.name().to_string(),
        pvc: source_name,
        run: run.clone(),
        image: target.image.clone(),
        passed: false,
        failure: None,
        checks: Vec::new(),
        tables: Vec::new(),
        dump_bytes: None,
        kept_claim: None,
        cleanup_problems: Vec::new(),
        signal: None,
    };
    let mut created = Created::default();
    let labels = BTreeMap::from([(labels::VERIFY_RUN.to_string(), run.clone())]);
    let annotations = BTreeMap::from([(
        labels::ANNOTATION_VERIFY_TIMEOUT.to_string(),
        humantime::format_duration(timeout).to_string(),
    )]);
    let work = async {
        let mut claim = restore;
        claim.labels = labels.clone();
        let mut claim = claim.to_object();
        claim.metadata.annotations = Some(annotations.clone());
        let stored = cluster.create_pvc(&claim).await?;
        created.claim = Some(name.clone());
        remove_leftovers(cluster, ns, &run, &stored, timeout, &mut report).await;
        let script = VerifyScript {
            engine: target.engine,
            database: &target.database,
            source: script_source(&target, hot.as_ref(), &plan),
            queries: sql_queries(&plan),
            row_queries: row_queries(&plan),
        }
        .render();
        let pod = VerifyPod {
            namespace: ns.to_string(),
            name: name.clone(),
            image: target.image.clone(),
            script,
            claim: name.clone(),
            mount_path: target.mount_path.clone(),
            sub_path: target.sub_path.clone(),
            work_dir: WORK_DIR.to_string(),
            labels: labels.clone(),
            deadline: timeout,
        };
        let mut pod = pod.to_object();
        pod.metadata.annotations = Some(annotations.clone());
        cluster.create_pod(&pod).await?;
        created.pod = Some(name.clone());
        let end = cluster.wait_pod_finished(ns, &name, timeout).await?;
        let log = cluster.pod_log(ns, &name).await?;
        Ok::<_, OpsError>((end, parse_output(&log)))
    };
    let mut signal_rx = cancel.clone();
    let outcome = tokio::select! {
        r = tokio::time::timeout(timeout, work) => Some(r),
        _ = signal_rx.wait_for(Option::is_some) => None,
    };
    let timed_out = format!(
        "the verification did not finish within {}",
        humantime::format_duration(timeout)
    );
    match outcome {
        // The pod's own deadline (activeDeadlineSeconds) is the same timeout, seen by the kubelet first.
        Some(Ok(Ok((end, _)))) if end.reason.as_deref() == Some("DeadlineExceeded") => {
            report.failure = Some(timed_out);
        }
        Some(Ok(Ok((end, output)))) => judge(&mut report, &plan, &vs, &target, &output, &end.phase),
        Some(Ok(Err(OpsError::Cluster(ClusterError::JobTimeout { .. })))) | Some(Err(_)) => {
            report.failure = Some(timed_out);
        }
        Some(Ok(Err(e))) => report.failure = Some(e.to_string()),
        None => {
            let signal = (*cancel.borrow()).unwrap_or(Signal::Terminate);
            report.signal = Some(signal);
            report.failure = Some(format!(
                "stopped by {signal:?} before the verification ended"
            ));
        }
    }
    cleanup(cluster, ns, &created, request.keep, &mut report).await;
    if report.signal.is_none() {
        record(cluster, &vs, clock, &report).await;
    }
    Ok(report)
}

/// Removes other runs' leftovers ([`verify_leftovers::is_leftover`]), reckoned on the API server's clock from our
/// own claim's timestamp; objects that recorded no timeout are judged by ours.
async fn remove_leftovers(
    cluster: &Cluster,
    ns: &str,
    run: &str,
    ours: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
    timeout: Duration,
    report: &mut VerifyReport,
) {
    let Some(now) = crate::cluster::resources::created(&ours.metadata) else {
        return;
    };
    let scope = crate::vocab::scope::Scope::Namespace(ns.to_string());
    let swept = verify_leftovers::remove(cluster, &scope, Some(run), now, timeout, false).await;
    report.cleanup_problems.extend(swept.problems);
}

/// Deletes the pod and the claim (or, with `keep`, takes the run label off the claim).
async fn cleanup(
    cluster: &Cluster,
    ns: &str,
    created: &Created,
    keep: bool,
    report: &mut VerifyReport,
) {
    if let Some(pod) = &created.pod
        && let Err(e) = cluster.delete_pod_now(ns, pod).await
    {
        report.cleanup_problems.push(format!("pod {pod}: {e}"));
    }
    if let Some(claim) = &created.claim {
        let done = if keep {
            report.kept_claim = Some(claim.clone());
            cluster.unlabel_pvc(ns, claim, labels::VERIFY_RUN).await
        } else {
            cluster.delete_pvc(ns, claim).await
        };
        if let Err(e) = done {
            report.cleanup_problems.push(format!("claim {claim}: {e}"));
        }
    }
}

/// The built-in checks, then the plan's, from what the pod reported.
fn judge(
    report: &mut VerifyReport,
    plan: &Plan,
    vs: &VolumeSnapshot,
    target: &DbTarget,
    output: &VerifyOutput,
    phase: &str,
) {
    report.dump_bytes = output.dump_bytes;
    report.tables = output
        .tables
        .iter()
        .map(|(name, rows)| TableRows {
            name: name.clone(),
            rows: *rows,
        })
        .collect();
    let failed_at = output.failure.as_ref().map(|(stage, _)| *stage);
    let why = output
        .failure
        .as_ref()
        .map(|(_, why)| why.clone())
        .unwrap_or_default();
    let mut check = |name: &str, passed: bool, detail: String| {
        report.checks.push(CheckOutcome {
            name: name.to_string(),
            passed,
            detail,
        });
    };
    let stage_check = |stage: Stage, ok: bool, good: String| -> Option<(bool, String)> {
        match failed_at {
            Some(s) if s == stage => Some((false, why.clone())),
            _ if ok => Some((true, good)),
            _ => None,
        }
    };
    let dump = stage_check(
        Stage::Dump,
        output.dump_bytes.is_some(),
        format!(
            "{} at {}",
            output
                .dump_bytes
                .map(crate::hooks::dbops::human_bytes)
                .unwrap_or_default(),
            target.dump_file
        ),
    );
    let decodes = stage_check(Stage::Decode, output.decodes, "decodes".into());
    let server = stage_check(Stage::Server, output.loaded, String::new());
    let loads = stage_check(Stage::Load, output.loaded, "loads with errors fatal".into());
    let copy = stage_check(
        Stage::Copy,
        output.copied_kib.is_some(),
        format!(
            "data directory {} ({}) copied from the snapshot",
            output
                .data_dir
                .as_deref()
                .filter(|d| !d.is_empty())
                .unwrap_or("/"),
            crate::hooks::dbops::human_bytes(output.copied_kib.unwrap_or(0).saturating_mul(1024))
        ),
    );
    let recovers = stage_check(
        Stage::Recover,
        output.recovered,
        "the server recovered the copy and started".into(),
    );
    let tables = stage_check(
        Stage::Tables,
        output.finished,
        format!("{} tables with row counts", output.tables.len()),
    );
    for (name, verdict) in [
        ("dump", dump),
        ("decodes", decodes),
        ("server", server.filter(|(ok, _)| !ok)),
        ("loads", loads),
        ("copy", copy),
        ("recovers", recovers),
        ("tables", tables),
    ] {
        if let Some((passed, detail)) = verdict {
            check(name, passed, detail);
        }
    }
    if output.failure.is_none() && !output.finished {
        check(
            "pod",
            false,
            format!("the verification pod ended {phase} before its script finished"),
        );
    }
    if let Some(mtime) = output.dump_mtime {
        let window = vs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::ANNOTATION_HOOK_WINDOW))
            .and_then(|w| HookWindow::from_annotation(w));
        let opened = window.map(|w| w.start).or_else(|| vs.created());
        if let (Some(opened), Some(written)) = (opened, DateTime::<Utc>::from_timestamp(mtime, 0)) {
            let slack = chrono::Duration::from_std(target.slack).unwrap_or_default();
            let fresh = written >= opened - slack;
            let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            check(
                "fresh",
                fresh,
                if fresh {
                    format!("written {} for the backup of {}", at(written), at(opened))
                } else {
                    format!(
                        "the dump was written {}, before the backup that cut the snapshot began ({}): it is a stale \
                         dump of an earlier backup",
                        at(written),
                        at(opened)
                    )
                },
            );
        }
    }
    if output.finished {
        let rows = row_queries(plan);
        let mut sql_index = 0;
        for c in &plan.verify.checks {
            let (passed, detail) = match &c.test {
                CheckTest::Sql { expect, .. } => {
                    sql_index += 1;
                    sql_verdict(output.answers.get(&(sql_index - 1)), expect)
                }
                CheckTest::Rhai { rhai, queries } => {
                    let answers: Answers = queries
                        .iter()
                        .filter_map(|q| {
                            let j = rows.iter().position(|r| r == q)?;
                            let answer = output
                                .rows
                                .get(&j)
                                .cloned()
                                .unwrap_or_else(|| Err("no answer".to_string()));
                            Some((q.clone(), answer))
                        })
                        .collect();
                    match rhai_check::evaluate(&c.name, rhai, &answers) {
                        Ok(detail) => (true, detail),
                        Err(why) => (false, why),
                    }
                }
            };
            check(&c.name, passed, detail);
        }
    }
    report.passed = !report.checks.is_empty() && report.checks.iter().all(|c| c.passed);
    report.failure = report
        .checks
        .iter()
        .find(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail));
}

/// The SQL of the plan's `sql` checks, in order: the pod answers each with its first value.
fn sql_queries(plan: &Plan) -> Vec<&str> {
    plan.verify
        .checks
        .iter()
        .filter_map(|c| match &c.test {
            CheckTest::Sql { sql, .. } => Some(sql.as_str()),
            CheckTest::Rhai { .. } => None,
        })
        .collect()
}

/// The queries of the plan's rhai checks, each once: the pod answers each with its rows.
fn row_queries(plan: &Plan) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in &plan.verify.checks {
        if let CheckTest::Rhai { queries, .. } = &c.test {
            for q in queries {
                if !out.contains(&q.as_str()) {
                    out.push(q);
                }
            }
        }
    }
    out
}

/// An SQL check's verdict on the pod's answer.
fn sql_verdict(answer: Option<&Result<String, String>>, expect: &Expect) -> (bool, String) {
    match answer {
        Some(Ok(answer)) => match answer.trim().parse::<i64>() {
            Ok(n) if expect.holds(n) => (true, format!("{n} {expect}")),
            Ok(n) => (false, format!("{n}, expected {expect}")),
            Err(_) => (
                false,
                format!("answered `{answer}`, not a whole number (expected {expect})"),
            ),
        },
        Some(Err(e)) => (false, format!("the query failed: {e}")),
        None => (false, "no answer".to_string()),
    }
}

/// The annotations and the Event. Failing to record does not change the verdict; it is reported.
async fn record(cluster: &Cluster, vs: &VolumeSnapshot, clock: &Clock, report: &VerifyReport) {
    let annotations = BTreeMap::from([
        (
            labels::ANNOTATION_VERIFIED_AT.to_string(),
            clock
                .now_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        (
            labels::ANNOTATION_VERIFY_RESULT.to_string(),
            report.summary(),
        ),
    ]);
    let current = match cluster.get_snapshot(&report.namespace, vs.name()).await {
        Ok(Some(current)) => current,
        _ => vs.clone(),
    };
    if let Err(e) = cluster.annotate_snapshot(&current, &annotations).await {
        tracing::warn!(snapshot = %vs.name(), error = %e, "could not record the verification");
    }
    let event = NewEvent {
        regarding: ObjectReference {
            api_version: Some("snapshot.storage.k8s.io/v1".into()),
            kind: Some(VolumeSnapshot::KIND.into()),
            name: Some(vs.name().to_string()),
            namespace: Some(report.namespace.clone()),
            uid: vs.metadata.uid.clone(),
            ..Default::default()
        },
        event_type: if report.passed {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: if report.passed {
            "BackupVerified"
        } else {
            "BackupVerifyFailed"
        }
        .into(),
        action: "Verify".into(),
        note: format!("{} (verify run {})", report.summary(), report.run),
    };
    if let Err(e) = cluster.emit_event(&event).await {
        tracing::warn!(snapshot = %vs.name(), error = %e, "could not emit the verification Event");
    }
}
