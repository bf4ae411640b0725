//! Retention safety rules for the snapshots one run took together:
//! - the members of a VolumeGroupSnapshot are deleted only together, through their group (one delete of the
//!   group; the snapshot controller takes the members), never one alone: a pin, a member not yet due, or a
//!   restore in flight from any member keeps the whole group;
//! - the tier labels of one run's snapshots (same plan and run id) are decided together, even when the PVCs'
//!   histories differ.
//!
//! Groups and members are seeded as the snapshot controller leaves them: members owned by their group, labelled
//! `groupsnapshot.storage.k8s.io/volumeGroupSnapshotName`, bound to their own contents.

use crate::cli::{backup_ns, text};
use crate::support::{Env, Seed, labels, names, namespace_doc, options, seed_docs, start, utc};
use backup_ns::retention::Options;
use backup_ns::retention::apply::{Status, apply_listed, apply_pvcs, list_scope};
use backup_ns::vocab::scope::Scope;
use serde_json::{Value, json};

const NS: &str = "shop";
const NOW: &str = "2025-03-01T04:30:00Z";
const GROUP: &str = "shop-g1";

/// Loads a ready VolumeGroupSnapshot bound to a group content with the `Delete` policy; returns its uid.
fn seed_group(env: &Env, name: &str) -> String {
    let content = format!("groupsnapcontent-{name}");
    let vgs = json!({
        "apiVersion": "groupsnapshot.storage.k8s.io/v1", "kind": "VolumeGroupSnapshot",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"source": {"selector": {"matchLabels": {"app": "shop"}}}},
        "status": {"boundVolumeGroupSnapshotContentName": content, "readyToUse": true,
                   "creationTime": "2025-02-01T00:30:00Z"}
    });
    let loaded = env.sim.apply_yaml(&vgs.to_string()).expect("group loads");
    let uid = loaded[0]["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let gsc = json!({
        "apiVersion": "groupsnapshot.storage.k8s.io/v1", "kind": "VolumeGroupSnapshotContent",
        "metadata": {"name": content},
        "spec": {"deletionPolicy": "Delete", "driver": "hostpath.csi.k8s.io",
                 "source": {"volumeHandles": ["vol-shop-data", "vol-shop-logs"]},
                 "volumeGroupSnapshotRef": {"apiVersion": "groupsnapshot.storage.k8s.io/v1",
                     "kind": "VolumeGroupSnapshot", "name": name, "namespace": NS, "uid": uid}},
        "status": {"readyToUse": true}
    });
    env.sim
        .apply_yaml(&gsc.to_string())
        .expect("group content loads");
    uid
}

type Labels<'a> = &'a [(&'a str, &'a str)];

/// One seeded snapshot; `group`: (name, uid) of the group it is a member of; `run`: its run id (plan `shop`).
struct Snap<'a> {
    name: &'a str,
    pvc: &'a str,
    labels: Labels<'a>,
    created: &'a str,
    group: Option<(&'a str, &'a str)>,
    run: Option<&'a str>,
    retention: Option<&'a str>,
    /// Pinned by hand: no `backup-ns.sh/retain` label.
    pinned: bool,
}

impl<'a> Snap<'a> {
    /// A snapshot of no group and no run, managed.
    fn new(name: &'a str, pvc: &'a str, labels: Labels<'a>, created: &'a str) -> Self {
        Snap {
            name,
            pvc,
            labels,
            created,
            group: None,
            run: None,
            retention: None,
            pinned: false,
        }
    }
}

