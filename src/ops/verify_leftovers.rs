//! A crashed `backup-ns verify` run's leftovers: the claim and pod it labelled `backup-ns.sh/verify-run` but did not
//! get to delete. One definition ([`is_leftover`]) serves both sweepers: the next verify run in that namespace
//! (reckoning on the API server's clock, from its own new claim's timestamp) and `backup-ns controller` (on its
//! clock, across its scope, honouring `--dry-run`).

use crate::cluster::Cluster;
use crate::cluster::resources::created;
use crate::labels;
use crate::vocab::scope::Scope;
use chrono::{DateTime, Utc};
use kube::core::ObjectMeta;
use serde::Serialize;
use std::time::Duration;

/// The name every object of a verify run starts with (`backup-ns-verify-<run>`).
pub const NAME_PREFIX: &str = "backup-ns-verify-";

/// The timeout a run recorded on its object ([`labels::ANNOTATION_VERIFY_TIMEOUT`]).
fn recorded_timeout(meta: &ObjectMeta) -> Option<Duration> {
    let text = meta
        .annotations
        .as_ref()?
        .get(labels::ANNOTATION_VERIFY_TIMEOUT)?;
    humantime::parse_duration(text).ok()
}

/// True when `meta` is a leftover of a verify run other than `own`: it carries the run label and the run's name
/// prefix, and at `now` it is older than its run's timeout (the recorded one, else `fallback`), so the pod's
/// deadline has passed and the run that made it is over.
pub fn is_leftover(
    meta: &ObjectMeta,
    own: Option<&str>,
    now: DateTime<Utc>,
    fallback: Duration,
) -> bool {
    let run = meta.labels.as_ref().and_then(|l| l.get(labels::VERIFY_RUN));
    let named = meta
        .name
        .as_deref()
        .is_some_and(|n| n.starts_with(NAME_PREFIX));
    let timeout = recorded_timeout(meta).unwrap_or(fallback);
    let old = created(meta).is_some_and(|t| {
        now.signed_duration_since(t)
            .to_std()
            .is_ok_and(|age| age > timeout)
    });
    run.is_some_and(|r| Some(r.as_str()) != own) && named && old
}

/// One removed (or, on a dry run, removable) leftover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    /// `pod` or `claim`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub run: String,
}

impl Leftover {
    fn of(kind: &'static str, meta: &ObjectMeta) -> Leftover {
        Leftover {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            run: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::VERIFY_RUN))
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// What a sweep removed, and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LeftoverReport {
    pub dry_run: bool,
    pub removed: Vec<Leftover>,
    /// Objects (or the listing) that failed, each with why.
    pub problems: Vec<String>,
}

impl LeftoverReport {
    /// One line per removed object and per problem.
    pub fn render_text(&self) -> String {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let mut s = String::new();
        for l in &self.removed {
            s.push_str(&format!(
                "verify leftovers: {verb} {} {}/{} of crashed verify run {}\n",
                l.kind, l.namespace, l.name, l.run
            ));
        }
        for p in &self.problems {
            s.push_str(&format!("verify leftovers: {p}\n"));
        }
        s
    }
}

/// Removes every leftover of `scope` other than run `own`'s, judged at `now` (`fallback`: the timeout of objects
/// that recorded none). Pods go first, so that no claim is deleted while a pod still mounts it.
pub async fn remove(
    cluster: &Cluster,
    scope: &Scope,
    own: Option<&str>,
    now: DateTime<Utc>,
    fallback: Duration,
    dry_run: bool,
) -> LeftoverReport {
    let mut report = LeftoverReport {
        dry_run,
        ..LeftoverReport::default()
    };
    let (pods, claims) = match cluster.labelled_objects_in(scope, labels::VERIFY_RUN).await {
        Ok(listed) => listed,
        Err(e) => {
            report
                .problems
                .push(format!("cannot list the labelled pods and claims: {e}"));
            return report;
        }
    };
    let stale = |meta: &&ObjectMeta| is_leftover(meta, own, now, fallback);
    let pods = pods.iter().map(|p| ("pod", &p.metadata));
    let claims = claims.iter().map(|c| ("claim", &c.metadata));
    for (kind, meta) in pods.chain(claims).filter(|(_, m)| stale(m)) {
        let leftover = Leftover::of(kind, meta);
        let removed = match (dry_run, kind) {
            (true, _) => Ok(()),
            (false, "pod") => {
                cluster
                    .delete_pod_now(&leftover.namespace, &leftover.name)
                    .await
            }
            (false, _) => {
                cluster
                    .delete_pvc(&leftover.namespace, &leftover.name)
                    .await
            }
        };
        match removed {
            Ok(()) => report.removed.push(leftover),
            Err(e) => report.problems.push(format!(
                "leftover {kind} {}/{}: {e}",
                leftover.namespace, leftover.name
            )),
        }
    }
    report
}

/// What the controller removes at `now`: objects that recorded no timeout are judged by the default verify
/// timeout.
pub async fn sweep(
    cluster: &Cluster,
    scope: &Scope,
    now: DateTime<Utc>,
    dry_run: bool,
) -> LeftoverReport {
    let fallback = crate::plan::model::Verify::default().timeout;
    remove(cluster, scope, None, now, fallback, dry_run).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(name: &str, run: Option<&str>, created: &str, timeout: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            labels: run.map(|r| BTreeMap::from([(labels::VERIFY_RUN.to_string(), r.to_string())])),
            annotations: timeout.map(|t| {
                BTreeMap::from([(labels::ANNOTATION_VERIFY_TIMEOUT.to_string(), t.to_string())])
            }),
            creation_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                created.parse().unwrap(),
            )),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_another_runs_labelled_objects_past_their_runs_timeout_are_leftovers() {
        let now: DateTime<Utc> = "2025-03-01T12:00:00Z".parse().unwrap();
        let half_hour = Duration::from_secs(30 * 60);
        let old = "2025-03-01T11:00:00Z";
        let leftover = |m: &ObjectMeta, own| is_leftover(m, own, now, half_hour);
        assert!(leftover(
            &meta("backup-ns-verify-a", Some("a"), old, None),
            None
        ));
        assert!(leftover(
            &meta("backup-ns-verify-a", Some("a"), old, None),
            Some("b")
        ));
        // The run's own objects, unlabelled or foreign-named objects are never leftovers.
        assert!(!leftover(
            &meta("backup-ns-verify-a", Some("a"), old, None),
            Some("a")
        ));
        assert!(!leftover(
            &meta("backup-ns-verify-a", None, old, None),
            None
        ));
        assert!(!leftover(&meta("pgdata", Some("a"), old, None), None));
        // Younger than the timeout: the run may still be going; the recorded timeout wins over the fallback.
        assert!(!leftover(
            &meta(
                "backup-ns-verify-a",
                Some("a"),
                "2025-03-01T11:45:00Z",
                None
            ),
            None
        ));
        assert!(!leftover(
            &meta("backup-ns-verify-a", Some("a"), old, Some("2h")),
            None
        ));
        assert!(leftover(
            &meta(
                "backup-ns-verify-a",
                Some("a"),
                "2025-03-01T11:55:00Z",
                Some("1m")
            ),
            None
        ));
        // A creation time in the future (clock skew) is not old.
        assert!(!leftover(
            &meta(
                "backup-ns-verify-a",
                Some("a"),
                "2025-03-02T00:00:00Z",
                None
            ),
            None
        ));
    }
}
