//! Hostile answers: the body faults of [`FaultAction`] applied to an answer the store already gave (oversized,
//! truncated, wrongly typed, with unknown fields), and the HTML page a misrouted proxy sends instead of JSON.
//! Only successful (2xx) answers are altered; an error Status passes as it is. A watch stream cannot be altered
//! object by object, so a watch matched by one of these gets one garbage line, then the stream ends.

use axum::body::{Body, to_bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::FaultAction;

/// The annotation that carries an [`FaultAction::OversizedAnswer`]'s padding.
pub const PADDING_ANNOTATION: &str = "kube-sim.io/padding";

/// Largest answer read back for altering (the store's lists stay far below it).
const MAX_ANSWER: usize = 1 << 30;

/// A 200 whose body is an HTML error page, not JSON.
pub fn garbage() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><body><h1>502 Bad Gateway</h1>kube-sim injected fault: garbage body</body></html>\n",
    )
        .into_response()
}

/// `answer` altered as `action` says (`verb` tells a watch stream apart).
pub async fn alter(action: FaultAction, verb: &str, answer: Response) -> Response {
    if !answer.status().is_success() {
        return answer;
    }
    if verb == "watch" {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"type\":\"ADDED\",\"object\":{\"kind\":\n",
        )
            .into_response();
    }
    let status = answer.status();
    let Ok(bytes) = to_bytes(answer.into_body(), MAX_ANSWER).await else {
        return garbage();
    };
    let body = match action {
        FaultAction::TruncatedJson => bytes[..bytes.len() / 2].to_vec(),
        _ => match serde_json::from_slice::<Value>(&bytes) {
            Ok(mut value) => {
                alter_value(action, &mut value);
                value.to_string().into_bytes()
            }
            // Not JSON (a log read): nothing to alter.
            Err(_) => bytes.to_vec(),
        },
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Every object of an answer: each item of a list, or the object itself.
fn objects(value: &mut Value) -> Vec<&mut Value> {
    if value.get("items").is_some_and(Value::is_array) {
        value["items"]
            .as_array_mut()
            .map(|items| items.iter_mut().collect())
            .unwrap_or_default()
    } else {
        vec![value]
    }
}

/// Applies a typed alteration to every object of an answer.
fn alter_value(action: FaultAction, value: &mut Value) {
    let is_list = value.get("items").is_some_and(Value::is_array);
    match action {
        FaultAction::OversizedAnswer { mebibytes } => {
            let total = usize::try_from(mebibytes).unwrap_or(usize::MAX) * 1024 * 1024;
            let count = objects(value).len();
            if count == 0 {
                value["padding"] = json!("x".repeat(total));
                return;
            }
            let share = "x".repeat(total / count);
            for o in objects(value) {
                o["metadata"]["annotations"][PADDING_ANNOTATION] = json!(share);
            }
        }
        FaultAction::LabelsAsList => {
            for o in objects(value) {
                let labels: Vec<Value> = o["metadata"]["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| json!(format!("{k}={}", v.as_str().unwrap_or_default())))
                            .collect()
                    })
                    .unwrap_or_default();
                o["metadata"]["labels"] = Value::Array(labels);
            }
        }
        FaultAction::ReadyAsString => {
            for o in objects(value) {
                if let Some(ready) = o["status"]["readyToUse"].as_bool() {
                    o["status"]["readyToUse"] = json!(ready.to_string());
                }
            }
        }
        FaultAction::UnknownFields => {
            for o in objects(value) {
                o["unexpectedTopLevel"] = json!({"nested": [1, "two", null]});
                o["metadata"]["unexpectedMeta"] = json!(42);
                if o["status"].is_object() {
                    o["status"]["unexpectedStatus"] = json!("surprise");
                }
            }
            if is_list {
                value["unexpectedListField"] = json!(true);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Value {
        json!({"kind": "List", "metadata": {}, "items": [
            {"metadata": {"name": "a", "labels": {"k": "v"}}, "status": {"readyToUse": true}},
            {"metadata": {"name": "b"}, "status": {"readyToUse": false}},
        ]})
    }

    #[test]
    fn labels_become_a_list_and_ready_a_string_on_every_item() {
        let mut v = list();
        alter_value(FaultAction::LabelsAsList, &mut v);
        assert_eq!(v["items"][0]["metadata"]["labels"], json!(["k=v"]));
        assert_eq!(v["items"][1]["metadata"]["labels"], json!([]));
        alter_value(FaultAction::ReadyAsString, &mut v);
        assert_eq!(v["items"][0]["status"]["readyToUse"], "true");
        assert_eq!(v["items"][1]["status"]["readyToUse"], "false");
    }

    #[test]
    fn padding_is_shared_among_the_items_and_unknown_fields_reach_the_list() {
        let mut v = list();
        alter_value(FaultAction::OversizedAnswer { mebibytes: 2 }, &mut v);
        let share = v["items"][0]["metadata"]["annotations"][PADDING_ANNOTATION]
            .as_str()
            .map(str::len);
        assert_eq!(share, Some(1024 * 1024));
        let mut v = list();
        alter_value(FaultAction::UnknownFields, &mut v);
        assert_eq!(v["unexpectedListField"], true);
        assert_eq!(v["items"][1]["metadata"]["unexpectedMeta"], 42);
        assert_eq!(v["items"][1]["metadata"]["name"], "b", "known fields stay");
    }

    #[tokio::test]
    async fn a_truncated_answer_is_half_of_it_and_an_error_passes_unaltered() {
        let whole = list().to_string();
        let answer = (StatusCode::OK, whole.clone()).into_response();
        let cut = alter(FaultAction::TruncatedJson, "list", answer).await;
        let bytes = to_bytes(cut.into_body(), usize::MAX).await.expect("body");
        assert_eq!(bytes.len(), whole.len() / 2);
        assert!(serde_json::from_slice::<Value>(&bytes).is_err());
        let error = (StatusCode::NOT_FOUND, "{}").into_response();
        let kept = alter(FaultAction::TruncatedJson, "get", error).await;
        assert_eq!(kept.status(), StatusCode::NOT_FOUND);
    }
}
