//! The hook runner: sends the generated scripts to `sh -s` in the target container through
//! [`ContainerExec`], interprets what they report, enforces the timeout, and on timeout or cancellation kills
//! the remote process with a second exec and removes the partial dump.

use super::error::HookError;
use super::exec::ExecCommand;
use super::kill::kill;
use super::mysql::MysqlDump;
use super::postgres::PostgresDump;
use super::report::{HookKind, HookReport, TAIL_LIMIT, tail};
use super::script::{self, DfUsage, RunFiles, ScriptOutput, parse_df};
use super::secret::Secret;
use crate::vocab::exec::{ContainerExec, ExecError, ExecRequest, ExecResult, Stdin, StdoutSink};
use crate::vocab::workload::ContainerRef;
use std::future::Future;
use std::time::{Duration, Instant};

/// A hook that runs in one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub name: String,
    pub action: HookAction,
}

/// What a container hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    Postgres(PostgresDump),
    Mysql(MysqlDump),
    Exec(ExecCommand),
}

impl Hook {
    pub fn kind(&self) -> HookKind {
        match self.action {
            HookAction::Postgres(_) => HookKind::Postgres,
            HookAction::Mysql(_) => HookKind::Mysql,
            HookAction::Exec(_) => HookKind::Exec,
        }
    }

    fn secrets(&self) -> Vec<&Secret> {
        match &self.action {
            HookAction::Postgres(p) => p.password.iter().collect(),
            HookAction::Mysql(m) => m.password.iter().collect(),
            HookAction::Exec(_) => Vec::new(),
        }
    }
}

/// Runs `hook` in `target`: for dumps, the check (tools, `SELECT 1`, free space vs threshold) and then the dump.
/// The whole hook must finish within `timeout`.
pub async fn run(
    hook: &Hook,
    exec: &dyn ContainerExec,
    target: &ContainerRef,
    timeout: Duration,
) -> Result<HookReport, HookError> {
    run_until(hook, exec, target, timeout, std::future::pending::<()>()).await
}

/// Like [`run`], but stops when `cancel` completes (SIGTERM/SIGINT in the engine): the remote process is killed,
/// the partial dump removed, and [`HookError::Cancelled`] returned.
#[tracing::instrument(skip_all, fields(hook = %hook.name, kind = hook.kind().as_str(), target = %target))]
pub async fn run_until(
    hook: &Hook,
    exec: &dyn ContainerExec,
    target: &ContainerRef,
    timeout: Duration,
    cancel: impl Future<Output = ()>,
) -> Result<HookReport, HookError> {
    let outcome = Runner::new(hook, exec, target, timeout, false)
        .go(cancel)
        .await;
    trace_outcome(&outcome);
    outcome
}

/// One log line per hook with what the run summary needs; never the script, never a secret.
fn trace_outcome(outcome: &Result<HookReport, HookError>) {
    match outcome {
        Ok(report) => {
            for warning in &report.warnings {
                tracing::warn!("{warning}");
            }
            tracing::info!(
                duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
                dump_size = report.dump_size,
                tool_version = report.tool_version.as_deref(),
                "hook succeeded"
            );
        }
        Err(e) => tracing::warn!(error = %e, "hook failed"),
    }
}

/// Only the read-only checks of `hook` (for `--dry-run`): tools, `SELECT 1`, previous dump and free space.
/// Exec hooks have no check and return an empty report.
#[tracing::instrument(skip_all, fields(hook = %hook.name, kind = hook.kind().as_str(), target = %target, dry_run = true))]
pub async fn check(
    hook: &Hook,
    exec: &dyn ContainerExec,
    target: &ContainerRef,
    timeout: Duration,
) -> Result<HookReport, HookError> {
    let outcome = Runner::new(hook, exec, target, timeout, true)
        .go(std::future::pending::<()>())
        .await;
    trace_outcome(&outcome);
    outcome
}

struct Runner<'a> {
    hook: &'a Hook,
    exec: &'a dyn ContainerExec,
    target: &'a ContainerRef,
    timeout: Duration,
    check_only: bool,
    start: Instant,
    token: String,
}

/// The parts of a dump hook the shared flow needs.
struct DumpPlan {
    dump_path: String,
    threshold_percent: u8,
    check: String,
    dump: String,
}

impl<'a> Runner<'a> {
    fn new(
        hook: &'a Hook,
        exec: &'a dyn ContainerExec,
        target: &'a ContainerRef,
        timeout: Duration,
        check_only: bool,
    ) -> Self {
        Runner {
            hook,
            exec,
            target,
            timeout,
            check_only,
            start: Instant::now(),
            token: script::new_token(),
        }
    }

