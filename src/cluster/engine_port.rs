//! The engine's [`ClusterPort`] over the Kubernetes API: a thin adapter onto the `Cluster` operations (and
//! `retention::apply` for the retention step), turning their errors into messages that name the object.

use super::client::Cluster;
use super::core::{EventType, NewEvent, pod_reference, pvc_reference};
use super::error::ClusterError;
use super::resources::VolumeSnapshot;
use super::snapshots::{DEFAULT_PAGE_SIZE, NewGroupSnapshot, NewSnapshot};
use crate::clock::Clock;
use crate::labels::LabelChanges;
use crate::retention::apply::{self, ApplyOptions, ContentPolicy, Operation, Status};
use crate::retention::{Options, Phases};
use crate::vocab::ports::{
    ClusterPort, EngineEvent, EventSubject, ExistingSnapshot, GroupMember, GroupSnapshotRequest,
    PortError, RetentionOutcome, SnapshotRequest, SnapshotTimes, WaitError,
};
use crate::vocab::retention::{RetentionPolicy, TierCounts};
use crate::vocab::scope::Scope;
use crate::vocab::suggest::did_you_mean;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a ready group's members are re-read until each target PVC has one.
const MEMBER_POLL: Duration = Duration::from_millis(250);

/// The label put on a group's target PVCs so the VolumeGroupSnapshot's selector matches exactly them.
pub const GROUP_PVC_LABEL: &str = "backup-ns.sh/group";

/// [`ClusterPort`] for a connected [`Cluster`].
#[derive(Debug, Clone)]
pub struct EnginePort {
    pub cluster: Cluster,
    pub clock: Clock,
    /// Pause between two retention deletions.
    pub delete_pause: Duration,
    seen: Arc<Seen>,
}

/// What the run already read and would otherwise read again: each PVC as preflight found it bound (its
/// reference for the run's Events), and each snapshot as it was created or last seen ready (the uid and
/// annotations a guarded annotation patch is built on). An object not seen is read as before.
#[derive(Debug, Default)]
struct Seen {
    pvcs: Mutex<BTreeMap<(String, String), PersistentVolumeClaim>>,
    snapshots: Mutex<BTreeMap<(String, String), VolumeSnapshot>>,
}

impl Seen {
    fn key(namespace: &str, name: &str) -> (String, String) {
        (namespace.to_string(), name.to_string())
    }

    /// A poisoned lock only means a panic elsewhere; the map itself is whole (every change is one insert).
    fn lock<T>(map: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        map.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pvc(&self, namespace: &str, name: &str) -> Option<PersistentVolumeClaim> {
        Self::lock(&self.pvcs)
            .get(&Self::key(namespace, name))
            .cloned()
    }

    fn remember_pvc(&self, namespace: &str, name: &str, pvc: PersistentVolumeClaim) {
        Self::lock(&self.pvcs).insert(Self::key(namespace, name), pvc);
    }

    fn snapshot(&self, namespace: &str, name: &str) -> Option<VolumeSnapshot> {
        Self::lock(&self.snapshots)
            .get(&Self::key(namespace, name))
            .cloned()
    }

    fn remember_snapshot(&self, vs: VolumeSnapshot) {
        let key = Self::key(vs.namespace(), vs.name());
        Self::lock(&self.snapshots).insert(key, vs);
    }

    fn forget_snapshot(&self, namespace: &str, name: &str) {
        Self::lock(&self.snapshots).remove(&Self::key(namespace, name));
    }
}

fn port(e: ClusterError) -> PortError {
    PortError::new(e.to_string())
}

/// Adds "did you mean `X`?" to a missing-object error when one of `existing` is close to `wanted`.
fn with_suggestion(mut error: PortError, wanted: &str, existing: &[String]) -> PortError {
    error
        .message
        .push_str(&did_you_mean(wanted, existing.iter().map(String::as_str)));
    error
}

fn wait_error(e: ClusterError) -> WaitError {
    match e {
        ClusterError::NotReady { object, after } => WaitError::NotReady {
            object: object.to_string(),
            after,
        },
        ClusterError::SnapshotFailed { object, message } => WaitError::Failed {
            object: object.to_string(),
            message,
        },
        other => WaitError::Api(port(other)),
    }
}

fn existing(vs: &VolumeSnapshot) -> ExistingSnapshot {
    ExistingSnapshot {
        name: vs.name().to_string(),
        labels: vs.labels().cloned().unwrap_or_default(),
        source_pvc: vs.source_pvc().map(str::to_string),
        created: vs.created(),
        ready: vs.ready(),
    }
}

fn group_content_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(
            "groupsnapshot.storage.k8s.io",
            "v1",
            "VolumeGroupSnapshotContent",
        ),
        "volumegroupsnapshotcontents",
    )
}

