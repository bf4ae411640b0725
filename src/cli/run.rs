//! `backup-ns run [PLAN]`: load the effective plan, connect, run the engine, print the summary, exit with its code.
//!
//! This is the CLI edge: it builds the ports (kube exec, resolver, cluster adapter,
//! slot-file lock), turns SIGTERM/SIGINT into the engine's cancel signal and prints the report.

use crate::Exit;
use crate::cli::common::{diag_line, print_diags, term_width};
use crate::clock::Clock;
use crate::cluster::engine_port::EnginePort;
use crate::cluster::{Cluster, ConnectOptions, NewGroupSnapshot, NewSnapshot};
use crate::engine::{Engine, RunIdentity, RunOptions, RunReport, Signal};
use crate::lock::{FileLock, LockConfig};
use crate::plan::Origin;
use crate::settings::{self, Overrides};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table of steps (and, for --dry-run, the VolumeSnapshot YAML first).
    Table,
    /// One JSON document with every step, hook report and snapshot.
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Steps: lock -> preflight -> pre-hooks -> snapshots -> wait ready -> post-hooks
-> retention -> events -> unlock. Without PLAN, the original's BAK_* variables
describe the backup (`backup-ns create` is accepted as a hidden alias).
Settings are layered: plan file < BACKUP_NS_* environment < flags.
BACKUP_NS_POD names the job's pod (label and Events); BACKUP_NS_NOW and TZ set
the clock.

Exit codes:
  0    success
  1    a step failed
  2    invalid plan or usage
  3    lock timeout: no node-level lock slot became free in time
  4    a snapshot was created but not ready in time (it is deleted again)
  6    backup taken (every snapshot ready), then a post-hook, retention or
       the metrics push failed
  130  SIGINT, 143 SIGTERM: the running hook is killed, its partial dump
       removed, the lock released and a failure Event emitted

Examples:
  backup-ns run plans/shop-multi-pvc.yaml
  backup-ns run plans/shop-multi-pvc.yaml --dry-run
  backup-ns run plans/shop-multi-pvc.yaml -n shop-staging --output json
  backup-ns run plans/shop-multi-pvc.yaml --set snapshot.readyTimeout=30m --set retention=adhoc
  BAK_NAMESPACE=shop BAK_DB_POSTGRES=true backup-ns run
  backup-ns run plans/shop-multi-pvc.yaml --kubeconfig ~/.kube/prod --context prod-eu")]
pub struct RunArgs {
    /// Plan file (YAML or TOML). Without it, the BAK_* environment variables are the plan.
    #[arg(value_name = "PLAN", env = "BACKUP_NS_PLAN")]
    pub plan: Option<PathBuf>,
    /// Namespace to back up (overrides the plan's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Run every read-only check (including in-container tool and connection checks), print the
    /// VolumeSnapshots that would be created, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Summary format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Override a plan setting, e.g. `--set snapshot.readyTimeout=30m` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Retention profiles file (default: retention-profiles.* beside the plan, then built-ins).
    #[arg(long, value_name = "FILE", env = "BACKUP_NS_PROFILES")]
    pub profiles: Option<PathBuf>,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE", env = "BACKUP_NS_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// Let retention also delete due snapshots (needs `delete` on volumesnapshots). By default an in-namespace
    /// run only labels and marks; deletions needing a VolumeSnapshotContent patch are always left to the
    /// cluster-wide controller.
    #[arg(long)]
    pub retention_sweep: bool,
    /// Push the run's outcome (success, exit code, duration, snapshots, last success time) to this Prometheus
    /// Pushgateway, e.g. `http://pushgateway.monitoring:9091` (https verifies against the system CAs or
    /// SSL_CERT_FILE). Grouped by namespace and plan; never on --dry-run.
    /// A failed push is a warning: it does not change the run's exit code.
    #[arg(long, value_name = "URL", env = "BACKUP_NS_PUSHGATEWAY")]
    pub pushgateway: Option<String>,
}

