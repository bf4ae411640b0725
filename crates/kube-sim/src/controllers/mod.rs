//! The cluster behind the API, on the simulated clock: namespaces become Active, PVCs get a backing directory
//! and become Bound (with a PV), deployments/statefulsets/jobs get pods, pods run and report Ready, and the CSI
//! snapshot controller + hostpath driver turn VolumeSnapshots (and VolumeGroupSnapshots) into contents and
//! copies of PVC directories in a snapshot store.
//!
//! This file starts the controllers and routes each store event to the one that owns it; each controller lives
//! in its own file ([`pvc`], [`workloads`], [`jobs`], [`snapshots`], [`group_snapshots`]) as methods on
//! [`Controllers`], and writes through the store's one write API as the cluster itself (`Part::Raw`).

mod cronjobs;
mod group_snapshots;
mod jobs;
mod pvc;
mod snapshots;
mod workloads;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::faults::Faults;
use crate::runtime::RunImages;
use crate::status::ApiError;
use crate::store::{Event, EventType, Part, Store};

/// Kept at the path tests have used; the type lives with the pod phases.
pub use crate::pods::PodPhase;
pub use snapshots::{content_handle, quantity_bytes};

const SNAP: &str = "snapshot.storage.k8s.io";
const GROUP_SNAP: &str = "groupsnapshot.storage.k8s.io";
/// How often the time-driven controllers look at the simulated clock.
pub const TICK: Duration = Duration::from_millis(200);
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
    /// Images the kubelet runs: their pods start Pending and the kubelet moves them on.
    pub run_images: RunImages,
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
            // A CSI snapshot keeps the files' times: restored data is as old as when it was cut.
            if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&dest)
                    .and_then(|f| f.set_modified(modified));
            }
        }
    }
    Ok(total)
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
    /// is written (subscribe synchronously, then spawn this). Between events, a tick every [`TICK`] lets the
    /// time-driven controllers (CronJobs, Job deadlines and TTLs) follow the simulated clock.
    pub async fn run(self: Arc<Self>, mut rx: crate::store::Subscription) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let me = self.clone();
            tokio::select! {
                event = rx.recv() => match event {
                    Ok(ev) => {
                        let _ = tokio::task::spawn_blocking(move || me.handle(&ev)).await;
                    }
                    Err(RecvError::Lagged(_)) => {
                        let _ = tokio::task::spawn_blocking(move || me.resync()).await;
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let _ = tokio::task::spawn_blocking(move || me.tick()).await;
                }
            }
        }
    }

    /// The time-driven part of the cluster, at the simulated now.
    fn tick(&self) {
        let now = self.store.clock().now();
        for cj in self.store.all_of("batch", "cronjobs") {
            self.reconcile_cronjob(&cj, now);
        }
        for job in self.store.all_of("batch", "jobs") {
            self.job_deadlines(&job, now);
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

    /// Route one store event to the controller that owns it.
    fn handle(self: &Arc<Self>, ev: &Event) {
        let obj = &ev.object;
        match (ev.group.as_str(), ev.plural.as_str(), ev.etype) {
            ("", "namespaces", EventType::Added) if obj.pointer("/status/phase").is_none() => {
                self.mutate("", "namespaces", "", s(obj, "/metadata/name"), |n| {
                    n["status"] = json!({"phase": "Active"})
                });
            }
            ("", "persistentvolumeclaims", EventType::Deleted) => self.on_pvc_deleted(obj),
            ("", "persistentvolumeclaims", _) => self.on_pvc_changed(obj),
            ("", "pods", EventType::Added) if obj.pointer("/status/phase").is_none() => {
                self.start_pod(obj)
            }
            ("", "pods", etype) => self.on_pod_changed(obj, etype),
            ("apps", "replicasets", EventType::Deleted) => self.on_replicaset_deleted(obj),
            ("apps", "deployments" | "statefulsets", EventType::Added | EventType::Modified) => {
                self.reconcile_workload(&ev.plural, obj)
            }
            ("batch", "jobs", EventType::Added) => self.reconcile_job(obj),
            ("batch", "jobs", EventType::Modified) => self.end_job_pods(obj),
            (SNAP, "volumesnapshots", EventType::Deleted) => self.on_vs_deleted(obj),
            (SNAP, "volumesnapshots", _) => self.on_vs_changed(obj),
            (SNAP, "volumesnapshotcontents", EventType::Deleted) => self.on_vsc_deleted(obj),
            (SNAP, "volumesnapshotcontents", EventType::Added) => self.on_vsc_added(obj),
            (GROUP_SNAP, "volumegroupsnapshots", EventType::Deleted) => self.on_vgs_deleted(obj),
            (GROUP_SNAP, "volumegroupsnapshots", EventType::Added | EventType::Modified) => {
                self.reconcile_vgs(obj)
            }
            _ => {}
        }
    }

    /// The class of `plural` marked default by `annotation` (and of `driver`, when given).
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
}
