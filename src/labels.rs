//! The `backup-ns.sh/*` label and annotation vocabulary, the tier value formats, and the rule that decides which
//! retention labels a new snapshot gets.
//!
//! Labels are the whole retention state: a snapshot's tier labels say which GFS slots it fills, `delete-after` says
//! when it may go, and removing `retain` by hand pins it forever. Everything that writes or reads those labels goes
//! through this module so the formats cannot drift apart.
//!
//! # Tier value formats
//! | tier    | key                    | value        | example      |
//! |---------|------------------------|--------------|--------------|
//! | daily   | `backup-ns.sh/daily`   | `YYYY-MM-DD` | `2025-01-09` |
//! | weekly  | `backup-ns.sh/weekly`  | `YYYY-wNN`   | `2025-w02`   |
//! | monthly | `backup-ns.sh/monthly` | `YYYY-MM`    | `2025-01`    |
//! | yearly  | `backup-ns.sh/yearly`  | `YYYY`       | `2025`       |
//!
//! The weekly value uses the **ISO week-year**, not the calendar year: 2024-12-30 is a Monday in ISO week 1 of
//! 2025, so it is `2025-w01`. Pairing the ISO week number with the calendar year would give `2024-w01` and collide
//! with the first week of January 2024. The original wrote `wNN` without any year, so week 2 of 2024 and of 2025
//! looked identical and the "first snapshot of this week" check skipped a whole week after New Year. The legacy
//! `wNN` form is still recognised (see [`TierValue::LegacyWeekly`]).

use crate::clock::Clock;
use crate::vocab::retention::RetentionPolicy;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use std::collections::BTreeMap;

mod set;
pub use set::LabelSet;

/// Prefix of every backup-ns label and annotation key.
pub const PREFIX: &str = "backup-ns.sh/";

/// `retain`: `daily_weekly_monthly` or `days`. Its presence marks a snapshot as managed by retention; removing it
/// by hand keeps the snapshot forever.
pub const RETAIN: &str = "backup-ns.sh/retain";
/// Tier label: `YYYY-MM-DD`.
pub const DAILY: &str = "backup-ns.sh/daily";
/// Tier label: `YYYY-wNN` (ISO week-year); legacy `wNN` is read.
pub const WEEKLY: &str = "backup-ns.sh/weekly";
/// Tier label: `YYYY-MM`.
pub const MONTHLY: &str = "backup-ns.sh/monthly";
/// Tier label: `YYYY`.
pub const YEARLY: &str = "backup-ns.sh/yearly";
/// `YYYY-MM-DD`: the snapshot is deleted once this date is in the past.
pub const DELETE_AFTER: &str = "backup-ns.sh/delete-after";
/// For `retain=days`: the number of days the snapshot is kept.
pub const RETAIN_DAYS: &str = "backup-ns.sh/retain-days";
/// `cronjob` or `adhoc`.
pub const TYPE: &str = "backup-ns.sh/type";
/// The job pod that took the snapshot.
pub const POD: &str = "backup-ns.sh/pod";
/// The PVC the snapshot was taken of.
pub const PVC: &str = "backup-ns.sh/pvc";
/// The plan that took the snapshot.
pub const PLAN: &str = "backup-ns.sh/plan";

/// Annotation: the id of the `backup-ns` process that created the object. The snapshots one run takes of a plan's
/// PVCs share it, which makes them one run for retention (their tier labels are decided together).
pub const ANNOTATION_RUN_ID: &str = "backup-ns.sh/run-id";
/// The label the snapshot controller puts on the member VolumeSnapshots of a VolumeGroupSnapshot (the group's
/// name); `status.volumeGroupSnapshotName` says the same. Members are deleted through their group, never alone.
pub const GROUP_MEMBER: &str = "groupsnapshot.storage.k8s.io/volumeGroupSnapshotName";

