//! Building a client: kubeconfig or in-cluster config, and the default namespace.
//!
//! Namespace resolution order (first that is set wins):
//! 1. explicit (`-n` flag or the plan's `namespace`);
//! 2. the in-cluster service account's namespace file (a CronJob backs up its own namespace);
//! 3. the kubeconfig's current-context namespace;
//! 4. `default`.

use super::error::{ClusterError, Result};
use super::retry::{Policy, RetryLayer, RetryStats};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the service account's namespace is mounted inside a pod.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// How to reach the cluster. Every field is optional; the defaults behave like kubectl.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`; otherwise `KUBECONFIG`, then `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`; otherwise the kubeconfig's current context.
    pub context: Option<String>,
    /// `-n` / the plan's namespace.
    pub namespace: Option<String>,
    /// Overrides [`SERVICE_ACCOUNT_NAMESPACE_FILE`] (tests).
    pub service_account_namespace_file: Option<PathBuf>,
    /// The retry policy of every request (tests shorten it); `None` = [`Policy::default`].
    pub retry: Option<Policy>,
    /// Build the client without the retry layer: only the benchmark's baseline (benches/retry.rs) uses this.
    pub without_retry_layer: bool,
}

/// Which rule picked the namespace, for `--verbose` logs and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceSource {
    Explicit,
    ServiceAccount,
    KubeconfigContext,
    Default,
}

/// Applies the resolution order. Empty strings count as unset.
pub fn resolve_namespace(
    explicit: Option<&str>,
    service_account: Option<&str>,
    context: Option<&str>,
) -> (String, NamespaceSource) {
    let pick = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(ns) = pick(explicit) {
        (ns, NamespaceSource::Explicit)
    } else if let Some(ns) = pick(service_account) {
        (ns, NamespaceSource::ServiceAccount)
    } else if let Some(ns) = pick(context) {
        (ns, NamespaceSource::KubeconfigContext)
    } else {
        ("default".to_string(), NamespaceSource::Default)
    }
}

/// The namespace of the kubeconfig's selected context, if it sets one.
fn context_namespace(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let name = context.or(kubeconfig.current_context.as_deref())?;
    kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)?
        .context
        .as_ref()?
        .namespace
        .clone()
}

/// A connected client and the namespace commands default to.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    namespace: String,
    namespace_source: NamespaceSource,
    retry: Policy,
    stats: Arc<RetryStats>,
    run_id: Arc<str>,
}

