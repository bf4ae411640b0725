//! `backup-ns sync-labels`: copy each VolumeSnapshot's `backup-ns.sh/*` labels onto its VolumeSnapshotContent.

use super::retention::{Format, TargetArgs, WriteArgs, connect, fail, print_json, runtime};
use crate::Exit;
use crate::retention::sync;
use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
Copies the `backup-ns.sh/*` labels of every VolumeSnapshot in scope onto its bound VolumeSnapshotContent and
removes stale `backup-ns.sh/*` labels there, so a content that survives the deletion of its namespace still says
which PVC, tier and retention it belonged to (see `backup-ns rebind`). Other labels are left alone; contents
already in sync are not patched (no request at all). Needs list and patch on volumesnapshotcontents.

Exit codes: 0 done, 1 a list or some patch failed (the rest were patched; re-run), 2 usage.

Examples:
  backup-ns sync-labels -A
  backup-ns sync-labels -n shop --dry-run
  backup-ns sync-labels -A -o json | jq '.changes'")]
pub struct SyncLabelsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub write: WriteArgs,
    /// Show what would change, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn run(args: SyncLabelsArgs) -> Exit {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    rt.block_on(async {
        let (cluster, scope) = match connect(&args.target).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let report = match sync::sync_labels(
            &cluster,
            &scope,
            args.target.selector.as_deref(),
            args.target.page_size,
            args.dry_run,
            args.write.concurrency,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => return fail(Exit::Failure, e),
        };
        let printed = match args.output {
            Format::Text => {
                print!("{}", report.render_text());
                Exit::Success
            }
            Format::Json => print_json(&report),
        };
        if printed != Exit::Success {
            printed
        } else if report.failed > 0 {
            Exit::Failure
        } else {
            Exit::Success
        }
    })
}
