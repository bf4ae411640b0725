//! The Kubernetes side of `backup-ns verify`: the verification pod (built from plain values, created, waited
//! for, its log read), the objects a run labels `backup-ns.sh/verify-run` (listed and deleted, so that every
//! path cleans up and the next run removes a crashed run's leftovers), and the workload pod's spec the pod
//! borrows its image and mount from.

use super::client::Cluster;
use super::core::pvc_ref;
use super::error::{ClusterError, ListRef, Result};
use super::jobs::{pod_ref, wait_until_ended};
use super::label_pod::{ScriptContainer, script_pod};
use super::snapshots::{DEFAULT_PAGE_SIZE, failure, get_opt, list_paged};
use crate::vocab::scope::Scope;
use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
    VolumeMount,
};
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams};
use kube::core::ObjectMeta;
use std::collections::BTreeMap;
use std::time::Duration;

/// The verification pod, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPod {
    pub namespace: String,
    pub name: String,
    pub image: String,
    /// `sh -c SCRIPT`.
    pub script: String,
    /// The restored claim, mounted read-only at `mount_path` (and `sub_path`, as the workload mounts it).
    pub claim: String,
    pub mount_path: String,
    pub sub_path: Option<String>,
    /// Where the emptyDir goes.
    pub work_dir: String,
    pub labels: BTreeMap<String, String>,
    /// `activeDeadlineSeconds`: the pod ends by itself even when nobody is left to delete it.
    pub deadline: Duration,
}

impl VerifyPod {
    pub fn to_object(&self) -> Pod {
        script_pod(
            ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(self.labels.clone()),
                ..Default::default()
            },
            ScriptContainer {
                name: "verify",
                image: &self.image,
                script: &self.script,
                deadline: self.deadline,
            },
            vec![
                VolumeMount {
                    name: "backup".into(),
                    mount_path: self.mount_path.clone(),
                    sub_path: self.sub_path.clone(),
                    read_only: Some(true),
                    ..Default::default()
                },
                VolumeMount {
                    name: "work".into(),
                    mount_path: self.work_dir.clone(),
                    ..Default::default()
                },
            ],
            vec![
                Volume {
                    name: "backup".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: self.claim.clone(),
                        read_only: Some(true),
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "work".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                },
            ],
        )
    }
}

/// Where a container mounts one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMount {
    pub image: String,
    pub mount_path: String,
    pub sub_path: Option<String>,
}

/// The image of `container` in `pod`, and where it mounts claim `claim`; `None` when it does not mount it.
pub fn claim_mount(pod: &Pod, container: &str, claim: &str) -> Option<ClaimMount> {
    let spec = pod.spec.as_ref()?;
    let volume = spec.volumes.as_ref()?.iter().find(|v| {
        v.persistent_volume_claim
            .as_ref()
            .is_some_and(|c| c.claim_name == claim)
    })?;
    let c = spec.containers.iter().find(|c| c.name == container)?;
    let mount = c
        .volume_mounts
        .as_ref()?
        .iter()
        .find(|m| m.name == volume.name)?;
    Some(ClaimMount {
        image: c.image.clone().unwrap_or_default(),
        mount_path: mount.mount_path.clone(),
        sub_path: mount.sub_path.clone().filter(|s| !s.is_empty()),
    })
}

/// How a finished pod ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEnd {
    /// `Succeeded` or `Failed`.
    pub phase: String,
    /// The container's exit code, when it ran.
    pub exit_code: Option<i32>,
    /// The pod's or the container's reason (`DeadlineExceeded`, `Error`, ...).
    pub reason: Option<String>,
}

fn pod_end(pod: &Pod) -> Option<PodEnd> {
    let status = pod.status.as_ref()?;
    let phase = status.phase.clone()?;
    if phase != "Succeeded" && phase != "Failed" {
        return None;
    }
    let terminated = status
        .container_statuses
        .as_ref()
        .and_then(|s| s.first())
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    Some(PodEnd {
        phase,
        exit_code: terminated.map(|t| t.exit_code),
        reason: status
            .reason
            .clone()
            .or_else(|| terminated.and_then(|t| t.reason.clone())),
    })
}

impl Cluster {
    pub async fn get_pod(&self, ns: &str, name: &str) -> Result<Option<Pod>> {
        get_opt(
            &Api::namespaced(self.client().clone(), ns),
            pod_ref(ns, name),
        )
        .await
    }

