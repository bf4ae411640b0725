//! The cluster the tests drive: `scripts/cluster up` in a temp dir, either one shared by every test of this binary
//! (started on first use, stopped when the test process exits) or one of a test's own (stopped when dropped).
//! Helpers run kubectl as cluster-admin, the built backup-ns binary, and poll the cluster until a condition holds.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long any single condition is polled for before the test fails naming it.
const PATIENCE: Duration = Duration::from_secs(90);

/// A cluster started by `scripts/cluster up` in a temp dir. An owned cluster runs `scripts/cluster down` when
/// dropped, so a failed assertion does not leave processes behind; the shared one is never dropped (statics are
/// not), and its reaper stops it instead.
pub struct RealCluster {
    state: tempfile::TempDir,
}

/// The shared cluster and its reaper, whose stdin is the write end of the pipe it waits on.
struct Shared {
    cluster: RealCluster,
    _reaper: Mutex<Child>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// Serialises the tests that install or remove cluster-scoped objects (ClusterRoles, ClusterRoleBindings of the
/// shipped manifests and the Helm chart, which share names), so one test's uninstall never pulls the rug from under
/// another's RBAC checks.
static CLUSTER_SCOPED: Mutex<()> = Mutex::new(());

impl RealCluster {
    /// The cluster every test of this binary shares; the first caller starts it. The reaper is a shell in its own
    /// process group that blocks reading a pipe only this process holds (std opens pipes close-on-exec, so no child
    /// inherits it): when the test process exits, however it exits, the pipe closes and the shell runs
    /// `scripts/cluster down` and removes the state dir.
    pub fn shared() -> &'static RealCluster {
        &SHARED
            .get_or_init(|| {
                let cluster = RealCluster::up();
                let mut reaper = Command::new("sh");
                reaper
                    .args([
                        "-c",
                        r#"cat >/dev/null; "$0" down --state "$1" >/dev/null 2>&1; rm -rf "$1""#,
                    ])
                    .arg(script())
                    .arg(cluster.dir())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                std::os::unix::process::CommandExt::process_group(&mut reaper, 0);
                // The Child keeps its stdin, the pipe's write end, open until the process exits.
                let child = reaper.spawn().expect("starting the cluster's reaper");
                Shared {
                    cluster,
                    _reaper: Mutex::new(child),
                }
            })
            .cluster
    }

    /// Held while a test installs or removes cluster-scoped objects; see [`CLUSTER_SCOPED`].
    pub fn cluster_scoped_lock() -> MutexGuard<'static, ()> {
        CLUSTER_SCOPED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A cluster of the caller's own, stopped when dropped.
    pub fn up() -> Self {
        require_tools();
        let state = tempfile::Builder::new()
            .prefix("backup-ns-cluster-")
            .tempdir()
            .expect("creating the cluster's state dir");
        let mut child = Command::new(script())
            .args(["up", "--state"])
            .arg(state.path())
            // The database images run `verify`'s throwaway servers on this host's tools; the app pods of those
            // images have no command, so they run nothing (their servers are the tests' own).
            .args([
                "--run-image",
                "busybox=host",
                "--run-image",
                "postgres=host",
                "--run-image",
                "mariadb=host",
                "--run-image",
            ])
            .arg(format!("backup-ns={}", env!("CARGO_BIN_EXE_backup-ns")))
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

    pub fn dir(&self) -> &Path {
        self.state.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir().join("kubeconfig")
    }

    /// Runs kubectl as cluster-admin and returns its stdout; fails the test with stderr on a non-zero exit.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_with_stdin(args, "")
    }

    pub fn kubectl_with_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_output(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
    }

    /// kubectl as cluster-admin, whatever its exit code.
    pub fn kubectl_output(&self, args: &[&str], stdin: &str) -> Output {
        kubectl_with(&self.kubeconfig(), args, stdin)
    }

    pub fn apply(&self, manifest: &str) {
        self.kubectl_with_stdin(&["apply", "-f", "-"], manifest);
    }

