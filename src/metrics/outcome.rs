//! The samples `run` and `controller` push to a Pushgateway when given `--pushgateway URL`. Pure: the commands
//! pass in their reports, the finish time and the duration; `push` does the I/O.
//!
//! Batch jobs cannot be scraped, so their outcome is pushed once at the end, grouped by job and namespace/plan.
//! An alert such as "no successful backup-ns run for plan X in 26h" then reads
//! `time() - backup_ns_run_last_success_timestamp_seconds > 26*3600`.

use super::Sample;
use crate::engine::report::RunReport;
use crate::retention::apply::Counts;
use crate::retention::sync::SyncReport;

/// The Pushgateway job name of `backup-ns run`.
pub const RUN_JOB: &str = "backup-ns-run";
/// The Pushgateway job name of `backup-ns controller`.
pub const CONTROLLER_JOB: &str = "backup-ns-controller";

/// The outcome of one `backup-ns run`. `last_success_timestamp_seconds` is only sent on success; pushed with
/// [`super::update`] (POST), a failed run therefore leaves the previous success time in the group.
pub fn run_samples(report: &RunReport, finished_unix: i64, duration_secs: f64) -> Vec<Sample> {
    let mut samples = vec![
        Sample::new(
            "backup_ns_run_success",
            "1 when the last backup-ns run succeeded, 0 when it failed.",
            if report.success { 1.0 } else { 0.0 },
        ),
        Sample::new(
            "backup_ns_run_exit_code",
            "Exit code of the last backup-ns run (see `backup-ns --help`).",
            f64::from(report.exit_code),
        ),
        Sample::new(
            "backup_ns_run_duration_seconds",
            "Wall time of the last backup-ns run.",
            duration_secs,
        ),
        Sample::new(
            "backup_ns_run_last_completion_timestamp_seconds",
            "Unix time at which the last backup-ns run finished, successfully or not.",
            finished_unix as f64,
        ),
        Sample::new(
            "backup_ns_run_snapshots_created",
            "VolumeSnapshots the last backup-ns run created.",
            report.snapshots.len() as f64,
        ),
    ];
    samples.push(Sample::new(
        "backup_ns_run_backup_taken",
        "1 when the last backup-ns run took a backup (every snapshot ready), even if a later step failed.",
        if report.backup_taken { 1.0 } else { 0.0 },
    ));
    samples.push(Sample::new(
        "backup_ns_run_api_retries",
        "API requests the last backup-ns run sent again after a transient failure.",
        report.api_retries as f64,
    ));
    // The success time follows the backup, not the exit code: a failed retention after a ready snapshot must
    // not make "no successful backup in 26h" fire for a backup that exists.
    if report.success || report.backup_taken {
        samples.push(Sample::new(
            "backup_ns_run_last_success_timestamp_seconds",
            "Unix time at which the last backup-ns run that took a backup finished.",
            finished_unix as f64,
        ));
    }
    samples
}

