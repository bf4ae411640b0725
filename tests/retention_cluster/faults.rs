//! Faults during prune (500s, conflicts): the failures are counted, the rest goes ahead, the exit code says so,
//! and a re-run converges to exactly what a fault-free run would leave, with no extra deletion. Concurrent edits
//! between the list and the write are never clobbered.

use crate::support::{
    Env, Seed, clock, content_name, labels, names, namespace_doc, options, seed_docs,
    settled_content_count, start, utc,
};
use backup_ns::Exit;
use backup_ns::retention::apply::{
    ApplyOptions, Operation, Status, apply, apply_listed, list_scope,
};
use backup_ns::retention::{ObservedSnapshot, Options, apply_decisions, plan};
use backup_ns::vocab::scope::Scope;
use kube_sim::faults::{Fault, FaultAction};
use std::collections::BTreeSet;

pub const NS: &str = "shop";
pub const NOW: &str = "2025-03-01T04:30:00Z";

/// 25 managed snapshots of pvc `data` (8 daily-labelled, 7 bare, 10 past their delete-after) plus two unmanaged
/// ones that look deletable but lack `backup-ns.sh/retain`. Every content says `Retain`.
pub fn seed(env: &Env) {
    let mut yaml = namespace_doc(NS);
    let base = utc("2025-02-28T00:30:00Z");
    let day = chrono::Duration::days(1);
    for i in 0..25i64 {
        let created = base - day * i32::try_from(i).unwrap();
        let date = created.date_naive().to_string();
        let mut l = labels(&[
            ("backup-ns.sh/retain", "daily_weekly_monthly"),
            ("backup-ns.sh/pvc", "data"),
        ]);
        if i < 8 {
            l.insert("backup-ns.sh/daily".into(), date.clone());
        } else if i >= 15 {
            l.insert("backup-ns.sh/delete-after".into(), "2025-02-10".into());
        }
        yaml.push_str("---\n");
        yaml.push_str(&seed_docs(&Seed {
            namespace: NS,
            name: &format!("data-{date}"),
            pvc: "data",
            labels: l,
            retention: Some(r#"{"daily":7,"weekly":0,"monthly":0}"#),
            created,
            policy: "Retain",
        }));
    }
    for (name, l) in [
        (
            "manual-pinned",
            labels(&[
                ("backup-ns.sh/pvc", "data"),
                ("backup-ns.sh/delete-after", "2000-01-01"),
            ]),
        ),
        ("foreign", labels(&[])),
    ] {
        yaml.push_str("---\n");
        yaml.push_str(&seed_docs(&Seed {
            namespace: NS,
            name,
            pvc: "data",
            labels: l,
            retention: None,
            created: utc("2024-01-01T00:00:00Z"),
            policy: "Retain",
        }));
    }
    env.sim.apply_yaml(&yaml).unwrap();
}

/// What a fault-free run leaves: the pure planner applied in memory.
fn expected_survivors(env: &Env) -> BTreeSet<String> {
    let mut snaps: Vec<ObservedSnapshot> = env
        .sim
        .list("volumesnapshots", Some(NS))
        .iter()
        .map(|v| ObservedSnapshot::from_volume_snapshot(v).unwrap())
        .collect();
    let p = plan(&snaps, &Options::default(), &clock(NOW));
    apply_decisions(&mut snaps, &p.decisions);
    snaps.into_iter().map(|s| s.name).collect()
}

#[tokio::test]
async fn faults_during_prune_are_counted_and_a_rerun_converges_without_extra_deletions() {
    let env = start().await;
    seed(&env);
    let expected = expected_survivors(&env);
    assert_eq!(
        names(&env.sim, NS).len() - expected.len(),
        10,
        "ten deletions planned"
    );

    // The 2nd VS delete answers 500 (after its content was switched to Delete) on every attempt, the 4th
    // content patch 409 (never retried blindly: one read shows the content as listed, so the switch is sent
    // again and that deletion goes ahead), and
    // every label patch 500 on every attempt (label patches run concurrently, so a fault on "the first few" would
    // land on whichever comes first, and its retry would pass).
    let attempts = u64::from(backup_ns::cluster::retry::Policy::default().max_attempts);
    env.sim.faults().add(
        Fault::nth("delete", "volumesnapshots", 2, FaultAction::InternalError).times(attempts),
    );
    env.sim.faults().add(Fault::nth(
        "patch",
        "volumesnapshotcontents",
        4,
        FaultAction::Conflict,
    ));
    env.sim.faults().add(Fault::request(
        "patch",
        "volumesnapshots",
        FaultAction::InternalError,
    ));
    let opts = one_at_a_time();
    let first = apply(&env.cluster, &opts, &clock(NOW)).await.unwrap();
    assert_eq!(first.counts.failed, 9, "{}", first.render_text());
    assert_eq!(first.counts.deferred, 0, "{}", first.render_text());
    assert_eq!(first.exit(), Exit::Failure);
    assert_eq!(first.counts.deleted, 9, "the other deletions went ahead");
    let failed: Vec<_> = first.failures().map(|o| o.name.clone()).collect();
    assert_eq!(failed.len(), 9);

    env.sim.faults().clear();
    let second = apply(&env.cluster, &opts, &clock(NOW)).await.unwrap();
    assert_eq!(second.counts.failed, 0, "{}", second.render_text());
    assert_eq!(second.exit(), Exit::Success);
    assert_eq!(
        second.counts.deleted, 1,
        "only the failed deletion is retried"
    );
    assert_eq!(
        second.counts.patched, 8,
        "only the eight failed label patches are retried"
    );
    let present: BTreeSet<String> = names(&env.sim, NS).into_iter().collect();
    assert_eq!(present, expected);
    assert!(present.contains("manual-pinned") && present.contains("foreign"));
    // Contents of deleted snapshots went with them; the survivors' contents stay.
    for name in &present {
        assert!(
            env.sim
                .get(
                    "snapshot.storage.k8s.io/v1",
                    "volumesnapshotcontents",
                    None,
                    &content_name(NS, name)
                )
                .is_some(),
            "content of {name} kept"
        );
    }
    assert_eq!(
        settled_content_count(&env.sim, present.len()).await,
        present.len(),
        "contents of deleted snapshots are removed by the snapshot controller"
    );

    let third = apply(&env.cluster, &opts, &clock(NOW)).await.unwrap();
    assert!(third.outcomes.is_empty(), "{}", third.render_text());
}

#[tokio::test]
async fn a_snapshot_pinned_or_relabelled_after_the_list_is_neither_deleted_nor_clobbered() {
    let env = start().await;
    seed(&env);
    let opts = options(Scope::Namespace(NS.into()), Options::default());
    let listed = list_scope(&env.cluster, &opts.scope, None, 500)
        .await
        .unwrap();
    // Between the list and the writes, a user pins a doomed snapshot (removes `retain`) and someone relabels
    // the oldest daily snapshot (whose label retention wants to remove).
    let doomed = "data-2025-02-05";
    let oldest_daily = "data-2025-02-21";
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        env.cluster.client().clone(),
        NS,
        &kube::api::ApiResource {
            group: "snapshot.storage.k8s.io".into(),
            version: "v1".into(),
            api_version: "snapshot.storage.k8s.io/v1".into(),
            kind: "VolumeSnapshot".into(),
            plural: "volumesnapshots".into(),
        },
    );
    let pp = kube::api::PatchParams::default();
    api.patch(
        doomed,
        &pp,
        &kube::api::Patch::Merge(
            serde_json::json!({"metadata": {"labels": {"backup-ns.sh/retain": null}}}),
        ),
    )
    .await
    .unwrap();
    api.patch(
        oldest_daily,
        &pp,
        &kube::api::Patch::Merge(
            serde_json::json!({"metadata": {"labels": {"backup-ns.sh/daily": "keep-me"}}}),
        ),
    )
    .await
    .unwrap();

    env.sim.requests().reset();
    let report = apply_listed(&env.cluster, &listed, None, &opts, &clock(NOW)).await;
    let outcome = |name: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("no outcome for {name}: {}", report.render_text()))
            .status
            .clone()
    };
    assert!(
        matches!(outcome(doomed), Status::Deferred { .. }),
        "{:?}",
        outcome(doomed)
    );
    assert!(
        matches!(outcome(oldest_daily), Status::Failed { ref error } if error.contains("concurrently")),
        "{:?}",
        outcome(oldest_daily)
    );
    assert!(
        names(&env.sim, NS).contains(&doomed.to_string()),
        "the pinned snapshot survives"
    );
    let policy_of = |snapshot: &str| {
        env.sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshotcontents",
                None,
                &content_name(NS, snapshot),
            )
            .expect("content")["spec"]["deletionPolicy"]
            .clone()
    };
    assert_eq!(
        policy_of(doomed),
        "Retain",
        "its content's policy was switched back"
    );
    // Ten deletions planned, all on Retain contents: one content list page, ten policy switches, ten guarded
    // deletes (the pinned one refused with 409), and only for that one a read (its labels changed, so it is not
    // deleted again) and a request switching the policy back. The relabelled one's label patch is refused too and
    // costs one read (its labels changed, so the patch is not sent again).
    let r = env.sim.requests();
    let patches = report
        .outcomes
        .iter()
        .filter(|o| o.operation == Operation::Patch)
        .count() as u64;
    let expected: std::collections::BTreeMap<(String, String), u64> = [
        ("list", "volumesnapshotcontents", 1),
        // Restores in flight, checked once before the deletions.
        ("list", "persistentvolumeclaims", 1),
        ("patch", "volumesnapshotcontents", 10 + 1),
        ("delete", "volumesnapshots", 10),
        ("get", "volumesnapshots", 2),
        ("patch", "volumesnapshots", patches),
    ]
    .into_iter()
    .map(|(v, res, n)| ((v.to_string(), res.to_string()), n))
    .collect();
    assert_eq!(r.snapshot(), expected);
    assert_eq!(report.counts.deleted, 9, "{}", report.render_text());
    let relabelled = env
        .sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some(NS),
            oldest_daily,
        )
        .unwrap();
    assert_eq!(
        relabelled["metadata"]["labels"]["backup-ns.sh/daily"],
        "keep-me"
    );
}

