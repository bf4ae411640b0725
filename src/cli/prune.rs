//! `backup-ns prune`: mark snapshots that lost their last tier label with `delete-after`, and delete those whose
//! `delete-after` has passed (content switched to `Delete` first, deletions paced).

use super::retention::{
    Format, PolicyArgs, TargetArgs, WriteArgs, clock, connect, fail, options, print_apply_report,
    runtime,
};
use crate::Exit;
use crate::retention::Phases;
use crate::retention::apply::{self, ApplyOptions};
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Mark: a `retain=daily_weekly_monthly` snapshot with no tier label left and no delete-after gets
`delete-after = today + --grace-days`. Sweep: a snapshot with a `retain` label whose delete-after is before today
is deleted (its VolumeSnapshotContent is switched to deletionPolicy Delete first, so the storage snapshot goes
too). Snapshots without `backup-ns.sh/retain` are never touched; the newest ready snapshot of a PVC is never
marked or deleted. The mass-deletion guard refuses a namespace where a run would delete more than
--guard-max-share percent or --guard-max-deletes snapshots (exit 5); --force overrides. Tier labels are
`backup-ns retention apply`; `backup-ns controller` runs everything. Honours BACKUP_NS_NOW and TZ.

Exit codes: 0 done, 1 something failed (the rest went ahead; re-run converges), 2 usage, 5 guard tripped.

Examples:
  backup-ns prune -A --dry-run
  backup-ns prune -n shop --mark-only
  backup-ns prune -A --sweep-only --delete-pause 1s
  backup-ns prune -n shop --force")]
pub struct PruneArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Only mark (write delete-after), delete nothing.
    #[arg(long, conflicts_with = "sweep_only")]
    pub mark_only: bool,
    /// Only delete snapshots whose delete-after has passed, mark nothing.
    #[arg(long)]
    pub sweep_only: bool,
    /// Plan and print, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Pause between two deletions (the original slept 5s), e.g. `0s`, `500ms`, `5s`.
    #[arg(long, value_name = "DURATION", env = "BACKUP_NS_DELETE_PAUSE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub delete_pause: Duration,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn run(args: PruneArgs) -> Exit {
    let phases = Phases {
        tiers: false,
        mark: !args.sweep_only,
        sweep: !args.mark_only,
    };
    let (clock, policy, rt) = match (clock(), options(&args.policy, phases), runtime()) {
        (Ok(c), Ok(p), Ok(r)) => (c, p, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
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
        match apply::apply(&cluster, &options, &clock).await {
            Ok(report) => print_apply_report(&report, args.output),
            Err(e) => fail(Exit::Failure, e),
        }
    })
}
