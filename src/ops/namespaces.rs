//! The controller's outcome per namespace: which of its steps (label sync, retention) succeeded in each
//! namespace, which failed, and why. Pure: built from the pass's reports, so one namespace's failure is reported
//! as that namespace's and never blurs the others.

use crate::retention::apply::{ApplyReport, Status};
use crate::retention::sync::SyncReport;
use serde::Serialize;
use std::collections::BTreeMap;

/// The controller's steps, in the order they run.
pub const LABEL_SYNC: &str = "label-sync";
pub const RETENTION: &str = "retention";

/// How the controller's pass went in one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NamespaceOutcome {
    pub namespace: String,
    /// Steps with nothing failed in this namespace.
    pub succeeded: Vec<&'static str>,
    /// Steps that failed here, each with its reasons (one per object, or the guard's verdict).
    pub failed: Vec<FailedStep>,
}

/// One step that failed in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedStep {
    pub step: &'static str,
    pub why: Vec<String>,
}

/// The namespace part of `namespace/name`.
fn namespace_of(qualified: &str) -> &str {
    qualified.split_once('/').map_or("", |(ns, _)| ns)
}

/// One [`NamespaceOutcome`] per namespace the pass looked at, sorted by namespace.
pub fn per_namespace(sync: &SyncReport, retention: &ApplyReport) -> Vec<NamespaceOutcome> {
    let mut why: BTreeMap<String, [Vec<String>; 2]> = BTreeMap::new();
    for change in &sync.changes {
        let entry = why
            .entry(namespace_of(change.snapshot()).to_string())
            .or_default();
        if let Some(error) = &change.error {
            entry[0].push(format!("content {}: {error}", change.content()));
        }
    }
    for guard in &retention.plan.guards {
        let entry = why.entry(guard.namespace.clone()).or_default();
        if guard.tripped && !guard.forced {
            entry[1].push(format!("mass-deletion guard: {}", guard.reason));
        }
    }
    for outcome in &retention.outcomes {
        let entry = why.entry(outcome.namespace.clone()).or_default();
        if let Status::Failed { error } = &outcome.status {
            entry[1].push(format!(
                "{} [{}]: {error}",
                outcome.name,
                outcome.actions_text()
            ));
        }
    }
    why.into_iter()
        .filter(|(ns, _)| !ns.is_empty())
        .map(|(namespace, [sync_why, retention_why])| {
            let mut out = NamespaceOutcome {
                namespace,
                ..NamespaceOutcome::default()
            };
            for (step, reasons) in [(LABEL_SYNC, sync_why), (RETENTION, retention_why)] {
                if reasons.is_empty() {
                    out.succeeded.push(step);
                } else {
                    out.failed.push(FailedStep { step, why: reasons });
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::apply::{Operation, Outcome};
    use crate::retention::sync::SyncChange;

    #[test]
    fn each_namespace_lists_its_own_failed_steps_with_reasons() {
        let sync = SyncReport {
            failed: 1,
            changes: vec![
                {
                    let mut failed = SyncChange::new("snapcontent-a", "a/data-1", [], []);
                    failed.error = Some("HTTP 500".into());
                    failed
                },
                SyncChange::new("snapcontent-b", "b/data-1", [], []),
            ],
            ..SyncReport::default()
        };
        let mut retention = empty_apply_report();
        retention.outcomes.push(Outcome {
            namespace: "c".into(),
            name: "data-old".into(),
            pvc: "data".into(),
            group: None,
            operation: Operation::Delete,
            actions: vec![crate::retention::policy::Action::Delete],
            status: Status::Failed {
                error: "HTTP 503".into(),
            },
        });
        let outcomes = per_namespace(&sync, &retention);
        assert_eq!(outcomes.len(), 3);
        assert_eq!(outcomes[0].namespace, "a");
        assert_eq!(outcomes[0].succeeded, vec![RETENTION]);
        assert_eq!(outcomes[0].failed[0].step, LABEL_SYNC);
        assert!(outcomes[0].failed[0].why[0].contains("HTTP 500"));
        assert_eq!(outcomes[1].namespace, "b");
        assert_eq!(outcomes[1].succeeded, vec![LABEL_SYNC, RETENTION]);
        assert!(outcomes[1].failed.is_empty());
        assert_eq!(outcomes[2].succeeded, vec![LABEL_SYNC]);
        assert_eq!(
            outcomes[2].failed,
            vec![FailedStep {
                step: RETENTION,
                why: vec!["data-old [delete]: HTTP 503".into()]
            }]
        );
    }

    fn empty_apply_report() -> ApplyReport {
        ApplyReport {
            dry_run: false,
            counts: Default::default(),
            unreadable: vec![],
            outcomes: vec![],
            plan: Default::default(),
        }
    }
}
