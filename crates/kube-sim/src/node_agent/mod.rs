//! `kube-sim node-agent`: the kubelet stand-in for a real control plane (`scripts/cluster up`). It registers a
//! Node, runs the pods that the scheduler binds to it as host processes, and serves the kubelet API that the
//! apiserver calls for logs and exec.
//!
//! It is kube-sim turned inside out rather than a second kubelet: the agent runs a private kube-sim (store,
//! controllers, kubelet, pod runtime) that no client talks to, and `mirror` carries the bound pods and what they
//! reference from the real apiserver into it and their status back. So the pod runtime, container resolution
//! (env, envFrom, configMap, secret, emptyDir, hostPath, downwardAPI and projected volumes), pod logs and the
//! WebSocket exec server are the ones kube-sim uses. What differs is at the edges: the pods talk to the real
//! apiserver (`KUBERNETES_SERVICE_*`), their tokens come from the TokenRequest API, claims are the hostpath
//! driver's directories, and the kubelet API is served over HTTPS to clients that the cluster CA signed.

mod api;
mod kubelet_api;
mod mirror;
mod node;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::kubelet::{Endpoint, TokenSource};
use crate::runtime::{RunImage, RunImages};
use crate::sim::Sim;

pub use kubelet_api::rewrite;
pub use node::WEBSOCKET_FEATURE;

/// What the agent needs to run (the options of `kube-sim node-agent`).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Kubeconfig of the node's identity (a client certificate for system:node:NAME, group system:nodes).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// The Node's name (it must match the certificate's system:node:NAME).
    #[arg(long)]
    pub name: String,
    /// Directory for the pods' emptyDir volumes, projected files and claim links.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// The hostpath CSI driver's volumes directory (a claim's volume is its volumeHandle in there).
    #[arg(long)]
    pub csi_volumes: PathBuf,
    /// Serving certificate of the kubelet API (PEM).
    #[arg(long)]
    pub tls_cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    pub tls_key: PathBuf,
    /// CA whose client certificates may call the kubelet API (the cluster CA: the apiserver's kubelet client).
    #[arg(long)]
    pub client_ca: PathBuf,
    /// Port of the kubelet API on 127.0.0.1 (0: a free one, reported in the Node's status).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// As for `serve`: run the containers of IMAGE with PROGRAM, or IMAGE=host (repeatable).
    #[arg(long = "run-image", value_name = "IMAGE=PROGRAM")]
    pub run_images: Vec<RunImage>,
}

/// Run the agent until `shutdown` resolves; then every pod process is killed.
///
/// # Errors
/// The kubeconfig, TLS files or state directory are unusable, a port cannot be bound, or the apiserver refuses
/// the Node.
pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&options.kubeconfig)
        .with_context(|| format!("reading {}", options.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("loading the node's kubeconfig")?;
    let api_port = config.cluster_url.port_u16().unwrap_or(443);
    let client = kube::Client::try_from(config).context("building the node's client")?;
    let ca_pem = std::fs::read_to_string(&options.client_ca)
        .with_context(|| format!("reading {}", options.client_ca.display()))?;
    let tls = kubelet_api::server_config(&options.tls_cert, &options.tls_key, &options.client_ca)?;

    let tokens: mirror::TokenCache = Arc::default();
    let issued = tokens.clone();
    let issue = move |ns: &str, sa: &str| {
        issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(ns.to_string(), sa.to_string()))
            .cloned()
            .unwrap_or_default()
    };
    let mut builder = Sim::builder()
        .state_dir(&options.state_dir)
        .kubeconfig(options.state_dir.join("local-kubeconfig"))
        .pod_endpoint(Endpoint {
            port: api_port,
            ca_pem: Some(ca_pem),
        })
        .token_source(TokenSource::External(Arc::new(issue)));
    for mapping in options.run_images.iter().cloned() {
        builder = builder.run_image(mapping);
    }
    let mut inner = None;
    let sim = builder
        .start_with(|router, _| {
            inner = Some(router.clone());
            router
        })
        .await
        .context("starting the agent's pod runtime")?;
    let inner = inner.context("the pod runtime's router")?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", options.port))?;
    let port = listener.local_addr()?.port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::tls::serve(
        listener,
        kubelet_api::router(inner),
        tls,
        async {
            let _ = stop_rx.await;
        },
    ));

    node::register(&client, &options.name)
        .await
        .with_context(|| format!("creating Node {}", options.name))?;
    node::report_ready(&client, &options.name, port)
        .await
        .with_context(|| format!("reporting Node {} Ready", options.name))?;
    tracing::info!(node = %options.name, port, "node registered and Ready");

    let store = sim.shared().store.clone();
    let mirror = Arc::new(mirror::Mirror {
        client: client.clone(),
        node: options.name.clone(),
        store: store.clone(),
        kubelet: sim.kubelet().clone(),
        state_dir: options.state_dir.clone(),
        csi_volumes: options.csi_volumes.clone(),
        tokens,
        images: RunImages::new(options.run_images.clone()),
        taken: Mutex::new(HashMap::new()),
        releasing: Mutex::new(HashSet::new()),
    });
    let pushing = tokio::spawn(mirror.clone().push_status(store.subscribe()));
    let following = tokio::spawn(mirror.clone().follow_pods());
    let heartbeat = async {
        let mut tick = tokio::time::interval(node::HEARTBEAT);
        loop {
            tick.tick().await;
            if let Err(error) = node::report_ready(&client, &options.name, port).await {
                tracing::warn!(%error, "renewing the Node's status");
            }
        }
    };
    tokio::select! {
        () = shutdown => {}
        () = heartbeat => {}
    }
    following.abort();
    pushing.abort();
    sim.kubelet().stop_all();
    let _ = stop_tx.send(());
    let _ = server.await;
    sim.shutdown().await;
    Ok(())
}
