//! `backup-ns restore`, the pure part: the PersistentVolumeClaim restored from a snapshot. Size from the
//! snapshot's `restoreSize`; access modes and storage class from the flags, else from the source claim when it
//! still exists, else `ReadWriteOnce` and the cluster's default class.

use super::OpsError;
use crate::cluster::core::RestorePvc;
use crate::cluster::label_pod::LabelPod;
use crate::cluster::{Cluster, ClusterError, VolumeSnapshot};
use crate::hooks::hot::{RESTORE_MOUNT, label_script, label_written};
use crate::labels::{ANNOTATION_HOT_BACKUP, HotBackup};
use crate::vocab::exec::PodResolver as _;
use crate::vocab::hook::HookKind;
use crate::vocab::workload::WorkloadRef;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the user asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreRequest {
    pub namespace: String,
    pub snapshot: String,
    pub pvc: String,
    pub storage_class: Option<String>,
    pub access_modes: Vec<String>,
}

/// The claim that `source` (the snapshot's original claim, if it still exists) and the request describe.
/// Refuses a snapshot that is not ready to use.
pub fn restore_pvc(
    request: &RestoreRequest,
    vs: &VolumeSnapshot,
    source: Option<&PersistentVolumeClaim>,
) -> Result<RestorePvc, OpsError> {
    if !vs.ready() {
        let detail = match vs.error() {
            Some(e) => format!(" (the snapshot controller reports: {})", e.text()),
            None => " (readyToUse is not true yet)".to_string(),
        };
        return Err(OpsError::SnapshotNotReady {
            namespace: request.namespace.clone(),
            name: request.snapshot.clone(),
            detail,
        });
    }
    let source_spec = source.and_then(|p| p.spec.as_ref());
    let size = vs
        .status
        .as_ref()
        .and_then(|s| s.restore_size.clone())
        .or_else(|| {
            source_spec
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage").cloned())
        })
        .ok_or_else(|| OpsError::SizeUnknown {
            namespace: request.namespace.clone(),
            name: request.snapshot.clone(),
        })?;
    let access_modes = if request.access_modes.is_empty() {
        source_spec
            .and_then(|s| s.access_modes.clone())
            .unwrap_or_default()
    } else {
        request.access_modes.clone()
    };
    let storage_class = request
        .storage_class
        .clone()
        .or_else(|| source_spec.and_then(|s| s.storage_class_name.clone()));
    Ok(RestorePvc {
        namespace: request.namespace.clone(),
        name: request.pvc.clone(),
        snapshot: request.snapshot.clone(),
        size,
        storage_class,
        access_modes,
        labels: BTreeMap::new(),
    })
}

/// The claim the snapshot was taken of: `spec.source.persistentVolumeClaimName`, else the `backup-ns.sh/pvc` label
/// (snapshots rebound from a content have no claim source).
pub fn source_claim(vs: &VolumeSnapshot) -> Option<&str> {
    vs.source_pvc()
        .or_else(|| vs.label(crate::labels::PVC))
        .filter(|s| !s.is_empty())
}

/// What a hot snapshot recorded in its `backup-ns.sh/hot-backup` annotation; `None` for every other snapshot.
pub fn hot_record(vs: &VolumeSnapshot) -> Option<HotBackup> {
    vs.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_HOT_BACKUP)
        .and_then(|a| HotBackup::from_annotation(a))
}

/// What a hot PostgreSQL snapshot recorded (`backup-ns.sh/hot-backup` with a backup_label): `restore` writes that
/// label back into the restored claim. `None` for every other snapshot.
pub fn hot_label(vs: &VolumeSnapshot) -> Option<HotBackup> {
    let record = hot_record(vs)?;
    (record.engine == HookKind::Postgres && record.backup_label.is_some()).then_some(record)
}

/// Writes `record`'s backup_label (and tablespace_map) into the data directory on the restored claim `claim`,
/// with a short pod of `image` (default: the image of the container the hot session ran in) that mounts it.
/// The pod is deleted on every path. Returns the data directory's path on the volume.
pub async fn write_backup_label(
    cluster: &Cluster,
    namespace: &str,
    claim: &str,
    record: &HotBackup,
    image: Option<&str>,
    timeout: Duration,
) -> Result<String, OpsError> {
    let failed = |why: String| OpsError::BackupLabel {
        namespace: namespace.to_string(),
        claim: claim.to_string(),
        why,
    };
    let script = label_script(record)
        .ok_or_else(|| failed("the snapshot records no backup_label".into()))?;
    let image = match image {
        Some(image) => image.to_string(),
        None => database_image(cluster, namespace, record)
            .await
            .map_err(|why| failed(format!("{why}; pass --image IMAGE")))?,
    };
    let name = format!("backup-ns-label-{}", crate::engine::steps::random_suffix());
    let pod = LabelPod {
        namespace: namespace.to_string(),
        name: name.clone(),
        image,
        script,
        claim: claim.to_string(),
        mount_path: RESTORE_MOUNT.to_string(),
        deadline: timeout,
    };
    cluster.create_pod(&pod.to_object()).await?;
    let ran = async {
        cluster.wait_pod_finished(namespace, &name, timeout).await?;
        cluster.pod_log(namespace, &name).await
    }
    .await;
    let removed = cluster.delete_pod_now(namespace, &name).await;
    let log = ran?;
    removed?;
    label_written(&log).map_err(failed)
}

