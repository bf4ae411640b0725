//! Pod phases: the status a pod reports in each phase the simulator can put it in (containers running, waiting,
//! crash-looping or terminated), and forcing a pod into one (library, `/_sim/pods`, the Job controller).

use std::str::FromStr;

use serde_json::{Value, json};

use crate::runtime::RunImages;
use crate::status::ApiError;
use crate::store::{Part, Store};

/// Whether the kubelet runs a process for some container (init or regular) of `pod`: such a pod starts
/// Pending and the kubelet reports its containers; any other pod is simply Running.
pub fn runs_process(pod: &Value, images: &RunImages) -> bool {
    if images.is_empty() {
        return false;
    }
    ["initContainers", "containers"].iter().any(|list| {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                images
                    .argv(image, &words(c, "command"), &words(c, "args"))
                    .is_some()
            })
    })
}

/// A container's list of words under `key` (`command`, `args`).
pub fn words(container: &Value, key: &str) -> Vec<String> {
    container
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Pod phases tests can force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    /// Running and Ready.
    Running,
    /// Running, Ready=False.
    NotReady,
    /// Pending (ContainerCreating).
    Pending,
    /// Running with containers in CrashLoopBackOff.
    CrashLoop,
    /// Every container exited 0 (a Job's pod that completed).
    Succeeded,
    /// A container exited 1 (a Job's pod that failed).
    Failed,
}

impl PodPhase {
    /// Whether the pod's containers have ended for good (logs stop following, exec is refused).
    pub fn is_terminal(phase: &str) -> bool {
        matches!(phase, "Succeeded" | "Failed")
    }
}

impl FromStr for PodPhase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "Running" => Ok(PodPhase::Running),
            "NotReady" => Ok(PodPhase::NotReady),
            "Pending" => Ok(PodPhase::Pending),
            "CrashLoop" | "CrashLoopBackOff" => Ok(PodPhase::CrashLoop),
            "Succeeded" => Ok(PodPhase::Succeeded),
            "Failed" => Ok(PodPhase::Failed),
            other => Err(format!(
                "unknown pod phase {other:?}: expected Running, NotReady, Pending, CrashLoop, Succeeded or Failed"
            )),
        }
    }
}

/// The status a pod has in `phase`, stamped with `now`.
pub fn pod_status(pod: &Value, phase: PodPhase, now: &str) -> Value {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = phase == PodPhase::Running;
    let started_at = pod
        .pointer("/status/startTime")
        .cloned()
        .unwrap_or(json!(now));
    let cond = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now});
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let state = match phase {
                PodPhase::Running | PodPhase::NotReady => json!({"running": {"startedAt": now}}),
                PodPhase::Pending => json!({"waiting": {"reason": "ContainerCreating"}}),
                PodPhase::CrashLoop => json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}),
                PodPhase::Succeeded => json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started_at, "finishedAt": now}}),
                PodPhase::Failed => json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started_at, "finishedAt": now}}),
            };
            json!({"name": c["name"], "image": c["image"], "imageID": "", "containerID": format!("kube-sim://{}", uuid::Uuid::new_v4().simple()),
                   "ready": ready, "started": matches!(phase, PodPhase::Running | PodPhase::NotReady),
                   "restartCount": if phase == PodPhase::CrashLoop { 5 } else { 0 }, "state": state})
        })
        .collect();
    let scheduled = true;
    let running = phase != PodPhase::Pending;
    json!({
        "phase": match phase {
            PodPhase::Pending => "Pending",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Running | PodPhase::NotReady | PodPhase::CrashLoop => "Running",
        },
        "conditions": [cond("PodScheduled", scheduled), cond("Initialized", running), cond("ContainersReady", ready), cond("Ready", ready)],
        "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": pod.pointer("/status/startTime").cloned().unwrap_or(json!(now)),
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    })
}

/// Force a pod's phase (library and /_sim/pods).
pub fn set_pod_phase(
    store: &Store,
    ns: &str,
    name: &str,
    phase: PodPhase,
) -> Result<Value, ApiError> {
    let now = store.clock().now_rfc3339();
    let res = store
        .resource("", "pods")
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    store
        .modify(&res, "v1", ns, name, Part::Raw, false, |p| {
            let mut p = p.clone();
            p["status"] = pod_status(&p, phase, &now);
            Ok(p)
        })
        .map_err(|_| ApiError::not_found("", "pods", name))
}
