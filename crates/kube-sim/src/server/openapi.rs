//! OpenAPI v3 discovery and per-group-version documents. kubectl reads them to learn that the server supports
//! the `fieldValidation` query parameter on PATCH for every kind (so it leaves validation to the server) and
//! to find schemas; the documents list one PATCH operation per kind with that parameter, plus the CRD schemas.
//! /openapi/v2 is not served: kubectl 1.32 prefers v3 and falls back to compiled-in types for built-ins.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, json};

use super::{error_response, json_response};
use crate::paths;
use crate::resources::Registry;
use crate::status::ApiError;

/// /openapi/v2: not served.
pub fn v2(_reg: &Registry) -> Response {
    error_response(&ApiError::no_route())
}

/// The index key of a group-version document: its API path without the leading slash.
fn gv_path(group: &str, version: &str) -> String {
    paths::group_version(group, version)
        .trim_start_matches('/')
        .to_string()
}

fn all_gvs(reg: &Registry) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for r in reg.all() {
        for v in &r.versions {
            let gv = (r.group.clone(), v.name.clone());
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
    }
    out
}

/// /openapi/v3 (index) and /openapi/v3/<api/v1 | apis/G/V>.
pub fn v3(reg: &Registry, rest: &str) -> Response {
    if rest.is_empty() {
        let mut paths = Map::new();
        for (g, v) in all_gvs(reg) {
            let p = gv_path(&g, &v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=kube-sim")}),
            );
        }
        return json_response(StatusCode::OK, &json!({"paths": paths}));
    }
    let Some((g, v)) = all_gvs(reg)
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == rest)
    else {
        return error_response(&ApiError::no_route());
    };
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in reg.all().filter(|r| r.group == g && r.serves(&v)) {
        let gvk = json!({"group": g, "version": v, "kind": r.kind});
        let item = paths::resource(
            &g,
            &v,
            &r.plural,
            r.namespaced.then_some("{namespace}"),
            Some("{name}"),
            None,
        );
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
        ]);
        paths.insert(
            item,
            json!({
                "get": {"operationId": format!("read{}", r.kind), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}},
                "patch": {"operationId": format!("patch{}", r.kind), "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
                          "parameters": params, "responses": {"200": {"description": "OK"}}},
            }),
        );
        if let Some(schema) = r.version(&v).and_then(|x| x.schema.clone()) {
            let mut schema = (*schema).clone();
            schema["x-kubernetes-group-version-kind"] = json!([gvk]);
            let id = format!("{}.{v}.{}", reverse_group(&g), r.kind);
            schemas.insert(id, schema);
        }
    }
    json_response(
        StatusCode::OK,
        &json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0-kube-sim"}, "paths": paths, "components": {"schemas": schemas}}),
    )
}

fn reverse_group(g: &str) -> String {
    if g.is_empty() {
        return "io.k8s.api.core".to_string();
    }
    let mut parts: Vec<&str> = g.split('.').collect();
    parts.reverse();
    parts.join(".")
}
