//! Debug endpoints under /_sim/: the clock (GET, PUT {"time": RFC3339}, POST advance {"seconds": N}),
//! faults (GET, POST a Fault, DELETE all), the request log (GET, DELETE resets), pod phase control
//! (POST /_sim/pods/NS/NAME {"phase": "NotReady"|"Pending"|"CrashLoop"|"Running"|"Succeeded"|"Failed"}) and
//! container output (POST /_sim/pods/NS/NAME/log {"text": "...", "container": "c"}; container optional for a pod
//! with one container).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Shared, error_response, json_response};
use crate::faults::Fault;
use crate::pods::{PodPhase, set_pod_phase};
use crate::status::ApiError;

pub fn handle(
    shared: &Arc<Shared>,
    method: &Method,
    rest: &str,
    _q: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    match inner(shared, method, rest, body) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

fn parse(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

fn clock_json(shared: &Shared) -> Value {
    json!({"time": shared.clock.now_rfc3339()})
}

fn inner(
    shared: &Arc<Shared>,
    method: &Method,
    rest: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["clock"]) => Ok(clock_json(shared)),
        ("PUT" | "POST", ["clock"]) => {
            let b = parse(body)?;
            let t = b
                .get("time")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("expected {\"time\": RFC3339}"))?;
            let dt = chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| ApiError::bad_request(format!("invalid time {t:?}: {e}")))?;
            shared.clock.set(dt.with_timezone(&chrono::Utc));
            Ok(clock_json(shared))
        }
        ("POST", ["clock", "advance"]) => {
            let b = parse(body)?;
            let secs = b
                .get("seconds")
                .and_then(Value::as_f64)
                .ok_or_else(|| ApiError::bad_request("expected {\"seconds\": N}"))?;
            if secs < 0.0 || !secs.is_finite() {
                return Err(ApiError::bad_request(
                    "seconds must be a non-negative number",
                ));
            }
            shared
                .clock
                .advance(std::time::Duration::from_secs_f64(secs));
            Ok(clock_json(shared))
        }
        ("GET", ["faults"]) => Ok(serde_json::to_value(shared.faults.list()).unwrap_or(json!([]))),
        ("POST", ["faults"]) => {
            let f: Fault = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid fault: {e}")))?;
            shared.faults.add(f);
            Ok(serde_json::to_value(shared.faults.list()).unwrap_or(json!([])))
        }
        ("DELETE", ["faults"]) => {
            shared.faults.clear();
            Ok(json!([]))
        }
        ("GET", ["requests"]) => Ok(shared.requests.to_json()),
        ("DELETE", ["requests"]) => {
            shared.requests.reset();
            Ok(json!([]))
        }
        ("POST", ["pods", ns, name]) => {
            let b = parse(body)?;
            let phase = b.get("phase").and_then(Value::as_str).unwrap_or_default();
            let phase: PodPhase = phase.parse().map_err(ApiError::bad_request)?;
            let pod = set_pod_phase(&shared.store, ns, name, phase)?;
            Ok(pod)
        }
        ("POST", ["pods", ns, name, "log"]) => {
            let b = parse(body)?;
            let text = b
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("expected {\"text\": \"...\"}"))?;
            let container = b.get("container").and_then(Value::as_str);
            let container =
                shared
                    .logs
                    .append_to_pod(&shared.store, ns, name, container, text.as_bytes())?;
            Ok(json!({"container": container, "bytes": text.len()}))
        }
        _ => Err(ApiError::no_route()),
    }
}
