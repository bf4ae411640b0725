//! The CSI snapshot controller and hostpath driver for single snapshots: a VolumeSnapshot of a bound PVC is cut
//! at once (the PVC directory copied into the snapshot store) into a VolumeSnapshotContent that turns
//! readyToUse after the snapshot delay (unless a fault holds it back); a pre-provisioned content is bound to the
//! snapshot that names it; deleting a snapshot deletes its content, and a deleted content with the Delete
//! policy drops its data.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Controllers, DRIVER, SNAP, copy_dir, s};
use crate::state_dir::{pvc_dir, snapshot_dir};

impl Controllers {
    /// A snapshot was added or changed: cut or bind it, then restore the claims that were waiting for it.
    pub(super) fn on_vs_changed(self: &Arc<Self>, vs: &Value) {
        let ns = s(vs, "/metadata/namespace");
        let name = s(vs, "/metadata/name");
        self.reconcile_vs(vs);
        for pvc in self.store.all_of("", "persistentvolumeclaims") {
            if s(&pvc, "/metadata/namespace") == ns
                && s(&pvc, "/spec/dataSource/name") == name
                && s(&pvc, "/status/phase") != "Bound"
            {
                self.reconcile_pvc(&pvc);
            }
        }
    }

    /// A content was deleted: with the Delete policy, its data goes too.
    pub(super) fn on_vsc_deleted(&self, vsc: &Value) {
        if s(vsc, "/spec/deletionPolicy") != "Delete" {
            return;
        }
        let handle = content_handle(vsc);
        if !handle.is_empty() {
            let dir = snapshot_dir(&self.state_dir, &handle);
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(dir.with_extension("json"));
        }
    }

    /// A content appeared: the snapshot it names may bind now.
    pub(super) fn on_vsc_added(self: &Arc<Self>, vsc: &Value) {
        let (rns, rname) = (
            s(vsc, "/spec/volumeSnapshotRef/namespace"),
            s(vsc, "/spec/volumeSnapshotRef/name"),
        );
        if let Some(vs) = self.store.find(SNAP, "volumesnapshots", rns, rname) {
            self.reconcile_vs(&vs);
        }
    }

    /// Record `message` as the snapshot's error (once: an unchanged error is not rewritten).
    fn set_vs_error(&self, ns: &str, name: &str, message: &str) {
        let now = self.store.clock().now_rfc3339();
        self.mutate(SNAP, "volumesnapshots", ns, name, |v| {
            if s(v, "/status/error/message") == message {
                return;
            }
            v["status"]["readyToUse"] = json!(false);
            v["status"]["error"] = json!({"message": message, "time": now});
        });
    }

