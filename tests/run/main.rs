//! `backup-ns run` end to end: the real binary (clean environment, `--kubeconfig`) against an in-process kube-sim
//! whose pod execs run real processes, with throwaway PostgreSQL/MariaDB servers from `tests/support`.

#[path = "../support/mod.rs"]
mod support;

mod chaos;
mod databases;
mod faults;
mod hot;
mod locks;
mod negative;
mod plans;
mod rbac;
mod secrets;
mod signals;
mod verify;

use kube_sim::Sim;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A namespace, a default snapshot class and what each test adds.
pub const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-hostpath-snapclass
  annotations:
    snapshot.storage.kubernetes.io/is-default-class: "true"
driver: hostpath.csi.k8s.io
deletionPolicy: Delete
---
apiVersion: groupsnapshot.storage.k8s.io/v1
kind: VolumeGroupSnapshotClass
metadata:
  name: csi-hostpath-groupclass
  annotations:
    groupsnapshot.storage.kubernetes.io/is-default-class: "true"
driver: hostpath.csi.k8s.io
deletionPolicy: Delete
"#;

/// A Bound-to-be PVC in namespace `shop`.
pub fn pvc(name: &str) -> String {
    format!(
        "---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
  namespace: shop
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"
    )
}

/// A hook list item: `command` exec'd in `app-0`'s container `app` (the app pod of most fixtures).
pub fn app_exec_hook(command: &str, timeout: &str) -> String {
    format!(
        "    - type: exec\n      workload: pod/app-0\n      container: app\n      command: {command}\n      \
         timeout: {timeout}\n"
    )
}

/// A pod `name` with one container `container`, the given env, and each `(pvc, mountPath)` mounted.
pub fn pod(
    name: &str,
    container: &str,
    env: &[(String, String)],
    mounts: &[(&str, &str)],
) -> String {
    let mut y = format!(
        "---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: shop
  labels:
    app: {name}
spec:
  containers:
  - name: {container}
    image: {container}
    env:
"
    );
    for (k, v) in env {
        y.push_str(&format!("    - name: {k}\n      value: \"{v}\"\n"));
    }
    if env.is_empty() {
        y.push_str("    - name: UNUSED\n      value: \"x\"\n");
    }
    y.push_str("    volumeMounts:\n");
    for (i, (_, path)) in mounts.iter().enumerate() {
        y.push_str(&format!("    - name: v{i}\n      mountPath: {path}\n"));
    }
    y.push_str("  volumes:\n");
    for (i, (claim, _)) in mounts.iter().enumerate() {
        y.push_str(&format!(
            "  - name: v{i}\n    persistentVolumeClaim:\n      claimName: {claim}\n"
        ));
    }
    y
}

pub struct Env {
    pub sim: Sim,
    pub tmp: tempfile::TempDir,
}

/// Starts a sim with `BASE` + `yaml` and waits until PVCs are Bound and pods Running.
pub async fn start(yaml: &str) -> Env {
    start_with(yaml, false).await
}

/// [`start`], optionally with RBAC enforced (HTTPS; the default kubeconfig is an admin).
pub async fn start_with(yaml: &str, rbac: bool) -> Env {
    start_running(yaml, rbac, &[]).await
}

/// [`start_with`], with kube-sim running the pods of the given images (`IMAGE=host`: on this host's tools).
pub async fn start_running(yaml: &str, rbac: bool, run_images: &[&str]) -> Env {
    let mut builder = Sim::builder()
        .snapshot_delay(Duration::from_millis(50))
        .rbac(rbac);
    for mapping in run_images {
        builder = builder.run_image(mapping.parse().expect("a valid --run-image mapping"));
    }
    let sim = builder.start().await.expect("kube-sim did not start");
    // Let the sim's controllers subscribe before fixtures arrive.
    tokio::time::sleep(Duration::from_millis(20)).await;
    sim.apply_yaml(&format!("{BASE}{yaml}"))
        .expect("fixture YAML applies");
    let env = Env {
        sim,
        tmp: tempfile::tempdir().unwrap(),
    };
    env.eventually("fixture PVCs are Bound and pods Running", fixtures_settled)
        .await;
    env
}

