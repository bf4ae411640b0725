//! `retention simulate`: replays nightly backups day by day through the real creation labels and the real planner,
//! and shows which backups survive.
//!
//! Each simulated night takes one snapshot of one PVC (labelled by [`labels::creation_labels`], exactly as `run`
//! labels it), then runs [`policy::plan`] and [`policy::apply_decisions`] (tier labels → mark → sweep, with the grace
//! period and the guard), as the engine does after its snapshot. The renderers answer "what will I still have in
//! March?": a calendar of the backups present on the last day, and the restore points at the end of each month.

use crate::clock::Clock;
use crate::labels::{self, PriorSnapshot};
use crate::retention::policy::{self, Action, ObservedSnapshot, Options};
use crate::vocab::retention::{RetentionPolicy, Tier, TierCounts};
use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::str::FromStr;

/// The longest simulation accepted (about 55 years); longer ones are almost certainly a typo.
pub const MAX_DAYS: u32 = 20_000;

/// A `--policy` value: `daily=7,weekly=4,monthly=12[,yearly=N]` or `days=N`, checked when parsed. It says what
/// the retention annotation says, in another notation, so it is kept as that annotation and read as one:
/// [`resolve`](PolicySpec::resolve) fills the tiers it leaves out from the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    annotation: String,
}

impl PolicySpec {
    /// The policy, with tiers the spec leaves out taken from `defaults`.
    pub fn resolve(&self, defaults: TierCounts) -> Result<RetentionPolicy, serde_json::Error> {
        RetentionPolicy::from_annotation(&self.annotation, defaults)
    }
}

/// Why a `--policy` value is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicySpecError {
    #[error(
        "expected KEY=N pairs separated by commas (e.g. `daily=7,weekly=4,monthly=12`), found `{0}`"
    )]
    Shape(String),
    #[error("unknown policy key `{0}`; expected daily, weekly, monthly, yearly or days")]
    UnknownKey(String),
    #[error("`{key}={value}`: the count must be a whole number from 0 to 100000")]
    Count { key: String, value: String },
    #[error("`{0}` is given twice")]
    Duplicate(String),
    #[error("`days` cannot be combined with daily/weekly/monthly/yearly")]
    Mixed,
}

impl FromStr for PolicySpec {
    type Err = PolicySpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        for part in s.split(',').map(str::trim) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| PolicySpecError::Shape(s.to_string()))?;
            let (key, value) = (key.trim(), value.trim());
            if !matches!(key, "daily" | "weekly" | "monthly" | "yearly" | "days") {
                return Err(PolicySpecError::UnknownKey(key.to_string()));
            }
            let n: u32 = value
                .parse()
                .ok()
                .filter(|n| *n <= 100_000)
                .ok_or_else(|| PolicySpecError::Count {
                    key: key.to_string(),
                    value: value.to_string(),
                })?;
            if seen.insert(key, n).is_some() {
                return Err(PolicySpecError::Duplicate(key.to_string()));
            }
        }
        if seen.contains_key("days") && seen.len() > 1 {
            return Err(PolicySpecError::Mixed);
        }
        Ok(PolicySpec {
            annotation: serde_json::json!(seen).to_string(),
        })
    }
}

/// What to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scenario {
    pub policy: RetentionPolicy,
    /// The controller defaults: the counts the planner falls back on (a `days` policy has no tier counts).
    pub defaults: TierCounts,
    /// Local date of the first nightly backup.
    pub start: NaiveDate,
    /// Number of nightly backups.
    pub days: u32,
    /// Local time of day of each backup.
    pub at: NaiveTime,
    pub grace_days: u32,
    pub tz: Tz,
}

/// One simulated backup and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimBackup {
    pub name: String,
    /// Local date it was taken.
    pub taken: NaiveDate,
    /// Tier labels it got at creation.
    pub tiers_at_creation: Vec<Tier>,
    /// Local date `delete-after` was written by the mark phase (GFS), if it was.
    pub marked: Option<NaiveDate>,
    /// Local date it was deleted, if it was.
    pub deleted: Option<NaiveDate>,
    /// Tier labels it still holds on the last day (empty when deleted).
    pub tiers_at_end: Vec<Tier>,
}

/// What can be restored at the end of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub date: NaiveDate,
    /// Backups present (including those marked and awaiting the sweep).
    pub present: usize,
    pub oldest: Option<NaiveDate>,
    /// Per tier: how many present backups hold it, and the oldest such backup.
    pub tiers: BTreeMap<Tier, TierCoverage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TierCoverage {
    pub count: usize,
    pub oldest: Option<NaiveDate>,
}

