//! The kubelet of the one simulated node: runs the pods whose images `--run-image` maps, through the pod runtime
//! ([`crate::runtime`]), and reports them the way a kubelet does.
//!
//! A scheduled pod (it has `spec.nodeName`) that runs a process is started once: its init containers one after
//! the other, then its containers together. Each container gets its resolved environment plus
//! `KUBERNETES_SERVICE_HOST`/`PORT`, its volumes at their mountPaths, and, unless automounting is off for the pod
//! or its ServiceAccount, the service-account token projection at [`SERVICE_ACCOUNT_DIR`] (a token minted for the
//! pod's ServiceAccount, the serving CA as `ca.crt` when serving TLS, and `namespace`), so a client in the pod
//! uses its in-cluster configuration. Output goes to the pod's logs; exit codes become the container statuses
//! and the pod's phase (`restartPolicy` restarts with the kubelet's back-off). Deleting the pod stops its
//! processes with SIGTERM, then SIGKILL after `terminationGracePeriodSeconds`; `activeDeadlineSeconds` (on the
//! simulated clock) stops them and fails the pod with `DeadlineExceeded`.
//!
//! Containers without a process (unmapped image, or a `host` image without a command) report running; an init
//! container without a process counts as completed, since nothing could ever finish it. With `faketime`, the
//! processes see the simulated clock as their wall-clock time (libfaketime, preloaded).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast::error::RecvError, watch};

use crate::container::{ContainerContext, resolve_container_with};
use crate::exec::Mount;
use crate::pod_logs::PodLogs;
use crate::pods::{PodPhase, runs_process, words};
use crate::rbac::Tokens;
use crate::runtime::{ContainerProcess, Exit, RunImages, run};
use crate::state_dir::empty_dir;
use crate::store::{Event, EventType, Part, Store, Subscription};

/// Where a pod's ServiceAccount credentials appear in each container.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The kubelet's default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The kubelet's crash back-off: 10 s, doubled per restart, at most 5 min.
fn backoff(restarts: u32) -> Duration {
    Duration::from_secs((10u64 << restarts.min(5)).min(300))
}

/// How a pod's processes reach the apiserver: its port on 127.0.0.1, and the CA when serving TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Port of the API server on 127.0.0.1.
    pub port: u16,
    /// PEM of the serving CA (`ca.crt`); None when serving plain HTTP.
    pub ca_pem: Option<String>,
}

/// What libfaketime needs to show a process the simulated clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTime {
    /// Path of `libfaketime.so.1`.
    pub library: PathBuf,
}