/// Annotation: the effective plan, redacted, as JSON.
pub const ANNOTATION_PLAN: &str = "backup-ns.sh/plan";
/// Annotation: the hook results as JSON.
pub const ANNOTATION_HOOKS: &str = "backup-ns.sh/hooks";
/// Annotation: the retention policy as JSON ([`RetentionPolicy::to_annotation`]).
pub const ANNOTATION_RETENTION: &str = "backup-ns.sh/retention";
/// Annotation written by the original: its `BAK_*` settings, one `KEY='value'` per line.
pub const ANNOTATION_ENV_CONFIG: &str = "backup-ns.sh/env-config";
/// Annotation: the hook window the snapshot had to be cut in ([`HookWindow::to_annotation`]).
pub const ANNOTATION_HOOK_WINDOW: &str = "backup-ns.sh/hook-window";
/// Annotation: what a `mode: hot` database hook recorded about the snapshot ([`HotBackup::to_annotation`]).
pub const ANNOTATION_HOT_BACKUP: &str = "backup-ns.sh/hot-backup";
/// Annotation: when `verify` last proved (or failed to prove) the snapshot, RFC 3339 in UTC.
pub const ANNOTATION_VERIFIED_AT: &str = "backup-ns.sh/verified-at";
/// Annotation: the last `verify` result as one line, `passed: ...` or `failed: ...`.
pub const ANNOTATION_VERIFY_RESULT: &str = "backup-ns.sh/verify-result";
/// Label on every object one `verify` run creates (claim, pod): the run's id, so that the run (or the next one,
/// after a crash) removes exactly those.
pub const VERIFY_RUN: &str = "backup-ns.sh/verify-run";
/// Annotation on every object one `verify` run creates: the run's timeout (`30m`), after which the run is over and
/// its objects, if still there, are a crashed run's leftovers.
pub const ANNOTATION_VERIFY_TIMEOUT: &str = "backup-ns.sh/verify-timeout";

/// Value of [`RETAIN`] for grandfather-father-son retention.
pub const RETAIN_GFS: &str = "daily_weekly_monthly";
/// Value of [`RETAIN`] for "keep N days" retention.
pub const RETAIN_DAYS_MODE: &str = "days";

/// Value of [`TYPE`] for snapshots taken by the CronJob.
pub const TYPE_CRONJOB: &str = "cronjob";
/// Value of [`TYPE`] for snapshots taken by hand.
pub const TYPE_ADHOC: &str = "adhoc";

use crate::vocab::retention::Tier;

/// The label formats of a tier (the tier itself is retention vocabulary).
impl Tier {
    /// The label key of this tier.
    pub fn key(self) -> &'static str {
        match self {
            Tier::Daily => DAILY,
            Tier::Weekly => WEEKLY,
            Tier::Monthly => MONTHLY,
            Tier::Yearly => YEARLY,
        }
    }

    /// The label value for the period containing the local date `date`.
    pub fn value_for(self, date: NaiveDate) -> String {
        match self {
            Tier::Daily => date.format("%Y-%m-%d").to_string(),
            Tier::Weekly => {
                let week = date.iso_week();
                format!("{:04}-w{:02}", week.year(), week.week())
            }
            Tier::Monthly => format!("{:04}-{:02}", date.year(), date.month()),
            Tier::Yearly => format!("{:04}", date.year()),
        }
    }

    /// The period of `date` in this tier, for comparing with a parsed label value.
    pub fn period_of(self, date: NaiveDate) -> TierValue {
        match self {
            Tier::Daily => TierValue::Daily(date),
            Tier::Weekly => {
                let week = date.iso_week();
                TierValue::Weekly {
                    year: week.year(),
                    week: week.week(),
                }
            }
            Tier::Monthly => TierValue::Monthly {
                year: date.year(),
                month: date.month(),
            },
            Tier::Yearly => TierValue::Yearly(date.year()),
        }
    }

    /// Parses a label value of this tier. `None` for anything that is not one of the documented formats.
    pub fn parse_value(self, value: &str) -> Option<TierValue> {
        match self {
            Tier::Daily => parse_date(value).map(TierValue::Daily),
            Tier::Weekly => parse_weekly(value),
            Tier::Monthly => {
                let (y, m) = split_exact(value, 4, '-', 2)?;
                let (year, month) = (y.parse().ok()?, m.parse().ok()?);
                NaiveDate::from_ymd_opt(year, month, 1)?;
                Some(TierValue::Monthly { year, month })
            }
            Tier::Yearly => {
                if value.len() == 4 && value.bytes().all(|b| b.is_ascii_digit()) {
                    value.parse().ok().map(TierValue::Yearly)
                } else {
                    None
                }
            }
        }
    }
}

