//! The command line: one file per subcommand, each with its `Args` and a `run()` returning an [`Exit`].

use crate::Exit;
use crate::logging::LogFormat;
use clap::{Args, Parser, Subcommand};

pub mod adhoc;
pub mod common;
mod completions;
pub mod controller;
pub mod db;
pub mod delete;
pub mod exporter;
pub mod list;
pub mod plan;
pub mod prune;
pub mod rebind;
pub mod restore;
pub mod retention;
pub mod run;
pub mod schema;
pub mod sync_labels;
pub mod validate;
pub mod verify;

/// Application-consistent CSI snapshot backups for Kubernetes namespaces, driven by plan files.
#[derive(Debug, Parser)]
#[command(name = "backup-ns", version, about, after_help = Exit::HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Log format: `human` for terminals, `json` for CronJobs and log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "BACKUP_NS_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// More log detail (-v debug, -vv trace). BACKUP_NS_LOG overrides with a full filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Check plan files offline; report every problem with file, line, column and help (exit 0/1/2).
    Validate(validate::ValidateArgs),
    /// Print the JSON Schema of plan files.
    Schema(schema::SchemaArgs),
    /// Show plans as backup-ns understands them (`from-env`, `show`).
    Plan(plan::PlanArgs),
    /// Run a backup plan: hooks, snapshots, retention (exit 0/1/2/3/4/130/143).
    #[command(alias = "create")]
    Run(run::RunArgs),
    /// Retention: simulate a policy, apply tier labels in the cluster, show the plan.
    Retention(retention::RetentionArgs),
    /// Mark snapshots without tier labels for deletion and delete those past their delete-after date.
    Prune(prune::PruneArgs),
    /// Copy backup-ns.sh/* labels from VolumeSnapshots onto their VolumeSnapshotContents.
    SyncLabels(sync_labels::SyncLabelsArgs),
    /// Make a dangling Retain VolumeSnapshotContent usable again (pre-provisioned content + snapshot).
    Rebind(rebind::RebindArgs),
    /// The global CronJob: label sync, tier retention, mark and sweep in one run with one summary.
    Controller(controller::ControllerArgs),
    /// List backup-ns snapshots (current namespace, -n NS or -A), filtered by tier, type, PVC or plan.
    List(list::ListArgs),
    /// Restore a snapshot into a new PersistentVolumeClaim (never overwrites one).
    Restore(restore::RestoreArgs),
    /// Prove a backup: restore a snapshot into a temporary claim, load its dump into a throwaway server, check it.
    Verify(verify::VerifyArgs),
    /// Delete snapshots together with their storage snapshots (asks first unless --yes).
    Delete(delete::DeleteArgs),
    /// Start an adhoc backup Job from the namespace's backup CronJob (kept 30 days by default).
    Adhoc(adhoc::AdhocArgs),
    /// PostgreSQL in the namespace's database container: dump, download, restore, info, shell.
    Postgres(db::DbArgs),
    /// MySQL/MariaDB in the namespace's database container: dump, download, restore, info, shell.
    Mysql(db::DbArgs),
    /// Serve Prometheus metrics about backup freshness, computed from VolumeSnapshot labels.
    Exporter(exporter::ExporterArgs),
}

/// Routes a parsed command line to its subcommand.
pub fn dispatch(cli: Cli) -> Exit {
    match cli.command {
        Command::Completions(args) => completions::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Retention(args) => retention::run(args),
        Command::Run(args) => run::run(args),
        Command::Prune(args) => prune::run(args),
        Command::SyncLabels(args) => sync_labels::run(args),
        Command::Rebind(args) => rebind::run(args),
        Command::Controller(args) => controller::run(args),
        Command::List(args) => list::run(args),
        Command::Restore(args) => restore::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Delete(args) => delete::run(args),
        Command::Adhoc(args) => adhoc::run(args),
        Command::Postgres(args) => db::run(db::Engine::Postgres, args),
        Command::Mysql(args) => db::run(db::Engine::Mysql, args),
        Command::Exporter(args) => exporter::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings;

    /// A flag's env fallback that is not in [`settings::NON_PLAN_VARS`] would also be merged into the plan,
    /// where it is an unknown key: setting `BACKUP_NS_PUSHGATEWAY` once broke `run` that way.
    #[test]
    fn every_flag_env_variable_is_kept_out_of_the_plan() {
        fn walk(cmd: &clap::Command, found: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if let Some(var) = arg.get_env().and_then(|v| v.to_str())
                    && var.starts_with("BACKUP_NS_")
                {
                    found.push(var.to_string());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, found);
            }
        }
        let mut found = Vec::new();
        walk(&<Cli as clap::CommandFactory>::command(), &mut found);
        assert!(found.len() >= 8, "{found:?}");
        for var in found {
            assert!(
                settings::NON_PLAN_VARS.contains(&var.as_str()),
                "{var} is a flag's env fallback but not in NON_PLAN_VARS"
            );
        }
    }
}
