//! backup-ns: application-consistent, plan-driven CSI snapshot backups for multi-tenant clusters.
//!
//! The pipeline reads top to bottom in the module tree:
//! `plan` (load + validate) → `engine` (ordered steps) → `cluster` / `hooks` (the only I/O) → `retention`.
//! `cli` holds one file per subcommand; `exit` maps every outcome to a documented exit code.

pub mod cli;
pub mod clock;
pub mod cluster;
pub mod engine;
pub mod exit;
pub mod hooks;
pub mod labels;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod plan;
pub mod retention;
pub mod settings;
pub mod vocab;

pub use exit::Exit;

/// Runs a parsed command line and returns the process exit code. Never panics on user input.
pub fn run(cli: cli::Cli) -> Exit {
    logging::init(cli.global.log_format, cli.global.verbose);
    cli::dispatch(cli)
}