/// A parsed tier label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TierValue {
    Daily(NaiveDate),
    /// `YYYY-wNN`: ISO week `week` of ISO week-year `year`.
    Weekly {
        year: i32,
        week: u32,
    },
    /// The original's `wNN`: an ISO week number without a year. It can only be matched against a period together
    /// with the snapshot's creation date.
    LegacyWeekly {
        week: u32,
    },
    Monthly {
        year: i32,
        month: u32,
    },
    Yearly(i32),
}

fn split_exact(value: &str, left: usize, sep: char, right: usize) -> Option<(&str, &str)> {
    let (a, b) = value.split_once(sep)?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_digit());
    (digits(a, left) && digits(b, right)).then_some((a, b))
}

fn parse_weekly(value: &str) -> Option<TierValue> {
    let valid_week = |w: u32| (1..=53).contains(&w);
    if let Some(rest) = value.strip_prefix('w') {
        // Legacy `wNN` from the original.
        if rest.len() == 2 && rest.bytes().all(|b| b.is_ascii_digit()) {
            let week: u32 = rest.parse().ok()?;
            return valid_week(week).then_some(TierValue::LegacyWeekly { week });
        }
        return None;
    }
    let (y, w) = value.split_once("-w")?;
    if y.len() != 4 || w.len() != 2 || !y.bytes().chain(w.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, week): (i32, u32) = (y.parse().ok()?, w.parse().ok()?);
    // Reject week 53 in years that have only 52 ISO weeks.
    NaiveDate::from_isoywd_opt(year, week, chrono::Weekday::Mon)?;
    Some(TierValue::Weekly { year, week })
}

/// Formats a `delete-after` (or daily) date: `YYYY-MM-DD`.
pub fn format_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// Parses a `delete-after` date strictly: exactly `YYYY-MM-DD`, a real calendar date in the years 0001–9999.
/// Anything else is `None`; retention reports such values instead of guessing. Year 0000 is refused because its
/// first days fall in ISO week-year -1, which no `YYYY-wNN` weekly label can hold: every date this accepts has a
/// label in every tier that reads back.
pub fn parse_date(value: &str) -> Option<NaiveDate> {
    let b = value.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape || value.starts_with("0000") {
        return None;
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
}

/// The PVC a snapshot belongs to: the one definition of "the snapshots of this PVC", used by the tier rule of a
/// new snapshot ([`creation_labels`]) and by retention's grouping alike. It is the [`PVC`] label, which
/// [`creation_labels`] puts on every snapshot `run` takes (group members included), else the claim the snapshot
/// was taken from (`spec.source.persistentVolumeClaimName`, e.g. for a snapshot taken by hand), else none.
pub fn snapshot_pvc<'a>(
    labels: &'a BTreeMap<String, String>,
    source_pvc: Option<&'a str>,
) -> Option<&'a str> {
    labels.get(PVC).map(String::as_str).or(source_pvc)
}

/// What the creation rule needs to know about a snapshot that already exists.
#[derive(Debug, Clone, Copy)]
pub struct PriorSnapshot<'a> {
    pub labels: &'a BTreeMap<String, String>,
    /// `spec.source.persistentVolumeClaimName`, for [`snapshot_pvc`].
    pub source_pvc: Option<&'a str>,
    /// `status.creationTime`, else `metadata.creationTimestamp`.
    pub created: Option<DateTime<Utc>>,
    /// `status.readyToUse`. Snapshots that never became ready do not claim a period.
    pub ready: bool,
}

