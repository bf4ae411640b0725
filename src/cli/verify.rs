//! `backup-ns verify [SNAPSHOT | --latest]`: restores a snapshot into a temporary claim, loads its dump into a
//! throwaway database server in a pod of the hook's image, runs the built-in and the plan's checks, records the
//! outcome on the snapshot and cleans up. The flow is [`crate::ops::verify`].

use super::common::{ClusterArgs, block_on, emit, print_diags, term_width};
use crate::Exit;
use crate::clock::Clock;
use crate::engine::Signal;
use crate::ops::OpsError;
use crate::ops::verify::{VerifyRequest, verify};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = "\
The pod runs the database hook's own image (the workload container's, or --image) with the
restored claim mounted read-only where the workload mounts the source claim, plus an emptyDir
for a throwaway server (initdb + postgres, or mariadb-install-db + mariadbd). Built-in checks:
the dump exists, decodes, loads with errors fatal, its tables are counted, and it is no older
than the backup that cut the snapshot; then the plan's verify.checks. A snapshot of a
`mode: hot` MySQL/MariaDB hook holds the data directory instead: the pod copies it onto the
emptyDir and the server recovers the copy (checks copy, recovers, tables and the plan's); a
PostgreSQL one also gets its backup_label back and needs the plan's verify.restoreCommand to
fetch the archived WAL (refused with exit 2 without it). The outcome goes into the
snapshot's backup-ns.sh/verified-at and backup-ns.sh/verify-result annotations and an Event
(BackupVerified or BackupVerifyFailed). Every object carries backup-ns.sh/verify-run and is
removed on every path; --keep keeps the restored claim.

Exit codes: 0 passed, 7 the backup failed its verification, 1 the verification could not run
(API failure, timeout), 2 usage (no such snapshot, no database hook, an invalid plan, a
hot PostgreSQL snapshot without verify.restoreCommand), 130/143 stopped by a signal (cleaned up).

Examples:
  backup-ns verify --latest --pvc data --plan plans/postgres-app.yaml
  backup-ns verify pgdata-2025-01-09-001749-vfyfeu -n shop -o json
  backup-ns verify --latest --pvc data --image postgres:17 --keep")]
pub struct VerifyArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The VolumeSnapshot to verify.
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    pub snapshot: Option<String>,
    /// The newest ready snapshot of --pvc (or of the plan's only target).
    #[arg(long)]
    pub latest: bool,
    /// The PVC whose newest snapshot --latest takes.
    #[arg(long, value_name = "NAME")]
    pub pvc: Option<String>,
    /// The plan (its database hook and verify.checks). Default: the plan recorded on the snapshot.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// The verification pod's image (default: the database hook's container image).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// How long the restore and the pod may take (default: the plan's verify.timeout, 30m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Keep the restored claim for inspection.
    #[arg(long)]
    pub keep: bool,
    #[arg(short, long, value_enum, default_value_t = VerifyFormat::Table)]
    pub output: VerifyFormat,
}

pub fn run(args: VerifyArgs) -> Exit {
    let plan = match &args.plan {
        Some(path) => {
            let (plan, diags) = crate::plan::load_file(path, None);
            print_diags(&diags, term_width(), false);
            match plan {
                Some(plan) => Some(plan),
                None => {
                    super::common::report(&format!("the plan {} is invalid", path.display()));
                    return Exit::Usage;
                }
            }
        }
        None => None,
    };
    let clock = match Clock::from_env_or_zone(plan.as_ref().and_then(|p| p.time_zone.as_deref())) {
        Ok(c) => c,
        Err(e) => {
            super::common::report(&e);
            return Exit::Usage;
        }
    };
    block_on(async move {
        let cluster = args.cluster.connect().await?;
        let request = VerifyRequest {
            namespace: cluster.namespace().to_string(),
            snapshot: args.snapshot.clone(),
            pvc: args.pvc.clone(),
            plan,
            image: args.image.clone(),
            timeout: args.timeout,
            keep: args.keep,
        };
        let (tx, rx) = tokio::sync::watch::channel(None);
        let signals = tokio::spawn(super::run::forward_signals(tx));
        let report = verify(&cluster, &request, &clock, rx).await;
        signals.abort();
        let report = report?;
        let text = match args.output {
            VerifyFormat::Table => report.render_text(),
            VerifyFormat::Json => serde_json::to_string_pretty(&report)
                .map(|s| s + "\n")
                .map_err(|e| OpsError::Output(e.to_string()))?,
        };
        emit(&text)?;
        Ok(match (report.signal, report.passed) {
            (Some(Signal::Interrupt), _) => Exit::Interrupted,
            (Some(Signal::Terminate), _) => Exit::Terminated,
            (None, true) => Exit::Success,
            (None, false) if report.checks.is_empty() => Exit::Failure,
            (None, false) => Exit::VerifyFailed,
        })
    })
}
