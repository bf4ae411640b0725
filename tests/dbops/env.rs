//! One world per test: a temp dir, a kube-sim with a namespace, a PVC and a database pod, and a runner for the
//! real binary with a clean environment.

use kube_sim::Sim;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

pub struct World {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
}

/// Namespace `shop`, PVC `data`, and pod `db-0` whose container `container` mounts `data` at `mount` and has
/// `env`.
pub fn fixture(container: &str, mount: &str, env: &[(String, String)]) -> String {
    let env: String = env
        .iter()
        .map(|(k, v)| format!("      - name: {k}\n        value: \"{v}\"\n"))
        .collect();
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: shop
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: shop
spec:
  containers:
    - name: {container}
      image: {container}
      env:
{env}      volumeMounts:
        - name: data
          mountPath: {mount}
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: data
"#
    )
}

impl World {
    pub async fn start(yaml: &str) -> World {
        let dir = tempfile::Builder::new()
            .prefix("bns-dbops-")
            .tempdir()
            .expect("temp dir");
        let sim = Sim::builder()
            .snapshot_delay(Duration::from_millis(20))
            .start()
            .await
            .expect("kube-sim starts");
        // The sim's controllers subscribe at their first poll; give them that before applying fixtures.
        tokio::time::sleep(Duration::from_millis(20)).await;
        sim.apply_yaml(yaml).expect("fixture applies");
        let world = World { sim, dir };
        world
            .eventually("the pod is Running and the PVC Bound", |sim| {
                sim.get("v1", "pods", Some("shop"), "db-0")
                    .is_some_and(|p| p["status"]["phase"] == "Running")
                    && sim
                        .get("v1", "persistentvolumeclaims", Some("shop"), "data")
                        .is_some_and(|p| p["status"]["phase"] == "Bound")
            })
            .await;
        world
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The host directory behind PVC `data` (where the container's dump file lands).
    pub fn pvc(&self) -> PathBuf {
        self.sim.pvc_dir("shop", "data")
    }

    /// Writes a file into the temp dir and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    /// Runs `backup-ns ARGS --kubeconfig SIM` in the temp dir with a clean environment (PATH only) and
    /// `stdin` (closed when `None`).
    pub async fn bns(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        self.bns_env(args, stdin, &[]).await
    }

    pub async fn bns_env(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        envs: &[(&str, &str)],
    ) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut child = self.command(args, envs).spawn().expect("backup-ns runs");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            input.write_all(bytes).await.expect("write stdin");
        }
        drop(input);
        tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("backup-ns finished within 120s")
            .expect("backup-ns output")
    }

    /// `backup-ns ARGS --kubeconfig SIM` in the temp dir with a clean environment (PATH only) plus `envs`, all
    /// three streams piped, killed when dropped.
    pub fn command(&self, args: &[&str], envs: &[(&str, &str)]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_backup-ns"));
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(self.sim.kubeconfig_path())
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .envs(envs.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Waits (bounded) until `check` holds on the simulator's state.
    pub async fn eventually(&self, what: &str, check: impl Fn(&Sim) -> bool) {
        for _ in 0..250 {
            if check(&self.sim) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting until {what}");
    }
}

/// stdout, stderr and the exit code, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a successful run and returns stdout.
pub fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", show(out));
    stdout(out)
}

/// Names of the files in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The UTC modification time of `path` as the download names it.
pub fn name_time(path: &Path) -> String {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime");
    let at: chrono::DateTime<chrono::Utc> = modified.into();
    at.format("%Y-%m-%dT%H-%M-%SZ").to_string()
}

/// gzip-compresses `data` with the system's gzip.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip (apt-get install gzip)");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip output");
    writer.join().expect("writer").expect("write to gzip");
    assert!(out.status.success());
    out.stdout
}
