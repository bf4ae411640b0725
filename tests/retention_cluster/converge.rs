//! 400 simulated nights: a snapshot a night (status.creationTime seeded), the controller's retention right after
//! each. The cluster ends exactly where the pure simulation ends (7/4/12), every content follows its snapshot, and
//! a re-run changes nothing.

use crate::support::{
    Seed, clock, label_of, names, namespace_doc, options, seed_docs, settled_content_count, start,
};
use backup_ns::clock::Clock;
use backup_ns::labels::{self, PriorSnapshot};
use backup_ns::retention::apply::apply;
use backup_ns::retention::simulate::{Scenario, simulate};
use backup_ns::retention::{ObservedSnapshot, Options};
use backup_ns::vocab::retention::{RetentionPolicy, TierCounts};
use backup_ns::vocab::scope::Scope;
use chrono::{Duration as ChronoDuration, NaiveDate, NaiveTime};
use std::collections::BTreeSet;

const NS: &str = "shop";
const POLICY: &str = r#"{"daily":7,"weekly":4,"monthly":12}"#;

#[tokio::test]
async fn four_hundred_nightly_snapshots_converge_to_7_daily_4_weekly_12_monthly_like_the_simulation()
 {
    let env = start().await;
    env.sim.apply_yaml(&namespace_doc(NS)).unwrap();
    let counts = TierCounts {
        daily: 7,
        weekly: 4,
        monthly: 12,
        yearly: 0,
    };
    let start_day = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let at = NaiveTime::from_hms_opt(0, 30, 0).unwrap();
    let mut requests_per_night = Vec::new();
    for day in 0..400u64 {
        let date = start_day + chrono::Days::new(day);
        let taken = date.and_time(at).and_utc();
        let night = Clock::fixed(taken, chrono_tz::UTC);
        // Labels as `run` gives them: tier labels for periods this PVC does not hold yet (read from the cluster).
        let live: Vec<ObservedSnapshot> = env
            .sim
            .list("volumesnapshots", Some(NS))
            .iter()
            .map(|v| ObservedSnapshot::from_volume_snapshot(v).unwrap())
            .collect();
        let prior: Vec<PriorSnapshot<'_>> = live
            .iter()
            .map(|s| PriorSnapshot {
                labels: &s.labels,
                source_pvc: Some(&s.pvc),
                created: s.created,
                ready: s.ready,
            })
            .collect();
        let l = labels::creation_labels("data", &RetentionPolicy::Tiers(counts), &prior, &night);
        let name = format!("data-{date}");
        env.sim
            .apply_yaml(&seed_docs(&Seed {
                namespace: NS,
                name: &name,
                pvc: "data",
                labels: l,
                retention: Some(POLICY),
                created: taken,
                policy: "Retain",
            }))
            .unwrap();

        let before = env.sim.requests().total();
        let run_clock = night.at(taken + ChronoDuration::minutes(1));
        let report = apply(
            &env.cluster,
            &options(Scope::Namespace(NS.into()), Options::default()),
            &run_clock,
        )
        .await
        .unwrap();
        assert_eq!(
            report.counts.failed,
            0,
            "night {date}: {}",
            report.render_text()
        );
        assert!(!report.plan.guard_refused(), "night {date}: guard tripped");
        requests_per_night.push(env.sim.requests().total() - before);
    }

    let sim = simulate(&Scenario {
        policy: RetentionPolicy::from_annotation(POLICY, TierCounts::ORIGINAL_DEFAULTS).unwrap(),
        defaults: TierCounts::ORIGINAL_DEFAULTS,
        start: start_day,
        days: 400,
        at,
        grace_days: 1,
        tz: chrono_tz::UTC,
    })
    .unwrap();
    let expected: BTreeSet<String> = sim
        .backups
        .iter()
        .filter(|b| b.deleted.is_none())
        .map(|b| b.name.clone())
        .collect();
    let present: BTreeSet<String> = names(&env.sim, NS).into_iter().collect();
    assert_eq!(
        present, expected,
        "the cluster ends where the pure simulation ends"
    );

    let listed = env.sim.list("volumesnapshots", Some(NS));
    let tier_count = |key: &str| listed.iter().filter(|v| label_of(v, key).is_some()).count();
    assert_eq!(tier_count(labels::DAILY), 7);
    assert_eq!(tier_count(labels::WEEKLY), 4);
    assert_eq!(tier_count(labels::MONTHLY), 12);
    // Deleted snapshots took their contents with them (Retain was switched to Delete first).
    assert_eq!(
        settled_content_count(&env.sim, present.len()).await,
        present.len(),
        "no orphaned contents"
    );
    // Every night listed once; nothing is listed per PVC or per tier.
    assert!(requests_per_night.iter().all(|&n| n >= 1));

    // Converged: a re-run the same night writes nothing.
    env.sim.requests().reset();
    let last = start_day + chrono::Days::new(399);
    let report = apply(
        &env.cluster,
        &options(Scope::Namespace(NS.into()), Options::default()),
        &clock(&format!("{last}T00:45:00Z")),
    )
    .await
    .unwrap();
    assert_eq!(report.outcomes, vec![], "{}", report.render_text());
    assert_eq!(env.sim.requests().count("list", "volumesnapshots"), 1);
    assert_eq!(
        env.sim.requests().total(),
        1,
        "{:?}",
        env.sim.requests().snapshot()
    );
}
