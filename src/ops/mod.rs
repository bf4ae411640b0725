//! The operator commands' logic that needs no API: `list` selectors, rows and tables, the PVC a `restore`
//! creates, which snapshots `delete` may touch, the Job `adhoc` derives from the backup CronJob, and the checking
//! of plan files for `validate`. The CLI files (`src/cli/{list,restore,delete,adhoc,validate}.rs`) fetch objects
//! through `cluster` and hand them to these functions, so every decision is unit-tested without a cluster.

pub mod adhoc;
pub mod age;
pub mod delete;
pub mod listing;
pub mod namespaces;
pub mod restore;
pub mod style;
pub mod validate;
pub mod verify;
pub mod verify_leftovers;

use crate::Exit;
use crate::cluster::ClusterError;

/// Every way an operator command refuses or fails. Each message names the object and says how to go on.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(
        "VolumeSnapshot {namespace}/{name} does not exist{}; `backup-ns list -n {namespace}` shows the snapshots \
         there",
        near.as_deref().map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default()
    )]
    SnapshotMissing {
        namespace: String,
        name: String,
        /// The nearest snapshot name that does exist.
        near: Option<String>,
    },
    #[error(
        "VolumeSnapshot {namespace}/{name} is not ready to use{detail}; restore a ready snapshot \
         (READY=true in `backup-ns list -n {namespace}`) or wait until this one is ready"
    )]
    SnapshotNotReady {
        namespace: String,
        name: String,
        detail: String,
    },
    #[error(
        "PersistentVolumeClaim {namespace}/{name} already exists and restore never overwrites a claim; choose \
         another --pvc name, or delete the claim first (`kubectl -n {namespace} delete pvc {name}`)"
    )]
    PvcExists { namespace: String, name: String },
    #[error(
        "VolumeSnapshot {namespace}/{name} has no status.restoreSize and its source PersistentVolumeClaim is gone, \
         so the size of the new claim is unknown"
    )]
    SizeUnknown { namespace: String, name: String },
    #[error(
        "VolumeSnapshot {namespace}/{name} has no backup-ns.sh/ labels, so backup-ns did not create it; \
         pass --force to delete it anyway"
    )]
    Unmanaged { namespace: String, name: String },
    #[error(
        "VolumeSnapshot {namespace}/{name} is a member of VolumeGroupSnapshot {group}, and a group's members are \
         deleted only together, through their group (even with --force): \
         `kubectl -n {namespace} delete volumegroupsnapshot {group}`"
    )]
    GroupMember {
        namespace: String,
        name: String,
        group: String,
    },
    #[error(
        "refusing to delete without confirmation: stdin is not a terminal; pass --yes to delete, or --dry-run to \
         only show what would be deleted"
    )]
    NotConfirmable,
    #[error("--from `{value}`: expected cronjob/NAME (e.g. `--from cronjob/backup`)")]
    BadFrom { value: String },
    #[error(
        "CronJob {namespace}/{name} does not exist; adhoc copies the namespace's backup CronJob: pass \
         `--from cronjob/NAME` or `-n NAMESPACE` (`kubectl -n {namespace} get cronjobs` lists them)"
    )]
    CronJobMissing { namespace: String, name: String },
    #[error(
        "a backup Job of CronJob {namespace}/{cronjob} is still running ({jobs}); wait for it \
         (`kubectl -n {namespace} wait --for=condition=complete job/{first}`) and try again"
    )]
    BackupRunning {
        namespace: String,
        cronjob: String,
        jobs: String,
        first: String,
    },
    #[error(
        "Job {namespace}/{name} failed: {reason}; see its logs: `kubectl -n {namespace} logs job/{name}`"
    )]
    JobFailed {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("could not write the output: {0}")]
    Output(String),
    /// `verify` cannot start: no such snapshot, no database hook, no mount of the claim (exit 2).
    #[error("{0}")]
    VerifyRefused(String),
    #[error(
        "PersistentVolumeClaim {namespace}/{claim} was restored, but the backup_label of its hot PostgreSQL snapshot \
         could not be written into it: {why}; the server would not recover consistently from it as it is"
    )]
    BackupLabel {
        namespace: String,
        claim: String,
        why: String,
    },
}

/// [`OpsError::SnapshotMissing`] for `name` in `ns`, with the nearest existing snapshot name, if one is near. A
/// failed list (no `list` right) only costs the suggestion.
pub async fn snapshot_missing(cluster: &crate::cluster::Cluster, ns: &str, name: &str) -> OpsError {
    let names = cluster.snapshot_names(ns).await.unwrap_or_default();
    OpsError::SnapshotMissing {
        namespace: ns.to_string(),
        name: name.to_string(),
        near: crate::vocab::suggest::suggest(name, names.iter().map(String::as_str))
            .map(str::to_string),
    }
}

impl OpsError {
    /// The documented exit code for this failure.
    pub fn exit(&self) -> Exit {
        match self {
            OpsError::BadFrom { .. } | OpsError::NotConfirmable | OpsError::VerifyRefused(_) => {
                Exit::Usage
            }
            _ => Exit::Failure,
        }
    }
}
