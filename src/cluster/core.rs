//! Core objects the engine and operator commands touch: PVCs (get, Bound check, restore from a snapshot),
//! namespaces and Events (events.k8s.io/v1, visible in `kubectl describe` and `kubectl events`).

use super::client::Cluster;
use super::error::{ClusterError, ListRef, ObjectRef, Result};
use super::resources::VolumeSnapshot;
use super::snapshots::{DEFAULT_PAGE_SIZE, get_opt, list_paged};
use crate::retention::port::RestoreInFlight;
use crate::vocab::scope::Scope;
use k8s_openapi::api::core::v1::{
    Namespace, ObjectReference, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    TypedLocalObjectReference, TypedObjectReference, VolumeResourceRequirements,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::Api;
use kube::core::ObjectMeta;
use std::collections::BTreeMap;
use std::time::Duration;

/// Who reports our Events (`reportingController`).
pub const REPORTING_CONTROLLER: &str = "backup-ns.sh/backup-ns";
/// The apiserver rejects Event notes longer than this.
const NOTE_LIMIT: usize = 1024;

pub(super) fn pvc_ref(ns: &str, name: &str) -> ObjectRef {
    ObjectRef::new(
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        Some(ns),
        name,
    )
}

fn namespace_ref(name: &str) -> ObjectRef {
    ObjectRef::new("Namespace", "namespaces", None, name)
}

/// A PVC restored from a VolumeSnapshot (`spec.dataSource`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestorePvc {
    pub namespace: String,
    pub name: String,
    pub snapshot: String,
    /// Usually the snapshot's `status.restoreSize`.
    pub size: Quantity,
    pub storage_class: Option<String>,
    /// Empty means `ReadWriteOnce`.
    pub access_modes: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

impl RestorePvc {
    /// The PVC that [`Cluster::create_pvc`] would create (`restore -o yaml` prints this).
    pub fn to_object(&self) -> PersistentVolumeClaim {
        let access_modes = if self.access_modes.is_empty() {
            vec!["ReadWriteOnce".to_string()]
        } else {
            self.access_modes.clone()
        };
        let api_group = Some("snapshot.storage.k8s.io".to_string());
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: (!self.labels.is_empty()).then(|| self.labels.clone()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(access_modes),
                storage_class_name: self.storage_class.clone(),
                data_source: Some(TypedLocalObjectReference {
                    api_group: api_group.clone(),
                    kind: VolumeSnapshot::KIND.to_string(),
                    name: self.snapshot.clone(),
                }),
                data_source_ref: Some(TypedObjectReference {
                    api_group,
                    kind: VolumeSnapshot::KIND.to_string(),
                    name: self.snapshot.clone(),
                    namespace: None,
                }),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_string(), self.size.clone())].into()),
                    limits: None,
                }),
                ..Default::default()
            }),
            status: None,
        }
    }
}

/// Normal or Warning, as Events spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One Event about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub regarding: ObjectReference,
    pub event_type: EventType,
    /// CamelCase machine reason, e.g. `BackupSucceeded`.
    pub reason: String,
    /// What we did, e.g. `Backup`.
    pub action: String,
    /// Human note; cut to the apiserver's 1024-character limit.
    pub note: String,
}

/// An `ObjectReference` for a PVC, as Events' `regarding` wants it.
pub fn pvc_reference(pvc: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        name: pvc.metadata.name.clone(),
        namespace: pvc.metadata.namespace.clone(),
        uid: pvc.metadata.uid.clone(),
        ..Default::default()
    }
}

/// An `ObjectReference` for a pod by name (the Job's pod, for Events).
pub fn pod_reference(namespace: &str, name: &str, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        uid,
        ..Default::default()
    }
}

fn truncate_note(note: &str) -> String {
    if note.len() <= NOTE_LIMIT {
        return note.to_string();
    }
    let mut end = NOTE_LIMIT - 3;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &note[..end])
}