    /// `kubectl get -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl(&all)).expect("kubectl get -o json prints JSON")
    }

    /// Polls a jsonpath of one object until it equals `want`; a timeout names the object, the field and the
    /// last value seen.
    pub fn wait_for(&self, ns: &str, object: &str, jsonpath: &str, want: &str) -> Duration {
        let started = Instant::now();
        let mut seen = String::new();
        while started.elapsed() < PATIENCE {
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
        panic!("{ns}/{object}: {jsonpath} is {seen:?} after {PATIENCE:?}, want {want:?}");
    }

    /// A namespace (applied: the manifest tests may have created it already) with a Bound 1Gi claim of the
    /// default StorageClass for each name in `claims`. Tests sharing the cluster keep to their own namespaces.
    pub fn namespace_with_claims(&self, ns: &str, claims: &[&str]) {
        let mut manifest = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n");
        manifest.extend(claims.iter().map(|c| claim(ns, c, None)));
        self.apply(&manifest);
        for c in claims {
            self.wait_for(ns, &format!("pvc/{c}"), "{.status.phase}", "Bound");
        }
    }

    /// The hostpath driver's directory for a bound claim's volume; with no kubelet, this is what a pod would mount.
    pub fn volume_dir(&self, ns: &str, claim: &str) -> PathBuf {
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

    /// The driver's file for a VolumeSnapshotContent's snapshot handle.
    pub fn snapshot_file(&self, handle: &str) -> PathBuf {
        self.dir()
            .join("csi/snapshots")
            .join(format!("{handle}.tar"))
    }

    /// The names of the entries of a driver snapshot file.
    pub fn snapshot_entries(&self, handle: &str) -> Vec<String> {
        let tar = self.snapshot_file(handle);
        let out = Command::new("tar")
            .arg("-tf")
            .arg(&tar)
            .output()
            .expect("running tar -tf");
        assert!(
            out.status.success(),
            "tar -tf {}: {}",
            tar.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A ready VolumeSnapshot's content name and the driver's snapshot handle.
    pub fn content_of(&self, ns: &str, snapshot: &str) -> (String, String) {
        let content = self.kubectl(&[
            "-n",
            ns,
            "get",
            "volumesnapshot",
            snapshot,
            "-o",
            "jsonpath={.status.boundVolumeSnapshotContentName}",
        ]);
        let handle = self.kubectl(&[
            "get",
            "volumesnapshotcontent",
            &content,
            "-o",
            "jsonpath={.status.snapshotHandle}",
        ]);
        assert!(
            !content.is_empty() && !handle.is_empty(),
            "{ns}/{snapshot} has content {content:?} and handle {handle:?}"
        );
        (content, handle)
    }

    /// The VolumeSnapshot names in `ns`, sorted.
    pub fn snapshot_names(&self, ns: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .kubectl(&[
                "-n",
                ns,
                "get",
                "volumesnapshots",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
            ])
            .lines()
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    /// Suspends every CronJob on the self. The tests start their jobs with `kubectl create job --from=cronjob/...`,
    /// which a suspended CronJob still allows; a schedule that comes due while the suite runs (the controller's at
    /// 03:30 UTC, the tenant's at 23:15) must not start a job of its own beside them on the shared self.
    pub fn suspend_cronjobs(&self) {
        let all = self.get_json(&["cronjobs", "-A"]);
        for cronjob in all["items"].as_array().into_iter().flatten() {
            let (Some(ns), Some(name)) = (
                cronjob["metadata"]["namespace"].as_str(),
                cronjob["metadata"]["name"].as_str(),
            ) else {
                panic!("a CronJob without namespace or name: {cronjob:#}");
            };
            self.kubectl(&[
                "-n",
                ns,
                "patch",
                "cronjob",
                name,
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"suspend":true}}"#,
            ]);
        }
        let all = self.get_json(&["cronjobs", "-A"]);
        let left: Vec<&serde_json::Value> = all["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["spec"]["suspend"] != true)
            .map(|c| &c["metadata"]["name"])
            .collect();
        assert!(left.is_empty(), "CronJobs left unsuspended: {left:?}");
    }

    /// Runs the built backup-ns binary against this cluster as cluster-admin; see [`backup_ns_with`].
    pub fn backup_ns(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        backup_ns_with(&self.kubeconfig(), args, env)
    }

    /// The pids that `up` recorded, read before `down` removes the files.
    pub fn pids(&self) -> Vec<u32> {
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

    pub fn down(&self) -> Output {
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

/// kubectl with `kubeconfig`, a clean environment and `stdin`, whatever its exit code.
pub fn kubectl_with(kubeconfig: &Path, args: &[&str], stdin: &str) -> Output {
    let home = tempfile::tempdir().expect("temp HOME for kubectl");
    let mut child = Command::new("kubectl")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .arg("--kubeconfig")
        .arg(kubeconfig)
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
    child.wait_with_output().expect("waiting for kubectl")
}

/// The built backup-ns binary with a clean environment (`TZ=UTC`, HOME `home`), `args` and `--kubeconfig`.
pub fn backup_ns_command(kubeconfig: &Path, home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backup-ns"));
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("TZ", "UTC")
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig);
    cmd
}

/// Runs the built backup-ns binary with a clean environment (`TZ=UTC`, a temp HOME, `env`) and `--kubeconfig`.
pub fn backup_ns_with(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().expect("temp HOME for backup-ns");
    let mut cmd = backup_ns_command(kubeconfig, home.path(), args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running backup-ns")
}

/// Exit code and both streams, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Polls `check` until it returns `Some`, failing with `what` after [`PATIENCE`].
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{what}: not after {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn script() -> PathBuf {
    repo().join("scripts/cluster")
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
        ("tar", "apt-get install tar"),
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

/// A 1Gi claim of the default StorageClass, empty or restored from a VolumeSnapshot.
pub fn claim(ns: &str, name: &str, from_snapshot: Option<&str>) -> String {
    let source = from_snapshot.map_or(String::new(), |snap| {
        format!("\n  dataSource: {{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: {snap}}}")
    });
    format!(
        "---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}, namespace: {ns}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}{source}
"
    )
}

/// A snapshot-only plan (no hooks, no node lock) of `targets` in `ns`, written into `dir`.
pub fn plan_file(dir: &Path, name: &str, ns: &str, targets: &[&str], group: bool) -> PathBuf {
    let consistency = if group { "\n  consistency: group" } else { "" };
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "name: {name}\nnamespace: {ns}\ntargets: [{}]\nsnapshot:\n  type: cronjob{consistency}\n\
             retention: standard\nlock:\n  enabled: false\n",
            targets.join(", ")
        ),
    )
    .expect("writing the plan");
    path
}