#[tokio::test]
async fn an_in_namespace_run_leaves_deletions_that_need_a_content_patch_to_the_controller() {
    let env = start().await;
    let mut yaml = namespace_doc(NS);
    for (i, policy) in ["Delete", "Delete", "Retain", "Delete", "Delete"]
        .iter()
        .enumerate()
    {
        let created = utc("2025-02-28T00:30:00Z") - chrono::Duration::days(i as i64);
        let mut l = labels(&[
            ("backup-ns.sh/retain", "daily_weekly_monthly"),
            ("backup-ns.sh/pvc", "data"),
        ]);
        if i < 3 {
            l.insert(
                "backup-ns.sh/daily".into(),
                created.date_naive().to_string(),
            );
        }
        if i >= 3 || i == 2 {
            l.insert("backup-ns.sh/delete-after".into(), "2025-02-10".into());
        }
        yaml.push_str("---\n");
        yaml.push_str(&seed_docs(&Seed {
            namespace: NS,
            name: &format!("data-{i}"),
            pvc: "data",
            labels: l,
            retention: None,
            created,
            policy,
        }));
    }
    env.sim.apply_yaml(&yaml).unwrap();
    let mut opts = options(Scope::Namespace(NS.into()), Options::default());
    opts.content_policy = backup_ns::retention::apply::ContentPolicy::LeaveToController;
    // 3 of 5 would go: past the guard's share, which is tested elsewhere; here the content handling matters.
    opts.policy.force = true;
    env.sim.requests().reset();
    let report = apply(&env.cluster, &opts, &clock(NOW)).await.unwrap();
    let status = |name: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.status.clone())
    };
    assert!(
        matches!(status("data-2"), Some(Status::Deferred { ref reason, .. }) if reason.contains("Retain")),
        "{}",
        report.render_text()
    );
    assert_eq!(status("data-3"), Some(Status::Applied));
    assert_eq!(status("data-4"), Some(Status::Applied));
    assert_eq!(report.counts.deferred, 1);
    assert_eq!(report.exit(), Exit::Success, "deferring is not a failure");
    assert_eq!(
        env.sim.requests().count("patch", "volumesnapshotcontents"),
        0
    );
    assert_eq!(
        names(&env.sim, NS),
        vec![
            "data-0".to_string(),
            "data-1".to_string(),
            "data-2".to_string()
        ]
    );
}

