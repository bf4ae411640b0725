//! What retention needs from the cluster, as traits that `cluster/` implements: page-wise lists of snapshots and
//! contents, label patches guarded against concurrent edits, a content's deletionPolicy switched under `test`
//! ops, and deleting a snapshot exactly as listed (DeleteOptions preconditions instead of a re-read). Retention
//! stays free of the API client; the cluster layer stays free of retention's decisions.

use crate::labels::{LabelChanges, LabelSet};
use crate::vocab::scope::Scope;
use std::future::Future;

/// A VolumeSnapshot as the cluster listed or read it. Retention reads it and hands it back for writes, so a
/// guarded patch can test against exactly what the decision saw.
pub trait ListedSnapshot: Send + Sync {
    fn namespace(&self) -> &str;
    fn name(&self) -> &str;
    fn labels(&self) -> Option<&LabelSet>;
    /// `status.boundVolumeSnapshotContentName`.
    fn bound_content(&self) -> Option<&str>;
    /// The object as `snapshot.storage.k8s.io/v1` JSON, what [`super::ObservedSnapshot::from_volume_snapshot`]
    /// reads.
    fn to_json(&self) -> Result<serde_json::Value, serde_json::Error>;
}

/// A VolumeSnapshotContent as the cluster listed or read it.
pub trait ListedContent: Send + Sync {
    fn name(&self) -> &str;
    fn labels(&self) -> Option<&LabelSet>;
    /// `spec.deletionPolicy`: `Delete` or `Retain`.
    fn deletion_policy(&self) -> &str;
}

/// How a deletion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The snapshot (and, through its content's `Delete` policy, the storage snapshot) is going away.
    Now,
    /// It was already gone: deleting twice converges.
    AlreadyGone,
    /// It changed since the list (its uid or resourceVersion no longer matches: pinned, relabelled, recreated);
    /// nothing was deleted.
    Changed,
}

/// A claim that is being restored from a VolumeSnapshot: not yet Bound, its `dataSource` or `dataSourceRef` naming
/// the snapshot. Deleting that snapshot now could leave the restore without its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreInFlight {
    /// The snapshot's namespace (a cross-namespace `dataSourceRef` names another one than the claim's).
    pub namespace: String,
    pub snapshot: String,
    /// `namespace/name` of the claim.
    pub claim: String,
}

/// The snapshot operations of retention and label sync. Every method is one API request (or, for lists, one per
/// page), so the request counts of a run can be read off the code that calls them.
/// `Vs` and `Vsc` are the implementation's VolumeSnapshot and VolumeSnapshotContent objects.
pub trait SnapshotStore: Sync {
    type Vs: ListedSnapshot;
    type Vsc: ListedContent;
    type Error: std::error::Error + Send + Sync + 'static;

    /// The snapshots of `scope` matching `selector`, listed in pages of `page_size`.
    fn list_snapshots(
        &self,
        scope: &Scope,
        selector: Option<&str>,
        page_size: u32,
    ) -> impl Future<Output = Result<Vec<Self::Vs>, Self::Error>> + Send;

    /// Every VolumeSnapshotContent, listed in pages of `page_size`.
    fn list_contents(
        &self,
        page_size: u32,
    ) -> impl Future<Output = Result<Vec<Self::Vsc>, Self::Error>> + Send;

    /// Reads one content; `None` when it is gone.
    fn get_content(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Self::Vsc>, Self::Error>> + Send;

    /// Applies `changes` to the snapshot as read in `current`, rejected if someone changed those labels since.
    /// `false`: nothing to change, nothing sent.
    fn patch_snapshot_labels(
        &self,
        current: &Self::Vs,
        changes: &LabelChanges,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// [`patch_snapshot_labels`](Self::patch_snapshot_labels) for a content.
    fn patch_content_labels(
        &self,
        current: &Self::Vsc,
        changes: &LabelChanges,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Sets the content's `deletionPolicy` from `from` to `to`, only if it is still `from` and the content is
    /// still bound to `snapshot` (`test` ops). `false`: it changed since the list; nothing was written.
    fn switch_content_policy(
        &self,
        content: &Self::Vsc,
        snapshot: &Self::Vs,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Deletes the snapshot as listed in `listed`, with preconditions on its uid and resourceVersion: one that
    /// changed since is left alone ([`Deleted::Changed`]). Its content's policy is the caller's business.
    fn delete_snapshot(
        &self,
        listed: &Self::Vs,
    ) -> impl Future<Output = Result<Deleted, Self::Error>> + Send;

    /// Reads the snapshot once: `Some(true)` when it is still as listed (same uid and labels), `Some(false)` when
    /// it changed since, `None` when it is gone or being deleted.
    fn snapshot_as_listed(
        &self,
        listed: &Self::Vs,
    ) -> impl Future<Output = Result<Option<bool>, Self::Error>> + Send;

    /// Deletes the VolumeGroupSnapshot `namespace/name`; the snapshot controller deletes its members with it (the
    /// only way a member goes while its group exists). [`Deleted::AlreadyGone`] when there is no such group.
    fn delete_group_snapshot(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Deleted, Self::Error>> + Send;

    /// The restores in flight in `scope`: claims not yet Bound whose data source is a VolumeSnapshot. One list
    /// request per page of claims.
    fn restores_in_flight(
        &self,
        scope: &Scope,
        page_size: u32,
    ) -> impl Future<Output = Result<Vec<RestoreInFlight>, Self::Error>> + Send;

    /// True when `error` is a refusal by RBAC (403): the caller may leave the work to someone with the rights.
    fn is_forbidden(error: &Self::Error) -> bool;
}