fn seed(env: &Env, snaps: &[Snap<'_>]) {
    let mut yaml = namespace_doc(NS);
    for s in snaps {
        let mut l = labels(&[
            ("backup-ns.sh/retain", "daily_weekly_monthly"),
            ("backup-ns.sh/pvc", s.pvc),
            ("backup-ns.sh/plan", "shop"),
        ]);
        l.extend(labels(s.labels));
        if s.pinned {
            l.remove("backup-ns.sh/retain");
        }
        let docs = seed_docs(&Seed {
            namespace: NS,
            name: s.name,
            pvc: s.pvc,
            labels: l,
            retention: s.retention,
            created: utc(s.created),
            policy: "Delete",
        });
        for doc in docs.split("\n---\n") {
            let mut obj: Value = serde_json::from_str(doc.trim()).expect("seed JSON");
            if obj["kind"] == "VolumeSnapshot" {
                if let Some(id) = s.run {
                    obj["metadata"]["annotations"]["backup-ns.sh/run-id"] = json!(id);
                }
                if let Some((group, uid)) = s.group {
                    obj["metadata"]["labels"]["groupsnapshot.storage.k8s.io/volumeGroupSnapshotName"] =
                        json!(group);
                    obj["metadata"]["ownerReferences"] = json!([{
                        "apiVersion": "groupsnapshot.storage.k8s.io/v1", "kind": "VolumeGroupSnapshot",
                        "name": group, "uid": uid, "controller": true}]);
                    obj["status"]["volumeGroupSnapshotName"] = json!(group);
                    // A member's source is its content, not the claim.
                    obj["spec"]["source"] = json!({"volumeSnapshotContentName": obj["status"]["boundVolumeSnapshotContentName"]});
                }
            }
            yaml.push_str("---\n");
            yaml.push_str(&obj.to_string());
            yaml.push('\n');
        }
    }
    env.sim.apply_yaml(&yaml).expect("snapshots load");
}

/// A group of two members, both due unless `logs_labels` says otherwise, and a newer daily backup of each PVC.
async fn group_env(logs_labels: &[(&str, &str)], logs_retain: bool) -> Env {
    let env = start().await;
    env.sim.apply_yaml(&namespace_doc(NS)).unwrap();
    let uid = seed_group(&env, GROUP);
    let due = [("backup-ns.sh/delete-after", "2025-02-10")];
    let newest = [("backup-ns.sh/daily", "2025-02-28")];
    seed(
        &env,
        &[
            Snap {
                group: Some((GROUP, &uid)),
                ..Snap::new("data-g1", "data", &due, "2025-02-01T00:30:00Z")
            },
            Snap {
                group: Some((GROUP, &uid)),
                pinned: !logs_retain,
                ..Snap::new("logs-g1", "logs", logs_labels, "2025-02-01T00:30:00Z")
            },
            Snap::new("data-new", "data", &newest, "2025-02-28T00:30:00Z"),
            Snap::new("logs-new", "logs", &newest, "2025-02-28T00:30:00Z"),
        ],
    );
    env.sim.requests().track_objects(true);
    env
}

/// Every DELETE sent for a VolumeSnapshot in the namespace: never one of a group's members.
fn member_deletes(env: &Env) -> Vec<String> {
    env.sim
        .requests()
        .by_object()
        .into_iter()
        .filter(|((verb, resource, ns, name), _)| {
            verb == "delete" && resource == "volumesnapshots" && ns == NS && name.ends_with("-g1")
        })
        .map(|((_, _, _, name), _)| name)
        .collect()
}

fn group_deletes(env: &Env) -> u64 {
    env.sim
        .requests()
        .by_object()
        .into_iter()
        .filter(|((verb, resource, _, name), _)| {
            verb == "delete" && resource == "volumegroupsnapshots" && name == GROUP
        })
        .map(|(_, n)| n)
        .sum()
}

/// The namespace's snapshots once the garbage collector has taken a deleted group's members (at most 10 s).
async fn names_once_collected(env: &Env) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while names(&env.sim, NS).len() > 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    names(&env.sim, NS)
}