/// The labels that make a new snapshot one of `pvc`'s ([`PVC`]) and retain it by `policy`, taken now.
///
/// A tier label is given when no ready snapshot **of the same PVC** ([`snapshot_pvc`]) already holds that tier's
/// current period (calendar day, ISO week, month, year in the clock's zone). `prior` may contain snapshots of
/// other PVCs and unmanaged ones; they are filtered here, so the per-PVC rule cannot be forgotten by a caller
/// (the original checked namespace-wide, so a second PVC never got tier labels).
///
/// A legacy `wNN` value holds the current week only if its snapshot was created in the current ISO week, because
/// the number alone repeats every year.
pub fn creation_labels(
    pvc: &str,
    policy: &RetentionPolicy,
    prior: &[PriorSnapshot<'_>],
    clock: &Clock,
) -> BTreeMap<String, String> {
    let today = clock.today();
    let mut labels = BTreeMap::new();
    labels.insert(PVC.to_string(), pvc.to_string());
    match *policy {
        RetentionPolicy::Days(days) => {
            labels.insert(RETAIN.to_string(), RETAIN_DAYS_MODE.to_string());
            labels.insert(RETAIN_DAYS.to_string(), days.to_string());
            let until = today
                .checked_add_days(chrono::Days::new(u64::from(days)))
                .unwrap_or(NaiveDate::MAX);
            labels.insert(DELETE_AFTER.to_string(), format_date(until));
        }
        RetentionPolicy::Tiers(counts) => {
            labels.insert(RETAIN.to_string(), RETAIN_GFS.to_string());
            let same_pvc: Vec<&PriorSnapshot<'_>> = prior
                .iter()
                .filter(|p| p.ready && snapshot_pvc(p.labels, p.source_pvc) == Some(pvc))
                .collect();
            for tier in Tier::ALL {
                if counts.get(tier) == 0 {
                    continue;
                }
                let current = tier.period_of(today);
                let taken = same_pvc.iter().any(|p| {
                    p.labels
                        .get(tier.key())
                        .is_some_and(|v| holds_period(tier, v, p.created, current, clock))
                });
                if !taken {
                    labels.insert(tier.key().to_string(), tier.value_for(today));
                }
            }
        }
    }
    labels
}

/// The span in which a run's snapshots had to be cut: after the pre-hooks finished, before the post-hooks began,
/// on the API server's clock. Written as an ISO 8601 interval of whole seconds, `START/END` (for example
/// `2025-01-09T00:15:02Z/2025-01-09T00:15:09Z`), in the [`ANNOTATION_HOOK_WINDOW`] annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl HookWindow {
    /// True when `at` lies in the window, ends included.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at <= self.end
    }

    /// The annotation value, `START/END`.
    pub fn to_annotation(&self) -> String {
        let format = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        format!("{}/{}", format(self.start), format(self.end))
    }

    /// Reads an annotation value back; `None` when it is not `START/END` with START <= END.
    pub fn from_annotation(value: &str) -> Option<HookWindow> {
        let (start, end) = value.split_once('/')?;
        let parse = |t: &str| {
            DateTime::parse_from_rfc3339(t.trim())
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        let window = HookWindow {
            start: parse(start)?,
            end: parse(end)?,
        };
        (window.start <= window.end).then_some(window)
    }
}

/// What a `mode: hot` database hook recorded on the snapshots it held its session across, in the
/// [`ANNOTATION_HOT_BACKUP`] annotation (JSON). For PostgreSQL it carries what `pg_backup_stop()` returned: the
/// `backup_label` (and `tablespace_map`) that `restore` writes back into the data directory so that the server
/// recovers to a consistent state; both are a few hundred bytes, far below the annotation limit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HotBackup {
    /// `postgres` or `mysql`.
    pub engine: crate::vocab::hook::HookKind,
    /// The hook's step name (`pre[0]/postgres`).
    pub hook: String,
    /// `deployment/NAME` etc. and the container the session ran in: `restore` finds the data directory's
    /// mount through them.
    pub workload: String,
    pub container: String,
    /// The database the session connected to, as the container's env named it (`verify` checks it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The role the PostgreSQL session logged in as (`verify` reads the recovered copy as it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The server's `data_directory`, as the container sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_directory: Option<String>,
    /// WAL positions of `pg_backup_start` and `pg_backup_stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_lsn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_lsn: Option<String>,
    /// The `backup_label` file's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_label: Option<String>,
    /// The `tablespace_map` file's text; `None` when the server has no extra tablespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tablespace_map: Option<String>,
    /// How long the session held the database (backup mode, or the read lock), in milliseconds.
    pub held_ms: u64,
}

impl HotBackup {
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the annotation back; `None` when it is not this JSON.
    pub fn from_annotation(value: &str) -> Option<HotBackup> {
        serde_json::from_str(value).ok()
    }
}

/// Desired label edits: `Some(value)` sets, `None` removes; one edit per key (the last one given), in key order.
/// The cluster layer turns them into a guarded patch. Held as an exact-size sorted list: a run plans one per
/// patched snapshot (40,000 at 100,000 snapshots), most with one or two edits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelChanges(Vec<(String, Option<String>)>);

impl LabelChanges {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.with(key.into(), Some(value.into()))
    }

    pub fn remove(self, key: impl Into<String>) -> Self {
        self.with(key.into(), None)
    }

    fn with(mut self, key: String, edit: Option<String>) -> Self {
        match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => self.0[i].1 = edit,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (key, edit));
            }
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many keys are edited.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The edits in key order: `Some(value)` sets, `None` removes.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }
}

