//! `backup-ns rebind VSC`: make a dangling `Retain` VolumeSnapshotContent usable again, e.g. after its namespace
//! was deleted and re-created.
//!
//! As the original: a new pre-provisioned content `restoredvsc-<uuid>` (`deletionPolicy: Retain`, same driver and
//! class, `source.snapshotHandle` = the old handle, the old labels) pointing at a VolumeSnapshot named after the
//! old one with its last `-suffix` replaced; that snapshot binds it via `source.volumeSnapshotContentName`. Only
//! then is the old content deleted, and only because it is `Retain` (so the storage snapshot stays). We refuse
//! anything else: a `Delete` content (deleting it would destroy the data) and a content whose snapshot still
//! exists (it is not dangling).

use super::{Cluster, ClusterError, PreProvisioned, VolumeSnapshot, VolumeSnapshotContent};
use rand::Rng;
use serde::Serialize;

/// What to rebind and where.
#[derive(Debug, Clone, Default)]
pub struct RebindOptions {
    /// The old VolumeSnapshotContent.
    pub content: String,
    /// Target namespace; default: the namespace the old content's `volumeSnapshotRef` names.
    pub namespace: Option<String>,
    /// Name of the new snapshot; default: the old name with its last `-suffix` replaced.
    pub snapshot_name: Option<String>,
    pub dry_run: bool,
}

/// Why a rebind refused or failed. Refusals (`NotFound`, `NotRetain`, `StillBound`, `NoHandle`, `NoNamespace`)
/// change nothing.
#[derive(Debug, thiserror::Error)]
pub enum RebindError {
    #[error("could not read VolumeSnapshotContent {content}: {source}")]
    Get {
        content: String,
        #[source]
        source: Box<ClusterError>,
    },
    #[error("VolumeSnapshotContent {content} does not exist")]
    NotFound { content: String },
    #[error(
        "VolumeSnapshotContent {content} has deletionPolicy `{policy}`, not Retain; refusing to rebind \
         (deleting the old content would delete the storage snapshot). Patch it to Retain first if you mean it"
    )]
    NotRetain { content: String, policy: String },
    #[error(
        "VolumeSnapshotContent {content} is still bound to VolumeSnapshot {snapshot}; it is not dangling, use \
         that snapshot"
    )]
    StillBound { content: String, snapshot: String },
    #[error(
        "VolumeSnapshotContent {content} has no snapshotHandle in status or spec.source; cannot rebind it"
    )]
    NoHandle { content: String },
    #[error(
        "VolumeSnapshotContent {content} names no snapshot namespace; pass --namespace for the new snapshot"
    )]
    NoNamespace { content: String },
    #[error("rebind of {content}: {source}")]
    Create {
        content: String,
        #[source]
        source: Box<ClusterError>,
    },
    #[error(
        "rebind of {content}: the new snapshot {namespace}/{snapshot} exists, but deleting the old Retain content \
         failed: {source}"
    )]
    DeleteOld {
        content: String,
        namespace: String,
        snapshot: String,
        #[source]
        source: Box<ClusterError>,
    },
}

impl RebindError {
    /// Refusals are the user's input problem (exit 2); API failures are exit 1.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            RebindError::NotFound { .. }
                | RebindError::NotRetain { .. }
                | RebindError::StillBound { .. }
                | RebindError::NoHandle { .. }
                | RebindError::NoNamespace { .. }
        )
    }
}

/// What a rebind did (or, dry-run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct RebindReport {
    pub dry_run: bool,
    pub old_content: String,
    pub new_content: String,
    pub namespace: String,
    pub snapshot: String,
    pub old_content_deleted: bool,
    /// The objects created (or that would be).
    pub objects: (VolumeSnapshotContent, VolumeSnapshot),
}

/// `restoredvsc-` plus a random version-4 UUID, as the original names rebound contents.
fn restored_name() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "restoredvsc-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The old snapshot name with its last `-suffix` replaced by `suffix` (appended when there is no `-`).
pub fn renamed(old: &str, suffix: &str) -> String {
    match old.rsplit_once('-') {
        Some((stem, _)) if !stem.is_empty() => format!("{stem}-{suffix}"),
        _ => format!("{old}-{suffix}"),
    }
}

fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..6)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// Plans the new objects from the old content, refusing as documented in the module docs.
pub fn plan_rebind(
    old: &VolumeSnapshotContent,
    options: &RebindOptions,
) -> Result<PreProvisioned, RebindError> {
    let content = old.name().to_string();
    if old.spec.deletion_policy != "Retain" {
        return Err(RebindError::NotRetain {
            content,
            policy: old.spec.deletion_policy.clone(),
        });
    }
    let handle = old
        .status
        .as_ref()
        .and_then(|s| s.snapshot_handle.clone())
        .or_else(|| old.spec.source.snapshot_handle.clone())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| RebindError::NoHandle {
            content: content.clone(),
        })?;
    let reference = &old.spec.volume_snapshot_ref;
    let namespace = options
        .namespace
        .clone()
        .or_else(|| reference.namespace.clone())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| RebindError::NoNamespace {
            content: content.clone(),
        })?;
    let snapshot_name = options.snapshot_name.clone().unwrap_or_else(|| {
        let old_name = reference.name.as_deref().unwrap_or("rebound");
        renamed(old_name, &random_suffix())
    });
    Ok(PreProvisioned {
        content_name: restored_name(),
        namespace,
        snapshot_name,
        driver: old.spec.driver.clone(),
        snapshot_handle: handle,
        class: old.spec.volume_snapshot_class_name.clone(),
        deletion_policy: "Retain".to_string(),
        labels: old.metadata.labels.clone().unwrap_or_default(),
        annotations: Default::default(),
    })
}

