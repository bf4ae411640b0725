//! The real cluster side of the retention benchmark (`-- --real`): etcd and kube-apiserver started by
//! `scripts/cluster up --only-api` (no controllers: nothing adds finalizers or reconciles, so the seeded objects
//! stay as written), seeded through the apiserver with a kube client, and measured from outside: requests from the
//! apiserver's `apiserver_request_total` metric (diffed around each run; the apiserver counts per resource, not
//! per client, so only the resources the controller reads and writes are kept), and the CPU of kube-apiserver and
//! of etcd from `/proc/PID/stat` (utime + stime, diffed around each run).

use futures::{StreamExt, stream};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Requests in flight while seeding.
pub const SEED_CONCURRENCY: usize = 32;

/// The resources the controller reads or writes (retention, the label sync, the sweep of crashed `verify` runs and
/// of restores in flight, its Events). The apiserver's own loopback traffic (leases, flow schemas, ...) is left out.
const COUNTED: &[&str] = &[
    "volumesnapshots",
    "volumesnapshotcontents",
    "volumegroupsnapshots",
    "volumegroupsnapshotcontents",
    "persistentvolumeclaims",
    "pods",
    "events",
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster")
}

/// Fails, naming `scripts/cluster build`, unless the binaries that `up --only-api` starts are in the cache (so
/// the bench never starts a Go build of its own).
pub fn require_binaries() {
    // Sourced, the script defines its functions without running a command; `cache_dir` is where `build` puts them.
    let out = Command::new("bash")
        .args(["-c", r#"source "$1" && cache_dir"#, "bench"])
        .arg(script())
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "the real cluster's cache dir is unknown: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("bin");
    let missing: Vec<&str> = ["etcd", "kube-apiserver"]
        .into_iter()
        .filter(|b| !bin.join(b).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the real cluster's binaries are not built ({} missing in {}): run `scripts/cluster build` first (Go 1.26 \
         and the module proxy)",
        missing.join(", "),
        bin.display()
    );
}

/// etcd and kube-apiserver with the snapshot CRDs, stopped (`scripts/cluster down`) when dropped, also when the
/// bench panics.
pub struct Cluster {
    pub client: kube::Client,
    /// Dropped before `state` (fields drop in order), so `down` still finds the pid files.
    _stopper: Stopper,
    state: tempfile::TempDir,
}

impl Cluster {
    pub async fn up() -> Self {
        let state = tempfile::Builder::new()
            .prefix("backup-ns-bench-cluster-")
            .tempdir()
            .expect("the cluster's state dir");
        let t = Instant::now();
        let out = Command::new(script())
            .args(["up", "--only-api", "--state"])
            .arg(state.path())
            .output()
            .expect("running scripts/cluster up");
        // From here on, the stopper stops whatever `up` started, even if it failed half-way.
        let stopper = Stopper(state.path().to_path_buf());
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && stdout.lines().last() == Some("cluster ready"),
            "scripts/cluster up --only-api failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let kubeconfig = kube::config::Kubeconfig::read_from(state.path().join("kubeconfig"))
            .expect("the cluster's kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("client config");
        let client = kube::Client::try_from(config).expect("kube client");
        let version = client
            .apiserver_version()
            .await
            .expect("the apiserver's /version")
            .git_version;
        println!(
            "  real cluster: etcd + kube-apiserver {version} (scripts/cluster up --only-api), up in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        Cluster {
            client,
            _stopper: stopper,
            state,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.state.path().join("kubeconfig")
    }

    /// utime + stime of a component so far, from its pid file.
    pub fn cpu(&self, name: &str) -> Duration {
        let pid_file = self.state.path().join("pids").join(format!("{name}.pid"));
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .unwrap_or_else(|e| panic!("{name} (pid {}) is gone: {e}", pid.trim()));
        // The fields after "pid (comm) ": state is the 1st, utime the 12th, stime the 13th.
        let fields: Vec<&str> = stat[stat.rfind(')').expect("stat's comm") + 2..]
            .split_whitespace()
            .collect();
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let ticks_of = |i: usize| -> f64 { fields[i].parse().expect("a tick count") };
        Duration::from_secs_f64((ticks_of(11) + ticks_of(12)) / ticks)
    }

    /// `apiserver_request_total` summed per (verb, resource[/subresource]) over codes and scopes, verbs lower-case
    /// as kube-sim's request log names them, for the resources in [`COUNTED`].
    pub async fn requests(&self) -> BTreeMap<(String, String), u64> {
        let text = self
            .client
            .request_text(
                http::Request::get("/metrics")
                    .body(Vec::new())
                    .expect("a GET request"),
            )
            .await
            .expect("the apiserver's /metrics");
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let label = |key: &str| -> &str {
                labels
                    .split("\",")
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\""))
                    .map_or("", |v| v.trim_end_matches('"'))
            };
            let resource = label("resource");
            if !COUNTED.contains(&resource) {
                continue;
            }
            let resource = match label("subresource") {
                "" => resource.to_string(),
                sub => format!("{resource}/{sub}"),
            };
            let n: f64 = value.trim().parse().expect("a counter value");
            *out.entry((label("verb").to_lowercase(), resource))
                .or_default() += n as u64;
        }
        out
    }

    /// Seeds the same documents as kube-sim gets: namespaces first, then per snapshot its content and the
    /// snapshot, each created and then given its status through the `/status` subresource (the apiserver drops
    /// status on create). Returns the number of requests made.
    pub async fn seed(&self, namespaces: usize) -> u64 {
        let ns_api: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &resource("", "v1", "Namespace", "namespaces"),
        );
        let made = stream::iter(0..namespaces)
            .map(|n| {
                let api = ns_api.clone();
                async move {
                    let (ns, _) = super::seed_namespace(n);
                    api.create(&PostParams::default(), &object(ns))
                        .await
                        .unwrap_or_else(|e| panic!("creating namespace {n}: {e}"));
                    1u64
                }
            })
            .buffer_unordered(SEED_CONCURRENCY)
            .fold(0, |a, b| async move { a + b })
            .await;
        let vsc = resource(
            "snapshot.storage.k8s.io",
            "v1",
            "VolumeSnapshotContent",
            "volumesnapshotcontents",
        );
        let vs = resource(
            "snapshot.storage.k8s.io",
            "v1",
            "VolumeSnapshot",
            "volumesnapshots",
        );
        let client = &self.client;
        let pairs = (0..namespaces).flat_map(|n| super::seed_namespace(n).1);
        made + stream::iter(pairs)
            .map(|(content, snapshot)| {
                let contents: Api<DynamicObject> = Api::all_with(client.clone(), &vsc);
                let ns = snapshot["metadata"]["namespace"]
                    .as_str()
                    .expect("a namespace")
                    .to_string();
                let snapshots: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &vs);
                async move {
                    create_with_status(&contents, content).await
                        + create_with_status(&snapshots, snapshot).await
                }
            })
            .buffer_unordered(SEED_CONCURRENCY)
            .fold(0, |a, b| async move { a + b })
            .await
    }
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn object(doc: Value) -> DynamicObject {
    serde_json::from_value(doc).expect("a seed document is an object")
}

/// Creates `doc` without its status, then sets the status through `/status`: two requests.
async fn create_with_status(api: &Api<DynamicObject>, mut doc: Value) -> u64 {
    let status = doc
        .as_object_mut()
        .and_then(|o| o.remove("status"))
        .expect("a seed document with a status");
    let name = doc["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_string();
    api.create(&PostParams::default(), &object(doc))
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap_or_else(|e| panic!("setting the status of {name}: {e}"));
    2
}

/// Runs `scripts/cluster down` on its state dir when dropped.
struct Stopper(PathBuf);

impl Drop for Stopper {
    fn drop(&mut self) {
        let status = Command::new(script())
            .args(["down", "--state"])
            .arg(&self.0)
            .stdout(std::process::Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!(
                "scripts/cluster down --state {} failed: {status:?}",
                self.0.display()
            );
        }
    }
}
