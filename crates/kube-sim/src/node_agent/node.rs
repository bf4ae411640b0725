//! The agent's Node object: created once under the agent's name, then its status says Ready, where the kubelet
//! API listens (127.0.0.1 and the daemon endpoint's port), what it can hold, and, in `declaredFeatures`, that it
//! takes exec's WebSocket straight from the apiserver (`ExtendWebSocketsToKubelet`), so a 1.36+ apiserver passes
//! `v5.channel.k8s.io` through instead of translating it to SPDY. The status is renewed every
//! [`HEARTBEAT`] so its heartbeat time stays fresh.

use std::time::Duration;

use axum::http::Method;
use serde_json::{Value, json};

use super::api;

/// How often the Ready condition's heartbeat is renewed.
pub const HEARTBEAT: Duration = Duration::from_secs(20);

/// The node feature that lets the apiserver proxy exec's WebSocket to the node unchanged.
pub const WEBSOCKET_FEATURE: &str = "ExtendWebSocketsToKubelet";

/// Create the Node `name` if it does not exist yet (a restarted agent finds its own).
///
/// # Errors
/// The apiserver refused the create for another reason than that it exists.
pub async fn register(client: &kube::Client, name: &str) -> Result<(), kube::Error> {
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        }},
    });
    match api::send(
        client,
        Method::POST,
        "/api/v1/nodes",
        Some(&node),
        "application/json",
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(e) if api::code(&e) == Some(409) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Write the Node's status: Ready now, addresses and the kubelet API's port, capacity, declared features.
///
/// # Errors
/// The apiserver refused the patch.
pub async fn report_ready(
    client: &kube::Client,
    name: &str,
    port: u16,
) -> Result<Value, kube::Error> {
    api::merge_patch(
        client,
        &format!("/api/v1/nodes/{name}/status"),
        &status(name, port, &chrono::Utc::now().to_rfc3339()),
    )
    .await
}

/// The status patch.
fn status(name: &str, port: u16, now: &str) -> Value {
    let condition = |kind: &str, state: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": state, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let capacity = json!({"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "10Gi"});
    json!({"status": {
        "conditions": [
            condition("Ready", "True", "KubeletReady", "the backup-ns node agent runs this node's pods as host processes"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "no pressure reported"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no pressure reported"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "no pressure reported"),
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "capacity": capacity, "allocatable": capacity,
        "declaredFeatures": [WEBSOCKET_FEATURE],
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "host processes",
            "containerRuntimeVersion": "kube-sim://host-processes",
            "kubeletVersion": concat!("backup-ns-node-agent/", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH,
        },
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_declares_websocket_exec_and_the_kubelet_port() {
        let patch = status("agent", 10250, "2026-01-01T00:00:00Z");
        assert_eq!(
            patch.pointer("/status/declaredFeatures"),
            Some(&json!([WEBSOCKET_FEATURE]))
        );
        assert_eq!(
            patch.pointer("/status/daemonEndpoints/kubeletEndpoint/Port"),
            Some(&json!(10250))
        );
        assert_eq!(
            patch.pointer("/status/conditions/0/status"),
            Some(&json!("True"))
        );
    }
}
