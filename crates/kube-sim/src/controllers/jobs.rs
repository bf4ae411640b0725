//! Jobs, like the Job controller: a new Job gets the apiserver's default selector and one pod; a pod that
//! succeeds completes the Job, a pod that fails is replaced until `backoffLimit` (default 6) failures have
//! happened (at once: no back-off delay is simulated), and then the Job fails with `BackoffLimitExceeded`. On
//! the simulated clock, `activeDeadlineSeconds` fails a running Job with `DeadlineExceeded` and deletes its pods,
//! and `ttlSecondsAfterFinished` deletes a finished Job (its pods go with it). A Job given a Complete/Failed
//! condition from outside ends its running pods the same way.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Controllers, owned_by, s};
use crate::pods::{PodPhase, set_pod_phase};
use crate::store::random_suffix;

/// Whether a Job has finished: `Some(true)` with a true Complete condition, `Some(false)` with a true Failed one.
pub(super) fn job_succeeded(job: &Value) -> Option<bool> {
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
        if job.pointer("/status/startTime").is_some() {
            return;
        }
        let ns = s(job, "/metadata/namespace").to_string();
        let name = s(job, "/metadata/name").to_string();
        let uid = s(job, "/metadata/uid").to_string();
        let now = self.store.clock().now_rfc3339();
        self.mutate("batch", "jobs", &ns, &name, |j| {
            // The apiserver's default selector, which `kubectl logs job/NAME` resolves the pod by.
            if j.pointer("/spec/selector").is_none() {
                j["spec"]["selector"] =
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
            }
            j["status"] = json!({"active": 1, "ready": 1, "startTime": now});
        });
        self.create_job_pod(job);
    }

    /// One more pod of `job`.
    fn create_job_pod(&self, job: &Value) {
        let name = s(job, "/metadata/name").to_string();
        let uid = s(job, "/metadata/uid").to_string();
        let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let pod_name = format!("{name}-{}", random_suffix(5));
        let mut pod = self.pod_from_template(
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
        // The Job controller names its pods by generateName, and the name stays on the pod.
        pod["metadata"]["generateName"] = json!(format!("{name}-"));
        let _ = self.create("", "pods", pod);
    }

    /// The pods of `job`.
    fn job_pods(&self, job: &Value) -> Vec<Value> {
        let ns = s(job, "/metadata/namespace");
        self.store
            .all_of("", "pods")
            .into_iter()
            .filter(|p| s(p, "/metadata/namespace") == ns && owned_by(p, s(job, "/metadata/uid")))
            .collect()
    }

    /// Like the Job controller: a Job's pod that succeeded completes its Job; one that failed is replaced, or
    /// fails the Job once `backoffLimit` is used up.
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
        let pods = self.job_pods(&job);
        let failed = pods
            .iter()
            .filter(|p| s(p, "/status/phase") == "Failed")
            .count();
        let active = pods
            .iter()
            .filter(|p| !PodPhase::is_terminal(s(p, "/status/phase")))
            .count();
        let backoff_limit = job
            .pointer("/spec/backoffLimit")
            .and_then(Value::as_u64)
            .unwrap_or(6) as usize;
        if !succeeded && failed <= backoff_limit {
            if active == 0 {
                self.mutate("batch", "jobs", ns, s(&job, "/metadata/name"), |j| {
                    j["status"]["failed"] = json!(failed);
                    j["status"]["active"] = json!(1);
                });
                self.create_job_pod(&job);
            }
            return;
        }
        self.mutate("batch", "jobs", ns, s(&job, "/metadata/name"), |j| {
                let start = j.pointer("/status/startTime").cloned().unwrap_or(json!(now));
                j["status"] = if succeeded {
                    json!({"startTime": start, "completionTime": now, "active": 0, "ready": 0, "succeeded": 1,
                           "failed": failed,
                           "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]})
                } else {
                    json!({"startTime": start, "active": 0, "ready": 0, "failed": failed,
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

impl Controllers {
    /// On the simulated clock: fail a Job past its `activeDeadlineSeconds` (its pods are deleted, which stops
    /// their processes), and delete a finished Job past its `ttlSecondsAfterFinished`.
    pub(super) fn job_deadlines(&self, job: &Value, now: DateTime<Utc>) {
        let ns = s(job, "/metadata/namespace");
        let name = s(job, "/metadata/name");
        let at = |ptr: &str| s(job, ptr).parse::<DateTime<Utc>>().ok();
        let seconds = |ptr: &str| {
            job.pointer(ptr)
                .and_then(Value::as_i64)
                .map(Duration::seconds)
        };
        match job_succeeded(job) {
            None => {
                if let (Some(start), Some(deadline)) = (
                    at("/status/startTime"),
                    seconds("/spec/activeDeadlineSeconds"),
                ) && now >= start + deadline
                {
                    let stamp = now.to_rfc3339_opts(SecondsFormat::Secs, true);
                    self.mutate("batch", "jobs", ns, name, |j| {
                        j["status"]["active"] = json!(0);
                        j["status"]["ready"] = json!(0);
                        j["status"]["conditions"] = json!([{"type": "Failed", "status": "True",
                            "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline",
                            "lastProbeTime": stamp, "lastTransitionTime": stamp}]);
                    });
                    for pod in self.job_pods(job) {
                        if !PodPhase::is_terminal(s(&pod, "/status/phase")) {
                            self.delete("", "pods", ns, s(&pod, "/metadata/name"));
                        }
                    }
                }
            }
            Some(_) => {
                let finished = job
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|c| {
                        c.iter()
                            .filter(|c| matches!(s(c, "/type"), "Complete" | "Failed"))
                            .find_map(|c| s(c, "/lastTransitionTime").parse::<DateTime<Utc>>().ok())
                    })
                    .or_else(|| at("/status/completionTime"));
                if let (Some(finished), Some(ttl)) =
                    (finished, seconds("/spec/ttlSecondsAfterFinished"))
                    && now >= finished + ttl
                {
                    self.delete("batch", "jobs", ns, name);
                }
            }
        }
    }
}
