//! Jobs for `backup-ns adhoc`: a Job from a CronJob's template with environment overrides (what
//! `kubectl create job --from=cronjob/backup` does, plus env), the CronJob's still-running Jobs, waiting for a
//! Job to finish (watch), and following its pod's logs.

use super::client::Cluster;
use super::error::{ClusterError, ListRef, ObjectRef, Result};
use super::snapshots::{DEFAULT_PAGE_SIZE, get_opt, list_paged};
use futures::AsyncBufReadExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, LogParams};
use kube::core::ObjectMeta;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The label the Job controller puts on a Job's pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

fn cronjob_ref(ns: &str, name: &str) -> ObjectRef {
    ObjectRef::new("CronJob", "cronjobs.batch", Some(ns), name)
}

fn job_ref(ns: &str, name: &str) -> ObjectRef {
    ObjectRef::new("Job", "jobs.batch", Some(ns), name)
}

pub(super) fn pod_ref(ns: &str, name: &str) -> ObjectRef {
    ObjectRef::new("Pod", "pods", Some(ns), name)
}

/// How a Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Succeeded,
    Failed { reason: String, message: String },
}

/// Builds the Job a manual run of `cronjob` creates: its job template, an owner reference to the CronJob (so
/// `active_jobs_of` and the CronJob's history see it), the `cronjob.kubernetes.io/instantiate: manual`
/// annotation, and `env` set on every container (replacing variables of the same name).
pub fn job_from_cronjob(cronjob: &CronJob, job_name: &str, env: &BTreeMap<String, String>) -> Job {
    let template = &cronjob.spec.job_template;
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut annotations = template_meta.annotations.unwrap_or_default();
    annotations.insert(
        "cronjob.kubernetes.io/instantiate".to_string(),
        "manual".to_string(),
    );
    let owner = OwnerReference {
        api_version: "batch/v1".into(),
        kind: "CronJob".into(),
        name: cronjob.metadata.name.clone().unwrap_or_default(),
        uid: cronjob.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let mut spec = template.spec.clone().unwrap_or_default();
    if let Some(pod_spec) = spec.template.spec.as_mut() {
        for container in pod_spec
            .containers
            .iter_mut()
            .chain(pod_spec.init_containers.iter_mut().flatten())
        {
            let vars = container.env.get_or_insert_with(Vec::new);
            for (name, value) in env {
                vars.retain(|v| &v.name != name);
                vars.push(EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    value_from: None,
                });
            }
        }
    }
    Job {
        metadata: ObjectMeta {
            name: Some(job_name.to_string()),
            namespace: cronjob.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: Some(annotations),
            owner_references: cronjob.metadata.uid.is_some().then(|| vec![owner]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Whether a Job has finished, and how (`Complete` / `Failed` conditions).
pub fn job_outcome(job: &Job) -> Option<JobOutcome> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    for c in conditions.iter().filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" => return Some(JobOutcome::Succeeded),
            "Failed" => {
                return Some(JobOutcome::Failed {
                    reason: c.reason.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                });
            }
            _ => {}
        }
    }
    None
}

fn owned_by(job: &Job, cronjob: &str) -> bool {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "CronJob" && o.name == cronjob)
}

impl Cluster {
    pub async fn get_cronjob(&self, ns: &str, name: &str) -> Result<Option<CronJob>> {
        get_opt(
            &Api::namespaced(self.client().clone(), ns),
            cronjob_ref(ns, name),
        )
        .await
    }

    pub async fn create_job(&self, job: &Job) -> Result<Job> {
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let object = job_ref(&ns, job.metadata.name.as_deref().unwrap_or_default());
        self.create_owned(
            &Api::namespaced(self.client().clone(), &ns),
            job.clone(),
            object,
        )
        .await
    }

    /// The CronJob's Jobs that have not finished yet (adhoc refuses while one runs).
    pub async fn active_jobs_of(&self, ns: &str, cronjob: &str) -> Result<Vec<Job>> {
        let list = ListRef {
            resource: "jobs.batch",
            namespace: Some(ns.to_string()),
            selector: None,
        };
        let api: Api<Job> = Api::namespaced(self.client().clone(), ns);
        Ok(list_paged(&api, list, None, DEFAULT_PAGE_SIZE)
            .await?
            .into_iter()
            .filter(|j| owned_by(j, cronjob) && job_outcome(j).is_none())
            .collect())
    }