impl FakeTime {
    /// Where Debian's `libfaketime` package puts the library.
    pub const CANDIDATES: [&'static str; 3] = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ];

    /// The installed libfaketime.
    ///
    /// # Errors
    /// It is not installed; the message says how to install it.
    pub fn locate() -> Result<FakeTime, String> {
        Self::CANDIDATES
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .map(|p| FakeTime {
                library: p.to_path_buf(),
            })
            .ok_or_else(|| {
                format!(
                    "libfaketime is not installed (looked at {}): the processes of run pods see the simulated clock \
                     through it; install it with `apt-get install libfaketime`",
                    Self::CANDIDATES.join(", ")
                )
            })
    }
}

impl FakeTime {
    /// Removes the shared-memory names that libfaketime processes which died without cleaning up (SIGKILL) left in
    /// `/dev/shm` (`sem.faketime_sem_<pid>`, `faketime_shm_<pid>`). libfaketime names them after the pid, so a later
    /// process that gets the same pid finds one in the way; when a root process left it and the new one runs as
    /// another user (a database server stepping down to its own user), its libfaketime cannot replace it and the
    /// process fails. Names of live pids are left alone.
    pub fn sweep_stale_shm(dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let pid = name
                .strip_prefix("sem.faketime_sem_")
                .or_else(|| name.strip_prefix("faketime_shm_"))
                .and_then(|pid| pid.parse::<u32>().ok());
            if let Some(pid) = pid
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Hands out a token for a namespace's ServiceAccount.
pub type IssueToken = Arc<dyn Fn(&str, &str) -> String + Send + Sync>;

/// Where the service-account tokens of the pods come from: kube-sim's own token table, or (a node agent in front
/// of a real apiserver) tokens it requested through the TokenRequest API for the pod, looked up by namespace and
/// ServiceAccount.
#[derive(Clone)]
pub enum TokenSource {
    /// Minted by kube-sim (`rbac::Tokens`).
    Sim(Tokens),
    /// Handed out by the caller.
    External(IssueToken),
}

impl TokenSource {
    fn issue(&self, ns: &str, sa: &str) -> String {
        match self {
            TokenSource::Sim(tokens) => tokens.issue(ns, sa),
            TokenSource::External(issue) => issue(ns, sa),
        }
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Sim(_) => f.write_str("TokenSource::Sim"),
            TokenSource::External(_) => f.write_str("TokenSource::External"),
        }
    }
}

/// The node's kubelet.
#[derive(Debug)]
pub struct Kubelet {
    store: Arc<Store>,
    logs: Arc<PodLogs>,
    tokens: TokenSource,
    state_dir: PathBuf,
    images: RunImages,
    faketime: Option<FakeTime>,
    endpoint: watch::Sender<Option<Endpoint>>,
    /// The pods it runs or ran, by uid: how to stop each.
    pods: Mutex<HashMap<String, PodHandle>>,
    /// The uids of the pods whose processes are being run now (a node agent waits on it before it lets a
    /// deleted pod go).
    active: watch::Sender<std::collections::HashSet<String>>,
}

#[derive(Debug)]
struct PodHandle {
    namespace: String,
    name: String,
    stop: watch::Sender<Option<Duration>>,
    /// Why it is being stopped: a deadline failure is reported, a deletion is not.
    deadline_exceeded: Arc<std::sync::atomic::AtomicBool>,
}

/// One container's state, as the kubelet reports it.
#[derive(Debug, Clone)]
struct ContainerState {
    name: String,
    image: String,
    container_id: String,
    state: Value,
    last_state: Value,
    restarts: u32,
}

impl ContainerState {
    fn new(c: &Value) -> Self {
        ContainerState {
            name: s(c, "/name").to_string(),
            image: s(c, "/image").to_string(),
            container_id: String::new(),
            state: json!({"waiting": {"reason": "PodInitializing"}}),
            last_state: json!({}),
            restarts: 0,
        }
    }

    fn running(&self) -> bool {
        self.state.get("running").is_some()
    }

    fn terminated_code(&self) -> Option<i64> {
        self.state.pointer("/terminated/exitCode")?.as_i64()
    }

