//! VolumeGroupSnapshots: every Bound PVC matching the group's selector is copied at one instant, each into a
//! VolumeSnapshot + content owned by the group, under one VolumeGroupSnapshotContent that is ready at once.
//! Pre-provisioned group contents are not simulated (the group gets an error saying so).
//!
//! Deleting a group deletes its members (they are owned by it, so the garbage collector takes them, and each
//! member's content follows its own deletionPolicy) and, with the `Delete` policy, its group content: what the
//! snapshot controller does. That is the only way members go while their group exists.

use serde_json::{Value, json};

use super::snapshots::quantity_bytes;
use super::{Controllers, DRIVER, GROUP_SNAP, SNAP, copy_dir, owner_ref, s};
use crate::selectors::LabelSelector;
use crate::state_dir::{pvc_dir, snapshot_dir};

impl Controllers {
    /// A group snapshot went: its bound group content goes too when its deletionPolicy says `Delete`.
    pub(super) fn on_vgs_deleted(&self, vgs: &Value) {
        let content = s(vgs, "/status/boundVolumeGroupSnapshotContentName");
        if content.is_empty() {
            return;
        }
        if let Some(gsc) = self
            .store
            .find(GROUP_SNAP, "volumegroupsnapshotcontents", "", content)
            && s(&gsc, "/spec/deletionPolicy") == "Delete"
            && s(&gsc, "/spec/volumeGroupSnapshotRef/name") == s(vgs, "/metadata/name")
        {
            self.delete(GROUP_SNAP, "volumegroupsnapshotcontents", "", content);
        }
    }

