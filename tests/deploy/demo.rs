//! The README's first command works: `kube-sim demo` (library entry point) installs deploy/static on a simulated
//! cluster with this build's backup-ns as the image, lets the CronJobs run a fortnight of nights against a real
//! local PostgreSQL, retention really prunes, and the weekly verify CronJob proves the newest backup by restoring it.

use chrono::NaiveDate;
use kube_sim::demo::{DemoOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_replays_nights_with_real_backups_and_retention_deletes_snapshot_and_content() {
    let nights = 14;
    let report = run(DemoOptions {
        backup_ns: env!("CARGO_BIN_EXE_backup-ns").into(),
        manifests: super::repo().join("deploy/static"),
        nights,
        start: NaiveDate::from_ymd_opt(2025, 1, 1).expect("date"),
        verbose: true,
    })
    .await
    .unwrap_or_else(|e| panic!("the demo failed: {e}"));
    assert_eq!(report.nights, nights);
    // 1000 seeded rows, 20 more each night after the first.
    assert_eq!(report.orders, 1000 + 20 * u64::from(nights - 1));
    // 7 daily + the weekly/monthly holders stay; older untiered nights were marked, then swept.
    assert!(
        report.snapshots < nights as usize && report.snapshots >= 7,
        "{report:?}"
    );
    // The controller switched the Retain contents to Delete before deleting: no orphaned contents.
    assert_eq!(report.contents, report.snapshots, "{report:?}");
    // The weekly verify restored the newest snapshot and loaded its dump: the orders table with every row.
    assert!(
        report.verified.starts_with("passed: ")
            && report.verified.contains(&format!("{} rows", report.orders)),
        "{report:?}"
    );
}