    fn render(&self) -> Value {
        json!({"name": self.name, "image": self.image, "imageID": "", "containerID": self.container_id,
               "ready": self.running(), "started": self.running(), "restartCount": self.restarts,
               "state": self.state, "lastState": self.last_state})
    }
}

/// A pod's state while the kubelet runs it.
#[derive(Debug)]
struct PodState {
    init: Vec<ContainerState>,
    main: Vec<ContainerState>,
    phase: &'static str,
    reason: Option<(&'static str, String)>,
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn list(pod: &Value, key: &str) -> Vec<Value> {
    pod.pointer(&format!("/spec/{key}"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

impl Kubelet {
    /// A kubelet for the pods whose images `images` maps; `faketime` makes their processes see the simulated
    /// clock.
    pub fn new(
        store: Arc<Store>,
        logs: Arc<PodLogs>,
        tokens: TokenSource,
        state_dir: PathBuf,
        images: RunImages,
        faketime: Option<FakeTime>,
    ) -> Self {
        Kubelet {
            store,
            logs,
            tokens,
            state_dir,
            images,
            faketime,
            endpoint: watch::Sender::new(None),
            pods: Mutex::new(HashMap::new()),
            active: watch::Sender::new(std::collections::HashSet::new()),
        }
    }

    /// Resolves once no process of the pod with `uid` runs any more (at once for a pod it never ran).
    pub async fn wait_ended(&self, uid: &str) {
        let mut active = self.active.subscribe();
        let _ = active.wait_for(|uids| !uids.contains(uid)).await;
    }

    /// Where the API is served; pods wait for it before their processes start.
    pub fn set_endpoint(&self, endpoint: Endpoint) {
        self.endpoint.send_replace(Some(endpoint));
    }

    /// Kill every process at once (the simulator is going away).
    pub fn stop_all(&self) {
        for handle in self.handles().values() {
            handle.stop.send_replace(Some(Duration::ZERO));
        }
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodHandle>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follow the store until the task is aborted. Subscribe before anything is written, then spawn this.
    pub async fn run(self: Arc<Self>, mut rx: Subscription) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Ok(event) => self.on_event(&event),
                    Err(RecvError::Lagged(_)) => self.resync(),
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => self.enforce_deadlines(),
            }
        }
    }

    fn resync(self: &Arc<Self>) {
        for pod in self.store.all_of("", "pods") {
            self.consider(&pod);
        }
        let live: Vec<String> = self
            .store
            .all_of("", "pods")
            .iter()
            .map(|p| s(p, "/metadata/uid").to_string())
            .collect();
        let gone: Vec<String> = self
            .handles()
            .keys()
            .filter(|uid| !live.contains(uid))
            .cloned()
            .collect();
        for uid in gone {
            self.stop_deleted(&uid, DEFAULT_GRACE);
        }
    }

    fn on_event(self: &Arc<Self>, event: &Event) {
        if !event.group.is_empty() || event.plural != "pods" {
            return;
        }
        let pod = &event.object;
        match event.etype {
            EventType::Deleted => {
                let grace = pod
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_u64)
                    .map_or(DEFAULT_GRACE, Duration::from_secs);
                self.stop_deleted(s(pod, "/metadata/uid"), grace);
            }
            _ => self.consider(pod),
        }
    }

    /// Start `pod` if it is scheduled, runs a process, is not finished and is not running yet.
    fn consider(self: &Arc<Self>, pod: &Value) {
        let uid = s(pod, "/metadata/uid").to_string();
        if s(pod, "/spec/nodeName").is_empty()
            || pod.pointer("/metadata/deletionTimestamp").is_some()
            || PodPhase::is_terminal(s(pod, "/status/phase"))
            || !runs_process(pod, &self.images)
        {
            return;
        }
        let (stop_tx, stop_rx) = watch::channel(None);
        let deadline_exceeded = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let mut handles = self.handles();
            if handles.contains_key(&uid) {
                return;
            }
            handles.insert(
                uid.clone(),
                PodHandle {
                    namespace: s(pod, "/metadata/namespace").to_string(),
                    name: s(pod, "/metadata/name").to_string(),
                    stop: stop_tx,
                    deadline_exceeded: deadline_exceeded.clone(),
                },
            );
        }
        let me = self.clone();
        let pod = pod.clone();
        self.active.send_modify(|uids| {
            uids.insert(uid.clone());
        });
        // The handle stays until the pod is deleted: a pod is run once, however late stale events arrive.
        tokio::spawn(async move {
            me.run_pod(&pod, stop_rx, &deadline_exceeded).await;
            me.active.send_modify(|uids| {
                uids.remove(&uid);
            });
        });
    }

    fn stop_deleted(&self, uid: &str, grace: Duration) {
        if let Some(handle) = self.handles().remove(uid) {
            tracing::info!(namespace = %handle.namespace, pod = %handle.name, ?grace, "pod deleted: stopping its processes");
            handle.stop.send_replace(Some(grace));
        }
    }

    /// Stop every pod past its `activeDeadlineSeconds` on the simulated clock.
    fn enforce_deadlines(&self) {
        let now = self.store.clock().now();
        for handle in self.handles().values() {
            if handle.stop.borrow().is_some() {
                continue;
            }
            let Some(pod) = self.store.find("", "pods", &handle.namespace, &handle.name) else {
                continue;
            };
            if PodPhase::is_terminal(s(&pod, "/status/phase")) {
                continue;
            }
            let (Some(deadline), Ok(started)) = (
                pod.pointer("/spec/activeDeadlineSeconds")
                    .and_then(Value::as_i64),
                s(&pod, "/status/startTime").parse::<chrono::DateTime<chrono::Utc>>(),
            ) else {
                continue;
            };
            if now >= started + chrono::Duration::seconds(deadline) {
                let grace = pod
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_u64)
                    .map_or(DEFAULT_GRACE, Duration::from_secs);
                tracing::info!(namespace = %handle.namespace, pod = %handle.name, "active deadline exceeded");
                handle
                    .deadline_exceeded
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                handle.stop.send_replace(Some(grace));
            }
        }
    }

