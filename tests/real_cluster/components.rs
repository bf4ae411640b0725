//! Kubernetes' own components on their own: the pinned release serves, claims are provisioned by the real
//! provisioner, snapshotted, listed by backup-ns, restored and group-snapshotted by the real snapshot stack, and
//! `scripts/cluster down` stops exactly what `up` started.

use crate::cluster::{RealCluster, claim};
use std::io::Write;
use std::process::Command;

/// The Kubernetes release that tools/k8s/control-plane pins.
fn pinned_kubernetes() -> String {
    let go_mod =
        std::fs::read_to_string(crate::cluster::repo().join("tools/k8s/control-plane/go.mod"))
            .expect("reading tools/k8s/control-plane/go.mod");
    go_mod
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("k8s.io/kubernetes ")
                .and_then(|v| v.split_whitespace().next())
                .map(str::to_owned)
        })
        .expect("tools/k8s/control-plane/go.mod requires k8s.io/kubernetes")
}

/// Whether a process exists and is not a zombie (an exited process that its parent has not reaped yet).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

#[test]
fn claims_are_provisioned_snapshotted_listed_restored_and_group_snapshotted_by_the_real_components()
{
    let cluster = RealCluster::shared();
    let version = cluster.kubectl(&["version", "-o", "json"]);
    let version: serde_json::Value =
        serde_json::from_str(&version).expect("kubectl version -o json");
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        pinned_kubernetes().as_str()
    );

    let ns = "components";
    cluster.kubectl(&["create", "namespace", ns]);
    cluster.apply(&claim(ns, "data", None));
    let bound = cluster.wait_for(ns, "pvc/data", "{.status.phase}", "Bound");
    let _ = writeln!(std::io::stderr(), "pvc/data Bound after {bound:?}");

    // No kubelet mounts the volume: write into the driver's directory for it, as the node agent will.
    let volume_dir = cluster.volume_dir(ns, "data");
    std::fs::write(volume_dir.join("dump.sql"), "-- the dump\n")
        .expect("writing into the volume's directory");

    cluster.apply(&format!(
        "apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: data-first
  namespace: {ns}
  labels: {{backup-ns.sh/retain: days, backup-ns.sh/type: adhoc}}
spec:
  source: {{persistentVolumeClaimName: data}}
"
    ));
    let ready = cluster.wait_for(
        ns,
        "volumesnapshot/data-first",
        "{.status.readyToUse}",
        "true",
    );
    let _ = writeln!(
        std::io::stderr(),
        "volumesnapshot/data-first ready after {ready:?}"
    );
    let content = cluster.kubectl(&[
        "-n",
        ns,
        "get",
        "volumesnapshot/data-first",
        "-o",
        "jsonpath={.status.boundVolumeSnapshotContentName}",
    ]);
    let class = cluster.kubectl(&[
        "get",
        "volumesnapshotcontent",
        &content,
        "-o",
        "jsonpath={.spec.volumeSnapshotClassName} {.spec.deletionPolicy}",
    ]);
    assert_eq!(
        class, "csi-hostpath-snapclass Retain",
        "the default VolumeSnapshotClass"
    );
    let snapshot_handle = cluster.kubectl(&[
        "get",
        "volumesnapshotcontent",
        &content,
        "-o",
        "jsonpath={.status.snapshotHandle}",
    ]);
    let tar = cluster
        .dir()
        .join("csi/snapshots")
        .join(format!("{snapshot_handle}.tar"));
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .expect("running tar -tf");
    assert!(
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .any(|l| l == "dump.sql"),
        "the driver's snapshot file {} holds dump.sql",
        tar.display()
    );

    let listed = Command::new(env!("CARGO_BIN_EXE_backup-ns"))
        .args(["list", "-n", ns, "-o", "name", "--kubeconfig"])
        .arg(cluster.kubeconfig())
        .env_remove("KUBECONFIG")
        .output()
        .expect("running backup-ns list");
    assert!(
        listed.status.success(),
        "backup-ns list failed: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "volumesnapshot.snapshot.storage.k8s.io/data-first\n"
    );

    // The real provisioner restores the driver's snapshot into a new volume.
    cluster.apply(&claim(ns, "restored", Some("data-first")));
    cluster.wait_for(ns, "pvc/restored", "{.status.phase}", "Bound");
    let restored = std::fs::read_to_string(cluster.volume_dir(ns, "restored").join("dump.sql"))
        .expect("the restored volume holds dump.sql");
    assert_eq!(restored, "-- the dump\n");

    // Both claims as one VolumeGroupSnapshot of the default class: the driver cuts one tar per volume.
    cluster.kubectl(&[
        "-n",
        ns,
        "label",
        "pvc",
        "data",
        "restored",
        "app=components",
    ]);
    cluster.apply(&format!(
        "apiVersion: groupsnapshot.storage.k8s.io/v1
kind: VolumeGroupSnapshot
metadata: {{name: both, namespace: {ns}}}
spec: {{source: {{selector: {{matchLabels: {{app: components}}}}}}}}
"
    ));
    cluster.wait_for(
        ns,
        "volumegroupsnapshot/both",
        "{.status.readyToUse}",
        "true",
    );
    let group_content = cluster.kubectl(&[
        "-n",
        ns,
        "get",
        "volumegroupsnapshot/both",
        "-o",
        "jsonpath={.status.boundVolumeGroupSnapshotContentName}",
    ]);
    let group = cluster.kubectl(&[
        "get",
        "volumegroupsnapshotcontent",
        &group_content,
        "-o",
        "jsonpath={.spec.volumeGroupSnapshotClassName} {.status.volumeGroupSnapshotHandle}",
    ]);
    let (group_class, group_handle) = group.split_once(' ').expect("class and handle");
    assert_eq!(
        group_class, "csi-hostpath-groupsnapclass",
        "the default VolumeGroupSnapshotClass"
    );
    let member_tars = std::fs::read_dir(cluster.dir().join("csi/snapshots"))
        .expect("reading the driver's snapshots")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{group_handle}-"))
        })
        .count();
    assert_eq!(
        member_tars, 2,
        "one snapshot file per claim of group {group_handle}"
    );
}

