//! Jobs, like the Job controller without retries (`backoffLimit` is not simulated): a new Job gets the
//! apiserver's default selector and one pod; the pod reaching Succeeded/Failed completes/fails the Job, and a
//! Job given a Complete/Failed condition from outside ends its running pod the same way.

use serde_json::{Value, json};

use super::{Controllers, owned_by, s};
use crate::pods::{PodPhase, set_pod_phase};
use crate::store::random_suffix;

/// Whether a Job has finished: `Some(true)` with a true Complete condition, `Some(false)` with a true Failed one.
fn job_succeeded(job: &Value) -> Option<bool> {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .filter(|c| s(c, "/status") == "True")
        .find_map(|c| match s(c, "/type") {
            "Complete" => Some(true),
            "Failed" => Some(false),
            _ => None,
        })
}

impl Controllers {
    /// Start a new Job: the default selector, an active status and its one pod.
    pub(super) fn reconcile_job(&self, job: &Value) {
        let ns = s(job, "/metadata/namespace").to_string();
        let name = s(job, "/metadata/name").to_string();
        let uid = s(job, "/metadata/uid").to_string();
        if job.pointer("/status/startTime").is_some() {
            return;
        }
        let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let pod_name = format!("{name}-{}", random_suffix(5));
        let pod = self.pod_from_template(
            job,
            &pod_name,
            &[
                ("job-name", name.clone()),
                ("batch.kubernetes.io/job-name", name.clone()),
                ("controller-uid", uid.clone()),
                ("batch.kubernetes.io/controller-uid", uid.clone()),
            ],
            &template,
        );
        let now = self.store.clock().now_rfc3339();
        self.mutate("batch", "jobs", &ns, &name, |j| {
            // The apiserver's default selector, which `kubectl logs job/NAME` resolves the pod by.
            if j.pointer("/spec/selector").is_none() {
                j["spec"]["selector"] =
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
            }
            j["status"] = json!({"active": 1, "ready": 1, "startTime": now});
        });
        let _ = self.create("", "pods", pod);
    }

    /// Like the Job controller (without retries: `backoffLimit` is not simulated): a Job's pod that ended
    /// completes or fails its Job.
    pub(super) fn finish_job_of(&self, pod: &Value) {
        let Some(owner) = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| refs.iter().find(|r| s(r, "/kind") == "Job"))
        else {
            return;
        };
        let ns = s(pod, "/metadata/namespace");
        let Some(job) = self.store.find("batch", "jobs", ns, s(owner, "/name")) else {
            return;
        };
        if s(&job, "/metadata/uid") != s(owner, "/uid") || job_succeeded(&job).is_some() {
            return;
        }
        let now = self.store.clock().now_rfc3339();
        let succeeded = s(pod, "/status/phase") == "Succeeded";
        self.mutate("batch", "jobs", ns, s(&job, "/metadata/name"), |j| {
                let start = j.pointer("/status/startTime").cloned().unwrap_or(json!(now));
                j["status"] = if succeeded {
                    json!({"startTime": start, "completionTime": now, "active": 0, "ready": 0, "succeeded": 1,
                           "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]})
                } else {
                    json!({"startTime": start, "active": 0, "ready": 0, "failed": 1,
                           "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                           "message": "Job has reached the specified backoff limit",
                                           "lastProbeTime": now, "lastTransitionTime": now}]})
                };
            });
    }

    /// A Job given a Complete or Failed condition from outside (tests set Job status) ends its running pods the
    /// same way, so whatever waits on the pod (a log follower) sees it end.
    pub(super) fn end_job_pods(&self, job: &Value) {
        let Some(succeeded) = job_succeeded(job) else {
            return;
        };
        let phase = if succeeded {
            PodPhase::Succeeded
        } else {
            PodPhase::Failed
        };
        let ns = s(job, "/metadata/namespace");
        for pod in self.store.all_of("", "pods") {
            if s(&pod, "/metadata/namespace") == ns
                && owned_by(&pod, s(job, "/metadata/uid"))
                && !PodPhase::is_terminal(s(&pod, "/status/phase"))
            {
                let _ = set_pod_phase(&self.store, ns, s(&pod, "/metadata/name"), phase);
            }
        }
    }
}
