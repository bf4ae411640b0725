//! The simulator in-process: [`SimBuilder`] wires the store, pod logs, controllers, clock, faults and request
//! log to the HTTP server and writes the kubeconfig; [`Sim`] is the running instance with the library API
//! tests use (load YAML, get/list/patch/delete objects, clock, faults, pod phases and logs, tokens).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::clock::SimClock;
use crate::container::{self, ContainerContext, ResolveError};
use crate::faults::Faults;
use crate::kubelet::{Endpoint, FakeTime, Kubelet, TokenSource};
use crate::pods::{self, PodPhase};
use crate::requests::RequestLog;
use crate::resources::ResourceInfo;
use crate::runtime::{RunImage, RunImages};
use crate::server::{self, Shared};
use crate::status::ApiError;
use crate::{controllers, paths, pod_logs, rbac, state_dir, store, tls};

/// Why the simulator could not start or load objects.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding the listener failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Creating the state or kubeconfig files failed.
    #[error("writing {path}: {source}")]
    Write {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up (RBAC mode).
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A seed file could not be loaded.
    #[error("applying {origin}: {source}")]
    Seed {
        /// Where the YAML came from.
        origin: String,
        /// Cause.
        #[source]
        source: Box<SimError>,
    },
    /// YAML could not be parsed.
    #[error("parsing YAML: {0}")]
    Yaml(String),
    /// An object in the YAML was refused.
    #[error("loading {what}: {source}")]
    Load {
        /// Which object.
        what: String,
        /// Cause.
        #[source]
        source: ApiError,
    },
}

/// Builder for [`Sim`].
#[derive(Debug, Clone)]
pub struct SimBuilder {
    state_dir: Option<PathBuf>,
    snapshot_delay: Duration,
    clock: Option<DateTime<Utc>>,
    rbac: bool,
    listen: SocketAddr,
    kubeconfig: Option<PathBuf>,
    seeds: Vec<(String, String)>,
    run_images: Vec<RunImage>,
    faketime: Option<FakeTime>,
    pod_endpoint: Option<Endpoint>,
    token_source: Option<TokenSource>,
    request_shapes: Option<PathBuf>,
}

impl Default for SimBuilder {
    fn default() -> Self {
        SimBuilder {
            state_dir: None,
            snapshot_delay: Duration::from_millis(200),
            clock: None,
            rbac: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig: None,
            seeds: Vec::new(),
            run_images: Vec::new(),
            faketime: None,
            pod_endpoint: None,
            token_source: None,
            request_shapes: std::env::var_os(crate::requests::SHAPES_ENV).map(PathBuf::from),
        }
    }
}

impl SimBuilder {
    /// The apiserver that the processes of run pods talk to (default: this simulator). A node agent points its
    /// pods at the real apiserver.
    pub fn pod_endpoint(mut self, endpoint: Endpoint) -> Self {
        self.pod_endpoint = Some(endpoint);
        self
    }

    /// Where the pods' service-account tokens come from (default: minted by this simulator).
    pub fn token_source(mut self, source: TokenSource) -> Self {
        self.token_source = Some(source);
        self
    }

    /// Append each distinct request shape to `path` (default: the file `KUBE_SIM_REQUEST_SHAPES` names, if set;
    /// see [`crate::RequestShape`]).
    pub fn request_shapes(mut self, path: Option<PathBuf>) -> Self {
        self.request_shapes = path;
        self
    }

    /// Directory for PVC data and the snapshot store (default: a temp dir owned by the Sim).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Time between a snapshot's creation and readyToUse.
    pub fn snapshot_delay(mut self, d: Duration) -> Self {
        self.snapshot_delay = d;
        self
    }

    /// Start time of the simulated clock (None = real time).
    pub fn clock(mut self, start: Option<DateTime<Utc>>) -> Self {
        self.clock = start;
        self
    }

    /// Enforce RBAC for service-account tokens.
    pub fn rbac(mut self, on: bool) -> Self {
        self.rbac = on;
        self
    }

    /// Listen address (default 127.0.0.1:0).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Multi-document YAML to load verbatim before the kubeconfig is written (what `--apply` does);
    /// `origin` names it in errors.
    pub fn seed_yaml(mut self, origin: impl Into<String>, yaml: impl Into<String>) -> Self {
        self.seeds.push((origin.into(), yaml.into()));
        self
    }

    /// Run the containers of `mapping`'s image with its program (`--run-image IMAGE=PROGRAM`, repeatable; see
    /// [`crate::runtime::RunImages`]).
    pub fn run_image(mut self, mapping: RunImage) -> Self {
        self.run_images.push(mapping);
        self
    }

