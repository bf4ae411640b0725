//! `backup-ns restore SNAPSHOT --pvc NEW`: a new PersistentVolumeClaim from a VolumeSnapshot. Never overwrites
//! a claim, refuses a snapshot that is not ready, `-o yaml|json` prints the claim without creating it.

use super::common::{ClusterArgs, block_on, emit};
use crate::Exit;
use crate::cluster::ClusterError;
use crate::ops::restore::{RestoreRequest, created_line, restore_pvc, source_claim};
use crate::ops::{OpsError, snapshot_missing};
use clap::{Args, ValueEnum};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ManifestFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Size: the snapshot's status.restoreSize. Access modes and storage class: the
flags, else the snapshot's source claim if it still exists, else
ReadWriteOnce and the cluster's default class.

Examples:
  backup-ns restore data-2025-01-09-001749-vfyfeu --pvc data-restored
  backup-ns restore SNAPSHOT --pvc data-restored --wait --timeout 10m
  backup-ns restore SNAPSHOT --pvc data-copy -n shop \\
      --storage-class fast --access-mode ReadWriteMany
  backup-ns restore SNAPSHOT --pvc data-restored -o yaml > pvc.yaml")]
pub struct RestoreArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The VolumeSnapshot to restore (see `backup-ns list`).
    pub snapshot: String,
    /// Name of the new PersistentVolumeClaim; it must not exist yet.
    #[arg(long, value_name = "NEW")]
    pub pvc: String,
    /// StorageClass of the new claim (default: the source claim's, else the cluster default).
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Access mode of the new claim, repeatable (default: the source claim's, else ReadWriteOnce).
    #[arg(long = "access-mode", value_name = "MODE", value_parser = ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"])]
    pub access_modes: Vec<String>,
    /// Wait until the new claim is Bound.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print the claim in this format instead of creating it.
    #[arg(short, long, value_enum)]
    pub output: Option<ManifestFormat>,
}

pub fn run(args: RestoreArgs) -> Exit {
    block_on(restore(args))
}

async fn restore(args: RestoreArgs) -> Result<Exit, OpsError> {
    let cluster = args.cluster.connect().await?;
    let ns = cluster.namespace().to_string();
    let Some(vs) = cluster.get_snapshot(&ns, &args.snapshot).await? else {
        return Err(snapshot_missing(&cluster, &ns, &args.snapshot).await);
    };
    let source = match source_claim(&vs) {
        Some(name) => cluster.get_pvc(&ns, name).await?,
        None => None,
    };
    let request = RestoreRequest {
        namespace: ns.clone(),
        snapshot: args.snapshot.clone(),
        pvc: args.pvc.clone(),
        storage_class: args.storage_class.clone(),
        access_modes: args.access_modes.clone(),
    };
    let pvc = restore_pvc(&request, &vs, source.as_ref())?;
    let object = pvc.to_object();
    let exists = cluster.get_pvc(&ns, &args.pvc).await?.is_some();
    if let Some(format) = args.output {
        if exists {
            eprintln!(
                "warning: PersistentVolumeClaim {ns}/{} already exists; applying this manifest would fail",
                args.pvc
            );
        }
        let text = match format {
            ManifestFormat::Yaml => serde_saphyr::to_string(&object).map_err(|e| e.to_string()),
            ManifestFormat::Json => serde_json::to_string_pretty(&object)
                .map(|s| s + "\n")
                .map_err(|e| e.to_string()),
        }
        .map_err(OpsError::Output)?;
        emit(&text)?;
        return Ok(Exit::Success);
    }
    let pvc_exists = || OpsError::PvcExists {
        namespace: ns.clone(),
        name: args.pvc.clone(),
    };
    if exists {
        return Err(pvc_exists());
    }
    match cluster.create_pvc(&object).await {
        Ok(_) => {}
        // Created by someone else between our check and our create.
        Err(err) if err.failure().is_some_and(|f| f.code == Some(409)) => return Err(pvc_exists()),
        Err(err) => return Err(err.into()),
    }
    emit(&created_line(&pvc, &ns))?;
    if args.wait {
        match cluster.wait_pvc_bound(&ns, &args.pvc, args.timeout).await {
            Ok(bound) => {
                let volume = bound
                    .spec
                    .as_ref()
                    .and_then(|s| s.volume_name.clone())
                    .unwrap_or_default();
                emit(&format!(
                    "persistentvolumeclaim/{} is Bound (volume {volume})\n",
                    args.pvc
                ))?;
            }
            Err(err @ ClusterError::NotReady { .. }) => {
                super::common::report(&format!(
                    "{err}; a StorageClass with volumeBindingMode WaitForFirstConsumer binds only once a pod \
                     mounts the claim (`kubectl -n {ns} describe pvc {}` shows why it waits)",
                    args.pvc
                ));
                return Ok(Exit::Failure);
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(Exit::Success)
}
