//! `backup-ns retention ...`: the retention command group (`simulate`, `apply`, `plan`), plus the flags the other
//! cluster retention commands (`prune`, `sync-labels`, `controller`) share: scope, connection, policy, output.

use crate::Exit;
use crate::clock::Clock;
use crate::cluster::{Cluster, ConnectOptions};
use crate::retention::apply::{
    self as retention_apply, ApplyOptions, DEFAULT_CONCURRENCY, DEFAULT_PAGE_SIZE,
};
use crate::retention::simulate::{self, PolicySpec, Scenario};
use crate::retention::{Guard, Options, Phases};
use crate::vocab::scope::Scope;
use chrono::{NaiveDate, NaiveTime};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  backup-ns retention simulate --policy daily=7,weekly=4,monthly=12 --days 400\n  backup-ns retention simulate --policy days=30 --days 90 -o json"
)]
pub struct RetentionArgs {
    #[command(subcommand)]
    pub command: RetentionCommand,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Replay nightly backups through the real retention policy and show which survive.
    Simulate(SimulateArgs),
    /// Apply GFS tier labels in the cluster: keep each tier label on the newest N ready snapshots (no marking,
    /// no deletion; see `prune`).
    Apply(ApplyArgs),
    /// Show what retention would change (tier labels, marks, deletions), with the reason per snapshot.
    Plan(PlanArgs),
}

/// Which snapshots, in which cluster.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// All namespaces (what the global controller does).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// One namespace. Default: the kubeconfig context's namespace (in a pod: its own namespace).
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Only snapshots matching this label selector (e.g. `backup-ns.sh/pvc=data`).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// kubeconfig file. Default: KUBECONFIG, then ~/.kube/config, then the in-cluster service account.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context. Default: the current context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Objects per list request (`limit`); one scope costs ceil(snapshots / page size) list requests.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
}

/// How many writes a command that writes snapshots keeps in flight.
#[derive(Debug, Clone, Args)]
pub struct WriteArgs {
    /// Writes in flight at once (label patches; deletions too, but they still start no closer than
    /// `--delete-pause` apart, across all of them).
    #[arg(long, value_name = "N", env = "BACKUP_NS_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=256), usize::from))]
    pub concurrency: usize,
}

/// Retention policy settings shared by `retention apply|plan`, `prune` and `controller`.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Whole days between marking a snapshot and the earliest day it may be deleted.
    #[arg(
        long,
        value_name = "DAYS",
        env = "BACKUP_NS_GRACE_DAYS",
        default_value_t = 1
    )]
    pub grace_days: u32,
    /// Mass-deletion guard: refuse to delete more than this percentage of a namespace's managed snapshots.
    #[arg(long, value_name = "PERCENT", env = "BACKUP_NS_GUARD_MAX_SHARE", default_value_t = 50.0, value_parser = parse_percent)]
    pub guard_max_share: f64,
    /// Mass-deletion guard: refuse to delete more than this many snapshots of one namespace per run (0: no cap).
    #[arg(
        long,
        value_name = "N",
        env = "BACKUP_NS_GUARD_MAX_DELETES",
        default_value_t = 100
    )]
    pub guard_max_deletes: u32,
    /// Delete even where the mass-deletion guard trips.
    #[arg(long)]
    pub force: bool,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("`{s}` is not a percentage from 0 to 100")),
    }
}

/// `text` or `json` for the cluster commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human lines and a summary.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Keeps each tier label (daily/weekly/monthly/yearly) on the newest N ready snapshots of every PVC; N comes from
the `backup-ns.sh/retention` annotation of the PVC's newest snapshot, else RETAIN_LAST_DAILY/WEEKLY/MONTHLY
(default 7/4/12). Only changed snapshots are patched, each with one JSON patch that tests the old values first.
Marking and deletion are `backup-ns prune`. Honours BACKUP_NS_NOW and TZ.

