//! `backup-ns adhoc`: an adhoc backup Job from the namespace's backup CronJob (replaces the original's
//! `create-adhoc-backup.sh`): type `adhoc`, kept `--retain-days` days, lock off. Refuses while another Job of the
//! CronJob runs; `--wait` / `--follow` make the exit code mirror the Job's result.

use super::common::{ClusterArgs, block_on, clock, emit};
use super::restore::ManifestFormat;
use crate::Exit;
use crate::clock::Clock;
use crate::cluster::jobs::{JobOutcome, job_from_cronjob};
use crate::ops::OpsError;
use crate::ops::adhoc::{
    adhoc_env, backup_container, failure_reason, job_name, parse_from, uses_bak_env,
};
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
#[command(after_help = "\
The Job copies the CronJob's job template and sets, on every container,
BACKUP_NS_SNAPSHOT__TYPE=adhoc, BACKUP_NS_RETENTION={days: N} and
BACKUP_NS_LOCK__ENABLED=false (plus the matching BAK_* variables when the
CronJob is configured with BAK_*). With --wait or --follow the exit code is
0 when the Job completed, 1 when it failed or outlived --timeout.

Examples:
  backup-ns adhoc                        # from cronjob/backup, do not wait
  backup-ns adhoc -n shop --wait
  backup-ns adhoc --follow --timeout 2h  # stream the logs until it ends
  backup-ns adhoc --from cronjob/nightly-backup --retain-days 7
  backup-ns adhoc -o yaml                # print the Job, create nothing")]
pub struct AdhocArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The CronJob whose job template is copied.
    #[arg(long, value_name = "cronjob/NAME", default_value = "cronjob/backup")]
    pub from: String,
    /// Days the adhoc snapshot is kept (label backup-ns.sh/delete-after = today + N).
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub retain_days: u32,
    /// Wait until the Job completes or fails; the exit code mirrors its result.
    #[arg(long)]
    pub wait: bool,
    /// Stream the Job pod's logs until it ends, then report the result (implies --wait).
    #[arg(long)]
    pub follow: bool,
    /// How long --wait / --follow wait.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print the Job in this format instead of creating it.
    #[arg(short, long, value_enum, conflicts_with_all = ["wait", "follow"])]
    pub output: Option<ManifestFormat>,
}

pub fn run(args: AdhocArgs) -> Exit {
    let clock = match clock() {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    block_on(adhoc(args, clock))
}

async fn adhoc(args: AdhocArgs, clock: Clock) -> Result<Exit, OpsError> {
    let cronjob_name = parse_from(&args.from)?;
    let cluster = args.cluster.connect().await?;
    let ns = cluster.namespace().to_string();
    let Some(cronjob) = cluster.get_cronjob(&ns, &cronjob_name).await? else {
        return Err(OpsError::CronJobMissing {
            namespace: ns,
            name: cronjob_name,
        });
    };
    let name = job_name(&cronjob_name, &clock.now_local());
    let env = adhoc_env(args.retain_days, uses_bak_env(&cronjob));
    let job = job_from_cronjob(&cronjob, &name, &env);
    if let Some(format) = args.output {
        let text = match format {
            ManifestFormat::Yaml => serde_saphyr::to_string(&job).map_err(|e| e.to_string()),
            ManifestFormat::Json => serde_json::to_string_pretty(&job)
                .map(|s| s + "\n")
                .map_err(|e| e.to_string()),
        }
        .map_err(OpsError::Output)?;
        emit(&text)?;
        return Ok(Exit::Success);
    }
    // A print-only run creates nothing, so only a real run is refused while a backup is running.
    let running = cluster.active_jobs_of(&ns, &cronjob_name).await?;
    if !running.is_empty() {
        let names: Vec<String> = running
            .iter()
            .filter_map(|j| j.metadata.name.clone())
            .collect();
        return Err(OpsError::BackupRunning {
            namespace: ns,
            cronjob: cronjob_name,
            first: names.first().cloned().unwrap_or_default(),
            jobs: names.join(", "),
        });
    }
    cluster.create_job(&job).await?;
    emit(&format!(
        "job.batch/{name} created in namespace {ns} from cronjob/{cronjob_name} (adhoc, kept {} days)\n",
        args.retain_days
    ))?;
    if !(args.wait || args.follow) {
        emit(&format!(
            "follow it: kubectl -n {ns} logs -f job/{name}   (or run `backup-ns adhoc --follow` next time)\n"
        ))?;
        return Ok(Exit::Success);
    }
    let deadline = Instant::now() + args.timeout;
    if args.follow {
        let container = backup_container(&job);
        let mut out = tokio::io::stdout();
        cluster
            .follow_job_logs(&ns, &name, container, deadline, &mut out)
            .await?;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    match cluster.wait_job(&ns, &name, left).await? {
        JobOutcome::Succeeded => {
            emit(&format!(
                "job.batch/{name} completed; `backup-ns list -n {ns} --adhoc` shows the snapshot\n"
            ))?;
            Ok(Exit::Success)
        }
        JobOutcome::Failed { reason, message } => Err(OpsError::JobFailed {
            namespace: ns,
            name,
            reason: failure_reason(reason, message),
        }),
    }
}
