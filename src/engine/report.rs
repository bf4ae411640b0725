//! The run summary: one record per step, the overall outcome and its exit code; rendered as a table (TTY) or one
//! JSON document (`--output json`).

use crate::Exit;
use crate::hooks::HookReport;
use crate::vocab::ports::{GroupSnapshotRequest, SnapshotRequest};
use std::fmt::Write as _;
use std::time::Duration;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    Ok,
    /// Failed, but `onError: continue` let the run go on.
    Warning,
    Failed,
    /// Not run because an earlier step failed (or `when: success` after a failure).
    Skipped,
    /// Stopped by SIGTERM/SIGINT.
    Cancelled,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Ok => "ok",
            StepOutcome::Warning => "warning",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
            StepOutcome::Cancelled => "cancelled",
        }
    }
}

/// One step of the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepRecord {
    /// `lock`, `preflight`, `pre[0]/postgres`, `snapshot`, `wait-ready`, `post[0]/exec`, `retention`, `unlock`.
    pub step: String,
    /// What it acted on (PVC, pod, lock slot...).
    pub target: String,
    pub outcome: StepOutcome,
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
    /// Error or summary text.
    pub message: String,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Which signal stopped the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Signal {
    #[serde(rename = "SIGINT")]
    Interrupt,
    #[serde(rename = "SIGTERM")]
    Terminate,
}

/// Why the run did not succeed, in priority order for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    StepFailed,
    LockTimeout,
    SnapshotNotReady,
    Signal(Signal),
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunReport {
    pub plan: String,
    pub namespace: String,
    pub dry_run: bool,
    pub success: bool,
    pub exit_code: u8,
    /// The first failure's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
    /// Snapshots created (or, for dry runs, that would be created).
    pub snapshots: Vec<SnapshotRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_snapshot: Option<GroupSnapshotRequest>,
    pub hooks: Vec<HookReport>,
    #[serde(skip)]
    pub failure: Option<FailureKind>,
}

impl RunReport {
    /// The process exit code (src/exit.rs).
    pub fn exit(&self) -> Exit {
        match self.failure {
            None => Exit::Success,
            Some(FailureKind::StepFailed) => Exit::Failure,
            Some(FailureKind::LockTimeout) => Exit::LockTimeout,
            Some(FailureKind::SnapshotNotReady) => Exit::SnapshotNotReady,
            Some(FailureKind::Signal(Signal::Interrupt)) => Exit::Interrupted,
            Some(FailureKind::Signal(Signal::Terminate)) => Exit::Terminated,
        }
    }

    /// One JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A plain-text table for terminals.
    pub fn to_table(&self) -> String {
        let mut rows: Vec<[String; 5]> = vec![[
            "STEP".into(),
            "TARGET".into(),
            "OUTCOME".into(),
            "DURATION".into(),
            "MESSAGE".into(),
        ]];
        for s in &self.steps {
            let message = s.message.lines().next().unwrap_or("").to_string();
            rows.push([
                s.step.clone(),
                s.target.clone(),
                s.outcome.as_str().into(),
                format!("{:.1}s", s.duration.as_secs_f64()),
                message,
            ]);
        }
        let mut widths = [0usize; 4];
        for row in &rows {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = (*w).max(row[i].chars().count());
            }
        }
        let mut out = String::new();
        for row in &rows {
            let _ = writeln!(
                out,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            );
        }
        let verdict = if self.success {
            if self.dry_run {
                "dry run OK: nothing was written".to_string()
            } else {
                format!("backup of plan {} succeeded", self.plan)
            }
        } else {
            format!(
                "backup of plan {} FAILED (exit {}): {}",
                self.plan,
                self.exit_code,
                self.error.as_deref().unwrap_or("see the steps above")
            )
        };
        let _ = writeln!(out, "{verdict}");
        out
    }
}
