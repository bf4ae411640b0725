//! Hot backups: a database hook with `mode: hot` writes no dump. One session in the database container holds the
//! database backup-safe across the snapshot instead: PostgreSQL `pg_backup_start('backup-ns', true)` before and
//! `pg_backup_stop()` after (its `backup_label` and `tablespace_map` come back to be recorded with the
//! snapshot), MySQL/MariaDB `FLUSH TABLES WITH READ LOCK` before and `UNLOCK TABLES` after.
//!
//! The session is one exec of `sh -s` whose stdin stays open. The script sets up the connection (the password
//! travels inside it, as for dumps) and its last line prints `ready` and `exec`s the client, which then reads SQL
//! from the same stdin. The SQL is only sent once `ready` was read, so the shell has parsed its last line and can
//! no longer read ahead into the SQL. Each statement prints a `backup-ns: KEY=VALUE` line that the session waits
//! for.
//!
//! The session is never left open. Closing stdin ends the client, and with it the server-side session:
//! PostgreSQL aborts the backup of a session that ends, MySQL releases a connection's locks. A timeout (the
//! exec's own deadline, the hook's timeout), a signal or a failure ([`HotSession::abort`]) and a dropped session
//! (`Drop`: a panic, a cancelled future) all close it. `abort` also kills the client through its pid file, in
//! case it is blocked and not reading its stdin.

use super::error::HookError;
use super::kill::kill;
use super::quote::quote_with_env;
use super::report::{HookReport, TAIL_LIMIT, tail};
use super::script::{self, MARKER, RunFiles};
use super::secret::Secret;
use crate::labels::HotBackup;
use crate::vocab::exec::{ContainerExec, ExecError, ExecRequest, ExecResult, Stdin, StdoutSink};
use crate::vocab::hook::{DbMode, HookAction, HookKind, MysqlHook, PostgresHook};
use crate::vocab::workload::ContainerRef;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, DuplexStream, Lines};
use tokio::task::JoinHandle;

/// Bytes buffered on each of the session's pipes.
const PIPE: usize = 64 * 1024;
/// How long a client may take to exit once its stdin is closed, before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

impl PostgresHook {
    /// The session's script: `psql` checked, the connection's env, then `ready` and `psql` on the last line.
    pub fn hot_session_script(&self, files: &RunFiles) -> String {
        let mut s = script::prelude(files);
        s.push_str(&super::postgres::tool_check(&["psql"]));
        s.push_str(&self.connection_env());
        let _ = writeln!(
            s,
            "echo '{MARKER}ready=yes'; exec psql -X -q -A -t -v ON_ERROR_STOP=1"
        );
        s
    }
}

impl MysqlHook {
    /// The session's script: the client found (`mariadb`, else `mysql`), the password, then `ready` and the
    /// client on the last line (`--unbuffered`, so each answer arrives as soon as it is there).
    pub fn hot_session_script(&self, files: &RunFiles) -> String {
        let mut s = script::prelude(files);
        s.push_str("bns_client=\n");
        for client in ["mariadb", "mysql"] {
            let _ = writeln!(
                s,
                "if [ -z \"$bns_client\" ] && command -v {client} >/dev/null 2>&1; then bns_client={client}; fi"
            );
        }
        let _ = writeln!(
            s,
            "if [ -z \"$bns_client\" ]; then echo '{MARKER}missing_tool=mariadb or mysql'; exit 1; fi"
        );
        s.push_str(&self.password_env());
        let _ = writeln!(
            s,
            "echo '{MARKER}ready=yes'; exec \"$bns_client\" {} --batch --skip-column-names --unbuffered -- {}",
            self.connection_args(),
            quote_with_env(&self.dump.database)
        );
        s
    }
}

/// What one engine's session says, and the fact that answers it.
struct Exchange {
    sql: String,
    /// The `backup-ns: FACT=` line that marks the answer.
    fact: &'static str,
}

/// MariaDB's InnoDB status value `name` (`INNODB_LSN_CURRENT`, …), inside a MariaDB-only executable comment: a
/// MySQL server sees nothing there, and the `CONCAT` answers an empty value.
fn mariadb_status(name: &str) -> String {
    format!(
        "/*M! , (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = {}) */",
        sql_text(name)
    )
}

