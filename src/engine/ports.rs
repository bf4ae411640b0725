//! The engine's ports: the traits through which hooks and steps reach containers.
//!
//! `cluster::` implements them against the Kubernetes API (pod exec over WebSocket); tests may implement them
//! with local processes. The futures are boxed so the traits stay object-safe (`Arc<dyn ContainerExec>` is
//! what the rhai sandbox holds).

use crate::vocab::retention::RetentionPolicy;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// At most this many bytes of stdout and stderr are kept when output is captured (the tail is kept).
pub const CAPTURE_LIMIT: usize = 1024 * 1024;

/// The kind of workload a hook execs into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    Pod,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::Pod => "pod",
        }
    }
}

/// A workload reference as written in plans and the original's env: `deployment/NAME`, `statefulset/NAME`,
/// `pod/NAME`. Short forms `deploy/`, `sts/` and `po/` are accepted as kubectl accepts them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
}

/// Why a workload reference string is malformed. The message is written for a diagnostic's label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadRefError {
    #[error("expected KIND/NAME (for example `deployment/app-base`), found `{0}`")]
    MissingSlash(String),
    #[error("unknown workload kind `{0}`; expected deployment, statefulset or pod")]
    UnknownKind(String),
    #[error("workload name is empty")]
    EmptyName,
}

impl FromStr for WorkloadRef {
    type Err = WorkloadRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = s
            .split_once('/')
            .ok_or_else(|| WorkloadRefError::MissingSlash(s.to_string()))?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
            "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
            "pod" | "pods" | "po" => WorkloadKind::Pod,
            _ => return Err(WorkloadRefError::UnknownKind(kind.to_string())),
        };
        if name.is_empty() {
            return Err(WorkloadRefError::EmptyName);
        }
        Ok(WorkloadRef {
            kind,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// A container in a concrete, running pod: where a command actually executes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pod/{} (container {}) in namespace {}",
            self.pod, self.container, self.namespace
        )
    }
}

/// What the command reads on stdin. Scripts always travel here, never in argv: argv ends up in the apiserver's
/// audit log and in the pod's process table.
pub enum Stdin {
    None,
    Bytes(Vec<u8>),
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stdin::None => f.write_str("Stdin::None"),
            Stdin::Bytes(b) => write!(f, "Stdin::Bytes({} bytes)", b.len()),
            Stdin::Reader(_) => f.write_str("Stdin::Reader(..)"),
        }
    }
}

/// Where stdout goes: captured (bounded by [`CAPTURE_LIMIT`]) or streamed into a writer (downloads).
pub enum StdoutSink<'a> {
    Capture,
    Writer(&'a mut (dyn AsyncWrite + Send + Unpin)),
}

/// One command execution in a container.
#[derive(Debug)]
pub struct ExecRequest {
    pub target: ContainerRef,
    /// The program and its arguments, e.g. `["sh", "-s"]`. Never carries secrets or script bodies.
    pub argv: Vec<String>,
    pub stdin: Stdin,
    /// On expiry the exec stream is closed and the call fails with [`ExecError::Timeout`].
    pub timeout: Option<Duration>,
}

/// The outcome of a command that ran to completion (any exit code).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    /// Empty when stdout was streamed into a writer.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecResult {
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// Why a command could not be run to completion. A non-zero exit code is not an error: see [`ExecResult`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("could not start a command in {target}: {message}")]
    Start {
        target: ContainerRef,
        message: String,
    },
    #[error("command in {target} did not finish within {}", humantime::format_duration(*.after))]
    Timeout {
        target: ContainerRef,
        after: Duration,
    },
    #[error("exec stream to {target} broke: {message}")]
    Stream {
        target: ContainerRef,
        message: String,
    },
}

/// Runs commands inside containers.
pub trait ContainerExec: Send + Sync {
    fn exec<'a>(
        &'a self,
        request: ExecRequest,
        stdout: StdoutSink<'a>,
    ) -> BoxFuture<'a, Result<ExecResult, ExecError>>;
}

/// Why a workload could not be resolved to a ready container. Messages name the object and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{workload} not found in namespace {namespace}")]
    NotFound {
        namespace: String,
        workload: WorkloadRef,
    },
    #[error("{workload} in namespace {namespace} has no Running and Ready pod ({detail})")]
    NoReadyPod {
        namespace: String,
        workload: WorkloadRef,
        detail: String,
    },
    #[error(
        "pod {pod} of {workload} in namespace {namespace} has no container `{container}` (it has: {available})"
    )]
    NoSuchContainer {
        namespace: String,
        workload: WorkloadRef,
        pod: String,
        container: String,
        available: String,
    },
    #[error("could not look up {workload} in namespace {namespace}: {message}")]
    Api {
        namespace: String,
        workload: WorkloadRef,
        message: String,
    },
}

/// Resolves `deployment/NAME` etc. to a Running and Ready pod that has the named container.
pub trait PodResolver: Send + Sync {
    fn resolve<'a>(
        &'a self,
        namespace: &'a str,
        workload: &'a WorkloadRef,
        container: &'a str,
    ) -> BoxFuture<'a, Result<ContainerRef, ResolveError>>;
}

/// Why a cluster operation failed: a message that names the object and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    pub message: String,
}

impl PortError {
    pub fn new(message: impl Into<String>) -> PortError {
        PortError {
            message: message.into(),
        }
    }
}

/// A snapshot that already exists in the namespace, as the tier-label rule needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingSnapshot {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.source.persistentVolumeClaimName`: with the labels, which PVC's snapshot it is
    /// (`labels::snapshot_pvc`).
    pub source_pvc: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub ready: bool,
}

