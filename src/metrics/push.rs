//! Pushgateway client: batch runs (`run`, `controller`) push their outcome once at the end, because a CronJob's
//! pod is gone before Prometheus could scrape it.
//!
//! `PUT {url}/metrics/job/{job}/{label}/{value}...` replaces the group's metrics, as the Pushgateway documents.
//! Values containing `/` (or empty ones) use the `@base64` form (URL-safe alphabet). `http://` suits the usual
//! in-cluster Service; `https://` verifies the gateway's certificate against the system's CA bundle
//! (`SSL_CERT_FILE` / `SSL_CERT_DIR` select another one, e.g. a private CA mounted from a Secret).
//!
//! The body is encoded by `prometheus-client` ([`super::family`]) and sent with `reqwest` over HTTP/1.1, on the
//! same rustls/ring stack kube uses; no proxy is used, as the gateway is normally an in-cluster Service.

use super::family::{self, GaugeFamily};
use std::fmt::Write as _;
use std::time::Duration;

/// How long connecting, sending and reading the answer may take together.
const PUSH_TIMEOUT: Duration = Duration::from_secs(15);

/// One gauge sample to push.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, e.g. `backup_ns_run_success`.
    pub name: String,
    pub help: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn new(name: &str, help: &str, value: f64) -> Sample {
        Sample {
            name: name.into(),
            help: help.into(),
            labels: Vec::new(),
            value,
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> Sample {
        self.labels.push((key.into(), value.into()));
        self
    }
}

/// Why a push failed. Messages name the URL and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("invalid Pushgateway URL `{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error(
        "invalid metric or label name `{name}` (allowed: letters, digits, `_`, not starting with a digit)"
    )]
    Name { name: String },
    #[error("could not reach the Pushgateway at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the Pushgateway at {url} answered HTTP {status}: {body}")]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
    #[error("pushing to {url} did not finish within {}s", PUSH_TIMEOUT.as_secs())]
    Timeout { url: String },
}

/// Renders samples in the text format, one HELP/TYPE header per metric name (in first-seen order), each name's
/// samples together in their order.
pub fn render_samples(samples: &[Sample]) -> String {
    let mut families: Vec<GaugeFamily> = Vec::new();
    for s in samples {
        let index = match families.iter().position(|f| f.name == s.name) {
            Some(i) => i,
            None => {
                families.push(GaugeFamily::new(&s.name, &s.help.replace('\n', " ")));
                families.len() - 1
            }
        };
        families[index].sample(s.labels.clone(), s.value);
    }
    family::encode(families)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The URL path for `job` and the grouping labels.
pub fn group_path(job: &str, grouping: &[(&str, &str)]) -> Result<String, PushError> {
    let mut path = String::from("/metrics");
    for (key, value) in std::iter::once(("job", job)).chain(grouping.iter().copied()) {
        if !valid_name(key) {
            return Err(PushError::Name { name: key.into() });
        }
        if value.is_empty() || value.contains('/') {
            let _ = write!(path, "/{key}@base64/{}", base64_url(value.as_bytes()));
        } else {
            let _ = write!(path, "/{key}/{}", percent_encode(value));
        }
    }
    Ok(path)
}

/// Pushes `metrics` for `job` with the grouping labels to the Pushgateway at `url` (e.g.
/// `http://pushgateway.monitoring:9091`), replacing that group's previous metrics.
pub async fn push(
    url: &str,
    job: &str,
    grouping: &[(&str, &str)],
    metrics: &[Sample],
) -> Result<(), PushError> {
    send_group(reqwest::Method::PUT, url, job, grouping, metrics).await
}

/// Like [`push`], but replaces only the metrics with the same names in that group (`POST`), keeping the others.
/// Batch runs use it so that a failed run leaves the group's `..._last_success_timestamp_seconds` in place.
pub async fn update(
    url: &str,
    job: &str,
    grouping: &[(&str, &str)],
    metrics: &[Sample],
) -> Result<(), PushError> {
    send_group(reqwest::Method::POST, url, job, grouping, metrics).await
}

async fn send_group(
    method: reqwest::Method,
    url: &str,
    job: &str,
    grouping: &[(&str, &str)],
    metrics: &[Sample],
) -> Result<(), PushError> {
    for s in metrics {
        if !valid_name(&s.name) {
            return Err(PushError::Name {
                name: s.name.clone(),
            });
        }
        if let Some((k, _)) = s.labels.iter().find(|(k, _)| !valid_name(k)) {
            return Err(PushError::Name { name: k.clone() });
        }
    }
    let endpoint = split_url(url)?;
    let path = format!(
        "{}{}",
        endpoint.prefix.trim_end_matches('/'),
        group_path(job, grouping)?
    );
    let body = render_samples(metrics);
    let target = format!(
        "{}://{}{path}",
        if endpoint.tls { "https" } else { "http" },
        endpoint.authority
    );
    let connect_err = |message: String| PushError::Connect {
        url: target.clone(),
        message,
    };
    // reqwest always wants a TLS config (without one it looks for a process-wide crypto provider, which we do not
    // install); a plain http:// push gets one that trusts nothing, so the CA bundle is only read for https://.
    let tls = if endpoint.tls {
        tls_config(system_roots().map_err(connect_err)?)
    } else {
        tls_config(rustls::RootCertStore::empty())
    }
    .map_err(connect_err)?;
    let client = reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .timeout(PUSH_TIMEOUT)
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| connect_err(chain(&e)))?;
    let response = client
        .request(method, &target)
        .header(reqwest::header::CONTENT_TYPE, family::CONTENT_TYPE)
        .body(body)
        .send()
        .await
        .map_err(|e| send_error(&e, &target))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response
        .text()
        .await
        .map(|b| b.trim().to_string())
        .unwrap_or_default();
    Err(PushError::Rejected {
        url: target,
        status: status.as_u16(),
        body: text.chars().take(500).collect(),
    })
}

