//! `backup-ns restore SNAPSHOT --pvc NEW`: a new PersistentVolumeClaim from a VolumeSnapshot. Never overwrites
//! a claim, refuses a snapshot that is not ready, `-o yaml|json` prints the claim without creating it.

use super::common::{ClusterArgs, block_on, emit};
use crate::Exit;
use crate::cluster::ClusterError;
use crate::ops::restore::{
    RestoreRequest, created_line, hot_label, restore_pvc, source_claim, write_backup_label,
};
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

A hot PostgreSQL snapshot (`mode: hot`): a short pod of the database's image
(or --image) writes its recorded backup_label (and tablespace_map) into the
data directory on the new claim and drops the caught postmaster.pid. The
server then recovers from it; it needs the WAL up to the backup's end, from
its WAL archive (restore_command).

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
    /// Image of the pod that writes a hot PostgreSQL snapshot's backup_label (default: the database
    /// container's).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
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
        if hot_label(&vs).is_some() {
            eprintln!(
                "warning: {} is a hot PostgreSQL snapshot: a claim applied from this manifest lacks its backup_label \
                 (`backup-ns restore` without -o writes it)",
                args.snapshot
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
    if let Some(record) = hot_label(&vs) {
        let dir = write_backup_label(
            &cluster,
            &ns,
            &args.pvc,
            &record,
            args.image.as_deref(),
            args.timeout,
        )
        .await?;
        emit(&format!(
            "backup_label written into {} on persistentvolumeclaim/{}: the server recovers from the backup's start \
             ({}) and needs the WAL up to its end ({}) from its WAL archive\n",
            if dir.is_empty() { "/" } else { &dir },
            args.pvc,
            record.start_lsn.as_deref().unwrap_or("?"),
            record.stop_lsn.as_deref().unwrap_or("?"),
        ))?;
    }
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