Exit codes: 0 done, 1 some patch failed (the rest were applied; re-run), 2 usage.

Examples:
  backup-ns retention apply -A --dry-run
  backup-ns retention apply -n shop
  RETAIN_LAST_DAILY=14 backup-ns retention apply -n shop -l backup-ns.sh/pvc=data -o json")]
pub struct ApplyArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub write: WriteArgs,
    /// Plan and print, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this PVC.
    #[arg(long, value_name = "PVC")]
    pub pvc: Option<String>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Lists the scope once and shows every change the controller would make (tier label removals, marks, deletions)
and every problem it would report, with the reason per snapshot, plus the mass-deletion guard's verdict per
namespace. Writes nothing. Honours BACKUP_NS_NOW and TZ.

Examples:
  backup-ns retention plan -n shop
  backup-ns retention plan -A -o json | jq '.decisions[] | select(.action == \"delete\")'
  BACKUP_NS_NOW=2026-03-01T05:00:00+01:00 TZ=Europe/Vienna backup-ns retention plan -A")]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Only this PVC.
    #[arg(long, value_name = "PVC")]
    pub pvc: Option<String>,
    #[arg(short, long, value_enum, default_value_t = PlanFormat::Table)]
    pub output: PlanFormat,
}

/// Output of `retention plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// NAMESPACE PVC SNAPSHOT ACTION REASON.
    Table,
    /// The plan as JSON: decisions (with reasons), guards, policies.
    Json,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// An ASCII calendar and month-end restore points.
    Text,
    /// One JSON document with every simulated backup and checkpoint.
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  # What will I still have in March? Simulate until then and read the calendar.
  backup-ns retention simulate --policy daily=7,weekly=4,monthly=12 --until 2026-03-31
  backup-ns retention simulate --policy daily=7,weekly=4,monthly=12 --days 400
  backup-ns retention simulate --policy daily=14,monthly=24,yearly=5 --start 2025-01-01 --days 1200
  backup-ns retention simulate --policy days=30 --days 90 -o json | jq '.checkpoints[-1]'
  # The policy and time zone of a plan (its retention profile resolved as `run` resolves it).
  backup-ns retention simulate --plan plans/postgres-app.yaml --profiles plans/retention-profiles.yaml --days 400

Tiers left out of --policy use the controller defaults: RETAIN_LAST_DAILY/WEEKLY/MONTHLY/YEARLY when set,
else 7/4/12/0 as in the original. BACKUP_NS_NOW and TZ set today's date and the zone of the calendar; with
--plan the plan's `timeZone` is the zone unless TZ is set.

Exit codes: 0 simulated, 2 usage (bad flags, an invalid plan or profiles file).")]
pub struct SimulateArgs {
    /// Retention counts: `daily=N,weekly=N,monthly=N[,yearly=N]` or `days=N`.
    #[arg(
        long,
        value_name = "POLICY",
        default_value = "daily=7,weekly=4,monthly=12"
    )]
    pub policy: PolicySpec,
    /// Take the policy (its `retention`, a profile or inline) and the time zone (`timeZone`) from this plan.
    #[arg(long, value_name = "FILE", conflicts_with = "policy")]
    pub plan: Option<PathBuf>,
    /// Retention profiles file for --plan (default: retention-profiles.* beside the plan, then built-ins).
    #[arg(long, value_name = "FILE", requires = "plan")]
    pub profiles: Option<PathBuf>,
    /// Number of nightly backups to simulate.
    #[arg(long, default_value_t = 400, conflicts_with = "until")]
    pub days: u32,
    /// Simulate up to and including this date instead of a number of days (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date)]
    pub until: Option<NaiveDate>,
    /// Date of the first backup (YYYY-MM-DD, local). Default: today.
    #[arg(long, value_parser = parse_date)]
    pub start: Option<NaiveDate>,
    /// Local time of day of the nightly backup (HH:MM).
    #[arg(long, value_name = "HH:MM", default_value = "00:30", value_parser = parse_time)]
    pub at: NaiveTime,
    /// Whole days between marking a backup and the earliest day it may be deleted.
    #[arg(long, value_name = "DAYS", default_value_t = 1)]
    pub grace_days: u32,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    crate::labels::parse_date(s)
        .ok_or_else(|| format!("`{s}` is not a date in the form YYYY-MM-DD"))
}