/// A 409 that no concurrent edit explains (the object's labels, policy and binding are as listed: a status write
/// moved its resourceVersion, or the server made the conflict up) costs one read each, and the same change goes through:
/// a run does not fail, or leave a deletion for tomorrow, over a conflict that re-reading resolves.
#[tokio::test]
async fn a_conflict_on_an_object_still_as_listed_costs_one_read_and_the_change_goes_through() {
    let env = start().await;
    seed(&env);
    let expected = expected_survivors(&env);
    // Two conflicts in a row on the first label patch, one on the first policy switch.
    env.sim
        .faults()
        .add(Fault::nth("patch", "volumesnapshots", 1, FaultAction::Conflict).times(2));
    env.sim.faults().add(Fault::nth(
        "patch",
        "volumesnapshotcontents",
        1,
        FaultAction::Conflict,
    ));
    let opts = one_at_a_time();
    env.sim.requests().reset();
    let report = apply(&env.cluster, &opts, &clock(NOW)).await.unwrap();
    assert_eq!(env.sim.faults().fired(), [2, 1]);
    assert_eq!(report.counts.failed, 0, "{}", report.render_text());
    assert_eq!(report.counts.deferred, 0, "{}", report.render_text());
    assert_eq!(report.exit(), Exit::Success);
    let present: BTreeSet<String> = names(&env.sim, NS).into_iter().collect();
    assert_eq!(present, expected);
    let r = env.sim.requests();
    assert_eq!(r.count("get", "volumesnapshots"), 2, "{:?}", r.snapshot());
    assert_eq!(
        r.count("get", "volumesnapshotcontents"),
        1,
        "{:?}",
        r.snapshot()
    );
}

