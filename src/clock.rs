//! The one source of "now" and of the local time zone for every command.
//!
//! Retention, tier labels and snapshot names all depend on the calendar day in the user's zone, so they must agree
//! on a single clock. `BACKUP_NS_NOW` (RFC 3339) pins the clock for tests and demos; `TZ` (an IANA name, resolved
//! with the compiled-in chrono-tz database so it works in a scratch image) selects the zone, UTC when unset.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// Environment variable that pins "now" (RFC 3339, e.g. `2025-01-09T17:17:00Z`).
pub const NOW_VAR: &str = "BACKUP_NS_NOW";
/// Environment variable that selects the local time zone (IANA name, e.g. `Europe/Vienna`).
pub const TZ_VAR: &str = "TZ";

/// Why the clock could not be built from the environment. Each variant names the variable and the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error(
        "{NOW_VAR}=`{value}` is not an RFC 3339 time (expected e.g. `2025-01-09T17:17:00Z`): {reason}"
    )]
    ParseNow { value: String, reason: String },
    #[error(
        "{TZ_VAR}=`{value}` is not a known IANA time zone (expected e.g. `UTC` or `Europe/Vienna`; POSIX rules \
         such as `CET-1CEST` are not supported)"
    )]
    ParseTz { value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The system clock, read on every call.
    System,
    /// A pinned instant (`BACKUP_NS_NOW` or tests).
    Fixed(DateTime<Utc>),
}

/// "Now" plus the local time zone. Cheap to copy; pass it by value into pure code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    source: Source,
    tz: Tz,
}

impl Clock {
    /// Reads `BACKUP_NS_NOW` and `TZ` from the process environment. Unset or empty variables mean "system clock"
    /// and "UTC".
    pub fn from_env() -> Result<Clock, ClockError> {
        let now = std::env::var(NOW_VAR).ok();
        let tz = std::env::var(TZ_VAR).ok();
        Clock::from_vars(now.as_deref(), tz.as_deref())
    }

    /// Like [`Clock::from_env`], with `fallback_tz` (a plan's `timeZone`) as the zone when `TZ` is unset or empty:
    /// the environment wins over the plan, as everywhere in the settings layering.
    pub fn from_env_or_zone(fallback_tz: Option<&str>) -> Result<Clock, ClockError> {
        let now = std::env::var(NOW_VAR).ok();
        let tz = std::env::var(TZ_VAR).ok();
        Clock::from_vars_or_zone(now.as_deref(), tz.as_deref(), fallback_tz)
    }

    /// [`Clock::from_vars`] with a zone for an unset or empty `tz`.
    pub fn from_vars_or_zone(
        now: Option<&str>,
        tz: Option<&str>,
        fallback_tz: Option<&str>,
    ) -> Result<Clock, ClockError> {
        let tz = tz.filter(|t| !t.trim().is_empty()).or(fallback_tz);
        Clock::from_vars(now, tz)
    }

    /// Builds a clock from the raw values of `BACKUP_NS_NOW` and `TZ`, without touching the environment (tests
    /// use this because mutating the environment is unsafe in a multi-threaded test binary).
    pub fn from_vars(now: Option<&str>, tz: Option<&str>) -> Result<Clock, ClockError> {
        let tz = parse_tz(tz.unwrap_or(""))?;
        let source = match now.map(str::trim) {
            None | Some("") => Source::System,
            Some(value) => {
                let parsed =
                    DateTime::parse_from_rfc3339(value).map_err(|e| ClockError::ParseNow {
                        value: value.to_string(),
                        reason: e.to_string(),
                    })?;
                Source::Fixed(parsed.with_timezone(&Utc))
            }
        };
        Ok(Clock { source, tz })
    }

    /// A clock pinned to `utc`, in zone `tz`.
    pub fn fixed(utc: DateTime<Utc>, tz: Tz) -> Clock {
        Clock {
            source: Source::Fixed(utc),
            tz,
        }
    }

    /// The system clock in zone `tz`.
    pub fn system(tz: Tz) -> Clock {
        Clock {
            source: Source::System,
            tz,
        }
    }

    /// True when "now" is pinned (by `BACKUP_NS_NOW` or [`Clock::fixed`]).
    pub fn is_fixed(&self) -> bool {
        matches!(self.source, Source::Fixed(_))
    }

    /// The current instant.
    pub fn now_utc(&self) -> DateTime<Utc> {
        match self.source {
            Source::System => Utc::now(),
            Source::Fixed(t) => t,
        }
    }

