//! OpenAPI documents. kubectl fetches /openapi/v3 to decide whether the server validates fields itself
//! (it does not, here) and falls back to client-side behaviour when a document is missing.

use axum::http::StatusCode;
use axum::response::Response;

use super::{error_response, json_response};
use crate::resources::Registry;
use crate::status::ApiError;

/// /openapi/v2: not served (kubectl falls back).
pub fn v2(_reg: &Registry) -> Response {
    error_response(&ApiError::no_route())
}

/// /openapi/v3 and /openapi/v3/<gv>.
pub fn v3(_reg: &Registry, rest: &str) -> Response {
    if rest.is_empty() {
        return json_response(StatusCode::OK, &serde_json::json!({"paths": {}}));
    }
    error_response(&ApiError::no_route())
}
