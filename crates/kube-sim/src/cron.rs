//! CronJob schedules as the CronJob controller reads them: five fields (minute, hour, day of month, month, day
//! of week) with `*`, `?`, lists, ranges, steps and month/day names, or one of the `@yearly`, `@monthly`,
//! `@weekly`, `@daily`, `@midnight` and `@hourly` macros. As in cron, when both day fields are restricted a day
//! matching either runs; when one is `*` the other decides. Times are evaluated in the CronJob's `timeZone`.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// The day-of-month field was `*` / `?`.
    any_day: bool,
    /// The day-of-week field was `*` / `?`.
    any_weekday: bool,
}

/// Why a schedule was refused (the message names the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unparseable schedule {schedule:?}: {reason}")]
pub struct ScheduleError {
    /// The schedule as written.
    pub schedule: String,
    /// What is wrong.
    pub reason: String,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One field: bit n set when value n matches.
fn field(text: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<u64, String> {
    let value = |word: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(word)) {
            return Ok(name_base + i as u32);
        }
        word.parse::<u32>()
            .map_err(|_| format!("{word:?} is not a number"))
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step {step:?}"))?,
            ),
            None => (part, 1),
        };
        let (low, high) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let a = value(range)?;
            // `a/n` runs from a to the end of the range.
            (a, if part.contains('/') { max } else { a })
        };
        if low < min || high > max || low > high {
            return Err(format!("{part:?} is outside {min}-{max}"));
        }
        let mut v = low;
        while v <= high {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(schedule: &str) -> Result<Self, ScheduleError> {
        let err = |reason: String| ScheduleError {
            schedule: schedule.to_string(),
            reason,
        };
        let text = match schedule.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(err(format!("unknown descriptor {other}")));
            }
            other => other,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(err(format!("expected 5 fields, found {}", fields.len())));
        };
        let mut weekdays =
            field(weekday, 0, 7, &WEEKDAYS, 0).map_err(|r| err(format!("day of week: {r}")))?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        let any = |f: &str| f.starts_with('*') || f.starts_with('?');
        Ok(Schedule {
            minutes: field(minute, 0, 59, &[], 0).map_err(|r| err(format!("minute: {r}")))?,
            hours: field(hour, 0, 23, &[], 0).map_err(|r| err(format!("hour: {r}")))?,
            days: field(day, 1, 31, &[], 0).map_err(|r| err(format!("day of month: {r}")))?,
            months: field(month, 1, 12, &MONTHS, 1).map_err(|r| err(format!("month: {r}")))?,
            weekdays,
            any_day: any(day),
            any_weekday: any(weekday),
        })
    }
}

impl Schedule {
    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.any_day || self.any_weekday {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first scheduled time strictly after `after`, evaluated in `tz`; None within five years means never
    /// (say, February 30th).
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let start = after.with_timezone(&tz).naive_local();
        let mut t: NaiveDateTime = start.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let end = start + Duration::days(5 * 366);
        while t < end {
            if self.months & (1 << t.month()) == 0 || !self.day_matches(t.date()) {
                t = (t.date() + Duration::days(1)).and_hms_opt(0, 0, 0)?;
            } else if self.hours & (1 << t.hour()) == 0 {
                t = t.with_minute(0)? + Duration::hours(1);
            } else if self.minutes & (1 << t.minute()) == 0 {
                t += Duration::minutes(1);
            } else {
                // A local time skipped by a DST change never happens; a repeated one runs the first time.
                if let Some(at) = tz.from_local_datetime(&t).earliest() {
                    let at = at.with_timezone(&Utc);
                    if at > after {
                        return Some(at);
                    }
                }
                t += Duration::minutes(1);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    /// Each `(schedule, zone, after, expected next run)` row holds.
    fn check(rows: &[(&str, &str, &str, &str)]) {
        for (schedule, zone, after, expected) in rows {
            let s: Schedule = schedule.parse().expect("schedule");
            let tz: Tz = zone.parse().expect("zone");
            let next = s.next_after(at(after), tz).expect("a next time");
            assert_eq!(next, at(expected), "{schedule} in {zone} after {after}");
        }
    }

    #[test]
    fn fields_ranges_steps_names_and_macros() {
        check(&[
            (
                "15 0 * * *",
                "UTC",
                "2025-01-01T00:15:00Z",
                "2025-01-02T00:15:00Z",
            ),
            (
                "*/20 * * * *",
                "UTC",
                "2025-01-01T00:41:00Z",
                "2025-01-01T01:00:00Z",
            ),
            (
                "0 9-17/4 * * MON-FRI",
                "UTC",
                "2025-01-03T17:00:00Z",
                "2025-01-06T09:00:00Z",
            ),
            (
                "0 0 1 jan,jul *",
                "UTC",
                "2025-02-01T00:00:00Z",
                "2025-07-01T00:00:00Z",
            ),
            (
                "@weekly",
                "UTC",
                "2025-01-01T00:00:00Z",
                "2025-01-05T00:00:00Z",
            ),
            (
                "0 0 * * 7",
                "UTC",
                "2025-01-01T00:00:00Z",
                "2025-01-05T00:00:00Z",
            ),
            (
                "5/30 * * * *",
                "UTC",
                "2025-01-01T00:06:00Z",
                "2025-01-01T00:35:00Z",
            ),
        ]);
    }

    #[test]
    fn restricted_day_fields_match_either_day() {
        // The 13th, or any Friday.
        check(&[
            (
                "0 0 13 * 5",
                "UTC",
                "2025-01-01T00:00:00Z",
                "2025-01-03T00:00:00Z",
            ),
            (
                "0 0 13 * 5",
                "UTC",
                "2025-01-11T00:00:00Z",
                "2025-01-13T00:00:00Z",
            ),
        ]);
    }

    #[test]
    fn the_time_zone_moves_the_schedule_and_its_dst_changes() {
        check(&[
            (
                "15 0 * * *",
                "Europe/Vienna",
                "2025-01-01T00:00:00Z",
                "2025-01-01T23:15:00Z",
            ),
            (
                "15 0 * * *",
                "Europe/Vienna",
                "2025-07-01T00:00:00Z",
                "2025-07-01T22:15:00Z",
            ),
            // 02:30 does not exist on the day clocks spring forward.
            (
                "30 2 * * *",
                "Europe/Vienna",
                "2025-03-29T12:00:00Z",
                "2025-03-31T00:30:00Z",
            ),
        ]);
    }

    #[test]
    fn bad_schedules_name_the_field() {
        for (bad, reason) in [
            ("* * * *", "expected 5 fields"),
            ("60 * * * *", "minute"),
            ("0 0 * FOO *", "month"),
            ("0 0 * * 1/0", "day of week"),
            ("@every 5m", "unknown descriptor"),
        ] {
            let e = bad.parse::<Schedule>().expect_err(bad);
            assert!(e.to_string().contains(reason), "{bad}: {e}");
        }
        assert!(
            "0 0 30 2 *"
                .parse::<Schedule>()
                .expect("parses")
                .next_after(at("2025-01-01T00:00:00Z"), Tz::UTC)
                .is_none()
        );
    }
}
