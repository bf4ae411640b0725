//! Typed CSI snapshot objects: snapshot.storage.k8s.io/v1 VolumeSnapshot, VolumeSnapshotContent,
//! VolumeSnapshotClass and groupsnapshot.storage.k8s.io/v1 VolumeGroupSnapshot.
//!
//! Plain serde structs with a hand-written `kube::Resource` impl (no CRD derive needed). Every level keeps the
//! fields we do not model in an `extra` map, so reading and writing an object back never drops what a newer
//! snapshot controller put there.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::core::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Unmodelled fields, kept verbatim for round-trips.
pub type Extra = BTreeMap<String, Value>;

pub const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";
pub const GROUP_SNAPSHOT_GROUP: &str = "groupsnapshot.storage.k8s.io";
/// The annotation that marks the default VolumeSnapshotClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "snapshot.storage.kubernetes.io/is-default-class";

/// Implements `kube::Resource` for a statically typed object.
macro_rules! static_resource {
    ($ty:ty, $kind:literal, $group:literal, $plural:literal, $scope:ty) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($group)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed("v1")
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }

        impl $ty {
            /// The `Kind` name.
            pub const KIND: &'static str = $kind;
            /// The RBAC resource name, `plural.group`.
            pub const RESOURCE: &'static str = concat!($plural, ".", $group);
            /// `group/v1`.
            pub fn api_version() -> String {
                format!("{}/v1", $group)
            }
        }
    };
}

/// A VolumeSnapshot: a namespaced request for (or handle to) a point-in-time copy of a PVC.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshot {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: VolumeSnapshotSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<VolumeSnapshotStatus>,
    #[serde(flatten)]
    pub extra: Extra,
}
static_resource!(
    VolumeSnapshot,
    "VolumeSnapshot",
    "snapshot.storage.k8s.io",
    "volumesnapshots",
    k8s_openapi::NamespaceResourceScope
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSpec {
    #[serde(default)]
    pub source: VolumeSnapshotSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_class_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Exactly one of the two is set: a PVC to snapshot, or a pre-provisioned content to bind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_content_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_volume_snapshot_content_name: Option<String>,
    /// RFC 3339; when the storage system cut the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_to_use: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SnapshotError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_group_snapshot_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status.error` as the snapshot controller writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl SnapshotError {
    /// The controller's message, or a placeholder when it left none.
    pub fn text(&self) -> String {
        self.message
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "the snapshot controller reported an error without a message".into())
    }
}

impl VolumeSnapshot {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.labels.as_ref()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels()?.get(key).map(String::as_str)
    }

    pub fn ready(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.ready_to_use)
            .unwrap_or(false)
    }

    pub fn error(&self) -> Option<&SnapshotError> {
        self.status.as_ref()?.error.as_ref()
    }

    pub fn bound_content(&self) -> Option<&str> {
        self.status
            .as_ref()?
            .bound_volume_snapshot_content_name
            .as_deref()
            .filter(|n| !n.is_empty())
    }

    pub fn source_pvc(&self) -> Option<&str> {
        self.spec.source.persistent_volume_claim_name.as_deref()
    }

    /// The VolumeGroupSnapshot this snapshot is a member of: its group label, else `status.volumeGroupSnapshotName`.
    pub fn group(&self) -> Option<&str> {
        self.label(crate::labels::GROUP_MEMBER)
            .or_else(|| self.status.as_ref()?.volume_group_snapshot_name.as_deref())
            .filter(|g| !g.is_empty())
    }

    /// `status.creationTime`, falling back to `metadata.creationTimestamp` (as RFC 3339).
    pub fn created(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cut().or_else(|| self.object_created())
    }

    /// `status.creationTime`: when the CSI driver says it cut the snapshot.
    pub fn cut(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.status
            .as_ref()
            .and_then(|s| s.creation_time.as_deref())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// `metadata.creationTimestamp`: when the API server stored the object, on the server's clock.
    pub fn object_created(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        created(&self.metadata)
    }
}

/// `metadata.creationTimestamp` of any object, as a chrono time.
pub fn created(meta: &kube::core::ObjectMeta) -> Option<chrono::DateTime<chrono::Utc>> {
    let ts = meta.creation_timestamp.as_ref()?;
    chrono::DateTime::from_timestamp(ts.0.as_second(), ts.0.subsec_nanosecond() as u32)
}

/// A cluster-scoped VolumeSnapshotContent: the actual snapshot on the storage system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotContent {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: VolumeSnapshotContentSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<VolumeSnapshotContentStatus>,
    #[serde(flatten)]
    pub extra: Extra,
}
static_resource!(
    VolumeSnapshotContent,
    "VolumeSnapshotContent",
    "snapshot.storage.k8s.io",
    "volumesnapshotcontents",
    k8s_openapi::ClusterResourceScope
);

