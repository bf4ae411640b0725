//! Retention's [`SnapshotStore`] over the Kubernetes API: each method is the `Cluster` operation of the same
//! name, so retention and label sync cost exactly the requests those operations send.

use super::client::Cluster;
use super::error::ClusterError;
use super::resources::{VolumeSnapshot, VolumeSnapshotContent};
use super::snapshots::ListedDelete;
use crate::labels::LabelChanges;
use crate::retention::port::{Deleted, ListedContent, ListedSnapshot, SnapshotStore};
use crate::vocab::scope::Scope;
use std::collections::BTreeMap;

impl ListedSnapshot for VolumeSnapshot {
    fn namespace(&self) -> &str {
        VolumeSnapshot::namespace(self)
    }
    fn name(&self) -> &str {
        VolumeSnapshot::name(self)
    }
    fn labels(&self) -> Option<&BTreeMap<String, String>> {
        VolumeSnapshot::labels(self)
    }
    fn bound_content(&self) -> Option<&str> {
        VolumeSnapshot::bound_content(self)
    }
    fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

impl ListedContent for VolumeSnapshotContent {
    fn name(&self) -> &str {
        VolumeSnapshotContent::name(self)
    }
    fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.labels.as_ref()
    }
    fn deletion_policy(&self) -> &str {
        &self.spec.deletion_policy
    }
}

impl SnapshotStore for Cluster {
    type Vs = VolumeSnapshot;
    type Vsc = VolumeSnapshotContent;
    type Error = ClusterError;

    async fn list_snapshots(
        &self,
        scope: &Scope,
        selector: Option<&str>,
        page_size: u32,
    ) -> Result<Vec<VolumeSnapshot>, ClusterError> {
        Cluster::list_snapshots(self, scope, selector, page_size).await
    }

    async fn list_contents(
        &self,
        page_size: u32,
    ) -> Result<Vec<VolumeSnapshotContent>, ClusterError> {
        self.list_snapshot_contents(None, page_size).await
    }

    async fn get_content(&self, name: &str) -> Result<Option<VolumeSnapshotContent>, ClusterError> {
        self.get_snapshot_content(name).await
    }

    async fn patch_snapshot_labels(
        &self,
        current: &VolumeSnapshot,
        changes: &LabelChanges,
    ) -> Result<bool, ClusterError> {
        Cluster::patch_snapshot_labels(self, current, changes)
            .await
            .map(|sent| sent.is_some())
    }

    async fn patch_content_labels(
        &self,
        current: &VolumeSnapshotContent,
        changes: &LabelChanges,
    ) -> Result<bool, ClusterError> {
        Cluster::patch_content_labels(self, current, changes)
            .await
            .map(|sent| sent.is_some())
    }

    async fn switch_content_policy(
        &self,
        content: &VolumeSnapshotContent,
        snapshot: &VolumeSnapshot,
        from: &str,
        to: &str,
    ) -> Result<bool, ClusterError> {
        Cluster::switch_content_policy(self, content, snapshot, from, to).await
    }

    async fn delete_snapshot(&self, listed: &VolumeSnapshot) -> Result<Deleted, ClusterError> {
        Ok(match self.delete_listed_snapshot(listed).await? {
            ListedDelete::Deleted => Deleted::Now,
            ListedDelete::AlreadyGone => Deleted::AlreadyGone,
            ListedDelete::Changed => Deleted::Changed,
        })
    }

    fn is_forbidden(error: &ClusterError) -> bool {
        error.is_forbidden()
    }
}