    /// The local time zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The current instant in the local zone.
    pub fn now_local(&self) -> DateTime<Tz> {
        self.now_utc().with_timezone(&self.tz)
    }

    /// Today's calendar date in the local zone: the day that tier labels and `delete-after` are about.
    pub fn today(&self) -> NaiveDate {
        self.now_local().date_naive()
    }

    /// The same zone, pinned to another instant (the simulator steps through days with this).
    pub fn at(&self, utc: DateTime<Utc>) -> Clock {
        Clock::fixed(utc, self.tz)
    }
}

/// Parses a `TZ` value. Empty means UTC; a leading `:` (the POSIX "implementation-defined" prefix, as in
/// `TZ=:Europe/Vienna`) is accepted because glibc accepts it too.
pub fn parse_tz(value: &str) -> Result<Tz, ClockError> {
    let name = value.trim();
    let name = name.strip_prefix(':').unwrap_or(name);
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>().map_err(|_| ClockError::ParseTz {
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_plan_zone_applies_only_when_tz_is_unset() {
        let vienna = Some("Europe/Vienna");
        let zone = |tz| {
            super::Clock::from_vars_or_zone(None, tz, vienna)
                .unwrap()
                .tz()
        };
        assert_eq!(zone(None), chrono_tz::Europe::Vienna);
        assert_eq!(zone(Some("")), chrono_tz::Europe::Vienna);
        assert_eq!(zone(Some("UTC")), chrono_tz::UTC);
        let utc = super::Clock::from_vars_or_zone(None, None, None).unwrap();
        assert_eq!(utc.tz(), chrono_tz::UTC);
    }

    use super::*;
    use chrono::TimeZone;

    #[test]
    fn unset_variables_mean_system_clock_in_utc() {
        let clock = Clock::from_vars(None, None).unwrap();
        assert!(!clock.is_fixed());
        assert_eq!(clock.tz(), Tz::UTC);
        let before = Utc::now();
        let now = clock.now_utc();
        assert!(now >= before);
    }

    #[test]
    fn empty_variables_are_treated_as_unset() {
        let clock = Clock::from_vars(Some(""), Some("")).unwrap();
        assert!(!clock.is_fixed());
        assert_eq!(clock.tz(), Tz::UTC);
    }

    #[test]
    fn backup_ns_now_pins_the_clock() {
        let clock = Clock::from_vars(Some("2025-01-09T17:17:00+01:00"), None).unwrap();
        assert!(clock.is_fixed());
        assert_eq!(
            clock.now_utc(),
            Utc.with_ymd_and_hms(2025, 1, 9, 16, 17, 0).unwrap()
        );
    }

    #[test]
    fn today_is_the_calendar_day_in_tz_not_in_utc() {
        // 23:30 UTC on New Year's Eve is already 00:30 on New Year's Day in Vienna.
        let clock = Clock::from_vars(Some("2024-12-31T23:30:00Z"), Some("Europe/Vienna")).unwrap();
        assert_eq!(clock.today(), NaiveDate::from_ymd_opt(2025, 1, 1).unwrap());
        let utc = Clock::from_vars(Some("2024-12-31T23:30:00Z"), Some("UTC")).unwrap();
        assert_eq!(utc.today(), NaiveDate::from_ymd_opt(2024, 12, 31).unwrap());
    }

    #[test]
    fn posix_colon_prefix_is_accepted() {
        assert_eq!(
            parse_tz(":Europe/Vienna").unwrap(),
            chrono_tz::Europe::Vienna
        );
    }

    #[test]
    fn invalid_tz_is_an_error_naming_the_variable() {
        let err = Clock::from_vars(None, Some("Mars/Olympus")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("TZ=`Mars/Olympus`"), "{msg}");
    }

    #[test]
    fn invalid_now_is_an_error_naming_the_variable() {
        let err = Clock::from_vars(Some("yesterday"), None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("BACKUP_NS_NOW=`yesterday`"), "{msg}");
    }

    #[test]
    fn fixed_clock_reports_local_time_in_its_zone() {
        let utc = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
        let clock = Clock::fixed(utc, chrono_tz::Europe::Vienna);
        assert_eq!(clock.now_local().format("%H:%M").to_string(), "14:00");
        assert_eq!(
            clock
                .at(utc + chrono::Duration::days(1))
                .today()
                .to_string(),
            "2025-06-02"
        );
    }
}