/// The real snapshot controller writes a snapshot right after retention switches its content to `Delete` (a
/// finalizer, then its status), so the delete under the listed resourceVersion may meet 409 more than once. A
/// snapshot still as listed is read and deleted again each time, up to three reads, and goes that night.
#[tokio::test]
async fn a_delete_that_meets_the_snapshot_controllers_writes_reads_again_and_goes_through() {
    let env = start().await;
    seed(&env);
    let expected = expected_survivors(&env);
    // The first delete and the next two (both after a read) meet a conflict; the fourth goes through.
    env.sim
        .faults()
        .add(Fault::nth("delete", "volumesnapshots", 1, FaultAction::Conflict).times(3));
    let opts = one_at_a_time();
    env.sim.requests().reset();
    let report = apply(&env.cluster, &opts, &clock(NOW)).await.unwrap();
    assert_eq!(env.sim.faults().fired(), [3]);
    assert_eq!(report.counts.failed, 0, "{}", report.render_text());
    assert_eq!(report.counts.deferred, 0, "{}", report.render_text());
    let present: BTreeSet<String> = names(&env.sim, NS).into_iter().collect();
    assert_eq!(present, expected);
    let r = env.sim.requests();
    assert_eq!(r.count("get", "volumesnapshots"), 3, "{:?}", r.snapshot());
}

/// Options for a pass over `NS` with one write at a time: an `nth` fault counts requests in arrival order, which
/// names one object only when one is in flight (the concurrency tests cover several at once).
fn one_at_a_time() -> ApplyOptions {
    ApplyOptions {
        concurrency: 1,
        ..options(Scope::Namespace(NS.into()), Options::default())
    }
}
