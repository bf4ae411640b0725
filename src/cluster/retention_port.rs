//! Retention's [`SnapshotStore`] over the Kubernetes API: each method is the `Cluster` operation of the same
//! name, so retention and label sync cost exactly the requests those operations send. Objects travel in their
//! compact listed forms (`cluster::listed`).

use super::client::Cluster;
use super::error::ClusterError;
use super::listed::{ListedVolumeSnapshot, ListedVolumeSnapshotContent};
use super::snapshots::ListedDelete;
use crate::labels::{LabelChanges, LabelSet};
use crate::retention::port::{
    Deleted, ListedContent, ListedSnapshot, RestoreInFlight, SnapshotStore,
};
use crate::vocab::scope::Scope;

impl ListedSnapshot for ListedVolumeSnapshot {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        ListedVolumeSnapshot::name(self)
    }
    fn labels(&self) -> Option<&LabelSet> {
        self.labels.as_ref()
    }
    fn bound_content(&self) -> Option<&str> {
        ListedVolumeSnapshot::bound_content(self)
    }
    fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        Ok(ListedVolumeSnapshot::to_json(self))
    }
}

impl ListedContent for ListedVolumeSnapshotContent {
    fn name(&self) -> &str {
        ListedVolumeSnapshotContent::name(self)
    }
    fn labels(&self) -> Option<&LabelSet> {
        self.labels.as_ref()
    }
    fn deletion_policy(&self) -> &str {
        &self.deletion_policy
    }
}

impl SnapshotStore for Cluster {
    type Vs = ListedVolumeSnapshot;
    type Vsc = ListedVolumeSnapshotContent;
    type Error = ClusterError;

    async fn list_snapshots(
        &self,
        scope: &Scope,
        selector: Option<&str>,
        page_size: u32,
    ) -> Result<Vec<ListedVolumeSnapshot>, ClusterError> {
        self.list_listed_snapshots(scope, selector, page_size).await
    }

    async fn list_contents(
        &self,
        page_size: u32,
    ) -> Result<Vec<ListedVolumeSnapshotContent>, ClusterError> {
        self.list_listed_contents(page_size).await
    }

    async fn get_content(
        &self,
        name: &str,
    ) -> Result<Option<ListedVolumeSnapshotContent>, ClusterError> {
        Ok(self
            .get_snapshot_content(name)
            .await?
            .map(ListedVolumeSnapshotContent::from_content))
    }

    async fn patch_snapshot_labels(
        &self,
        current: &ListedVolumeSnapshot,
        changes: &LabelChanges,
    ) -> Result<bool, ClusterError> {
        self.patch_listed_snapshot_labels(current, changes).await
    }

    async fn patch_content_labels(
        &self,
        current: &ListedVolumeSnapshotContent,
        changes: &LabelChanges,
    ) -> Result<bool, ClusterError> {
        self.patch_listed_content_labels(current, changes).await
    }

    async fn switch_content_policy(
        &self,
        content: &ListedVolumeSnapshotContent,
        snapshot: &ListedVolumeSnapshot,
        from: &str,
        to: &str,
    ) -> Result<bool, ClusterError> {
        Cluster::switch_content_policy(self, content, snapshot, from, to).await
    }

    async fn delete_snapshot(
        &self,
        listed: &ListedVolumeSnapshot,
    ) -> Result<Deleted, ClusterError> {
        Ok(match self.delete_listed_snapshot(listed).await? {
            ListedDelete::Deleted => Deleted::Now,
            ListedDelete::AlreadyGone => Deleted::AlreadyGone,
            ListedDelete::Changed => Deleted::Changed,
        })
    }

    async fn snapshot_as_listed(
        &self,
        listed: &ListedVolumeSnapshot,
    ) -> Result<Option<bool>, ClusterError> {
        Cluster::snapshot_as_listed(self, listed).await
    }

    async fn delete_group_snapshot(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Deleted, ClusterError> {
        Ok(
            if Cluster::delete_group_snapshot(self, namespace, name).await? {
                Deleted::Now
            } else {
                Deleted::AlreadyGone
            },
        )
    }

    async fn restores_in_flight(
        &self,
        scope: &Scope,
        page_size: u32,
    ) -> Result<Vec<RestoreInFlight>, ClusterError> {
        self.restores_in_flight(scope, page_size).await
    }

    fn is_forbidden(error: &ClusterError) -> bool {
        error.is_forbidden()
    }
}