impl EnginePort {
    /// The port for `cluster`, remembering nothing yet.
    pub fn new(cluster: Cluster, clock: Clock, delete_pause: Duration) -> Self {
        EnginePort {
            cluster,
            clock,
            delete_pause,
            seen: Arc::default(),
        }
    }

    /// The volume handles a PVC may appear under in a group content's `volumeSnapshotInfoList`: its PV's CSI
    /// volume handle, and (for simulators that have no PVs) the PVC's uid.
    async fn volume_handles(&self, ns: &str, pvc: &str) -> Result<BTreeSet<String>, PortError> {
        let claim: PersistentVolumeClaim = self
            .cluster
            .get_pvc(ns, pvc)
            .await
            .map_err(port)?
            .ok_or_else(|| PortError::new(format!("PVC {pvc} in namespace {ns} disappeared")))?;
        let mut handles = BTreeSet::new();
        if let Some(uid) = &claim.metadata.uid {
            handles.insert(uid.clone());
        }
        if let Some(pv) = claim.spec.as_ref().and_then(|s| s.volume_name.clone()) {
            let pvs: Api<PersistentVolume> = Api::all(self.cluster.client().clone());
            if let Ok(Some(pv)) = pvs.get_opt(&pv).await
                && let Some(handle) = pv
                    .spec
                    .as_ref()
                    .and_then(|s| s.csi.as_ref())
                    .map(|c| c.volume_handle.clone())
            {
                handles.insert(handle);
            }
        }
        Ok(handles)
    }

