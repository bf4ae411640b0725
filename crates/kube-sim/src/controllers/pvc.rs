//! The PVC side of the CSI hostpath driver: a claim gets a backing directory under the state dir and a bound
//! PersistentVolume, or its data copied from a ready VolumeSnapshot when that is its data source (Pending until
//! then); a deleted claim takes its directory and volume with it.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::snapshots::content_handle;
use super::{Controllers, DRIVER, SNAP, copy_dir, s};
use crate::state_dir::{pvc_dir, snapshot_dir};

impl Controllers {
    /// A claim was deleted: drop its data and its volume.
    pub(super) fn on_pvc_deleted(&self, pvc: &Value) {
        let ns = s(pvc, "/metadata/namespace");
        let name = s(pvc, "/metadata/name");
        let _ = std::fs::remove_dir_all(pvc_dir(&self.state_dir, ns, name));
        let pv = s(pvc, "/spec/volumeName").to_string();
        if !pv.is_empty() {
            self.delete("", "persistentvolumes", "", &pv);
        }
    }

    /// A claim was added or changed: bind it, then cut the snapshots that were waiting for it.
    pub(super) fn on_pvc_changed(self: &Arc<Self>, pvc: &Value) {
        let ns = s(pvc, "/metadata/namespace");
        let name = s(pvc, "/metadata/name");
        self.reconcile_pvc(pvc);
        for vs in self.store.all_of(SNAP, "volumesnapshots") {
            if s(&vs, "/metadata/namespace") == ns
                && s(&vs, "/spec/source/persistentVolumeClaimName") == name
            {
                self.reconcile_vs(&vs);
            }
        }
    }

    /// Bind an unbound claim: its directory (restored from the snapshot it names, if any), a PV, status Bound.
    pub(super) fn reconcile_pvc(&self, pvc: &Value) {
        let ns = s(pvc, "/metadata/namespace").to_string();
        let name = s(pvc, "/metadata/name").to_string();
        let dir = pvc_dir(&self.state_dir, &ns, &name);
        if s(pvc, "/status/phase") == "Bound" {
            let _ = std::fs::create_dir_all(&dir);
            return;
        }
        if pvc.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let mut restore_from: Option<PathBuf> = None;
        if s(pvc, "/spec/dataSource/kind") == "VolumeSnapshot"
            || s(pvc, "/spec/dataSourceRef/kind") == "VolumeSnapshot"
        {
            let vs_name = if s(pvc, "/spec/dataSource/name").is_empty() {
                s(pvc, "/spec/dataSourceRef/name")
            } else {
                s(pvc, "/spec/dataSource/name")
            };
            let Some(vs) = self.store.find(SNAP, "volumesnapshots", &ns, vs_name) else {
                return self.set_pending(&ns, &name);
            };
            if vs.pointer("/status/readyToUse").and_then(Value::as_bool) != Some(true) {
                return self.set_pending(&ns, &name);
            }
            let Some(vsc) = self.store.find(
                SNAP,
                "volumesnapshotcontents",
                "",
                s(&vs, "/status/boundVolumeSnapshotContentName"),
            ) else {
                return self.set_pending(&ns, &name);
            };
            restore_from = Some(snapshot_dir(&self.state_dir, &content_handle(&vsc)));
        }
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        if let Some(src) = restore_from
            && copy_dir(&src, &dir).is_err()
        {
            return self.set_pending(&ns, &name);
        }
        let uid = s(pvc, "/metadata/uid").to_string();
        let pv_name = format!("pvc-{uid}");
        let size = pvc
            .pointer("/spec/resources/requests/storage")
            .cloned()
            .unwrap_or(json!("1Gi"));
        let modes = pvc
            .pointer("/spec/accessModes")
            .cloned()
            .unwrap_or(json!(["ReadWriteOnce"]));
        let sc = pvc
            .pointer("/spec/storageClassName")
            .cloned()
            .unwrap_or(json!("csi-hostpath-sc"));
        let class = self.store.find(
            "storage.k8s.io",
            "storageclasses",
            "",
            sc.as_str().unwrap_or_default(),
        );
        let driver = class
            .as_ref()
            .and_then(|c| c.get("provisioner"))
            .and_then(Value::as_str)
            .unwrap_or(DRIVER);
        let _ = self.create(
            "",
            "persistentvolumes",
            json!({"apiVersion": "v1", "kind": "PersistentVolume",
                   "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": driver}},
                   "spec": {"capacity": {"storage": size}, "accessModes": modes, "persistentVolumeReclaimPolicy": "Delete", "storageClassName": sc,
                            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": name, "uid": uid, "apiVersion": "v1"},
                            "csi": {"driver": driver, "volumeHandle": uid}, "volumeMode": "Filesystem"},
                   "status": {"phase": "Bound"}}),
        );
        self.mutate("", "persistentvolumeclaims", &ns, &name, |p| {
            p["spec"]["volumeName"] = json!(pv_name);
            if p.pointer("/spec/storageClassName").is_none() {
                p["spec"]["storageClassName"] = sc.clone();
            }
            p["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
            p["status"] =
                json!({"phase": "Bound", "accessModes": modes, "capacity": {"storage": size}});
        });
    }

    fn set_pending(&self, ns: &str, name: &str) {
        self.mutate("", "persistentvolumeclaims", ns, name, |p| {
            p["status"] = json!({"phase": "Pending"})
        });
    }
}
