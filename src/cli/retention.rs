//! `backup-ns retention ...`: the retention command group. For now `simulate`; `apply` and `plan` join it with the
//! cluster layer.

use crate::Exit;
use crate::clock::Clock;
use crate::retention::simulate::{self, PolicySpec, Scenario};
use chrono::{NaiveDate, NaiveTime};
use clap::{Args, Subcommand, ValueEnum};

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

Tiers left out of --policy use the controller defaults: RETAIN_LAST_DAILY/WEEKLY/MONTHLY/YEARLY when set,
else 7/4/12/0 as in the original. BACKUP_NS_NOW and TZ set today's date and the zone of the calendar.")]
pub struct SimulateArgs {
    /// Retention counts: `daily=N,weekly=N,monthly=N[,yearly=N]` or `days=N`.
    #[arg(
        long,
        value_name = "POLICY",
        default_value = "daily=7,weekly=4,monthly=12"
    )]
    pub policy: PolicySpec,
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
    }
}

fn run_simulate(args: SimulateArgs) -> Exit {
    let clock = match Clock::from_env() {
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
    let scenario = Scenario {
        policy: args.policy.0,
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
