//! Snapshot operations: create VolumeSnapshots and VolumeGroupSnapshots, get, paginated list, label patches that
//! never clobber a concurrent edit, delete (content first set to `Delete` so the CSI snapshot goes too), wait until
//! ready through a watch, and the default class.

use super::client::Cluster;
use super::error::{ApiFailure, ClusterError, ListRef, ObjectRef, Result};
use super::label_patch::{is_test_failure, label_patch};
use super::listed::{ListedVolumeSnapshot, ListedVolumeSnapshotContent};
use super::resources::{
    VolumeGroupSnapshot, VolumeGroupSnapshotSource, VolumeGroupSnapshotSpec, VolumeSnapshot,
    VolumeSnapshotClass, VolumeSnapshotContent, VolumeSnapshotContentSource,
    VolumeSnapshotContentSpec, VolumeSnapshotSource, VolumeSnapshotSpec,
};
use super::retry;
use crate::labels::{LabelChanges, LabelSet};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, ListParams, ObjectList, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use crate::vocab::scope::Scope;

/// The label the snapshot controller puts on the member snapshots of a VolumeGroupSnapshot.
pub const GROUP_MEMBER_LABEL: &str = crate::labels::GROUP_MEMBER;

/// Default page size of paginated lists.
pub const DEFAULT_PAGE_SIZE: u32 = crate::vocab::scope::DEFAULT_PAGE_SIZE;

