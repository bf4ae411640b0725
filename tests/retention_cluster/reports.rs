//! The text reports of `controller` and `prune` name every snapshot they report (an unparsable `delete-after`,
//! an unknown `retain` value, an invalid retention annotation, a deletion the guard withheld, a deferred
//! deletion), each with its problem and the command that fixes it, not only a count.

use crate::cli::{backup_ns, doomed_namespace, text};
use crate::support::{Seed, clock, labels, namespace_doc, options, seed_docs, start, utc};
use backup_ns::retention::Options;
use backup_ns::retention::apply::{ContentPolicy, apply};
use backup_ns::vocab::scope::Scope;

/// Namespace `odd`: one PVC whose snapshots carry each kind of bad label or annotation, beside a good newest one.
fn odd_namespace() -> String {
    let mut yaml = namespace_doc("odd");
    let seeds = [
        (
            "data-newest",
            vec![
                ("backup-ns.sh/retain", "daily_weekly_monthly"),
                ("backup-ns.sh/daily", "2025-02-28"),
            ],
            None,
            "2025-02-28T00:30:00Z",
        ),
        (
            "data-bad-date",
            vec![
                ("backup-ns.sh/retain", "daily_weekly_monthly"),
                ("backup-ns.sh/delete-after", "2025-13-45"),
            ],
            None,
            "2025-02-20T00:30:00Z",
        ),
        (
            "data-odd-retain",
            vec![("backup-ns.sh/retain", "forever")],
            None,
            "2025-02-19T00:30:00Z",
        ),
        (
            "data-bad-policy",
            vec![
                ("backup-ns.sh/retain", "daily_weekly_monthly"),
                ("backup-ns.sh/daily", "2025-02-27"),
            ],
            Some("{\"daily\":\"many\"}"),
            "2025-02-27T00:30:00Z",
        ),
    ];
    for (name, pairs, retention, created) in seeds {
        let mut l = labels(&pairs);
        l.insert("backup-ns.sh/pvc".into(), "data".into());
        yaml.push_str("---\n");
        yaml.push_str(&seed_docs(&Seed {
            namespace: "odd",
            name,
            pvc: "data",
            labels: l,
            retention,
            created: utc(created),
            policy: "Delete",
        }));
    }
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_and_the_controller_name_each_reported_snapshot_with_its_fix() {
    let env = start().await;
    // `shop`: three of four snapshots due, over the guard's 50 %.
    doomed_namespace(&env, "shop", 4);
    env.sim.apply_yaml(&odd_namespace()).unwrap();
    let now = "2025-03-01T04:30:00Z";

    let prune = backup_ns(&env, &["prune", "-A", "--dry-run"], now).await;
    assert_eq!(prune.status.code(), Some(5), "{}", text(&prune));
    insta::assert_snapshot!("prune_reports", String::from_utf8_lossy(&prune.stdout));

    let controller = backup_ns(&env, &["controller", "-A", "--dry-run"], now).await;
    assert_eq!(controller.status.code(), Some(5), "{}", text(&controller));
    insta::assert_snapshot!(
        "controller_reports",
        String::from_utf8_lossy(&controller.stdout)
    );
}

/// A deletion deferred to the controller (an in-namespace run may not switch a `Retain` content, as `run`'s
/// retention step) is printed with the command that finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_deletion_is_printed_with_the_command_that_finishes_it() {
    let env = start().await;
    let mut yaml = namespace_doc("shop");
    for (name, created, extra) in [
        (
            "data-new",
            "2025-02-28T00:30:00Z",
            ("backup-ns.sh/daily", "2025-02-28"),
        ),
        (
            "data-old",
            "2025-02-01T00:30:00Z",
            ("backup-ns.sh/delete-after", "2025-02-10"),
        ),
    ] {
        yaml.push_str("---\n");
        yaml.push_str(&seed_docs(&Seed {
            namespace: "shop",
            name,
            pvc: "data",
            labels: labels(&[
                ("backup-ns.sh/retain", "daily_weekly_monthly"),
                ("backup-ns.sh/pvc", "data"),
                extra,
            ]),
            retention: None,
            created: utc(created),
            policy: "Retain",
        }));
    }
    env.sim.apply_yaml(&yaml).unwrap();
    let mut opts = options(Scope::Namespace("shop".into()), Options::default());
    opts.content_policy = ContentPolicy::LeaveToController;
    let report = apply(&env.cluster, &opts, &clock("2025-03-01T04:30:00Z"))
        .await
        .unwrap();
    assert_eq!(report.counts.deferred, 1, "{}", report.render_text());
    insta::assert_snapshot!("deferred_report", report.render_text());
}