    /// Cut a new dynamic snapshot (class, bound PVC, data copied now, content created, ready after the delay)
    /// or bind a pre-provisioned one; failures become the snapshot's status error, worded like the snapshot
    /// controller's.
    pub(super) fn reconcile_vs(self: &Arc<Self>, vs: &Value) {
        if vs.pointer("/metadata/deletionTimestamp").is_some()
            || vs
                .pointer("/status/boundVolumeSnapshotContentName")
                .is_some()
        {
            return;
        }
        let ns = s(vs, "/metadata/namespace").to_string();
        let name = s(vs, "/metadata/name").to_string();
        let uid = s(vs, "/metadata/uid").to_string();
        let content_name = s(vs, "/spec/source/volumeSnapshotContentName").to_string();
        if !content_name.is_empty() {
            return self.bind_preprovisioned(vs, &content_name);
        }
        let pvc_name = s(vs, "/spec/source/persistentVolumeClaimName").to_string();
        let class = match s(vs, "/spec/volumeSnapshotClassName") {
            "" => match self.default_class(SNAP, "volumesnapshotclasses", "snapshot.storage.kubernetes.io/is-default-class", None) {
                Some(c) => c,
                None => return self.set_vs_error(&ns, &name, "Failed to set default snapshot class with error cannot find default snapshot class"),
            },
            cname => match self.store.find(SNAP, "volumesnapshotclasses", "", cname) {
                Some(c) => c,
                None => {
                    return self.set_vs_error(
                        &ns,
                        &name,
                        &format!("Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io \"{cname}\" not found"),
                    );
                }
            },
        };
        let Some(pvc) = self
            .store
            .find("", "persistentvolumeclaims", &ns, &pvc_name)
        else {
            return self.set_vs_error(
                &ns,
                &name,
                &format!("Failed to create snapshot content with error failed to get input parameters to create snapshot {name}: \"failed to retrieve PVC {pvc_name} from the lister: \\\"persistentvolumeclaim \\\\\\\"{pvc_name}\\\\\\\" not found\\\"\""),
            );
        };
        if s(&pvc, "/status/phase") != "Bound" {
            return self.set_vs_error(&ns, &name, &format!("the PVC {pvc_name} is not yet bound to a PV, will not attempt to take a snapshot"));
        }
        let vsc_name = format!("snapcontent-{uid}");
        if self
            .store
            .find(SNAP, "volumesnapshotcontents", "", &vsc_name)
            .is_some()
        {
            return;
        }
        let class_name = s(&class, "/metadata/name").to_string();
        // Cut the snapshot now: this is the instant the data is captured.
        let handle = uuid::Uuid::new_v4().to_string();
        let size = match copy_dir(
            &pvc_dir(&self.state_dir, &ns, &pvc_name),
            &snapshot_dir(&self.state_dir, &handle),
        ) {
            Ok(n) => n,
            Err(e) => {
                return self.set_vs_error(
                    &ns,
                    &name,
                    &format!(
                        "Failed to create snapshot content with error copying volume data: {e}"
                    ),
                );
            }
        };
        // The time the driver reports; a fault can shift it away from the real cut.
        let created = self.store.clock().now()
            + chrono::Duration::seconds(self.faults.creation_time_skew(&ns, &name));
        let nanos = created.timestamp_nanos_opt().unwrap_or(0);
        // The hostpath driver reports the volume's capacity as the restore size (in bytes on the content).
        let capacity_q = s(&pvc, "/status/capacity/storage").to_string();
        let restore_bytes = quantity_bytes(&capacity_q).unwrap_or(size as i64);
        let meta = json!({"creationTime": nanos, "size": size, "restoreSize": restore_bytes, "sourceVolume": s(&pvc, "/metadata/uid")});
        let _ = std::fs::write(
            snapshot_dir(&self.state_dir, &handle).with_extension("json"),
            meta.to_string(),
        );
        let vsc = json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
            "metadata": {"name": vsc_name},
            "spec": {"deletionPolicy": class.get("deletionPolicy").cloned().unwrap_or(json!("Delete")), "driver": class.get("driver").cloned().unwrap_or(json!(DRIVER)),
                     "source": {"volumeHandle": s(&pvc, "/metadata/uid")}, "sourceVolumeMode": "Filesystem", "volumeSnapshotClassName": class_name,
                     "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "name": name, "namespace": ns, "uid": uid, "resourceVersion": vs["metadata"]["resourceVersion"]}},
            "status": {"snapshotHandle": handle, "creationTime": nanos, "restoreSize": restore_bytes, "readyToUse": false}});
        if self.create(SNAP, "volumesnapshotcontents", vsc).is_err() {
            return;
        }
        let capacity = pvc
            .pointer("/status/capacity/storage")
            .cloned()
            .unwrap_or(json!("1Gi"));
        self.mutate(SNAP, "volumesnapshots", &ns, &name, |v| {
            v["spec"]["volumeSnapshotClassName"] = json!(class_name);
            v["status"] = json!({"boundVolumeSnapshotContentName": vsc_name, "readyToUse": false});
        });
        let created_rfc = created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.arm_ready(ns, name, vsc_name, created_rfc, capacity);
    }

    /// After the snapshot delay (and while no fault holds it back) mark content and snapshot readyToUse.
    fn arm_ready(
        self: &Arc<Self>,
        ns: String,
        name: String,
        vsc_name: String,
        created: String,
        capacity: Value,
    ) {
        let me = self.clone();
        let delay = self.snapshot_delay;
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            tokio::time::sleep(delay + me.faults.snapshot_slowness(&ns, &name)).await;
            while me.faults.snapshot_never_ready(&ns, &name) {
                tokio::time::sleep(Duration::from_millis(100).max(delay)).await;
            }
            let _ = tokio::task::spawn_blocking(move || {
                me.mutate(SNAP, "volumesnapshotcontents", "", &vsc_name, |c| c["status"]["readyToUse"] = json!(true));
                me.mutate(SNAP, "volumesnapshots", &ns, &name, |v| {
                    if s(v, "/status/boundVolumeSnapshotContentName") == vsc_name {
                        v["status"] = json!({"boundVolumeSnapshotContentName": vsc_name, "creationTime": created, "readyToUse": true, "restoreSize": capacity});
                    }
                });
            })
            .await;
        });
    }

    /// Bind a snapshot to the pre-provisioned content it names, ready at once with the content's time and size.
    fn bind_preprovisioned(&self, vs: &Value, content_name: &str) {
        let ns = s(vs, "/metadata/namespace").to_string();
        let name = s(vs, "/metadata/name").to_string();
        let Some(vsc) = self
            .store
            .find(SNAP, "volumesnapshotcontents", "", content_name)
        else {
            return self.set_vs_error(
                &ns,
                &name,
                &format!("VolumeSnapshotContent {content_name} not found"),
            );
        };
        if s(&vsc, "/spec/volumeSnapshotRef/name") != name
            || s(&vsc, "/spec/volumeSnapshotRef/namespace") != ns
        {
            return self.set_vs_error(
                &ns,
                &name,
                &format!(
                    "VolumeSnapshotContent {content_name} is bound to a different snapshot {}/{}",
                    s(&vsc, "/spec/volumeSnapshotRef/namespace"),
                    s(&vsc, "/spec/volumeSnapshotRef/name")
                ),
            );
        }
        let handle = content_handle(&vsc);
        let meta: Value =
            std::fs::read_to_string(snapshot_dir(&self.state_dir, &handle).with_extension("json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(json!({}));
        let nanos = vsc
            .pointer("/status/creationTime")
            .and_then(Value::as_i64)
            .or_else(|| meta.get("creationTime").and_then(Value::as_i64))
            .unwrap_or_else(|| self.store.clock().now().timestamp_nanos_opt().unwrap_or(0));
        let size = vsc
            .pointer("/status/restoreSize")
            .and_then(Value::as_i64)
            .or_else(|| meta.get("restoreSize").and_then(Value::as_i64))
            .or_else(|| meta.get("size").and_then(Value::as_i64))
            .unwrap_or(0);
        let uid = s(vs, "/metadata/uid").to_string();
        self.mutate(SNAP, "volumesnapshotcontents", "", content_name, |c| {
            c["spec"]["volumeSnapshotRef"]["uid"] = json!(uid);
            c["status"] = json!({"snapshotHandle": handle, "creationTime": nanos, "restoreSize": size, "readyToUse": true});
        });
        let created = chrono::DateTime::from_timestamp_nanos(nanos)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        // A member of a group snapshot names its group in its status, as the snapshot controller writes it.
        let group = vs
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| refs.iter().find(|r| s(r, "/kind") == "VolumeGroupSnapshot"))
            .map(|r| s(r, "/name").to_string());
        self.mutate(SNAP, "volumesnapshots", &ns, &name, |v| {
            v["status"] = json!({"boundVolumeSnapshotContentName": content_name, "creationTime": created, "readyToUse": true, "restoreSize": quantity(size)});
            if let Some(g) = &group {
                v["status"]["volumeGroupSnapshotName"] = json!(g);
            }
        });
    }

    /// A snapshot went: its content goes too when the Delete policy says so.
    pub(super) fn on_vs_deleted(&self, vs: &Value) {
        let bound = s(vs, "/status/boundVolumeSnapshotContentName").to_string();
        let name = if bound.is_empty() {
            format!("snapcontent-{}", s(vs, "/metadata/uid"))
        } else {
            bound
        };
        if let Some(vsc) = self.store.find(SNAP, "volumesnapshotcontents", "", &name)
            && s(&vsc, "/spec/deletionPolicy") == "Delete"
            && s(&vsc, "/spec/volumeSnapshotRef/name") == s(vs, "/metadata/name")
        {
            self.delete(SNAP, "volumesnapshotcontents", "", &name);
        }
    }
}