impl IntoIterator for LabelChanges {
    type Item = (String, Option<String>);
    type IntoIter = std::vec::IntoIter<(String, Option<String>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

fn holds_period(
    tier: Tier,
    value: &str,
    created: Option<DateTime<Utc>>,
    current: TierValue,
    clock: &Clock,
) -> bool {
    match tier.parse_value(value) {
        Some(TierValue::LegacyWeekly { week }) => {
            let created_week =
                created.map(|c| tier.period_of(c.with_timezone(&clock.tz()).date_naive()));
            matches!(current, TierValue::Weekly { week: w, .. } if w == week)
                && created_week == Some(current)
        }
        Some(parsed) => parsed == current,
        None => false,
    }
}

/// Why a label value is not valid in Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelValueError {
    #[error("label value `{value}` is {len} characters long; at most 63 are allowed")]
    TooLong { value: String, len: usize },
    #[error(
        "label value `{value}` must consist of letters, digits, `-`, `_` or `.`, and begin and end with a letter \
         or digit"
    )]
    Charset { value: String },
}

/// Checks a label value against Kubernetes' rule: empty, or at most 63 characters of `[A-Za-z0-9._-]` beginning
/// and ending with an alphanumeric character.
pub fn validate_label_value(value: &str) -> Result<(), LabelValueError> {
    if value.len() > 63 {
        return Err(LabelValueError::TooLong {
            value: value.to_string(),
            len: value.len(),
        });
    }
    if value.is_empty() {
        return Ok(());
    }
    let b = value.as_bytes();
    let inner_ok = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    let ends_ok = b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric();
    if inner_ok && ends_ok {
        Ok(())
    } else {
        Err(LabelValueError::Charset {
            value: value.to_string(),
        })
    }
}

/// True when `value` is a valid label value.
pub fn is_valid_label_value(value: &str) -> bool {
    validate_label_value(value).is_ok()
}