fn open_exchange(kind: HookKind) -> Exchange {
    match kind {
        // The redo log must be on the volume up to the last commit before the lock, or the copy recovers without
        // those commits. MySQL's FLUSH ENGINE LOGS writes and syncs it. MariaDB's does nothing with
        // `innodb_flush_log_at_trx_commit=0` (the log is written once a second), so the LSN the lock left is
        // reported (`redo_target`) and the session waits until the log is durable up to it (`redo_written`).
        HookKind::Mysql => Exchange {
            sql: format!(
                "FLUSH TABLES WITH READ LOCK;\nFLUSH ENGINE LOGS;\nSELECT CONCAT({} {});\n\
                 SELECT CONCAT({}, COALESCE(DATABASE(), ''));\nSELECT CONCAT({}, @@datadir);\n",
                sql_text(&format!("{MARKER}redo_target=")),
                mariadb_status("INNODB_LSN_CURRENT"),
                sql_text(&format!("{MARKER}database=")),
                sql_text(&format!("{MARKER}locked="))
            ),
            fact: "locked",
        },
        _ => Exchange {
            sql: format!(
                "SELECT {} || current_database();\nSELECT {} || session_user;\n\
                 SELECT {} || current_setting('data_directory');\n\
                 SELECT {} || pg_backup_start('backup-ns', true);\n",
                sql_text(&format!("{MARKER}database=")),
                sql_text(&format!("{MARKER}user=")),
                sql_text(&format!("{MARKER}data_directory=")),
                sql_text(&format!("{MARKER}started="))
            ),
            fact: "started",
        },
    }
}

fn close_exchange(kind: HookKind) -> Exchange {
    match kind {
        HookKind::Mysql => Exchange {
            sql: format!(
                "UNLOCK TABLES;\nSELECT {};\n",
                sql_text(&format!("{MARKER}unlocked=yes"))
            ),
            fact: "unlocked",
        },
        // Hex keeps the multi-line label on one marker line.
        _ => Exchange {
            sql: format!(
                "SELECT {} || lsn || ' ' || encode(convert_to(labelfile, 'UTF8'), 'hex') || ' ' || \
                 encode(convert_to(coalesce(spcmapfile, ''), 'UTF8'), 'hex') FROM pg_backup_stop(true);\n",
                sql_text(&format!("{MARKER}stopped="))
            ),
            fact: "stopped",
        },
    }
}

/// Asks how far MariaDB's redo log is durable (`redo_flushed=LSN`; empty on MySQL), after `pause` on the server.
fn redo_exchange(pause: Option<Duration>) -> Exchange {
    let mut sql = String::new();
    if let Some(pause) = pause {
        let _ = writeln!(sql, "DO SLEEP({:.3});", pause.as_secs_f64());
    }
    let _ = writeln!(
        sql,
        "SELECT CONCAT({} {});",
        sql_text(&format!("{MARKER}redo_flushed=")),
        mariadb_status("INNODB_LSN_FLUSHED")
    );
    Exchange {
        sql,
        fact: "redo_flushed",
    }
}

/// How long the session waits on the server between two looks at MariaDB's redo log.
const REDO_POLL: Duration = Duration::from_millis(50);

/// A constant SQL string literal (our own markers only).
fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A session holding a database backup-safe; see the module docs. End it with [`HotSession::finish`] or
/// [`HotSession::abort`]; dropping it closes it too.
pub struct HotSession {
    name: String,
    kind: HookKind,
    /// The hook's `workload`, as written (recorded with the snapshot).
    workload: String,
    target: ContainerRef,
    exec: Arc<dyn ContainerExec>,
    stdin: Option<DuplexStream>,
    stdout: Lines<BufReader<DuplexStream>>,
    task: Option<JoinHandle<Result<ExecResult, ExecError>>>,
    files: RunFiles,
    secrets: Vec<Secret>,
    timeout: Duration,
    deadline: Instant,
    /// When the database became backup-safe (the open exchange's answer).
    held_since: Instant,
    facts: Vec<(String, String)>,
}

/// What a finished session recorded: the annotation's value and the hook's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotFinish {
    pub record: HotBackup,
    pub report: HookReport,
}