pub fn run(args: RunArgs) -> Exit {
    let env = settings::process_env();
    let overrides = Overrides {
        namespace: args.namespace.clone(),
        dry_run: args.dry_run.then_some(true),
        profiles: args.profiles.clone(),
        sets: args.sets.clone(),
    };
    let loaded = match settings::load_effective(args.plan.as_deref(), &env, &overrides) {
        Ok(l) => l,
        Err(diags) => {
            print_diags(&diags.0, term_width(), false);
            diag_line("error: the plan is invalid; nothing was done");
            return Exit::Usage;
        }
    };
    print_diags(&loaded.warnings, term_width(), false);
    let plan = loaded.plan;
    let clock = match Clock::from_env_or_zone(plan.time_zone.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let env_config =
        (loaded.origin == Origin::BakEnv).then(|| crate::plan::env::env_config_annotation(&env));
    let pod = env
        .get("BACKUP_NS_POD")
        .filter(|p| !p.trim().is_empty())
        .cloned();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure;
        }
    };
    let output = args.output;
    let dry_run = plan.dry_run;
    let pushgateway = args.pushgateway.clone();
    let started = std::time::Instant::now();
    let outcome = runtime.block_on(async move {
        let cluster = Cluster::connect(&ConnectOptions {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
            namespace: args.namespace.clone().or_else(|| plan.namespace.clone()),
            service_account_namespace_file: None,
            retry: None,
            without_retry_layer: false,
        })
        .await
        .map_err(|e| format!("cannot connect to the cluster: {e}"))?;
        let namespace = cluster.namespace().to_string();
        let engine = Engine {
            cluster: Arc::new(EnginePort::new(
                cluster.clone(),
                clock,
                Duration::from_secs(1),
            )),
            exec: Arc::new(cluster.container_exec()),
            resolver: Arc::new(cluster.pod_resolver()),
            lock: Arc::new(FileLock::new(LockConfig {
                dir: PathBuf::from(&plan.lock.dir),
                slots: plan.lock.slots(),
                timeout: plan.lock.timeout,
            })),
            clock,
        };
        let opts = RunOptions {
            namespace,
            dry_run: plan.dry_run,
            identity: RunIdentity { pod },
            env_config,
            retention_sweep: args.retention_sweep,
        };
        let (tx, rx) = tokio::sync::watch::channel(None);
        let signals = tokio::spawn(forward_signals(tx));
        let mut report = engine.run(&plan, &opts, rx).await;
        signals.abort();
        report.api_retries = cluster.retries();
        Ok::<RunReport, String>(report)
    });
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    print_report(&report, output, dry_run);
    if let Some(url) = pushgateway.filter(|_| !dry_run) {
        let samples = crate::metrics::outcome::run_samples(
            &report,
            clock.now_utc().timestamp(),
            started.elapsed().as_secs_f64(),
        );
        let grouping = [
            ("namespace", report.namespace.as_str()),
            ("plan", report.plan.as_str()),
        ];
        let pushed = runtime.block_on(crate::metrics::update(
            &url,
            crate::metrics::outcome::RUN_JOB,
            &grouping,
            &samples,
        ));
        if let Err(e) = pushed {
            tracing::warn!(error = %e, "could not push the run's outcome to the Pushgateway");
            if report.success {
                // The backup exists; only its report did not reach the gateway.
                eprintln!(
                    "backup of plan {} taken; the metrics push failed (exit {}): {e}",
                    report.plan,
                    Exit::BackupTakenStepFailed.code()
                );
                return Exit::BackupTakenStepFailed;
            }
        }
    }
    report.exit()
}

/// Sends the first SIGTERM/SIGINT to the engine.
pub(crate) async fn forward_signals(tx: tokio::sync::watch::Sender<Option<Signal>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; SIGTERM will kill the run without cleanup");
        return;
    };
    let got = tokio::select! {
        _ = term.recv() => Signal::Terminate,
        _ = int.recv() => Signal::Interrupt,
    };
    tracing::warn!(signal = ?got, "signal received: stopping the run");
    let _ = tx.send(Some(got));
    // Keep the handlers installed so a second signal does not kill the cleanup.
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}

fn print_report(report: &RunReport, output: OutputFormat, dry_run: bool) {
    match output {
        OutputFormat::Json => println!("{}", report.to_json()),
        OutputFormat::Table => {
            if dry_run {
                print!("{}", dry_run_yaml(report));
            }
            print!("{}", report.to_table());
        }
    }
    if let Some(e) = &report.error {
        eprintln!("error: {e}");
    }
}

/// The objects a dry run would create, as YAML documents.
fn dry_run_yaml(report: &RunReport) -> String {
    let mut out = String::new();
    if let Some(group) = &report.group_snapshot {
        let object = NewGroupSnapshot {
            namespace: group.namespace.clone(),
            name: group.name.clone(),
            pvc_selector: [(
                crate::cluster::engine_port::GROUP_PVC_LABEL.to_string(),
                group.name.clone(),
            )]
            .into(),
            class: None,
            labels: group.labels.clone(),
            annotations: group.annotations.clone(),
        }
        .to_object();
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&object).unwrap_or_default());
        return out;
    }
    for s in &report.snapshots {
        let object = NewSnapshot {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            pvc: s.pvc.clone(),
            class: s.class.clone(),
            labels: s.labels.clone(),
            annotations: s.annotations.clone(),
        }
        .to_object();
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&object).unwrap_or_default());
    }
    out
}
