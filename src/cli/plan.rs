//! `backup-ns plan ...`: show plans as backup-ns understands them (`from-env`, `show`).

use crate::Exit;
use crate::cli::common;
use crate::plan::env::{EnvMap, plan_from_bak_env};
use crate::plan::{Diag, Diagnostics, Plan};
use crate::settings::{Overrides, load_effective, process_env};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kubectl envx cronjob/backup -- backup-ns plan from-env > my-app.yaml
  BAK_DB_POSTGRES=true BAK_NAMESPACE=shop backup-ns plan from-env --format toml
  backup-ns plan show plans/postgres-app.yaml --format json
  BACKUP_NS_DRY_RUN=true backup-ns plan show plans/postgres-app.yaml --namespace staging")]
pub struct PlanArgs {
    #[command(subcommand)]
    pub command: PlanCommand,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Print the plan equivalent to the original's BAK_* environment variables (with its defaults).
    #[command(after_help = "\
Every BAK_* variable of the original backup-ns (and RETAIN_LAST_DAILY/WEEKLY/MONTHLY) is mapped, so an existing
`backup-env` ConfigMap can be turned into a plan file. Exit codes: 0 printed, 1 the variables are invalid.

Examples:
  kubectl envx cronjob/backup -- backup-ns plan from-env > my-app.yaml
  BAK_DB_MYSQL=true backup-ns plan from-env --format toml")]
    FromEnv {
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Yaml)]
        format: PlanFormat,
    },
    /// Print the effective plan: file (or BAK_* env) < BACKUP_NS_* env < flags, all defaults filled in.
    #[command(after_help = "\
Exit codes: 0 printed, 1 the plan or an override is invalid.

Examples:
  backup-ns plan show plans/postgres-app.yaml
  BACKUP_NS_SNAPSHOT__READY_TIMEOUT=30m backup-ns plan show plans/postgres-app.yaml --format json
  backup-ns plan show plans/postgres-app.yaml --set retention=adhoc --redacted

Literal passwords and secret-looking vars/args are printed as \"<redacted>\" unless --show-secrets is given.")]
    Show {
        /// Plan file; without one the BAK_* variables are used.
        plan: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = PlanFormat::Yaml)]
        format: PlanFormat,
        /// Namespace override (beats the plan and BACKUP_NS_NAMESPACE).
        #[arg(long)]
        namespace: Option<String>,
        /// Retention profiles file.
        #[arg(long, value_name = "FILE")]
        profiles: Option<PathBuf>,
        /// Override any plan key: `--set snapshot.readyTimeout=30m` (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print literal passwords and secret-looking `vars`/`args` as written (default: `<redacted>`).
        #[arg(long, conflicts_with = "redacted")]
        show_secrets: bool,
        /// Print the redacted form written into the `backup-ns.sh/plan` annotation (JSON).
        #[arg(long)]
        redacted: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Yaml,
    Toml,
    Json,
}

/// Renders a plan in a plan-file format; the output loads back into the same plan.
pub fn render(plan: &Plan, format: PlanFormat) -> Result<String, String> {
    match format {
        PlanFormat::Yaml => serde_saphyr::to_string(plan)
            .map(|s| format!("# yaml-language-server: $schema=../schema/plan.schema.json\n{s}"))
            .map_err(|e| e.to_string()),
        PlanFormat::Toml => toml::to_string_pretty(plan).map_err(|e| e.to_string()),
        PlanFormat::Json => serde_json::to_string_pretty(plan)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
    }
}

fn print_diags(diags: &[Diag]) {
    common::print_diags(diags, 100, false);
}

fn emit(text: &str) -> Exit {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => Exit::Success,
        Err(e) => {
            eprintln!("error: cannot write: {e}");
            Exit::Failure
        }
    }
}

pub fn run(args: PlanArgs) -> Exit {
    run_with_env(args, &process_env())
}

/// Like [`run`] with an explicit environment (tests).
pub fn run_with_env(args: PlanArgs, env: &EnvMap) -> Exit {
    match args.command {
        PlanCommand::FromEnv { format } => match plan_from_bak_env(env) {
            Ok((plan, warnings)) => {
                print_diags(&warnings);
                match render(&plan, format) {
                    Ok(text) => emit(&text),
                    Err(e) => {
                        eprintln!("error: cannot render the plan: {e}");
                        Exit::Failure
                    }
                }
            }
            Err(diags) => {
                print_diags(&diags);
                Exit::Failure
            }
        },
        PlanCommand::Show {
            plan,
            format,
            namespace,
            profiles,
            set,
            show_secrets,
            redacted,
        } => {
            let overrides = Overrides {
                namespace,
                dry_run: None,
                profiles,
                sets: set,
            };
            match load_effective(plan.as_deref(), env, &overrides) {
                Ok(loaded) => {
                    print_diags(&loaded.warnings);
                    if redacted {
                        let json = serde_json::to_string_pretty(&loaded.plan.redacted_json())
                            .unwrap_or_default();
                        return emit(&(json + "\n"));
                    }
                    let plan = if show_secrets {
                        loaded.plan
                    } else {
                        loaded.plan.redacted()
                    };
                    match render(&plan, format) {
                        Ok(text) => emit(&text),
                        Err(e) => {
                            eprintln!("error: cannot render the plan: {e}");
                            Exit::Failure
                        }
                    }
                }
                Err(Diagnostics(diags)) => {
                    print_diags(&diags);
                    Exit::Failure
                }
            }
        }
    }
}