/// Rebinds `options.content`; see the module docs.
pub async fn rebind(
    cluster: &Cluster,
    options: &RebindOptions,
) -> Result<RebindReport, RebindError> {
    let content = options.content.clone();
    let old = cluster
        .get_snapshot_content(&content)
        .await
        .map_err(|source| RebindError::Get {
            content: content.clone(),
            source: Box::new(source),
        })?
        .ok_or_else(|| RebindError::NotFound {
            content: content.clone(),
        })?;
    let new = plan_rebind(&old, options)?;
    // Dangling means: the snapshot the content points at is gone (or is another object now).
    let reference = &old.spec.volume_snapshot_ref;
    if let (Some(ns), Some(name)) = (reference.namespace.as_deref(), reference.name.as_deref()) {
        let current = cluster
            .get_snapshot(ns, name)
            .await
            .map_err(|source| RebindError::Get {
                content: content.clone(),
                source: Box::new(source),
            })?;
        if let Some(vs) = current
            && (vs.bound_content() == Some(content.as_str())
                || vs.spec.source.volume_snapshot_content_name.as_deref() == Some(content.as_str()))
        {
            return Err(RebindError::StillBound {
                content,
                snapshot: format!("{ns}/{name}"),
            });
        }
    }
    let mut report = RebindReport {
        dry_run: options.dry_run,
        old_content: content.clone(),
        new_content: new.content_name.clone(),
        namespace: new.namespace.clone(),
        snapshot: new.snapshot_name.clone(),
        old_content_deleted: false,
        objects: (new.content_object(), new.snapshot_object()),
    };
    if options.dry_run {
        return Ok(report);
    }
    let (vsc, vs) = cluster
        .create_pre_provisioned(&new)
        .await
        .map_err(|source| RebindError::Create {
            content: content.clone(),
            source: Box::new(source),
        })?;
    report.objects = (vsc, vs);
    cluster
        .delete_snapshot_content(&content)
        .await
        .map_err(|source| RebindError::DeleteOld {
            content: content.clone(),
            namespace: new.namespace.clone(),
            snapshot: new.snapshot_name.clone(),
            source: Box::new(source),
        })?;
    report.old_content_deleted = true;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::resources::{VolumeSnapshotContentSpec, VolumeSnapshotContentStatus};

    fn content(policy: &str) -> VolumeSnapshotContent {
        VolumeSnapshotContent {
            metadata: kube::core::ObjectMeta {
                name: Some("snapcontent-1".into()),
                labels: Some([("backup-ns.sh/pvc".to_string(), "data".to_string())].into()),
                ..Default::default()
            },
            spec: VolumeSnapshotContentSpec {
                deletion_policy: policy.into(),
                driver: "hostpath.csi.k8s.io".into(),
                volume_snapshot_class_name: Some("csi-hostpath-snapclass".into()),
                volume_snapshot_ref: k8s_openapi::api::core::v1::ObjectReference {
                    name: Some("data-2025-01-01-003000-abcdef".into()),
                    namespace: Some("shop".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
            status: Some(VolumeSnapshotContentStatus {
                snapshot_handle: Some("handle-1".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_retain_content_is_rebound_under_a_fresh_name_with_its_handle_and_labels() {
        let new = plan_rebind(&content("Retain"), &RebindOptions::default()).unwrap();
        assert!(new.content_name.starts_with("restoredvsc-"));
        assert_eq!(new.content_name.len(), "restoredvsc-".len() + 36);
        assert_eq!(new.snapshot_handle, "handle-1");
        assert_eq!(new.deletion_policy, "Retain");
        assert_eq!(new.namespace, "shop");
        assert!(new.snapshot_name.starts_with("data-2025-01-01-003000-"));
        assert_ne!(new.snapshot_name, "data-2025-01-01-003000-abcdef");
        assert_eq!(new.labels["backup-ns.sh/pvc"], "data");
        assert_eq!(new.class.as_deref(), Some("csi-hostpath-snapclass"));
    }

    #[test]
    fn a_delete_content_is_refused() {
        let err = plan_rebind(&content("Delete"), &RebindOptions::default()).unwrap_err();
        assert!(matches!(err, RebindError::NotRetain { .. }), "{err}");
        assert!(err.is_refusal());
    }

    #[test]
    fn names_lose_only_their_last_suffix() {
        assert_eq!(renamed("data-2025-x-abc", "zzz"), "data-2025-x-zzz");
        assert_eq!(renamed("plain", "zzz"), "plain-zzz");
    }
}