/// A failed request as a [`PushError`]: the timeout, a refused certificate (`TLS handshake failed: ...`), or the
/// connection problem with its causes.
fn send_error(error: &reqwest::Error, target: &str) -> PushError {
    if error.is_timeout() {
        return PushError::Timeout {
            url: target.to_string(),
        };
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(tls) = rustls_error(cause) {
            return PushError::Connect {
                url: target.to_string(),
                message: format!("TLS handshake failed: {tls}"),
            };
        }
        source = cause.source();
    }
    PushError::Connect {
        url: target.to_string(),
        message: chain(error),
    }
}

/// The rustls error inside `error`: rustls reports through (nested) io::Errors, whose `source()` skips the error
/// they wrap, so each one is opened with `get_ref`.
fn rustls_error<'e>(mut error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    loop {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        error = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// An error and its causes, `outer: inner: root`, without repeats.
fn chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// A parsed gateway URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    tls: bool,
    /// `host:port` (the port defaults to 80 or 443).
    authority: String,
    /// Path prefix, e.g. `/pushgateway`, or empty.
    prefix: String,
}

/// `http[s]://host[:port][/prefix]`.
fn split_url(url: &str) -> Result<Endpoint, PushError> {
    let bad = |reason: &str| PushError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(bad("expected http[s]://HOST[:PORT][/PREFIX]"));
    };
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad(
            "expected http[s]://HOST[:PORT][/PREFIX] (no user info)",
        ));
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']');
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    Ok(Endpoint {
        tls,
        authority,
        prefix: prefix.to_string(),
    })
}

/// The system's CA certificates (or those `SSL_CERT_FILE` / `SSL_CERT_DIR` name).
fn system_roots() -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!(
            "no CA certificates found to verify it{why}; set SSL_CERT_FILE to a PEM bundle"
        ));
    }
    Ok(roots)
}

/// The client side of TLS: `roots` as trust anchors, ring as the crypto provider, HTTP/1.1.
fn tls_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Bytes a path segment keeps as they are: RFC 3986's unreserved characters.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn percent_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, PATH_SEGMENT).to_string()
}

/// URL-safe base64 with padding, as the Pushgateway's `@base64` path form expects; the empty value is `=`.
fn base64_url(data: &[u8]) -> String {
    use base64::Engine as _;
    if data.is_empty() {
        return "=".to_string();
    }
    base64::engine::general_purpose::URL_SAFE.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_values_with_slashes_use_base64() {
        assert_eq!(
            group_path("backup-ns", &[("namespace", "shop"), ("plan", "a/b")]).unwrap(),
            "/metrics/job/backup-ns/namespace/shop/plan@base64/YS9i"
        );
        assert_eq!(
            group_path("j", &[("x", "")]).unwrap(),
            "/metrics/job/j/x@base64/="
        );
    }

    #[test]
    fn plain_values_are_percent_encoded() {
        assert_eq!(percent_encode("a b~c.d-e_f"), "a%20b~c.d-e_f");
        assert_eq!(percent_encode("ä?"), "%C3%A4%3F");
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (input, out) in [
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64_url(input.as_bytes()), out);
        }
    }

    #[test]
    fn samples_render_with_one_header_per_name() {
        let text = render_samples(&[
            Sample::new("backup_ns_run_success", "1 when the run succeeded.", 1.0)
                .label("plan", "x"),
            Sample::new("backup_ns_run_success", "1 when the run succeeded.", 0.0)
                .label("plan", "y"),
        ]);
        assert_eq!(
            text,
            "# HELP backup_ns_run_success 1 when the run succeeded.\n# TYPE backup_ns_run_success gauge\n\
             backup_ns_run_success{plan=\"x\"} 1\nbackup_ns_run_success{plan=\"y\"} 0\n"
        );
    }

    #[test]
    fn urls_are_http_or_https_with_default_ports() {
        let endpoint = |tls: bool, authority: &str, prefix: &str| Endpoint {
            tls,
            authority: authority.into(),
            prefix: prefix.into(),
        };
        assert_eq!(
            split_url("http://pg.monitoring:9091/base").unwrap(),
            endpoint(false, "pg.monitoring:9091", "/base")
        );
        assert_eq!(
            split_url("http://pg").unwrap(),
            endpoint(false, "pg:80", "")
        );
        assert_eq!(
            split_url("https://push.example.com/gw").unwrap(),
            endpoint(true, "push.example.com:443", "/gw")
        );
        assert_eq!(
            split_url("https://[::1]:9443").unwrap(),
            endpoint(true, "[::1]:9443", "")
        );
        assert_eq!(
            split_url("https://[::1]").unwrap(),
            endpoint(true, "[::1]:443", "")
        );
        for bad in ["ftp://x", "https://user:pw@x", "http://", "x:9091"] {
            assert!(
                matches!(split_url(bad), Err(PushError::Url { .. })),
                "{bad}"
            );
        }
    }
}