    /// Run a pod to its end: init containers in order, then every container together.
    async fn run_pod(
        self: &Arc<Self>,
        pod: &Value,
        stop: watch::Receiver<Option<Duration>>,
        deadline_exceeded: &std::sync::atomic::AtomicBool,
    ) {
        let ns = s(pod, "/metadata/namespace").to_string();
        let name = s(pod, "/metadata/name").to_string();
        let uid = s(pod, "/metadata/uid").to_string();
        let mut endpoint = self.endpoint.subscribe();
        let Ok(endpoint) = endpoint.wait_for(Option::is_some).await.map(|e| e.clone()) else {
            return;
        };
        let Some(endpoint) = endpoint else { return };
        let state = Arc::new(Mutex::new(PodState {
            init: list(pod, "initContainers")
                .iter()
                .map(ContainerState::new)
                .collect(),
            main: list(pod, "containers")
                .iter()
                .map(ContainerState::new)
                .collect(),
            phase: "Pending",
            reason: None,
        }));
        let restart_policy = Some(s(pod, "/spec/restartPolicy"))
            .filter(|p| !p.is_empty())
            .unwrap_or("Always")
            .to_string();
        let run = PodRun {
            kubelet: self.clone(),
            ns,
            name,
            uid,
            endpoint,
            state,
            stop,
        };
        run.publish();
        let init_ok = run.init_containers(pod).await;
        if init_ok && !run.stopping() {
            run.main_containers(pod, &restart_policy).await;
        }
        if deadline_exceeded.load(std::sync::atomic::Ordering::SeqCst) {
            let mut st = run.lock();
            st.phase = "Failed";
            st.reason = Some((
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline".into(),
            ));
        } else if run.stop.borrow().is_some() {
            // Deleted: the pod is gone, there is nothing left to report.
            return;
        }
        run.publish();
    }
}

/// One pod being run.
struct PodRun {
    kubelet: Arc<Kubelet>,
    ns: String,
    name: String,
    uid: String,
    endpoint: Endpoint,
    state: Arc<Mutex<PodState>>,
    stop: watch::Receiver<Option<Duration>>,
}

impl PodRun {
    fn lock(&self) -> std::sync::MutexGuard<'_, PodState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stop.borrow().is_some()
    }

    fn now(&self) -> String {
        self.kubelet.store.clock().now_rfc3339()
    }

    /// Write the pod's status from its state (only while it is the same pod).
    fn publish(&self) {
        let now = self.now();
        let status = {
            let st = self.lock();
            render_status(&st, &now)
        };
        let Some(res) = self.kubelet.store.resource("", "pods") else {
            return;
        };
        let uid = self.uid.clone();
        let _ =
            self.kubelet
                .store
                .modify(&res, "v1", &self.ns, &self.name, Part::Raw, false, |p| {
                    if s(p, "/metadata/uid") != uid {
                        // A new pod of the same name is not ours to report.
                        return Err(crate::status::ApiError::conflict(
                            "",
                            "pods",
                            s(p, "/metadata/name"),
                        ));
                    }
                    let mut p = p.clone();
                    let start = p
                        .pointer("/status/startTime")
                        .cloned()
                        .unwrap_or(json!(now));
                    let mut status = status.clone();
                    status["startTime"] = start;
                    p["status"] = status;
                    Ok(p)
                });
    }

