//! The controller at the request floor: list pages, one request per label change, at most two per deletion (the
//! content's guarded policy switch, the snapshot's delete with preconditions), one list each of the verify
//! leftovers' pods and claims, one of claims when something is deleted (restores in flight), and no
//! re-reads. Counted from the
//! simulator's request log, exactly.

use crate::cli::{backup_ns, text};
use crate::faults::{NOW, NS, seed};
use crate::support::{clock, content_name, names, options, start};
use backup_ns::retention::Options;
use backup_ns::retention::apply::{Status, apply};
use backup_ns::vocab::scope::Scope;
use kube_sim::faults::{Fault, FaultAction};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn requests(pairs: &[(&str, &str, u64)]) -> BTreeMap<(String, String), u64> {
    pairs
        .iter()
        .filter(|(_, _, n)| *n > 0)
        .map(|(v, r, n)| ((v.to_string(), r.to_string()), *n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_run_costs_its_list_pages_one_request_per_label_change_and_two_per_deletion() {
    let env = start().await;
    // 27 snapshots, 27 contents (all Retain): ten deletions planned, tier labels moved, marks set.
    seed(&env);
    env.sim.requests().reset();
    let out = backup_ns(
        &env,
        &[
            "controller",
            "-A",
            "--page-size",
            "4",
            "--delete-pause",
            "0s",
            "-o",
            "json",
        ],
        NOW,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let counts = &report["retention"]["counts"];
    assert_eq!(counts["deleted"], 10, "{report:#}");
    assert_eq!(counts["failed"], 0, "{report:#}");
    let patched = counts["patched"].as_u64().expect("patched");
    let synced = report["sync"]["patched"].as_u64().expect("sync patched");
    assert!(patched > 0 && synced > 0, "{report:#}");
    assert_eq!(
        env.sim.requests().snapshot(),
        requests(&[
            ("list", "volumesnapshots", 27u64.div_ceil(4)),
            ("list", "volumesnapshotcontents", 27u64.div_ceil(4)),
            ("patch", "volumesnapshots", patched),
            // Label sync's patches, then one deletionPolicy switch per deletion.
            ("patch", "volumesnapshotcontents", synced + 10),
            ("delete", "volumesnapshots", 10),
            // The crashed verify runs' leftovers: one page each, nothing to delete; and, because this run
            // deletes, one page of claims to see whether a restore from a due snapshot is in flight.
            ("list", "pods", 1),
            ("list", "persistentvolumeclaims", 2),
        ]),
        "{report:#}"
    );
    assert_eq!(names(&env.sim, NS).len(), 17);

    // Each content was written with its snapshot's final labels, so the next runs list and write nothing.
    for _ in 0..2 {
        env.sim.requests().reset();
        let out = backup_ns(
            &env,
            &["controller", "-A", "--page-size", "4", "-o", "json"],
            NOW,
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(
            env.sim.requests().snapshot(),
            requests(&[
                ("list", "volumesnapshots", 17u64.div_ceil(4)),
                ("list", "volumesnapshotcontents", 17u64.div_ceil(4)),
                ("list", "pods", 1),
                ("list", "persistentvolumeclaims", 1),
            ])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_run_writes_each_object_once_and_never_syncs_the_content_of_a_snapshot_it_deletes()
 {
    let env = start().await;
    // As the original's tooling leaves a cluster: contents without any backup-ns.sh labels, Retain everywhere.
    seed(&env);
    let legacy =
        backup_ns::retention::sync::sync_labels(&env.cluster, &Scope::All, None, 500, true, 1)
            .await
            .expect("dry-run sync");
    env.sim.requests().track_objects(true);
    let out = backup_ns(
        &env,
        &[
            "controller",
            "-A",
            "--delete-pause",
            "0s",
            "--concurrency",
            "6",
            "-o",
            "json",
        ],
        NOW,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let deleted: Vec<String> = report["retention"]["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .filter(|o| o["operation"] == "delete")
        .map(|o| o["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(deleted.len(), 10, "{report:#}");
    assert_eq!(report["sync"]["deleted_this_run"], 10, "{report:#}");
    let writes = env.sim.requests().by_object();
    let mut per_object: BTreeMap<(String, String), u64> = BTreeMap::new();
    for ((verb, resource, ns, name), n) in &writes {
        if verb == "patch" || verb == "delete" {
            *per_object
                .entry((resource.clone(), format!("{ns}/{name}")))
                .or_default() += n;
        }
    }
    assert!(!per_object.is_empty());
    for (object, n) in &per_object {
        assert_eq!(*n, 1, "{object:?} was written {n} times: {writes:?}");
    }
    for name in &deleted {
        let content = content_name(NS, name);
        assert_eq!(
            writes.get(&(
                "patch".into(),
                "volumesnapshotcontents".into(),
                String::new(),
                content.clone()
            )),
            Some(&1),
            "{content}: its one write is the deletionPolicy switch (the deletion went through), no label sync"
        );
    }
    // The old order (sync, then retention, then the next run's sync of retention's changes) spent more content
    // patches: a sync of every out-of-sync content (the doomed ones too), the policy switches, the re-sync.
    let content_patches = env.sim.requests().count("patch", "volumesnapshotcontents");
    let relabelled = report["retention"]["counts"]["patched"]
        .as_u64()
        .expect("patched");
    let old_order = legacy.patched as u64 + deleted.len() as u64 + relabelled;
    assert!(
        content_patches * 5 <= old_order * 4,
        "{content_patches} content patches, the old order {old_order}"
    );
}

#[tokio::test]
async fn a_delete_whose_answer_was_lost_is_not_mistaken_for_a_concurrent_change() {
    let env = start().await;
    seed(&env);
    // Every snapshot carries the snapshot controller's finalizer, so a delete only marks it (and moves its
    // resourceVersion): the retried delete then meets a 409 although this run's own first attempt caused it.
    for vs in env.sim.list("volumesnapshots", Some(NS)) {
        let name = vs["metadata"]["name"].as_str().expect("name").to_string();
        env.sim
            .merge_patch(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some(NS),
                &name,
                &json!({"metadata": {"finalizers": ["snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"]}}),
            )
            .expect("finalizer");
    }
    env.sim.faults().add(Fault::nth(
        "delete",
        "volumesnapshots",
        1,
        FaultAction::LostAnswer,
    ));
    env.sim.requests().reset();
    let report = apply(
        &env.cluster,
        &options(Scope::Namespace(NS.into()), Options::default()),
        &clock(NOW),
    )
    .await
    .expect("apply");
    assert_eq!(report.counts.deleted, 10, "{}", report.render_text());
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| !matches!(o.status, Status::Deferred { .. } | Status::Failed { .. })),
        "{}",
        report.render_text()
    );
    let r = env.sim.requests();
    assert_eq!(r.count("delete", "volumesnapshots"), 11, "one retry");
    assert_eq!(
        r.count("get", "volumesnapshots"),
        1,
        "one read tells the retried 409 apart"
    );
    assert_eq!(
        r.count("patch", "volumesnapshotcontents"),
        10,
        "no policy switched back: {:?}",
        r.snapshot()
    );
    for vs in env.sim.list("volumesnapshots", Some(NS)) {
        if vs["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let name = vs["metadata"]["name"].as_str().expect("name");
        let content = env
            .sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshotcontents",
                None,
                &content_name(NS, name),
            )
            .expect("content");
        assert_eq!(
            content["spec"]["deletionPolicy"], "Delete",
            "{name} is being deleted: its storage snapshot must go with it"
        );
    }
}

#[tokio::test]
async fn a_content_changed_since_the_list_costs_one_refused_patch_and_keeps_its_snapshot() {
    let env = start().await;
    seed(&env);
    let doomed: Vec<String> = env
        .sim
        .list("volumesnapshots", Some(NS))
        .iter()
        .filter(|v| !v["metadata"]["labels"]["backup-ns.sh/delete-after"].is_null())
        .filter(|v| !v["metadata"]["labels"]["backup-ns.sh/retain"].is_null())
        .filter_map(|v| v["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(doomed.len(), 10);
    let uid_of = |name: &str| {
        env.sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some(NS),
                name,
            )
            .expect("snapshot")["metadata"]["uid"]
            .clone()
    };
    let bind = |snapshot: &str, uid: Value| {
        env.sim
            .merge_patch(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshotcontents",
                None,
                &content_name(NS, snapshot),
                &json!({"spec": {"volumeSnapshotRef": {"uid": uid}}}),
            )
            .expect("content patched");
    };
    // Two contents record their snapshot's uid, as the snapshot controller writes it; a third is bound to
    // another object of the same name (a recreated snapshot): its policy switch must be refused.
    bind(&doomed[0], uid_of(&doomed[0]));
    bind(&doomed[1], uid_of(&doomed[1]));
    bind(&doomed[2], json!("uid-of-a-recreated-snapshot"));
    env.sim.requests().reset();
    let report = apply(
        &env.cluster,
        &options(Scope::Namespace(NS.into()), Options::default()),
        &clock(NOW),
    )
    .await
    .expect("apply");
    let status = |name: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.status.clone())
    };
    assert_eq!(status(&doomed[0]), Some(Status::Applied));
    assert_eq!(status(&doomed[1]), Some(Status::Applied));
    assert!(
        matches!(status(&doomed[2]), Some(Status::Deferred { ref reason, .. }) if reason.contains("changed since the list")),
        "{}",
        report.render_text()
    );
    assert!(names(&env.sim, NS).contains(&doomed[2]));
    let r = env.sim.requests();
    assert_eq!(r.count("patch", "volumesnapshotcontents"), 10);
    assert_eq!(
        r.count("delete", "volumesnapshots"),
        9,
        "{:?}",
        r.snapshot()
    );
    // The refused switch costs one read, which shows the content bound elsewhere: not sent again.
    assert_eq!(r.count("get", "volumesnapshotcontents"), 1);
}