    async fn go(self, cancel: impl Future<Output = ()>) -> Result<HookReport, HookError> {
        let mut cancel = std::pin::pin!(cancel);
        match &self.hook.action {
            HookAction::Postgres(p) => {
                let files = self.dump_files(&p.dump_path, p.threshold_percent)?;
                let plan = DumpPlan {
                    dump_path: p.dump_path.clone(),
                    threshold_percent: p.threshold_percent,
                    check: p.check_script(&files),
                    dump: p.dump_script(&files),
                };
                self.dump_flow(plan, &files, &mut cancel).await
            }
            HookAction::Mysql(m) => {
                let files = self.dump_files(&m.dump_path, m.threshold_percent)?;
                let plan = DumpPlan {
                    dump_path: m.dump_path.clone(),
                    threshold_percent: m.threshold_percent,
                    check: m.check_script(&files),
                    dump: m.dump_script(&files),
                };
                self.dump_flow(plan, &files, &mut cancel).await
            }
            HookAction::Exec(command) => {
                if let ExecCommand::Argv(argv) = command
                    && argv.is_empty()
                {
                    return Err(self.invalid("the command is empty"));
                }
                let mut report = self.report();
                if self.check_only {
                    return Ok(report);
                }
                let files = RunFiles::for_command(&self.token);
                let result = self
                    .script(command.script(&files), &files, &mut cancel)
                    .await?;
                let (stdout, stderr) = self.redacted(&result);
                if !result.success() {
                    return Err(HookError::CommandFailed {
                        hook: self.hook.name.clone(),
                        target: self.target.to_string(),
                        exit_code: result.exit_code,
                        stderr_tail: tail(&stderr, TAIL_LIMIT),
                    });
                }
                report.exit_code = Some(result.exit_code);
                report.stdout_tail = tail(&stdout, TAIL_LIMIT);
                report.stderr_tail = tail(&stderr, TAIL_LIMIT);
                report.duration = self.start.elapsed();
                Ok(report)
            }
        }
    }

    fn invalid(&self, message: &str) -> HookError {
        HookError::InvalidParams {
            hook: self.hook.name.clone(),
            message: message.to_string(),
        }
    }

    fn dump_files(&self, dump_path: &str, threshold: u8) -> Result<RunFiles, HookError> {
        if !dump_path.starts_with('/') || dump_path.ends_with('/') {
            return Err(self.invalid(&format!(
                "the dump path `{dump_path}` must be an absolute file path"
            )));
        }
        if dump_path.contains('\0') || dump_path.contains('\n') {
            return Err(self.invalid("the dump path contains a NUL or newline"));
        }
        if threshold > 100 {
            return Err(self.invalid(&format!("the space threshold {threshold}% is above 100%")));
        }
        Ok(RunFiles::for_dump(dump_path, &self.token))
    }

