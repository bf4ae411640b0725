//! The cluster behind the API, on the simulated clock: namespaces become Active, PVCs get a backing directory
//! and become Bound (with a PV), deployments/statefulsets/jobs get pods, pods run and report Ready, and the CSI
//! snapshot controller + hostpath driver turn VolumeSnapshots (and VolumeGroupSnapshots) into contents and
//! copies of PVC directories in a snapshot store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::faults::Faults;
use crate::pods::{pod_status, set_pod_phase};
use crate::selectors::LabelSelector;
use crate::state_dir::{pvc_dir, snapshot_dir};
use crate::status::ApiError;
use crate::store::{Event, EventType, Part, Store, random_suffix};

/// Kept at the path tests have used; the type lives with the pod phases.
pub use crate::pods::PodPhase;

const SNAP: &str = "snapshot.storage.k8s.io";
const GROUP_SNAP: &str = "groupsnapshot.storage.k8s.io";
/// Driver name of the simulated CSI hostpath driver.
pub const DRIVER: &str = "hostpath.csi.k8s.io";

/// What the controllers need.
#[derive(Debug, Clone)]
pub struct Controllers {
    /// Store.
    pub store: Arc<Store>,
    /// Faults (snapshot never ready).
    pub faults: Faults,
    /// State directory.
    pub state_dir: PathBuf,
    /// Delay between snapshot creation and readyToUse.
    pub snapshot_delay: Duration,
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn owner_ref(owner: &Value) -> Value {
    json!({"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true})
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|r| {
            r.iter()
                .any(|o| o.get("uid").and_then(Value::as_str) == Some(uid))
        })
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut total = 0;
    if !from.exists() {
        return Ok(0);
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if ty.is_dir() {
            total += copy_dir(&entry.path(), &dest)?;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            let _ = std::fs::remove_file(&dest);
            std::os::unix::fs::symlink(target, &dest)?;
        } else {
            total += std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(total)
}

/// Whether a Job has finished: `Some(true)` with a true Complete condition, `Some(false)` with a true Failed one.
fn job_succeeded(job: &Value) -> Option<bool> {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .filter(|c| s(c, "/status") == "True")
        .find_map(|c| match s(c, "/type") {
            "Complete" => Some(true),
            "Failed" => Some(false),
            _ => None,
        })
}

impl Controllers {
    /// The cluster's own update of an object by group + plural: every part writable; None when the object (or
    /// its resource) is missing.
    fn mutate(
        &self,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let res = self.store.resource(group, plural)?;
        let version = res.preferred_version().to_string();
        self.store
            .modify(&res, &version, ns, name, Part::Raw, false, |old| {
                let mut new = old.clone();
                f(&mut new);
                Ok(new)
            })
            .ok()
    }

    /// The cluster's own create of an object, in the namespace its metadata names.
    fn create(&self, group: &str, plural: &str, obj: Value) -> Result<Value, ApiError> {
        let res = self
            .store
            .resource(group, plural)
            .ok_or_else(|| ApiError::not_found(group, plural, s(&obj, "/metadata/name")))?;
        let ns = s(&obj, "/metadata/namespace").to_string();
        let version = res.preferred_version().to_string();
        self.store
            .create(&res, &version, &ns, obj, Part::Raw, false)
    }

    /// The cluster's own delete (finalizers honoured); None when already gone.
    fn delete(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let res = self.store.resource(group, plural)?;
        self.store.delete(&res, ns, name, None, None, false).ok()
    }

    /// Run until the task is aborted. `rx` must be subscribed before any object the controllers should see
    /// is written (subscribe synchronously, then spawn this).
    pub async fn run(self: Arc<Self>, mut rx: crate::store::Subscription) {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.handle(&ev)).await;
                }
                Err(RecvError::Lagged(_)) => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.resync()).await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Reconcile everything (after missing events).
    pub fn resync(self: &Arc<Self>) {
        for (g, p) in [
            ("", "persistentvolumeclaims"),
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            (SNAP, "volumesnapshots"),
            (GROUP_SNAP, "volumegroupsnapshots"),
        ] {
            for obj in self.store.all_of(g, p) {
                let ev = Event {
                    rv: 0,
                    etype: EventType::Modified,
                    group: g.into(),
                    plural: p.into(),
                    namespace: s(&obj, "/metadata/namespace").into(),
                    object: obj,
                };
                self.handle(&ev);
            }
        }
    }

    fn handle(self: &Arc<Self>, ev: &Event) {
        let obj = &ev.object;
        let ns = s(obj, "/metadata/namespace").to_string();
        let name = s(obj, "/metadata/name").to_string();
        match (ev.group.as_str(), ev.plural.as_str(), ev.etype) {
            ("", "namespaces", EventType::Added) if obj.pointer("/status/phase").is_none() => {
                self.mutate("", "namespaces", "", &name, |n| {
                    n["status"] = json!({"phase": "Active"})
                });
            }
            ("", "persistentvolumeclaims", EventType::Deleted) => {
                let _ = std::fs::remove_dir_all(pvc_dir(&self.state_dir, &ns, &name));
                let pv = s(obj, "/spec/volumeName").to_string();
                if !pv.is_empty() {
                    self.delete("", "persistentvolumes", "", &pv);
                }
            }
            ("", "persistentvolumeclaims", _) => {
                self.reconcile_pvc(obj);
                for vs in self.store.all_of(SNAP, "volumesnapshots") {
                    if s(&vs, "/metadata/namespace") == ns
                        && s(&vs, "/spec/source/persistentVolumeClaimName") == name
                    {
                        self.reconcile_vs(&vs);
                    }
                }
            }
            ("", "pods", EventType::Added) if obj.pointer("/status/phase").is_none() => {
                let now = self.store.clock().now_rfc3339();
                self.mutate("", "pods", &ns, &name, |p| {
                    p["spec"]["nodeName"] = json!("kube-sim");
                    let st = pod_status(p, PodPhase::Running, &now);
                    p["status"] = st;
                });
            }
            ("", "pods", etype) => {
                if etype != EventType::Deleted && PodPhase::is_terminal(s(obj, "/status/phase")) {
                    self.finish_job_of(obj);
                }
                for sts in self.store.all_of("apps", "statefulsets") {
                    if owned_by(obj, s(&sts, "/metadata/uid")) {
                        if etype == EventType::Deleted {
                            // Like the StatefulSet controller: a deleted pod is replaced.
                            self.reconcile_workload("statefulsets", &sts);
                        } else {
                            self.update_workload_status("apps", "statefulsets", &sts);
                        }
                    }
                }
                for rs in self.store.all_of("apps", "replicasets") {
                    if !owned_by(obj, s(&rs, "/metadata/uid")) {
                        continue;
                    }
                    self.update_workload_status("apps", "replicasets", &rs);
                    for d in self.store.all_of("apps", "deployments") {
                        if owned_by(&rs, s(&d, "/metadata/uid")) {
                            if etype == EventType::Deleted {
                                // Like the ReplicaSet controller: a deleted pod is replaced.
                                self.reconcile_workload("deployments", &d);
                            } else {
                                self.update_workload_status("apps", "deployments", &d);
                            }
                        }
                    }
                }
            }
            ("apps", "replicasets", EventType::Deleted) => {
                for d in self.store.all_of("apps", "deployments") {
                    if owned_by(obj, s(&d, "/metadata/uid")) {
                        self.reconcile_workload("deployments", &d);
                    }
                }
            }
            ("apps", "deployments" | "statefulsets", EventType::Added | EventType::Modified) => {
                self.reconcile_workload(&ev.plural, obj)
            }
            ("batch", "jobs", EventType::Added) => self.reconcile_job(obj),
            ("batch", "jobs", EventType::Modified) => self.end_job_pods(obj),
            (SNAP, "volumesnapshots", EventType::Deleted) => self.on_vs_deleted(obj),
            (SNAP, "volumesnapshots", _) => {
                self.reconcile_vs(obj);
                for pvc in self.store.all_of("", "persistentvolumeclaims") {
                    if s(&pvc, "/metadata/namespace") == ns
                        && s(&pvc, "/spec/dataSource/name") == name
                        && s(&pvc, "/status/phase") != "Bound"
                    {
                        self.reconcile_pvc(&pvc);
                    }
                }
            }
            (SNAP, "volumesnapshotcontents", EventType::Deleted)
                if s(obj, "/spec/deletionPolicy") == "Delete" =>
            {
                let handle = content_handle(obj);
                if !handle.is_empty() {
                    let dir = snapshot_dir(&self.state_dir, &handle);
                    let _ = std::fs::remove_dir_all(&dir);
                    let _ = std::fs::remove_file(dir.with_extension("json"));
                }
            }
            (SNAP, "volumesnapshotcontents", EventType::Added) => {
                let (rns, rname) = (
                    s(obj, "/spec/volumeSnapshotRef/namespace"),
                    s(obj, "/spec/volumeSnapshotRef/name"),
                );
                if let Some(vs) = self.store.find(SNAP, "volumesnapshots", rns, rname) {
                    self.reconcile_vs(&vs);
                }
            }
            (GROUP_SNAP, "volumegroupsnapshots", EventType::Added | EventType::Modified) => {
                self.reconcile_vgs(obj)
            }
            _ => {}
        }
    }

    fn reconcile_pvc(&self, pvc: &Value) {
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
        let _ = self.create(
            "",
            "persistentvolumes",
            json!({"apiVersion": "v1", "kind": "PersistentVolume",
                   "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": DRIVER}},
                   "spec": {"capacity": {"storage": size}, "accessModes": modes, "persistentVolumeReclaimPolicy": "Delete", "storageClassName": sc,
                            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": name, "uid": uid, "apiVersion": "v1"},
                            "csi": {"driver": DRIVER, "volumeHandle": uid}, "volumeMode": "Filesystem"},
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

    fn pod_from_template(
        &self,
        owner: &Value,
        name: &str,
        extra_labels: &[(&str, String)],
        template: &Value,
    ) -> Value {
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        for (k, v) in extra_labels {
            labels[*k] = json!(v);
        }
        let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
        spec["nodeName"] = json!("kube-sim");
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": owner["metadata"]["namespace"], "labels": labels,
                         "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
                         "ownerReferences": [owner_ref(owner)]},
            "spec": spec});
        let now = self.store.clock().now_rfc3339();
        pod["status"] = pod_status(&pod, PodPhase::Running, &now);
        pod
    }

    fn reconcile_workload(&self, plural: &str, w: &Value) {
        if w.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let ns = s(w, "/metadata/namespace").to_string();
        let name = s(w, "/metadata/name").to_string();
        let uid = s(w, "/metadata/uid").to_string();
        let replicas = w
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        let template = w.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let pods: Vec<Value> = self
            .store
            .all_of("", "pods")
            .into_iter()
            .filter(|p| s(p, "/metadata/namespace") == ns && owned_by(p, &uid))
            .collect();
        if plural == "statefulsets" {
            for claim in w
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                for i in 0..replicas {
                    let pvc_name = format!("{}-{name}-{i}", s(&claim, "/metadata/name"));
                    if self
                        .store
                        .find("", "persistentvolumeclaims", &ns, &pvc_name)
                        .is_none()
                    {
                        let mut pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": pvc_name, "namespace": ns,
                            "labels": claim.pointer("/metadata/labels").cloned().unwrap_or(json!({}))}, "spec": claim.get("spec").cloned().unwrap_or(json!({}))});
                        pvc["metadata"]["labels"]["app.kubernetes.io/managed-by-statefulset"] =
                            json!(name);
                        let _ = self.create("", "persistentvolumeclaims", pvc);
                    }
                }
            }
            for i in 0..replicas {
                let pod_name = format!("{name}-{i}");
                let existing = pods.iter().find(|p| s(p, "/metadata/name") == pod_name);
                if existing.is_some_and(|p| {
                    s(p, "/metadata/labels/controller-revision-hash") == format!("{name}-{hash}")
                }) {
                    continue;
                }
                if existing.is_some() {
                    self.delete("", "pods", &ns, &pod_name);
                }
                let mut t = template.clone();
                for claim in w
                    .pointer("/spec/volumeClaimTemplates")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    let cname = s(&claim, "/metadata/name").to_string();
                    let vols = t["spec"]["volumes"].as_array().cloned().unwrap_or_default();
                    if !vols.iter().any(|v| s(v, "/name") == cname) {
                        let mut vols = vols;
                        vols.push(json!({"name": cname, "persistentVolumeClaim": {"claimName": format!("{cname}-{name}-{i}")}}));
                        t["spec"]["volumes"] = json!(vols);
                    }
                }
                let pod = self.pod_from_template(
                    w,
                    &pod_name,
                    &[
                        ("controller-revision-hash", format!("{name}-{hash}")),
                        ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                        ("apps.kubernetes.io/pod-index", i.to_string()),
                    ],
                    &t,
                );
                let _ = self.create("", "pods", pod);
            }
            for p in &pods {
                let pn = s(p, "/metadata/name");
                let idx = pn.rsplit('-').next().and_then(|i| i.parse::<usize>().ok());
                if idx.is_none_or(|i| i >= replicas) {
                    self.delete("", "pods", &ns, pn);
                }
            }
        } else {
            // Deployment → ReplicaSet `NAME-HASH` → pods, with owner references as a real cluster has them.
            let rs_name = format!("{name}-{hash}");
            for rs in self.store.all_of("apps", "replicasets") {
                if s(&rs, "/metadata/namespace") == ns
                    && owned_by(&rs, &uid)
                    && s(&rs, "/metadata/name") != rs_name
                {
                    self.delete("apps", "replicasets", &ns, s(&rs, "/metadata/name"));
                }
            }
            let rs = match self.store.find("apps", "replicasets", &ns, &rs_name) {
                Some(rs)
                    if rs.pointer("/spec/replicas").and_then(Value::as_i64)
                        == Some(replicas as i64) =>
                {
                    Some(rs)
                }
                Some(_) => self.mutate("apps", "replicasets", &ns, &rs_name, |r| {
                    r["spec"]["replicas"] = json!(replicas)
                }),
                None => {
                    let mut rs_template = template.clone();
                    rs_template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                    let mut selector = w.pointer("/spec/selector").cloned().unwrap_or(json!({}));
                    selector["matchLabels"]["pod-template-hash"] = json!(hash);
                    let revision = w
                        .pointer("/metadata/generation")
                        .cloned()
                        .unwrap_or(json!(1))
                        .to_string();
                    self.create(
                            "apps",
                            "replicasets",
                            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                   "metadata": {"name": rs_name, "namespace": ns, "labels": rs_template["metadata"]["labels"].clone(),
                                                "annotations": {"deployment.kubernetes.io/revision": revision},
                                                "ownerReferences": [owner_ref(w)]},
                                   "spec": {"replicas": replicas, "selector": selector, "template": rs_template}}),
                        )
                        .ok()
                }
            };
            let Some(rs) = rs else { return };
            let rs_uid = s(&rs, "/metadata/uid").to_string();
            let current: Vec<Value> = self
                .store
                .all_of("", "pods")
                .into_iter()
                .filter(|p| s(p, "/metadata/namespace") == ns && owned_by(p, &rs_uid))
                .collect();
            for p in current.iter().skip(replicas) {
                self.delete("", "pods", &ns, s(p, "/metadata/name"));
            }
            for _ in current.len()..replicas {
                let pod_name = format!("{rs_name}-{}", random_suffix(5));
                let pod = self.pod_from_template(
                    &rs,
                    &pod_name,
                    &[("pod-template-hash", hash.clone())],
                    &template,
                );
                let _ = self.create("", "pods", pod);
            }
            if let Some(fresh) = self.store.find("apps", "replicasets", &ns, &rs_name) {
                self.update_workload_status("apps", "replicasets", &fresh);
            }
        }
        if let Some(fresh) = self.store.find("apps", plural, &ns, &name) {
            self.update_workload_status("apps", plural, &fresh);
        }
    }

    fn update_workload_status(&self, group: &str, plural: &str, w: &Value) {
        let ns = s(w, "/metadata/namespace").to_string();
        let name = s(w, "/metadata/name").to_string();
        let uid = s(w, "/metadata/uid").to_string();
        // A Deployment's pods belong to its ReplicaSets.
        let owners: Vec<String> = if plural == "deployments" {
            self.store
                .all_of("apps", "replicasets")
                .iter()
                .filter(|r| s(r, "/metadata/namespace") == ns && owned_by(r, &uid))
                .map(|r| s(r, "/metadata/uid").to_string())
                .collect()
        } else {
            vec![uid.clone()]
        };
        let pods: Vec<Value> = self
            .store
            .all_of("", "pods")
            .into_iter()
            .filter(|p| s(p, "/metadata/namespace") == ns && owners.iter().any(|o| owned_by(p, o)))
            .collect();
        let ready = pods
            .iter()
            .filter(|p| {
                p.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
                    })
            })
            .count();
        let total = pods.len();
        let generation = w
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let want = w
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let now = self.store.clock().now_rfc3339();
        self.mutate(group, plural, &ns, &name, |o| {
            let available = if ready as i64 >= want { "True" } else { "False" };
            let prev_time = o.pointer("/status/conditions/0/lastTransitionTime").cloned();
            let mut st = json!({"observedGeneration": generation, "replicas": total, "readyReplicas": ready, "availableReplicas": ready});
            match plural {
                "replicasets" => st["fullyLabeledReplicas"] = json!(total),
                "statefulsets" => {
                    st["updatedReplicas"] = json!(total);
                    st["currentReplicas"] = json!(total);
                }
                _ => st["updatedReplicas"] = json!(total),
            }
            if plural == "deployments" {
                let same = o.pointer("/status/conditions/0/status").and_then(Value::as_str) == Some(available);
                let t = if same { prev_time.unwrap_or(json!(now)) } else { json!(now) };
                st["conditions"] = json!([{"type": "Available", "status": available, "reason": "MinimumReplicasAvailable", "lastTransitionTime": t, "lastUpdateTime": t}]);
                if ready < total {
                    st["unavailableReplicas"] = json!(total - ready);
                }
            }
            o["status"] = st;
        });
    }

    fn reconcile_job(&self, job: &Value) {
        let ns = s(job, "/metadata/namespace").to_string();
        let name = s(job, "/metadata/name").to_string();
        let uid = s(job, "/metadata/uid").to_string();
        if job.pointer("/status/startTime").is_some() {
            return;
        }
        let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let pod_name = format!("{name}-{}", random_suffix(5));
        let pod = self.pod_from_template(
            job,
            &pod_name,
            &[
                ("job-name", name.clone()),
                ("batch.kubernetes.io/job-name", name.clone()),
                ("controller-uid", uid.clone()),
                ("batch.kubernetes.io/controller-uid", uid.clone()),
            ],
            &template,
        );
        let now = self.store.clock().now_rfc3339();
        self.mutate("batch", "jobs", &ns, &name, |j| {
            // The apiserver's default selector, which `kubectl logs job/NAME` resolves the pod by.
            if j.pointer("/spec/selector").is_none() {
                j["spec"]["selector"] =
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
            }
            j["status"] = json!({"active": 1, "ready": 1, "startTime": now});
        });
        let _ = self.create("", "pods", pod);
    }

    /// Like the Job controller (without retries: `backoffLimit` is not simulated): a Job's pod that ended
    /// completes or fails its Job.
    fn finish_job_of(&self, pod: &Value) {
        let Some(owner) = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| refs.iter().find(|r| s(r, "/kind") == "Job"))
        else {
            return;
        };
        let ns = s(pod, "/metadata/namespace");
        let Some(job) = self.store.find("batch", "jobs", ns, s(owner, "/name")) else {
            return;
        };
        if s(&job, "/metadata/uid") != s(owner, "/uid") || job_succeeded(&job).is_some() {
            return;
        }
        let now = self.store.clock().now_rfc3339();
        let succeeded = s(pod, "/status/phase") == "Succeeded";
        self.mutate("batch", "jobs", ns, s(&job, "/metadata/name"), |j| {
                let start = j.pointer("/status/startTime").cloned().unwrap_or(json!(now));
                j["status"] = if succeeded {
                    json!({"startTime": start, "completionTime": now, "active": 0, "ready": 0, "succeeded": 1,
                           "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]})
                } else {
                    json!({"startTime": start, "active": 0, "ready": 0, "failed": 1,
                           "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                           "message": "Job has reached the specified backoff limit",
                                           "lastProbeTime": now, "lastTransitionTime": now}]})
                };
            });
    }

    /// A Job given a Complete or Failed condition from outside (tests set Job status) ends its running pods the
    /// same way, so whatever waits on the pod (a log follower) sees it end.
    fn end_job_pods(&self, job: &Value) {
        let Some(succeeded) = job_succeeded(job) else {
            return;
        };
        let phase = if succeeded {
            PodPhase::Succeeded
        } else {
            PodPhase::Failed
        };
        let ns = s(job, "/metadata/namespace");
        for pod in self.store.all_of("", "pods") {
            if s(&pod, "/metadata/namespace") == ns
                && owned_by(&pod, s(job, "/metadata/uid"))
                && !PodPhase::is_terminal(s(&pod, "/status/phase"))
            {
                let _ = set_pod_phase(&self.store, ns, s(&pod, "/metadata/name"), phase);
            }
        }
    }

    fn default_class(
        &self,
        group: &str,
        plural: &str,
        annotation: &str,
        driver: Option<&str>,
    ) -> Option<Value> {
        self.store.all_of(group, plural).into_iter().find(|c| {
            c.pointer("/metadata/annotations")
                .and_then(|a| a.get(annotation))
                .and_then(Value::as_str)
                == Some("true")
                && driver.is_none_or(|d| s(c, "/driver") == d)
        })
    }

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

    fn reconcile_vs(self: &Arc<Self>, vs: &Value) {
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
        let created = self.store.clock().now();
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
            tokio::time::sleep(delay).await;
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
        self.mutate(SNAP, "volumesnapshots", &ns, &name, |v| {
            v["status"] = json!({"boundVolumeSnapshotContentName": content_name, "creationTime": created, "readyToUse": true, "restoreSize": quantity(size)});
        });
    }

    fn on_vs_deleted(&self, vs: &Value) {
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

    fn reconcile_vgs(&self, vgs: &Value) {
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
            let _ = std::fs::write(
                snapshot_dir(&self.state_dir, &handle).with_extension("json"),
                json!({"creationTime": nanos, "size": size}).to_string(),
            );
            let volume_handle = s(pvc, "/metadata/uid").to_string();
            handles.push(json!(volume_handle));
            let restore = quantity_bytes(s(pvc, "/status/capacity/storage")).unwrap_or(size as i64);
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

fn template_hash(t: &Value) -> String {
    // FNV-1a over the template JSON, rendered with the apiserver's "safe" alphabet.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in t.to_string().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
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
