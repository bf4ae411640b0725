//! A database hook bound to the container it runs in: the common ground of `postgres|mysql
//! dump|download|restore|info`. Runs fact scripts and reads their `backup-ns:` lines, stats the dump file, and runs
//! the dump itself (the very hook `run` executes). Everything the container prints is redacted of the password.

use super::{DbHook, DbOpsError, DumpFormat, decode_head};
use crate::hooks::script::ScriptOutput;
use crate::hooks::{self, HookReport};
use crate::vocab::exec::{ContainerExec, ExecRequest, Stdin, StdoutSink};
use crate::vocab::hook::HookAction;
use crate::vocab::workload::ContainerRef;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How long a fact script may run when the command has no `--timeout`.
const FACTS_TIMEOUT: Duration = Duration::from_secs(120);

/// A database hook and the container it runs in.
pub struct DbSession<'a> {
    pub hook: DbHook,
    pub target: ContainerRef,
    pub exec: &'a dyn ContainerExec,
}

/// The dump file's size, time and format, as `stat` reported it in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpFile {
    pub size: u64,
    pub mtime: DateTime<Utc>,
    pub format: DumpFormat,
    /// Which of [`super::VERIFY_TOOLS`] the container has (reported by the stat script only; empty otherwise).
    pub tools: Vec<String>,
    /// The SHA-256 (lowercase hex) the dump's record beside it holds, if it has a readable one (stat script
    /// only).
    pub record: Option<String>,
}

