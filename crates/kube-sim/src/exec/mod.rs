//! Pod exec: the Kubernetes remote-command protocol over WebSocket, served by running the command
//! for real as a local child process in a mount namespace that maps the container's volumes.
//!
//! Flow for `GET /api/v1/namespaces/NS/pods/NAME/exec?command=..&stdout=true..`:
//! 1. [`ExecRequest::from_query`] parses and validates the query (400 on bad input);
//! 2. the server's exec route resolves the container into an [`ExecSpec`] (env, volume mounts, workingDir);
//! 3. [`upgrade`] negotiates `v5.channel.k8s.io`/`v4.channel.k8s.io` and hands the socket to
//!    [`serve`], which runs the process (see `sandbox` for the namespace and `session` for the
//!    streaming) and ends with a `metav1.Status` on channel 3 and a normal close.

mod error;
mod protocol;
mod pty;
mod sandbox;
mod session;
mod spec;
mod status;

pub use error::ExecError;
pub use protocol::{
    CLOSE, ClientFrame, ERROR, Protocol, RESIZE, STDERR, STDIN, STDOUT, negotiate,
    parse_client_frame, server_frame,
};
pub use sandbox::Sandbox;
pub use session::{
    CHUNK, Outcome, ProcessGroup, Reader, Running, Writer, serve, serve_until, start,
};
pub use spec::{ExecRequest, ExecSpec, Mount};
pub use status::{exit_code, exit_status, internal_error};

use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Upgrade to the best subprotocol the client offers and serve `spec` on the socket. Responds 400
/// with a `metav1.Status` when no supported subprotocol was offered (kubectl would then fall back
/// to SPDY, which kube-sim does not speak; the message says so).
pub fn upgrade(ws: WebSocketUpgrade, headers: &HeaderMap, spec: ExecSpec) -> Response {
    let Some(protocol) = negotiate(headers) else {
        let offered = headers
            .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        return status_response(&ExecError::UnsupportedProtocol { offered });
    };
    let mut ws = ws;
    ws.set_selected_protocol(HeaderValue::from_static(protocol.name()));
    ws.on_upgrade(move |socket| async move {
        let outcome = serve(socket, protocol, spec).await;
        tracing::debug!(?outcome, "exec session ended");
    })
}

/// A `metav1.Status` error response for an exec request that is refused before upgrading.
#[must_use]
pub fn status_response(error: &ExecError) -> Response {
    let (code, reason) = match error {
        ExecError::InvalidRequest(_) | ExecError::UnsupportedProtocol { .. } => {
            (StatusCode::BAD_REQUEST, "BadRequest")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    };
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.to_string(),
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}