impl NewEvent {
    /// The Event object; `instance` is the reporting instance (pod or host name).
    pub fn to_object(&self, instance: &str) -> Event {
        let ns = self.regarding.namespace.clone();
        let regarding_name = self.regarding.name.clone().unwrap_or_default();
        let suffix: u64 = rand::random();
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{regarding_name}.{suffix:016x}")),
                namespace: ns,
                ..Default::default()
            },
            event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            action: Some(self.action.clone()),
            reason: Some(self.reason.clone()),
            note: Some(truncate_note(&self.note)),
            type_: Some(self.event_type.as_str().to_string()),
            regarding: Some(self.regarding.clone()),
            reporting_controller: Some(REPORTING_CONTROLLER.to_string()),
            reporting_instance: Some(instance.to_string()),
            ..Default::default()
        }
    }
}

/// The VolumeSnapshot a claim is being restored from: it is not Bound yet and its `dataSourceRef` (else its
/// `dataSource`) names a `snapshot.storage.k8s.io` VolumeSnapshot.
fn restore_in_flight(claim: &PersistentVolumeClaim) -> Option<RestoreInFlight> {
    let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let spec = claim.spec.as_ref()?;
    let own_ns = claim.metadata.namespace.clone().unwrap_or_default();
    let is_snapshot = |group: Option<&String>, kind: &str| {
        kind == VolumeSnapshot::KIND && group.map(String::as_str) == Some("snapshot.storage.k8s.io")
    };
    let (namespace, snapshot) = match (&spec.data_source_ref, &spec.data_source) {
        (Some(r), _) if is_snapshot(r.api_group.as_ref(), &r.kind) => (
            r.namespace.clone().unwrap_or_else(|| own_ns.clone()),
            r.name.clone(),
        ),
        (_, Some(d)) if is_snapshot(d.api_group.as_ref(), &d.kind) => {
            (own_ns.clone(), d.name.clone())
        }
        _ => return None,
    };
    (!bound).then(|| RestoreInFlight {
        namespace,
        snapshot,
        claim: format!(
            "{own_ns}/{}",
            claim.metadata.name.as_deref().unwrap_or_default()
        ),
    })
}

impl Cluster {
    /// The restores in flight among the claims of `scope` (see [`RestoreInFlight`]), listed in pages.
    pub async fn restores_in_flight(
        &self,
        scope: &Scope,
        page_size: u32,
    ) -> Result<Vec<RestoreInFlight>> {
        let api: Api<PersistentVolumeClaim> = match scope.namespace() {
            Some(ns) => Api::namespaced(self.client().clone(), ns),
            None => Api::all(self.client().clone()),
        };
        let list = ListRef {
            resource: "persistentvolumeclaims",
            namespace: scope.namespace().map(str::to_string),
            selector: None,
        };
        let claims = list_paged(&api, list, None, page_size).await?;
        Ok(claims.iter().filter_map(restore_in_flight).collect())
    }

    pub async fn get_pvc(&self, ns: &str, name: &str) -> Result<Option<PersistentVolumeClaim>> {
        get_opt(
            &Api::namespaced(self.client().clone(), ns),
            pvc_ref(ns, name),
        )
        .await
    }

