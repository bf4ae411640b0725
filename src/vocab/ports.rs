//! The cluster port: every Kubernetes operation a run needs besides exec and pod resolution, and the plain
//! values that cross it (snapshot requests, existing snapshots, events, what retention did).
//!
//! `cluster::engine_port` implements [`ClusterPort`] over the Kubernetes API; the engine's unit tests use an
//! in-memory fake. The futures are boxed so the trait stays object-safe.

use super::retention::RetentionPolicy;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::time::Duration;

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
    /// `object_created` is the group's own `creationTimestamp` (the object the run created; members are made by
    /// the snapshot controller later), `cut` the member's `status.creationTime`.
    pub times: SnapshotTimes,
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

/// A ready snapshot's two times: when the API server stored the object (`metadata.creationTimestamp`, on the
/// server's clock) and when the CSI driver says it cut the snapshot (`status.creationTime`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotTimes {
    pub object_created: Option<DateTime<Utc>>,
    pub cut: Option<DateTime<Utc>>,
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
    /// Waits through a watch until `readyToUse`; a status error fails with the controller's message (but a write
    /// conflict, which the controller retries past and clears, does not). Returns the
    /// ready snapshot's times (the hook-window check reads them).
    fn wait_snapshot_ready<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SnapshotTimes, WaitError>>;
    /// Sets annotations on an existing snapshot (the hook window, once the snapshots are ready).
    fn annotate_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        annotations: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), PortError>>;
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