    /// Cut a new group snapshot: every Bound PVC its selector matches, copied at one instant.
    pub(super) fn reconcile_vgs(&self, vgs: &Value) {
        if vgs
            .pointer("/status/boundVolumeGroupSnapshotContentName")
            .is_some()
            || vgs.pointer("/metadata/deletionTimestamp").is_some()
        {
            return;
        }
        let ns = s(vgs, "/metadata/namespace").to_string();
        let name = s(vgs, "/metadata/name").to_string();
        let uid = s(vgs, "/metadata/uid").to_string();
        let set_error = |msg: &str| {
            let now = self.store.clock().now_rfc3339();
            self.mutate(GROUP_SNAP, "volumegroupsnapshots", &ns, &name, |v| {
                if s(v, "/status/error/message") != msg {
                    v["status"] =
                        json!({"readyToUse": false, "error": {"message": msg, "time": now}});
                }
            });
        };
        let Some(selector) = vgs.pointer("/spec/source/selector") else {
            return set_error(
                "pre-provisioned VolumeGroupSnapshotContent binding is not supported by kube-sim",
            );
        };
        let Ok(selector) = LabelSelector::from_object(selector) else {
            return set_error("invalid selector");
        };
        let class = match s(vgs, "/spec/volumeGroupSnapshotClassName") {
            "" => self.default_class(
                GROUP_SNAP,
                "volumegroupsnapshotclasses",
                "groupsnapshot.storage.kubernetes.io/is-default-class",
                None,
            ),
            c => self
                .store
                .find(GROUP_SNAP, "volumegroupsnapshotclasses", "", c),
        };
        let Some(class) = class else {
            return set_error(
                "Failed to set default group snapshot class with error cannot find default group snapshot class",
            );
        };
        let pvcs: Vec<Value> = self
            .store
            .all_of("", "persistentvolumeclaims")
            .into_iter()
            .filter(|p| {
                s(p, "/metadata/namespace") == ns
                    && selector.matches_object(p)
                    && s(p, "/status/phase") == "Bound"
            })
            .collect();
        if pvcs.is_empty() {
            return set_error(&format!(
                "Failed to create group snapshot content with error no PVCs matching the selector of {ns}/{name}"
            ));
        }
        let gsc_name = format!("groupsnapcontent-{uid}");
        if self
            .store
            .find(GROUP_SNAP, "volumegroupsnapshotcontents", "", &gsc_name)
            .is_some()
        {
            return;
        }
        // One instant for the whole group.
        let created = self.store.clock().now();
        let nanos = created.timestamp_nanos_opt().unwrap_or(0);
        let deletion = class
            .get("deletionPolicy")
            .cloned()
            .unwrap_or(json!("Delete"));
        let driver = class.get("driver").cloned().unwrap_or(json!(DRIVER));
        let group_handle = uuid::Uuid::new_v4().to_string();
        let mut handles = Vec::new();
        let mut infos = Vec::new();
        for pvc in &pvcs {
            let pvc_name = s(pvc, "/metadata/name");
            let handle = uuid::Uuid::new_v4().to_string();
            let Ok(size) = copy_dir(
                &pvc_dir(&self.state_dir, &ns, pvc_name),
                &snapshot_dir(&self.state_dir, &handle),
            ) else {
                return set_error("Failed to create group snapshot: copying volume data failed");
            };
            let volume_handle = s(pvc, "/metadata/uid").to_string();
            handles.push(json!(volume_handle));
            let restore = quantity_bytes(s(pvc, "/status/capacity/storage")).unwrap_or(size as i64);
            // The member's restore size is its claim's capacity, as a single snapshot's is.
            let _ = std::fs::write(
                snapshot_dir(&self.state_dir, &handle).with_extension("json"),
                json!({"creationTime": nanos, "size": size, "restoreSize": restore}).to_string(),
            );
            infos.push(json!({"volumeHandle": volume_handle, "snapshotHandle": handle, "creationTime": nanos, "readyToUse": true, "restoreSize": restore}));
            let short = &handle[..8];
            let vs_name = format!("snapshot-{short}-{pvc_name}");
            let vsc_name = format!("snapcontent-{short}-{pvc_name}");
            let _ = self.create(
                SNAP,
                "volumesnapshotcontents",
                json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                       "metadata": {"name": vsc_name, "annotations": {"groupsnapshot.storage.k8s.io/volumeGroupSnapshotHandle": group_handle}},
                       "spec": {"deletionPolicy": deletion, "driver": driver, "source": {"snapshotHandle": handle}, "sourceVolumeMode": "Filesystem",
                                "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "name": vs_name, "namespace": ns}}}),
            );
            let _ = self.create(
                SNAP,
                "volumesnapshots",
                json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                       "metadata": {"name": vs_name, "namespace": ns, "labels": {"groupsnapshot.storage.k8s.io/volumeGroupSnapshotName": name},
                                    "ownerReferences": [owner_ref(vgs)]},
                       "spec": {"source": {"volumeSnapshotContentName": vsc_name}}}),
            );
        }
        let _ = self.create(
            GROUP_SNAP,
            "volumegroupsnapshotcontents",
            json!({"apiVersion": "groupsnapshot.storage.k8s.io/v1", "kind": "VolumeGroupSnapshotContent",
                   "metadata": {"name": gsc_name},
                   "spec": {"deletionPolicy": deletion, "driver": driver, "source": {"volumeHandles": handles},
                            "volumeGroupSnapshotClassName": class["metadata"]["name"],
                            "volumeGroupSnapshotRef": {"apiVersion": "groupsnapshot.storage.k8s.io/v1", "kind": "VolumeGroupSnapshot", "name": name, "namespace": ns, "uid": uid}},
                   "status": {"volumeGroupSnapshotHandle": group_handle, "creationTime": nanos, "readyToUse": true, "volumeSnapshotInfoList": infos}}),
        );
        let created_rfc = created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.mutate(GROUP_SNAP, "volumegroupsnapshots", &ns, &name, |v| {
            v["status"] = json!({"boundVolumeGroupSnapshotContentName": gsc_name, "creationTime": created_rfc, "readyToUse": true});
        });
    }
}