    /// Init containers in order; false when one failed (the pod has failed then) or the pod is being stopped.
    async fn init_containers(&self, pod: &Value) -> bool {
        for (i, c) in list(pod, "initContainers").iter().enumerate() {
            if self.stopping() {
                return false;
            }
            let Some(exit) = self.run_container(c, Slot::Init(i)).await else {
                // Nothing could ever finish an init container without a process: it counts as completed.
                self.finish(Slot::Init(i), 0, "Completed", None);
                continue;
            };
            if exit != 0 {
                let mut st = self.lock();
                st.phase = "Failed";
                for m in &mut st.main {
                    m.state = json!({"waiting": {"reason": "PodInitializing"}});
                }
                return false;
            }
        }
        true
    }

    /// Every container together, each restarted as `restart_policy` says, until all have ended for good.
    async fn main_containers(&self, pod: &Value, restart_policy: &str) {
        {
            let mut st = self.lock();
            st.phase = "Running";
            let now = self.now();
            for m in &mut st.main {
                m.state = json!({"running": {"startedAt": now}});
            }
        }
        let containers = list(pod, "containers");
        let runs = containers.iter().enumerate().map(|(i, c)| async move {
            loop {
                let Some(code) = self.run_container(c, Slot::Main(i)).await else {
                    // No process: the container just runs.
                    return false;
                };
                let again = match restart_policy {
                    "Never" => false,
                    "OnFailure" => code != 0,
                    _ => true,
                };
                if !again || self.stopping() {
                    return true;
                }
                let restarts = {
                    let mut st = self.lock();
                    let slot = &mut st.main[i];
                    slot.restarts += 1;
                    slot.last_state = slot.state.clone();
                    slot.state = json!({"waiting": {"reason": "CrashLoopBackOff",
                        "message": format!("back-off restarting failed container {}", slot.name)}});
                    slot.restarts
                };
                self.publish();
                let mut stop = self.stop.clone();
                tokio::select! {
                    () = tokio::time::sleep(backoff(restarts - 1)) => {}
                    _ = stop.wait_for(Option::is_some) => return true,
                }
            }
        });
        let ended = futures::future::join_all(runs).await;
        if ended.iter().all(|e| *e) {
            let mut st = self.lock();
            let ok = st.main.iter().all(|m| m.terminated_code() == Some(0));
            st.phase = if ok { "Succeeded" } else { "Failed" };
        }
    }

