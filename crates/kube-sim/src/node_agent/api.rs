//! The agent's requests to the real apiserver, as the node's identity (`system:node:NAME`): plain JSON in and
//! out through the kube client, so the agent reads and writes exactly the fields it handles.

use axum::http::{Method, Request};
use serde_json::Value;

/// One JSON request; `body` is sent as `content_type`.
///
/// # Errors
/// The apiserver refused it (kube's `Error::Api` carries its `metav1.Status`), or it did not answer.
pub async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
    content_type: &str,
) -> Result<Value, kube::Error> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(bytes)
        .map_err(kube::Error::HttpError)?;
    client.request::<Value>(request).await
}

/// GET one object.
///
/// # Errors
/// As [`send`].
pub async fn get(client: &kube::Client, path: &str) -> Result<Value, kube::Error> {
    send(client, Method::GET, path, None, "application/json").await
}

/// A JSON merge patch.
///
/// # Errors
/// As [`send`].
pub async fn merge_patch(
    client: &kube::Client,
    path: &str,
    patch: &Value,
) -> Result<Value, kube::Error> {
    send(
        client,
        Method::PATCH,
        path,
        Some(patch),
        "application/merge-patch+json",
    )
    .await
}

/// The HTTP status code of an apiserver refusal, if it was one.
#[must_use]
pub fn code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
