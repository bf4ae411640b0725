//! `run`'s retention step (`retention::apply::apply_pvcs`): one list for all of a plan's PVCs, each PVC planned on
//! its own, the plan's counts standing in where snapshots carry no policy annotation, and typed outcomes.

use crate::support::{Seed, clock, labels, namespace_doc, options, seed_docs, start, utc};
use backup_ns::retention::apply::{Operation, Status, apply_pvcs};
use backup_ns::retention::{Action, Options, PolicySource};
use backup_ns::vocab::retention::{Tier, TierCounts};
use backup_ns::vocab::scope::Scope;
use chrono::NaiveDate;

const NS: &str = "shop";

#[tokio::test]
async fn run_retention_lists_once_for_all_its_pvcs_and_uses_the_plans_counts() {
    let env = start().await;
    // Three daily-labelled snapshots of each of two PVCs, none with a policy annotation; `logs`'s snapshots carry
    // no `backup-ns.sh/pvc` label and belong to it through their source claim.
    let mut yaml = namespace_doc(NS);
    for pvc in ["data", "logs"] {
        for i in 0..3i64 {
            let created = utc("2025-02-28T00:30:00Z") - chrono::Duration::days(i);
            let mut l = labels(&[
                ("backup-ns.sh/retain", "daily_weekly_monthly"),
                ("backup-ns.sh/daily", &created.date_naive().to_string()),
            ]);
            if pvc == "data" {
                l.insert("backup-ns.sh/pvc".into(), pvc.into());
            }
            yaml.push_str("---\n");
            yaml.push_str(&seed_docs(&Seed {
                namespace: NS,
                name: &format!("{pvc}-{i}"),
                pvc,
                labels: l,
                retention: None,
                created,
                policy: "Retain",
            }));
        }
    }
    env.sim.apply_yaml(&yaml).unwrap();
    env.sim.requests().reset();

    // The plan keeps one daily snapshot; the controller default (7) would keep all three.
    let plan_counts = TierCounts {
        daily: 1,
        ..TierCounts::ORIGINAL_DEFAULTS
    };
    let opts = options(
        Scope::Namespace(NS.into()),
        Options {
            defaults: plan_counts,
            ..Options::default()
        },
    );
    let pvcs = ["data".to_string(), "logs".to_string()];
    let reports = apply_pvcs(&env.cluster, &pvcs, &opts, &clock("2025-02-28T01:00:00Z"))
        .await
        .unwrap();

    let r = env.sim.requests();
    assert_eq!(
        r.count("list", "volumesnapshots"),
        1,
        "one list for both PVCs: {:?}",
        r.snapshot()
    );
    assert_eq!(r.count("patch", "volumesnapshots"), 4, "{:?}", r.snapshot());
    assert_eq!(reports.len(), 2);
    for (pvc, report) in pvcs.iter().zip(&reports) {
        assert_eq!(report.plan.policies.len(), 1, "{pvc}: planned alone");
        let policy = &report.plan.policies[0];
        assert_eq!((&policy.pvc, policy.counts), (pvc, plan_counts));
        assert_eq!(policy.source, PolicySource::Defaults);
        assert_eq!(report.outcomes.len(), 2, "{}", report.render_text());
        for o in &report.outcomes {
            assert_eq!(&o.pvc, pvc);
            assert_eq!(o.operation, Operation::Patch);
            assert_eq!(o.status, Status::Applied);
            // Left without a tier label, each is marked in the same patch (grace 1 day).
            assert_eq!(
                o.actions,
                [
                    Action::RemoveLabel { tier: Tier::Daily },
                    Action::Mark {
                        delete_after: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap()
                    }
                ]
            );
            assert!(o.marks());
        }
    }
}