/// One VolumeSnapshot the engine creates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotRequest {
    pub namespace: String,
    pub name: String,
    pub pvc: String,
    /// `None`: the cluster's default class.
    pub class: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// One VolumeGroupSnapshot over several PVCs (`snapshot.consistency: group`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupSnapshotRequest {
    pub namespace: String,
    pub name: String,
    pub pvcs: Vec<String>,
    pub class: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// A member VolumeSnapshot of a ready group snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub name: String,
    pub pvc: String,
}

/// Why waiting for `readyToUse` ended without it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("{object} did not become ready within {}", humantime::format_duration(*.after))]
    NotReady { object: String, after: Duration },
    #[error("{object} failed: {message}")]
    Failed { object: String, message: String },
    #[error("{0}")]
    Api(PortError),
}

/// What an Event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSubject {
    Pvc(String),
    Pod(String),
}

/// A Kubernetes Event the engine emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    pub namespace: String,
    pub subject: EventSubject,
    pub warning: bool,
    /// CamelCase reason, e.g. `BackupSucceeded`.
    pub reason: String,
    pub note: String,
}

/// What in-namespace retention did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionOutcome {
    /// Human summary for the run report.
    pub summary: String,
    pub deleted: Vec<String>,
    pub marked: Vec<String>,
    pub relabelled: Vec<String>,
}

/// Every cluster operation the engine needs besides exec and pod resolution. `cluster::engine_port`
/// implements it over the Kubernetes API; unit tests use an in-memory fake.
pub trait ClusterPort: Send + Sync {
    /// The namespace exists.
    fn check_namespace<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<(), PortError>>;
    /// The PVC exists and is Bound.
    fn check_pvc<'a>(
        &'a self,
        namespace: &'a str,
        pvc: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>>;
    /// The named class exists, or (for `None`) exactly one default class does. Returns the class name.
    fn check_snapshot_class<'a>(
        &'a self,
        class: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, PortError>>;
    /// The existing VolumeSnapshots of the namespace, listed once for all of a plan's PVCs (the tier-label rule
    /// picks each PVC's own).
    fn snapshots_in<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ExistingSnapshot>, PortError>>;
    fn create_snapshot<'a>(
        &'a self,
        request: &'a SnapshotRequest,
    ) -> BoxFuture<'a, Result<(), PortError>>;
    /// Waits through a watch until `readyToUse`; a status error fails with the controller's message.
    fn wait_snapshot_ready<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), WaitError>>;
    fn delete_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>>;
    fn create_group_snapshot<'a>(
        &'a self,
        request: &'a GroupSnapshotRequest,
    ) -> BoxFuture<'a, Result<(), PortError>>;
    /// Waits until the group snapshot is ready and returns its member snapshots.
    fn wait_group_snapshot_ready<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<GroupMember>, WaitError>>;
    fn delete_group_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>>;
    /// Adds labels to an existing snapshot (group members get their per-PVC labels this way).
    fn label_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), PortError>>;
    fn emit_event<'a>(&'a self, event: &'a EngineEvent) -> BoxFuture<'a, Result<(), PortError>>;
    /// Retention for the plan's PVCs in its namespace (the cluster-wide pruner's function, scoped, on one list):
    /// tier labels and deletion marks by the plan's `policy` (where a PVC's snapshots carry no usable policy
    /// annotation, `policy` decides instead of the controller defaults). `sweep`: also delete due snapshots,
    /// except those whose deletion needs a VolumeSnapshotContent patch (left to the cluster-wide controller).
    fn apply_retention<'a>(
        &'a self,
        namespace: &'a str,
        pvcs: &'a [String],
        policy: &'a RetentionPolicy,
        sweep: bool,
    ) -> BoxFuture<'a, Result<RetentionOutcome, PortError>>;
}

/// Why the node-level lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockFailure {
    /// Every slot stayed busy until the timeout (exit code 3).
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Other(String),
}

/// A held lock slot; dropping it releases the slot.
pub trait HeldSlot: Send {
    fn describe(&self) -> String;
}

/// The node-level lock (`lock.rs` with slot files in the real binary).
pub trait NodeLock: Send + Sync {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn HeldSlot>, LockFailure>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_refs_parse_long_and_short_forms() {
        let cases = [
            ("deployment/app-base", WorkloadKind::Deployment, "app-base"),
            ("deploy/app", WorkloadKind::Deployment, "app"),
            ("statefulset/db", WorkloadKind::StatefulSet, "db"),
            ("sts/db", WorkloadKind::StatefulSet, "db"),
            ("pod/p-0", WorkloadKind::Pod, "p-0"),
        ];
        for (input, kind, name) in cases {
            let parsed: WorkloadRef = input.parse().expect(input);
            assert_eq!(parsed.kind, kind, "{input}");
            assert_eq!(parsed.name, name, "{input}");
        }
    }

    #[test]
    fn malformed_workload_refs_say_what_is_wrong() {
        assert_eq!(
            "app-base".parse::<WorkloadRef>(),
            Err(WorkloadRefError::MissingSlash("app-base".into()))
        );
        assert_eq!(
            "daemonset/x".parse::<WorkloadRef>(),
            Err(WorkloadRefError::UnknownKind("daemonset".into()))
        );
        assert_eq!(
            "pod/".parse::<WorkloadRef>(),
            Err(WorkloadRefError::EmptyName)
        );
    }

    #[test]
    fn workload_refs_display_in_canonical_form() {
        let parsed: WorkloadRef = "sts/db".parse().unwrap();
        assert_eq!(parsed.to_string(), "statefulset/db");
    }
}