fn parse_time(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s, "%H:%M")
        .map_err(|_| format!("`{s}` is not a time in the form HH:MM"))
}

pub fn run(args: RetentionArgs) -> Exit {
    match args.command {
        RetentionCommand::Simulate(args) => run_simulate(args),
        RetentionCommand::Apply(args) => run_apply(args),
        RetentionCommand::Plan(args) => run_plan(args),
    }
}

/// Prints `error: ...` and returns `exit` (the cluster commands' common error path).
pub(crate) fn fail(exit: Exit, message: impl std::fmt::Display) -> Exit {
    eprintln!("error: {message}");
    exit
}

/// A current-thread runtime for one async command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            fail(
                Exit::Failure,
                format!("could not start the async runtime: {e}"),
            )
        })
}

/// The clock (BACKUP_NS_NOW, TZ); a bad value is a usage error.
pub(crate) fn clock() -> Result<Clock, Exit> {
    Clock::from_env().map_err(|e| fail(Exit::Usage, e))
}

/// Connects as the target flags say and resolves the scope (`-A`, `-n`, or the client's default namespace).
pub(crate) async fn connect(target: &TargetArgs) -> Result<(Cluster, Scope), Exit> {
    let cluster = Cluster::connect(&ConnectOptions {
        kubeconfig: target.kubeconfig.clone(),
        context: target.context.clone(),
        namespace: target.namespace.clone(),
        ..Default::default()
    })
    .await
    .map_err(|e| fail(Exit::Failure, e))?;
    let scope = if target.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(cluster.namespace().to_string())
    };
    Ok((cluster, scope))
}

/// Planner options from the policy flags and RETAIN_LAST_* (a bad value is a usage error).
pub(crate) fn options(policy: &PolicyArgs, phases: Phases) -> Result<Options, Exit> {
    let defaults = crate::retention::defaults_from_env(|k| std::env::var(k).ok())
        .map_err(|e| fail(Exit::Usage, e))?;
    Ok(Options {
        defaults,
        grace_days: policy.grace_days,
        guard: Guard {
            max_share: policy.guard_max_share / 100.0,
            max_deletes: (policy.guard_max_deletes > 0).then_some(policy.guard_max_deletes),
        },
        force: policy.force,
        phases,
    })
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> Exit {
    // Written straight to stdout, never rendered into one string first: a controller report over 100,000
    // snapshots is tens of MB of JSON.
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => Exit::Success,
        Err(e) => fail(Exit::Failure, format!("could not render JSON: {e}")),
    }
}

/// Prints an apply report as `output` says; the exit code is the report's unless printing failed.
pub(crate) fn print_apply_report(report: &retention_apply::ApplyReport, output: Format) -> Exit {
    let printed = match output {
        Format::Text => {
            print!("{}", report.render_text());
            Exit::Success
        }
        Format::Json => print_json(report),
    };
    if printed != Exit::Success {
        return printed;
    }
    report.exit()
}

fn run_apply(args: ApplyArgs) -> Exit {
    let tiers_only = PolicyArgs {
        grace_days: 1,
        guard_max_share: 50.0,
        guard_max_deletes: 100,
        force: false,
    };
    let phases = Phases {
        tiers: true,
        mark: false,
        sweep: false,
    };
    let (clock, policy, rt) = match (clock(), options(&tiers_only, phases), runtime()) {
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
            pvc: args.pvc.clone(),
            policy,
            dry_run: args.dry_run,
            delete_pause: std::time::Duration::ZERO,
            page_size: args.target.page_size,
            concurrency: args.write.concurrency,
            ..ApplyOptions::default()
        };
        match retention_apply::apply(&cluster, &options, &clock).await {
            Ok(report) => print_apply_report(&report, args.output),
            Err(e) => fail(Exit::Failure, e),
        }
    })
}

