//! The hook runner: sends the generated scripts to `sh -s` in the target container through
//! [`ContainerExec`], interprets what they report, enforces the timeout, and on timeout or cancellation kills
//! the remote process with a second exec and removes the partial dump.

use super::error::HookError;
use super::exec::ExecCommand;
use super::kill::kill;
use super::report::{HookReport, TAIL_LIMIT, tail};
use super::script::{self, DfUsage, DumpScripts, RunFiles, ScriptOutput, parse_df};
use super::secret::Secret;
use crate::vocab::exec::{ContainerExec, ExecError, ExecRequest, ExecResult, Stdin, StdoutSink};
use crate::vocab::hook::{HookAction, HookKind};
use crate::vocab::workload::ContainerRef;
use std::future::Future;
use std::time::{Duration, Instant};

/// What the runner executes in one container: a hook's action, or a bare command.
#[derive(Clone, Copy)]
enum Work<'a> {
    Hook(&'a HookAction),
    Command(&'a ExecCommand),
}

impl Work<'_> {
    fn kind(self) -> HookKind {
        match self {
            Work::Hook(action) => action.kind(),
            Work::Command(_) => HookKind::Exec,
        }
    }

    fn secrets(self) -> Vec<Secret> {
        match self {
            Work::Hook(HookAction::Postgres(p)) => p.dump.secret().into_iter().collect(),
            Work::Hook(HookAction::Mysql(m)) => m.dump.secret().into_iter().collect(),
            Work::Hook(_) | Work::Command(_) => Vec::new(),
        }
    }
}

/// Runs the container hook `action` in `target` as `name` (the step name in logs and reports): for dumps, the
/// check (tools, `SELECT 1`, free space vs threshold) and then the dump, in one exec session. The whole hook
/// must finish within `timeout`. Rhai hooks do not run in one container; they are refused here (the sandbox runs them).
pub async fn run(
    name: &str,
    action: &HookAction,
    exec: &dyn ContainerExec,
    target: &ContainerRef,
    timeout: Duration,
) -> Result<HookReport, HookError> {
    run_until(
        name,
        action,
        exec,
        target,
        timeout,
        std::future::pending::<()>(),
    )
    .await
}

/// Like [`run`], but stops when `cancel` completes (SIGTERM/SIGINT in the engine): the remote process is killed,
/// the partial dump removed, and [`HookError::Cancelled`] returned.
#[tracing::instrument(skip_all, fields(hook = %name, kind = action.kind().as_str(), target = %target))]
pub async fn run_until(
    name: &str,
    action: &HookAction,
    exec: &dyn ContainerExec,
    target: &ContainerRef,
    timeout: Duration,
    cancel: impl Future<Output = ()>,
) -> Result<HookReport, HookError> {
    let outcome = Runner::new(name, Work::Hook(action), exec, target, timeout, false)
        .go(cancel)
        .await;
    trace_outcome(&outcome);
    outcome
}

/// Runs a bare command (argv, or a shell script) in `target` the way an `exec` hook runs, with the same pid
/// file, timeout, kill and redaction.
#[tracing::instrument(skip_all, fields(hook = %name, kind = "exec", target = %target))]
pub async fn run_command_until(
    name: &str,
    command: &ExecCommand,
    exec: &dyn ContainerExec,
    target: &ContainerRef,
    timeout: Duration,
    cancel: impl Future<Output = ()>,
) -> Result<HookReport, HookError> {
    let outcome = Runner::new(name, Work::Command(command), exec, target, timeout, false)
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
#[tracing::instrument(skip_all, fields(hook = %name, kind = action.kind().as_str(), target = %target, dry_run = true))]
pub async fn check(
    name: &str,
    action: &HookAction,
    exec: &dyn ContainerExec,
    target: &ContainerRef,
    timeout: Duration,
) -> Result<HookReport, HookError> {
    let outcome = Runner::new(name, Work::Hook(action), exec, target, timeout, true)
        .go(std::future::pending::<()>())
        .await;
    trace_outcome(&outcome);
    outcome
}

struct Runner<'a> {
    name: &'a str,
    work: Work<'a>,
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
    /// The check alone for a dry run, else the check followed by the dump: one exec session either way.
    script: String,
}

