//! CronJobs, like the CronJob controller, on the simulated clock: on each tick, the most recent scheduled time
//! (in the CronJob's `timeZone`) between its last schedule (or its creation) and now starts a Job named
//! `NAME-<minutes since the epoch>`, unless the CronJob is suspended, the time is older than
//! `startingDeadlineSeconds`, or `concurrencyPolicy: Forbid` finds a Job still running (`Replace` deletes the
//! running ones first). Missed times in between are not caught up, as the controller does. The status lists the
//! active Jobs and the last schedule and success times; finished Jobs beyond `successfulJobsHistoryLimit`
//! (default 3) and `failedJobsHistoryLimit` (default 1) are deleted, oldest first, their pods with them.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::jobs::job_succeeded;
use super::{Controllers, owned_by, owner_ref, s};
use crate::cron::Schedule;

/// Scheduled times walked per CronJob and tick; a larger jump of the clock starts from a week before now.
const MAX_WALK: usize = 10_000;

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn time(v: &Value, ptr: &str) -> Option<DateTime<Utc>> {
    s(v, ptr).parse().ok()
}

fn job_ref(job: &Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
           "namespace": job["metadata"]["namespace"], "uid": job["metadata"]["uid"],
           "resourceVersion": job["metadata"]["resourceVersion"]})
}

impl Controllers {
    /// Bring one CronJob up to the simulated `now`.
    pub(super) fn reconcile_cronjob(&self, cj: &Value, now: DateTime<Utc>) {
        if cj.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let ns = s(cj, "/metadata/namespace").to_string();
        let name = s(cj, "/metadata/name").to_string();
        let mut jobs: Vec<Value> = self
            .store
            .all_of("batch", "jobs")
            .into_iter()
            .filter(|j| s(j, "/metadata/namespace") == ns && owned_by(j, s(cj, "/metadata/uid")))
            .collect();
        self.prune_history(cj, &mut jobs);
        let mut active: Vec<Value> = jobs
            .iter()
            .filter(|j| job_succeeded(j).is_none())
            .cloned()
            .collect();
        let last_success = jobs
            .iter()
            .filter(|j| job_succeeded(j) == Some(true))
            .filter_map(|j| time(j, "/status/completionTime"))
            .max();
        let mut last_schedule = time(cj, "/status/lastScheduleTime");
        if let Some(due) = self.due(cj, now, last_schedule) {
            let policy = s(cj, "/spec/concurrencyPolicy");
            if policy == "Forbid" && !active.is_empty() {
                tracing::debug!(%ns, cronjob = %name, "schedule skipped: a job is still running (Forbid)");
            } else {
                if policy == "Replace" {
                    for job in active.drain(..) {
                        self.delete("batch", "jobs", &ns, s(&job, "/metadata/name"));
                    }
                }
                if let Some(job) = self.start_job(cj, due) {
                    active.push(job);
                }
                last_schedule = Some(due);
            }
        }
        let mut status = json!({"active": active.iter().map(job_ref).collect::<Vec<_>>()});
        if active.is_empty() {
            status.as_object_mut().map(|o| o.remove("active"));
        }
        if let Some(t) = last_schedule {
            status["lastScheduleTime"] = json!(stamp(t));
        }
        if let Some(t) = last_success {
            status["lastSuccessfulTime"] = json!(stamp(t));
        }
        // Only a change is written: the controller ticks often.
        if cj.get("status").unwrap_or(&json!({})) != &status {
            self.mutate("batch", "cronjobs", &ns, &name, |c| c["status"] = status);
        }
    }

    /// The scheduled time to run now, if any: the latest one after the last schedule (or the creation) that is
    /// not past `startingDeadlineSeconds`; None when suspended or the schedule cannot be read.
    fn due(
        &self,
        cj: &Value,
        now: DateTime<Utc>,
        last_schedule: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        if cj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        let name = s(cj, "/metadata/name");
        let schedule: Schedule = match s(cj, "/spec/schedule").parse() {
            Ok(schedule) => schedule,
            Err(error) => {
                tracing::warn!(cronjob = %name, %error, "cronjob not scheduled");
                return None;
            }
        };
        let zone = Some(s(cj, "/spec/timeZone")).filter(|z| !z.is_empty());
        let tz: Tz = match zone.map_or(Ok(Tz::UTC), str::parse) {
            Ok(tz) => tz,
            Err(error) => {
                tracing::warn!(cronjob = %name, %error, "cronjob not scheduled: unknown timeZone");
                return None;
            }
        };
        let mut from = last_schedule.or_else(|| time(cj, "/metadata/creationTimestamp"))?;
        let mut latest = None;
        let mut walked = 0;
        while let Some(next) = schedule.next_after(from, tz).filter(|t| *t <= now) {
            latest = Some(next);
            from = next;
            walked += 1;
            if walked == MAX_WALK {
                from = from.max(now - chrono::Duration::days(7));
                walked = 0;
            }
        }
        let latest = latest?;
        if let Some(deadline) = cj
            .pointer("/spec/startingDeadlineSeconds")
            .and_then(Value::as_i64)
            && now > latest + chrono::Duration::seconds(deadline)
        {
            tracing::debug!(cronjob = %name, "missed the starting deadline");
            return None;
        }
        Some(latest)
    }

    /// The Job of the run scheduled at `at` (its existing Job if that run was started already).
    fn start_job(&self, cj: &Value, at: DateTime<Utc>) -> Option<Value> {
        let ns = s(cj, "/metadata/namespace");
        let name = format!("{}-{}", s(cj, "/metadata/name"), at.timestamp() / 60);
        if let Some(existing) = self.store.find("batch", "jobs", ns, &name) {
            return Some(existing);
        }
        let template = cj
            .pointer("/spec/jobTemplate")
            .cloned()
            .unwrap_or(json!({}));
        let mut annotations = template
            .pointer("/metadata/annotations")
            .cloned()
            .unwrap_or(json!({}));
        annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] = json!(stamp(at));
        let job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns,
                         "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                         "annotations": annotations, "ownerReferences": [owner_ref(cj)]},
            "spec": template.get("spec").cloned().unwrap_or(json!({}))});
        tracing::info!(%ns, job = %name, "cronjob starts a job");
        self.create("batch", "jobs", job)
            .inspect_err(|error| tracing::warn!(%ns, job = %name, %error, "cronjob could not create its job"))
            .ok()
    }

    /// Delete the oldest finished Jobs beyond the history limits.
    fn prune_history(&self, cj: &Value, jobs: &mut Vec<Value>) {
        let ns = s(cj, "/metadata/namespace").to_string();
        for (succeeded, limit_field, default) in [
            (true, "/spec/successfulJobsHistoryLimit", 3),
            (false, "/spec/failedJobsHistoryLimit", 1),
        ] {
            let limit = cj
                .pointer(limit_field)
                .and_then(Value::as_u64)
                .unwrap_or(default) as usize;
            let mut finished: Vec<&Value> = jobs
                .iter()
                .filter(|j| job_succeeded(j) == Some(succeeded))
                .collect();
            if finished.len() <= limit {
                continue;
            }
            finished.sort_by_key(|j| {
                (
                    time(j, "/status/startTime"),
                    s(j, "/metadata/creationTimestamp").to_string(),
                )
            });
            let doomed: Vec<String> = finished[..finished.len() - limit]
                .iter()
                .map(|j| s(j, "/metadata/name").to_string())
                .collect();
            for job in &doomed {
                self.delete("batch", "jobs", &ns, job);
            }
            jobs.retain(|j| !doomed.iter().any(|d| d == s(j, "/metadata/name")));
        }
    }
}