    /// Show the processes of run pods the simulated clock as their wall-clock time, through libfaketime.
    pub fn faketime(mut self, faketime: Option<FakeTime>) -> Self {
        self.faketime = faketime;
        self
    }

    /// Where to write the kubeconfig (default: `kubeconfig` in the state dir).
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// Bind, start serving and the controllers, then write the kubeconfig.
    pub async fn start(self) -> Result<Sim, SimError> {
        self.start_with(|r, _| r).await
    }

    /// Like [`SimBuilder::start`], letting the caller add routes (the exec handler) in front of the API router;
    /// `extend` gets the router and the shared state those routes need.
    pub async fn start_with(
        self,
        extend: impl FnOnce(axum::Router, Arc<Shared>) -> axum::Router,
    ) -> Result<Sim, SimError> {
        let (tmp, state_dir) = match self.state_dir {
            Some(d) => (None, d),
            None => {
                let t = tempfile::tempdir().map_err(|source| SimError::Write {
                    path: std::env::temp_dir(),
                    source,
                })?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        std::fs::create_dir_all(&state_dir).map_err(|source| SimError::Write {
            path: state_dir.clone(),
            source,
        })?;
        let clock = SimClock::new(self.clock);
        let logs = Arc::new(pod_logs::PodLogs::default());
        let store = Arc::new(store::Store::with_companions(
            clock.clone(),
            vec![logs.clone()],
        ));
        let shared = Arc::new(Shared {
            store: store.clone(),
            logs,
            clock,
            faults: Faults::default(),
            requests: RequestLog::default(),
            tokens: rbac::Tokens::new(),
            rbac: self.rbac,
            state_dir: state_dir.clone(),
        });
        shared
            .requests
            .record_shapes_to(self.request_shapes.clone());
        let run_images = RunImages::new(self.run_images);
        let kubelet = Arc::new(Kubelet::new(
            store.clone(),
            shared.logs.clone(),
            self.token_source
                .clone()
                .unwrap_or_else(|| TokenSource::Sim(shared.tokens.clone())),
            state_dir.clone(),
            run_images.clone(),
            self.faketime,
        ));
        let ctrl = Arc::new(controllers::Controllers {
            store,
            faults: shared.faults.clone(),
            state_dir: state_dir.clone(),
            snapshot_delay: self.snapshot_delay,
            run_images,
        });
        let events = ctrl.store.subscribe();
        let pod_events = ctrl.store.subscribe();
        let controllers = tokio::spawn(ctrl.run(events));
        let kubelet_task = tokio::spawn(kubelet.clone().run(pod_events));
        // Seeds load before serving and before the kubeconfig appears, so a client that waits for the file sees them.
        for (origin, yaml) in &self.seeds {
            if let Err(e) = load_yaml(&shared.store, yaml) {
                controllers.abort();
                kubelet_task.abort();
                return Err(SimError::Seed {
                    origin: origin.clone(),
                    source: Box::new(e),
                });
            }
        }
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: self.listen,
            source,
        })?;
        let app = extend(server::router(shared.clone()), shared.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stop = async {
            let _ = stop_rx.await;
        };
        // RBAC needs bearer tokens, which client-go only sends over TLS.
        let (url, ca_pem, server) = if self.rbac {
            let setup = tls::generate()?;
            let server = tokio::spawn(tls::serve(listener, app, setup.config.clone(), stop));
            (format!("https://{addr}"), Some(setup.ca_pem), server)
        } else {
            let server = tokio::spawn(async move {
                use axum::serve::ListenerExt as _;
                // As Go's servers do: without TCP_NODELAY an exec's last small frames (its output, then its
                // Status) wait for the client's delayed ACK, about 40 ms per session.
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await;
            });
            (format!("http://{addr}"), None, server)
        };
        kubelet.set_endpoint(self.pod_endpoint.clone().unwrap_or_else(|| Endpoint {
            port: addr.port(),
            ca_pem: ca_pem.clone(),
        }));
        let kubeconfig_path = self
            .kubeconfig
            .unwrap_or_else(|| state_dir.join("kubeconfig"));
        write_kubeconfig(
            &kubeconfig_path,
            &url,
            shared.tokens.admin_token(),
            ca_pem.as_deref(),
        )?;
        Ok(Sim {
            shared,
            url,
            kubeconfig_path,
            _tmp: tmp,
            server,
            controllers,
            kubelet,
            kubelet_task,
            stop: Some(stop_tx),
        })
    }
}

/// The kubeconfig for `url` with the admin token: context `kube-sim`, default namespace `default`.
/// `ca_pem` is the CA to trust when serving TLS.
pub fn kubeconfig_yaml(url: &str, token: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine;
    let ca = ca_pem
        .map(|p| {
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(p)
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n    server: {url}\n{ca}users:\n- name: kube-sim-admin\n  user:\n    token: {token}\ncontexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: kube-sim-admin\n    namespace: default\ncurrent-context: kube-sim\npreferences: {{}}\n"
    )
}

/// Write the kubeconfig atomically (temp file in the same directory, then rename).
pub fn write_kubeconfig(
    path: &Path,
    url: &str,
    token: &str,
    ca_pem: Option<&str>,
) -> Result<(), SimError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| SimError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("kubeconfig"),
        std::process::id()
    ));
    std::fs::write(&tmp, kubeconfig_yaml(url, token, ca_pem)).map_err(|source| {
        SimError::Write {
            path: tmp.clone(),
            source,
        }
    })?;
    std::fs::rename(&tmp, path).map_err(|source| SimError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A running simulator.
#[derive(Debug)]
pub struct Sim {
    shared: Arc<Shared>,
    url: String,
    kubeconfig_path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    server: JoinHandle<()>,
    controllers: JoinHandle<()>,
    kubelet: Arc<Kubelet>,
    kubelet_task: JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Sim {
    /// Start configuring a simulator.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }

    /// The kubelet that runs the pods.
    pub fn kubelet(&self) -> &Arc<Kubelet> {
        &self.kubelet
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The kubeconfig (admin identity, context namespace `default`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// State directory.
    pub fn state_dir(&self) -> &Path {
        &self.shared.state_dir
    }

    /// Shared server state (store, clock, faults, ...) for the exec route and advanced tests.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Load multi-document YAML verbatim (status and timestamps included), like `--apply`. Returns the objects.
    pub fn apply_yaml(&self, yaml: &str) -> Result<Vec<Value>, SimError> {
        load_yaml(&self.shared.store, yaml)
    }

    /// One object by apiVersion + plural + namespace + name.
    pub fn get(
        &self,
        api_version: &str,
        plural: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (group, _) = paths::split_api_version(api_version);
        let res = self.shared.store.resource(group, plural)?;
        self.shared.store.find(
            group,
            plural,
            if res.namespaced {
                ns.unwrap_or("default")
            } else {
                ""
            },
            name,
        )
    }

    /// Every object of a resource plural (core first when ambiguous), in one namespace or all.
    pub fn list(&self, plural: &str, ns: Option<&str>) -> Vec<Value> {
        let Some(res) = self.shared.store.registry().by_plural_any(plural).cloned() else {
            return Vec::new();
        };
        self.shared
            .store
            .all_of(&res.group, &res.plural)
            .into_iter()
            .filter(|o| {
                ns.is_none_or(|n| {
                    o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(n)
                })
            })
            .collect()
    }

    /// Apply a JSON merge patch to any part of an object, status included (tests use it to set Job or
    /// snapshot status). Returns the updated object; watchers see a MODIFIED event.
    pub fn merge_patch(
        &self,
        api_version: &str,
        plural: &str,
        ns: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        let (res, version, ns) = self.target(api_version, plural, ns, name)?;
        self.shared
            .store
            .modify(&res, version, ns, name, store::Part::Raw, false, |old| {
                let mut new = old.clone();
                json_patch::merge(&mut new, patch);
                Ok(new)
            })
    }

    /// Delete an object as a client would (finalizers and owner references honoured).
    pub fn delete(
        &self,
        api_version: &str,
        plural: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let (res, _, ns) = self.target(api_version, plural, ns, name)?;
        self.shared.store.delete(&res, ns, name, None, None, false)
    }

    /// The resource, version and namespace (`default` when None, "" for cluster-scoped) a library call on
    /// `name` addresses; 404 for an unknown resource.
    fn target<'a>(
        &self,
        api_version: &'a str,
        plural: &str,
        ns: Option<&'a str>,
        name: &str,
    ) -> Result<(ResourceInfo, &'a str, &'a str), ApiError> {
        let (group, version) = paths::split_api_version(api_version);
        let res = self
            .shared
            .store
            .resource(group, plural)
            .ok_or_else(|| ApiError::not_found(group, plural, name))?;
        let ns = if res.namespaced {
            ns.unwrap_or("default")
        } else {
            ""
        };
        Ok((res, version, ns))
    }

    /// The simulated clock.
    pub fn clock(&self) -> &SimClock {
        &self.shared.clock
    }

    /// Fault injection.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Request counters.
    pub fn requests(&self) -> &RequestLog {
        &self.shared.requests
    }

    /// Backing directory of a PVC.
    pub fn pvc_dir(&self, ns: &str, name: &str) -> PathBuf {
        state_dir::pvc_dir(&self.shared.state_dir, ns, name)
    }

    /// Force a pod's phase.
    pub fn set_pod_phase(&self, ns: &str, pod: &str, phase: PodPhase) -> Result<Value, ApiError> {
        pods::set_pod_phase(&self.shared.store, ns, pod, phase)
    }

    /// Append output to a container's log (`container` None = the pod's only container), as if the container
    /// printed it: `kubectl logs` and `pods/log` followers see it. The pod must exist; its logs go with it.
    /// Returns the container written to.
    pub fn append_pod_log(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        bytes: impl AsRef<[u8]>,
    ) -> Result<String, ApiError> {
        self.shared
            .logs
            .append_to_pod(&self.shared.store, ns, pod, container, bytes.as_ref())
    }

    /// A bearer token for a service account (what `kubectl create token` returns).
    pub fn token_for(&self, ns: &str, service_account: &str) -> String {
        self.shared.tokens.issue(ns, service_account)
    }

    /// Resolve a container for exec (see [`container::resolve_container`]).
    pub fn resolve_container(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<ContainerContext, ResolveError> {
        container::resolve_container(
            &self.shared.store,
            &self.shared.state_dir,
            ns,
            pod,
            container,
        )
    }

    /// Stop serving and the controllers. Open watch streams are not waited for beyond a short grace period.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.controllers.abort();
        self.kubelet_task.abort();
        self.kubelet.stop_all();
        if tokio::time::timeout(Duration::from_secs(1), &mut self.server)
            .await
            .is_err()
        {
            self.server.abort();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.controllers.abort();
        self.kubelet_task.abort();
        self.kubelet.stop_all();
        self.server.abort();
    }
}

/// Load multi-document YAML into the store verbatim. `List` documents are expanded.
pub fn load_yaml(store: &store::Store, yaml: &str) -> Result<Vec<Value>, SimError> {
    // Seeding years of history is a legitimate use: lift the parser's document/node budgets accordingly.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = 1_000_000;
    budget.max_nodes = 50_000_000;
    budget.max_events = 200_000_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(yaml, options)
        .map_err(|e| SimError::Yaml(e.to_string()))?;
    let mut out = Vec::new();
    let mut queue: Vec<Value> = docs.into_iter().filter(|d| d.is_object()).collect();
    queue.reverse();
    while let Some(doc) = queue.pop() {
        let api_version = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if kind.ends_with("List") && doc.get("items").is_some() {
            let mut items = doc
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            items.reverse();
            queue.extend(items);
            continue;
        }
        let (group, _) = paths::split_api_version(&api_version);
        let what = format!(
            "{kind} {}",
            doc.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
        let plural = store
            .registry()
            .by_kind(group, &kind)
            .map(|r| r.plural.clone())
            .ok_or_else(|| SimError::Load {
                what: what.clone(),
                source: ApiError::bad_request(format!("no resource for {api_version} {kind}")),
            })?;
        out.push(
            store
                .load(group, &plural, doc)
                .map_err(|source| SimError::Load { what, source })?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tests_can_set_job_status_and_delete_through_the_library() {
        let sim = Sim::builder().start().await.expect("sim");
        sim.apply_yaml("apiVersion: batch/v1\nkind: Job\nmetadata: {name: adhoc-1, namespace: app}\nspec: {template: {spec: {containers: [{name: c, image: x}], restartPolicy: Never}}}\n")
            .expect("job");
        let done = sim
            .merge_patch("batch/v1", "jobs", Some("app"), "adhoc-1", &serde_json::json!({"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}))
            .expect("patched");
        assert_eq!(done["status"]["succeeded"], 1);
        assert!(
            sim.merge_patch(
                "batch/v1",
                "jobs",
                Some("app"),
                "nope",
                &serde_json::json!({})
            )
            .is_err()
        );
        sim.delete("batch/v1", "jobs", Some("app"), "adhoc-1")
            .expect("deleted");
        assert!(
            sim.get("batch/v1", "jobs", Some("app"), "adhoc-1")
                .is_none()
        );
        assert_eq!(
            sim.delete("batch/v1", "jobs", Some("app"), "adhoc-1")
                .expect_err("gone")
                .code,
            404
        );
        sim.shutdown().await;
    }
}