#[test]
fn down_stops_every_process_that_up_started_and_nothing_else() {
    let cluster = RealCluster::up();
    let pids = cluster.pids();
    assert_eq!(
        pids.len(),
        9,
        "etcd, three control-plane components, the driver, the snapshot controller, two sidecars and the node \
         agent: {pids:?}"
    );
    let out = cluster.down();
    assert!(
        out.status.success(),
        "scripts/cluster down failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for pid in pids {
        assert!(!running(pid), "pid {pid} still runs after `down`");
    }
}

/// Bad usage of `scripts/cluster` exits 2 with a line naming the problem, and starts nothing: the state dir gets no
/// pid files, no logs.
#[test]
fn bad_usage_exits_2_naming_the_problem_and_starts_nothing() {
    let state = tempfile::tempdir().expect("temp dir");
    let dir = state.path().to_str().expect("utf8 path");
    for (args, says) in [
        (vec!["up"], "up needs --state DIR"),
        (
            vec![
                "up",
                "--state",
                dir,
                "--only-api",
                "--run-image",
                "busybox=host",
            ],
            "--run-image maps images for the node agent, which --only-api does not start",
        ),
        (
            vec!["up", "--state", dir, "--run-image", "busybox"],
            "--run-image 'busybox': want IMAGE=PROGRAM",
        ),
        (
            vec!["up", "--state", dir, "--fast"],
            "unknown argument '--fast'",
        ),
    ] {
        let out = Command::new(crate::cluster::script())
            .args(&args)
            .output()
            .expect("running scripts/cluster");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(
            std::fs::read_dir(state.path())
                .expect("the state dir")
                .count(),
            0,
            "{args:?} wrote into the state dir"
        );
    }
}
