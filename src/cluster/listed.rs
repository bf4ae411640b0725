//! The compact forms retention and label sync list: a VolumeSnapshot or VolumeSnapshotContent reduced to the
//! fields they read and write against (names, uid, resourceVersion, labels, the retention annotation, times,
//! binding, deletionPolicy). Each page is decoded into wire shapes that keep only those fields (serde skips every
//! other field while parsing), then compacted with the strings the list shares interned, so a list of 100,000
//! snapshots holds about 300 bytes per object, never whole documents with their managedFields and last-applied
//! annotations.

use super::client::Cluster;
use super::error::{ListRef, Result};
use super::resources::{VolumeSnapshot, VolumeSnapshotContent};
use super::snapshots::list_paged_as;
use crate::labels::{ANNOTATION_RETENTION, ANNOTATION_RUN_ID, LabelSet};
use crate::vocab::scope::Scope;
use kube::Resource as _;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// A VolumeSnapshot as listed, compact. Strings that repeat across a list (namespace, label keys and values,
/// policy annotation, run id, PVC, group) are shared within it; the object's own (name, uid, resourceVersion,
/// times, content name) share one exact-size allocation, read through the methods of the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVolumeSnapshot {
    pub namespace: Arc<str>,
    /// name, uid, resourceVersion, creationTimestamp, deletionTimestamp, `status.boundVolumeSnapshotContentName`,
    /// `status.creationTime`, in that order.
    own: OwnStrings<7>,
    pub labels: Option<LabelSet>,
    /// The `backup-ns.sh/retention` annotation; other annotations are not kept but the run id.
    pub retention: Option<Arc<str>>,
    /// The `backup-ns.sh/run-id` annotation: snapshots of one run are decided together.
    pub run_id: Option<Arc<str>>,
    /// `spec.source.persistentVolumeClaimName`.
    pub source_pvc: Option<Arc<str>>,
    /// `status.readyToUse`.
    pub ready: bool,
    /// `status.volumeGroupSnapshotName`: the group this snapshot is a member of.
    pub group: Option<Arc<str>>,
}

impl ListedVolumeSnapshot {
    pub fn name(&self) -> &str {
        self.own.get(0).unwrap_or_default()
    }

    pub fn uid(&self) -> Option<&str> {
        self.own.get(1)
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.own.get(2)
    }

    pub fn creation_timestamp(&self) -> Option<&str> {
        self.own.get(3)
    }

    pub fn deletion_timestamp(&self) -> Option<&str> {
        self.own.get(4)
    }

    /// `status.boundVolumeSnapshotContentName`.
    pub fn bound_content(&self) -> Option<&str> {
        self.own.get(5)
    }

    /// `status.creationTime`.
    pub fn creation_time(&self) -> Option<&str> {
        self.own.get(6)
    }

    /// The same snapshot as listed at `resource_version` (what a delete under a fresh read sends).
    pub fn at_resource_version(&self, resource_version: Option<&str>) -> Self {
        let mut own = self.own.all();
        own[2] = resource_version;
        ListedVolumeSnapshot {
            own: OwnStrings::new(own),
            ..self.clone()
        }
    }

    /// The fields retention's planner reads, as `snapshot.storage.k8s.io/v1` JSON (built for one snapshot at a
    /// time while planning, then dropped).
    pub fn to_json(&self) -> serde_json::Value {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = &self.retention {
            annotations.insert(ANNOTATION_RETENTION.into(), (**r).into());
        }
        if let Some(r) = &self.run_id {
            annotations.insert(ANNOTATION_RUN_ID.into(), (**r).into());
        }
        serde_json::json!({
            "apiVersion": VolumeSnapshot::api_version(),
            "kind": "VolumeSnapshot",
            "metadata": {
                "name": self.name(),
                "namespace": &*self.namespace,
                "uid": self.uid(),
                "resourceVersion": self.resource_version(),
                "labels": self.labels,
                "annotations": annotations,
                "creationTimestamp": self.creation_timestamp(),
                "deletionTimestamp": self.deletion_timestamp(),
            },
            "spec": {"source": {"persistentVolumeClaimName": self.source_pvc.as_deref()}},
            "status": {
                "boundVolumeSnapshotContentName": self.bound_content(),
                "creationTime": self.creation_time(),
                "readyToUse": self.ready,
                "volumeGroupSnapshotName": self.group.as_deref(),
            },
        })
    }
}

/// A VolumeSnapshotContent as listed, compact (its labels and policy shared within the list, as for snapshots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVolumeSnapshotContent {
    /// name, resourceVersion, `spec.volumeSnapshotRef.uid`, in that order.
    own: OwnStrings<3>,
    pub labels: Option<LabelSet>,
    /// `spec.deletionPolicy`.
    pub deletion_policy: Arc<str>,
}

impl ListedVolumeSnapshotContent {
    pub fn name(&self) -> &str {
        self.own.get(0).unwrap_or_default()
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.own.get(1)
    }