impl VolumeSnapshotContent {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotContentSpec {
    /// `Delete` or `Retain`.
    #[serde(default)]
    pub deletion_policy: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub source: VolumeSnapshotContentSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_class_name: Option<String>,
    #[serde(default)]
    pub volume_snapshot_ref: k8s_openapi::api::core::v1::ObjectReference,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotContentSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_handle: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotContentStatus {
    /// Unix nanoseconds (an integer here, unlike the VolumeSnapshot's RFC 3339 string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_to_use: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SnapshotError>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A VolumeSnapshotClass (cluster-scoped, no spec: its fields sit at the top level).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotClass {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub deletion_policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Extra,
}
static_resource!(
    VolumeSnapshotClass,
    "VolumeSnapshotClass",
    "snapshot.storage.k8s.io",
    "volumesnapshotclasses",
    k8s_openapi::ClusterResourceScope
);

impl VolumeSnapshotClass {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// Whether the class carries `snapshot.storage.kubernetes.io/is-default-class: "true"`.
    pub fn is_default(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
            .is_some_and(|v| v == "true")
    }
}

/// A VolumeGroupSnapshot: one crash-consistent snapshot of every PVC matching a selector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeGroupSnapshot {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: VolumeGroupSnapshotSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<VolumeGroupSnapshotStatus>,
    #[serde(flatten)]
    pub extra: Extra,
}
static_resource!(
    VolumeGroupSnapshot,
    "VolumeGroupSnapshot",
    "groupsnapshot.storage.k8s.io",
    "volumegroupsnapshots",
    k8s_openapi::NamespaceResourceScope
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeGroupSnapshotSpec {
    #[serde(default)]
    pub source: VolumeGroupSnapshotSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_group_snapshot_class_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeGroupSnapshotSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_group_snapshot_content_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeGroupSnapshotStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_volume_group_snapshot_content_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_to_use: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SnapshotError>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl VolumeGroupSnapshot {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn ready(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.ready_to_use)
            .unwrap_or(false)
    }

    pub fn error(&self) -> Option<&SnapshotError> {
        self.status.as_ref()?.error.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip_at_every_level() {
        let input = json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": "s1", "namespace": "shop", "labels": {"backup-ns.sh/pvc": "data"}},
            "spec": {
                "source": {"persistentVolumeClaimName": "data", "futureSource": 1},
                "volumeSnapshotClassName": "csi",
                "futureSpec": {"x": true}
            },
            "status": {
                "readyToUse": true,
                "creationTime": "2025-01-02T03:04:05Z",
                "restoreSize": "1Gi",
                "boundVolumeSnapshotContentName": "snapcontent-1",
                "futureStatus": "y"
            },
            "futureTop": [1, 2]
        });
        let vs: VolumeSnapshot = serde_json::from_value(input.clone()).unwrap();
        assert!(vs.ready());
        assert_eq!(vs.source_pvc(), Some("data"));
        assert_eq!(vs.bound_content(), Some("snapcontent-1"));
        assert_eq!(vs.label("backup-ns.sh/pvc"), Some("data"));
        assert_eq!(
            vs.created().unwrap().to_rfc3339(),
            "2025-01-02T03:04:05+00:00"
        );
        assert_eq!(serde_json::to_value(&vs).unwrap(), input);
    }

    #[test]
    fn creation_time_falls_back_to_the_creation_timestamp() {
        let vs: VolumeSnapshot = serde_json::from_value(json!({
            "metadata": {"name": "s1", "creationTimestamp": "2024-12-31T23:00:00Z"},
            "spec": {"source": {"persistentVolumeClaimName": "data"}}
        }))
        .unwrap();
        assert!(!vs.ready());
        assert_eq!(
            vs.created().unwrap().to_rfc3339(),
            "2024-12-31T23:00:00+00:00"
        );
    }

    #[test]
    fn a_class_is_default_only_with_the_annotation_set_to_true() {
        let class = |value: &str| -> VolumeSnapshotClass {
            serde_json::from_value(json!({
                "metadata": {"name": "c", "annotations": {DEFAULT_CLASS_ANNOTATION: value}},
                "driver": "hostpath.csi.k8s.io",
                "deletionPolicy": "Delete"
            }))
            .unwrap()
        };
        assert!(class("true").is_default());
        assert!(!class("false").is_default());
    }

    #[test]
    fn resource_names_match_rbac_spelling() {
        assert_eq!(
            VolumeSnapshot::RESOURCE,
            "volumesnapshots.snapshot.storage.k8s.io"
        );
        assert_eq!(
            VolumeGroupSnapshot::api_version(),
            "groupsnapshot.storage.k8s.io/v1"
        );
    }
}