fn run_plan(args: PlanArgs) -> Exit {
    let (clock, policy, rt) = match (clock(), options(&args.policy, Phases::ALL), runtime()) {
        (Ok(c), Ok(p), Ok(r)) => (c, p, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    rt.block_on(async {
        let (cluster, scope) = match connect(&args.target).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let listed = match retention_apply::list_scope(
            &cluster,
            &scope,
            args.target.selector.as_deref(),
            args.target.page_size,
        )
        .await
        {
            Ok(l) => l,
            Err(e) => return fail(Exit::Failure, e),
        };
        let options = ApplyOptions {
            scope,
            pvc: args.pvc.clone(),
            policy,
            ..ApplyOptions::default()
        };
        let (_, unreadable, plan, _) = retention_apply::plan_listed(&listed, &options, &clock);
        for u in &unreadable {
            eprintln!("warning: unreadable snapshot left alone: {u}");
        }
        match args.output {
            PlanFormat::Table => {
                print!("{}", plan.render_text());
                Exit::Success
            }
            PlanFormat::Json => print_json(&plan),
        }
    })
}

/// The plan `retention simulate --plan` reads, its diagnostics printed; `None` when it is unusable.
fn simulate_plan(path: &std::path::Path, profiles: Option<&PathBuf>) -> Option<crate::plan::Plan> {
    use super::common::{diag_line, print_diags, term_width};
    let width = term_width();
    let profiles = match profiles.map(|p| crate::plan::Profiles::with_file(p)) {
        Some(Err(diags)) => {
            print_diags(&diags, width, false);
            diag_line("error: the profiles file is invalid");
            return None;
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    let (plan, diags) = crate::plan::load_file(path, profiles.as_ref());
    print_diags(&diags, width, false);
    if plan.is_none() {
        diag_line(&format!("error: the plan {} is invalid", path.display()));
    }
    plan
}

fn run_simulate(args: SimulateArgs) -> Exit {
    let plan = match &args.plan {
        Some(path) => match simulate_plan(path, args.profiles.as_ref()) {
            Some(plan) => Some(plan),
            None => return Exit::Usage,
        },
        None => None,
    };
    let zone = plan.as_ref().and_then(|p| p.time_zone.as_deref());
    let clock = match Clock::from_env_or_zone(zone) {
        Ok(clock) => clock,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let defaults = match crate::retention::defaults_from_env(|k| std::env::var(k).ok()) {
        Ok(defaults) => defaults,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let start = args.start.unwrap_or_else(|| clock.today());
    let days = match args.until {
        None => args.days,
        Some(until) if until >= start => {
            u32::try_from((until - start).num_days() + 1).unwrap_or(u32::MAX)
        }
        Some(until) => {
            eprintln!("error: --until {until} is before the first backup on {start}");
            return Exit::Usage;
        }
    };
    let policy = match (&plan, args.policy.resolve(defaults)) {
        (Some(plan), _) => plan.retention.policy,
        (None, Ok(policy)) => policy,
        (None, Err(e)) => {
            eprintln!("error: --policy: {e}");
            return Exit::Usage;
        }
    };
    let scenario = Scenario {
        policy,
        defaults,
        start,
        days,
        at: args.at,
        grace_days: args.grace_days,
        tz: clock.tz(),
    };
    let sim = match simulate::simulate(&scenario) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let rendered = match args.output {
        Output::Text => simulate::render_text(&sim),
        Output::Json => simulate::render_json(&sim),
    };
    print!("{rendered}");
    Exit::Success
}