    /// `spec.volumeSnapshotRef.uid`: set once the snapshot controller bound it to one snapshot object.
    pub fn bound_uid(&self) -> Option<&str> {
        self.own.get(2)
    }

    /// The compact form of a content read on its own (nothing to share its strings with).
    pub fn from_content(c: VolumeSnapshotContent) -> Self {
        Interner::default().content(raw::Content {
            metadata: raw::Meta {
                name: c.metadata.name.unwrap_or_default(),
                resource_version: c.metadata.resource_version,
                labels: c.metadata.labels,
                ..raw::Meta::default()
            },
            spec: raw::ContentSpec {
                deletion_policy: c.spec.deletion_policy,
                volume_snapshot_ref: raw::Ref {
                    uid: c.spec.volume_snapshot_ref.uid,
                },
            },
        })
    }
}

/// Shares equal strings within one list: each distinct namespace, label key, label value, policy and PVC name is
/// allocated once and referenced from every object that carries it, and so is each distinct label set. Dropped
/// with the list's decoding, so nothing outlives the list that used it.
#[derive(Default)]
struct Interner {
    strings: HashSet<Arc<str>>,
    label_sets: HashSet<LabelSet>,
}

impl Interner {
    fn intern(&mut self, s: String) -> Arc<str> {
        if let Some(found) = self.strings.get(s.as_str()) {
            return found.clone();
        }
        let new: Arc<str> = Arc::from(s);
        self.strings.insert(new.clone());
        new
    }

    fn labels(&mut self, labels: Option<BTreeMap<String, String>>) -> Option<LabelSet> {
        let set = LabelSet::from_pairs(
            labels?
                .into_iter()
                .map(|(k, v)| (self.intern(k), self.intern(v)))
                .collect::<Vec<_>>(),
        );
        if let Some(found) = self.label_sets.get(&set) {
            return Some(found.clone());
        }
        self.label_sets.insert(set.clone());
        Some(set)
    }

    fn snapshot(&mut self, s: raw::Snapshot) -> ListedVolumeSnapshot {
        let mut m = s.metadata;
        let mut annotations = m.annotations.take().unwrap_or_default();
        ListedVolumeSnapshot {
            retention: annotations
                .remove(ANNOTATION_RETENTION)
                .map(|r| self.intern(r)),
            run_id: annotations
                .remove(ANNOTATION_RUN_ID)
                .map(|r| self.intern(r)),
            group: s.status.volume_group_snapshot_name.map(|g| self.intern(g)),
            namespace: self.intern(m.namespace),
            own: OwnStrings::new([
                Some(&m.name),
                m.uid.as_deref(),
                m.resource_version.as_deref(),
                m.creation_timestamp.as_deref(),
                m.deletion_timestamp.as_deref(),
                s.status.bound_volume_snapshot_content_name.as_deref(),
                s.status.creation_time.as_deref(),
            ]),
            labels: self.labels(m.labels),
            source_pvc: s
                .spec
                .source
                .persistent_volume_claim_name
                .map(|p| self.intern(p)),
            ready: s.status.ready_to_use.unwrap_or(false),
        }
    }

    fn content(&mut self, c: raw::Content) -> ListedVolumeSnapshotContent {
        ListedVolumeSnapshotContent {
            own: OwnStrings::new([
                Some(&c.metadata.name),
                c.metadata.resource_version.as_deref(),
                c.spec.volume_snapshot_ref.uid.as_deref(),
            ]),
            labels: self.labels(c.metadata.labels),
            deletion_policy: self.intern(c.spec.deletion_policy),
        }
    }
}

/// An object's own strings, the ones no other object in the list shares, in one exact-size allocation: one
/// allocation per object instead of one per string (100,000 snapshots would otherwise make 700,000 small ones).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnStrings<const N: usize> {
    text: Box<str>,
    /// Where string `i` ends in `text`; it starts where string `i - 1` ends (a missing one is empty there).
    ends: [u32; N],
    /// Bit `i`: string `i` is present.
    present: u8,
}

impl<const N: usize> OwnStrings<N> {
    fn new(strings: [Option<&str>; N]) -> Self {
        const { assert!(N <= 8, "one bit per string in `present`") };
        let mut text = String::with_capacity(strings.iter().flatten().map(|s| s.len()).sum());
        let mut ends = [0; N];
        let mut present = 0;
        for (i, s) in strings.iter().enumerate() {
            if let Some(s) = s {
                text.push_str(s);
                present |= 1 << i;
            }
            ends[i] = u32::try_from(text.len()).expect("an object's strings fit in 4 GiB");
        }
        OwnStrings {
            text: text.into_boxed_str(),
            ends,
            present,
        }
    }

    fn get(&self, i: usize) -> Option<&str> {
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.text[start..self.ends[i] as usize])
    }

    fn all(&self) -> [Option<&str>; N] {
        std::array::from_fn(|i| self.get(i))
    }
}