const PRUNE: [&str; 6] = ["prune", "-A", "--delete-pause", "0s", "-o", "json"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_members_are_all_due_goes_whole_through_one_delete_of_the_group() {
    let env = group_env(&[("backup-ns.sh/delete-after", "2025-02-10")], true).await;

    // Dry run: the plan names the group and deletes nothing.
    let dry = backup_ns(&env, &["prune", "-A", "--dry-run"], NOW).await;
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    let stdout = String::from_utf8_lossy(&dry.stdout);
    for member in ["data-g1", "logs-g1"] {
        assert!(
            stdout.contains(&format!(
                "shop/{member} [delete] delete with VolumeGroupSnapshot shop-g1: dry-run"
            )),
            "{stdout}"
        );
    }
    // `retention plan` gives the reason, naming every member.
    let plan = backup_ns(&env, &["retention", "plan", "-A"], NOW).await;
    let stdout = String::from_utf8_lossy(&plan.stdout);
    assert!(
        stdout.contains(
            "deleted through VolumeGroupSnapshot shop-g1 with all 2 member(s): data-g1, logs-g1"
        ),
        "{}",
        text(&plan)
    );
    assert_eq!(names(&env.sim, NS).len(), 4);
    assert_eq!(group_deletes(&env), 0);

    let out = backup_ns(&env, &PRUNE, NOW).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    for member in ["data-g1", "logs-g1"] {
        let outcome = report["outcomes"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["name"] == member))
            .unwrap_or_else(|| panic!("an outcome for {member}: {report:#}"));
        assert_eq!(outcome["status"], "applied", "{outcome:#}");
        assert_eq!(outcome["group"], GROUP, "{outcome:#}");
    }
    assert_eq!(group_deletes(&env), 1, "one delete of the group");
    assert_eq!(
        member_deletes(&env),
        Vec::<String>::new(),
        "no member deleted on its own"
    );
    // The snapshot controller took the members, and the group content with its Delete policy.
    assert_eq!(names_once_collected(&env).await, ["data-new", "logs-new"]);
    assert!(env.sim.list("volumegroupsnapshots", Some(NS)).is_empty());
    assert!(env.sim.list("volumegroupsnapshotcontents", None).is_empty());
}

/// Table: what keeps one member keeps the other, due, member too; nothing of the group is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_never_deleted_alone() {
    let not_due = [("backup-ns.sh/weekly", "2025-w05")];
    let due = [("backup-ns.sh/delete-after", "2025-02-10")];
    let cases: [(&str, Labels<'_>, bool, &str); 2] = [
        (
            "the other member is not due",
            &not_due,
            true,
            "not due for deletion",
        ),
        (
            "the other member is pinned",
            &due,
            false,
            "pinned: no backup-ns.sh/retain label",
        ),
    ];
    for (case, logs_labels, logs_retain, why) in cases {
        let env = group_env(logs_labels, logs_retain).await;
        let out = backup_ns(&env, &PRUNE, NOW).await;
        assert_eq!(out.status.code(), Some(0), "{case}: {}", text(&out));
        assert_eq!(names(&env.sim, NS).len(), 4, "{case}");
        assert_eq!(group_deletes(&env), 0, "{case}");
        assert_eq!(member_deletes(&env), Vec::<String>::new(), "{case}");
        let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
        let kept = report["plan"]["decisions"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["name"] == "data-g1"))
            .unwrap_or_else(|| panic!("{case}: a decision on data-g1: {report:#}"));
        assert_eq!(
            kept["problem"]["kind"], "group_member_kept",
            "{case}: {kept:#}"
        );
        assert_eq!(kept["problem"]["member"], "logs-g1", "{case}: {kept:#}");
        assert_eq!(kept["group"], GROUP, "{case}: {kept:#}");
        assert!(
            kept["reason"].as_str().unwrap().contains(why),
            "{case}: {kept:#}"
        );
        // The text report names the snapshot, the group, and how to look at the members.
        let out = backup_ns(&env, &["prune", "-A", "--delete-pause", "0s"], NOW).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(
                "REPORT shop/data-g1: not deleted: member of VolumeGroupSnapshot shop-g1"
            ) && stdout.contains("-l groupsnapshot.storage.k8s.io/volumeGroupSnapshotName=shop-g1"),
            "{case}: {stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_from_one_member_holds_the_whole_group() {
    let env = group_env(&[("backup-ns.sh/delete-after", "2025-02-10")], true).await;
    // A claim in another namespace restores from logs-g1 (kube-sim leaves a cross-namespace restore Pending).
    env.sim
        .apply_yaml(&format!(
            "{}---\n{}",
            namespace_doc("staging"),
            "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: restore-1, namespace: staging}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  dataSourceRef: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: logs-g1, namespace: shop}
"
        ))
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let out = backup_ns(&env, &PRUNE, NOW).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(names(&env.sim, NS).len(), 4);
    assert_eq!(group_deletes(&env), 0);
    assert_eq!(member_deletes(&env), Vec::<String>::new());
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let data = report["outcomes"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == "data-g1"))
        .unwrap_or_else(|| panic!("an outcome for data-g1: {report:#}"));
    assert_eq!(data["status"], "deferred", "{data:#}");
    assert!(
        data["reason"]
            .as_str()
            .unwrap()
            .contains("claim staging/restore-1 is being restored from logs-g1, a member of its VolumeGroupSnapshot shop-g1"),
        "{data:#}"
    );

    // The restore is over: the next pass deletes the group whole.
    env.sim
        .delete("v1", "persistentvolumeclaims", Some("staging"), "restore-1")
        .unwrap();
    let out = backup_ns(&env, &PRUNE, NOW).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(group_deletes(&env), 1);
    assert_eq!(member_deletes(&env), Vec::<String>::new());
}

