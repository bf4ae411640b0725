//! The `pods/{name}/exec` route of the simulated apiserver: the same request log, fault injection,
//! authentication and RBAC as every other request ([`admit`]), then the pod's container resolved into an
//! [`ExecSpec`] and the WebSocket handed to [`exec::serve`]. The exec machinery itself (protocol, sandbox,
//! session) lives in [`crate::exec`] and knows nothing of the server.
//!
//! Errors found before the upgrade (missing pod or container, pod not running, bad query, RBAC) are
//! plain HTTP `metav1.Status` responses, as the apiserver sends them; kubectl shows their message.
//! A non-WebSocket request (kubectl's SPDY fallback) passes the same checks, so it reports the same
//! errors, and is otherwise refused with a message naming the supported subprotocols.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use futures::SinkExt;

use super::{Shared, admit, error_response};
use crate::container::{ContainerContext, resolve_running_container};
use crate::exec::{
    self, ExecError, ExecRequest, ExecSpec, Mount, Protocol, internal_error, negotiate,
    server_frame,
};
use crate::rbac::Attributes;
use crate::status::ApiError;
use crate::store::{EventType, Store};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

/// GET (WebSocket) and POST (SPDY, refused) handler for the exec subresource
/// ([`crate::paths::exec_template`]).
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((namespace, pod)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // The apiserver authorizes a WebSocket exec twice: as the request it is, `get pods/exec`, and (since 1.30,
    // AuthorizePodWebsocketUpgradeCreatePermission) as `create pods/exec`, the verb of the POST it stands for. A
    // role needs both, as the real 1.36 apiserver shows (tests/real_cluster/rbac_mutants.rs). It is counted as
    // `create`.
    let attributes = Attributes {
        verb: "create".into(),
        group: String::new(),
        resource: "pods".into(),
        subresource: "exec".into(),
        namespace: namespace.clone(),
        name: pod.clone(),
    };
    let get = Attributes {
        verb: "get".into(),
        ..attributes.clone()
    };
    if let Err(refused) = admit(&shared, &headers, &[&get, &attributes]).await {
        return refused;
    }
    let (spec, protocol, ws) =
        match prepare(&shared, &namespace, &pod, query.as_deref(), &headers, ws) {
            Ok(prepared) => prepared,
            Err(error) => return error_response(&error),
        };
    let mut ws = ws;
    ws.set_selected_protocol(HeaderValue::from_static(protocol.name()));
    if let Some(message) = shared.faults.exec_failure(&namespace, &pod) {
        tracing::info!(%namespace, %pod, %message, "exec refused by injected fault");
        let failure = internal_error(&format!("kube-sim injected exec failure: {message}"));
        return ws.on_upgrade(move |socket| async move {
            let (mut sink, _source) = futures::StreamExt::split(socket);
            let json = serde_json::to_vec(&failure).unwrap_or_default();
            let frame = server_frame(exec::ERROR, &json);
            let _ = sink.send(Message::Binary(frame.into())).await;
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code: 1000,
                    reason: "".into(),
                })))
                .await;
        });
    }
    if let Some((stdout, status)) = shared.faults.exec_cut(&namespace, &pod) {
        tracing::info!(%namespace, %pod, status, "exec cut short by injected fault");
        return ws.on_upgrade(move |socket| async move {
            let (mut sink, source) = futures::StreamExt::split(socket);
            let _ = sink
                .send(Message::Binary(
                    server_frame(exec::STDOUT, stdout.as_bytes()).into(),
                ))
                .await;
            if status {
                let json = serde_json::to_vec(&exec::exit_status(&[], 0)).unwrap_or_default();
                let _ = sink
                    .send(Message::Binary(server_frame(exec::ERROR, &json).into()))
                    .await;
            }
            // Dropping both halves closes the TCP connection without a WebSocket close frame.
            drop((sink, source));
        });
    }
    let gone = pod_gone(&shared.store, &namespace, &pod);
    if let Some(after) = shared.faults.exec_drop(&namespace, &pod) {
        tracing::info!(%namespace, %pod, command = ?spec.command, ?after, "exec to be dropped by injected fault");
        return ws.on_upgrade(move |socket| async move {
            // Dropping the session drops the socket without a close frame, and kills the process with it.
            let session = exec::serve_until(socket, protocol, spec, gone);
            if let Ok(outcome) = tokio::time::timeout(after, session).await {
                tracing::info!(%namespace, %pod, ?outcome, "exec finished before its injected drop");
            }
        });
    }
    tracing::info!(%namespace, %pod, command = ?spec.command, "exec");
    ws.on_upgrade(move |socket| async move {
        let outcome = exec::serve_until(socket, protocol, spec, gone).await;
        tracing::info!(%namespace, %pod, ?outcome, "exec finished");
    })
}

/// Completes once the pod that an exec runs in is deleted from the store (its containers are gone, and with them
/// every exec process), and never if it cannot be found now (`prepare` has just resolved it).
fn pod_gone(
    store: &Arc<Store>,
    namespace: &str,
    pod: &str,
) -> impl Future<Output = ()> + Send + 'static {
    // Subscribe before reading the uid, so a deletion between the two is still seen.
    let mut events = store.subscribe();
    let uid = store
        .find("", "pods", namespace, pod)
        .and_then(|p| p.pointer("/metadata/uid")?.as_str().map(str::to_string));
    let store = store.clone();
    let (namespace, pod) = (namespace.to_string(), pod.to_string());
    async move {
        let Some(uid) = uid else {
            return std::future::pending().await;
        };
        let same_pod_stored = || {
            store
                .find("", "pods", &namespace, &pod)
                .is_some_and(|p| p.pointer("/metadata/uid").and_then(Value::as_str) == Some(&uid))
        };
        loop {
            match events.recv().await {
                Ok(event)
                    if event.etype == EventType::Deleted
                        && event.group.is_empty()
                        && event.plural == "pods"
                        && event
                            .object
                            .pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            == Some(&uid) =>
                {
                    return;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) if !same_pod_stored() => return,
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return std::future::pending().await,
            }
        }
    }
}

/// The checks after admission, in the apiserver's order: the options, the pod and container, then
/// the upgrade itself.
fn prepare(
    shared: &Shared,
    namespace: &str,
    pod: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<(ExecSpec, Protocol, WebSocketUpgrade), ApiError> {
    let request = ExecRequest::from_query(query.unwrap_or_default())
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let container = resolve_running_container(
        &shared.store,
        &shared.state_dir,
        namespace,
        pod,
        request.container.as_deref(),
    )
    .map_err(|error| error.to_api_error())?;
    let ws = ws.map_err(|_| {
        let upgrade = headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        ApiError::bad_request(format!(
            "kube-sim serves pods/exec only as a WebSocket upgrade (GET) with {} or {}; upgrade {upgrade:?} is not supported",
            Protocol::V5.name(),
            Protocol::V4.name()
        ))
    })?;
    let protocol = negotiate(headers).ok_or_else(|| {
        let offered = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        ApiError::bad_request(ExecError::UnsupportedProtocol { offered }.to_string())
    })?;
    Ok((spec_for(request, container), protocol, ws))
}

/// The process description for `request` in the resolved container.
#[must_use]
pub fn spec_for(request: ExecRequest, container: ContainerContext) -> ExecSpec {
    let mounts = container
        .mounts
        .into_iter()
        .map(|m| Mount {
            host: m.host_path,
            container: m.container_path,
            read_only: m.read_only,
        })
        .collect();
    request.into_spec(
        container.env,
        mounts,
        container.working_dir.map(PathBuf::from),
    )
}
