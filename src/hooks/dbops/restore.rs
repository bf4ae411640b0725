//! `postgres|mysql restore`: the container's dump file, or a local one sent on stdin after the script, restored
//! into the live database.
//!
//! A local file is checked before anything is sent (readable, not empty, a complete gzip stream when it is gzip,
//! not a pg_dump archive for MySQL). The restore is prepared first, so that the caller can ask for confirmation
//! with the exact words of what is about to be replaced, then run.

use super::{
    DbHook, DbOpsError, DbSession, DumpFormat, RestoreSource, bootstrap_argv, human_bytes,
};
use crate::hooks::script::ScriptOutput;
use crate::vocab::exec::{ExecRequest, Stdin, StdoutSink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;

/// How much of the restore's stderr (its tail) a failure shows.
const STDERR_TAIL_CHARS: usize = 4000;

/// A local dump that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDump {
    pub path: PathBuf,
    pub format: DumpFormat,
    pub size: u64,
}

impl LocalDump {
    /// Checks a local dump before anything is sent: readable, not empty, and a complete gzip stream when it is
    /// gzip. Every refusal is a usage error.
    pub fn check(path: &Path) -> Result<LocalDump, DbOpsError> {
        let unreadable =
            |e: std::io::Error| DbOpsError::Refused(format!("cannot read {}: {e}", path.display()));
        let mut file = std::fs::File::open(path).map_err(unreadable)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if size == 0 {
            return Err(DbOpsError::Refused(format!(
                "{} is empty; refusing to restore it",
                path.display()
            )));
        }
        let mut head = [0u8; 8];
        let n = std::io::Read::read(&mut file, &mut head).map_err(unreadable)?;
        let format = DumpFormat::sniff(&head[..n]);
        if format == DumpFormat::Gzip {
            let file = std::fs::File::open(path).map_err(unreadable)?;
            let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
            std::io::copy(&mut decoder, &mut std::io::sink()).map_err(|e| {
                DbOpsError::Refused(format!(
                    "{} is not a valid gzip file ({e}); refusing to restore it",
                    path.display()
                ))
            })?;
        }
        Ok(LocalDump {
            path: path.to_path_buf(),
            format,
            size,
        })
    }
}

/// A restore ready to run.
pub struct PreparedRestore {
    source: RestoreSource,
    stdin: Stdin,
    argv: Vec<String>,
    /// What is restored, e.g. `the local file d.sql.gz (1.5 MiB)`.
    pub what: String,
}

/// A restore that completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub what: String,
    pub elapsed: Duration,
}

impl PreparedRestore {
    /// Prepares restoring `from_local` (checked first), or the container's dump file (which must exist).
    pub async fn new(
        session: &DbSession<'_>,
        from_local: Option<&Path>,
    ) -> Result<PreparedRestore, DbOpsError> {
        let hook = &session.hook;
        match from_local {
            Some(path) => {
                let local = LocalDump::check(path)?;
                if matches!(hook, DbHook::Mysql(_)) && local.format == DumpFormat::PgCustom {
                    return Err(DbOpsError::Refused(format!(
                        "{} is a pg_dump custom archive; it cannot be restored into MySQL",
                        path.display()
                    )));
                }
                let source = RestoreSource::Stdin(local.format);
                let script = hook.restore_script(source);
                let file = tokio::fs::File::open(path).await.map_err(|e| {
                    DbOpsError::Refused(format!("cannot read {}: {e}", path.display()))
                })?;
                let argv = bootstrap_argv(script.len());
                let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> =
                    Box::new(std::io::Cursor::new(script.into_bytes()).chain(file));
                Ok(PreparedRestore {
                    source,
                    stdin: Stdin::Reader(reader),
                    argv,
                    what: format!(
                        "the local file {} ({})",
                        path.display(),
                        human_bytes(local.size)
                    ),
                })
            }
            None => {
                let file = session.stat_dump().await?;
                let script = hook.restore_script(RestoreSource::ContainerFile);
                Ok(PreparedRestore {
                    source: RestoreSource::ContainerFile,
                    stdin: Stdin::Bytes(script.into_bytes()),
                    argv: vec!["sh".into(), "-s".into()],
                    what: format!(
                        "the dump file {} ({}, written {})",
                        hook.dump_path(),
                        human_bytes(file.size),
                        file.mtime.format("%Y-%m-%d %H:%M:%S UTC")
                    ),
                })
            }
        }
    }

    /// The confirmation question: what is restored, and where.
    pub fn question(&self, session: &DbSession<'_>) -> String {
        format!(
            "This restores {} into the live {} database in {}, replacing the objects it contains.",
            self.what,
            session.hook.engine_name(),
            session.target
        )
    }

