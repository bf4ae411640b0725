//! The operator commands against the real cluster: `list -A` across namespaces, `restore` to a new claim that the
//! real provisioner fills from the driver's snapshot, and `delete`, whose storage snapshot goes too although the
//! default class says `Retain`.

use crate::cluster::{RealCluster, eventually, plan_file, text};
use serde_json::Value;

/// Runs the snapshot-only plan `app` of `ns/data` once; returns the new snapshot's name.
fn backup(cluster: &RealCluster, ns: &str, dir: &std::path::Path) -> String {
    let before = cluster.snapshot_names(ns);
    let plan = plan_file(dir, "app", ns, &["data"], false);
    let out = cluster.backup_ns(&["run", plan.to_str().expect("utf8 path")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut new: Vec<String> = cluster
        .snapshot_names(ns)
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    new.remove(0)
}

#[test]
fn list_all_namespaces_restore_to_a_new_claim_and_delete_with_the_storage_snapshot() {
    let cluster = RealCluster::shared();
    let (a, b) = ("operator-a", "operator-b");
    let dir = tempfile::tempdir().expect("temp dir");
    for ns in [a, b] {
        cluster.namespace_with_claims(ns, &["data"]);
        std::fs::write(cluster.volume_dir(ns, "data").join("dump.sql"), ns)
            .expect("writing into the volume's directory");
    }
    let first = backup(cluster, a, dir.path());
    let second = backup(cluster, a, dir.path());
    let other = backup(cluster, b, dir.path());

    // list -A: every managed snapshot of both namespaces, with its namespace, oldest first.
    let out = cluster.backup_ns(&["list", "-A", "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let list: Value = serde_json::from_slice(&out.stdout).expect("list -o json");
    let ours: Vec<(String, String)> = list["items"]
        .as_array()
        .expect("a List")
        .iter()
        .map(|i| {
            (
                i["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                i["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .filter(|(ns, _)| ns == a || ns == b)
        .collect();
    let mut want = vec![
        (a.to_owned(), first.clone()),
        (a.to_owned(), second.clone()),
        (b.to_owned(), other.clone()),
    ];
    want.sort();
    let mut got = ours.clone();
    got.sort();
    assert_eq!(got, want, "{ours:?}");
    let table = cluster.backup_ns(&["list", "-A"], &[]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("NAMESPACE"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(b) && l.contains(&other)),
        "{table}"
    );

    // restore: the real provisioner restores the driver's snapshot into the new claim.
    let out = cluster.backup_ns(
        &[
            "restore",
            &first,
            "--pvc",
            "restored",
            "-n",
            a,
            "--wait",
            "--timeout",
            "90s",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pvc = cluster.get_json(&["-n", a, "pvc", "restored"]);
    assert_eq!(pvc["status"]["phase"], "Bound", "{pvc:#}");
    assert_eq!(pvc["spec"]["dataSource"]["name"], first.as_str());
    let restored = std::fs::read_to_string(cluster.volume_dir(a, "restored").join("dump.sql"))
        .expect("the restored volume holds dump.sql");
    assert_eq!(restored, a);

    // delete: the content is switched to Delete first, so the snapshot controller has the driver remove the file.
    let (content, handle) = cluster.content_of(a, &first);
    let out = cluster.backup_ns(&["delete", &first, "-n", a, "--yes"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    eventually(&format!("{a}/{first} and its content gone"), || {
        let vs = cluster.kubectl_output(&["-n", a, "get", "volumesnapshot", &first], "");
        let vsc = cluster.kubectl_output(&["get", "volumesnapshotcontent", &content], "");
        (!vs.status.success() && !vsc.status.success()).then_some(())
    });
    let file = cluster.snapshot_file(&handle);
    eventually(
        &format!("the driver's file {} removed", file.display()),
        || (!file.exists()).then_some(()),
    );
    assert_eq!(cluster.snapshot_names(a), [second]);
    assert_eq!(cluster.snapshot_names(b), [other]);
}