/// The result of a simulation; `-o json` prints it as is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    pub policy: RetentionPolicy,
    /// The resolved counts (for `days` policies: the defaults, unused).
    pub counts: TierCounts,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub days: u32,
    pub at: NaiveTime,
    pub grace_days: u32,
    pub tz: String,
    pub backups: Vec<SimBackup>,
    /// The last day of every month in the range, and the last simulated day.
    pub checkpoints: Vec<Checkpoint>,
    /// Days on which the mass-deletion guard refused to delete.
    pub guard_trips: Vec<NaiveDate>,
}

/// Why a simulation cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulateError {
    #[error("--days must be between 1 and {MAX_DAYS}, got {0}")]
    Days(u32),
    #[error("the simulated range starting {0} runs past the supported calendar")]
    Range(NaiveDate),
}

const PVC_NAME: &str = "data";
const NAMESPACE: &str = "simulation";

impl Scenario {
    /// The instant of the nightly backup on `date`. On a DST gap the backup runs at the first valid instant after.
    fn instant(&self, date: NaiveDate) -> chrono::DateTime<chrono::Utc> {
        let mut local = date.and_time(self.at);
        for _ in 0..4 {
            if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
                return t.with_timezone(&chrono::Utc);
            }
            local += chrono::Duration::minutes(30);
        }
        chrono::Utc.from_utc_datetime(&date.and_time(self.at))
    }
}

/// Runs the scenario through the real creation rule and planner.
pub fn simulate(scenario: &Scenario) -> Result<Simulation, SimulateError> {
    if scenario.days == 0 || scenario.days > MAX_DAYS {
        return Err(SimulateError::Days(scenario.days));
    }
    let end = scenario
        .start
        .checked_add_days(chrono::Days::new(u64::from(scenario.days - 1)))
        .filter(|e| e.year() < 9000)
        .ok_or(SimulateError::Range(scenario.start))?;
    let counts = scenario.policy.tiers_or(scenario.defaults);
    let options = Options {
        defaults: counts,
        grace_days: scenario.grace_days,
        ..Options::default()
    };
    let annotation = scenario.policy.to_annotation();

    let mut live: Vec<ObservedSnapshot> = Vec::new();
    let mut backups: Vec<SimBackup> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut checkpoints = Vec::new();
    let mut guard_trips = Vec::new();

    let mut date = scenario.start;
    loop {
        let at = scenario.instant(date);
        let clock = Clock::fixed(at, scenario.tz);
        let prior: Vec<PriorSnapshot<'_>> = live
            .iter()
            .map(|s| PriorSnapshot {
                labels: &s.labels,
                source_pvc: Some(&s.pvc),
                created: s.created,
                ready: s.ready,
            })
            .collect();
        let new_labels = labels::creation_labels(PVC_NAME, &scenario.policy, &prior, &clock);
        drop(prior);
        let name = format!("{PVC_NAME}-{}", date.format("%Y-%m-%d"));
        backups.push(SimBackup {
            name: name.clone(),
            taken: date,
            tiers_at_creation: tiers_of(&new_labels),
            marked: None,
            deleted: None,
            tiers_at_end: Vec::new(),
        });
        index.insert(name.clone(), backups.len() - 1);
        live.push(ObservedSnapshot {
            namespace: NAMESPACE.to_string(),
            name,
            pvc: PVC_NAME.to_string(),
            labels: new_labels,
            retention: Some(annotation.clone()),
            created: Some(at),
            ready: true,
            content: None,
            deleting: false,
            group: None,
            run_id: None,
        });

        // Retention runs right after the snapshot, as in `run`.
        let run_clock = clock.at(at + chrono::Duration::minutes(1));
        let plan = policy::plan(&live, &options, &run_clock);
        if plan.guard_refused() {
            guard_trips.push(date);
        }
        for d in plan.changes() {
            let Some(&b) = index.get(&d.name) else {
                continue;
            };
            match d.action {
                Action::Mark { .. } => backups[b].marked = Some(date),
                Action::Delete => backups[b].deleted = Some(date),
                _ => {}
            }
        }
        policy::apply_decisions(&mut live, &plan.decisions);

        let last_of_month = date.succ_opt().is_none_or(|n| n.month() != date.month());
        if last_of_month || date == end {
            checkpoints.push(checkpoint(date, &live, &backups, &index));
        }
        if date == end {
            break;
        }
        date = date
            .succ_opt()
            .ok_or(SimulateError::Range(scenario.start))?;
    }

    for s in &live {
        if let Some(&b) = index.get(&s.name) {
            backups[b].tiers_at_end = tiers_of(&s.labels);
        }
    }
    Ok(Simulation {
        policy: scenario.policy,
        counts,
        start: scenario.start,
        end,
        days: scenario.days,
        at: scenario.at,
        grace_days: scenario.grace_days,
        tz: scenario.tz.name().to_string(),
        backups,
        checkpoints,
        guard_trips,
    })
}