    /// Runs the restore. A failure carries the tail of the tool's stderr (redacted); PostgreSQL's restore runs in
    /// one transaction, so its failure says that nothing changed.
    pub async fn run(
        self,
        session: &DbSession<'_>,
        timeout: Option<Duration>,
    ) -> Result<Restored, DbOpsError> {
        let started = Instant::now();
        let result = session
            .exec
            .exec(
                ExecRequest {
                    target: session.target.clone(),
                    argv: self.argv,
                    stdin: self.stdin,
                    timeout,
                },
                StdoutSink::Capture,
            )
            .await
            .map_err(|e| DbOpsError::Failed(e.to_string()))?;
        let stdout = session.redact(&String::from_utf8_lossy(&result.stdout));
        let out = ScriptOutput::parse(&stdout);
        let stderr = session.redact(String::from_utf8_lossy(&result.stderr).trim());
        if !result.success() {
            let reason = out
                .get("missing_tool")
                .map(|t| format!("`{t}` is not installed in the container"))
                .or_else(|| out.get("error").map(str::to_string))
                .unwrap_or_else(|| format!("the restore exited with status {}", result.exit_code));
            let skip = stderr.chars().count().saturating_sub(STDERR_TAIL_CHARS);
            let tail: String = stderr.chars().skip(skip).collect();
            return Err(DbOpsError::Failed(format!(
                "restore into {} failed: {reason}{}\n{tail}",
                session.target,
                if matches!(session.hook, DbHook::Postgres(_)) {
                    " (PostgreSQL rolled the restore back: nothing was changed)"
                } else {
                    ""
                }
            )));
        }
        if self.source == RestoreSource::ContainerFile && out.get("restored") != Some("yes") {
            return Err(DbOpsError::Failed(format!(
                "the restore script in {} ended without confirming the restore",
                session.target
            )));
        }
        Ok(Restored {
            what: self.what,
            elapsed: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::dbops::session::tests::{Canned, postgres, target};
    use std::io::Write as _;

    fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    #[test]
    fn local_dumps_are_refused_when_empty_or_truncated_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(dir.path(), "empty.sql", b"");
        assert!(
            LocalDump::check(&empty)
                .unwrap_err()
                .to_string()
                .ends_with("is empty; refusing to restore it")
        );
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&[b'x'; 10_000]).unwrap();
        let whole = encoder.finish().unwrap();
        let truncated = write(dir.path(), "t.sql.gz", &whole[..whole.len() - 4]);
        let err = LocalDump::check(&truncated).unwrap_err();
        assert_eq!(err.exit(), crate::Exit::Usage);
        assert!(
            err.to_string().contains("is not a valid gzip file"),
            "{err}"
        );
        let good = write(dir.path(), "g.sql.gz", &whole);
        assert_eq!(LocalDump::check(&good).unwrap().format, DumpFormat::Gzip);
    }

    #[tokio::test]
    async fn a_local_restore_sends_the_script_then_the_file_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "d.sql", b"CREATE TABLE t ();\n");
        let exec = Canned::new(0, "", "");
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: &exec,
        };
        let prepared = PreparedRestore::new(&session, Some(&path)).await.unwrap();
        assert!(
            prepared
                .question(&session)
                .contains("into the live postgres database")
        );
        let restored = prepared.run(&session, None).await.unwrap();
        assert!(
            restored.what.starts_with("the local file "),
            "{}",
            restored.what
        );
        let seen = exec.seen.lock().unwrap();
        let (argv, stdin) = &seen[0];
        assert_eq!(argv[0], "sh");
        assert!(stdin.ends_with(b"CREATE TABLE t ();\n"));
    }

    #[tokio::test]
    async fn a_failed_postgres_restore_says_nothing_changed_and_keeps_the_stderr_tail() {
        let exec = Canned::new(
            3,
            "backup-ns: dump_size=5\nbackup-ns: dump_mtime=1\n",
            "ERROR: boom",
        );
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: &exec,
        };
        let prepared = PreparedRestore::new(&session, None).await;
        // The stat ran through the same canned exec and failed with it.
        assert!(prepared.is_err());
        let prepared = PreparedRestore {
            source: RestoreSource::ContainerFile,
            stdin: Stdin::None,
            argv: vec!["sh".into(), "-s".into()],
            what: "x".into(),
        };
        let err = prepared.run(&session, None).await.unwrap_err().to_string();
        assert!(
            err.contains(
                "failed: the restore exited with status 3 (PostgreSQL rolled the restore back"
            ),
            "{err}"
        );
        assert!(err.ends_with("\nERROR: boom"), "{err}");
    }
}