/// The snapshot handle of a content (status for dynamic, spec.source for pre-provisioned).
pub fn content_handle(vsc: &Value) -> String {
    let st = s(vsc, "/status/snapshotHandle");
    if st.is_empty() {
        s(vsc, "/spec/source/snapshotHandle").to_string()
    } else {
        st.to_string()
    }
}

/// Bytes as a Kubernetes quantity, in the largest binary unit that divides it (`2Gi`, `512Mi`, `17`).
fn quantity(bytes: i64) -> Value {
    for (unit, factor) in [
        ("Ti", 1_i64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes > 0 && bytes % factor == 0 {
            return json!(format!("{}{unit}", bytes / factor));
        }
    }
    json!(bytes.to_string())
}

/// A Kubernetes quantity (`2Gi`, `500M`, `1024`) in bytes; None for forms the simulator does not need.
pub fn quantity_bytes(q: &str) -> Option<i64> {
    let q = q.trim();
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: i64 = num.parse().ok()?;
    let factor: i64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_convert_both_ways() {
        assert_eq!(quantity_bytes("2Gi"), Some(2 << 30));
        assert_eq!(quantity_bytes("500M"), Some(500_000_000));
        assert_eq!(quantity_bytes("1024"), Some(1024));
        assert_eq!(quantity_bytes("1.5Gi"), None);
        assert_eq!(quantity(2 << 30), json!("2Gi"));
        assert_eq!(quantity(3 << 20), json!("3Mi"));
        assert_eq!(quantity(17), json!("17"));
    }
}