/// The wire shapes the compact forms are decoded from; only the named fields are read.
mod raw {
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Meta {
        pub name: String,
        pub namespace: String,
        pub uid: Option<String>,
        pub resource_version: Option<String>,
        pub labels: Option<BTreeMap<String, String>>,
        pub annotations: Option<BTreeMap<String, String>>,
        pub creation_timestamp: Option<String>,
        pub deletion_timestamp: Option<String>,
    }

    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Snapshot {
        pub metadata: Meta,
        pub spec: SnapshotSpec,
        pub status: SnapshotStatus,
    }

    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct SnapshotSpec {
        pub source: SnapshotSource,
    }

    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct SnapshotSource {
        pub persistent_volume_claim_name: Option<String>,
    }

    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct SnapshotStatus {
        pub bound_volume_snapshot_content_name: Option<String>,
        pub creation_time: Option<String>,
        pub ready_to_use: Option<bool>,
        pub volume_group_snapshot_name: Option<String>,
    }

    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Content {
        pub metadata: Meta,
        pub spec: ContentSpec,
    }

    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ContentSpec {
        pub deletion_policy: String,
        pub volume_snapshot_ref: Ref,
    }

    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Ref {
        pub uid: Option<String>,
    }
}

impl Cluster {
    /// [`Cluster::list_snapshots`] in the compact form.
    pub async fn list_listed_snapshots(
        &self,
        scope: &Scope,
        selector: Option<&str>,
        page_size: u32,
    ) -> Result<Vec<ListedVolumeSnapshot>> {
        let path = VolumeSnapshot::url_path(&(), scope.namespace());
        let list = ListRef {
            resource: VolumeSnapshot::RESOURCE,
            namespace: scope.namespace().map(str::to_string),
            selector: selector.map(str::to_string),
        };
        let mut interner = Interner::default();
        list_paged_as(self.client(), &path, list, page_size, |s| {
            interner.snapshot(s)
        })
        .await
    }

    /// [`Cluster::list_snapshot_contents`] (all of them) in the compact form.
    pub async fn list_listed_contents(
        &self,
        page_size: u32,
    ) -> Result<Vec<ListedVolumeSnapshotContent>> {
        let path = VolumeSnapshotContent::url_path(&(), None);
        let list = ListRef {
            resource: VolumeSnapshotContent::RESOURCE,
            namespace: None,
            selector: None,
        };
        let mut interner = Interner::default();
        list_paged_as(self.client(), &path, list, page_size, |c| {
            interner.content(c)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_listed_snapshot_keeps_what_retention_reads_and_nothing_else() {
        let doc = json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": "data-1", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                         "labels": {"backup-ns.sh/retain": "daily_weekly_monthly"},
                         "annotations": {"backup-ns.sh/retention": "{\"daily\":2}",
                                         "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                         "managedFields": [{"manager": "kubectl"}],
                         "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"source": {"persistentVolumeClaimName": "data"}, "volumeSnapshotClassName": "c"},
            "status": {"boundVolumeSnapshotContentName": "vsc-1", "creationTime": "2025-01-01T00:00:01Z",
                       "readyToUse": true, "restoreSize": "1Gi"}
        });
        let listed = Interner::default().snapshot(serde_json::from_value(doc.clone()).unwrap());
        assert_eq!(listed.retention.as_deref(), Some("{\"daily\":2}"));
        assert_eq!(listed.bound_content(), Some("vsc-1"));
        assert_eq!(listed.name(), "data-1");
        assert_eq!(listed.uid(), Some("u1"));
        assert_eq!(listed.resource_version(), Some("7"));
        assert_eq!(listed.deletion_timestamp(), None);
        assert_eq!(listed.creation_time(), Some("2025-01-01T00:00:01Z"));
        let moved = listed.at_resource_version(Some("8"));
        assert_eq!(
            (
                moved.resource_version(),
                moved.name(),
                moved.bound_content()
            ),
            (Some("8"), "data-1", Some("vsc-1"))
        );
        assert!(listed.ready);
        // The planner reads the compact form exactly as it reads the whole document.
        let whole = crate::retention::ObservedSnapshot::from_volume_snapshot(&doc).unwrap();
        let compact =
            crate::retention::ObservedSnapshot::from_volume_snapshot(&listed.to_json()).unwrap();
        assert_eq!(format!("{whole:?}"), format!("{compact:?}"));
    }

    #[test]
    fn a_listed_content_keeps_its_policy_and_binding() {
        let c = Interner::default().content(
            serde_json::from_value(json!({
                "metadata": {"name": "vsc-1", "resourceVersion": "3"},
                "spec": {"deletionPolicy": "Retain", "driver": "d",
                         "volumeSnapshotRef": {"name": "data-1", "namespace": "shop", "uid": "u1"}}
            }))
            .unwrap(),
        );
        assert_eq!(&*c.deletion_policy, "Retain");
        assert_eq!(c.bound_uid(), Some("u1"));
        assert_eq!((c.name(), c.resource_version()), ("vsc-1", Some("3")));
    }
}
