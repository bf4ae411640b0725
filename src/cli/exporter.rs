//! `backup-ns exporter`: a long-running, stateless Prometheus endpoint computed from VolumeSnapshot labels.
//!
//! One watch (see `cluster::snapshot_mirror`) keeps the facts current; every scrape renders them with the clock
//! (`BACKUP_NS_NOW` honoured), so scrapes cost no API calls at all. The server is [`crate::metrics::server`].

use crate::Exit;
use crate::clock::Clock;
use crate::cluster::{Cluster, ConnectOptions};
use crate::metrics::{self, SnapshotFacts};
use crate::vocab::scope::Scope;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  # Serve /metrics for every namespace the service account may watch:
  backup-ns exporter --listen :9153
  # Only one namespace, local kubeconfig:
  backup-ns exporter -n shop --listen 127.0.0.1:9153
  curl -s localhost:9153/metrics | grep backup_ns_last_success

Metrics (per namespace and pvc): backup_ns_last_success_timestamp_seconds, backup_ns_snapshots,
backup_ns_snapshots_by_tier{tier}, backup_ns_snapshots_marked_for_deletion, backup_ns_snapshots_not_ready,
backup_ns_oldest_not_ready_age_seconds, backup_ns_plan_info{plan}; plus backup_ns_exporter_synced, and for the
whole scope backup_ns_cluster_snapshots (every VolumeSnapshot, backup-ns or not) and
backup_ns_cluster_snapshots_limit (--snapshot-limit; the alert warns at 90 % of it).
Alert rules: deploy/prometheus-rule.yaml. RBAC: list and watch volumesnapshots.")]
pub struct ExporterArgs {
    /// The VolumeSnapshot count to warn near (reported as backup_ns_cluster_snapshots_limit; snapshot controllers
    /// are known to degrade with tens of thousands).
    #[arg(long, value_name = "N", env = "BACKUP_NS_SNAPSHOT_LIMIT", default_value_t = metrics::exposition::DEFAULT_SNAPSHOT_LIMIT)]
    pub snapshot_limit: u64,
    /// Address to serve on: `:PORT` (all interfaces), `HOST:PORT`; port 0 picks a free one (printed on start).
    #[arg(long, default_value = ":9153")]
    pub listen: String,
    /// Watch only this namespace (default: all namespaces).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Path to a kubeconfig (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, env = "BACKUP_NS_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
}

/// `:9153` → `0.0.0.0:9153`; otherwise a socket address.
pub fn parse_listen(listen: &str) -> Result<SocketAddr, String> {
    let full = if listen.starts_with(':') {
        format!("0.0.0.0{listen}")
    } else {
        listen.to_string()
    };
    full.parse().map_err(|_| {
        format!("--listen `{listen}` is not an address; use `:9153` or `127.0.0.1:9153`")
    })
}

pub fn run(args: ExporterArgs) -> Exit {
    let addr = match parse_listen(&args.listen) {
        Ok(a) => a,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Usage;
        }
    };
    let clock = match Clock::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure;
        }
    };
    runtime.block_on(serve(args, addr, clock))
}

async fn serve(args: ExporterArgs, addr: SocketAddr, clock: Clock) -> Exit {
    let cluster = match Cluster::connect(&ConnectOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        namespace: args.namespace.clone(),
        ..Default::default()
    })
    .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    let scope = match &args.namespace {
        Some(ns) => Scope::Namespace(ns.clone()),
        None => Scope::All,
    };
    let (mirror, driver) = cluster.mirror_snapshots(&scope, SnapshotFacts::from_snapshot);
    let watch = tokio::spawn(driver);

    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}; pick another --listen address");
            return Exit::Usage;
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    // Tests and operators read the actual address (port 0 picks one) from this line.
    eprintln!("backup-ns exporter listening on http://{bound}/metrics");

    let served = metrics::server::serve(listener, mirror, clock, args.snapshot_limit).await;
    watch.abort();
    match served {
        Ok(()) => Exit::Success,
        Err(e) => {
            eprintln!("error: the metrics server failed: {e}");
            Exit::Failure
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_listen;

    #[test]
    fn listen_accepts_a_bare_port_and_full_addresses() {
        assert_eq!(parse_listen(":9153").unwrap().to_string(), "0.0.0.0:9153");
        assert_eq!(
            parse_listen("127.0.0.1:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert!(parse_listen("nine").is_err());
    }
}