/// The image of the container the hot session ran in, from its workload's pod.
async fn database_image(cluster: &Cluster, ns: &str, record: &HotBackup) -> Result<String, String> {
    let workload: WorkloadRef = record.workload.parse().map_err(|e| {
        format!(
            "the recorded workload `{}` does not parse: {e}",
            record.workload
        )
    })?;
    let target = cluster
        .pod_resolver()
        .resolve(ns, &workload, &record.container)
        .await
        .map_err(|e| format!("cannot find the database container for its image: {e}"))?;
    let pod = cluster
        .get_pod(ns, &target.pod)
        .await
        .map_err(|e: ClusterError| e.to_string())?
        .ok_or_else(|| format!("pod {} is gone", target.pod))?;
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == record.container))
        .and_then(|c| c.image.clone())
        .ok_or_else(|| {
            format!(
                "container {} of pod {} names no image",
                record.container, target.pod
            )
        })
}

/// The line `restore` prints once the claim was created: its source, size, class and access modes.
pub fn created_line(pvc: &RestorePvc, namespace: &str) -> String {
    format!(
        "persistentvolumeclaim/{} created in namespace {namespace} from VolumeSnapshot {} (size {}, class {}, access {})\n",
        pvc.name,
        pvc.snapshot,
        pvc.size.0,
        pvc.storage_class.as_deref().unwrap_or("cluster default"),
        if pvc.access_modes.is_empty() {
            "ReadWriteOnce".to_string()
        } else {
            pvc.access_modes.join(",")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> RestoreRequest {
        RestoreRequest {
            namespace: "shop".into(),
            snapshot: "data-1".into(),
            pvc: "data-restored".into(),
            ..Default::default()
        }
    }

    fn snapshot(status: serde_json::Value) -> VolumeSnapshot {
        serde_json::from_value(json!({
            "metadata": {"name": "data-1", "namespace": "shop"},
            "spec": {"source": {"persistentVolumeClaimName": "data"}},
            "status": status
        }))
        .unwrap()
    }

    fn source() -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "shop"},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "fast",
                     "resources": {"requests": {"storage": "5Gi"}}}
        }))
        .unwrap()
    }

    #[test]
    fn size_comes_from_restore_size_and_modes_and_class_from_the_source_claim() {
        let vs = snapshot(json!({"readyToUse": true, "restoreSize": "2Gi"}));
        let pvc = restore_pvc(&request(), &vs, Some(&source())).unwrap();
        assert_eq!(pvc.size.0, "2Gi");
        assert_eq!(pvc.access_modes, ["ReadWriteMany"]);
        assert_eq!(pvc.storage_class.as_deref(), Some("fast"));
        assert_eq!(source_claim(&vs), Some("data"));
    }

    #[test]
    fn flags_beat_the_source_claim_and_without_one_defaults_apply() {
        let vs = snapshot(json!({"readyToUse": true, "restoreSize": "2Gi"}));
        let mut req = request();
        req.storage_class = Some("slow".into());
        req.access_modes = vec!["ReadWriteOncePod".into()];
        let pvc = restore_pvc(&req, &vs, Some(&source())).unwrap();
        assert_eq!(pvc.access_modes, ["ReadWriteOncePod"]);
        assert_eq!(pvc.storage_class.as_deref(), Some("slow"));
        let bare = restore_pvc(&request(), &vs, None).unwrap();
        assert!(bare.access_modes.is_empty());
        assert_eq!(bare.storage_class, None);
    }

    #[test]
    fn a_snapshot_that_is_not_ready_is_refused_with_the_controller_error() {
        let vs = snapshot(json!({"readyToUse": false, "error": {"message": "disk full"}}));
        let err = restore_pvc(&request(), &vs, Some(&source())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("VolumeSnapshot shop/data-1 is not ready"),
            "{text}"
        );
        assert!(text.contains("disk full"), "{text}");
    }

    #[test]
    fn without_restore_size_the_source_claim_size_is_used_and_without_both_it_is_an_error() {
        let vs = snapshot(json!({"readyToUse": true}));
        assert_eq!(
            restore_pvc(&request(), &vs, Some(&source()))
                .unwrap()
                .size
                .0,
            "5Gi"
        );
        let err = restore_pvc(&request(), &vs, None).unwrap_err();
        assert!(matches!(err, OpsError::SizeUnknown { .. }), "{err}");
    }
}
