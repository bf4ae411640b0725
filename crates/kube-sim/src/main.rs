//! kube-sim binary: `kube-sim serve` runs the loopback apiserver until SIGTERM/SIGINT; `kube-sim node-agent` runs a
//! real cluster's pods on this host with kube-sim's pod runtime (`scripts/cluster up` starts it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Loopback Kubernetes API simulator for backup-ns tests and demos.
#[derive(Parser, Debug)]
#[command(name = "kube-sim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the simulated apiserver until SIGTERM/SIGINT.
    #[command(
        after_help = "Examples:\n  kube-sim serve --kubeconfig /tmp/kc --apply seed.yaml --snapshot-delay 200ms\n  kube-sim serve --kubeconfig /tmp/kc --rbac --clock 2025-01-01T02:00:00Z\n  kube-sim serve --kubeconfig /tmp/kc --rbac --run-image backup-ns=target/debug/backup-ns --run-image busybox=host"
    )]
    Serve(Serve),
    /// Run the backup-ns demo: the static manifests installed on a simulated cluster, a year of their CronJobs.
    #[command(
        after_help = "Everything happens in one temp dir that is removed on exit and on Ctrl-C. Needs PostgreSQL's server \
binaries (apt-get install postgresql postgresql-client), libfaketime (apt-get install libfaketime), root, and a built \
backup-ns (scripts/demo builds it).\n\n\
Examples:\n  scripts/demo\n  kube-sim demo --backup-ns target/debug/backup-ns\n  kube-sim demo --backup-ns target/debug/backup-ns --nights 60 --start 2025-11-01"
    )]
    Demo {
        /// The backup-ns binary the manifests' image runs (default: `backup-ns` beside this kube-sim binary).
        #[arg(long)]
        backup_ns: Option<PathBuf>,
        /// The static manifests to install (backup-ns.yaml and backup-ns-controller.yaml).
        #[arg(long, default_value = "deploy/static")]
        manifests: PathBuf,
        /// Nights of backups to replay.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3660))]
        nights: u32,
        /// Date of the first night (YYYY-MM-DD).
        #[arg(long, default_value = "2025-01-01")]
        start: chrono::NaiveDate,
        /// Show the commands: the edits made to the manifests and every CronJob pod's command line.
        #[arg(long)]
        verbose: bool,
    },
    /// Be the node of a real control plane: register a Node, run the pods bound to it as host processes, serve
    /// the kubelet API (logs, exec) over HTTPS. `scripts/cluster up` starts it.
    #[command(
        after_help = "Example:\n  kube-sim node-agent --kubeconfig DIR/kubeconfigs/node --name backup-ns-node \\\n    --state-dir DIR/node-agent --csi-volumes DIR/csi/volumes --tls-cert DIR/pki/node-serving.crt \\\n    --tls-key DIR/pki/node-serving.key --client-ca DIR/pki/ca.crt --run-image backup-ns=target/debug/backup-ns"
    )]
    NodeAgent(kube_sim::node_agent::Options),
}

/// The options of `kube-sim serve`.
#[derive(clap::Args, Debug)]
struct Serve {
    /// Where to write the kubeconfig (atomically, once serving).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// State directory for PVC data and the snapshot store (default: a temp dir removed on exit).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Multi-document YAML to load verbatim (repeatable).
    #[arg(long)]
    apply: Vec<PathBuf>,
    /// Delay before a snapshot becomes readyToUse (e.g. 200ms, 2s).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    snapshot_delay: Duration,
    /// Enforce RBAC for service-account tokens.
    #[arg(long)]
    rbac: bool,
    /// Start the simulated clock at this RFC 3339 time.
    #[arg(long)]
    clock: Option<chrono::DateTime<chrono::Utc>>,
    /// Run the containers of IMAGE (matched without tag or digest) with the host program PROGRAM as the
    /// image's entrypoint; IMAGE=host runs the container's `command` from the host's PATH (repeatable).
    /// Other images keep running no process.
    #[arg(long = "run-image", value_name = "IMAGE=PROGRAM")]
    run_images: Vec<kube_sim::runtime::RunImage>,
    /// Whether the processes of run pods see the simulated clock (libfaketime): `on` needs it installed,
    /// `off` lets them see the real time.
    #[arg(long, value_enum, default_value = "on")]
    faketime: Switch,
}

/// An on/off option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUBE_SIM_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kube-sim: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-sim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let serve = match cli.command {
        Command::Serve(serve) => serve,
        Command::Demo {
            backup_ns,
            manifests,
            nights,
            start,
            verbose,
        } => return demo(backup_ns, manifests, nights, start, verbose).await,
        Command::NodeAgent(agent) => return node_agent(agent).await,
    };
    serve_until_signal(serve).await
}

async fn serve_until_signal(serve: Serve) -> anyhow::Result<()> {
    let Serve {
        kubeconfig,
        listen,
        state_dir,
        apply,
        snapshot_delay,
        rbac,
        clock,
        run_images,
        faketime,
    } = serve;
    // Read every file before serving so a bad file fails fast without a half-ready server.
    let mut docs = Vec::new();
    for f in &apply {
        docs.push((
            f.clone(),
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        ));
    }
    let mut b = kube_sim::Sim::builder()
        .listen(listen)
        .snapshot_delay(snapshot_delay)
        .rbac(rbac)
        .clock(clock)
        .kubeconfig(&kubeconfig);
    if let Some(d) = state_dir {
        b = b.state_dir(d);
    }
    if !run_images.is_empty() && faketime == Switch::On {
        let found = kube_sim::kubelet::FakeTime::locate()
            .map_err(|message| anyhow::anyhow!("{message}, or pass --faketime off"))?;
        b = b.faketime(Some(found));
    }
    for mapping in run_images {
        b = b.run_image(mapping);
    }
    for (f, text) in docs {
        b = b.seed_yaml(f.display().to_string(), text);
    }
    let sim = b.start().await.context("starting kube-sim")?;
    println!("kube-sim ready {}", sim.url());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}

/// Runs the node agent until SIGTERM/SIGINT; its pods' processes are killed on the way out.
async fn node_agent(options: kube_sim::node_agent::Options) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    kube_sim::node_agent::run(options, shutdown).await
}

/// Runs the demo until it ends or a Ctrl-C/SIGTERM arrives; either way the demo's future is dropped, which stops
/// its PostgreSQL and child processes and removes its temp dir.
async fn demo(
    backup_ns: Option<PathBuf>,
    manifests: PathBuf,
    nights: u32,
    start: chrono::NaiveDate,
    verbose: bool,
) -> anyhow::Result<()> {
    let backup_ns = match backup_ns {
        Some(p) => p,
        None => std::env::current_exe()
            .context("locating the kube-sim binary")?
            .with_file_name("backup-ns"),
    };
    let opts = kube_sim::demo::DemoOptions {
        backup_ns,
        manifests,
        nights,
        start,
        verbose,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    let code = tokio::select! {
        r = kube_sim::demo::run(opts) => return r.map(|_| ()).map_err(anyhow::Error::from),
        _ = tokio::signal::ctrl_c() => 130,
        _ = term.recv() => 143,
    };
    eprintln!("\nkube-sim demo: interrupted; cleaned up");
    std::process::exit(code);
}
