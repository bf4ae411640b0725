//! `HookError`: every way a hook can fail, named after the operation. Messages carry the hook name, the target
//! and a redacted tail of stderr, and never a secret: literal passwords are replaced by `***` before any output
//! is stored, and container-env passwords never leave the container.

use crate::vocab::exec::{ExecError, ResolveError};
use std::time::Duration;

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hook `{hook}`: invalid parameters: {message}")]
    InvalidParams { hook: String, message: String },

    #[error("hook `{hook}`: `{tool}` is not installed in {target}")]
    ToolMissing {
        hook: String,
        target: String,
        tool: String,
    },

    #[error(
        "hook `{hook}`: check failed in {target}: {reason}{}",
        tail_suffix(stderr_tail)
    )]
    CheckFailed {
        hook: String,
        target: String,
        reason: String,
        stderr_tail: String,
    },

    #[error(
        "hook `{hook}`: the filesystem of {dir} in {target} is {used_percent}% full, above the threshold of {threshold_percent}%"
    )]
    SpaceThreshold {
        hook: String,
        target: String,
        dir: String,
        used_percent: u8,
        threshold_percent: u8,
    },

    #[error(
        "hook `{hook}`: dump failed in {target}: {reason}{}",
        tail_suffix(stderr_tail)
    )]
    DumpFailed {
        hook: String,
        target: String,
        reason: String,
        exit_code: i32,
        stderr_tail: String,
    },

    #[error(
        "hook `{hook}`: command exited with status {exit_code}{} in {target}{}",
        killed_hint(*exit_code),
        tail_suffix(stderr_tail)
    )]
    CommandFailed {
        hook: String,
        target: String,
        exit_code: i32,
        stderr_tail: String,
    },

    #[error("hook `{hook}`: did not finish within {} in {target}; {cleanup}", humantime::format_duration(*.after))]
    Timeout {
        hook: String,
        target: String,
        after: Duration,
        /// What the kill exec achieved, e.g. "the remote process was killed and the partial file removed".
        cleanup: String,
    },

    #[error("hook `{hook}`: cancelled in {target}; {cleanup}")]
    Cancelled {
        hook: String,
        target: String,
        cleanup: String,
    },

    #[error("hook `{hook}`: {source}")]
    Exec {
        hook: String,
        #[source]
        source: Box<ExecError>,
    },

    #[error("hook `{hook}`: {source}")]
    Resolve {
        hook: String,
        #[source]
        source: Box<ResolveError>,
    },

    #[error("hook `{hook}`: unexpected output from {target}: {message}")]
    Output {
        hook: String,
        target: String,
        message: String,
    },

    /// A rhai script failed to compile or run; the diagnostic points at the script's line and column.
    #[error("hook `{hook}`: {diagnostic}")]
    Script {
        hook: String,
        diagnostic: Box<super::diagnostic::ScriptDiagnostic>,
    },
}

impl HookError {
    /// The hook this error is about.
    pub fn hook(&self) -> &str {
        match self {
            HookError::InvalidParams { hook, .. }
            | HookError::ToolMissing { hook, .. }
            | HookError::CheckFailed { hook, .. }
            | HookError::SpaceThreshold { hook, .. }
            | HookError::DumpFailed { hook, .. }
            | HookError::CommandFailed { hook, .. }
            | HookError::Timeout { hook, .. }
            | HookError::Cancelled { hook, .. }
            | HookError::Exec { hook, .. }
            | HookError::Resolve { hook, .. }
            | HookError::Output { hook, .. }
            | HookError::Script { hook, .. } => hook,
        }
    }

    /// Whether the hook ran out of time (the engine reports these distinctly).
    pub fn is_timeout(&self) -> bool {
        matches!(self, HookError::Timeout { .. })
    }
}

/// The last few lines of stderr for a one-paragraph message (the full tail stays in the field).
/// What status 137 (128 + SIGKILL) means in a container: the process was killed from outside it.
fn killed_hint(exit_code: i32) -> &'static str {
    if exit_code == 137 {
        " (SIGKILL: its container stopped, e.g. the pod was deleted or evicted, or it ran out of memory)"
    } else {
        ""
    }
}

fn tail_suffix(tail: &str) -> String {
    const LINES: usize = 8;
    let lines: Vec<&str> = tail.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let shown = lines[lines.len().saturating_sub(LINES)..].join("\n");
    let more = if lines.len() > LINES { "…\n" } else { "" };
    format!("; stderr: {more}{}", shown.trim())
}

#[cfg(test)]
mod tests {
    use super::tail_suffix;

    #[test]
    fn messages_show_only_the_last_lines_of_stderr() {
        assert_eq!(tail_suffix(""), "");
        assert_eq!(tail_suffix("boom\n"), "; stderr: boom");
        let long: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let shown = tail_suffix(&long);
        assert!(shown.starts_with("; stderr: …\nline 13\n"), "{shown}");
        assert!(shown.ends_with("line 20"));
    }
}