    async fn members(
        &self,
        ns: &str,
        name: &str,
        pvcs: &[String],
    ) -> Result<Vec<GroupMember>, PortError> {
        let group = self
            .cluster
            .get_group_snapshot(ns, name)
            .await
            .map_err(port)?
            .ok_or_else(|| PortError::new(format!("VolumeGroupSnapshot {name} disappeared")))?;
        let group_created = group.metadata.creation_timestamp.as_ref().and_then(|t| {
            chrono::DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond() as u32)
        });
        let content_name = group
            .status
            .as_ref()
            .and_then(|s| s.bound_volume_group_snapshot_content_name.clone())
            .ok_or_else(|| {
                PortError::new(format!(
                    "VolumeGroupSnapshot {name} is ready but has no bound content"
                ))
            })?;
        let contents: Api<DynamicObject> =
            Api::all_with(self.cluster.client().clone(), &group_content_resource());
        let content = contents.get(&content_name).await.map_err(|e| {
            PortError::new(format!(
                "could not get VolumeGroupSnapshotContent {content_name}: {e}"
            ))
        })?;
        // snapshotHandle → volumeHandle of every member.
        let infos = content
            .data
            .pointer("/status/volumeSnapshotInfoList")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        let by_snapshot: BTreeMap<String, String> = infos
            .iter()
            .filter_map(|i| {
                Some((
                    i.get("snapshotHandle")?.as_str()?.to_string(),
                    i.get("volumeHandle")?.as_str()?.to_string(),
                ))
            })
            .collect();
        let mut handles: Vec<(String, BTreeSet<String>)> = Vec::new();
        for pvc in pvcs {
            handles.push((pvc.clone(), self.volume_handles(ns, pvc).await?));
        }
        let mut out = Vec::new();
        for member in self
            .cluster
            .group_members(ns, name, DEFAULT_PAGE_SIZE)
            .await
            .map_err(port)?
        {
            // The snapshot controller creates and binds the members one by one, and may call the group ready
            // before it has updated all of them; an unready member is not one yet (the caller polls).
            if !member.ready() {
                continue;
            }
            let Some(vsc) = member
                .bound_content()
                .map(str::to_string)
                .or_else(|| member.spec.source.volume_snapshot_content_name.clone())
            else {
                continue;
            };
            let Some(content) = self
                .cluster
                .get_snapshot_content(&vsc)
                .await
                .map_err(port)?
            else {
                continue;
            };
            let snapshot_handle = content.spec.source.snapshot_handle.clone().or_else(|| {
                content
                    .status
                    .as_ref()
                    .and_then(|s| s.snapshot_handle.clone())
            });
            let volume = snapshot_handle.and_then(|h| by_snapshot.get(&h).cloned());
            let pvc = volume.and_then(|v| {
                handles
                    .iter()
                    .find(|(_, hs)| hs.contains(&v))
                    .map(|(p, _)| p.clone())
            });
            match pvc {
                Some(pvc) => out.push(GroupMember {
                    name: member.name().to_string(),
                    pvc,
                    times: SnapshotTimes {
                        object_created: group_created,
                        cut: member.cut(),
                    },
                }),
                None => {
                    return Err(PortError::new(format!(
                        "member snapshot {} of VolumeGroupSnapshot {name} belongs to no target PVC",
                        member.name()
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// The snapshot as it is now, for a guarded patch; gone is an error naming it.
async fn current_snapshot(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<VolumeSnapshot, PortError> {
    cluster
        .get_snapshot(namespace, name)
        .await
        .map_err(port)?
        .ok_or_else(|| {
            PortError::new(format!(
                "VolumeSnapshot {name} in namespace {namespace} is gone"
            ))
        })
}

impl ClusterPort for EnginePort {
    fn check_namespace<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            match self.cluster.require_namespace(namespace).await {
                Ok(_) => Ok(()),
                Err(e @ ClusterError::Missing { .. }) => {
                    // A tenant may not list namespaces: that only costs the suggestion.
                    let names = self.cluster.namespace_names().await.unwrap_or_default();
                    Err(with_suggestion(port(e), namespace, &names))
                }
                Err(e) => Err(port(e)),
            }
        })
    }

    fn check_pvc<'a>(
        &'a self,
        namespace: &'a str,
        pvc: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            match self.cluster.require_bound_pvc(namespace, pvc).await {
                Ok(found) => {
                    self.seen.remember_pvc(namespace, pvc, found);
                    Ok(())
                }
                Err(e @ ClusterError::Missing { .. }) => {
                    // A failed list (e.g. no `list` right) only costs the suggestion.
                    let names = self.cluster.pvc_names(namespace).await.unwrap_or_default();
                    Err(with_suggestion(port(e), pvc, &names))
                }
                Err(e) => Err(port(e)),
            }
        })
    }

    fn check_snapshot_class<'a>(
        &'a self,
        class: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, PortError>> {
        Box::pin(async move {
            match class {
                Some(name) => match self.cluster.get_snapshot_class(name).await.map_err(port)? {
                    Some(c) => Ok(c.name().to_string()),
                    None => {
                        let names: Vec<String> = self
                            .cluster
                            .list_snapshot_classes()
                            .await
                            .unwrap_or_default()
                            .iter()
                            .map(|c| c.name().to_string())
                            .collect();
                        Err(with_suggestion(
                            PortError::new(format!(
                                "VolumeSnapshotClass {name} (snapshot.class) does not exist"
                            )),
                            name,
                            &names,
                        ))
                    }
                },
                None => match self
                    .cluster
                    .default_snapshot_class(None)
                    .await
                    .map_err(port)?
                {
                    Some(c) => Ok(c.name().to_string()),
                    None => Err(PortError::new(
                        "no VolumeSnapshotClass is marked default (annotation \
                         snapshot.storage.kubernetes.io/is-default-class: \"true\"); set snapshot.class",
                    )),
                },
            }
        })
    }

    fn snapshots_in<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ExistingSnapshot>, PortError>> {
        Box::pin(async move {
            let list = self
                .cluster
                .list_snapshots(
                    &Scope::Namespace(namespace.to_string()),
                    None,
                    DEFAULT_PAGE_SIZE,
                )
                .await
                .map_err(port)?;
            Ok(list.iter().map(existing).collect())
        })
    }

    fn create_snapshot<'a>(
        &'a self,
        request: &'a SnapshotRequest,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.cluster
                .create_snapshot(&NewSnapshot {
                    namespace: request.namespace.clone(),
                    name: request.name.clone(),
                    pvc: request.pvc.clone(),
                    class: request.class.clone(),
                    labels: request.labels.clone(),
                    annotations: request.annotations.clone(),
                })
                .await
                .map(|created| self.seen.remember_snapshot(created))
                .map_err(port)
        })
    }

    fn wait_snapshot_ready<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SnapshotTimes, WaitError>> {
        Box::pin(async move {
            self.cluster
                .wait_snapshot_ready(namespace, name, timeout)
                .await
                .map(|vs| {
                    let times = SnapshotTimes {
                        object_created: vs.object_created(),
                        cut: vs.cut(),
                    };
                    self.seen.remember_snapshot(vs);
                    times
                })
                .map_err(wait_error)
        })
    }

    fn annotate_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        annotations: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            // The patch is guarded by the uid; what it needs of the snapshot is that uid and whether it has
            // annotations at all, which the create or the wait of this run already answered.
            let current = match self.seen.snapshot(namespace, name) {
                Some(seen) => seen,
                None => current_snapshot(&self.cluster, namespace, name).await?,
            };
            match self.cluster.annotate_snapshot(&current, annotations).await {
                Ok(patched) => {
                    self.seen.remember_snapshot(patched);
                    Ok(())
                }
                Err(e) => {
                    self.seen.forget_snapshot(namespace, name);
                    Err(port(e))
                }
            }
        })
    }

    fn delete_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.seen.forget_snapshot(namespace, name);
            self.cluster
                .delete_snapshot(namespace, name)
                .await
                .map(|_| ())
                .map_err(port)
        })
    }

    fn create_group_snapshot<'a>(
        &'a self,
        request: &'a GroupSnapshotRequest,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            // The group's selector must match exactly the plan's PVCs: mark them with this group's name.
            let claims: Api<PersistentVolumeClaim> =
                Api::namespaced(self.cluster.client().clone(), &request.namespace);
            let body = serde_json::json!({"metadata": {"labels": {GROUP_PVC_LABEL: request.name}}});
            for pvc in &request.pvcs {
                claims
                    .patch(pvc, &PatchParams::default(), &Patch::Merge(&body))
                    .await
                    .map_err(|e| {
                        PortError::new(format!(
                            "could not label PVC {pvc} in namespace {} for the group snapshot: {e}",
                            request.namespace
                        ))
                    })?;
            }
            self.cluster
                .create_group_snapshot(&NewGroupSnapshot {
                    namespace: request.namespace.clone(),
                    name: request.name.clone(),
                    pvc_selector: [(GROUP_PVC_LABEL.to_string(), request.name.clone())].into(),
                    class: None,
                    labels: request.labels.clone(),
                    annotations: request.annotations.clone(),
                })
                .await
                .map(|_| ())
                .map_err(port)
        })
    }

    fn wait_group_snapshot_ready<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<GroupMember>, WaitError>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            self.cluster
                .wait_group_snapshot_ready(namespace, name, timeout)
                .await
                .map_err(wait_error)?;
            // The PVCs carry this group's name; those are the ones the group covers.
            let claims: Api<PersistentVolumeClaim> =
                Api::namespaced(self.cluster.client().clone(), namespace);
            let selected = claims
                .list(
                    &kube::api::ListParams::default().labels(&format!("{GROUP_PVC_LABEL}={name}")),
                )
                .await
                .map_err(|e| WaitError::Api(PortError::new(format!("could not list PVCs: {e}"))))?;
            let pvcs: Vec<String> = selected
                .items
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            // The real snapshot controller sets the group's readyToUse before every member VolumeSnapshot is
            // created and ready, so poll until each PVC has its ready member (or the timeout is spent; the
            // runner then names the PVCs without one).
            loop {
                let members = self
                    .members(namespace, name, &pvcs)
                    .await
                    .map_err(WaitError::Api)?;
                let complete = pvcs.iter().all(|p| members.iter().any(|m| &m.pvc == p));
                if complete || started.elapsed() >= timeout {
                    return Ok(members);
                }
                tokio::time::sleep(MEMBER_POLL).await;
            }
        })
    }

    fn delete_group_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.cluster
                .delete_group_snapshot(namespace, name)
                .await
                .map(|_| ())
                .map_err(port)
        })
    }

    fn label_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let current = current_snapshot(&self.cluster, namespace, name).await?;
            let changes = labels
                .iter()
                .fold(LabelChanges::new(), |c, (k, v)| c.set(k.clone(), v.clone()));
            self.cluster
                .patch_snapshot_labels(&current, &changes)
                .await
                .map(|_| ())
                .map_err(port)
        })
    }

    fn emit_event<'a>(&'a self, event: &'a EngineEvent) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let regarding = match &event.subject {
                EventSubject::Pvc(name) => {
                    let pvc = match self.seen.pvc(&event.namespace, name) {
                        Some(pvc) => pvc,
                        None => self
                            .cluster
                            .get_pvc(&event.namespace, name)
                            .await
                            .map_err(port)?
                            .ok_or_else(|| {
                                PortError::new(format!(
                                    "PVC {name} in namespace {} does not exist",
                                    event.namespace
                                ))
                            })?,
                    };
                    pvc_reference(&pvc)
                }
                EventSubject::Pod(name) => pod_reference(&event.namespace, name, None),
            };
            let new = NewEvent {
                regarding,
                event_type: if event.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: event.reason.clone(),
                action: "Backup".into(),
                note: event.note.clone(),
            };
            self.cluster
                .emit_event(&new)
                .await
                .map(|_| ())
                .map_err(port)
        })
    }

    fn apply_retention<'a>(
        &'a self,
        namespace: &'a str,
        pvcs: &'a [String],
        policy: &'a RetentionPolicy,
        sweep: bool,
    ) -> BoxFuture<'a, Result<RetentionOutcome, PortError>> {
        Box::pin(async move {
            // In-namespace runs label and mark only; the sweep (deletions) is opt-in, and even then a deletion that
            // first needs a VolumeSnapshotContent patch is left to the cluster-wide controller. The plan's own
            // counts stand in for the controller defaults (a `days` plan has none and keeps the original's).
            let options = ApplyOptions {
                scope: Scope::Namespace(namespace.to_string()),
                delete_pause: self.delete_pause,
                policy: Options {
                    defaults: policy.tiers_or(TierCounts::ORIGINAL_DEFAULTS),
                    phases: Phases {
                        tiers: true,
                        mark: true,
                        sweep,
                    },
                    ..Options::default()
                },
                content_policy: ContentPolicy::LeaveToController,
                ..ApplyOptions::default()
            };
            let reports = apply::apply_pvcs(&self.cluster, pvcs, &options, &self.clock)
                .await
                .map_err(|e| {
                    PortError::new(format!("retention for PVC {}: {e}", pvcs.join(",")))
                })?;
            let mut outcome = RetentionOutcome::default();
            let mut lines = Vec::new();
            for (pvc, report) in pvcs.iter().zip(&reports) {
                if let Some(failed) = report.failures().next() {
                    let why = match &failed.status {
                        Status::Failed { error } => error.clone(),
                        other => format!("{other:?}"),
                    };
                    return Err(PortError::new(format!(
                        "retention for PVC {pvc}: {}/{}: {why}",
                        failed.namespace, failed.name
                    )));
                }
                for o in &report.outcomes {
                    let names = match o.operation {
                        Operation::Delete => &mut outcome.deleted,
                        Operation::Patch if o.marks() => &mut outcome.marked,
                        Operation::Patch => &mut outcome.relabelled,
                    };
                    names.push(o.name.clone());
                }
                lines.push(format!("{pvc}: {}", report.summary_line()));
            }
            outcome.summary = lines.join("; ");
            Ok(outcome)
        })
    }
}
