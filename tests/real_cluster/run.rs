//! `backup-ns run` with snapshot-only plans (no hooks: no pod runs yet) against the real apiserver: the real
//! snapshot controller, csi-snapshotter and hostpath driver make the snapshots ready, the driver's files hold the
//! volume's data, the labels are set, and the Events show in both events APIs through kubectl.

use crate::cluster::{RealCluster, plan_file, text};
use serde_json::Value;

/// The reasons of the Events on `claim` in `ns`, read through core/v1 and through events.k8s.io/v1 (the real
/// apiserver serves one store under both APIs, with `involvedObject` renamed `regarding`).
fn event_reasons(cluster: &RealCluster, ns: &str, claim: &str) -> (Vec<String>, Vec<String>) {
    let reasons = |resource: &str, object: &str| -> Vec<String> {
        let list = cluster.get_json(&["-n", ns, resource]);
        list["items"]
            .as_array()
            .expect("an events list")
            .iter()
            .filter(|e| e[object]["kind"] == "PersistentVolumeClaim" && e[object]["name"] == claim)
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .collect()
    };
    (
        reasons("events", "involvedObject"),
        reasons("events.v1.events.k8s.io", "regarding"),
    )
}

fn labels(object: &Value) -> &serde_json::Map<String, Value> {
    object["metadata"]["labels"]
        .as_object()
        .unwrap_or_else(|| panic!("no labels on {object}"))
}

#[test]
fn a_snapshot_only_plan_is_snapshotted_ready_labelled_and_reported_in_both_events_apis() {
    let cluster = RealCluster::shared();
    let ns = "run-single";
    cluster.namespace_with_claims(ns, &["data"]);
    std::fs::write(cluster.volume_dir(ns, "data").join("dump.sql"), "-- rows\n")
        .expect("writing into the volume's directory");
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = plan_file(dir.path(), "app", ns, &["data"], false);

    let out = cluster.backup_ns(&["run", plan.to_str().expect("utf8 path")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let list = cluster.get_json(&["-n", ns, "volumesnapshots"]);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "one snapshot per target: {list:#}");
    let vs = &items[0];
    let name = vs["metadata"]["name"].as_str().expect("name");
    assert!(name.starts_with("data-"), "{name} follows {{pvc}}-...");
    assert_eq!(
        vs["status"]["readyToUse"], true,
        "ready through the real snapshot controller"
    );
    let labels = labels(vs);
    for (key, want) in [
        ("backup-ns.sh/pvc", "data"),
        ("backup-ns.sh/plan", "app"),
        ("backup-ns.sh/type", "cronjob"),
        ("backup-ns.sh/retain", "daily_weekly_monthly"),
    ] {
        assert_eq!(
            labels.get(key),
            Some(&Value::from(want)),
            "{key}: {labels:?}"
        );
    }
    // The first snapshot of the PVC takes every tier of its period.
    for tier in ["daily", "weekly", "monthly"] {
        assert!(
            labels.contains_key(&format!("backup-ns.sh/{tier}")),
            "{tier}: {labels:?}"
        );
    }
    let (_, handle) = cluster.content_of(ns, name);
    assert!(
        cluster
            .snapshot_entries(&handle)
            .iter()
            .any(|e| e == "dump.sql"),
        "the driver's snapshot file holds the volume's data"
    );

    let (core, events_v1) = event_reasons(cluster, ns, "data");
    assert!(
        core.iter().any(|r| r == "BackupSucceeded"),
        "core/v1 Events on pvc/data: {core:?}"
    );
    assert!(
        events_v1.iter().any(|r| r == "BackupSucceeded"),
        "events.k8s.io/v1 Events on pvc/data: {events_v1:?}"
    );
    // kubectl's own table shows it as a user reads it.
    let table = cluster.kubectl(&["-n", ns, "get", "events"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("BackupSucceeded") && l.contains("persistentvolumeclaim/data")),
        "{table}"
    );
}

#[test]
fn a_two_claim_plan_in_group_mode_is_cut_as_one_volume_group_snapshot() {
    let cluster = RealCluster::shared();
    let ns = "run-group";
    cluster.namespace_with_claims(ns, &["data", "logs"]);
    for claim in ["data", "logs"] {
        std::fs::write(
            cluster.volume_dir(ns, claim).join(format!("{claim}.txt")),
            claim,
        )
        .expect("writing into the volume's directory");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = plan_file(dir.path(), "both", ns, &["data", "logs"], true);

    let out = cluster.backup_ns(
        &["run", plan.to_str().expect("utf8 path"), "-o", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let groups = cluster.get_json(&["-n", ns, "volumegroupsnapshots"]);
    let groups = groups["items"].as_array().expect("items");
    assert_eq!(groups.len(), 1, "one VolumeGroupSnapshot: {groups:?}");
    let group = &groups[0];
    let group_name = group["metadata"]["name"].as_str().expect("name");
    assert_eq!(group["status"]["readyToUse"], true, "{group:#}");
    assert_eq!(
        labels(group).get("backup-ns.sh/plan"),
        Some(&Value::from("both"))
    );
    // The group's selector matches exactly the plan's claims.
    for claim in ["data", "logs"] {
        let pvc = cluster.get_json(&["-n", ns, "pvc", claim]);
        assert_eq!(
            labels(&pvc).get("backup-ns.sh/group"),
            Some(&Value::from(group_name)),
            "pvc/{claim}"
        );
    }

    // The snapshot controller made one member VolumeSnapshot per claim; backup-ns labelled each for its claim,
    // and the driver cut one file per volume holding that volume's data.
    let members = cluster.get_json(&["-n", ns, "volumesnapshots"]);
    let members = members["items"].as_array().expect("items");
    assert_eq!(members.len(), 2, "{members:?}");
    let mut claims: Vec<String> = Vec::new();
    for member in members {
        let name = member["metadata"]["name"].as_str().expect("name");
        assert_eq!(member["status"]["readyToUse"], true, "{member:#}");
        let claim = member["spec"]["source"]["persistentVolumeClaimName"]
            .as_str()
            .expect("member's source claim");
        let labels = labels(member);
        assert_eq!(labels.get("backup-ns.sh/pvc"), Some(&Value::from(claim)));
        assert_eq!(
            labels.get("backup-ns.sh/retain"),
            Some(&Value::from("daily_weekly_monthly"))
        );
        let (_, handle) = cluster.content_of(ns, name);
        assert!(
            cluster
                .snapshot_entries(&handle)
                .contains(&format!("{claim}.txt")),
            "{name}'s file holds {claim}.txt"
        );
        claims.push(claim.to_owned());
    }
    claims.sort();
    assert_eq!(claims, ["data", "logs"]);

    for claim in ["data", "logs"] {
        let (core, events_v1) = event_reasons(cluster, ns, claim);
        assert!(
            core.contains(&"BackupSucceeded".to_owned())
                && events_v1.contains(&"BackupSucceeded".to_owned()),
            "pvc/{claim}: core/v1 {core:?}, events.k8s.io/v1 {events_v1:?}"
        );
    }
}
