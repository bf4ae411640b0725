//! Pure step building: plan hooks → steps, snapshot names, labels and annotations.
//!
//! Nothing here does I/O; the runner feeds it what the ports returned.

use crate::clock::Clock;
use crate::hooks;
use crate::labels::{self, PriorSnapshot};
use crate::plan::{self, HookPosition, Plan};
use crate::vocab::ports::ExistingSnapshot;
use crate::vocab::workload::WorkloadRef;
use rand::Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Whether a hook runs before or after the snapshots (defined with the plan's hook lists).
pub use crate::plan::Phase;

/// A plan hook, ready for the runner.
#[derive(Debug, Clone)]
pub struct HookStep {
    /// `pre[0]/postgres`, or `pre[0]/postgres/app-db` for a hook named `app-db`: how the hook is named in
    /// logs, reports and errors.
    pub name: String,
    pub phase: Phase,
    pub timeout: Duration,
    pub on_error: plan::OnError,
    pub when: plan::When,
    pub action: StepAction,
}

/// What a hook step runs.
#[derive(Debug, Clone)]
pub enum StepAction {
    /// A container hook (dump or command) in `workload`/`container`, run as the plan gives it.
    Container {
        workload: WorkloadRef,
        container: String,
        action: Box<plan::HookAction>,
    },
    /// A rhai script; it resolves its own exec targets.
    Rhai {
        script: PathBuf,
        /// The script's text, read once when the plan was loaded.
        source: String,
        args: BTreeMap<String, serde_json::Value>,
        /// The hook's default `workload`/`container`, when both are set: checked in preflight.
        target: Option<(WorkloadRef, String)>,
    },
}

impl HookStep {
    /// A database hook with `mode: hot`: its session is held across the snapshots instead of run before them.
    pub fn is_hot(&self) -> bool {
        matches!(&self.action, StepAction::Container { action, .. } if action.is_hot())
    }

    /// The container this hook runs in, for preflight resolution (`None` for rhai hooks).
    pub fn container(&self) -> Option<(&WorkloadRef, &str)> {
        match &self.action {
            StepAction::Container {
                workload,
                container,
                ..
            } => Some((workload, container)),
            StepAction::Rhai { .. } => None,
        }
    }
}

/// The step name of a hook: its position and type (`pre[0]/postgres`), then its name when it has one
/// (`pre[0]/postgres/app-db`), so unnamed hooks keep the names they always had.
pub fn step_name(hook: &plan::Hook, position: HookPosition) -> String {
    let kind = hook.action.kind().as_str();
    match &hook.name {
        Some(name) => format!("{position}/{kind}/{name}"),
        None => format!("{position}/{kind}"),
    }
}

/// Turns one plan hook into a step.
pub fn hook_step(hook: &plan::Hook, position: HookPosition) -> HookStep {
    let name = step_name(hook, position);
    let container_hook = |workload: &WorkloadRef, container: &str| StepAction::Container {
        workload: workload.clone(),
        container: container.to_string(),
        action: Box::new(hook.action.clone()),
    };
    let action = match &hook.action {
        plan::HookAction::Postgres(p) => container_hook(&p.dump.workload, &p.dump.container),
        plan::HookAction::Mysql(m) => container_hook(&m.dump.workload, &m.dump.container),
        plan::HookAction::Exec(e) => container_hook(&e.workload, &e.container),
        plan::HookAction::Rhai(r) => {
            let mut args = r.args.clone();
            // The hook's default target is visible to the script like any other argument.
            if let Some(w) = &r.workload {
                args.entry("workload".into())
                    .or_insert_with(|| serde_json::Value::String(w.to_string()));
            }
            if let Some(c) = &r.container {
                args.entry("container".into())
                    .or_insert_with(|| serde_json::Value::String(c.clone()));
            }
            StepAction::Rhai {
                script: r.script.clone(),
                source: r.source.clone(),
                args,
                target: r.workload.clone().zip(r.container.clone()),
            }
        }
    };
    HookStep {
        name,
        phase: position.phase,
        timeout: hook.timeout,
        on_error: hook.on_error,
        when: hook.when(),
        action,
    }
}

/// All hook steps of a plan, pre then post, in plan order.
pub fn hook_steps(plan: &Plan) -> (Vec<HookStep>, Vec<HookStep>) {
    plan.hooks_with_positions()
        .map(|(position, hook)| hook_step(hook, position))
        .partition(|step| step.phase == Phase::Pre)
}

/// The plan's `vars` as the strings the rhai sandbox exposes (non-strings as JSON text).
pub fn string_vars(vars: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, String> {
    vars.iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// The `{timestamp}` of snapshot names: `2006-01-02-150405` in the clock's zone.
pub fn timestamp(clock: &Clock) -> String {
    clock.now_local().format("%Y-%m-%d-%H%M%S").to_string()
}

/// Six random lowercase letters for `{rand}`.
pub fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..6)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// Everything that identifies where a run comes from, for labels.
#[derive(Debug, Clone)]
pub struct RunIdentity {
    /// `backup-ns.sh/pod`: `BACKUP_NS_POD`, else the plan's `snapshot.pod`.
    pub pod: Option<String>,
}

/// The labels of a new snapshot of `pvc`: user labels, then ours (ours win). `existing` may hold the snapshots of
/// every PVC of the namespace; the tier rule picks `pvc`'s own ([`labels::snapshot_pvc`]).
pub fn snapshot_labels(
    plan: &Plan,
    pvc: &str,
    identity: &RunIdentity,
    existing: &[ExistingSnapshot],
    clock: &Clock,
) -> BTreeMap<String, String> {
    let mut out = plan.snapshot.labels.clone();
    out.insert(
        labels::TYPE.into(),
        plan.snapshot.backup_type.as_str().into(),
    );
    out.insert(labels::PLAN.into(), plan.name.clone());
    if let Some(pod) = identity.pod.as_ref().or(plan.snapshot.pod.as_ref()) {
        out.insert(labels::POD.into(), labels::sanitize_label_value(pod));
    }
    let prior: Vec<PriorSnapshot<'_>> = existing
        .iter()
        .map(|s| PriorSnapshot {
            labels: &s.labels,
            source_pvc: s.source_pvc.as_deref(),
            created: s.created,
            ready: s.ready,
        })
        .collect();
    out.extend(labels::creation_labels(
        pvc,
        &plan.retention.policy,
        &prior,
        clock,
    ));
    out
}

/// The annotations of every snapshot of this run.
pub fn snapshot_annotations(
    plan: &Plan,
    hook_reports: &[hooks::HookReport],
    env_config: Option<&str>,
) -> BTreeMap<String, String> {
    let mut out = plan.snapshot.annotations.clone();
    out.insert(
        labels::ANNOTATION_PLAN.into(),
        plan.redacted_json().to_string(),
    );
    out.insert(
        labels::ANNOTATION_HOOKS.into(),
        serde_json::to_string(hook_reports).unwrap_or_else(|_| "[]".into()),
    );
    out.insert(
        labels::ANNOTATION_RETENTION.into(),
        plan.retention.policy.to_annotation(),
    );
    if let Some(env) = env_config {
        out.insert(labels::ANNOTATION_ENV_CONFIG.into(), env.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::retention::RetentionPolicy;
    use chrono::TimeZone;

    fn clock() -> Clock {
        Clock::fixed(
            chrono::Utc.with_ymd_and_hms(2025, 1, 8, 16, 43, 8).unwrap(),
            chrono_tz::Europe::Vienna,
        )
    }

    #[test]
    fn timestamps_use_the_clock_zone_in_the_originals_format() {
        assert_eq!(timestamp(&clock()), "2025-01-08-174308");
    }

    #[test]
    fn random_suffixes_are_six_lowercase_letters() {
        let s = random_suffix();
        assert_eq!(s.len(), 6);
        assert!(s.chars().all(|c| c.is_ascii_lowercase()), "{s}");
    }

    #[test]
    fn first_snapshot_of_the_day_gets_every_tier_label_and_ours_win_over_user_labels() {
        let mut plan = Plan::new("shop", ["data"]);
        plan.snapshot
            .labels
            .insert(labels::PVC.into(), "spoofed".into());
        plan.snapshot.labels.insert("team".into(), "a".into());
        let identity = RunIdentity {
            pod: Some("backup-123".into()),
        };
        let l = snapshot_labels(&plan, "data", &identity, &[], &clock());
        assert_eq!(l[labels::PVC], "data");
        assert_eq!(l["team"], "a");
        assert_eq!(l[labels::TYPE], "adhoc");
        assert_eq!(l[labels::PLAN], "shop");
        assert_eq!(l[labels::POD], "backup-123");
        assert_eq!(l[labels::RETAIN], "daily_weekly_monthly");
        assert_eq!(l[labels::DAILY], "2025-01-08");
        assert_eq!(l[labels::WEEKLY], "2025-w02");
        assert_eq!(l[labels::MONTHLY], "2025-01");
    }

    #[test]
    fn a_second_snapshot_the_same_day_gets_no_daily_label() {
        let plan = Plan::new("shop", ["data"]);
        let identity = RunIdentity { pod: None };
        let first = snapshot_labels(&plan, "data", &identity, &[], &clock());
        let existing = [ExistingSnapshot {
            name: "data-1".into(),
            labels: first,
            source_pvc: Some("data".into()),
            created: Some(clock().now_utc()),
            ready: true,
        }];
        let second = snapshot_labels(&plan, "data", &identity, &existing, &clock());
        assert!(!second.contains_key(labels::DAILY), "{second:?}");
        assert!(!second.contains_key(labels::POD));
    }

    #[test]
    fn days_retention_labels_the_delete_after_date() {
        let mut plan = Plan::new("shop", ["data"]);
        plan.retention = plan::Retention::inline(RetentionPolicy::Days(30));
        let l = snapshot_labels(&plan, "data", &RunIdentity { pod: None }, &[], &clock());
        assert_eq!(l[labels::RETAIN], "days");
        assert_eq!(l[labels::RETAIN_DAYS], "30");
        assert_eq!(l[labels::DELETE_AFTER], "2025-02-07");
    }

    #[test]
    fn annotations_carry_the_redacted_plan_hooks_and_counts() {
        let mut plan = Plan::new("shop", ["data"]);
        plan.vars
            .insert("apiToken".into(), serde_json::json!("s3cr3t"));
        let a = snapshot_annotations(&plan, &[], Some("BAK_NAMESPACE='shop'\n"));
        assert!(!a[labels::ANNOTATION_PLAN].contains("s3cr3t"));
        assert_eq!(a[labels::ANNOTATION_HOOKS], "[]");
        assert_eq!(
            a[labels::ANNOTATION_RETENTION],
            r#"{"daily":7,"monthly":12,"weekly":4}"#
        );
        assert_eq!(a[labels::ANNOTATION_ENV_CONFIG], "BAK_NAMESPACE='shop'\n");
    }
}