fn tiers_of(labels: &BTreeMap<String, String>) -> Vec<Tier> {
    Tier::ALL
        .into_iter()
        .filter(|t| labels.contains_key(t.key()))
        .collect()
}

fn checkpoint(
    date: NaiveDate,
    live: &[ObservedSnapshot],
    backups: &[SimBackup],
    index: &HashMap<String, usize>,
) -> Checkpoint {
    let taken = |s: &ObservedSnapshot| index.get(&s.name).map(|&b| backups[b].taken);
    let mut tiers = BTreeMap::new();
    for tier in Tier::ALL {
        let holders = live.iter().filter(|s| s.labels.contains_key(tier.key()));
        tiers.insert(
            tier,
            TierCoverage {
                count: holders.clone().count(),
                oldest: holders.filter_map(taken).min(),
            },
        );
    }
    Checkpoint {
        date,
        present: live.len(),
        oldest: live.iter().filter_map(taken).min(),
        tiers,
    }
}

fn policy_text(sim: &Simulation) -> String {
    match sim.policy {
        RetentionPolicy::Days(days) => format!("days={days}"),
        RetentionPolicy::Tiers(_) => {
            let c = sim.counts;
            format!(
                "daily={} weekly={} monthly={} yearly={}",
                c.daily, c.weekly, c.monthly, c.yearly
            )
        }
    }
}

/// The symbol of a backup in the calendar: its longest-period tier, `o` when present without a tier label
/// (a `days` backup, or marked and waiting for the sweep), `.` when already deleted.
fn symbol(b: &SimBackup) -> char {
    if b.deleted.is_some() {
        return '.';
    }
    match b.tiers_at_end.iter().max() {
        Some(Tier::Yearly) => 'Y',
        Some(Tier::Monthly) => 'M',
        Some(Tier::Weekly) => 'W',
        Some(Tier::Daily) => 'D',
        None => 'o',
    }
}

