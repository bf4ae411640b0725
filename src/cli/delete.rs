//! `backup-ns delete SNAPSHOT...`: deletes VolumeSnapshots so that the storage snapshots go too (content set to
//! `deletionPolicy: Delete` first, then the VolumeSnapshot). Shows what goes and asks first unless `--yes`.

use super::common::{ClusterArgs, block_on, emit, report};
use crate::Exit;
use crate::ops::delete::{check_deletable, confirms, deleted_line, summary};
use crate::ops::style::Style;
use crate::ops::{OpsError, snapshot_missing};
use clap::Args;
use std::io::IsTerminal;
use std::io::{BufRead, Write};

#[derive(Debug, Args)]
#[command(after_help = "\
Every snapshot is checked first: a missing one, or one without backup-ns.sh/
labels (unless --force), stops the command before anything is deleted.
Without a terminal on stdin, --yes is required.

Examples:
  backup-ns delete data-2024-12-17-144438-otsedc
  backup-ns delete -n shop SNAPSHOT1 SNAPSHOT2 --yes
  backup-ns delete data-2025-01-07-182742-fgztxg --dry-run
  backup-ns list --adhoc -o name | cut -d/ -f2 | xargs backup-ns delete -y")]
pub struct DeleteArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// VolumeSnapshot names (in the namespace of -n).
    #[arg(required = true, value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Delete without asking.
    #[arg(short, long)]
    pub yes: bool,
    /// Also delete snapshots that have no backup-ns.sh/ labels.
    #[arg(long)]
    pub force: bool,
    /// Only show what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: DeleteArgs) -> Exit {
    block_on(delete(args))
}

async fn delete(args: DeleteArgs) -> Result<Exit, OpsError> {
    let cluster = args.cluster.connect().await?;
    let ns = cluster.namespace().to_string();
    // Each name once, in the order given.
    let mut seen = std::collections::HashSet::new();
    let names: Vec<&String> = args.snapshots.iter().filter(|n| seen.insert(*n)).collect();
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        match cluster.get_snapshot(&ns, name).await? {
            Some(vs) => found.push(vs),
            None => problems.push(snapshot_missing(&cluster, &ns, name).await),
        }
    }
    problems.extend(check_deletable(&found, args.force));
    if !problems.is_empty() {
        for p in &problems {
            report(p);
        }
        eprintln!("nothing was deleted");
        return Ok(Exit::Failure);
    }
    let verb = if args.dry_run {
        "Would delete"
    } else {
        "Will delete"
    };
    emit(&format!(
        "{verb} {} snapshot(s) in namespace {ns}, including the storage snapshots:\n{}",
        found.len(),
        summary(&found)
    ))?;
    if args.dry_run {
        emit("dry run: nothing was deleted\n")?;
        return Ok(Exit::Success);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(OpsError::NotConfirmable);
        }
        eprint!(
            "{} ",
            Style::for_stderr().bold(&format!("Delete these {} snapshot(s)? [y/N]", found.len()))
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() || !confirms(&answer) {
            eprintln!("aborted: nothing was deleted");
            return Ok(Exit::Failure);
        }
    }
    let mut failed = false;
    for vs in &found {
        match cluster.delete_snapshot(&ns, vs.name()).await {
            Ok(outcome) => emit(&deleted_line(vs.name(), &outcome))?,
            Err(err) => {
                failed = true;
                report(&err);
            }
        }
    }
    Ok(if failed { Exit::Failure } else { Exit::Success })
}