/// Run 1 took data alone; run 2 both PVCs; logs missed run 3. Weekly keeps 1: per PVC, data-r2 would lose its
/// weekly label and be marked while logs-r2 keeps weekly. Decided together, run 2 keeps weekly on both.
fn seed_diverging_runs(env: &Env) {
    let weekly_one = Some(r#"{"daily":0,"weekly":1,"monthly":0}"#);
    let snap =
        |name: &'static str, pvc: &'static str, week: &'static str, created: &'static str, run| {
            Snap {
                name,
                pvc,
                labels: match week {
                    "w01" => &[("backup-ns.sh/weekly", "2025-w01")],
                    "w02" => &[("backup-ns.sh/weekly", "2025-w02")],
                    _ => &[("backup-ns.sh/weekly", "2025-w03")],
                },
                created,
                group: None,
                run: Some(run),
                retention: weekly_one,
                pinned: false,
            }
        };
    seed(
        env,
        &[
            snap("data-r1", "data", "w01", "2025-01-01T00:30:00Z", "r1"),
            snap("data-r2", "data", "w02", "2025-01-08T00:30:00Z", "r2"),
            snap("logs-r2", "logs", "w02", "2025-01-08T00:30:00Z", "r2"),
            snap("data-r3", "data", "w03", "2025-01-15T00:30:00Z", "r3"),
        ],
    );
}

/// Run 2's snapshots both still carry weekly and neither is marked.
fn run_2_keeps_weekly_on_both_pvcs(env: &Env) {
    for name in ["data-r2", "logs-r2"] {
        let l = labels_of(env, name);
        assert_eq!(l["backup-ns.sh/weekly"], "2025-w02", "{name}: {l:#}");
        assert!(
            l.get("backup-ns.sh/delete-after").is_none(),
            "{name}: {l:#}"
        );
    }
}

fn labels_of(env: &Env, name: &str) -> Value {
    env.sim
        .list("volumesnapshots", Some(NS))
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .map(|o| o["metadata"]["labels"].clone())
        .unwrap_or_else(|| panic!("{name} exists"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tiers_of_one_runs_snapshots_are_decided_together() {
    let env = start().await;
    seed_diverging_runs(&env);
    let now = "2025-01-15T12:00:00Z";
    // Tier labels first (`retention apply`), then marks (`prune`), as the controller runs them.
    let tiers = backup_ns(&env, &["retention", "apply", "-A", "-o", "json"], now).await;
    assert_eq!(tiers.status.code(), Some(0), "{}", text(&tiers));
    let report: Value = serde_json::from_slice(&tiers.stdout).expect("a JSON report");
    let kept = report["plan"]["decisions"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "data-r2"))
        .unwrap_or_else(|| panic!("a decision on data-r2: {report:#}"));
    assert_eq!(kept["problem"]["kind"], "kept_with_run", "{kept:#}");
    assert_eq!(kept["problem"]["member"], "logs-r2", "{kept:#}");
    let out = backup_ns(&env, &PRUNE, now).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Run 1 (data alone) lost weekly and is marked; run 2 keeps weekly on both PVCs, unmarked.
    let r1 = labels_of(&env, "data-r1");
    assert!(
        r1.get("backup-ns.sh/weekly").is_none() && r1["backup-ns.sh/delete-after"].is_string(),
        "{r1:#}\n{}",
        text(&out)
    );
    run_2_keeps_weekly_on_both_pvcs(&env);
    // A second pass changes nothing.
    for args in [&["retention", "apply", "-A", "-o", "json"][..], &PRUNE[..]] {
        let again = backup_ns(&env, args, now).await;
        let report: Value = serde_json::from_slice(&again.stdout).expect("a JSON report");
        assert_eq!(report["outcomes"], json!([]), "{args:?}: {report:#}");
    }
}

/// `run`'s retention step plans each PVC on its own (`apply_pvcs`), yet sees the other PVC's snapshots of a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_step_decides_a_runs_tiers_together_for_each_pvc() {
    let env = start().await;
    seed_diverging_runs(&env);
    let opts = options(Scope::Namespace(NS.into()), Options::default());
    let pvcs = ["data".to_string(), "logs".to_string()];
    let reports = apply_pvcs(
        &env.cluster,
        &pvcs,
        &opts,
        &crate::support::clock("2025-01-15T12:00:00Z"),
    )
    .await
    .expect("retention runs");
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.counts.failed == 0));
    run_2_keeps_weekly_on_both_pvcs(&env);
    // Each PVC's report holds only its own snapshots.
    assert!(reports[0].outcomes.iter().all(|o| o.pvc == "data"));
    assert!(reports[1].outcomes.iter().all(|o| o.pvc == "logs"));
}