    /// Run one container once. None when it runs no process; Some(exit code) otherwise (a container that could
    /// not start reports 128, as runc's start errors do).
    async fn run_container(&self, c: &Value, slot: Slot) -> Option<i64> {
        let kubelet = &self.kubelet;
        let name = s(c, "/name").to_string();
        let issue = |ns: &str, sa: &str| kubelet.tokens.issue(ns, sa);
        let resolved = resolve_container_with(
            &kubelet.store,
            &kubelet.state_dir,
            &self.ns,
            &self.name,
            Some(&name),
            Some(&issue),
        );
        let ctx = match resolved {
            Ok(ctx) => ctx,
            Err(error) => {
                let argv =
                    kubelet
                        .images
                        .argv(s(c, "/image"), &words(c, "command"), &words(c, "args"));
                argv.as_ref()?;
                self.set_state(
                    slot,
                    json!({"waiting": {"reason": "CreateContainerConfigError", "message": error.to_string()}}),
                );
                self.publish();
                let mut stop = self.stop.clone();
                let _ = stop.wait_for(Option::is_some).await;
                return Some(128);
            }
        };
        let argv = kubelet.images.argv(&ctx.image, &ctx.command, &ctx.args)?;
        let process = match self.process(&ctx, argv) {
            Ok(process) => process,
            Err(message) => {
                self.finish(slot, 128, "StartError", Some(message));
                return Some(128);
            }
        };
        let started = self.now();
        self.set_state(slot, json!({"running": {"startedAt": started}}));
        {
            let mut st = self.lock();
            let id = format!("kube-sim://{}", uuid::Uuid::new_v4().simple());
            match slot {
                Slot::Init(i) => st.init[i].container_id = id,
                Slot::Main(i) => st.main[i].container_id = id,
            }
            if matches!(slot, Slot::Main(_)) {
                st.phase = "Running";
            }
        }
        self.publish();
        let logs = kubelet.logs.clone();
        let store = kubelet.store.clone();
        let (ns, pod) = (self.ns.clone(), self.name.clone());
        let log_name = name.clone();
        let sink = move |_stream, bytes: &[u8]| {
            let _ = logs.append_to_pod(&store, &ns, &pod, Some(&log_name), bytes);
        };
        tracing::info!(namespace = %self.ns, pod = %self.name, container = %name, argv = ?process.argv, "starting container");
        match run(process, sink, self.stop.clone()).await {
            Ok(Exit { code, .. }) => {
                let reason = if code == 0 { "Completed" } else { "Error" };
                self.finish_since(slot, i64::from(code), reason, None, &started);
                Some(i64::from(code))
            }
            Err(error) => {
                let message = error.to_string();
                tracing::info!(namespace = %self.ns, pod = %self.name, container = %name, %message, "container could not start");
                self.finish_since(slot, 128, "StartError", Some(message), &started);
                Some(128)
            }
        }
    }