/// Every PVC is Bound and every pod Running.
pub fn fixtures_settled(sim: &Sim) -> bool {
    sim.list("persistentvolumeclaims", None)
        .iter()
        .all(|p| p["status"]["phase"] == "Bound")
        && sim
            .list("pods", None)
            .iter()
            .all(|p| p["status"]["phase"] == "Running")
}

impl Env {
    pub async fn eventually(&self, what: &str, check: impl Fn(&Sim) -> bool) {
        for _ in 0..250 {
            if check(&self.sim) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting until {what}");
    }

    /// `backup-ns controller SCOPE --delete-pause 0s -o json` against the sim, with `env` (the clock).
    pub async fn controller(&self, scope: &[&str], env: &[(&str, &str)]) -> Output {
        let kubeconfig = self.sim.kubeconfig_path().to_str().unwrap().to_string();
        let mut args = vec!["controller"];
        args.extend_from_slice(scope);
        args.extend([
            "--delete-pause",
            "0s",
            "-o",
            "json",
            "--kubeconfig",
            &kubeconfig,
        ]);
        self.run(&args, env).await
    }

    /// Writes a plan file into the test's temp dir.
    pub fn plan(&self, name: &str, text: &str) -> PathBuf {
        let path = self.tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `backup-ns ARGS` (plus `--kubeconfig SIM` for `run`) with a clean environment (plus `env`).
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backup-ns"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.tmp.path())
            .env("TMPDIR", std::env::temp_dir())
            .current_dir(self.tmp.path())
            .args(args)
            .stdin(Stdio::null());
        if matches!(args.first(), Some(&"run" | &"create" | &"verify"))
            && !args.contains(&"--kubeconfig")
        {
            cmd.arg("--kubeconfig").arg(self.sim.kubeconfig_path());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs the binary to completion off the runtime (the sim keeps serving meanwhile).
    pub async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args, env);
        tokio::task::spawn_blocking(move || cmd.output().expect("backup-ns runs"))
            .await
            .unwrap()
    }

    /// `TYPE REASON` of every Event about the object named `name` in `shop`, oldest first.
    pub async fn events_about(&self, name: &str) -> Vec<String> {
        let cluster = backup_ns::cluster::Cluster::connect(&backup_ns::cluster::ConnectOptions {
            kubeconfig: Some(self.sim.kubeconfig_path().to_path_buf()),
            namespace: Some("shop".into()),
            service_account_namespace_file: Some(self.tmp.path().join("no-sa")),
            ..Default::default()
        })
        .await
        .expect("client connects to kube-sim");
        cluster
            .events_about("shop", name)
            .await
            .expect("events list")
            .into_iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default()
                )
            })
            .collect()
    }

    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        self.sim.list("volumesnapshots", Some("shop"))
    }

    pub fn pvc_dir(&self, name: &str) -> PathBuf {
        self.sim.pvc_dir("shop", name)
    }

    /// Restores `snapshot` into a new PVC `name` through the sim and returns its directory.
    pub async fn restore(&self, snapshot: &str, name: &str) -> PathBuf {
        self.sim
            .apply_yaml(&format!(
                "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
  namespace: shop
spec:
  accessModes: [ReadWriteOnce]
  dataSource:
    apiGroup: snapshot.storage.k8s.io
    kind: VolumeSnapshot
    name: {snapshot}
  resources:
    requests:
      storage: 1Gi
"
            ))
            .expect("restore PVC applies");
        self.eventually("the restored PVC is Bound", |sim| {
            sim.get("v1", "persistentvolumeclaims", Some("shop"), name)
                .is_some_and(|p| p["status"]["phase"] == "Bound")
        })
        .await;
        self.pvc_dir(name)
    }
}

/// Text of stdout + stderr for assertion messages.
pub fn both(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `gzip -dc FILE`.
pub fn gunzip(path: &Path) -> Vec<u8> {
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("gzip is needed to read dumps (apt-get install gzip): {e}"));
    assert!(out.status.success(), "gzip -dc {} failed", path.display());
    out.stdout
}

/// Files in `dir` (names), sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// True when `pid` no longer runs (gone, or a zombie waiting to be reaped).
pub fn process_is_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}
