//! The exporter's HTTP server: `/metrics` renders the mirrored snapshot facts at the clock's "now" (so a scrape
//! costs no API call), `/healthz` answers 200 once the snapshot watch has listed everything and 503 until then.

use super::exposition::{ClusterSnapshots, SnapshotFacts, render};
use super::family::CONTENT_TYPE;
use crate::clock::Clock;
use crate::cluster::snapshot_mirror::SnapshotMirror;

/// The exporter's routes over `mirror`; `snapshot_limit` is reported beside the cluster's snapshot count.
pub fn router(
    mirror: SnapshotMirror<SnapshotFacts>,
    clock: Clock,
    snapshot_limit: u64,
) -> axum::Router {
    let metrics_mirror = mirror.clone();
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let mirror = metrics_mirror.clone();
                async move {
                    let text = mirror.read(|s| {
                        let cluster = ClusterSnapshots {
                            count: s.total(),
                            limit: snapshot_limit,
                        };
                        render(s.items.values(), clock.now_utc(), s.synced, cluster)
                    });
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            format!("{CONTENT_TYPE}; charset=utf-8"),
                        )],
                        text,
                    )
                }
            }),
        )
        .route(
            "/healthz",
            axum::routing::get(move || {
                let synced = mirror.read(|s| s.synced);
                async move {
                    if synced {
                        (axum::http::StatusCode::OK, "ok\n")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "snapshot watch not synced yet\n",
                        )
                    }
                }
            }),
        )
}

/// Serves the exporter's routes on `listener` until SIGINT or SIGTERM.
pub async fn serve(
    listener: tokio::net::TcpListener,
    mirror: SnapshotMirror<SnapshotFacts>,
    clock: Clock,
    snapshot_limit: u64,
) -> std::io::Result<()> {
    axum::serve(listener, router(mirror, clock, snapshot_limit))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

/// Resolves at the first SIGINT or SIGTERM (only SIGINT where SIGTERM cannot be watched).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
