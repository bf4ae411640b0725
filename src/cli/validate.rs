//! `backup-ns validate PATH...`: check plan files offline and report every problem with its location. The checking
//! is [`crate::ops::validate`]; this file prints its report.

use crate::Exit;
use crate::cli::common::{diag_line, print_diags};
use crate::ops::validate::check;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagFormat {
    /// Rendered diagnostics with source snippets (stderr) and one `valid: FILE` line per good plan (stdout).
    Human,
    /// One JSON array of {file, line, column, severity, code, message, help, labels} on stdout (line/column
    /// 1-based; labels carry their spans).
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Checks syntax, unknown keys (with suggestions), missing fields and wrong types, durations, Kubernetes names and
labels, workload references, duplicate targets, retention profiles, the worst-case snapshot name, rhai hook
scripts (missing or not compiling, reported at the script's own line and column), thresholds and empty exec
commands. Warnings (e.g. a literal password, a dump path outside the usual data mounts) do not fail validation
unless --deny-warnings is given.

Exit codes:
  0  every plan is valid (warnings allowed)
  1  at least one plan is invalid
  2  usage error: bad flags, an unreadable path, no plan files found, or an unreadable --profiles file

Examples:
  backup-ns validate plans/
  backup-ns validate plans/postgres-app.yaml plans/inventory.toml
  backup-ns validate --format json plans/ > diagnostics.json
  backup-ns validate --profiles shared/retention-profiles.yaml plans/")]
pub struct ValidateArgs {
    /// Plan files or directories (searched recursively for *.yaml, *.yml and *.toml).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiagFormat::Human)]
    pub format: DiagFormat,
    /// Retention profiles file. Default: `retention-profiles.yaml|yml|toml` beside each plan, plus built-ins.
    #[arg(long, value_name = "FILE")]
    pub profiles: Option<PathBuf>,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
}

pub fn run(args: ValidateArgs) -> Exit {
    let report = match check(&args.paths, args.profiles.as_ref()) {
        Ok(r) => r,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Usage;
        }
    };
    let warnings = report
        .diagnostics
        .0
        .iter()
        .filter(|d| !d.is_error())
        .count();
    let errors = report.diagnostics.0.len() - warnings;
    let mut stdout = std::io::stdout().lock();
    match args.format {
        DiagFormat::Json => {
            let json = serde_json::to_string_pretty(&report.diagnostics.to_json())
                .unwrap_or_else(|_| "[]".into());
            let _ = writeln!(stdout, "{json}");
        }
        DiagFormat::Human => {
            let width = std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(100);
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            print_diags(&report.diagnostics.0, width, color);
            for file in &report.valid {
                let _ = writeln!(stdout, "valid: {}", file.display());
            }
            diag_line(&format!(
                "{} plan(s) checked: {} valid, {} invalid; {errors} error(s), {warnings} warning(s)",
                report.valid.len() + report.invalid.len(),
                report.valid.len(),
                report.invalid.len(),
            ));
        }
    }
    if !report.invalid.is_empty() || (args.deny_warnings && warnings > 0) {
        Exit::Failure
    } else {
        Exit::Success
    }
}
