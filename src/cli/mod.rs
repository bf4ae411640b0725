//! The command line: one file per subcommand, each with its `Args` and a `run()` returning an [`Exit`].

use crate::Exit;
use clap::{Args, Parser, Subcommand, ValueEnum};

mod completions;
pub mod db;
pub mod exporter;
pub mod plan;
pub mod retention;
pub mod schema;
pub mod validate;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
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
    /// Retention: simulate which nightly backups a policy keeps.
    Retention(retention::RetentionArgs),
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
        Command::Postgres(args) => db::run(db::Engine::Postgres, args),
        Command::Mysql(args) => db::run(db::Engine::Mysql, args),
        Command::Exporter(args) => exporter::run(args),
    }
}
