//! The `events.k8s.io/v1` API over the stored core/v1 Events ([`crate::events`]): a request is authorized as
//! the client sent it, then served on the core resource with its body converted in, its answer (object, list or
//! watch stream) converted out, and a patch applied to the view of the stored object.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};

use super::{Call, MAX_BODY, Shared, dispatch, json_response, patch_type};
use crate::events::{core_field_selector, to_core, to_view};
use crate::patch::apply_patch;
use crate::status::ApiError;
use crate::store::Part;

/// Serve an authorized request on the `events.k8s.io` view.
pub(super) async fn serve(shared: &Arc<Shared>, mut c: Call) -> Result<Response, ApiError> {
    let core = shared
        .store
        .resource("", "events")
        .ok_or_else(ApiError::no_route)?;
    c.group = String::new();
    c.version = "v1".into();
    c.plural = "events".into();
    if let Some(selector) = c.query.get_mut("fieldSelector") {
        *selector = core_field_selector(selector);
    }
    let watch = c.verb == "watch";
    let answer = match c.verb {
        "create" | "update" => {
            let body = to_core(&c.body_json()?);
            c.body = serde_json::to_vec(&body).unwrap_or_default();
            c.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            dispatch(shared, core, c)?
        }
        "patch" => patch(shared, &core, &c)?,
        _ => dispatch(shared, core, c)?,
    };
    if watch {
        return Ok(convert_stream(answer));
    }
    convert_answer(answer).await
}

fn patch(
    shared: &Shared,
    core: &crate::resources::ResourceInfo,
    c: &Call,
) -> Result<Response, ApiError> {
    let kind = patch_type(c)?;
    let obj = shared.store.modify(
        core,
        "v1",
        c.ns(),
        c.name(),
        Part::Main,
        c.dry_run(),
        |old| {
            let mut doc = to_view(old);
            apply_patch(&mut doc, kind, &c.body, true)?;
            Ok(to_core(&doc))
        },
    )?;
    Ok(json_response(StatusCode::OK, &obj))
}

/// An Event, a list of Events, or a watch event, as the view shows it; anything else (Status, Table) as is.
fn convert(value: &mut Value) {
    match value.get("kind").and_then(Value::as_str) {
        Some("Event") => *value = to_view(value),
        Some("EventList") => {
            value["apiVersion"] = json!("events.k8s.io/v1");
            if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
                for item in items {
                    *item = to_view(item);
                }
            }
        }
        _ => {
            if value.get("type").is_some()
                && let Some(object) = value.get_mut("object")
                && object.get("kind").and_then(Value::as_str) == Some("Event")
            {
                *object = to_view(object);
            }
        }
    }
}

async fn convert_answer(answer: Response) -> Result<Response, ApiError> {
    let (parts, body) = answer.into_parts();
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| ApiError::internal(format!("reading the events answer: {e}")))?;
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    };
    convert(&mut value);
    Ok(json_response(parts.status, &value))
}

/// A watch stream's lines (one JSON event each) as the view shows them.
fn convert_stream(answer: Response) -> Response {
    let (parts, body) = answer.into_parts();
    let lines = body.into_data_stream().map(|chunk| {
        chunk.map(|bytes| {
            let mut out = Vec::with_capacity(bytes.len());
            for line in bytes.split_inclusive(|b| *b == b'\n') {
                match serde_json::from_slice::<Value>(line) {
                    Ok(mut event) => {
                        convert(&mut event);
                        out.extend(serde_json::to_vec(&event).unwrap_or_default());
                        out.push(b'\n');
                    }
                    Err(_) => out.extend_from_slice(line),
                }
            }
            out
        })
    });
    Response::from_parts(parts, Body::from_stream(lines))
}
