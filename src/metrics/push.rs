//! Pushgateway client: batch runs (`run`, `controller`) push their outcome once at the end, because a CronJob's
//! pod is gone before Prometheus could scrape it.
//!
//! `PUT {url}/metrics/job/{job}/{label}/{value}...` replaces the group's metrics, as the Pushgateway documents.
//! Values containing `/` (or empty ones) use the `@base64` form (URL-safe alphabet). `http://` suits the usual
//! in-cluster Service; `https://` verifies the gateway's certificate against the system's CA bundle
//! (`SSL_CERT_FILE` / `SSL_CERT_DIR` select another one, e.g. a private CA mounted from a Secret).

use super::exposition::escape;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
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

/// Renders samples in the text format, one HELP/TYPE header per metric name (in first-seen order).
pub fn render_samples(samples: &[Sample]) -> String {
    let mut out = String::new();
    let mut headed: Vec<&str> = Vec::new();
    for s in samples {
        if !headed.contains(&s.name.as_str()) {
            headed.push(&s.name);
            let _ = writeln!(out, "# HELP {} {}", s.name, s.help.replace('\n', " "));
            let _ = writeln!(out, "# TYPE {} gauge", s.name);
        }
        out.push_str(&s.name);
        if !s.labels.is_empty() {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(out, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(out, " {}", s.value);
    }
    out
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
    send_group(hyper::Method::PUT, url, job, grouping, metrics).await
}

/// Like [`push`], but replaces only the metrics with the same names in that group (`POST`), keeping the others.
/// Batch runs use it so that a failed run leaves the group's `..._last_success_timestamp_seconds` in place.
pub async fn update(
    url: &str,
    job: &str,
    grouping: &[(&str, &str)],
    metrics: &[Sample],
) -> Result<(), PushError> {
    send_group(hyper::Method::POST, url, job, grouping, metrics).await
}

async fn send_group(
    method: hyper::Method,
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
    match tokio::time::timeout(PUSH_TIMEOUT, send(method, &endpoint, &path, body, &target)).await {
        Ok(result) => result,
        Err(_) => Err(PushError::Timeout { url: target }),
    }
}

async fn send(
    method: hyper::Method,
    endpoint: &Endpoint,
    path: &str,
    body: String,
    target: &str,
) -> Result<(), PushError> {
    let connect_err = |message: String| PushError::Connect {
        url: target.to_string(),
        message,
    };
    let stream = tokio::net::TcpStream::connect(&endpoint.authority)
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, &endpoint.authority)
        .header(hyper::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| connect_err(e.to_string()))?;
    if !endpoint.tls {
        return exchange(stream, request, target).await;
    }
    let connector = tls_connector().map_err(connect_err)?;
    let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone()).map_err(|e| {
        connect_err(format!(
            "`{}` is not a valid TLS server name: {e}",
            endpoint.host
        ))
    })?;
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| connect_err(format!("TLS handshake failed: {e}")))?;
    exchange(tls, request, target).await
}

/// One HTTP/1.1 request and its answer over an open connection.
async fn exchange<S>(
    stream: S,
    request: hyper::Request<Full<Bytes>>,
    target: &str,
) -> Result<(), PushError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connect_err = |message: String| PushError::Connect {
        url: target.to_string(),
        message,
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| connect_err(e.to_string()))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let status = response.status();
    let text = response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
        .unwrap_or_default();
    driver.abort();
    if status.is_success() {
        Ok(())
    } else {
        Err(PushError::Rejected {
            url: target.to_string(),
            status: status.as_u16(),
            body: text.chars().take(500).collect(),
        })
    }
}

/// A parsed gateway URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    tls: bool,
    /// `host:port` (the port defaults to 80 or 443).
    authority: String,
    /// The host alone, for the certificate check.
    host: String,
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
    let host = if has_port {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    } else {
        authority
    };
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    Ok(Endpoint {
        tls,
        authority,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        prefix: prefix.to_string(),
    })
}

/// The client side of TLS: the system's roots (or those `SSL_CERT_FILE` / `SSL_CERT_DIR` name).
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
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
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

fn percent_encode(value: &str) -> String {
    let mut s = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

/// URL-safe base64 with padding, as the Pushgateway's `@base64` path form expects.
fn base64_url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    if data.is_empty() {
        s.push('=');
    }
    s
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
        let endpoint = |tls: bool, authority: &str, host: &str, prefix: &str| Endpoint {
            tls,
            authority: authority.into(),
            host: host.into(),
            prefix: prefix.into(),
        };
        assert_eq!(
            split_url("http://pg.monitoring:9091/base").unwrap(),
            endpoint(false, "pg.monitoring:9091", "pg.monitoring", "/base")
        );
        assert_eq!(
            split_url("http://pg").unwrap(),
            endpoint(false, "pg:80", "pg", "")
        );
        assert_eq!(
            split_url("https://push.example.com/gw").unwrap(),
            endpoint(true, "push.example.com:443", "push.example.com", "/gw")
        );
        assert_eq!(
            split_url("https://[::1]:9443").unwrap(),
            endpoint(true, "[::1]:9443", "::1", "")
        );
        assert_eq!(
            split_url("https://[::1]").unwrap(),
            endpoint(true, "[::1]:443", "::1", "")
        );
        for bad in ["ftp://x", "https://user:pw@x", "http://", "x:9091"] {
            assert!(
                matches!(split_url(bad), Err(PushError::Url { .. })),
                "{bad}"
            );
        }
    }
}
