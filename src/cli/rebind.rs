//! `backup-ns rebind VSC`: a new pre-provisioned content plus a snapshot from a dangling `Retain` content.

use super::retention::{Format, fail, print_json, runtime};
use crate::Exit;
use crate::cluster::rebind::{self, RebindOptions};
use crate::cluster::{Cluster, ConnectOptions};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "\
Restores access to a backup whose namespace was deleted (and re-created): creates a pre-provisioned
VolumeSnapshotContent `restoredvsc-<uuid>` (deletionPolicy Retain, same driver, class, snapshot handle and
labels) and a VolumeSnapshot bound to it, named after the old snapshot with its last `-suffix` replaced; then
deletes the old content, which is safe because it is Retain (the storage snapshot stays). Refuses (exit 2) a
content that is not Retain, one whose snapshot still exists, or one without a snapshot handle.
Find candidates with: kubectl get vsc -l backup-ns.sh/pvc -o wide

Exit codes: 0 done, 1 an API call failed, 2 refused or usage.

Examples:
  backup-ns rebind snapcontent-0b7c4bd5-4a36-4a45-8c3d-2f0d2f8f0d1e
  backup-ns rebind snapcontent-0b7c... --namespace shop-restored --dry-run -o json
  backup-ns rebind snapcontent-0b7c... --name data-before-migration")]
pub struct RebindArgs {
    /// The dangling VolumeSnapshotContent (must have deletionPolicy Retain).
    #[arg(value_name = "VSC")]
    pub content: String,
    /// Namespace of the new snapshot. Default: the namespace the old content names.
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Name of the new snapshot. Default: the old name with its last `-suffix` replaced.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Print the objects, create and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// kubeconfig file. Default: KUBECONFIG, then ~/.kube/config, then in-cluster.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn run(args: RebindArgs) -> Exit {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    rt.block_on(async {
        let cluster = match Cluster::connect(&ConnectOptions {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
            ..Default::default()
        })
        .await
        {
            Ok(c) => c,
            Err(e) => return fail(Exit::Failure, e),
        };
        let options = RebindOptions {
            content: args.content.clone(),
            namespace: args.namespace.clone(),
            snapshot_name: args.name.clone(),
            dry_run: args.dry_run,
        };
        match rebind::rebind(&cluster, &options).await {
            Ok(report) => match args.output {
                Format::Json => print_json(&report),
                Format::Text => {
                    let verb = if report.dry_run {
                        "would create"
                    } else {
                        "created"
                    };
                    println!(
                        "{verb} VolumeSnapshotContent {} and VolumeSnapshot {}/{} from {}",
                        report.new_content, report.namespace, report.snapshot, report.old_content
                    );
                    if report.old_content_deleted {
                        println!(
                            "deleted the old Retain content {} (the storage snapshot stays)",
                            report.old_content
                        );
                    }
                    Exit::Success
                }
            },
            Err(e) if e.is_refusal() => fail(Exit::Usage, e),
            Err(e) => fail(Exit::Failure, e),
        }
    })
}
