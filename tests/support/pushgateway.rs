//! A stand-in Prometheus Pushgateway: a local HTTP server that records every request and answers with a fixed
//! status, so tests can check exactly what backup-ns pushes.

use std::sync::{Arc, Mutex};

/// One request the gateway received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: String,
}

/// The requests received so far.
pub type Seen = Arc<Mutex<Vec<Pushed>>>;

/// Starts the gateway on 127.0.0.1 (it lives as long as the test's runtime) and returns its URL.
pub async fn start(status: u16) -> (String, Seen) {
    let (app, seen) = app(status);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// The same gateway behind TLS, with a certificate for 127.0.0.1 and localhost from a fresh CA; returns its
/// `https://localhost:PORT` URL and the CA's PEM.
#[allow(dead_code)] // not every test binary that includes this module pushes over TLS
pub async fn start_tls(status: u16) -> (String, Seen, String) {
    let (app, seen) = app(status);
    let tls = kube_sim::tls::generate().expect("test certificates");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(kube_sim::tls::serve(
        listener,
        app,
        tls.config,
        std::future::pending(),
    ));
    (url, seen, tls.ca_pem)
}

fn app(status: u16) -> (axum::Router, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let record = record.clone();
        async move {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let content_type = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            record.lock().unwrap().push(Pushed {
                method,
                path,
                content_type,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                "pushgateway says no",
            )
        }
    });
    (app, seen)
}