/// The outcome of one `backup-ns controller` pass.
pub fn controller_samples(
    sync: &SyncReport,
    retention: &Counts,
    exit_code: u8,
    finished_unix: i64,
    duration_secs: f64,
) -> Vec<Sample> {
    let counter = |name: &str, help: &str, value: usize| Sample::new(name, help, value as f64);
    vec![
        Sample::new(
            "backup_ns_controller_success",
            "1 when the last controller pass succeeded, 0 when anything failed or the guard refused.",
            if exit_code == 0 { 1.0 } else { 0.0 },
        ),
        Sample::new(
            "backup_ns_controller_exit_code",
            "Exit code of the last controller pass (5: the mass-deletion guard refused).",
            f64::from(exit_code),
        ),
        Sample::new(
            "backup_ns_controller_duration_seconds",
            "Wall time of the last controller pass.",
            duration_secs,
        ),
        Sample::new(
            "backup_ns_controller_last_completion_timestamp_seconds",
            "Unix time at which the last controller pass finished.",
            finished_unix as f64,
        ),
        counter(
            "backup_ns_controller_snapshots_managed",
            "VolumeSnapshots carrying backup-ns.sh/retain seen by the last pass.",
            retention.managed,
        ),
        counter(
            "backup_ns_controller_labels_removed",
            "Tier labels removed by the last pass.",
            retention.labels_removed,
        ),
        counter(
            "backup_ns_controller_snapshots_marked",
            "Snapshots marked with delete-after by the last pass.",
            retention.marked,
        ),
        counter(
            "backup_ns_controller_snapshots_deleted",
            "Snapshots deleted by the last pass.",
            retention.deleted,
        ),
        counter(
            "backup_ns_controller_failures",
            "Objects the last pass failed to change (label sync and retention).",
            retention.failed + sync.failed,
        ),
        counter(
            "backup_ns_controller_contents_synced",
            "VolumeSnapshotContents whose labels the last pass updated.",
            sync.patched,
        ),
        // The pass lists its scope anyway; with `-A` (how the controller runs) that is the whole cluster.
        counter(
            super::exposition::CLUSTER_SNAPSHOTS,
            super::exposition::CLUSTER_SNAPSHOTS_HELP,
            retention.listed,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::render_samples;

    fn report(success: bool) -> RunReport {
        RunReport {
            plan: "shop".into(),
            namespace: "shop-prod".into(),
            dry_run: false,
            success,
            exit_code: if success { 0 } else { 4 },
            error: None,
            steps: vec![],
            snapshots: vec![],
            group_snapshot: None,
            hooks: vec![],
            backup_taken: success,
            failed_after_backup: vec![],
            api_retries: 0,
            failure: None,
        }
    }

    #[test]
    fn a_backup_taken_before_a_later_step_failed_still_reports_its_success_time() {
        let taken = RunReport {
            success: false,
            exit_code: 6,
            backup_taken: true,
            failed_after_backup: vec!["retention".into()],
            api_retries: 2,
            ..report(false)
        };
        let text = render_samples(&run_samples(&taken, 1_700_000_000, 3.0));
        assert!(text.contains("backup_ns_run_success 0\n"), "{text}");
        assert!(text.contains("backup_ns_run_backup_taken 1\n"), "{text}");
        assert!(text.contains("backup_ns_run_api_retries 2\n"), "{text}");
        assert!(
            text.contains("backup_ns_run_last_success_timestamp_seconds 1700000000\n"),
            "{text}"
        );
    }

    #[test]
    fn a_successful_run_reports_its_success_time() {
        let text = render_samples(&run_samples(&report(true), 1_700_000_000, 12.5));
        assert!(text.contains("backup_ns_run_success 1\n"), "{text}");
        assert!(text.contains("backup_ns_run_exit_code 0\n"), "{text}");
        assert!(
            text.contains("backup_ns_run_duration_seconds 12.5\n"),
            "{text}"
        );
        assert!(
            text.contains("backup_ns_run_last_success_timestamp_seconds 1700000000\n"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_run_does_not_claim_a_success_time() {
        let text = render_samples(&run_samples(&report(false), 1_700_000_000, 3.0));
        assert!(text.contains("backup_ns_run_success 0\n"), "{text}");
        assert!(text.contains("backup_ns_run_exit_code 4\n"), "{text}");
        assert!(
            !text.contains("backup_ns_run_last_success_timestamp_seconds"),
            "{text}"
        );
        assert!(
            text.contains("backup_ns_run_last_completion_timestamp_seconds 1700000000\n"),
            "{text}"
        );
    }

    #[test]
    fn controller_samples_add_sync_and_retention_failures() {
        let sync = SyncReport {
            failed: 2,
            patched: 3,
            ..SyncReport::default()
        };
        let counts = Counts {
            listed: 52,
            managed: 40,
            deleted: 5,
            failed: 1,
            ..Counts::default()
        };
        let text = render_samples(&controller_samples(&sync, &counts, 1, 1_700_000_000, 2.0));
        assert!(text.contains("backup_ns_controller_success 0\n"), "{text}");
        assert!(text.contains("backup_ns_controller_failures 3\n"), "{text}");
        assert!(
            text.contains("backup_ns_controller_snapshots_deleted 5\n"),
            "{text}"
        );
        assert!(
            text.contains("backup_ns_controller_contents_synced 3\n"),
            "{text}"
        );
        assert!(text.contains("backup_ns_cluster_snapshots 52\n"), "{text}");
    }
}