    /// The PVC, if it exists and is Bound; otherwise an error naming the PVC and its phase.
    pub async fn require_bound_pvc(&self, ns: &str, name: &str) -> Result<PersistentVolumeClaim> {
        let object = pvc_ref(ns, name);
        let Some(pvc) = self.get_pvc(ns, name).await? else {
            return Err(ClusterError::Missing { object });
        };
        let phase = pvc
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into());
        if phase != "Bound" {
            return Err(ClusterError::Unusable {
                object,
                problem: format!("is {phase}, not Bound; a snapshot needs a bound volume"),
            });
        }
        Ok(pvc)
    }

    /// The names of the PVCs in `ns` (for "did you mean" when a named one does not exist).
    pub async fn pvc_names(&self, ns: &str) -> Result<Vec<String>> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client().clone(), ns);
        names_of(&api, "persistentvolumeclaims", Some(ns)).await
    }

    /// The names of the namespaces (for "did you mean"; a tenant's role usually may not list them).
    pub async fn namespace_names(&self) -> Result<Vec<String>> {
        let api: Api<Namespace> = Api::all(self.client().clone());
        names_of(&api, "namespaces", None).await
    }

    /// Creates a PVC (e.g. [`RestorePvc::to_object`]). An existing PVC is never overwritten: HTTP 409.
    pub async fn create_pvc(&self, pvc: &PersistentVolumeClaim) -> Result<PersistentVolumeClaim> {
        let ns = pvc.metadata.namespace.clone().unwrap_or_default();
        let object = pvc_ref(&ns, pvc.metadata.name.as_deref().unwrap_or_default());
        self.create_owned(
            &Api::namespaced(self.client().clone(), &ns),
            pvc.clone(),
            object,
        )
        .await
    }

    /// Waits through a watch until the PVC is Bound (restore `--wait`).
    pub async fn wait_pvc_bound(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<PersistentVolumeClaim> {
        let object = pvc_ref(ns, name);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client().clone(), ns);
        let bound = |p: Option<&PersistentVolumeClaim>| {
            p.is_none_or(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
        };
        let wait = kube::runtime::wait::await_condition(api, name, bound);
        match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(ClusterError::NotReady {
                object,
                after: timeout,
            }),
            Ok(Err(err)) => Err(ClusterError::Watch {
                object,
                message: err.to_string(),
            }),
            Ok(Ok(None)) => Err(ClusterError::Vanished { object }),
            Ok(Ok(Some(pvc))) => Ok(pvc),
        }
    }

    pub async fn get_namespace(&self, name: &str) -> Result<Option<Namespace>> {
        get_opt(&Api::all(self.client().clone()), namespace_ref(name)).await
    }

    /// The namespace, or [`ClusterError::Missing`].
    pub async fn require_namespace(&self, name: &str) -> Result<Namespace> {
        self.get_namespace(name)
            .await?
            .ok_or_else(|| ClusterError::Missing {
                object: namespace_ref(name),
            })
    }

    /// Records an Event about `event.regarding` in its namespace.
    pub async fn emit_event(&self, event: &NewEvent) -> Result<Event> {
        let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| "backup-ns".into());
        let body = event.to_object(&instance);
        let ns = body.metadata.namespace.clone().unwrap_or_default();
        let object = ObjectRef::new(
            "Event",
            "events.events.k8s.io",
            Some(&ns),
            body.metadata.name.as_deref().unwrap_or_default(),
        );
        // The name's random suffix is drawn once, above, so a retried create meets its own Event.
        self.create_owned(&Api::namespaced(self.client().clone(), &ns), body, object)
            .await
    }

    /// The Events in `ns` about the object named `regarding` (any kind), oldest first.
    pub async fn events_about(&self, ns: &str, regarding: &str) -> Result<Vec<Event>> {
        let list = ListRef {
            resource: "events.events.k8s.io",
            namespace: Some(ns.to_string()),
            selector: None,
        };
        let api: Api<Event> = Api::namespaced(self.client().clone(), ns);
        let mut events: Vec<Event> = list_paged(&api, list, None, DEFAULT_PAGE_SIZE)
            .await?
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding))
            .collect();
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        Ok(events)
    }
}

