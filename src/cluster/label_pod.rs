//! The short-lived pod `restore` runs for a hot PostgreSQL snapshot: the restored claim mounted read-write, one
//! `sh -c` script (from `hooks::hot::label_script`) that writes the recorded backup_label into the data
//! directory. Created, waited for and read through the pod calls of `verify.rs`.

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimVolumeSource, Pod, PodSpec, Volume, VolumeMount,
};
use kube::core::ObjectMeta;
use std::time::Duration;

/// The label pod, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelPod {
    pub namespace: String,
    pub name: String,
    /// The database container's image (it has a POSIX shell, `stat` and the data directory's user).
    pub image: String,
    pub script: String,
    /// The restored claim, mounted read-write at `mount_path`.
    pub claim: String,
    pub mount_path: String,
    /// `activeDeadlineSeconds`: the pod ends by itself even when nobody is left to delete it.
    pub deadline: Duration,
}

impl LabelPod {
    pub fn to_object(&self) -> Pod {
        script_pod(
            ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            ScriptContainer {
                name: "label",
                image: &self.image,
                script: &self.script,
                deadline: self.deadline,
            },
            vec![VolumeMount {
                name: "restored".into(),
                mount_path: self.mount_path.clone(),
                ..Default::default()
            }],
            vec![Volume {
                name: "restored".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: self.claim.clone(),
                    read_only: Some(false),
                }),
                ..Default::default()
            }],
        )
    }
}

/// The one container of a pod that runs a script once.
pub(crate) struct ScriptContainer<'a> {
    pub name: &'a str,
    pub image: &'a str,
    /// Run as `sh -c SCRIPT`.
    pub script: &'a str,
    /// `activeDeadlineSeconds`.
    pub deadline: Duration,
}

/// A pod that runs `container`'s script once (never restarted, no service account token, a short grace period)
/// with `mounts` of `volumes`: the shape of the verification pod and of the label pod.
pub(crate) fn script_pod(
    metadata: ObjectMeta,
    container: ScriptContainer<'_>,
    mounts: Vec<VolumeMount>,
    volumes: Vec<Volume>,
) -> Pod {
    Pod {
        metadata,
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: Some(
                i64::try_from(container.deadline.as_secs())
                    .unwrap_or(i64::MAX)
                    .max(1),
            ),
            termination_grace_period_seconds: Some(10),
            automount_service_account_token: Some(false),
            containers: vec![Container {
                name: container.name.into(),
                image: Some(container.image.to_string()),
                command: Some(vec!["sh".into(), "-c".into(), container.script.to_string()]),
                volume_mounts: Some(mounts),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
        status: None,
    }
}