/// A fresh id for this process's run: stamped on the objects it creates so that a retried create recognises them.
fn new_run_id() -> Arc<str> {
    format!("{:016x}", rand::random::<u64>()).into()
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .field("namespace_source", &self.namespace_source)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects as kubectl would: `--kubeconfig`, else `KUBECONFIG` / `~/.kube/config`, else in-cluster.
    pub async fn connect(options: &ConnectOptions) -> Result<Cluster> {
        let kube_options = KubeConfigOptions {
            context: options.context.clone(),
            ..Default::default()
        };
        let (config, ctx_ns) = match &options.kubeconfig {
            Some(path) => from_kubeconfig(read_kubeconfig(path)?, &kube_options).await?,
            None => match Kubeconfig::read() {
                Ok(kc) => from_kubeconfig(kc, &kube_options).await?,
                Err(kubeconfig_err) => {
                    let config = kube::Config::incluster().map_err(|incluster_err| {
                        ClusterError::Config {
                            message: format!(
                                "no kubeconfig ({kubeconfig_err}) and not running in a cluster \
                                 ({incluster_err}); pass --kubeconfig or set KUBECONFIG"
                            ),
                        }
                    })?;
                    (config, None)
                }
            },
        };
        let sa_file = options
            .service_account_namespace_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_NAMESPACE_FILE));
        let sa_ns = std::fs::read_to_string(&sa_file).ok();
        let (namespace, source) = resolve_namespace(
            options.namespace.as_deref(),
            sa_ns.as_deref(),
            ctx_ns.as_deref(),
        );
        // One retry policy for every request: kube's own (429/503/504 on any request, creates included) is off.
        let mut config = config;
        config.default_retry = false;
        skip_trust_store_for_plain_http(&mut config);
        let retry = options.retry.unwrap_or_default();
        let stats = Arc::new(RetryStats::default());
        let builder =
            kube::client::ClientBuilder::try_from(config).map_err(|e| ClusterError::Config {
                message: e.to_string(),
            })?;
        let client = if options.without_retry_layer {
            builder.build()
        } else {
            builder
                .with_layer(&RetryLayer::new(retry, Arc::clone(&stats)))
                .build()
        };
        tracing::debug!(%namespace, ?source, "connected to the Kubernetes API");
        Ok(Cluster {
            client,
            namespace,
            namespace_source: source,
            retry,
            stats,
            run_id: new_run_id(),
        })
    }

    /// Wraps an existing client (tests, or a caller that built its own config).
    pub fn from_client(client: kube::Client, namespace: impl Into<String>) -> Cluster {
        Cluster {
            client,
            namespace: namespace.into(),
            namespace_source: NamespaceSource::Explicit,
            retry: Policy::default(),
            stats: Arc::default(),
            run_id: new_run_id(),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The namespace commands act on unless told otherwise.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn namespace_source(&self) -> NamespaceSource {
        self.namespace_source
    }

    /// The retry policy of this client's requests.
    pub fn retry_policy(&self) -> &Policy {
        &self.retry
    }

    /// Requests sent again so far by this client (all clones share the count).
    pub fn retries(&self) -> u64 {
        self.stats.retries()
    }

    pub(crate) fn retry_stats(&self) -> &RetryStats {
        &self.stats
    }

    /// The id stamped on objects this run creates (`backup-ns.sh/run-id`).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

fn read_kubeconfig(path: &Path) -> Result<Kubeconfig> {
    Kubeconfig::read_from(path).map_err(|e| ClusterError::Config {
        message: format!("could not read kubeconfig {}: {e}", path.display()),
    })
}

/// A plain `http://` server (`kubectl proxy`, kube-sim) never speaks TLS, yet kube builds its TLS connector
/// anyway and, when the kubeconfig names no CA, loads the operating system's whole trust store for it: a few
/// milliseconds at every start, for nothing. An empty root store stops that. Left alone when a proxy is set (an
/// `https://` proxy needs the real trust store) or when a CA is given (nothing to save).
fn skip_trust_store_for_plain_http(config: &mut kube::Config) {
    if config.cluster_url.scheme() == Some(&http::uri::Scheme::HTTP)
        && config.proxy_url.is_none()
        && config.root_cert.is_none()
    {
        config.root_cert = Some(Vec::new());
    }
}

async fn from_kubeconfig(
    kubeconfig: Kubeconfig,
    options: &KubeConfigOptions,
) -> Result<(kube::Config, Option<String>)> {
    let ctx_ns = context_namespace(&kubeconfig, options.context.as_deref());
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, options)
        .await
        .map_err(|e| ClusterError::Config {
            message: format!("invalid kubeconfig: {e}"),
        })?;
    Ok((config, ctx_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_http_server_without_proxy_or_ca_gets_the_empty_trust_store() {
        let config = |url: &str| kube::Config::new(url.parse().expect("a URL"));
        let mut plain = config("http://127.0.0.1:8001");
        skip_trust_store_for_plain_http(&mut plain);
        assert_eq!(plain.root_cert, Some(Vec::new()));

        let mut tls = config("https://127.0.0.1:6443");
        skip_trust_store_for_plain_http(&mut tls);
        assert_eq!(
            tls.root_cert, None,
            "an https server keeps the system's roots"
        );

        let mut proxied = config("http://127.0.0.1:8001");
        proxied.proxy_url = Some("https://proxy:3128".parse().expect("a URL"));
        skip_trust_store_for_plain_http(&mut proxied);
        assert_eq!(
            proxied.root_cert, None,
            "an https proxy needs the real roots"
        );

        let mut with_ca = config("http://127.0.0.1:8001");
        with_ca.root_cert = Some(vec![vec![1, 2, 3]]);
        skip_trust_store_for_plain_http(&mut with_ca);
        assert_eq!(with_ca.root_cert, Some(vec![vec![1, 2, 3]]));
    }

    #[test]
    fn namespace_resolution_follows_the_documented_order() {
        use NamespaceSource::*;
        let cases = [
            (Some("flag"), Some("sa"), Some("ctx"), "flag", Explicit),
            (None, Some("sa\n"), Some("ctx"), "sa", ServiceAccount),
            (None, None, Some("ctx"), "ctx", KubeconfigContext),
            (Some(""), Some(" "), None, "default", Default),
            (None, None, None, "default", Default),
        ];
        for (explicit, sa, ctx, want, source) in cases {
            assert_eq!(
                resolve_namespace(explicit, sa, ctx),
                (want.to_string(), source),
                "{explicit:?} {sa:?} {ctx:?}"
            );
        }
    }

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: sim
  cluster: {server: "http://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: a
  context: {cluster: sim, user: u, namespace: shop}
- name: b
  context: {cluster: sim, user: u}
current-context: a
"#;

    #[test]
    fn the_context_namespace_comes_from_the_selected_context() {
        let kc = Kubeconfig::from_yaml(KUBECONFIG).unwrap();
        assert_eq!(context_namespace(&kc, None), Some("shop".to_string()));
        assert_eq!(context_namespace(&kc, Some("b")), None);
        assert_eq!(context_namespace(&kc, Some("missing")), None);
    }

    #[tokio::test]
    async fn connecting_with_a_kubeconfig_file_uses_its_context_namespace_unless_overridden() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let mut options = ConnectOptions {
            kubeconfig: Some(path),
            service_account_namespace_file: Some(tmp.path().join("no-such-file")),
            ..Default::default()
        };
        let cluster = Cluster::connect(&options).await.unwrap();
        assert_eq!(cluster.namespace(), "shop");
        assert_eq!(
            cluster.namespace_source(),
            NamespaceSource::KubeconfigContext
        );

        let sa = tmp.path().join("namespace");
        std::fs::write(&sa, "tenant-a").unwrap();
        options.service_account_namespace_file = Some(sa);
        let cluster = Cluster::connect(&options).await.unwrap();
        assert_eq!(cluster.namespace(), "tenant-a");

        options.namespace = Some("explicit".into());
        let cluster = Cluster::connect(&options).await.unwrap();
        assert_eq!(cluster.namespace(), "explicit");
    }

    #[tokio::test]
    async fn an_unreadable_kubeconfig_names_the_file() {
        let options = ConnectOptions {
            kubeconfig: Some(PathBuf::from("/nonexistent/kubeconfig")),
            ..Default::default()
        };
        let err = Cluster::connect(&options).await.unwrap_err();
        assert!(err.to_string().contains("/nonexistent/kubeconfig"), "{err}");
    }
}