/// `run`'s step plans each PVC on its own: the first PVC's pass deletes the group (with both members), the second
/// finds it gone and sends nothing for its member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_step_deletes_a_group_once_whichever_pvc_comes_first() {
    let env = group_env(&[("backup-ns.sh/delete-after", "2025-02-10")], true).await;
    let opts = options(Scope::Namespace(NS.into()), Options::default());
    let pvcs = ["logs".to_string(), "data".to_string()];
    let reports = apply_pvcs(&env.cluster, &pvcs, &opts, &crate::support::clock(NOW))
        .await
        .expect("retention runs");
    let statuses: Vec<(String, String)> = reports
        .iter()
        .flat_map(|r| r.outcomes.iter())
        .map(|o| (o.name.clone(), format!("{:?}", o.status)))
        .collect();
    assert_eq!(
        statuses,
        [
            ("logs-g1".to_string(), "Applied".to_string()),
            ("data-g1".to_string(), "Unchanged".to_string())
        ]
    );
    assert_eq!(group_deletes(&env), 1);
    assert_eq!(member_deletes(&env), Vec::<String>::new());
    assert_eq!(names_once_collected(&env).await, ["data-new", "logs-new"]);
}

/// Deleting a group carries no preconditions on its members, so each member is read once first: one pinned
/// between the list and the deletion keeps the whole group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_pinned_after_the_list_keeps_its_group() {
    let env = group_env(&[("backup-ns.sh/delete-after", "2025-02-10")], true).await;
    let opts = options(Scope::All, Options::default());
    let listed = list_scope(&env.cluster, &Scope::All, None, 500)
        .await
        .expect("list");
    // Pinned by hand right after the list.
    let mut logs = env
        .sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some(NS),
            "logs-g1",
        )
        .expect("logs-g1");
    logs["metadata"]["labels"]
        .as_object_mut()
        .expect("labels")
        .remove("backup-ns.sh/retain");
    env.sim.apply_yaml(&logs.to_string()).expect("pin applies");

    let report = apply_listed(
        &env.cluster,
        &listed,
        None,
        &opts,
        &crate::support::clock(NOW),
    )
    .await;
    for o in &report.outcomes {
        let Status::Deferred { reason, .. } = &o.status else {
            panic!("{}: {:?}", o.name, o.status);
        };
        assert!(
            reason.contains("member logs-g1 of VolumeGroupSnapshot shop-g1 changed since the list"),
            "{reason}"
        );
    }
    assert_eq!(report.outcomes.len(), 2);
    assert_eq!(group_deletes(&env), 0);
    assert_eq!(member_deletes(&env), Vec::<String>::new());
    assert_eq!(names(&env.sim, NS).len(), 4);
}
