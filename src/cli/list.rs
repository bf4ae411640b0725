//! `backup-ns list`: the backup-ns snapshots of a namespace (or all), filtered by label, oldest first.

use super::common::{ClusterArgs, block_on, clock, emit};
use crate::Exit;
use crate::clock::Clock;
use crate::cluster::Scope;
use crate::cluster::snapshots::DEFAULT_PAGE_SIZE;
use crate::ops::OpsError;
use crate::ops::listing::{self, Filters, Row, TableOptions};
use crate::ops::style::Style;
use clap::{Args, ValueEnum};

/// Output format of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListOutput {
    /// The table plus SNAPSHOTCONTENT and CLASS.
    Wide,
    /// A v1 List of the VolumeSnapshots, as `kubectl get -o json`.
    Json,
    /// The same List as YAML.
    Yaml,
    /// `volumesnapshot.snapshot.storage.k8s.io/NAME` per line.
    Name,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Only snapshots labelled backup-ns.sh/retain are listed; every filter adds a
label term (they combine with AND). AGE counts from BACKUP_NS_NOW when set;
CREATED is shown in TZ (default UTC).

Examples:
  backup-ns list                  # the current namespace
  backup-ns list -A --marked      # marked for deletion, cluster-wide
  backup-ns list -n shop --daily --pvc data
  backup-ns list --adhoc -o wide
  backup-ns list -o name | xargs -n1 kubectl describe
  backup-ns list --weekly --show-kubectl")]
pub struct ListArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// List across all namespaces (adds a NAMESPACE column).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Only snapshots holding a daily slot (`backup-ns.sh/daily`).
    #[arg(long)]
    pub daily: bool,
    /// Only snapshots holding a weekly slot (`backup-ns.sh/weekly`).
    #[arg(long)]
    pub weekly: bool,
    /// Only snapshots holding a monthly slot (`backup-ns.sh/monthly`).
    #[arg(long)]
    pub monthly: bool,
    /// Only adhoc snapshots (`backup-ns.sh/type=adhoc`).
    #[arg(long, conflicts_with = "cronjob")]
    pub adhoc: bool,
    /// Only scheduled snapshots (`backup-ns.sh/type=cronjob`).
    #[arg(long)]
    pub cronjob: bool,
    /// Only snapshots of this PVC (`backup-ns.sh/pvc=NAME`).
    #[arg(long, value_name = "NAME")]
    pub pvc: Option<String>,
    /// Only snapshots marked for deletion (`backup-ns.sh/delete-after`).
    #[arg(long)]
    pub marked: bool,
    /// Only snapshots made by this plan (`backup-ns.sh/plan=NAME`).
    #[arg(long, value_name = "NAME")]
    pub plan: Option<String>,
    /// Output format (default: a table).
    #[arg(short, long, value_enum)]
    pub output: Option<ListOutput>,
    /// Also print the equivalent `kubectl get` command (on stderr).
    #[arg(long)]
    pub show_kubectl: bool,
}

pub fn run(args: ListArgs) -> Exit {
    let clock = match clock() {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    block_on(list(args, clock))
}

async fn list(args: ListArgs, clock: Clock) -> Result<Exit, OpsError> {
    let cluster = args.cluster.connect().await?;
    let filters = Filters {
        daily: args.daily,
        weekly: args.weekly,
        monthly: args.monthly,
        adhoc: args.adhoc,
        cronjob: args.cronjob,
        pvc: args.pvc.clone(),
        marked: args.marked,
        plan: args.plan.clone(),
    };
    let selector = filters.selector();
    let scope = if args.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(cluster.namespace().to_string())
    };
    let namespace = match &scope {
        Scope::All => None,
        Scope::Namespace(ns) => Some(ns.as_str()),
    };
    let wide = args.output == Some(ListOutput::Wide);
    if args.show_kubectl {
        eprintln!("{}", listing::kubectl_command(namespace, &selector, wide));
    }
    let mut snapshots = cluster
        .list_snapshots(&scope, Some(&selector), DEFAULT_PAGE_SIZE)
        .await?;
    listing::sort_by_creation(&mut snapshots);
    if snapshots.is_empty() {
        // On stderr, so `-o json` still prints a valid (empty) List on stdout.
        eprintln!("{}", listing::empty_message(namespace, &selector));
    }
    match args.output {
        Some(ListOutput::Json) => {
            let doc = listing::list_document(&snapshots);
            let text =
                serde_json::to_string_pretty(&doc).map_err(|e| OpsError::Output(e.to_string()))?;
            emit(&(text + "\n"))?;
        }
        Some(ListOutput::Yaml) => {
            let doc = listing::list_document(&snapshots);
            let text =
                serde_saphyr::to_string(&doc).map_err(|e| OpsError::Output(e.to_string()))?;
            emit(&text)?;
        }
        Some(ListOutput::Name) => emit(&listing::render_names(&snapshots))?,
        None | Some(ListOutput::Wide) => {
            if snapshots.is_empty() {
                return Ok(Exit::Success);
            }
            let rows: Vec<Row> = snapshots.iter().map(Row::from_snapshot).collect();
            let options = TableOptions {
                all_namespaces: args.all_namespaces,
                wide,
            };
            emit(&listing::render_table(
                &rows,
                options,
                clock.now_utc(),
                clock.tz(),
                Style::for_stdout(),
            ))?;
        }
    }
    Ok(Exit::Success)
}