/// A VolumeSnapshot to create for one PVC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewSnapshot {
    pub namespace: String,
    pub name: String,
    pub pvc: String,
    /// `None`: the cluster's default class.
    pub class: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl NewSnapshot {
    /// The object that [`Cluster::create_snapshot`] sends (also what `--dry-run` prints).
    pub fn to_object(&self) -> VolumeSnapshot {
        VolumeSnapshot {
            api_version: VolumeSnapshot::api_version(),
            kind: VolumeSnapshot::KIND.to_string(),
            metadata: meta(&self.namespace, &self.name, &self.labels, &self.annotations),
            spec: VolumeSnapshotSpec {
                source: VolumeSnapshotSource {
                    persistent_volume_claim_name: Some(self.pvc.clone()),
                    ..Default::default()
                },
                volume_snapshot_class_name: self.class.clone(),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// True when `now` is the snapshot `listed` saw, unchanged where retention decided on it: same uid, same labels,
/// not being deleted.
fn as_listed(now: &VolumeSnapshot, listed: &ListedVolumeSnapshot) -> bool {
    now.metadata.uid.as_deref() == listed.uid()
        && match (&now.metadata.labels, &listed.labels) {
            (Some(now), Some(listed)) => listed == now,
            (now, listed) => now.is_none() && listed.is_none(),
        }
        && now.metadata.deletion_timestamp.is_none()
}

/// A VolumeGroupSnapshot covering every PVC that matches `pvc_selector` (labels on the PVCs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewGroupSnapshot {
    pub namespace: String,
    pub name: String,
    pub pvc_selector: BTreeMap<String, String>,
    pub class: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl NewGroupSnapshot {
    pub fn to_object(&self) -> VolumeGroupSnapshot {
        VolumeGroupSnapshot {
            api_version: VolumeGroupSnapshot::api_version(),
            kind: VolumeGroupSnapshot::KIND.to_string(),
            metadata: meta(&self.namespace, &self.name, &self.labels, &self.annotations),
            spec: VolumeGroupSnapshotSpec {
                source: VolumeGroupSnapshotSource {
                    selector: Some(LabelSelector {
                        match_labels: Some(self.pvc_selector.clone()),
                        match_expressions: None,
                    }),
                    ..Default::default()
                },
                volume_group_snapshot_class_name: self.class.clone(),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// A pre-provisioned VolumeSnapshotContent plus the VolumeSnapshot bound to it: how an existing storage snapshot
/// (e.g. the dangling `Retain` content of a deleted namespace) is made usable again (`backup-ns rebind`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreProvisioned {
    pub content_name: String,
    pub namespace: String,
    pub snapshot_name: String,
    pub driver: String,
    /// The storage system's handle, from the old content's `status.snapshotHandle` / `spec.source.snapshotHandle`.
    pub snapshot_handle: String,
    pub class: Option<String>,
    /// `Retain` keeps the storage snapshot if the new objects are deleted again.
    pub deletion_policy: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl PreProvisioned {
    /// The VolumeSnapshotContent, pointing at the VolumeSnapshot to be created.
    pub fn content_object(&self) -> VolumeSnapshotContent {
        VolumeSnapshotContent {
            api_version: VolumeSnapshotContent::api_version(),
            kind: VolumeSnapshotContent::KIND.to_string(),
            metadata: ObjectMeta {
                name: Some(self.content_name.clone()),
                labels: (!self.labels.is_empty()).then(|| self.labels.clone()),
                ..Default::default()
            },
            spec: VolumeSnapshotContentSpec {
                deletion_policy: self.deletion_policy.clone(),
                driver: self.driver.clone(),
                source: VolumeSnapshotContentSource {
                    snapshot_handle: Some(self.snapshot_handle.clone()),
                    ..Default::default()
                },
                volume_snapshot_class_name: self.class.clone(),
                volume_snapshot_ref: k8s_openapi::api::core::v1::ObjectReference {
                    api_version: Some(VolumeSnapshot::api_version()),
                    kind: Some(VolumeSnapshot::KIND.to_string()),
                    name: Some(self.snapshot_name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The VolumeSnapshot that binds the content.
    pub fn snapshot_object(&self) -> VolumeSnapshot {
        VolumeSnapshot {
            api_version: VolumeSnapshot::api_version(),
            kind: VolumeSnapshot::KIND.to_string(),
            metadata: meta(
                &self.namespace,
                &self.snapshot_name,
                &self.labels,
                &self.annotations,
            ),
            spec: VolumeSnapshotSpec {
                source: VolumeSnapshotSource {
                    volume_snapshot_content_name: Some(self.content_name.clone()),
                    ..Default::default()
                },
                volume_snapshot_class_name: self.class.clone(),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

fn meta(
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: (!labels.is_empty()).then(|| labels.clone()),
        annotations: (!annotations.is_empty()).then(|| annotations.clone()),
        ..Default::default()
    }
}

/// What [`Cluster::delete_snapshot`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The bound VolumeSnapshotContent, if the snapshot had one.
    pub content: Option<String>,
    /// Whether its `deletionPolicy` had to be switched from `Retain` to `Delete`.
    pub policy_patched: bool,
    /// The snapshot was already gone (deleting twice converges).
    pub already_gone: bool,
}

/// How often [`Cluster::delete_listed_snapshot`] reads a snapshot that is still as listed after a 409 and deletes
/// it under the fresh resourceVersion: the real snapshot controller may write it more than once right after its
/// content is switched to `Delete`.
const DELETE_REREADS: usize = 3;

/// How [`Cluster::delete_listed_snapshot`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedDelete {
    /// Deleted (or, with finalizers, being deleted).
    Deleted,
    /// It was already gone.
    AlreadyGone,
    /// Its uid or resourceVersion no longer matches the list (409 on the preconditions): someone changed it
    /// since, and it was left alone.
    Changed,
}

/// Snapshot objects whose readiness can be awaited.
pub trait Readiness {
    fn is_ready(&self) -> bool;
    fn error_text(&self) -> Option<String>;
}

impl Readiness for VolumeSnapshot {
    fn is_ready(&self) -> bool {
        self.ready()
    }
    fn error_text(&self) -> Option<String> {
        self.error().map(|e| e.text())
    }
}

impl Readiness for VolumeGroupSnapshot {
    fn is_ready(&self) -> bool {
        self.ready()
    }
    fn error_text(&self) -> Option<String> {
        self.error().map(|e| e.text())
    }
}

fn vs_ref(ns: &str, name: &str) -> ObjectRef {
    ObjectRef::new(
        VolumeSnapshot::KIND,
        VolumeSnapshot::RESOURCE,
        Some(ns),
        name,
    )
}

fn vgs_ref(ns: &str, name: &str) -> ObjectRef {
    ObjectRef::new(
        VolumeGroupSnapshot::KIND,
        VolumeGroupSnapshot::RESOURCE,
        Some(ns),
        name,
    )
}

fn vsc_ref(name: &str) -> ObjectRef {
    ObjectRef::new(
        VolumeSnapshotContent::KIND,
        VolumeSnapshotContent::RESOURCE,
        None,
        name,
    )
}

fn class_ref(name: &str) -> ObjectRef {
    ObjectRef::new(
        VolumeSnapshotClass::KIND,
        VolumeSnapshotClass::RESOURCE,
        None,
        name,
    )
}

/// Describes a failed call on `object` with `verb`.
pub(crate) fn failure(err: &kube::Error, verb: &str, object: &ObjectRef) -> Box<ApiFailure> {
    Box::new(ApiFailure::from_kube(
        err,
        verb,
        object.resource,
        object.namespace.as_deref(),
        Some(&object.name),
    ))
}

impl Cluster {
    /// Creates `obj`, whose name is fixed for the run, stamped with this run's id ([`retry::RUN_ID_ANNOTATION`]),
    /// so that a create retried after a transient failure is safe: meeting `AlreadyExists` with our own id
    /// continues with that object, while an object someone else made under that name is an error.
    pub(crate) async fn create_owned<K>(
        &self,
        api: &Api<K>,
        mut obj: K,
        object: ObjectRef,
    ) -> Result<K>
    where
        K: kube::Resource + Clone + serde::Serialize + DeserializeOwned + Debug,
    {
        obj.meta_mut().annotations.get_or_insert_default().insert(
            retry::RUN_ID_ANNOTATION.to_string(),
            self.run_id().to_string(),
        );
        let params = PostParams::default();
        retry::create_once(
            self.retry_policy(),
            self.retry_stats(),
            self.run_id(),
            || api.create(&params, &obj),
            || api.get(&object.name),
        )
        .await
        .map_err(|conflict| match conflict {
            retry::CreateConflict::Api(err) => ClusterError::Create {
                failure: failure(&err, "create", &object),
                object,
            },
            retry::CreateConflict::Foreign { owner, source } => {
                let mut failure = failure(&source, "create", &object);
                failure.suggestion = Some(match owner {
                    Some(id) => format!(
                        "`{}` was created by another run (run id {id}), not by this one; nothing was overwritten",
                        object.name
                    ),
                    None => format!(
                        "`{}` already exists and was not created by backup-ns; nothing was overwritten",
                        object.name
                    ),
                });
                ClusterError::Create { failure, object }
            }
        })
    }
}

/// `GET`, with 404 turned into `None`.
pub(crate) async fn get_opt<K>(api: &Api<K>, object: ObjectRef) -> Result<Option<K>>
where
    K: Clone + DeserializeOwned + Debug,
{
    match api.get_opt(&object.name).await {
        Ok(found) => Ok(found),
        Err(err) => Err(ClusterError::Get {
            failure: failure(&err, "get", &object),
            object,
        }),
    }
}

/// Lists everything in pages of `page_size` with `limit`/`continue`, so a 10,000-snapshot cluster costs
/// ceil(10,000 / page_size) requests and the apiserver never builds one huge response.
pub(crate) async fn list_paged<K>(
    api: &Api<K>,
    list: ListRef,
    field_selector: Option<&str>,
    page_size: u32,
) -> Result<Vec<K>>
where
    K: Clone + DeserializeOwned + Debug,
{
    paged(
        list,
        field_selector,
        page_size,
        |params| {
            let params = params.clone();
            async move { api.list(&params).await }
        },
        |item| item,
    )
    .await
}

/// [`list_paged`] decoding each page's items as `R` from the raw response, then keeping each as `keep` makes it:
/// `R` is a wire shape with only the fields its caller reads (serde skips the rest while parsing), so a list of
/// 100,000 objects never holds their whole documents, and `keep` turns it into the compact form the list holds
/// (one page of `R` at a time). `path` is the collection's URL path.
pub(crate) async fn list_paged_as<R, K>(
    client: &kube::Client,
    path: &str,
    list: ListRef,
    page_size: u32,
    keep: impl FnMut(R) -> K,
) -> Result<Vec<K>>
where
    R: Clone + DeserializeOwned + Debug,
{
    let request = kube::core::Request::new(path);
    paged(
        list,
        None,
        page_size,
        |params| {
            let sent = request
                .list(params)
                .map(|req| client.request::<ObjectList<R>>(req));
            async move {
                match sent {
                    Ok(response) => response.await,
                    Err(e) => Err(kube::Error::BuildRequest(e)),
                }
            }
        },
        keep,
    )
    .await
}

/// The paging loop of [`list_paged`] over any page fetch, each item kept as `keep` makes it. The list is sized
/// by the pages' `remainingItemCount` where the server gives one (lists without a selector), so 100,000 items
/// take one allocation of their size rather than doubling into one of up to twice that.
async fn paged<R, K, F, Fut>(
    list: ListRef,
    field_selector: Option<&str>,
    page_size: u32,
    mut fetch: F,
    mut keep: impl FnMut(R) -> K,
) -> Result<Vec<K>>
where
    R: Clone,
    F: FnMut(&ListParams) -> Fut,
    Fut: Future<Output = std::result::Result<ObjectList<R>, kube::Error>>,
{
    let mut params = ListParams::default().limit(page_size.max(1));
    if let Some(sel) = &list.selector {
        params = params.labels(sel);
    }
    if let Some(sel) = field_selector {
        params = params.fields(sel);
    }
    let mut items = Vec::new();
    let mut restarted = false;
    loop {
        let page = match fetch(&params).await {
            Ok(page) => page,
            // The continue token expired (410 Gone, after etcd compaction): start over once from a fresh list,
            // so the result is still one consistent snapshot rather than two halves from different times.
            Err(kube::Error::Api(status))
                if status.code == 410 && params.continue_token.is_some() && !restarted =>
            {
                tracing::warn!(%list, "list continuation expired; listing again from the start");
                restarted = true;
                items.clear();
                params.continue_token = None;
                continue;
            }
            Err(err) => {
                return Err(ClusterError::List {
                    failure: Box::new(ApiFailure::from_kube(
                        &err,
                        "list",
                        list.resource,
                        list.namespace.as_deref(),
                        None,
                    )),
                    list: list.clone(),
                });
            }
        };
        match page
            .metadata
            .remaining_item_count
            .and_then(|n| usize::try_from(n).ok())
        {
            Some(remaining) => {
                let wanted = page.items.len() + remaining;
                if items.capacity() - items.len() < wanted {
                    items.reserve_exact(wanted);
                }
            }
            None => items.reserve(page.items.len()),
        }
        items.extend(page.items.into_iter().map(&mut keep));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => {
                items.shrink_to_fit();
                return Ok(items);
            }
        }
    }
}

/// RFC 6902 ops as the typed patch kube sends; `what` names the patch in the error.
fn json_patch_of(
    ops: serde_json::Value,
    what: &str,
    object: &ObjectRef,
) -> Result<json_patch::Patch> {
    serde_json::from_value(ops).map_err(|e| ClusterError::Patch {
        failure: Box::new(ApiFailure {
            code: None,
            reason: String::new(),
            message: format!("could not build the {what} patch: {e}"),
            suggestion: None,
        }),
        object: object.clone(),
    })
}

/// Sends a label JSON patch; a failed `test` op becomes [`ClusterError::Conflict`].
async fn patch_labels<K>(
    api: &Api<K>,
    current: &ObjectMeta,
    changes: &LabelChanges,
    object: ObjectRef,
) -> Result<Option<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    let mut conflict = match patch_labels_once(api, current, changes, object.clone()).await {
        Err(conflict @ ClusterError::Conflict { .. }) => conflict,
        done => return done,
    };
    // A 409 asks for a fresh read and a new decision. The change was decided on the object's labels: when they
    // are still what the decision saw, only its resourceVersion moved (a status update, a write to another
    // field, or a conflict the server made up) and the same change is sent again against the fresh read, up to
    // CONFLICT_REREADS times. Labels that changed are somebody else's edit, and a new uid another object: the
    // conflict stands, for the next run to decide again.
    for _ in 0..CONFLICT_REREADS {
        let now = match get_opt(api, object.clone()).await? {
            Some(now)
                if current
                    .uid
                    .as_ref()
                    .is_none_or(|uid| now.meta().uid.as_ref() == Some(uid))
                    && now.meta().labels.clone().unwrap_or_default()
                        == current.labels.clone().unwrap_or_default() =>
            {
                now
            }
            _ => break,
        };
        tracing::info!(%object, "label patch conflicted, the labels are unchanged: sending it again");
        conflict = match patch_labels_once(api, now.meta(), changes, object.clone()).await {
            Err(conflict @ ClusterError::Conflict { .. }) => conflict,
            done => return done,
        };
    }
    Err(conflict)
}

/// How many times a guarded write that met a 409 re-reads its object and, the object still as decided on, sends
/// the same change again.
const CONFLICT_REREADS: u32 = 3;

/// One guarded label patch of `object` as read in `current` (see [`patch_labels`]).
async fn patch_labels_once<K>(
    api: &Api<K>,
    current: &ObjectMeta,
    changes: &LabelChanges,
    object: ObjectRef,
) -> Result<Option<K>>
where
    K: Clone + DeserializeOwned + Debug,
{
    let Some(patch) = label_patch(current, changes) else {
        return Ok(None);
    };
    let patch = json_patch_of(patch, "label", &object)?;
    match api
        .patch(
            &object.name,
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(updated) => Ok(Some(updated)),
        Err(kube::Error::Api(status)) if is_test_failure(status.code, &status.message) => {
            Err(ClusterError::Conflict {
                object,
                detail: status.message.clone(),
            })
        }
        Err(err) => Err(ClusterError::Patch {
            failure: failure(&err, "patch", &object),
            object,
        }),
    }
}

/// The metadata a guarded label patch tests against, from a compact listed object (built for one patch).
fn listed_meta(labels: Option<&LabelSet>, resource_version: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        labels: labels.map(LabelSet::to_map),
        resource_version: resource_version.map(str::to_string),
        ..ObjectMeta::default()
    }
}

/// After this many consecutive watch failures the wait gives up instead of hiding the cause until the timeout.
const WATCH_ATTEMPTS: u32 = 3;

/// Waits on a watch until the object is ready, reports an error, or disappears.
/// Whether a `status.error` is one the snapshot controller retries past and then clears, as its API says errors
/// may be: a write conflict on its own objects ("the object has been modified"), which a loaded apiserver gives it
/// now and then (seen on the real cluster on a group snapshot's content). Such an error does not end the wait; any
/// other error does, at once.
fn is_transient_error(message: &str) -> bool {
    message.contains("the object has been modified")
}

async fn wait_ready<K>(api: Api<K>, object: ObjectRef, timeout: Duration) -> Result<K>
where
    K: kube::Resource + Readiness + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let watch = async {
        let mut failures = 0;
        loop {
            let cond = |o: Option<&K>| {
                o.is_none_or(|o| {
                    o.is_ready() || o.error_text().is_some_and(|e| !is_transient_error(&e))
                })
            };
            match kube::runtime::wait::await_condition(api.clone(), &object.name, cond).await {
                Ok(Some(found)) if found.is_ready() => return Ok(found),
                Ok(Some(found)) => {
                    return Err(ClusterError::SnapshotFailed {
                        object: object.clone(),
                        message: found.error_text().unwrap_or_default(),
                    });
                }
                Ok(None) => {
                    return Err(ClusterError::Vanished {
                        object: object.clone(),
                    });
                }
                Err(err) => {
                    failures += 1;
                    if failures >= WATCH_ATTEMPTS {
                        return Err(ClusterError::Watch {
                            object: object.clone(),
                            message: err.to_string(),
                        });
                    }
                    tracing::warn!(%object, %err, "watch failed; re-establishing");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    };
    // Retries of the watch's requests never wait past the step's deadline (the ready timeout).
    let watch = retry::within_deadline(tokio::time::Instant::now() + timeout, watch);
    match tokio::time::timeout(timeout, watch).await {
        Ok(result) => result,
        Err(_) => Err(ClusterError::NotReady {
            object,
            after: timeout,
        }),
    }
}

impl Cluster {
    fn snapshots(&self, ns: &str) -> Api<VolumeSnapshot> {
        Api::namespaced(self.client().clone(), ns)
    }

    fn group_snapshots(&self, ns: &str) -> Api<VolumeGroupSnapshot> {
        Api::namespaced(self.client().clone(), ns)
    }

    fn contents(&self) -> Api<VolumeSnapshotContent> {
        Api::all(self.client().clone())
    }

    fn classes(&self) -> Api<VolumeSnapshotClass> {
        Api::all(self.client().clone())
    }

    /// Creates one VolumeSnapshot. An existing name is a `Create` error with HTTP 409.
    pub async fn create_snapshot(&self, new: &NewSnapshot) -> Result<VolumeSnapshot> {
        let object = vs_ref(&new.namespace, &new.name);
        self.create_owned(&self.snapshots(&new.namespace), new.to_object(), object)
            .await
    }

    /// Creates one VolumeGroupSnapshot.
    pub async fn create_group_snapshot(
        &self,
        new: &NewGroupSnapshot,
    ) -> Result<VolumeGroupSnapshot> {
        let object = vgs_ref(&new.namespace, &new.name);
        self.create_owned(
            &self.group_snapshots(&new.namespace),
            new.to_object(),
            object,
        )
        .await
    }

    pub async fn get_snapshot(&self, ns: &str, name: &str) -> Result<Option<VolumeSnapshot>> {
        get_opt(&self.snapshots(ns), vs_ref(ns, name)).await
    }

    /// The names of the VolumeSnapshots in `ns` (for "did you mean" when a named one does not exist).
    pub async fn snapshot_names(&self, ns: &str) -> Result<Vec<String>> {
        super::core::names_of(&self.snapshots(ns), VolumeSnapshot::RESOURCE, Some(ns)).await
    }

    pub async fn get_group_snapshot(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<VolumeGroupSnapshot>> {
        get_opt(&self.group_snapshots(ns), vgs_ref(ns, name)).await
    }

    /// Deletes a VolumeGroupSnapshot by the uid it has now (read first, so a retried delete cannot hit a group
    /// recreated under the same name). The snapshot controller deletes its member snapshots with it: this is the
    /// only way members are deleted while their group exists. `true`: deleted now; `false`: it was already gone.
    pub async fn delete_group_snapshot(&self, ns: &str, name: &str) -> Result<bool> {
        let object = vgs_ref(ns, name);
        let Some(found) = self.get_group_snapshot(ns, name).await? else {
            return Ok(false);
        };
        let params = DeleteParams {
            preconditions: found.metadata.uid.map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.group_snapshots(ns).delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(err) => Err(ClusterError::Delete {
                failure: failure(&err, "delete", &object),
                object,
            }),
        }
    }

    pub async fn get_snapshot_content(&self, name: &str) -> Result<Option<VolumeSnapshotContent>> {
        get_opt(&self.contents(), vsc_ref(name)).await
    }

    pub async fn get_snapshot_class(&self, name: &str) -> Result<Option<VolumeSnapshotClass>> {
        get_opt(&self.classes(), class_ref(name)).await
    }

    /// Every VolumeSnapshot in `scope` matching the label `selector`, fetched in pages of `page_size`.
    pub async fn list_snapshots(
        &self,
        scope: &Scope,
        selector: Option<&str>,
        page_size: u32,
    ) -> Result<Vec<VolumeSnapshot>> {
        let api = match scope {
            Scope::All => Api::all(self.client().clone()),
            Scope::Namespace(ns) => self.snapshots(ns),
        };
        let list = ListRef {
            resource: VolumeSnapshot::RESOURCE,
            namespace: scope.namespace().map(str::to_string),
            selector: selector.map(str::to_string),
        };
        list_paged(&api, list, None, page_size).await
    }

    /// The VolumeSnapshots that belong to a VolumeGroupSnapshot: the snapshot controller labels them with
    /// `groupsnapshot.storage.k8s.io/volumeGroupSnapshotName` and sets `status.volumeGroupSnapshotName`. Their
    /// source differs between snapshot stacks (the real controller's members name the claim, kube-sim's a pre-provisioned
    /// content), so members are found by their group, never by their source.
    pub async fn group_members(
        &self,
        ns: &str,
        group: &str,
        page_size: u32,
    ) -> Result<Vec<VolumeSnapshot>> {
        let all = self
            .list_snapshots(&Scope::Namespace(ns.to_string()), None, page_size)
            .await?;
        Ok(all
            .into_iter()
            .filter(|vs| {
                vs.label(GROUP_MEMBER_LABEL) == Some(group)
                    || vs
                        .status
                        .as_ref()
                        .and_then(|s| s.volume_group_snapshot_name.as_deref())
                        == Some(group)
            })
            .collect())
    }

    /// Every VolumeSnapshotContent matching `selector`, in pages.
    pub async fn list_snapshot_contents(
        &self,
        selector: Option<&str>,
        page_size: u32,
    ) -> Result<Vec<VolumeSnapshotContent>> {
        let list = ListRef {
            resource: VolumeSnapshotContent::RESOURCE,
            namespace: None,
            selector: selector.map(str::to_string),
        };
        list_paged(&self.contents(), list, None, page_size).await
    }

    pub async fn list_snapshot_classes(&self) -> Result<Vec<VolumeSnapshotClass>> {
        let list = ListRef {
            resource: VolumeSnapshotClass::RESOURCE,
            namespace: None,
            selector: None,
        };
        list_paged(&self.classes(), list, None, DEFAULT_PAGE_SIZE).await
    }

    /// The default VolumeSnapshotClass (annotation `is-default-class: "true"`), optionally for one CSI driver.
    /// Several defaults for the same driver are ambiguous and reported as an error, as the snapshot controller
    /// itself refuses them.
    pub async fn default_snapshot_class(
        &self,
        driver: Option<&str>,
    ) -> Result<Option<VolumeSnapshotClass>> {
        let mut defaults: Vec<VolumeSnapshotClass> = self
            .list_snapshot_classes()
            .await?
            .into_iter()
            .filter(|c| c.is_default() && driver.is_none_or(|d| c.driver == d))
            .collect();
        match defaults.len() {
            0 => Ok(None),
            1 => Ok(defaults.pop()),
            _ => {
                let names: Vec<&str> = defaults.iter().map(VolumeSnapshotClass::name).collect();
                Err(ClusterError::Unusable {
                    object: class_ref(&names.join(", ")),
                    problem:
                        "more than one VolumeSnapshotClass is marked default; set snapshot.class \
                              explicitly or remove the annotation from all but one"
                            .to_string(),
                })
            }
        }
    }

    /// Applies label changes to a VolumeSnapshot as read in `current`. `Ok(None)`: nothing to change, nothing sent.
    pub async fn patch_snapshot_labels(
        &self,
        current: &VolumeSnapshot,
        changes: &LabelChanges,
    ) -> Result<Option<VolumeSnapshot>> {
        let object = vs_ref(current.namespace(), current.name());
        patch_labels(
            &self.snapshots(current.namespace()),
            &current.metadata,
            changes,
            object,
        )
        .await
    }

    /// Applies label changes to a VolumeSnapshotContent as read in `current`.
    pub async fn patch_content_labels(
        &self,
        current: &VolumeSnapshotContent,
        changes: &LabelChanges,
    ) -> Result<Option<VolumeSnapshotContent>> {
        let object = vsc_ref(current.name());
        patch_labels(&self.contents(), &current.metadata, changes, object).await
    }

    /// Sets annotations on a VolumeSnapshot as read in `current`, others left as they are: one JSON patch that
    /// tests the object's uid first, so that the retry policy may send it again after a lost answer (the same
    /// values land twice) and a snapshot recreated under the same name is never annotated by mistake.
    pub async fn annotate_snapshot(
        &self,
        current: &VolumeSnapshot,
        annotations: &BTreeMap<String, String>,
    ) -> Result<VolumeSnapshot> {
        let object = vs_ref(current.namespace(), current.name());
        let mut ops = vec![serde_json::json!({
            "op": "test", "path": "/metadata/uid", "value": current.metadata.uid.clone().unwrap_or_default()
        })];
        if current.metadata.annotations.is_some() {
            for (key, value) in annotations {
                let path = format!(
                    "/metadata/annotations/{}",
                    key.replace('~', "~0").replace('/', "~1")
                );
                ops.push(serde_json::json!({"op": "add", "path": path, "value": value}));
            }
        } else {
            ops.push(serde_json::json!({"op": "add", "path": "/metadata/annotations", "value": annotations}));
        }
        let patch = json_patch_of(serde_json::Value::Array(ops), "annotation", &object)?;
        self.snapshots(current.namespace())
            .patch(
                current.name(),
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
            .map_err(|err| ClusterError::Patch {
                failure: failure(&err, "patch", &object),
                object,
            })
    }

    /// [`patch_snapshot_labels`](Self::patch_snapshot_labels) for a snapshot as listed in the compact form.
    /// `Ok(false)`: nothing to change, nothing sent.
    pub async fn patch_listed_snapshot_labels(
        &self,
        current: &ListedVolumeSnapshot,
        changes: &LabelChanges,
    ) -> Result<bool> {
        let object = vs_ref(&current.namespace, current.name());
        let meta = ObjectMeta {
            uid: current.uid().map(str::to_string),
            ..listed_meta(current.labels.as_ref(), current.resource_version())
        };
        patch_labels(&self.snapshots(&current.namespace), &meta, changes, object)
            .await
            .map(|sent| sent.is_some())
    }

    /// [`patch_content_labels`](Self::patch_content_labels) for a content as listed in the compact form.
    pub async fn patch_listed_content_labels(
        &self,
        current: &ListedVolumeSnapshotContent,
        changes: &LabelChanges,
    ) -> Result<bool> {
        let object = vsc_ref(current.name());
        let meta = listed_meta(current.labels.as_ref(), current.resource_version());
        patch_labels(&self.contents(), &meta, changes, object)
            .await
            .map(|sent| sent.is_some())
    }

    /// Sets a VolumeSnapshotContent's `deletionPolicy` (merge patch on the spec).
    pub async fn set_content_deletion_policy(
        &self,
        name: &str,
        policy: &str,
    ) -> Result<VolumeSnapshotContent> {
        let object = vsc_ref(name);
        let body = serde_json::json!({"spec": {"deletionPolicy": policy}});
        self.contents()
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|err| ClusterError::Patch {
                failure: failure(&err, "patch", &object),
                object,
            })
    }

    /// Deletes a VolumeSnapshot so that the storage snapshot goes too: first its bound content's
    /// `deletionPolicy` is set to `Delete` (a `Retain` content would otherwise outlive the VS), then the VS is
    /// deleted. An already deleted snapshot is not an error, so re-running converges.
    pub async fn delete_snapshot(&self, ns: &str, name: &str) -> Result<DeleteOutcome> {
        let Some(vs) = self.get_snapshot(ns, name).await? else {
            return Ok(DeleteOutcome {
                already_gone: true,
                ..Default::default()
            });
        };
        self.delete_fetched_snapshot(&vs).await
    }

    /// [`delete_snapshot`](Self::delete_snapshot) for a snapshot the caller has just read, so the object is not
    /// fetched a second time. (Retention deletes as listed instead: [`Self::delete_listed_snapshot`].)
    pub async fn delete_fetched_snapshot(&self, vs: &VolumeSnapshot) -> Result<DeleteOutcome> {
        let (ns, name) = (vs.namespace(), vs.name());
        let mut outcome = DeleteOutcome {
            content: vs.bound_content().map(str::to_string),
            ..Default::default()
        };
        if let Some(content) = &outcome.content
            && let Some(vsc) = self.get_snapshot_content(content).await?
            && vsc.spec.deletion_policy != "Delete"
        {
            // Guarded by the resourceVersion just read, so the patch is safe to retry (cluster/retry.rs).
            let object = vsc_ref(content);
            let body = serde_json::json!({
                "metadata": {"resourceVersion": vsc.metadata.resource_version},
                "spec": {"deletionPolicy": "Delete"},
            });
            self.contents()
                .patch(content, &PatchParams::default(), &Patch::Merge(&body))
                .await
                .map_err(|err| ClusterError::Patch {
                    failure: failure(&err, "patch", &object),
                    object,
                })?;
            outcome.policy_patched = true;
        }
        let object = vs_ref(ns, name);
        // The uid precondition makes the delete safe to retry: it can only ever remove this very object.
        let params = DeleteParams {
            preconditions: vs.metadata.uid.clone().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.snapshots(ns).delete(name, &params).await {
            Ok(_) => Ok(outcome),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(DeleteOutcome {
                already_gone: true,
                ..outcome
            }),
            Err(err) => Err(ClusterError::Delete {
                failure: failure(&err, "delete", &object),
                object,
            }),
        }
    }

    /// Switches a content's `deletionPolicy` from `from` (what the list saw) to `to` in ONE JSON patch whose
    /// `test` ops require that the policy is still `from` and that the content is still bound to `snapshot` (its
    /// uid, or its namespace and name when the listed content did not record a uid). `Ok(false)`: a test failed,
    /// the content changed since the list and nothing was written.
    pub async fn switch_content_policy(
        &self,
        content: &ListedVolumeSnapshotContent,
        snapshot: &ListedVolumeSnapshot,
        from: &str,
        to: &str,
    ) -> Result<bool> {
        let name = content.name();
        let object = vsc_ref(name);
        let mut ops =
            vec![serde_json::json!({"op": "test", "path": "/spec/deletionPolicy", "value": from})];
        if content.bound_uid().is_some() {
            ops.push(serde_json::json!({"op": "test", "path": "/spec/volumeSnapshotRef/uid", "value": snapshot.uid()}));
        } else {
            ops.push(serde_json::json!({"op": "test", "path": "/spec/volumeSnapshotRef/namespace", "value": &*snapshot.namespace}));
            ops.push(serde_json::json!({"op": "test", "path": "/spec/volumeSnapshotRef/name", "value": snapshot.name()}));
        }
        ops.push(serde_json::json!({"op": "replace", "path": "/spec/deletionPolicy", "value": to}));
        let patch = json_patch_of(serde_json::Value::Array(ops), "deletionPolicy", &object)?;
        // A refusal asks for a fresh read: a content still as the ops test it (same policy, bound to the same
        // snapshot) met a conflict that was not about them (another field, or one the server made up), so the
        // same patch goes again (up to CONFLICT_REREADS times). Anything else changed since the list: `false`,
        // left for the next run.
        for attempt in 0..=CONFLICT_REREADS {
            match self
                .contents()
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Json::<()>(patch.clone()),
                )
                .await
            {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(status)) if is_test_failure(status.code, &status.message) => {
                    let still = attempt < CONFLICT_REREADS
                        && self.get_snapshot_content(name).await?.is_some_and(|now| {
                            let bound = &now.spec.volume_snapshot_ref;
                            now.spec.deletion_policy == from
                                && bound.namespace.as_deref() == Some(&*snapshot.namespace)
                                && bound.name.as_deref() == Some(snapshot.name())
                                && (content.bound_uid().is_none()
                                    || bound.uid.as_deref() == snapshot.uid())
                        });
                    if !still {
                        return Ok(false);
                    }
                    tracing::info!(%object, "deletionPolicy switch conflicted, the content is unchanged: sending it again");
                }
                Err(err) => {
                    return Err(ClusterError::Patch {
                        failure: failure(&err, "patch", &object),
                        object,
                    });
                }
            }
        }
        Ok(false)
    }

    /// Deletes a snapshot exactly as listed: DeleteOptions preconditions on its uid and the resourceVersion the
    /// list saw replace a re-read, so a snapshot pinned or changed since is refused by the apiserver (409) and
    /// left alone ([`ListedDelete::Changed`]).
    ///
    /// The retry layer may send the delete again after a lost answer; if the first attempt took effect on a
    /// snapshot with finalizers, its deletion moved the resourceVersion and the retry meets a 409 too. Only when
    /// a retry happened during the call is that 409 ambiguous, and only then one read tells them apart: a
    /// snapshot that is gone or terminating with the same uid was deleted by this call.
    ///
    /// A 409 without a retry is read too: the real snapshot controller writes the snapshot itself when
    /// retention switches its content to `Delete` (its `volumesnapshot-bound-protection` finalizer, then its
    /// status), which moves the resourceVersion within milliseconds, sometimes twice. A snapshot whose uid and
    /// labels are still as listed was not pinned or relabelled, so it is deleted under the fresh resourceVersion;
    /// a delete that meets yet another such write reads again, at most [`DELETE_REREADS`] times in all. Anything
    /// else is left alone.
    pub async fn delete_listed_snapshot(&self, vs: &ListedVolumeSnapshot) -> Result<ListedDelete> {
        match self.delete_as_read(vs).await? {
            ListedDelete::Changed => {}
            done => return Ok(done),
        }
        for _ in 0..DELETE_REREADS {
            let Some(now) = self.get_snapshot(&vs.namespace, vs.name()).await? else {
                return Ok(ListedDelete::AlreadyGone);
            };
            if !as_listed(&now, vs) {
                return Ok(ListedDelete::Changed);
            }
            match self
                .delete_as_read(&vs.at_resource_version(now.metadata.resource_version.as_deref()))
                .await?
            {
                ListedDelete::Changed => {}
                done => return Ok(done),
            }
        }
        Ok(ListedDelete::Changed)
    }

    /// One read of `vs`: `Some(true)` when it is still as listed (same uid and labels, not being deleted), so it
    /// was not pinned, relabelled or recreated since; `Some(false)` when it changed; `None` when it is gone or
    /// going (a deletion timestamp). What a group's deletion checks on each member first, since deleting a group
    /// carries no preconditions on its members.
    pub async fn snapshot_as_listed(&self, vs: &ListedVolumeSnapshot) -> Result<Option<bool>> {
        Ok(self
            .get_snapshot(&vs.namespace, vs.name())
            .await?
            .filter(|now| now.metadata.deletion_timestamp.is_none())
            .map(|now| as_listed(&now, vs)))
    }

    /// One delete of `vs` under preconditions on its uid and resourceVersion (see
    /// [`delete_listed_snapshot`](Self::delete_listed_snapshot)).
    async fn delete_as_read(&self, vs: &ListedVolumeSnapshot) -> Result<ListedDelete> {
        let (ns, name) = (&*vs.namespace, vs.name());
        let object = vs_ref(ns, name);
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: vs.uid().map(str::to_string),
                resource_version: vs.resource_version().map(str::to_string),
            }),
            ..DeleteParams::default()
        };
        let retries_before = self.retries();
        match self.snapshots(ns).delete(name, &params).await {
            Ok(_) => Ok(ListedDelete::Deleted),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(ListedDelete::AlreadyGone),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                if self.retries() == retries_before {
                    return Ok(ListedDelete::Changed);
                }
                Ok(match self.get_snapshot(ns, name).await? {
                    None => ListedDelete::Deleted,
                    Some(now)
                        if now.metadata.uid.as_deref() == vs.uid()
                            && now.metadata.deletion_timestamp.is_some() =>
                    {
                        ListedDelete::Deleted
                    }
                    Some(_) => ListedDelete::Changed,
                })
            }
            Err(err) => Err(ClusterError::Delete {
                failure: failure(&err, "delete", &object),
                object,
            }),
        }
    }

    /// Creates a pre-provisioned content and the snapshot bound to it (content first, so the snapshot controller
    /// finds it when the snapshot appears).
    pub async fn create_pre_provisioned(
        &self,
        new: &PreProvisioned,
    ) -> Result<(VolumeSnapshotContent, VolumeSnapshot)> {
        let object = vsc_ref(&new.content_name);
        let content = self
            .create_owned(&self.contents(), new.content_object(), object)
            .await?;
        let object = vs_ref(&new.namespace, &new.snapshot_name);
        let snapshot = self
            .create_owned(
                &self.snapshots(&new.namespace),
                new.snapshot_object(),
                object,
            )
            .await?;
        Ok((content, snapshot))
    }

    /// Deletes a VolumeSnapshotContent as it is (its own `deletionPolicy` decides whether the storage snapshot
    /// goes). A missing content is not an error.
    pub async fn delete_snapshot_content(&self, name: &str) -> Result<()> {
        let object = vsc_ref(name);
        match self.contents().delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(err) => Err(ClusterError::Delete {
                failure: failure(&err, "delete", &object),
                object,
            }),
        }
    }

    /// A resilient watch of the VolumeSnapshots in `scope` (optionally filtered by label `selector`): an initial
    /// paged list (`Init`, `InitApply`..., `InitDone`), then `Apply`/`Delete` events; reconnects with backoff.
    /// This is what a long-running exporter builds its state from, instead of polling.
    pub fn watch_snapshots(
        &self,
        scope: &Scope,
        selector: Option<&str>,
    ) -> futures::stream::BoxStream<'static, Result<watcher::Event<VolumeSnapshot>, watcher::Error>>
    {
        let api = match scope {
            Scope::All => Api::all(self.client().clone()),
            Scope::Namespace(ns) => self.snapshots(ns),
        };
        let mut config = watcher::Config::default().page_size(DEFAULT_PAGE_SIZE);
        if let Some(sel) = selector {
            config = config.labels(sel);
        }
        watcher::watcher(api, config).default_backoff().boxed()
    }

    /// Waits (through a watch, not polling) until the snapshot is `readyToUse`. A `status.error` fails at once
    /// with the controller's message, unless it is a write conflict that the controller retries past; the timeout
    /// gives [`ClusterError::NotReady`].
    pub async fn wait_snapshot_ready(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<VolumeSnapshot> {
        wait_ready(self.snapshots(ns), vs_ref(ns, name), timeout).await
    }

    /// As [`wait_snapshot_ready`](Self::wait_snapshot_ready), for a VolumeGroupSnapshot.
    pub async fn wait_group_snapshot_ready(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<VolumeGroupSnapshot> {
        wait_ready(self.group_snapshots(ns), vgs_ref(ns, name), timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_new_snapshot_names_its_pvc_class_and_labels() {
        let new = NewSnapshot {
            namespace: "shop".into(),
            name: "data-20250101".into(),
            pvc: "data".into(),
            class: Some("csi-hostpath".into()),
            labels: [("backup-ns.sh/pvc".to_string(), "data".to_string())].into(),
            annotations: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_value(new.to_object()).unwrap(),
            json!({
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshot",
                "metadata": {"name": "data-20250101", "namespace": "shop", "labels": {"backup-ns.sh/pvc": "data"}},
                "spec": {"source": {"persistentVolumeClaimName": "data"}, "volumeSnapshotClassName": "csi-hostpath"}
            })
        );
    }

    #[test]
    fn a_new_group_snapshot_selects_pvcs_by_label() {
        let new = NewGroupSnapshot {
            namespace: "shop".into(),
            name: "g1".into(),
            pvc_selector: [("app".to_string(), "db".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(new.to_object()).unwrap(),
            json!({
                "apiVersion": "groupsnapshot.storage.k8s.io/v1",
                "kind": "VolumeGroupSnapshot",
                "metadata": {"name": "g1", "namespace": "shop"},
                "spec": {"source": {"selector": {"matchLabels": {"app": "db"}}}}
            })
        );
    }
}