    /// The process of a resolved container: its environment with the service env and clock, its mounts with the
    /// service-account projection.
    fn process(
        &self,
        ctx: &ContainerContext,
        argv: Vec<String>,
    ) -> Result<ContainerProcess, String> {
        let kubelet = &self.kubelet;
        let mut env = vec![
            ("HOSTNAME".to_string(), self.name.clone()),
            (
                "KUBERNETES_SERVICE_HOST".to_string(),
                "127.0.0.1".to_string(),
            ),
            (
                "KUBERNETES_SERVICE_PORT".to_string(),
                self.endpoint.port.to_string(),
            ),
            (
                "KUBERNETES_SERVICE_PORT_HTTPS".to_string(),
                self.endpoint.port.to_string(),
            ),
        ];
        env.extend(ctx.env.iter().cloned());
        if let Some(faketime) = &kubelet.faketime {
            FakeTime::sweep_stale_shm(Path::new("/dev/shm"));
            let now = kubelet.store.clock().now();
            env.push(("LD_PRELOAD".into(), faketime.library.display().to_string()));
            // `@` starts the clock at that time and lets it run, as the simulated clock runs at real speed. Epoch
            // seconds keep the container's TZ out of it; monotonic clocks (timeouts) stay real.
            env.push(("FAKETIME".into(), format!("@{}", now.timestamp())));
            env.push(("FAKETIME_FMT".into(), "%s".into()));
            env.push(("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()));
            env.push(("FAKETIME_DONT_RESET".into(), "1".into()));
        }
        let mut mounts: Vec<Mount> = ctx
            .mounts
            .iter()
            .map(|m| Mount {
                host: m.host_path.clone(),
                container: m.container_path.clone(),
                read_only: m.read_only,
            })
            .collect();
        if !mounts
            .iter()
            .any(|m| m.container == Path::new(SERVICE_ACCOUNT_DIR))
            && let Some(dir) = self.service_account_files()?
        {
            mounts.push(Mount {
                host: dir,
                container: PathBuf::from(SERVICE_ACCOUNT_DIR),
                read_only: true,
            });
        }
        Ok(ContainerProcess {
            argv,
            env,
            mounts,
            workdir: ctx.working_dir.as_ref().map(PathBuf::from),
        })
    }

    /// The service-account projection of this pod (token, ca.crt, namespace), written once per pod; None when
    /// automounting is off for the pod or its ServiceAccount.
    fn service_account_files(&self) -> Result<Option<PathBuf>, String> {
        let kubelet = &self.kubelet;
        let Some(pod) = kubelet.store.find("", "pods", &self.ns, &self.name) else {
            return Ok(None);
        };
        let account = Some(s(&pod, "/spec/serviceAccountName"))
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_string();
        let automount = pod
            .pointer("/spec/automountServiceAccountToken")
            .and_then(Value::as_bool)
            .or_else(|| {
                kubelet
                    .store
                    .find("", "serviceaccounts", &self.ns, &account)
                    .and_then(|sa| {
                        sa.get("automountServiceAccountToken")
                            .and_then(Value::as_bool)
                    })
            })
            .unwrap_or(true);
        if !automount {
            return Ok(None);
        }
        let dir = empty_dir(&kubelet.state_dir, &self.ns, &self.name, "kube-api-access");
        let write = |file: &str, value: &str| {
            std::fs::write(dir.join(file), value)
                .map_err(|e| format!("writing the service-account {file}: {e}"))
        };
        if !dir.join("token").exists() {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            write("token", &kubelet.tokens.issue(&self.ns, &account))?;
            write("namespace", &self.ns)?;
            if let Some(ca) = &self.endpoint.ca_pem {
                write("ca.crt", ca)?;
            }
        }
        Ok(Some(dir))
    }

    fn set_state(&self, slot: Slot, state: Value) {
        let mut st = self.lock();
        match slot {
            Slot::Init(i) => st.init[i].state = state,
            Slot::Main(i) => st.main[i].state = state,
        }
    }

    fn finish(&self, slot: Slot, code: i64, reason: &str, message: Option<String>) {
        let now = self.now();
        self.finish_since(slot, code, reason, message, &now);
    }

    fn finish_since(
        &self,
        slot: Slot,
        code: i64,
        reason: &str,
        message: Option<String>,
        started: &str,
    ) {
        let mut terminated = json!({"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": self.now()});
        if let Some(message) = message {
            terminated["message"] = json!(message);
        }
        self.set_state(slot, json!({ "terminated": terminated }));
        self.publish();
    }
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Init(usize),
    Main(usize),
}

/// The pod status for `st`, as the kubelet writes it (startTime is kept by the caller).
fn render_status(st: &PodState, now: &str) -> Value {
    let cond = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now});
    let initialized = st.init.iter().all(|c| c.terminated_code() == Some(0))
        || st.main.iter().any(|c| c.state.get("waiting").is_none());
    let ready = st.phase == "Running" && st.main.iter().all(ContainerState::running);
    let mut status = json!({
        "phase": st.phase,
        "conditions": [cond("PodScheduled", true), cond("Initialized", initialized),
                       cond("ContainersReady", ready), cond("Ready", ready)],
        "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
        "containerStatuses": st.main.iter().map(ContainerState::render).collect::<Vec<_>>(),
        "qosClass": "BestEffort",
    });
    if !st.init.is_empty() {
        status["initContainerStatuses"] = json!(
            st.init
                .iter()
                .map(ContainerState::render)
                .collect::<Vec<_>>()
        );
    }
    if let Some((reason, message)) = &st.reason {
        status["reason"] = json!(reason);
        status["message"] = json!(message);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_libfaketime_names_of_dead_pids_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let live = std::process::id();
        // Beyond pid_max (at most 2^22), so no process has it.
        let dead = 9_999_999;
        let names = [
            format!("sem.faketime_sem_{dead}"),
            format!("faketime_shm_{dead}"),
            format!("sem.faketime_sem_{live}"),
            format!("faketime_shm_{live}"),
            format!("PostgreSQL.{dead}"),
        ];
        for name in &names {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        FakeTime::sweep_stale_shm(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = names[2..].to_vec();
        want.sort();
        assert_eq!(left, want);
    }
}