    fn report(&self) -> HookReport {
        HookReport {
            name: self.hook.name.clone(),
            kind: self.hook.kind(),
            target: Some(self.target.to_string()),
            duration: self.start.elapsed(),
            checked_only: self.check_only,
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

    async fn dump_flow(
        &self,
        plan: DumpPlan,
        files: &RunFiles,
        cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<HookReport, HookError> {
        let mut report = self.report();
        report.dump_path = Some(plan.dump_path.clone());

        let checked = self.script(plan.check, files, cancel).await?;
        let (stdout, stderr) = self.redacted(&checked);
        let out = ScriptOutput::parse(&stdout);
        if !checked.success() {
            if let Some(tool) = out.get("missing_tool") {
                return Err(HookError::ToolMissing {
                    hook: self.hook.name.clone(),
                    target: self.target.to_string(),
                    tool: tool.to_string(),
                });
            }
            return Err(HookError::CheckFailed {
                hook: self.hook.name.clone(),
                target: self.target.to_string(),
                reason: out.get("error").map_or_else(
                    || format!("exit status {}", checked.exit_code),
                    str::to_string,
                ),
                stderr_tail: tail(&stderr, TAIL_LIMIT),
            });
        }
        let disk = self.disk(&out)?;
        report.previous_dump = out.get("previous_dump").map(str::to_string);
        report.compression = out.get("compression").map(str::to_string);
        report.warnings = out.all("warning");
        report.tool_version = out.get("tool_version").map(str::to_string);
        report.disk = Some(disk);
        if disk.used_percent > plan.threshold_percent {
            return Err(HookError::SpaceThreshold {
                hook: self.hook.name.clone(),
                target: self.target.to_string(),
                dir: script::split_path(&plan.dump_path).0.to_string(),
                used_percent: disk.used_percent,
                threshold_percent: plan.threshold_percent,
            });
        }
        if self.check_only {
            report.stdout_tail = tail(&stdout, TAIL_LIMIT);
            report.stderr_tail = tail(&stderr, TAIL_LIMIT);
            report.exit_code = Some(checked.exit_code);
            report.duration = self.start.elapsed();
            return Ok(report);
        }

        let dumped = self.script(plan.dump, files, cancel).await?;
        let (stdout, stderr) = self.redacted(&dumped);
        let out = ScriptOutput::parse(&stdout);
        if !dumped.success() {
            return Err(HookError::DumpFailed {
                hook: self.hook.name.clone(),
                target: self.target.to_string(),
                reason: out.get("error").map_or_else(
                    || format!("exit status {}", dumped.exit_code),
                    str::to_string,
                ),
                exit_code: dumped.exit_code,
                stderr_tail: tail(&stderr, TAIL_LIMIT),
            });
        }
        let size = out
            .get("size")
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| self.output_error("the dump script did not report the dump size"))?;
        report.dump_size = Some(size);
        report.compression = out.get("compression").map(str::to_string);
        report.warnings = out.all("warning");
        report.tool_version = out
            .get("tool_version")
            .map(str::to_string)
            .or(report.tool_version);
        report.disk = Some(self.disk(&out)?);
        report.exit_code = Some(dumped.exit_code);
        report.stdout_tail = tail(&stdout, TAIL_LIMIT);
        report.stderr_tail = tail(&stderr, TAIL_LIMIT);
        report.duration = self.start.elapsed();
        Ok(report)
    }

    fn disk(&self, out: &ScriptOutput) -> Result<DfUsage, HookError> {
        let df = out
            .df
            .as_deref()
            .ok_or_else(|| self.output_error("no `df` output for the dump directory"))?;
        parse_df(df).map_err(|e| self.output_error(&e.to_string()))
    }

    fn output_error(&self, message: &str) -> HookError {
        HookError::Output {
            hook: self.hook.name.clone(),
            target: self.target.to_string(),
            message: message.to_string(),
        }
    }

    /// stdout and stderr as text with every literal secret replaced by `***`.
    fn redacted(&self, result: &ExecResult) -> (String, String) {
        let mut stdout = String::from_utf8_lossy(&result.stdout).into_owned();
        let mut stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        for secret in self.hook.secrets() {
            stdout = secret.redact(&stdout);
            stderr = secret.redact(&stderr);
        }
        (stdout, stderr)
    }

    /// Sends `body` to `sh -s` with the time that is left; kills the remote process on timeout or cancellation.
    async fn script(
        &self,
        body: String,
        files: &RunFiles,
        cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<ExecResult, HookError> {
        let remaining = self.timeout.saturating_sub(self.start.elapsed());
        if remaining.is_zero() {
            return Err(HookError::Timeout {
                hook: self.hook.name.clone(),
                target: self.target.to_string(),
                after: self.timeout,
                cleanup: "nothing was running".into(),
            });
        }
        let request = ExecRequest {
            target: self.target.clone(),
            argv: vec!["sh".into(), "-s".into()],
            stdin: Stdin::Bytes(body.into_bytes()),
            timeout: Some(remaining),
        };
        let outcome = tokio::select! {
            outcome = self.exec.exec(request, StdoutSink::Capture) => Some(outcome),
            () = cancel.as_mut() => None,
        };
        match outcome {
            Some(Ok(result)) => Ok(result),
            Some(Err(ExecError::Timeout { .. })) => Err(HookError::Timeout {
                hook: self.hook.name.clone(),
                target: self.target.to_string(),
                after: self.timeout,
                cleanup: kill(self.exec, self.target, files).await,
            }),
            Some(Err(source)) => {
                // The stream broke, but the process may live on: stop it so no partial dump stays behind.
                let _ = kill(self.exec, self.target, files).await;
                Err(HookError::Exec {
                    hook: self.hook.name.clone(),
                    source: Box::new(source),
                })
            }
            None => Err(HookError::Cancelled {
                hook: self.hook.name.clone(),
                target: self.target.to_string(),
                cleanup: kill(self.exec, self.target, files).await,
            }),
        }
    }
}