impl DbSession<'_> {
    /// `text` with the hook's password replaced.
    pub fn redact(&self, text: &str) -> String {
        match self.hook.password() {
            Some(s) => s.redact(text),
            None => text.to_string(),
        }
    }

    /// Runs a fact script (`sh -s`) and parses its `backup-ns:` lines; a non-zero exit is an error.
    pub async fn facts(
        &self,
        script: String,
        timeout: Option<Duration>,
    ) -> Result<ScriptOutput, DbOpsError> {
        self.facts_and_stderr(script, Some(timeout.unwrap_or(FACTS_TIMEOUT)))
            .await
            .map(|(out, _)| out)
    }

    /// [`Self::facts`] with the (redacted) stderr of a successful run too, and `timeout` as given (`None`: no
    /// limit, for checks whose time grows with the dump).
    pub async fn facts_and_stderr(
        &self,
        script: String,
        timeout: Option<Duration>,
    ) -> Result<(ScriptOutput, String), DbOpsError> {
        let result = self
            .exec
            .exec(
                ExecRequest {
                    target: self.target.clone(),
                    argv: vec!["sh".into(), "-s".into()],
                    stdin: Stdin::Bytes(script.into_bytes()),
                    timeout,
                },
                StdoutSink::Capture,
            )
            .await
            .map_err(|e| DbOpsError::Failed(e.to_string()))?;
        let stdout = self.redact(&String::from_utf8_lossy(&result.stdout));
        let stderr = self.redact(String::from_utf8_lossy(&result.stderr).trim());
        let out = ScriptOutput::parse(&stdout);
        if !result.success() {
            let reason = out
                .get("missing_tool")
                .map(|t| format!("`{t}` is not installed in the container"))
                .or_else(|| out.get("error").map(str::to_string))
                .unwrap_or_else(|| format!("exit status {}", result.exit_code));
            return Err(DbOpsError::Failed(format!(
                "{reason} in {}\n{stderr}",
                self.target,
            )));
        }
        Ok((out, stderr))
    }

    /// The dump file in the container; an error (naming `backup-ns ENGINE dump`) when there is none yet.
    pub async fn stat_dump(&self) -> Result<DumpFile, DbOpsError> {
        let out = self.facts(self.hook.stat_script(), None).await?;
        self.dump_file(&out)?.ok_or_else(|| {
            DbOpsError::Failed(format!(
                "there is no dump file at {} in {}; create one with `backup-ns {} dump`",
                self.hook.dump_path(),
                self.target,
                self.hook.engine_name()
            ))
        })
    }

    /// The dump file's facts in a stat or info script's output; `None` when the file does not exist.
    pub fn dump_file(&self, out: &ScriptOutput) -> Result<Option<DumpFile>, DbOpsError> {
        if out.get("dump") == Some("nodir") {
            return Err(DbOpsError::Failed(format!(
                "the directory of the dump file {} does not exist in {}; check the hook's dumpFile",
                self.hook.dump_path(),
                self.target
            )));
        }
        let (Some(size), Some(mtime)) = (out.get("dump_size"), out.get("dump_mtime")) else {
            return Ok(None);
        };
        let bad = || {
            DbOpsError::Failed(format!(
                "unexpected stat output for {}",
                self.hook.dump_path()
            ))
        };
        let size = size.trim().parse::<u64>().map_err(|_| bad())?;
        let mtime = mtime
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or_else(bad)?;
        let format = DumpFormat::sniff(&decode_head(out.get("dump_head").unwrap_or_default()));
        let tools = out
            .get("tools")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let record = out
            .get("record")
            .map(str::trim)
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase);
        Ok(Some(DumpFile {
            size,
            mtime,
            format,
            tools,
            record,
        }))
    }

    /// Runs the dump hook now, under the step name `run` gives it (`pre[1]/postgres/orders`).
    pub async fn dump(&self, step_name: &str, timeout: Duration) -> Result<HookReport, DbOpsError> {
        let action = match &self.hook {
            DbHook::Postgres(p) => HookAction::Postgres(p.clone()),
            DbHook::Mysql(m) => HookAction::Mysql(m.clone()),
        };
        hooks::run(step_name, &action, self.exec, &self.target, timeout)
            .await
            .map_err(|e| DbOpsError::Failed(e.to_string()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::vocab::exec::{ExecError, ExecResult};
    use crate::vocab::hook::PostgresHook;
    use futures::future::BoxFuture;
    use std::sync::Mutex;

    /// A container that answers every exec with one canned result and records the argv and stdin it got.
    pub(crate) struct Canned {
        pub result: ExecResult,
        pub seen: Mutex<Vec<(Vec<String>, Vec<u8>)>>,
    }

    impl Canned {
        pub(crate) fn new(exit_code: i32, stdout: &str, stderr: &str) -> Canned {
            Canned {
                result: ExecResult {
                    exit_code,
                    stdout: stdout.as_bytes().to_vec(),
                    stderr: stderr.as_bytes().to_vec(),
                },
                seen: Mutex::new(Vec::new()),
            }
        }
    }

    impl ContainerExec for Canned {
        fn exec<'a>(
            &'a self,
            request: ExecRequest,
            _stdout: StdoutSink<'a>,
        ) -> BoxFuture<'a, Result<ExecResult, ExecError>> {
            Box::pin(async move {
                let stdin = match request.stdin {
                    Stdin::Bytes(b) => b,
                    Stdin::Reader(mut r) => {
                        let mut b = Vec::new();
                        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut b)
                            .await
                            .unwrap();
                        b
                    }
                    Stdin::None => Vec::new(),
                };
                self.seen.lock().unwrap().push((request.argv, stdin));
                Ok(self.result.clone())
            })
        }
    }

    pub(crate) fn target() -> ContainerRef {
        ContainerRef {
            namespace: "shop".into(),
            pod: "db-0".into(),
            container: "postgres".into(),
        }
    }

    /// A postgres hook with a literal password, so that redaction has something to do.
    pub(crate) fn postgres() -> DbHook {
        let mut hook = PostgresHook::new("statefulset/db".parse().expect("a workload"));
        hook.dump.password = "hunter2".into();
        DbHook::Postgres(hook)
    }

    #[tokio::test]
    async fn a_stat_reads_size_time_and_format_of_the_dump_file() {
        let exec = Canned::new(
            0,
            "backup-ns: dump_size=2048\nbackup-ns: dump_mtime=1736378270\nbackup-ns: dump_head=1f8b0800\n",
            "",
        );
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: &exec,
        };
        let file = session.stat_dump().await.unwrap();
        assert_eq!(file.size, 2048);
        assert_eq!(file.mtime.timestamp(), 1_736_378_270);
        assert_eq!(file.format, DumpFormat::Gzip);
    }

    #[tokio::test]
    async fn a_missing_dump_file_names_the_command_that_creates_one() {
        let exec = Canned::new(0, "backup-ns: dump=missing\n", "");
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: &exec,
        };
        let err = session.stat_dump().await.unwrap_err();
        assert_eq!(err.exit(), crate::Exit::Failure);
        assert!(
            err.to_string().contains("`backup-ns postgres dump`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_failing_fact_script_reports_the_missing_tool_and_redacts_the_password() {
        let exec = Canned::new(
            1,
            "backup-ns: missing_tool=psql\n",
            "auth failed for hunter2",
        );
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: &exec,
        };
        let err = session
            .facts(session.hook.info_script(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`psql` is not installed in the container"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}
