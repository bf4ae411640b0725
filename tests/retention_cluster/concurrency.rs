//! Writes in flight at once (`--concurrency`): the same snapshots are deleted as one at a time, a snapshot pinned,
//! relabelled or recreated after the list is never deleted whatever the interleaving, `--delete-pause` paces
//! deletions across all workers, and a dry run stays write-free.

use crate::faults::{NOW, NS, seed};
use crate::support::{Env, clock, content_name, names, options, start};
use backup_ns::retention::Options;
use backup_ns::retention::apply::{
    ApplyOptions, Operation, Status, apply, apply_listed, list_scope,
};
use backup_ns::vocab::scope::Scope;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn with_concurrency(concurrency: usize) -> ApplyOptions {
    ApplyOptions {
        concurrency,
        ..options(Scope::Namespace(NS.into()), Options::default())
    }
}

fn snapshot(env: &Env, name: &str) -> Option<Value> {
    env.sim.get(
        "snapshot.storage.k8s.io/v1",
        "volumesnapshots",
        Some(NS),
        name,
    )
}

fn policy_of(env: &Env, snapshot: &str) -> Value {
    env.sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshotcontents",
            None,
            &content_name(NS, snapshot),
        )
        .expect("content")["spec"]["deletionPolicy"]
        .clone()
}

/// The snapshots a run plans to delete, by name.
fn doomed(report: &backup_ns::retention::apply::ApplyReport) -> BTreeSet<String> {
    report
        .outcomes
        .iter()
        .filter(|o| o.operation == Operation::Delete)
        .map(|o| o.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_deletions_at_once_remove_exactly_the_planned_snapshots_and_nothing_changed_since_the_list()
 {
    let env = start().await;
    seed(&env);
    let opts = with_concurrency(16);
    let listed = list_scope(&env.cluster, &opts.scope, None, 500)
        .await
        .unwrap();
    let planned = doomed(
        &apply_listed(
            &env.cluster,
            &listed,
            None,
            &ApplyOptions {
                dry_run: true,
                ..opts.clone()
            },
            &clock(NOW),
        )
        .await,
    );
    assert_eq!(planned.len(), 10);
    let mut planned_iter = planned.iter();
    let pinned = planned_iter.next().unwrap().clone();
    let relabelled = planned_iter.next().unwrap().clone();
    let recreated = planned_iter.next().unwrap().clone();
    // Between the list and the writes: one doomed snapshot is pinned (its `retain` label removed), one gets a
    // new label, one is deleted and created again under the same name (a new uid, e.g. a fresh backup).
    env.sim
        .merge_patch(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some(NS),
            &pinned,
            &json!({"metadata": {"labels": {"backup-ns.sh/retain": null}}}),
        )
        .unwrap();
    env.sim
        .merge_patch(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some(NS),
            &relabelled,
            &json!({"metadata": {"labels": {"owner": "audit"}}}),
        )
        .unwrap();
    let old = snapshot(&env, &recreated).expect("snapshot");
    env.sim
        .delete(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some(NS),
            &recreated,
        )
        .unwrap();
    let mut fresh = old.clone();
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        fresh["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove(field);
    }
    env.sim.apply_yaml(&fresh.to_string()).unwrap();
    let new_uid = snapshot(&env, &recreated).expect("recreated")["metadata"]["uid"].clone();
    assert_ne!(new_uid, old["metadata"]["uid"]);

    let report = apply_listed(&env.cluster, &listed, None, &opts, &clock(NOW)).await;
    assert_eq!(report.counts.failed, 0, "{}", report.render_text());
    let survivors: BTreeSet<String> = names(&env.sim, NS).into_iter().collect();
    for name in [&pinned, &relabelled, &recreated] {
        assert!(
            survivors.contains(name),
            "{name} changed since the list and must survive"
        );
        assert_eq!(
            policy_of(&env, name),
            "Retain",
            "{name}'s content is switched back"
        );
        let o = report.outcomes.iter().find(|o| &o.name == name).unwrap();
        assert!(
            matches!(o.status, Status::Deferred { .. }),
            "{name}: {:?}",
            o.status
        );
    }
    assert_eq!(
        snapshot(&env, &recreated).unwrap()["metadata"]["uid"],
        new_uid,
        "the recreated snapshot is the new one, untouched"
    );
    let deleted: BTreeSet<String> = planned
        .iter()
        .filter(|n| !survivors.contains(*n))
        .cloned()
        .collect();
    assert_eq!(deleted.len(), 7, "{}", report.render_text());
    assert_eq!(report.counts.deleted, 7);
    // Nothing outside the plan went: 27 seeded, 7 deleted.
    assert_eq!(survivors.len(), 27 - 7, "{survivors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_and_sixteen_leave_the_same_cluster() {
    let mut left = Vec::new();
    for concurrency in [1, 16] {
        let env = start().await;
        seed(&env);
        let report = apply(&env.cluster, &with_concurrency(concurrency), &clock(NOW))
            .await
            .unwrap();
        assert_eq!(report.counts.failed, 0, "{}", report.render_text());
        let labels: Vec<(String, Value)> = env
            .sim
            .list("volumesnapshots", Some(NS))
            .into_iter()
            .map(|v| {
                (
                    v["metadata"]["name"].as_str().unwrap().to_string(),
                    v["metadata"]["labels"].clone(),
                )
            })
            .collect();
        let outcomes: Vec<_> = report
            .outcomes
            .iter()
            .map(|o| (o.name.clone(), o.operation, o.status.clone()))
            .collect();
        left.push((labels, outcomes));
    }
    assert_eq!(
        left[0], left[1],
        "outcomes and surviving labels are the same"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delete_pause_paces_deletions_across_all_workers() {
    let env = start().await;
    seed(&env);
    let pause = Duration::from_millis(60);
    let opts = ApplyOptions {
        delete_pause: pause,
        ..with_concurrency(8)
    };
    let started = Instant::now();
    let report = apply(&env.cluster, &opts, &clock(NOW)).await.unwrap();
    let took = started.elapsed();
    assert_eq!(report.counts.deleted, 10, "{}", report.render_text());
    // Ten deletions start at least `pause` apart however many workers there are: nine pauses at least.
    assert!(
        took >= pause * 9,
        "10 deletions in {took:?} with a {pause:?} pause"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing_and_plans_the_same_at_any_concurrency() {
    let env = start().await;
    seed(&env);
    let mut plans = Vec::new();
    for concurrency in [1, 16] {
        env.sim.requests().reset();
        let report = apply(
            &env.cluster,
            &ApplyOptions {
                dry_run: true,
                ..with_concurrency(concurrency)
            },
            &clock(NOW),
        )
        .await
        .unwrap();
        let r = env.sim.requests().snapshot();
        assert!(
            r.keys().all(|(verb, _)| verb == "list"),
            "a dry run only lists: {r:?}"
        );
        assert!(report.outcomes.iter().all(|o| o.status == Status::DryRun));
        plans.push(serde_json::to_value(&report).unwrap());
    }
    assert_eq!(plans[0], plans[1]);
    assert_eq!(names(&env.sim, NS).len(), 27);
}
