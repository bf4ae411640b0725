//! `backup-ns adhoc`, the pure part: which CronJob to copy (`--from cronjob/NAME`), the Job's name, and the
//! environment overrides that turn a scheduled backup into an adhoc one.
//!
//! The overrides are `BACKUP_NS_*` variables, which `backup-ns run` merges over its plan file or its `BAK_*`
//! variables (see `settings::env_layer`): type `adhoc`, retention `{days: N}`, lock off. When the CronJob still
//! configures the original's `BAK_*` variables, the matching `BAK_*` overrides are set as well, so an image of the
//! original backup-ns behaves the same.

use super::OpsError;
use chrono::{DateTime, TimeZone};
use k8s_openapi::api::batch::v1::CronJob;
use std::collections::BTreeMap;

/// The CronJob name in `--from cronjob/NAME` (also `cronjob.batch/NAME`, `cronjobs/NAME` or a bare NAME).
pub fn parse_from(value: &str) -> Result<String, OpsError> {
    let bad = || OpsError::BadFrom {
        value: value.to_string(),
    };
    let name = match value.split_once('/') {
        Some((kind, name)) => {
            if !matches!(
                kind.to_ascii_lowercase().as_str(),
                "cronjob" | "cronjobs" | "cronjob.batch" | "cronjobs.batch" | "cj"
            ) {
                return Err(bad());
            }
            name
        }
        None => value,
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if valid {
        Ok(name.to_string())
    } else {
        Err(bad())
    }
}

/// `<cronjob>-adhoc-<YYYY-MM-DD-HHMMSS>` in local time, as the original's script named it, cut so the name
/// fits the 63 characters a Job's pods need for their `job-name` label.
pub fn job_name<Tz: TimeZone>(cronjob: &str, now: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let suffix = format!("-adhoc-{}", now.format("%Y-%m-%d-%H%M%S"));
    let keep = 63 - suffix.len();
    let prefix: String = cronjob.chars().take(keep).collect();
    format!("{}{suffix}", prefix.trim_end_matches(['-', '.']))
}

/// Whether any container of the CronJob's pod template sets a `BAK_*` variable (original-style configuration).
pub fn uses_bak_env(cronjob: &CronJob) -> bool {
    cronjob
        .spec
        .job_template
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .is_some_and(|pod| {
            pod.containers
                .iter()
                .chain(pod.init_containers.iter().flatten())
                .flat_map(|c| c.env.iter().flatten())
                .any(|e| e.name.starts_with("BAK_"))
        })
}

/// The environment overrides of an adhoc run keeping its snapshot `retain_days` days.
pub fn adhoc_env(retain_days: u32, bak_compat: bool) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("BACKUP_NS_SNAPSHOT__TYPE", "adhoc".to_string()),
        ("BACKUP_NS_RETENTION", format!("{{days: {retain_days}}}")),
        ("BACKUP_NS_LOCK__ENABLED", "false".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if bak_compat {
        env.insert("BAK_LABEL_VS_TYPE".into(), "adhoc".into());
        env.insert("BAK_LABEL_VS_RETAIN".into(), "days".into());
        env.insert("BAK_LABEL_VS_RETAIN_DAYS".into(), retain_days.to_string());
        env.insert("BAK_FLOCK".into(), "false".into());
    }
    env
}

/// The container whose logs `--follow` streams: the Job's first, the backup itself. Naming it keeps the logs
/// API from refusing pods with sidecars.
pub fn backup_container(job: &k8s_openapi::api::batch::v1::Job) -> Option<&str> {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .map(|c| c.name.as_str())
}

/// A failed Job's condition reason and message as one phrase.
pub fn failure_reason(reason: String, message: String) -> String {
    match (reason.is_empty(), message.is_empty()) {
        (true, true) => "no reason given".to_string(),
        (false, true) => reason,
        (true, false) => message,
        (false, false) => format!("{reason}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn from_accepts_the_spellings_of_kubectl_and_nothing_else() {
        for ok in [
            "cronjob/backup",
            "cronjob.batch/backup",
            "cronjobs/backup",
            "backup",
        ] {
            assert_eq!(parse_from(ok).unwrap(), "backup", "{ok}");
        }
        for bad in ["deployment/backup", "cronjob/", "Backup", "cronjob/a b", ""] {
            let err = parse_from(bad).unwrap_err();
            assert!(matches!(err, OpsError::BadFrom { .. }), "{bad}");
        }
    }

    #[test]
    fn job_names_carry_the_local_time_and_fit_63_characters() {
        let now = Utc.with_ymd_and_hms(2025, 1, 8, 15, 56, 14).unwrap();
        assert_eq!(job_name("backup", &now), "backup-adhoc-2025-01-08-155614");
        let long = job_name(&"x".repeat(80), &now);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-adhoc-2025-01-08-155614"));
        let vienna = now.with_timezone(&chrono_tz::Europe::Vienna);
        assert_eq!(
            job_name("backup", &vienna),
            "backup-adhoc-2025-01-08-165614"
        );
    }

    #[test]
    fn the_overrides_set_type_retention_and_lock_and_bak_variables_only_for_bak_cronjobs() {
        let env = adhoc_env(30, false);
        assert_eq!(
            env.keys().collect::<Vec<_>>(),
            [
                "BACKUP_NS_LOCK__ENABLED",
                "BACKUP_NS_RETENTION",
                "BACKUP_NS_SNAPSHOT__TYPE"
            ]
        );
        assert_eq!(env["BACKUP_NS_RETENTION"], "{days: 30}");
        let compat = adhoc_env(7, true);
        assert_eq!(compat["BAK_LABEL_VS_RETAIN_DAYS"], "7");
        assert_eq!(compat["BAK_FLOCK"], "false");
    }

    #[test]
    fn a_failure_reason_joins_what_the_job_condition_says() {
        let r = |a: &str, b: &str| failure_reason(a.to_string(), b.to_string());
        assert_eq!(r("", ""), "no reason given");
        assert_eq!(r("BackoffLimitExceeded", ""), "BackoffLimitExceeded");
        assert_eq!(r("", "gave up"), "gave up");
        assert_eq!(
            r("DeadlineExceeded", "too slow"),
            "DeadlineExceeded: too slow"
        );
    }
}