    pub async fn create_pod(&self, pod: &Pod) -> Result<Pod> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let object = pod_ref(&ns, pod.metadata.name.as_deref().unwrap_or_default());
        self.create_owned(
            &Api::namespaced(self.client().clone(), &ns),
            pod.clone(),
            object,
        )
        .await
    }

    /// Waits through a watch until the pod has ended (`Succeeded` or `Failed`).
    pub async fn wait_pod_finished(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<PodEnd> {
        let api: Api<Pod> = Api::namespaced(self.client().clone(), ns);
        wait_until_ended(api, pod_ref(ns, name), timeout, pod_end).await
    }

    /// The whole log of a pod's (only) container.
    pub async fn pod_log(&self, ns: &str, name: &str) -> Result<String> {
        let api: Api<Pod> = Api::namespaced(self.client().clone(), ns);
        api.logs(name, &LogParams::default())
            .await
            .map_err(|e| ClusterError::Logs {
                object: pod_ref(ns, name),
                message: e.to_string(),
            })
    }

    /// The pods and claims of namespace `ns` that carry label `key` (any value).
    pub async fn labelled_objects(
        &self,
        ns: &str,
        key: &str,
    ) -> Result<(Vec<Pod>, Vec<PersistentVolumeClaim>)> {
        self.labelled_objects_in(&Scope::Namespace(ns.to_string()), key)
            .await
    }

    /// The pods and claims of `scope` (one namespace or all) that carry label `key` (any value).
    pub async fn labelled_objects_in(
        &self,
        scope: &Scope,
        key: &str,
    ) -> Result<(Vec<Pod>, Vec<PersistentVolumeClaim>)> {
        let list = |resource| ListRef {
            resource,
            namespace: scope.namespace().map(str::to_string),
            selector: Some(key.to_string()),
        };
        let (pods, pvcs): (Api<Pod>, Api<PersistentVolumeClaim>) = match scope.namespace() {
            Some(ns) => (
                Api::namespaced(self.client().clone(), ns),
                Api::namespaced(self.client().clone(), ns),
            ),
            None => (
                Api::all(self.client().clone()),
                Api::all(self.client().clone()),
            ),
        };
        Ok((
            list_paged(&pods, list("pods"), None, DEFAULT_PAGE_SIZE).await?,
            list_paged(
                &pvcs,
                list("persistentvolumeclaims"),
                None,
                DEFAULT_PAGE_SIZE,
            )
            .await?,
        ))
    }

    /// Deletes a pod at once (grace period 0: a verification pod holds nothing worth a graceful stop); a pod
    /// already gone is not an error.
    pub async fn delete_pod_now(&self, ns: &str, name: &str) -> Result<()> {
        let api: Api<Pod> = Api::namespaced(self.client().clone(), ns);
        let object = pod_ref(ns, name);
        match api
            .delete(name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(err) => Err(ClusterError::Delete {
                failure: failure(&err, "delete", &object),
                object,
            }),
        }
    }

    /// Deletes a claim; one already gone is not an error.
    pub async fn delete_pvc(&self, ns: &str, name: &str) -> Result<()> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client().clone(), ns);
        let object = pvc_ref(ns, name);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(err) => Err(ClusterError::Delete {
                failure: failure(&err, "delete", &object),
                object,
            }),
        }
    }

    /// Removes label `key` from a claim (a kept claim is no longer a leftover for the next run to remove).
    pub async fn unlabel_pvc(&self, ns: &str, name: &str, key: &str) -> Result<()> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client().clone(), ns);
        let object = pvc_ref(ns, name);
        let body = serde_json::json!({"metadata": {"labels": {key: null}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map(|_| ())
            .map_err(|err| ClusterError::Patch {
                failure: failure(&err, "patch", &object),
                object,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_workload_mount_of_the_claim_gives_path_sub_path_and_image() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "db-0"},
            "spec": {
                "containers": [{"name": "postgres", "image": "postgres:17",
                                "volumeMounts": [{"name": "d", "mountPath": "/var/lib/postgresql/data", "subPath": "pg"}]}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "pgdata"}}]
            }
        }))
        .unwrap();
        assert_eq!(
            claim_mount(&pod, "postgres", "pgdata"),
            Some(ClaimMount {
                image: "postgres:17".into(),
                mount_path: "/var/lib/postgresql/data".into(),
                sub_path: Some("pg".into()),
            })
        );
        assert_eq!(claim_mount(&pod, "postgres", "other"), None);
        assert_eq!(claim_mount(&pod, "sidecar", "pgdata"), None);
    }
}
