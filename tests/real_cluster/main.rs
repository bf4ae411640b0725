//! The product against the real thing: `scripts/cluster up` starts Kubernetes' own control plane and the CSI
//! snapshot stack built from the modules pinned in tools/k8s/, and these tests drive it with the real kubectl and
//! the built backup-ns binary.
//!
//! The first `up` on a machine builds the binaries (many minutes; progress goes to stderr). Missing tools fail the
//! test with the line that installs them; nothing is skipped.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A cluster started by `scripts/cluster up` in a temp dir; dropping it runs `scripts/cluster down`, so a failed
/// assertion does not leave processes behind.
struct RealCluster {
    state: tempfile::TempDir,
}

impl RealCluster {
    fn up() -> Self {
        require_tools();
        let state = tempfile::Builder::new()
            .prefix("backup-ns-cluster-")
            .tempdir()
            .expect("creating the cluster's state dir");
        let mut child = Command::new(script())
            .args(["up", "--state"])
            .arg(state.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running scripts/cluster up");
        // Relay every line as it comes (a cold build takes long), outside the test harness's capture.
        let mut last = String::new();
        for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
            let line = line.expect("reading scripts/cluster output");
            let _ = writeln!(std::io::stderr(), "{line}");
            last = line;
        }
        let status = child.wait().expect("waiting for scripts/cluster up");
        let cluster = RealCluster { state };
        assert!(
            status.success(),
            "scripts/cluster up failed ({status}); logs in {}",
            cluster.dir().join("logs").display()
        );
        assert_eq!(
            last, "cluster ready",
            "the last line of `scripts/cluster up`"
        );
        cluster
    }

    fn dir(&self) -> &Path {
        self.state.path()
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir().join("kubeconfig")
    }

    /// Runs kubectl as cluster-admin and returns its stdout; fails the test with stderr on a non-zero exit.
    fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_with_stdin(args, "")
    }

    fn kubectl_with_stdin(&self, args: &[&str], stdin: &str) -> String {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kubectl");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(stdin.as_bytes())
            .expect("writing kubectl's stdin");
        let out = child.wait_with_output().expect("waiting for kubectl");
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
    }

    fn apply(&self, manifest: &str) {
        self.kubectl_with_stdin(&["apply", "-f", "-"], manifest);
    }

    /// Polls a jsonpath of one object until it equals `want`; a timeout names the object, the field and the
    /// last value seen.
    fn wait_for(&self, ns: &str, object: &str, jsonpath: &str, want: &str) -> Duration {
        let started = Instant::now();
        let mut seen = String::new();
        while started.elapsed() < Duration::from_secs(90) {
            seen = self.kubectl(&[
                "-n",
                ns,
                "get",
                object,
                "-o",
                &format!("jsonpath={jsonpath}"),
            ]);
            if seen == want {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("{ns}/{object}: {jsonpath} is {seen:?} after 90s, want {want:?}");
    }

    /// The hostpath driver's directory for a bound claim's volume; with no kubelet, this is what a pod would mount.
    fn volume_dir(&self, ns: &str, claim: &str) -> PathBuf {
        let pv = self.kubectl(&[
            "-n",
            ns,
            "get",
            "pvc",
            claim,
            "-o",
            "jsonpath={.spec.volumeName}",
        ]);
        let handle = self.kubectl(&["get", "pv", &pv, "-o", "jsonpath={.spec.csi.volumeHandle}"]);
        self.dir().join("csi/volumes").join(handle)
    }

    /// The pids that `up` recorded, read before `down` removes the files.
    fn pids(&self) -> Vec<u32> {
        std::fs::read_dir(self.dir().join("pids"))
            .expect("reading DIR/pids")
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
            .map(|e| {
                std::fs::read_to_string(e.path())
                    .expect("reading a pid file")
                    .trim()
                    .parse()
                    .expect("a pid file holds a number")
            })
            .collect()
    }

    fn down(&self) -> std::process::Output {
        Command::new(script())
            .args(["down", "--state"])
            .arg(self.dir())
            .output()
            .expect("running scripts/cluster down")
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        let out = self.down();
        if !out.status.success() {
            let _ = writeln!(
                std::io::stderr(),
                "scripts/cluster down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster")
}

/// Every tool `scripts/cluster` needs, checked up front so a missing one fails with its install line.
fn require_tools() {
    let go_found = on_path("go") || Path::new("/usr/local/go/bin/go").is_file();
    assert!(
        go_found,
        "Go is not installed: the real cluster is built from Go modules; install Go 1.26 or newer (https://go.dev/dl/)"
    );
    for (tool, install) in [
        (
            "kubectl",
            "apt-get install kubectl (from the Kubernetes apt repository)",
        ),
        ("openssl", "apt-get install openssl"),
        ("curl", "apt-get install curl"),
        ("ss", "apt-get install iproute2"),
        ("setsid", "apt-get install util-linux"),
    ] {
        assert!(
            on_path(tool),
            "{tool} is not installed; install it with `{install}`"
        );
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Whether a process exists and is not a zombie (an exited process that its parent has not reaped yet).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// A 1Gi claim of the default StorageClass, empty or restored from a VolumeSnapshot.
fn claim(ns: &str, name: &str, from_snapshot: Option<&str>) -> String {
    let source = from_snapshot.map_or(String::new(), |snap| {
        format!("\n  dataSource: {{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: {snap}}}")
    });
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}, namespace: {ns}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}{source}
"
    )
}

/// The Kubernetes release that tools/k8s/control-plane pins.
fn pinned_kubernetes() -> String {
    let go_mod = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/k8s/control-plane/go.mod"),
    )
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

#[test]
fn claims_are_provisioned_snapshotted_listed_restored_and_group_snapshotted_by_the_real_components()
{
    let cluster = RealCluster::up();
    let version = cluster.kubectl(&["version", "-o", "json"]);
    let version: serde_json::Value =
        serde_json::from_str(&version).expect("kubectl version -o json");
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        pinned_kubernetes().as_str()
    );

    let ns = "shop";
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
    cluster.kubectl(&["-n", ns, "label", "pvc", "data", "restored", "app=shop"]);
    cluster.apply(&format!(
        "apiVersion: groupsnapshot.storage.k8s.io/v1
kind: VolumeGroupSnapshot
metadata: {{name: both, namespace: {ns}}}
spec: {{source: {{selector: {{matchLabels: {{app: shop}}}}}}}}
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

    // `down` stops every process `up` started, and they are gone afterwards.
    let pids = cluster.pids();
    assert_eq!(
        pids.len(),
        8,
        "etcd, three control-plane components, the driver, the snapshot controller and two sidecars: {pids:?}"
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