impl<'a> Runner<'a> {
    fn new(
        name: &'a str,
        work: Work<'a>,
        exec: &'a dyn ContainerExec,
        target: &'a ContainerRef,
        timeout: Duration,
        check_only: bool,
    ) -> Self {
        Runner {
            name,
            work,
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
        match self.work {
            Work::Hook(HookAction::Postgres(p)) => {
                let files = self.dump_files(&p.dump.dump_file, p.dump.threshold)?;
                let plan = DumpPlan {
                    dump_path: p.dump.dump_file.clone(),
                    threshold_percent: p.dump.threshold,
                    script: if self.check_only {
                        p.check_script(&files)
                    } else {
                        p.run_script(&files)
                    },
                };
                self.dump_flow(plan, &files, &mut cancel).await
            }
            Work::Hook(HookAction::Mysql(m)) => {
                let files = self.dump_files(&m.dump.dump_file, m.dump.threshold)?;
                let plan = DumpPlan {
                    dump_path: m.dump.dump_file.clone(),
                    threshold_percent: m.dump.threshold,
                    script: if self.check_only {
                        m.check_script(&files)
                    } else {
                        m.run_script(&files)
                    },
                };
                self.dump_flow(plan, &files, &mut cancel).await
            }
            Work::Hook(HookAction::Rhai(_)) => {
                Err(self.invalid("a rhai hook runs in the rhai sandbox, not in one container"))
            }
            Work::Hook(HookAction::Exec(e)) => {
                self.command(&ExecCommand::Argv(e.command.clone()), &mut cancel)
                    .await
            }
            Work::Command(command) => self.command(command, &mut cancel).await,
        }
    }

    async fn command(
        &self,
        command: &ExecCommand,
        cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<HookReport, HookError> {
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
        let result = self.script(command.script(&files), &files, cancel).await?;
        let (stdout, stderr) = self.redacted(&result);
        if !result.success() {
            return Err(HookError::CommandFailed {
                hook: self.name.to_string(),
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

    fn invalid(&self, message: &str) -> HookError {
        HookError::InvalidParams {
            hook: self.name.to_string(),
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
            duration: self.start.elapsed(),
            checked_only: self.check_only,
            ..HookReport::new(self.name, self.work.kind(), Some(self.target.to_string()))
        }
    }

    /// One exec session: the check, and (unless this is a dry run) the dump. Everything the script reported
    /// before `checked=yes` is judged as the check's, with the errors a separate check would give; what fails
    /// after it failed in the dump.
    async fn dump_flow(
        &self,
        mut plan: DumpPlan,
        files: &RunFiles,
        cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<HookReport, HookError> {
        let mut report = self.report();
        report.dump_path = Some(plan.dump_path.clone());

        let script = std::mem::take(&mut plan.script);
        let result = self.script(script, files, cancel).await?;
        let (stdout, stderr) = self.redacted(&result);
        let out = ScriptOutput::parse(&stdout);
        if out.get("checked") != Some("yes") {
            return Err(self.check_failed(&plan, &result, &out, &stderr));
        }
        let disk = self.disk(out.df.first())?;
        if disk.used_percent > plan.threshold_percent {
            // The container's gate let it pass, but this reading of its `df` does not: this reading decides.
            return Err(self.space_threshold(&plan, disk));
        }
        report.previous_dump = out.get("previous_dump").map(str::to_string);
        report.compression = out.get("compression").map(str::to_string);
        report.warnings = out.all("warning");
        report.tool_version = out.get("tool_version").map(str::to_string);
        report.disk = Some(disk);
        report.exit_code = Some(result.exit_code);
        report.stdout_tail = tail(&stdout, TAIL_LIMIT);
        report.stderr_tail = tail(&stderr, TAIL_LIMIT);
        if self.check_only {
            report.duration = self.start.elapsed();
            return Ok(report);
        }

        if !result.success() {
            return Err(HookError::DumpFailed {
                hook: self.name.to_string(),
                target: self.target.to_string(),
                reason: out.get("error").map_or_else(
                    || format!("exit status {}", result.exit_code),
                    str::to_string,
                ),
                exit_code: result.exit_code,
                stderr_tail: tail(&stderr, TAIL_LIMIT),
            });
        }
        let size = out
            .get("size")
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| self.output_error("the dump script did not report the dump size"))?;
        report.dump_size = Some(size);
        // The `df` after the dump: what the dump left free.
        report.disk = Some(self.disk(out.df.get(1))?);
        report.duration = self.start.elapsed();
        Ok(report)
    }

    /// Why the script stopped before its check passed: a missing tool, the space gate (judged here on the `df`
    /// it reported, as [`parse_df`] reads it), or the check's own reason.
    fn check_failed(
        &self,
        plan: &DumpPlan,
        result: &ExecResult,
        out: &ScriptOutput,
        stderr: &str,
    ) -> HookError {
        if let Some(tool) = out.get("missing_tool") {
            return HookError::ToolMissing {
                hook: self.name.to_string(),
                target: self.target.to_string(),
                tool: tool.to_string(),
            };
        }
        if let Some(gate) = out.get("space") {
            return match self.disk(out.df.first()) {
                Err(e) => e,
                Ok(disk) if disk.used_percent > plan.threshold_percent => {
                    self.space_threshold(plan, disk)
                }
                Ok(disk) => self.output_error(&format!(
                    "the container's space check stopped the dump (space={gate}), but its `df` reads {}% \
                     used, within the threshold of {}%",
                    disk.used_percent, plan.threshold_percent
                )),
            };
        }
        if result.success() {
            return self.output_error("the script ended without reporting its check");
        }
        HookError::CheckFailed {
            hook: self.name.to_string(),
            target: self.target.to_string(),
            reason: out.get("error").map_or_else(
                || format!("exit status {}", result.exit_code),
                str::to_string,
            ),
            stderr_tail: tail(stderr, TAIL_LIMIT),
        }
    }

    fn space_threshold(&self, plan: &DumpPlan, disk: DfUsage) -> HookError {
        HookError::SpaceThreshold {
            hook: self.name.to_string(),
            target: self.target.to_string(),
            dir: script::split_path(&plan.dump_path).0.to_string(),
            used_percent: disk.used_percent,
            threshold_percent: plan.threshold_percent,
        }
    }

    fn disk(&self, df: Option<&String>) -> Result<DfUsage, HookError> {
        let df = df.ok_or_else(|| self.output_error("no `df` output for the dump directory"))?;
        parse_df(df).map_err(|e| self.output_error(&e.to_string()))
    }

    fn output_error(&self, message: &str) -> HookError {
        HookError::Output {
            hook: self.name.to_string(),
            target: self.target.to_string(),
            message: message.to_string(),
        }
    }

    /// stdout and stderr as text with every literal secret replaced by `***`.
    fn redacted(&self, result: &ExecResult) -> (String, String) {
        let mut stdout = String::from_utf8_lossy(&result.stdout).into_owned();
        let mut stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        for secret in self.work.secrets() {
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
                hook: self.name.to_string(),
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
                hook: self.name.to_string(),
                target: self.target.to_string(),
                after: self.timeout,
                cleanup: kill(self.exec, self.target, files).await,
            }),
            Some(Err(source)) => {
                // The stream broke, but the process may live on: stop it so no partial dump stays behind.
                let _ = kill(self.exec, self.target, files).await;
                Err(HookError::Exec {
                    hook: self.name.to_string(),
                    source: Box::new(source),
                })
            }
            None => Err(HookError::Cancelled {
                hook: self.name.to_string(),
                target: self.target.to_string(),
                cleanup: kill(self.exec, self.target, files).await,
            }),
        }
    }
}
