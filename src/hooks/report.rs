//! `HookReport`: what a finished hook tells the engine, the run summary and the `backup-ns.sh/hooks` annotation.

use super::script::DfUsage;
pub use crate::vocab::hook::HookKind;
use std::time::Duration;

/// Kept from the end of stdout and stderr for reports and errors (after redaction).
pub const TAIL_LIMIT: usize = 4096;

/// The outcome of a hook that succeeded (a failure is a [`super::HookError`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HookReport {
    pub name: String,
    pub kind: HookKind,
    /// Where it ran, e.g. `pod/db-0 (container postgres) in namespace shop`; `None` for rhai hooks.
    pub target: Option<String>,
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
    /// True for `--dry-run`: only the read-only checks ran.
    pub checked_only: bool,
    pub dump_path: Option<String>,
    /// Bytes of the (compressed) dump file.
    pub dump_size: Option<u64>,
    /// What the dump really used: `gzip`, `zstd` or `none` (zstd falls back to gzip when not installed).
    pub compression: Option<String>,
    /// Warnings the scripts reported (e.g. the zstd fallback); the engine logs them.
    pub warnings: Vec<String>,
    /// First line of `pg_dump --version` / `mariadb-dump --version`.
    pub tool_version: Option<String>,
    /// The dump that was there before this run, as the check script saw it.
    pub previous_dump: Option<String>,
    /// Filesystem usage of the dump directory (after the dump, or at check time for dry runs).
    pub disk: Option<DfUsage>,
    pub exit_code: Option<i32>,
    /// Redacted, at most [`TAIL_LIMIT`] bytes. For rhai hooks: the `log`/`warn` lines.
    pub stdout_tail: String,
    pub stderr_tail: String,
}

impl HookReport {
    /// The report of hook `name` of `kind` run in `target`, with nothing measured yet.
    pub fn new(name: &str, kind: HookKind, target: Option<String>) -> HookReport {
        HookReport {
            name: name.to_string(),
            kind,
            target,
            duration: Duration::ZERO,
            checked_only: false,
            dump_path: None,
            dump_size: None,
            compression: None,
            warnings: Vec::new(),
            tool_version: None,
            previous_dump: None,
            disk: None,
            exit_code: None,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
        }
    }
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The last `limit` bytes of `text` (cut at a character boundary).
pub fn tail(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("short", 100), "short");
    }
}
