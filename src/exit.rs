//! Every exit code backup-ns can return, in one place. Documented in `--help` and the README.

/// Process exit codes. The numeric values are a stable contract for scripts and CronJobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything succeeded (for `validate`: every plan is valid).
    Success,
    /// 1: a step failed, or (for `validate`) at least one plan is invalid.
    Failure,
    /// 2: usage error: bad flags, an unreadable path, or (for `run`) an invalid plan.
    Usage,
    /// 3: the node-level lock could not be taken before `lock.timeout`.
    LockTimeout,
    /// 4: a snapshot was created but did not become ready before `readyTimeout`.
    SnapshotNotReady,
    /// 5: retention refused to act because the mass-deletion guard tripped (override with `--force`).
    GuardTripped,
    /// 6: the backup was taken (every snapshot ready), but a later step failed: a post-hook, retention, or the
    /// metrics push. The snapshot is usable; the report names the failed step.
    BackupTakenStepFailed,
    /// 7: `verify` ran and the backup failed its verification (a check failed: the dump is missing, does not
    /// load, or a plan check's answer is wrong).
    VerifyFailed,
    /// 130: interrupted by SIGINT.
    Interrupted,
    /// 143: terminated by SIGTERM (for example a CronJob's activeDeadlineSeconds).
    Terminated,
}

impl Exit {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::LockTimeout => 3,
            Exit::SnapshotNotReady => 4,
            Exit::GuardTripped => 5,
            Exit::BackupTakenStepFailed => 6,
            Exit::VerifyFailed => 7,
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
        }
    }

    /// The text block shown at the end of `--help`.
    pub const HELP: &'static str = "\
Exit codes:
  0    success (validate: all plans valid)
  1    a step failed (validate: at least one plan is invalid)
  2    usage error: bad flags, unreadable path, or an invalid plan given to `run`
  3    lock timeout: no node-level lock slot became free in time
  4    a snapshot was created but did not become ready in time
  5    retention refused: the mass-deletion guard tripped (see --force)
  6    backup taken, then a later step failed (post-hook, retention, metrics push)
  7    verify: the backup failed its verification (the report says which check)
  130  interrupted (SIGINT)
  143  terminated (SIGTERM)";
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn exit_codes_are_unique_and_documented() {
        let all = [
            Exit::Success,
            Exit::Failure,
            Exit::Usage,
            Exit::LockTimeout,
            Exit::SnapshotNotReady,
            Exit::GuardTripped,
            Exit::BackupTakenStepFailed,
            Exit::VerifyFailed,
            Exit::Interrupted,
            Exit::Terminated,
        ];
        let mut codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for exit in all {
            let line = format!("\n  {:<4} ", exit.code());
            assert!(
                Exit::HELP.contains(&line) || Exit::HELP.starts_with(line.trim_start_matches('\n')),
                "exit code {} missing from HELP",
                exit.code()
            );
        }
    }
}
