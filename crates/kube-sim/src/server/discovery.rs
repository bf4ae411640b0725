//! Discovery documents: /version, /api, /apis, /apis/G and the APIResourceLists (short names, categories,
//! subresources) that kubectl uses to map `vs`, `vsc`, `deploy` and friends to resources.

use serde_json::{Value, json};

use crate::paths;
use crate::resources::{Registry, ResourceInfo, is_virtual};

/// /version
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-kube-sim", "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// /api
pub fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": paths::api_version(group, v), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(json!(null))})
}

/// /apis
pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// /apis/G
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let (g, vs) = reg.groups().into_iter().find(|(g, _)| g == group)?;
    let mut v = group_entry(&g, &vs);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

fn verbs(r: &ResourceInfo) -> Vec<&'static str> {
    if is_virtual(&r.group, &r.plural) {
        vec!["create"]
    } else {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

fn entries(r: &ResourceInfo) -> Vec<Value> {
    let mut out = vec![json!({
        "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
        "verbs": verbs(r), "shortNames": r.short_names, "categories": r.categories,
    })];
    for s in &r.subresources {
        let (kind, verbs, group, version): (&str, Vec<&str>, Option<&str>, Option<&str>) =
            match s.as_str() {
                "status" => (&r.kind, vec!["get", "patch", "update"], None, None),
                "scale" => (
                    "Scale",
                    vec!["get", "patch", "update"],
                    Some("autoscaling"),
                    Some("v1"),
                ),
                "exec" => ("PodExecOptions", vec!["create", "get"], None, None),
                "log" => ("Pod", vec!["get"], None, None),
                "token" => (
                    "TokenRequest",
                    vec!["create"],
                    Some("authentication.k8s.io"),
                    Some("v1"),
                ),
                "finalize" => ("Namespace", vec!["update"], None, None),
                _ => continue,
            };
        let mut e = json!({"name": format!("{}/{s}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs});
        if let (Some(g), Some(v)) = (group, version) {
            e["group"] = json!(g);
            e["version"] = json!(v);
        }
        out.push(e);
    }
    out
}

/// /api/v1 or /apis/G/V
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = reg
        .all()
        .filter(|r| r.group == group && r.serves(version))
        .flat_map(entries)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = paths::api_version(group, version);
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}