/// Turns arbitrary text (a plan or pod name) into a valid label value: invalid characters become `-`, the result is
/// cut to 63 characters and trimmed to alphanumeric ends. May return an empty string, which is a valid value.
pub fn sanitize_label_value(value: &str) -> String {
    let mapped: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod hook_window_tests {
    use super::HookWindow;

    #[test]
    fn a_hook_window_round_trips_through_its_annotation_and_bounds_are_inclusive() {
        let window = HookWindow::from_annotation("2025-01-09T00:15:02Z/2025-01-09T00:15:09Z")
            .expect("a valid window");
        assert_eq!(
            window.to_annotation(),
            "2025-01-09T00:15:02Z/2025-01-09T00:15:09Z"
        );
        assert!(window.contains(window.start) && window.contains(window.end));
        assert!(!window.contains(window.end + chrono::Duration::seconds(1)));
        for bad in [
            "",
            "2025-01-09T00:15:02Z",
            "2025-01-09T00:15:09Z/2025-01-09T00:15:02Z",
            "x/y",
        ] {
            assert_eq!(HookWindow::from_annotation(bad), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::retention::TierCounts;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn clock(rfc3339: &str, tz: &str) -> Clock {
        Clock::from_vars(Some(rfc3339), Some(tz)).unwrap()
    }

    #[test]
    fn tier_values_follow_the_documented_formats() {
        let date = d("2025-01-09");
        assert_eq!(Tier::Daily.value_for(date), "2025-01-09");
        assert_eq!(Tier::Weekly.value_for(date), "2025-w02");
        assert_eq!(Tier::Monthly.value_for(date), "2025-01");
        assert_eq!(Tier::Yearly.value_for(date), "2025");
    }

    #[test]
    fn weekly_values_use_the_iso_week_year_so_they_do_not_collide_across_years() {
        // Monday 2024-12-30 belongs to ISO week 1 of 2025; Sunday 2024-12-29 to week 52 of 2024.
        assert_eq!(Tier::Weekly.value_for(d("2024-12-30")), "2025-w01");
        assert_eq!(Tier::Weekly.value_for(d("2024-12-29")), "2024-w52");
        // 2021-01-03 is still in ISO week 53 of 2020.
        assert_eq!(Tier::Weekly.value_for(d("2021-01-03")), "2020-w53");
        assert_ne!(
            Tier::Weekly.value_for(d("2024-01-03")),
            Tier::Weekly.value_for(d("2025-01-01"))
        );
    }

    #[test]
    fn legacy_week_values_are_recognised() {
        assert_eq!(
            Tier::Weekly.parse_value("w02"),
            Some(TierValue::LegacyWeekly { week: 2 })
        );
        assert_eq!(
            Tier::Weekly.parse_value("2025-w02"),
            Some(TierValue::Weekly {
                year: 2025,
                week: 2
            })
        );
        for bad in [
            "w2", "w54", "w00", "2025-w2", "2021-w53", "25-w01", "2025w01", "",
        ] {
            assert_eq!(Tier::Weekly.parse_value(bad), None, "{bad}");
        }
        assert!(Tier::Weekly.parse_value("2020-w53").is_some());
    }

    #[test]
    fn delete_after_dates_parse_strictly() {
        assert_eq!(parse_date("2025-01-09"), Some(d("2025-01-09")));
        for bad in [
            "2025-1-09",
            "2025-02-30",
            "20250109",
            "2025-01-09x",
            " 2025-01-09",
            "",
            "yesterday",
            // Found by the `labels` fuzz target: 0000-01-01 lies in ISO week-year -1, so its weekly label
            // ("-001-w52") could not be read back.
            "0000-01-01",
            "0000-12-31",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        for edge in ["0001-01-01", "9999-12-31"] {
            let date = parse_date(edge).expect(edge);
            for tier in Tier::ALL {
                assert!(
                    tier.parse_value(&tier.value_for(date)).is_some(),
                    "{tier:?} {edge}"
                );
            }
        }
        assert_eq!(format_date(d("2025-01-09")), "2025-01-09");
    }

    #[test]
    fn monthly_and_yearly_values_parse() {
        assert_eq!(
            Tier::Monthly.parse_value("2024-12"),
            Some(TierValue::Monthly {
                year: 2024,
                month: 12
            })
        );
        assert_eq!(Tier::Monthly.parse_value("2024-13"), None);
        assert_eq!(
            Tier::Yearly.parse_value("2024"),
            Some(TierValue::Yearly(2024))
        );
        assert_eq!(Tier::Yearly.parse_value("24"), None);
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn first_snapshot_of_a_new_year_gets_every_tier() {
        let c = clock("2025-01-01T00:17:09Z", "UTC");
        let counts = TierCounts {
            yearly: 1,
            ..TierCounts::ORIGINAL_DEFAULTS
        };
        let got = creation_labels("data", &RetentionPolicy::Tiers(counts), &[], &c);
        assert_eq!(
            got,
            labels(&[
                (PVC, "data"),
                (RETAIN, RETAIN_GFS),
                (DAILY, "2025-01-01"),
                (WEEKLY, "2025-w01"),
                (MONTHLY, "2025-01"),
                (YEARLY, "2025"),
            ])
        );
    }

    #[test]
    fn second_snapshot_of_the_day_gets_no_tier_labels() {
        let c = clock("2025-01-08T18:00:09Z", "UTC");
        let first = labels(&[
            (PVC, "data"),
            (RETAIN, RETAIN_GFS),
            (DAILY, "2025-01-08"),
            (WEEKLY, "2025-w02"),
            (MONTHLY, "2025-01"),
        ]);
        let prior = [PriorSnapshot {
            labels: &first,
            source_pvc: None,
            created: Some(Utc.with_ymd_and_hms(2025, 1, 8, 0, 17, 6).unwrap()),
            ready: true,
        }];
        let got = creation_labels(
            "data",
            &RetentionPolicy::Tiers(TierCounts::default()),
            &prior,
            &c,
        );
        assert_eq!(got, labels(&[(PVC, "data"), (RETAIN, RETAIN_GFS)]));
    }

    #[test]
    fn tier_check_is_per_pvc_not_per_namespace() {
        let c = clock("2025-01-08T00:20:00Z", "UTC");
        let other = labels(&[(PVC, "logs"), (RETAIN, RETAIN_GFS), (DAILY, "2025-01-08")]);
        let prior = [PriorSnapshot {
            labels: &other,
            source_pvc: None,
            created: Some(Utc.with_ymd_and_hms(2025, 1, 8, 0, 17, 0).unwrap()),
            ready: true,
        }];
        let got = creation_labels(
            "data",
            &RetentionPolicy::Tiers(TierCounts::default()),
            &prior,
            &c,
        );
        assert_eq!(got.get(DAILY).map(String::as_str), Some("2025-01-08"));
    }

    #[test]
    fn a_snapshot_without_the_pvc_label_belongs_to_the_claim_it_was_taken_from() {
        // Taken by hand: no `backup-ns.sh/pvc`, but its source is `data`, so it is one of data's snapshots for
        // the tier rule exactly as for retention's grouping.
        let c = clock("2025-01-08T00:20:00Z", "UTC");
        let by_hand = labels(&[(RETAIN, RETAIN_GFS), (DAILY, "2025-01-08")]);
        let prior = [PriorSnapshot {
            labels: &by_hand,
            source_pvc: Some("data"),
            created: Some(Utc.with_ymd_and_hms(2025, 1, 8, 0, 17, 0).unwrap()),
            ready: true,
        }];
        let policy = RetentionPolicy::Tiers(TierCounts::default());
        assert_eq!(
            creation_labels("data", &policy, &prior, &c).get(DAILY),
            None
        );
        assert_eq!(
            creation_labels("logs", &policy, &prior, &c)
                .get(DAILY)
                .map(String::as_str),
            Some("2025-01-08")
        );
        assert_eq!(snapshot_pvc(&by_hand, Some("data")), Some("data"));
        let labelled = labels(&[(PVC, "logs")]);
        assert_eq!(snapshot_pvc(&labelled, Some("data")), Some("logs"));
        assert_eq!(snapshot_pvc(&BTreeMap::new(), None), None);
    }

    #[test]
    fn a_snapshot_that_never_became_ready_does_not_claim_the_day() {
        let c = clock("2025-01-08T01:00:00Z", "UTC");
        let failed = labels(&[(PVC, "data"), (RETAIN, RETAIN_GFS), (DAILY, "2025-01-08")]);
        let prior = [PriorSnapshot {
            labels: &failed,
            source_pvc: None,
            created: Some(Utc.with_ymd_and_hms(2025, 1, 8, 0, 17, 0).unwrap()),
            ready: false,
        }];
        let got = creation_labels(
            "data",
            &RetentionPolicy::Tiers(TierCounts::default()),
            &prior,
            &c,
        );
        assert_eq!(got.get(DAILY).map(String::as_str), Some("2025-01-08"));
    }

    #[test]
    fn legacy_week_label_from_last_year_does_not_block_this_week() {
        // `w02` written in January 2024 must not stop week 2 of 2025 from getting its weekly label.
        let c = clock("2025-01-06T00:30:00Z", "UTC");
        let old = labels(&[(PVC, "data"), (RETAIN, RETAIN_GFS), (WEEKLY, "w02")]);
        let same_week = labels(&[(PVC, "data"), (RETAIN, RETAIN_GFS), (WEEKLY, "w02")]);
        let last_year = [PriorSnapshot {
            labels: &old,
            source_pvc: None,
            created: Some(Utc.with_ymd_and_hms(2024, 1, 8, 0, 17, 0).unwrap()),
            ready: true,
        }];
        let mode = RetentionPolicy::Tiers(TierCounts::default());
        let got = creation_labels("data", &mode, &last_year, &c);
        assert_eq!(got.get(WEEKLY).map(String::as_str), Some("2025-w02"));
        let this_week = [PriorSnapshot {
            labels: &same_week,
            source_pvc: None,
            created: Some(Utc.with_ymd_and_hms(2025, 1, 6, 0, 17, 0).unwrap()),
            ready: true,
        }];
        let got = creation_labels("data", &mode, &this_week, &c);
        assert_eq!(got.get(WEEKLY), None);
    }

    #[test]
    fn tier_periods_are_taken_in_the_clock_zone() {
        // 23:30 UTC on 2024-12-31 is already 2025 in Vienna.
        let c = clock("2024-12-31T23:30:00Z", "Europe/Vienna");
        let got = creation_labels(
            "data",
            &RetentionPolicy::Tiers(TierCounts::default()),
            &[],
            &c,
        );
        assert_eq!(got.get(DAILY).map(String::as_str), Some("2025-01-01"));
        assert_eq!(got.get(MONTHLY).map(String::as_str), Some("2025-01"));
    }

    #[test]
    fn disabled_tiers_get_no_label() {
        let c = clock("2025-01-01T00:00:00Z", "UTC");
        let counts = TierCounts {
            daily: 0,
            weekly: 0,
            monthly: 3,
            yearly: 0,
        };
        let got = creation_labels("data", &RetentionPolicy::Tiers(counts), &[], &c);
        assert_eq!(
            got,
            labels(&[(PVC, "data"), (RETAIN, RETAIN_GFS), (MONTHLY, "2025-01")])
        );
    }

    #[test]
    fn days_mode_sets_retain_days_and_delete_after() {
        let c = clock("2025-01-07T18:27:42Z", "UTC");
        let got = creation_labels("data", &RetentionPolicy::Days(30), &[], &c);
        assert_eq!(
            got,
            labels(&[
                (PVC, "data"),
                (RETAIN, RETAIN_DAYS_MODE),
                (RETAIN_DAYS, "30"),
                (DELETE_AFTER, "2025-02-06"),
            ])
        );
    }

    #[test]
    fn label_values_are_validated() {
        assert!(is_valid_label_value(""));
        assert!(is_valid_label_value("2025-w01"));
        assert!(is_valid_label_value("daily_weekly_monthly"));
        assert!(!is_valid_label_value("-leading"));
        assert!(!is_valid_label_value("trailing."));
        assert!(!is_valid_label_value("has space"));
        assert!(matches!(
            validate_label_value(&"a".repeat(64)),
            Err(LabelValueError::TooLong { len: 64, .. })
        ));
        assert!(is_valid_label_value(&"a".repeat(63)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_generated_tier_value_is_a_valid_label_and_parses_back(days in 0i64..200_000) {
            let date = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Duration::days(days);
            for tier in Tier::ALL {
                let value = tier.value_for(date);
                prop_assert!(is_valid_label_value(&value), "{value}");
                prop_assert_eq!(tier.parse_value(&value), Some(tier.period_of(date)));
            }
        }

        #[test]
        fn weekly_values_of_dates_more_than_a_week_apart_differ(a in 0i64..100_000, gap in 7i64..5_000) {
            let base = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
            let x = base + chrono::Duration::days(a);
            let y = x + chrono::Duration::days(gap);
            prop_assert_ne!(Tier::Weekly.value_for(x), Tier::Weekly.value_for(y));
        }

        #[test]
        fn each_pvc_gets_exactly_one_holder_per_tier_period(
            steps in prop::collection::vec((0..2usize, 1..(3 * 24 * 60i64)), 1..60),
            tz in prop::sample::select(vec![chrono_tz::UTC, chrono_tz::Europe::Vienna, chrono_tz::Asia::Tokyo]),
        ) {
            // Backups of two PVCs at increasing random times; every one becomes ready.
            let counts = TierCounts { yearly: 1, ..TierCounts::ORIGINAL_DEFAULTS };
            let mut now = Utc.with_ymd_and_hms(2024, 12, 20, 0, 0, 0).unwrap();
            let mut history: Vec<(BTreeMap<String, String>, DateTime<Utc>)> = Vec::new();
            for (pvc, gap) in steps {
                now += chrono::Duration::minutes(gap);
                let pvc = ["data", "db"][pvc];
                let clock = Clock::fixed(now, tz);
                let prior: Vec<PriorSnapshot<'_>> = history
                    .iter()
                    .map(|(l, c)| PriorSnapshot { labels: l, source_pvc: None, created: Some(*c), ready: true })
                    .collect();
                let new = creation_labels(pvc, &RetentionPolicy::Tiers(counts), &prior, &clock);
                history.push((new, now));
            }
            for pvc in ["data", "db"] {
                let taken: Vec<_> = history.iter().filter(|(l, _)| l[PVC] == pvc).collect();
                for tier in Tier::ALL {
                    let mut periods: Vec<String> = taken
                        .iter()
                        .map(|(_, c)| tier.value_for(c.with_timezone(&tz).date_naive()))
                        .collect();
                    periods.sort();
                    periods.dedup();
                    let mut holders: Vec<String> = taken
                        .iter()
                        .filter_map(|(l, _)| l.get(tier.key()).cloned())
                        .collect();
                    holders.sort();
                    // Exactly one holder per period: no duplicates, none missing.
                    prop_assert_eq!(holders, periods, "{} {}", pvc, tier);
                }
            }
        }

        #[test]
        fn sanitized_values_are_always_valid(s in ".{0,100}") {
            prop_assert!(is_valid_label_value(&sanitize_label_value(&s)));
        }
    }
}
