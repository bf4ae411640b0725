//! The static manifests running on their own: deploy/static/ applied with the real kubectl to kube-sim in RBAC
//! mode, with the image mapped to the built binary (`--run-image`), and the simulated clock moved over 30 nights.
//! Each night the tenant CronJob's pod runs `backup-ns run` with the plan from its mounted ConfigMap, connecting
//! with its in-cluster configuration as the tenant ServiceAccount, and sees the simulated date: its postgres hook
//! execs into the app's pod, where a real PostgreSQL answers, and the dump lands on the volume. Each morning the
//! controller CronJob's pod runs retention as the controller ServiceAccount. After 30 days the namespace holds
//! exactly the snapshots the retention simulation of the same policy keeps.
//!
//! The substitutions are the ones the manifests' header asks for (namespace, image, plan.yaml: the hook is told
//! the throwaway server's port), plus two for the test machine: the hostPath lock dir is a temp dir, and the
//! controller's pause between deletions is 0s (it is real time, and the nights are simulated).

use std::collections::BTreeSet;

use backup_ns::retention::simulate::{Scenario, simulate};
use backup_ns::vocab::retention::{RetentionPolicy, TierCounts};
use chrono::{NaiveDate, NaiveTime};

use super::rbac_model::{TENANT, tenant_manifest};
use super::stage::{Stage, VIENNA, vienna};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_nights_of_the_static_manifests_keep_the_gfs_set_the_policy_says() {
    let first = NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
    let stage = Stage::start(vienna(first, 0, 0) - chrono::Duration::hours(1)).await;
    let sim = &stage.sim;
    stage
        .apply(&[
            Stage::controller_static(),
            stage.localize(&tenant_manifest(TENANT)),
        ])
        .await;

    for night in 0..30 {
        let day = first + chrono::Duration::days(night);
        stage.night(TENANT, "backup", vienna(day, 0, 15)).await;
        stage
            .night(
                "backup-ns-system",
                "backup-ns-controller",
                vienna(day, 4, 30),
            )
            .await;
    }

    // The last night's dump is on the volume (a gzip stream).
    let dump = std::fs::read(sim.pvc_dir(TENANT, "data").join("dump.sql.gz"))
        .expect("the dump on the PVC");
    assert!(
        dump.len() > 100 && dump.starts_with(&[0x1f, 0x8b]),
        "{} bytes",
        dump.len()
    );

    // The tenant's pods ran as its ServiceAccount, in-cluster: the pod's own token, nothing else was given.
    let pod = sim
        .list("pods", Some(TENANT))
        .into_iter()
        .find(|p| p["metadata"]["labels"]["job-name"].is_string())
        .expect("a backup pod");
    assert_eq!(pod["spec"]["serviceAccountName"], "backup-ns");

    let snapshots = sim.list("volumesnapshots", Some(TENANT));
    // Named by backup-ns from its own clock (`{pvc}-{timestamp}-{rand}`, local time): the simulated night.
    let present: BTreeSet<String> = snapshots
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .filter_map(|name| name.strip_prefix("data-").and_then(|rest| rest.get(..10)))
        .map(str::to_string)
        .collect();
    assert_eq!(
        present.len(),
        snapshots.len(),
        "one snapshot per simulated night: {snapshots:#?}"
    );
    let standard = TierCounts {
        daily: 7,
        weekly: 4,
        monthly: 12,
        yearly: 0,
    };
    let expected = simulate(&Scenario {
        policy: RetentionPolicy::Tiers(standard),
        defaults: standard,
        start: first,
        days: 30,
        at: NaiveTime::from_hms_opt(0, 15, 0).expect("time"),
        grace_days: 1,
        tz: VIENNA,
    })
    .expect("simulation");
    let kept: BTreeSet<String> = expected
        .backups
        .iter()
        .filter(|b| b.deleted.is_none())
        .map(|b| b.taken.to_string())
        .collect();
    assert_eq!(present, kept, "the namespace holds what the policy keeps");
}