    /// Waits through a watch until the Job completes or fails.
    pub async fn wait_job(&self, ns: &str, name: &str, timeout: Duration) -> Result<JobOutcome> {
        let api: Api<Job> = Api::namespaced(self.client().clone(), ns);
        wait_until_ended(api, job_ref(ns, name), timeout, job_outcome).await
    }

    /// The Job's pods, oldest first.
    pub async fn job_pods(&self, ns: &str, job: &str) -> Result<Vec<Pod>> {
        let list = ListRef {
            resource: "pods",
            namespace: Some(ns.to_string()),
            selector: Some(format!("{JOB_NAME_LABEL}={job}")),
        };
        let api: Api<Pod> = Api::namespaced(self.client().clone(), ns);
        let mut pods = list_paged(&api, list, None, DEFAULT_PAGE_SIZE).await?;
        pods.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        Ok(pods)
    }

    /// Streams the logs of the Job's first pod into `out` until its container ends, waiting for the pod to appear
    /// first. Returns quietly at `deadline` when no pod appeared: waiting for the Job then reports the timeout.
    pub async fn follow_job_logs(
        &self,
        ns: &str,
        job: &str,
        container: Option<&str>,
        deadline: std::time::Instant,
        out: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<()> {
        let pod = loop {
            if let Some(pod) = self
                .job_pods(ns, job)
                .await?
                .into_iter()
                .find_map(|p| p.metadata.name)
            {
                break pod;
            }
            if std::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        self.follow_logs(ns, &pod, container, left, out).await
    }

    /// Streams a pod's logs into `out` until the container ends (`--follow`). Waits (watch) for the pod to leave
    /// `Pending` first, as logs cannot be read before the container starts.
    pub async fn follow_logs(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        start_timeout: Duration,
        out: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<()> {
        let object = pod_ref(ns, pod);
        let api: Api<Pod> = Api::namespaced(self.client().clone(), ns);
        let started = |p: Option<&Pod>| {
            p.is_none_or(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .unwrap_or("Pending")
                    != "Pending"
            })
        };
        match tokio::time::timeout(
            start_timeout,
            kube::runtime::wait::await_condition(api.clone(), pod, started),
        )
        .await
        {
            Err(_) => {
                return Err(ClusterError::NotReady {
                    object,
                    after: start_timeout,
                });
            }
            Ok(Err(err)) => {
                return Err(ClusterError::Watch {
                    object,
                    message: err.to_string(),
                });
            }
            Ok(Ok(None)) => return Err(ClusterError::Missing { object }),
            Ok(Ok(Some(_))) => {}
        }
        let params = LogParams {
            follow: true,
            container: container.map(str::to_string),
            ..Default::default()
        };
        let logs_error = |message: String| ClusterError::Logs {
            object: object.clone(),
            message,
        };
        let stream = api
            .log_stream(pod, &params)
            .await
            .map_err(|e| logs_error(e.to_string()))?;
        match copy_log(stream, out).await {
            Ok(()) => Ok(()),
            // Whoever read our output (`| head`) has gone; stop following, the caller still waits for the Job.
            Err(CopyError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(CopyError::Read(e)) => Err(logs_error(e.to_string())),
            Err(CopyError::Write(e)) => Err(logs_error(format!("writing the logs failed: {e}"))),
        }
    }
}

/// Why copying a log stream stopped.
#[derive(Debug)]
enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copies a log stream to `out` as it arrives, byte for byte: a container's output need not be UTF-8, and a line
/// may arrive in pieces. Each chunk is flushed so the output shows while the container runs; an unterminated
/// last line gets a newline, so what is printed next starts a line of its own.
async fn copy_log(
    mut stream: impl futures::AsyncBufRead + Unpin,
    out: &mut (dyn AsyncWrite + Send + Unpin),
) -> std::result::Result<(), CopyError> {
    let mut at_line_start = true;
    loop {
        let chunk = stream.fill_buf().await.map_err(CopyError::Read)?;
        let Some(&last) = chunk.last() else {
            break;
        };
        out.write_all(chunk).await.map_err(CopyError::Write)?;
        out.flush().await.map_err(CopyError::Write)?;
        at_line_start = last == b'\n';
        let n = chunk.len();
        stream.consume_unpin(n);
    }
    if !at_line_start {
        out.write_all(b"\n").await.map_err(CopyError::Write)?;
    }
    out.flush().await.map_err(CopyError::Write)
}

/// Waits through a watch until `ended` reads an outcome from the object (a finished Job, an ended pod); the
/// timeout is [`ClusterError::JobTimeout`], a deleted object [`ClusterError::Vanished`].
pub(crate) async fn wait_until_ended<K, T>(
    api: Api<K>,
    object: ObjectRef,
    timeout: Duration,
    ended: fn(&K) -> Option<T>,
) -> Result<T>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let done = move |o: Option<&K>| o.is_none_or(|o| ended(o).is_some());
    let wait = kube::runtime::wait::await_condition(api, &object.name, done);
    match tokio::time::timeout(timeout, wait).await {
        Err(_) => Err(ClusterError::JobTimeout {
            object,
            after: timeout,
        }),
        Ok(Err(err)) => Err(ClusterError::Watch {
            object,
            message: err.to_string(),
        }),
        Ok(Ok(None)) => Err(ClusterError::Vanished { object }),
        Ok(Ok(Some(o))) => ended(&o).ok_or(ClusterError::Vanished { object }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use serde_json::json;

    fn cronjob() -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "backup", "namespace": "shop", "uid": "u-1"},
            "spec": {
                "schedule": "0 2 * * *",
                "jobTemplate": {
                    "metadata": {"labels": {"app": "backup"}},
                    "spec": {"template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "backup", "image": "backup-ns",
                            "env": [{"name": "BAK_TYPE", "value": "cronjob"}, {"name": "KEEP", "value": "1"}]}]
                    }}}
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_job_from_a_cronjob_overrides_env_and_points_back_at_its_cronjob() {
        let env: BTreeMap<String, String> = [
            ("BAK_TYPE".to_string(), "adhoc".to_string()),
            ("BAK_FLOCK".to_string(), "false".to_string()),
        ]
        .into();
        let job = job_from_cronjob(&cronjob(), "backup-adhoc-x1", &env);
        let value = serde_json::to_value(&job).unwrap();
        assert_eq!(value["metadata"]["name"], "backup-adhoc-x1");
        assert_eq!(value["metadata"]["namespace"], "shop");
        assert_eq!(
            value["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
        assert_eq!(value["metadata"]["ownerReferences"][0]["name"], "backup");
        assert_eq!(value["metadata"]["labels"]["app"], "backup");
        assert_eq!(
            value["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([
                {"name": "KEEP", "value": "1"},
                {"name": "BAK_FLOCK", "value": "false"},
                {"name": "BAK_TYPE", "value": "adhoc"},
            ])
        );
        assert!(owned_by(&job, "backup"));
        assert!(!owned_by(&job, "other"));
    }

    #[tokio::test]
    async fn logs_are_copied_byte_for_byte_and_end_on_a_line_of_their_own() {
        let cases: [(&[&[u8]], &[u8]); 4] = [
            (&[b"one\ntw", b"o\n"], b"one\ntwo\n"),
            (
                &[b"caf\xe9 latin-1\n", b"no newline"],
                b"caf\xe9 latin-1\nno newline\n",
            ),
            (&[], b""),
            (&[b"\n"], b"\n"),
        ];
        for (chunks, want) in cases {
            let stream = futures::stream::iter(
                chunks
                    .iter()
                    .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                    .collect::<Vec<_>>(),
            )
            .into_async_read();
            let mut out = Vec::new();
            copy_log(stream, &mut out).await.unwrap();
            assert_eq!(out, want, "{chunks:?}");
        }
    }

    #[test]
    fn job_outcomes_come_from_true_conditions_only() {
        let job = |conds: serde_json::Value| -> Job {
            serde_json::from_value(
                json!({"metadata": {"name": "j"}, "status": {"conditions": conds}}),
            )
            .unwrap()
        };
        assert_eq!(job_outcome(&job(json!([]))), None);
        assert_eq!(
            job_outcome(&job(json!([{"type": "Complete", "status": "True"}]))),
            Some(JobOutcome::Succeeded)
        );
        assert_eq!(
            job_outcome(&job(
                json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit"}])
            )),
            Some(JobOutcome::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "Job has reached the specified backoff limit".into()
            })
        );
        assert_eq!(
            job_outcome(&job(json!([{"type": "Failed", "status": "False"}]))),
            None
        );
    }
}