impl HotFinish {
    /// One line for the run's step: how the session ended and how long it held the database.
    pub fn summary(&self) -> String {
        let held = crate::vocab::duration::format(Duration::from_millis(self.record.held_ms));
        match self.record.engine {
            HookKind::Mysql => format!("UNLOCK TABLES after holding the read lock for {held}"),
            _ => format!(
                "pg_backup_stop at {} after {held}; backup_label recorded on the snapshots",
                self.record.stop_lsn.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// Opens the session of the hot database hook `action` in `target`: the client connects and the database is made
/// backup-safe. The whole session, up to [`HotSession::finish`], must end within `timeout`. On any failure, or
/// when `cancel` completes first, the session is ended before this returns.
pub async fn begin(
    name: &str,
    action: &HookAction,
    exec: Arc<dyn ContainerExec>,
    target: &ContainerRef,
    timeout: Duration,
    cancel: impl Future<Output = ()>,
) -> Result<HotSession, HookError> {
    let files = RunFiles::for_command(&script::new_token());
    let (kind, body, db) = match action {
        HookAction::Postgres(p) if p.dump.mode == DbMode::Hot => {
            (HookKind::Postgres, p.hot_session_script(&files), &p.dump)
        }
        HookAction::Mysql(m) if m.dump.mode == DbMode::Hot => {
            (HookKind::Mysql, m.hot_session_script(&files), &m.dump)
        }
        _ => {
            return Err(HookError::InvalidParams {
                hook: name.to_string(),
                message: "only postgres and mysql hooks with `mode: hot` hold a session".into(),
            });
        }
    };
    let (stdin, theirs_in) = tokio::io::duplex(PIPE);
    let (theirs_out, ours_out) = tokio::io::duplex(PIPE);
    let request = ExecRequest {
        target: target.clone(),
        argv: vec!["sh".into(), "-s".into()],
        stdin: Stdin::Reader(Box::new(theirs_in)),
        timeout: Some(timeout),
    };
    let runner = Arc::clone(&exec);
    let task = tokio::spawn(async move {
        let mut sink = theirs_out;
        runner.exec(request, StdoutSink::Writer(&mut sink)).await
    });
    let now = Instant::now();
    let mut session = HotSession {
        name: name.to_string(),
        kind,
        workload: db.workload.to_string(),
        target: target.clone(),
        exec,
        stdin: Some(stdin),
        stdout: BufReader::new(ours_out).lines(),
        task: Some(task),
        files,
        secrets: db.secret().into_iter().collect(),
        timeout,
        deadline: now + timeout,
        held_since: now,
        facts: Vec::new(),
    };
    let mut cancel = std::pin::pin!(cancel);
    let opened = async {
        session.send(&body).await?;
        session.until("ready", &mut cancel).await?;
        let open = open_exchange(kind);
        session.send(&open.sql).await?;
        session.until(open.fact, &mut cancel).await?;
        session.held_since = Instant::now();
        session.redo_written(&mut cancel).await
    }
    .await;
    match opened {
        Ok(()) => {
            tracing::info!(hook = %name, target = %target, "hot session open: the database is backup-safe");
            Ok(session)
        }
        Err(e) => Err(session.fail(e).await),
    }
}

impl HotSession {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What holds the database, for the run's step line.
    pub fn opened_as(&self) -> String {
        match self.kind {
            HookKind::Mysql => match self.last_number("redo_flushed") {
                Some(lsn) => format!(
                    "FLUSH TABLES WITH READ LOCK held, redo log durable up to LSN {lsn} (datadir {})",
                    self.fact("locked").unwrap_or("?")
                ),
                None => format!(
                    "FLUSH TABLES WITH READ LOCK held (datadir {})",
                    self.fact("locked").unwrap_or("?")
                ),
            },
            _ => format!(
                "pg_backup_start at {} (data directory {})",
                self.fact("started").unwrap_or("?"),
                self.fact("data_directory").unwrap_or("?")
            ),
        }
    }

    /// The hook's report while the session is open (the finished session's replaces it).
    pub fn report(&self) -> HookReport {
        HookReport {
            stdout_tail: format!("hot session: {}", self.opened_as()),
            ..HookReport::new(&self.name, self.kind, Some(self.target.to_string()))
        }
    }

    /// The first value reported for `key`.
    fn fact(&self, key: &str) -> Option<&str> {
        self.facts
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The last value reported for `key`, as a number.
    fn last_number(&self, key: &str) -> Option<u64> {
        self.facts
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    }

    /// Under MariaDB's read lock: waits until the redo log is durable up to the LSN the lock left
    /// (`redo_target`), bounded by the session's deadline. Nothing to wait for on PostgreSQL and MySQL (no
    /// `redo_target` value).
    async fn redo_written(
        &mut self,
        cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), HookError> {
        let Some(target) = self.last_number("redo_target") else {
            return Ok(());
        };
        let mut pause = None;
        loop {
            let ask = redo_exchange(pause);
            self.send(&ask.sql).await?;
            self.until(ask.fact, cancel).await?;
            match self.last_number(ask.fact) {
                Some(flushed) if flushed >= target => return Ok(()),
                Some(_) => pause = Some(REDO_POLL),
                None => {
                    return Err(HookError::Output {
                        hook: self.name.clone(),
                        target: self.target.to_string(),
                        message:
                            "the server reported INNODB_LSN_CURRENT but not INNODB_LSN_FLUSHED"
                                .into(),
                    });
                }
            }
        }
    }

    /// Ends the backup in the same session (`pg_backup_stop()`, `UNLOCK TABLES`), closes the session and returns
    /// what it recorded. On failure the session is ended all the same.
    pub async fn finish(
        mut self,
        cancel: impl Future<Output = ()>,
    ) -> Result<HotFinish, HookError> {
        let mut cancel = std::pin::pin!(cancel);
        let close = close_exchange(self.kind);
        let closed = async {
            self.send(&close.sql).await?;
            self.until(close.fact, &mut cancel).await
        }
        .await;
        if let Err(e) = closed {
            return Err(self.fail(e).await);
        }
        let held = self.held_since.elapsed();
        let (result, cleanup) = self.close().await;
        let stderr_tail = result
            .as_ref()
            .map(|r| self.redacted(r).1)
            .unwrap_or_default();
        let mut record = HotBackup {
            engine: self.kind,
            hook: self.name.clone(),
            workload: self.workload.clone(),
            container: self.target.container.clone(),
            database: self
                .fact("database")
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            user: self.fact("user").map(str::to_string),
            data_directory: self
                .fact("data_directory")
                .or_else(|| self.fact("locked"))
                .map(str::to_string),
            start_lsn: self.fact("started").map(str::to_string),
            stop_lsn: None,
            backup_label: None,
            tablespace_map: None,
            held_ms: u64::try_from(held.as_millis()).unwrap_or(u64::MAX),
        };
        if self.kind == HookKind::Postgres {
            let stopped = self.fact("stopped").unwrap_or_default();
            let (lsn, label, map) = parse_stopped(stopped).ok_or_else(|| HookError::Output {
                hook: self.name.clone(),
                target: self.target.to_string(),
                message: format!("pg_backup_stop() answered `{stopped}`, not `LSN LABEL [MAP]`"),
            })?;
            record.stop_lsn = Some(lsn);
            record.backup_label = Some(label);
            record.tablespace_map = map;
        }
        let mut warnings: Vec<String> = stderr_tail
            .lines()
            .filter(|l| l.contains("NOTICE") || l.contains("WARNING"))
            .map(str::to_string)
            .collect();
        if !cleanup.is_empty() {
            warnings.push(cleanup);
        }
        let report = HookReport {
            duration: held,
            warnings,
            exit_code: result.as_ref().map(|r| r.exit_code),
            stderr_tail,
            ..self.report()
        };
        Ok(HotFinish { record, report })
    }

    /// Ends the session without finishing the backup (a failure or a signal elsewhere): the backup is aborted on
    /// the server, the lock released. Returns a sentence saying what happened.
    pub async fn abort(mut self) -> String {
        let (_, cleanup) = self.close().await;
        let ended = match self.kind {
            HookKind::Mysql => "the read lock was released",
            _ => "the backup was ended on the server",
        };
        if cleanup.is_empty() {
            format!("the hot session was closed and {ended}")
        } else {
            format!("the hot session was closed and {ended}; {cleanup}")
        }
    }

    /// Ends the session after `error` and returns the error, told what the ending achieved.
    async fn fail(mut self, error: HookError) -> HookError {
        let (result, cleanup) = self.close().await;
        let stderr = result
            .as_ref()
            .map(|r| self.redacted(r).1)
            .unwrap_or_default();
        match error {
            HookError::Timeout {
                hook,
                target,
                after,
                ..
            } => HookError::Timeout {
                hook,
                target,
                after,
                cleanup: format!("the hot session was closed; {cleanup}"),
            },
            HookError::Cancelled { hook, target, .. } => HookError::Cancelled {
                hook,
                target,
                cleanup: format!("the hot session was closed; {cleanup}"),
            },
            HookError::CommandFailed {
                hook,
                target,
                exit_code,
                ..
            } => HookError::CommandFailed {
                hook,
                target,
                exit_code,
                stderr_tail: tail(&stderr, TAIL_LIMIT),
            },
            other => other,
        }
    }

    /// Closes stdin, gives the client [`EXIT_GRACE`] to exit, then kills whatever is left (and removes the pid
    /// file). Returns the exec's result when it ended, and a sentence when something had to be killed.
    async fn close(&mut self) -> (Option<ExecResult>, String) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.shutdown().await;
        }
        let mut result = None;
        if let Some(task) = self.task.as_mut()
            && let Ok(joined) = tokio::time::timeout(EXIT_GRACE, task).await
        {
            result = joined.ok().and_then(Result::ok);
            self.task = None;
        }
        let killed = kill(self.exec.as_ref(), &self.target, &self.files).await;
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let cleanup = if killed.starts_with("no remote process") {
            String::new()
        } else {
            killed
        };
        (result, cleanup)
    }

    fn redacted(&self, result: &ExecResult) -> (String, String) {
        let mut stdout = String::from_utf8_lossy(&result.stdout).into_owned();
        let mut stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        for secret in &self.secrets {
            stdout = secret.redact(&stdout);
            stderr = secret.redact(&stderr);
        }
        (tail(&stdout, TAIL_LIMIT), tail(&stderr, TAIL_LIMIT))
    }

    async fn send(&mut self, text: &str) -> Result<(), HookError> {
        let broken = |e: std::io::Error| HookError::Exec {
            hook: self.name.clone(),
            source: Box::new(ExecError::Stream {
                target: self.target.clone(),
                message: format!("the hot session's stdin is closed: {e}"),
            }),
        };
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(broken(std::io::ErrorKind::BrokenPipe.into()));
        };
        match stdin.write_all(text.as_bytes()).await {
            Ok(()) => stdin.flush().await.map_err(broken),
            Err(e) => Err(broken(e)),
        }
    }

    /// Reads the session's output until `fact` is reported, recording every fact on the way. Fails when the
    /// session ends first (with the client's exit status and stderr), at the deadline, or on `cancel`.
    async fn until(
        &mut self,
        fact: &str,
        cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), HookError> {
        loop {
            let deadline = tokio::time::Instant::from_std(self.deadline);
            let line = tokio::select! {
                line = self.stdout.next_line() => line,
                () = tokio::time::sleep_until(deadline) => {
                    return Err(HookError::Timeout {
                        hook: self.name.clone(),
                        target: self.target.to_string(),
                        after: self.timeout,
                        cleanup: String::new(),
                    });
                }
                () = cancel.as_mut() => {
                    return Err(HookError::Cancelled {
                        hook: self.name.clone(),
                        target: self.target.to_string(),
                        cleanup: String::new(),
                    });
                }
            };
            match line {
                Ok(Some(line)) => {
                    let Some((key, value)) = line
                        .strip_prefix(MARKER)
                        .and_then(|rest| rest.split_once('='))
                    else {
                        continue;
                    };
                    self.facts.push((key.to_string(), value.trim().to_string()));
                    if key == "missing_tool" {
                        return Err(HookError::ToolMissing {
                            hook: self.name.clone(),
                            target: self.target.to_string(),
                            tool: value.trim().to_string(),
                        });
                    }
                    if key == fact {
                        return Ok(());
                    }
                }
                // The client is gone: its exit status and stderr say why.
                Ok(None) | Err(_) => return Err(self.ended_early(fact).await),
            }
        }
    }

    async fn ended_early(&mut self, fact: &str) -> HookError {
        let result = match self.task.take() {
            Some(task) => tokio::time::timeout(EXIT_GRACE, task).await.ok(),
            None => None,
        };
        match result {
            Some(Ok(Ok(result))) => {
                let (_, stderr) = self.redacted(&result);
                HookError::CommandFailed {
                    hook: self.name.clone(),
                    target: self.target.to_string(),
                    exit_code: result.exit_code,
                    stderr_tail: stderr,
                }
            }
            Some(Ok(Err(ExecError::Timeout { .. }))) => HookError::Timeout {
                hook: self.name.clone(),
                target: self.target.to_string(),
                after: self.timeout,
                cleanup: String::new(),
            },
            Some(Ok(Err(e))) => HookError::Exec {
                hook: self.name.clone(),
                source: Box::new(e),
            },
            _ => HookError::Output {
                hook: self.name.clone(),
                target: self.target.to_string(),
                message: format!("the hot session ended before it reported `{fact}`"),
            },
        }
    }
}

impl Drop for HotSession {
    /// A session dropped without `finish` or `abort` (a panic, a cancelled future): stdin closes with it, which
    /// ends the client, and the exec is stopped.
    fn drop(&mut self) {
        self.stdin.take();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Where `restore` mounts the restored claim in its label pod.
pub const RESTORE_MOUNT: &str = "/backup-ns-restore";

/// The label pod's script (`sh -c`) for a hot PostgreSQL snapshot restored at [`RESTORE_MOUNT`]: finds the data
/// directory on the volume (the directory holding `global/pg_control`, at most three levels down, since the data
/// directory may be a subdirectory of the mount), writes the `backup_label` (and `tablespace_map`) back with the
/// data directory's owner and mode 0600, and drops the live server's `postmaster.pid` that the snapshot caught.
/// Reports `written=DIR` (relative to the volume) or `error=`. `None` when the record has no backup_label.
pub fn label_script(record: &HotBackup) -> Option<String> {
    let label = record.backup_label.as_ref()?;
    let mut s = String::from("set -eu\n");
    let _ = writeln!(s, "M={}", super::quote::quote(RESTORE_MOUNT));
    s.push_str(
        "found=\nfor f in \"$M\"/global/pg_control \"$M\"/*/global/pg_control \"$M\"/*/*/global/pg_control \"$M\"/*/*/*/global/pg_control; do\n  if [ -f \"$f\" ]; then found=${f%/global/pg_control}; break; fi\ndone\n",
    );
    let _ = writeln!(
        s,
        "[ -n \"$found\" ] || {{ echo '{MARKER}error=no PostgreSQL data directory (global/pg_control) on the restored volume'; exit 1; }}"
    );
    s.push_str("owner=$(stat -c %u:%g \"$found\")\n");
    let mut files = vec![("backup_label", label.as_str())];
    if let Some(map) = &record.tablespace_map {
        files.push(("tablespace_map", map.as_str()));
    }
    for (file, text) in files {
        let _ = writeln!(
            s,
            "printf '%s' {} > \"$found/{file}\"\nchown \"$owner\" \"$found/{file}\" 2>/dev/null || true\nchmod 600 \"$found/{file}\"",
            super::quote::quote(text)
        );
    }
    s.push_str("rm -f \"$found/postmaster.pid\"\n");
    let _ = writeln!(s, "echo \"{MARKER}written=${{found#\"$M\"}}\"");
    Some(s)
}

/// Reads the label pod's log: `Ok(dir)` (relative to the volume, `""` for its root) or `Err(why)`.
pub fn label_written(log: &str) -> Result<String, String> {
    let mut error = None;
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix(MARKER) {
            if let Some(dir) = rest.strip_prefix("written=") {
                return Ok(dir.trim().to_string());
            }
            if let Some(why) = rest.strip_prefix("error=") {
                error = Some(why.trim().to_string());
            }
        }
    }
    Err(error.unwrap_or_else(|| "the label pod reported nothing".to_string()))
}

/// `LSN LABELHEX [MAPHEX]` → the LSN, the label text and the tablespace map (`None` when empty).
fn parse_stopped(value: &str) -> Option<(String, String, Option<String>)> {
    let mut parts = value.split_whitespace();
    let lsn = parts.next()?.to_string();
    let label = from_hex(parts.next()?)?;
    let map = match parts.next() {
        Some(hex) => Some(from_hex(hex)?).filter(|m: &String| !m.is_empty()),
        None => None,
    };
    Some((lsn, label, map))
}

fn from_hex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_answer_decodes_label_and_map() {
        let label =
            "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nLABEL: backup-ns\n";
        let hex: String = label.bytes().map(|b| format!("{b:02x}")).collect();
        let (lsn, text, map) = parse_stopped(&format!("0/2000100 {hex} ")).unwrap();
        assert_eq!(lsn, "0/2000100");
        assert_eq!(text, label);
        assert_eq!(map, None);
        let (_, _, map) = parse_stopped(&format!("0/1 {hex} 3136343030202f7473")).unwrap();
        assert_eq!(map.as_deref(), Some("16400 /ts"));
        assert_eq!(parse_stopped("0/1 zz"), None);
        assert_eq!(parse_stopped(""), None);
    }

    #[test]
    fn the_client_starts_on_the_scripts_last_line_right_after_ready() {
        let files = RunFiles::for_command("tok");
        let mut pg = PostgresHook::new("statefulset/db".parse().unwrap());
        pg.dump.mode = DbMode::Hot;
        pg.dump.password = "lit'pw".into();
        let script = pg.hot_session_script(&files);
        let last = script.lines().last().unwrap();
        assert_eq!(
            last,
            "echo 'backup-ns: ready=yes'; exec psql -X -q -A -t -v ON_ERROR_STOP=1"
        );
        assert!(script.contains(r"PGPASSWORD='lit'\''pw'; export PGPASSWORD"));
        assert!(script.contains(&files.pid_file));
        let my = MysqlHook::new("statefulset/db".parse().unwrap()).hot_session_script(&files);
        let last = my.lines().last().unwrap();
        assert!(
            last.starts_with("echo 'backup-ns: ready=yes'; exec \"$bns_client\" ")
                && last.contains("--unbuffered")
                && last.ends_with("-- \"${MYSQL_DATABASE}\""),
            "{last}"
        );
    }

    #[test]
    fn the_label_script_writes_the_recorded_label_quoted_into_the_data_directory_it_finds() {
        let mut record = HotBackup {
            engine: HookKind::Postgres,
            hook: "pre[0]/postgres".into(),
            workload: "statefulset/db".into(),
            container: "postgres".into(),
            database: Some("shop".into()),
            user: Some("bns".into()),
            data_directory: Some("/var/lib/postgresql/data/pgdata".into()),
            start_lsn: Some("0/2000028".into()),
            stop_lsn: Some("0/2000100".into()),
            backup_label: Some("START WAL LOCATION: 0/2000028\nLABEL: it's\n".into()),
            tablespace_map: None,
            held_ms: 12,
        };
        let script = label_script(&record).unwrap();
        assert!(
            script.contains("printf '%s' 'START WAL LOCATION: 0/2000028\nLABEL: it'\\''s\n' > \"$found/backup_label\""),
            "{script}"
        );
        assert!(script.contains("rm -f \"$found/postmaster.pid\""));
        assert!(!script.contains("tablespace_map"));
        record.tablespace_map = Some("16400 /ts\n".into());
        assert!(
            label_script(&record)
                .unwrap()
                .contains("> \"$found/tablespace_map\"")
        );
        record.backup_label = None;
        assert_eq!(label_script(&record), None);
        assert_eq!(
            label_written("x\nbackup-ns: written=/pgdata\n"),
            Ok("/pgdata".into())
        );
        assert_eq!(
            label_written("backup-ns: error=no PostgreSQL data directory\n"),
            Err("no PostgreSQL data directory".into())
        );
    }

    #[test]
    fn each_exchange_is_answered_by_its_own_marker() {
        let open = open_exchange(HookKind::Postgres);
        assert!(open.sql.contains("pg_backup_start('backup-ns', true)"));
        assert!(open.sql.contains("'backup-ns: started='"));
        assert_eq!(open.fact, "started");
        let close = close_exchange(HookKind::Postgres);
        assert!(close.sql.contains("FROM pg_backup_stop(true)"));
        assert_eq!(close.fact, "stopped");
        let lock = open_exchange(HookKind::Mysql);
        assert!(
            lock.sql
                .starts_with("FLUSH TABLES WITH READ LOCK;\nFLUSH ENGINE LOGS;\n")
        );
        // The LSN to wait for is asked of MariaDB only, before the lock is reported.
        let target = lock.sql.find("'backup-ns: redo_target=' /*M! , (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_LSN_CURRENT') */").unwrap();
        assert!(target < lock.sql.find("'backup-ns: locked='").unwrap());
        let first = redo_exchange(None);
        assert_eq!(first.fact, "redo_flushed");
        assert!(
            first
                .sql
                .starts_with("SELECT CONCAT('backup-ns: redo_flushed=' /*M! ")
        );
        assert!(first.sql.contains("'INNODB_LSN_FLUSHED'"));
        assert!(
            redo_exchange(Some(REDO_POLL))
                .sql
                .starts_with("DO SLEEP(0.050);\nSELECT ")
        );
        assert_eq!(close_exchange(HookKind::Mysql).fact, "unlocked");
    }
}
