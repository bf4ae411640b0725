//! `backup-ns controller`: what the global CronJob runs. Label sync, tier retention, marking and sweeping, in one
//! process over ONE list of VolumeSnapshots, each object written at most once (`retention::pass`), then the
//! removal of crashed `verify` runs' claims and pods (`ops::verify_leftovers`), with one summary.

use super::retention::{
    Format, PolicyArgs, TargetArgs, WriteArgs, clock, connect, fail, options, print_json, runtime,
};
use crate::Exit;
use crate::ops::namespaces::{NamespaceOutcome, per_namespace};
use crate::ops::verify_leftovers::{self, LeftoverReport};
use crate::retention::Phases;
use crate::retention::apply::{self, ApplyOptions, ApplyReport};
use crate::retention::pass;
use crate::retention::sync::{SyncError, SyncReport};
use clap::Args;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Runs label sync (VolumeSnapshot labels onto their contents), GFS tier retention, marking and sweeping (see
`sync-labels`, `retention apply`, `prune`). The VolumeSnapshots of the scope are listed once (in pages) and
shared by all phases; each object's final labels are worked out first, so it is written at most once (a content
whose snapshot is deleted gets only its deletionPolicy switch). Then the claims and pods of crashed `verify` runs
(labelled backup-ns.sh/verify-run, older than their run's backup-ns.sh/verify-timeout) are deleted, one line each.
A failure in one object is reported and the others continue. Settings come from
flags or the environment (deploy/static/backup-ns-controller.yaml's ConfigMap): RETAIN_LAST_DAILY/WEEKLY/MONTHLY,
BACKUP_NS_GUARD_MAX_SHARE, BACKUP_NS_GUARD_MAX_DELETES, BACKUP_NS_GRACE_DAYS, BACKUP_NS_DELETE_PAUSE, TZ, and
BACKUP_NS_NOW for tests and demos.

Exit codes: 0 done, 1 something failed (re-run converges), 2 usage, 5 the guard refused in some namespace.

Examples:
  backup-ns controller -A --log-format json
  backup-ns controller -A --dry-run
  backup-ns controller -n shop --delete-pause 0s -o json")]
pub struct ControllerArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Plan and print, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Pause between two deletions, e.g. `0s`, `500ms`, `5s`.
    #[arg(long, value_name = "DURATION", env = "BACKUP_NS_DELETE_PAUSE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub delete_pause: Duration,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Push the pass's outcome (success, exit code, duration, marked/deleted/failed counts) to this Prometheus
    /// Pushgateway, e.g. `http://pushgateway.monitoring:9091` (https verifies against the system CAs or
    /// SSL_CERT_FILE). Never on --dry-run; a failed push is a warning.
    #[arg(long, value_name = "URL", env = "BACKUP_NS_PUSHGATEWAY")]
    pub pushgateway: Option<String>,
}

/// The controller's one summary.
#[derive(Debug, Serialize)]
pub struct ControllerReport {
    pub sync: SyncReport,
    pub retention: ApplyReport,
    /// Per namespace: which steps succeeded, which failed and why.
    pub namespaces: Vec<NamespaceOutcome>,
    /// A crashed `verify` run's claims and pods, removed (or, on a dry run, listed).
    pub verify_leftovers: LeftoverReport,
    /// API requests sent again after a transient failure.
    pub api_retries: u64,
}

impl ControllerReport {
    pub fn exit(&self) -> Exit {
        match self.retention.exit() {
            Exit::Success if self.sync.failed > 0 || !self.verify_leftovers.problems.is_empty() => {
                Exit::Failure
            }
            other => other,
        }
    }
}

pub fn run(args: ControllerArgs) -> Exit {
    let (clock, policy, rt) = match (clock(), options(&args.policy, Phases::ALL), runtime()) {
        (Ok(c), Ok(p), Ok(r)) => (c, p, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let started = std::time::Instant::now();
    rt.block_on(async {
        let (cluster, scope) = match connect(&args.target).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let options = ApplyOptions {
            scope,
            selector: args.target.selector.clone(),
            policy,
            dry_run: args.dry_run,
            delete_pause: args.delete_pause,
            page_size: args.target.page_size,
            concurrency: args.write.concurrency,
            ..ApplyOptions::default()
        };
        let listed = match apply::list_scope(
            &cluster,
            &options.scope,
            options.selector.as_deref(),
            options.page_size,
        )
        .await
        {
            Ok(l) => l,
            Err(e) => return fail(Exit::Failure, e),
        };
        let contents = match apply::list_contents(&cluster, options.page_size).await {
            Ok(c) => c,
            Err(e) => return fail(Exit::Failure, SyncError::List(Box::new(e))),
        };
        let (sync, retention) =
            pass::sync_and_apply(&cluster, &listed, &contents, &options, &clock).await;
        // The reports own what they name: the lists go before the reports are summed up and printed.
        drop(listed);
        drop(contents);
        let namespaces = per_namespace(&sync, &retention);
        let verify_leftovers =
            verify_leftovers::sweep(&cluster, &options.scope, clock.now_utc(), args.dry_run).await;
        let report = ControllerReport {
            sync,
            retention,
            namespaces,
            verify_leftovers,
            api_retries: cluster.retries(),
        };
        let printed = match args.output {
            Format::Text => {
                print!("{}", report.sync.render_text());
                print!("{}", report.retention.render_text());
                print!("{}", report.verify_leftovers.render_text());
                for ns in report.namespaces.iter().filter(|n| !n.failed.is_empty()) {
                    for failed in &ns.failed {
                        println!(
                            "NAMESPACE {}: {} failed ({}); succeeded: {}",
                            ns.namespace,
                            failed.step,
                            failed.why.join("; "),
                            if ns.succeeded.is_empty() { "nothing".to_string() } else { ns.succeeded.join(", ") }
                        );
                    }
                }
                Exit::Success
            }
            Format::Json => print_json(&report),
        };
        tracing::info!(
            sync = %report.sync.summary_line(),
            retention = %report.retention.summary_line(),
            "controller run finished"
        );
        let exit = if printed != Exit::Success {
            printed
        } else {
            report.exit()
        };
        if let Some(url) = args.pushgateway.as_deref().filter(|_| !args.dry_run) {
            let samples = crate::metrics::outcome::controller_samples(
                &report.sync,
                &report.retention.counts,
                exit.code(),
                clock.now_utc().timestamp(),
                started.elapsed().as_secs_f64(),
            );
            let pushed = crate::metrics::update(
                url,
                crate::metrics::outcome::CONTROLLER_JOB,
                &[],
                &samples,
            )
            .await;
            if let Err(e) = pushed {
                tracing::warn!(error = %e, "could not push the controller's outcome to the Pushgateway");
            }
        }
        exit
    })
}