/// The terminal rendering: header, the calendar of the last day's state, and month-end restore points.
pub fn render_text(sim: &Simulation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Retention simulation: {}, grace {} day{}, TZ {}",
        policy_text(sim),
        sim.grace_days,
        if sim.grace_days == 1 { "" } else { "s" },
        sim.tz
    );
    let _ = writeln!(
        out,
        "Nightly backups at {} from {} to {} ({} days).",
        sim.at.format("%H:%M"),
        sim.start,
        sim.end,
        sim.days
    );
    if !sim.guard_trips.is_empty() {
        let _ = writeln!(
            out,
            "The mass-deletion guard refused to delete on {} day(s), first on {}.",
            sim.guard_trips.len(),
            sim.guard_trips[0]
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Backups still present on {} (last day):", sim.end);
    let _ = writeln!(out, "         1        10        20        30");
    let _ = writeln!(out, "         |        |         |         |");
    let by_date: HashMap<NaiveDate, &SimBackup> =
        sim.backups.iter().map(|b| (b.taken, b)).collect();
    let mut month =
        NaiveDate::from_ymd_opt(sim.start.year(), sim.start.month(), 1).unwrap_or(sim.start);
    while month <= sim.end {
        let mut row = String::new();
        let mut day = month;
        while day.month() == month.month() {
            row.push(by_date.get(&day).map_or(' ', |b| symbol(b)));
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        let _ = writeln!(out, "{}  {}", month.format("%Y-%m"), row.trim_end());
        month = day;
        if month.day() != 1 {
            break;
        }
    }
    let _ = writeln!(
        out,
        "Legend: Y yearly  M monthly  W weekly  D daily  . deleted"
    );
    let _ = writeln!(
        out,
        "        o present without a tier label (days policy, or marked and waiting for the sweep)"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Restore points at the end of each month (after that night's retention run):"
    );
    let _ = writeln!(
        out,
        "  date        present  oldest      daily               weekly              monthly             yearly"
    );
    let cell = |c: &TierCoverage| match c.oldest {
        Some(oldest) if c.count > 0 => format!("{:>2} since {}", c.count, oldest),
        _ => format!("{:>2}", c.count),
    };
    for cp in &sim.checkpoints {
        let get = |t: Tier| cp.tiers.get(&t).map(cell).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}  {:>7}  {}  {:<18}  {:<18}  {:<18}  {}",
            cp.date,
            cp.present,
            cp.oldest.map_or_else(|| "-".repeat(10), |d| d.to_string()),
            get(Tier::Daily),
            get(Tier::Weekly),
            get(Tier::Monthly),
            get(Tier::Yearly),
        )
        .map(|_| ());
    }
    let _ = writeln!(
        out,
        "(\"N since DATE\": N backups hold the tier label; the oldest of them was taken on DATE.)"
    );
    // Trailing spaces from the fixed-width table are noise in terminals and golden files.
    out.lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

/// The `-o json` rendering.
pub fn render_json(sim: &Simulation) -> String {
    // Serialising plain data (dates, strings, integers) cannot fail.
    serde_json::to_string_pretty(sim).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(policy: &str, start: &str, days: u32) -> Scenario {
        Scenario {
            policy: policy
                .parse::<PolicySpec>()
                .unwrap()
                .resolve(TierCounts::ORIGINAL_DEFAULTS)
                .unwrap(),
            defaults: TierCounts::ORIGINAL_DEFAULTS,
            start: NaiveDate::parse_from_str(start, "%Y-%m-%d").unwrap(),
            days,
            at: NaiveTime::from_hms_opt(0, 30, 0).unwrap(),
            grace_days: 1,
            tz: chrono_tz::UTC,
        }
    }

    #[test]
    fn policy_specs_parse_and_reject_bad_input() {
        let resolve =
            |s: &str, defaults| s.parse::<PolicySpec>().unwrap().resolve(defaults).unwrap();
        let defaults = TierCounts {
            yearly: 2,
            ..TierCounts::ORIGINAL_DEFAULTS
        };
        assert_eq!(
            resolve("daily=9, weekly=4,monthly=12", defaults),
            RetentionPolicy::Tiers(TierCounts {
                daily: 9,
                weekly: 4,
                monthly: 12,
                yearly: 2
            })
        );
        assert_eq!(resolve("days=30", defaults), RetentionPolicy::Days(30));
        let err = |s: &str| s.parse::<PolicySpec>().unwrap_err().to_string();
        assert_eq!(
            err("hourly=3"),
            "unknown policy key `hourly`; expected daily, weekly, monthly, yearly or days"
        );
        assert_eq!(err("daily=7,daily=3"), "`daily` is given twice");
        assert_eq!(
            err("days=3,daily=1"),
            "`days` cannot be combined with daily/weekly/monthly/yearly"
        );
        assert_eq!(
            err("daily=-1"),
            "`daily=-1`: the count must be a whole number from 0 to 100000"
        );
        assert!(err("daily").starts_with("expected KEY=N pairs"));
    }

    #[test]
    fn a_year_of_nightlies_keeps_the_gfs_counts() {
        let sim = simulate(&scenario("daily=7,weekly=4,monthly=12", "2025-01-01", 400)).unwrap();
        assert_eq!(sim.end.to_string(), "2026-02-04");
        let last = sim.checkpoints.last().unwrap();
        assert_eq!(last.date, sim.end);
        let count = |t: Tier| last.tiers[&t].count;
        assert_eq!(
            (
                count(Tier::Daily),
                count(Tier::Weekly),
                count(Tier::Monthly)
            ),
            (7, 4, 12)
        );
        assert_eq!(
            last.tiers[&Tier::Monthly].oldest.unwrap().to_string(),
            "2025-03-01"
        );
        // Every deletion happened at least grace+1 days after the mark.
        for b in &sim.backups {
            if let (Some(m), Some(d)) = (b.marked, b.deleted) {
                assert!((d - m).num_days() >= 2, "{b:?}");
            }
        }
        assert!(sim.guard_trips.is_empty());
    }

    #[test]
    fn days_policy_keeps_a_sliding_window() {
        let sim = simulate(&scenario("days=10", "2025-01-01", 60)).unwrap();
        let last = sim.checkpoints.last().unwrap();
        // Taken on D with delete-after D+10, swept once that date is in the past: D+11.
        assert_eq!(last.present, 11);
        assert!(sim.backups.iter().all(|b| b.marked.is_none()));
    }

    #[test]
    fn zero_and_huge_day_counts_are_rejected() {
        assert_eq!(
            simulate(&scenario("days=1", "2025-01-01", 0)),
            Err(SimulateError::Days(0))
        );
        assert!(simulate(&scenario("days=1", "2025-01-01", MAX_DAYS + 1)).is_err());
    }

    #[test]
    fn backups_in_a_dst_gap_run_after_the_gap() {
        let mut s = scenario("daily=2", "2025-03-29", 3);
        s.tz = chrono_tz::Europe::Vienna;
        s.at = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        let sim = simulate(&s).unwrap();
        assert_eq!(sim.backups.len(), 3);
        assert_eq!(sim.backups[1].taken.to_string(), "2025-03-30");
    }
}