/// The names of every object `api` lists (in `namespace`, if given), page by page.
pub(super) async fn names_of<K>(
    api: &Api<K>,
    resource: &'static str,
    namespace: Option<&str>,
) -> Result<Vec<String>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = ListRef {
        resource,
        namespace: namespace.map(str::to_string),
        selector: None,
    };
    Ok(list_paged(api, list, None, DEFAULT_PAGE_SIZE)
        .await?
        .into_iter()
        .filter_map(|o| o.meta().name.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(phase: Option<&str>, source: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "restore", "namespace": "shop"},
            "spec": source,
            "status": phase.map(|p| serde_json::json!({"phase": p})),
        }))
        .expect("a claim")
    }

    #[test]
    fn a_claim_not_yet_bound_with_a_snapshot_source_is_a_restore_in_flight() {
        let snap = |name: &str| serde_json::json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": name});
        let in_flight = |phase, source| super::restore_in_flight(&claim(phase, source));
        let want = |ns: &str, snapshot: &str| {
            Some(RestoreInFlight {
                namespace: ns.into(),
                snapshot: snapshot.into(),
                claim: "shop/restore".into(),
            })
        };
        assert_eq!(
            in_flight(
                Some("Pending"),
                serde_json::json!({"dataSource": snap("a")})
            ),
            want("shop", "a")
        );
        assert_eq!(
            in_flight(None, serde_json::json!({"dataSourceRef": snap("a")})),
            want("shop", "a")
        );
        let mut cross = snap("b");
        cross["namespace"] = "prod".into();
        assert_eq!(
            in_flight(
                Some("Pending"),
                serde_json::json!({"dataSource": snap("a"), "dataSourceRef": cross})
            ),
            want("prod", "b"),
            "dataSourceRef wins"
        );
        // Done, or not from a snapshot: nothing held.
        assert_eq!(
            in_flight(Some("Bound"), serde_json::json!({"dataSource": snap("a")})),
            None
        );
        assert_eq!(
            in_flight(
                Some("Pending"),
                serde_json::json!({"dataSource": {"kind": "PersistentVolumeClaim", "name": "a"}})
            ),
            None
        );
        assert_eq!(
            in_flight(
                Some("Pending"),
                serde_json::json!({"dataSource": {"apiGroup": "example.com", "kind": "VolumeSnapshot", "name": "a"}})
            ),
            None
        );
        assert_eq!(in_flight(Some("Pending"), serde_json::json!({})), None);
    }

    #[test]
    fn a_restore_pvc_points_at_its_snapshot_with_the_restore_size() {
        let pvc = RestorePvc {
            namespace: "shop".into(),
            name: "data-restored".into(),
            snapshot: "data-20250101".into(),
            size: Quantity("1Gi".into()),
            storage_class: Some("csi-hostpath-sc".into()),
            access_modes: vec![],
            labels: BTreeMap::new(),
        }
        .to_object();
        let value = serde_json::to_value(&pvc).unwrap();
        assert_eq!(
            value["spec"]["dataSource"],
            json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "data-20250101"})
        );
        assert_eq!(value["spec"]["resources"]["requests"]["storage"], "1Gi");
        assert_eq!(value["spec"]["accessModes"], json!(["ReadWriteOnce"]));
        assert_eq!(value["spec"]["storageClassName"], "csi-hostpath-sc");
    }

    #[test]
    fn event_notes_are_cut_to_the_apiserver_limit_on_a_char_boundary() {
        let long = "é".repeat(800);
        let cut = truncate_note(&long);
        assert!(cut.len() <= NOTE_LIMIT, "{}", cut.len());
        assert!(cut.ends_with("..."));
        assert_eq!(truncate_note("short"), "short");
    }

    #[test]
    fn events_carry_reason_type_and_the_object_they_are_about() {
        let ev = NewEvent {
            regarding: pod_reference("shop", "backup-1-abc", None),
            event_type: EventType::Warning,
            reason: "BackupFailed".into(),
            action: "Backup".into(),
            note: "pre-hook failed".into(),
        }
        .to_object("node-1");
        assert_eq!(ev.metadata.namespace.as_deref(), Some("shop"));
        assert!(
            ev.metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with("backup-1-abc.")
        );
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        assert_eq!(
            ev.reporting_controller.as_deref(),
            Some(REPORTING_CONTROLLER)
        );
        assert!(ev.event_time.is_some());
    }
}
