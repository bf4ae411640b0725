//! The kubelet API that the apiserver calls (over HTTPS, with its kubelet client certificate):
//! `/containerLogs/{ns}/{pod}/{container}` and `/exec/{ns}/{pod}/{container}`. Both are the pod log and exec
//! routes that kube-sim serves already; a request is rewritten to its `pods/NAME/log` or `pods/NAME/exec` form
//! and handed to kube-sim's router in-process, so logs (follow, tail, since) and the WebSocket exec server are one
//! implementation. The kubelet's exec query names its streams `input`, `output` and `error`; they become
//! `stdin`, `stdout` and `stderr`.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt;

/// The router of the kubelet API in front of kube-sim's `inner` router.
pub fn router(inner: Router) -> Router {
    Router::new().fallback(move |request: Request<Body>| {
        let inner = inner.clone();
        async move { forward(inner, request).await }
    })
}

async fn forward(inner: Router, mut request: Request<Body>) -> Response {
    let target = rewrite(
        request.uri().path(),
        request.uri().query().unwrap_or_default(),
    );
    let Some(target) = target else {
        if request.uri().path() == "/healthz" {
            return (StatusCode::OK, "ok").into_response();
        }
        return (
            StatusCode::NOT_FOUND,
            format!(
                "the node agent serves /containerLogs/NS/POD/CONTAINER and /exec/NS/POD/CONTAINER, not {}",
                request.uri().path()
            ),
        )
            .into_response();
    };
    match target.parse::<Uri>() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
    tracing::info!(uri = %request.uri(), "kubelet API request");
    match inner.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The kube-sim path and query for a kubelet API path and query; None for any other path.
#[must_use]
pub fn rewrite(path: &str, query: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    let (Some(kind), Some(ns), Some(pod), Some(container), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if [ns, pod, container].iter().any(|p| p.is_empty()) {
        return None;
    }
    let subresource = match kind {
        "containerLogs" => "log",
        "exec" => "exec",
        _ => return None,
    };
    let mut out = form_urlencoded::Serializer::new(String::new());
    out.append_pair("container", container);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let key = match (subresource, key.as_ref()) {
            ("exec", "input") => "stdin",
            ("exec", "output") => "stdout",
            ("exec", "error") => "stderr",
            (_, "container") => continue,
            (_, other) => other,
        };
        out.append_pair(key, &value);
    }
    Some(format!(
        "/api/v1/namespaces/{ns}/pods/{pod}/{subresource}?{}",
        out.finish()
    ))
}

/// Why the serving TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsFilesError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// File.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// rustls refused the certificate, key or CA.
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// The serving TLS: this certificate and key, and only clients with a certificate that `client_ca` signed (the
/// apiserver's kubelet client).
///
/// # Errors
/// A file is missing or not PEM of the right kind, or rustls refuses them.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsFilesError> {
    let pem = |path: &Path, message: String| TlsFilesError::Pem {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|e| pem(cert, e.to_string()))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(client_ca).map_err(|e| pem(client_ca, e.to_string()))? {
        roots
            .add(ca.map_err(|e| pem(client_ca, e.to_string()))?)
            .map_err(|e| TlsFilesError::Rustls(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsFilesError::Rustls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFilesError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key_der)
        .map_err(|e| TlsFilesError::Rustls(e.to_string()))?;
    // The apiserver's proxy upgrades HTTP/1.1 connections for exec; HTTP/2 is offered for the rest.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths_become_the_pod_subresources_kube_sim_serves() {
        assert_eq!(
            rewrite(
                "/exec/app/db-0/postgres",
                "command=sh&command=-c&command=echo+hi&input=1&output=1&error=1"
            )
            .as_deref(),
            Some(
                "/api/v1/namespaces/app/pods/db-0/exec?container=postgres&command=sh&command=-c&command=echo+hi&stdin=1&stdout=1&stderr=1"
            )
        );
        assert_eq!(
            rewrite("/containerLogs/app/job-x/main", "follow=true&tailLines=5").as_deref(),
            Some("/api/v1/namespaces/app/pods/job-x/log?container=main&follow=true&tailLines=5")
        );
        assert_eq!(rewrite("/pods", ""), None);
        assert_eq!(rewrite("/exec/app/pod", "command=x"), None);
        assert_eq!(rewrite("/run/app/pod/c", ""), None);
    }
}
