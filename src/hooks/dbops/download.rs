//! `postgres|mysql download`: the container's dump file streamed into a verified local file.
//!
//! `cat DUMP` runs in the pod and its stdout arrives frame by frame ([`DumpSource`]); nothing is copied in the pod.
//! Each frame goes uncopied to a [`DumpWriter`] (file writer and a check thread behind bounded queues). The bytes
//! land in a hidden `.NAME.partial-TOKEN` file beside the destination, which is removed on every way out (error,
//! signal, panic) except success: the size is checked against a `stat` taken first, the file is fsynced, and only
//! then does it get its final name.
//!
//! Verification never inflates the dump locally when the container can do better. The SHA-256 of the bytes as
//! written is computed locally, and compared with:
//! - the dump's record (`DUMP.sha256`), which the dump wrote only after the whole file passed its format's test in
//!   place (`gzip -t`, `zstd -t`): bytes that hash to it are the tested file, so nothing else runs in the
//!   container. When they differ, the container decides as below, after the stream (a stale record is only
//!   reported; damaged bytes fail);
//! - without a record, or with `--check-in-place`: the SHA-256 a second exec computes of the container's file
//!   beside the stream, while it also tests the file in place. The download is good when both hashes match and
//!   the test passed. A container without `sha256sum` or the format's tool (the stat reports which it has) gets
//!   the fallback: a gzip dump is decoded locally as it arrives, and the summary says so.

use super::dump_file::{Checks, DumpWriter, Verdicts};
use super::{DbHook, DbOpsError, DbSession, DumpFile, DumpFormat, human_bytes};
use crate::Exit;
use crate::vocab::exec::{ExecError, ExecResult};
use crate::vocab::workload::ContainerRef;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The one cluster call a download needs: run `argv` in `target` without stdin and hand its stdout, frame by frame
/// and in order, to `sink`. `cluster::Cluster` implements it over the exec WebSocket; tests implement it in memory.
pub trait DumpSource {
    fn stream_stdout(
        &self,
        target: &ContainerRef,
        argv: Vec<String>,
        sink: &mut DumpWriter,
    ) -> impl Future<Output = Result<ExecResult, ExecError>>;
}

/// Where the file goes and how carefully it is checked.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Directory for the file named by [`download_name`].
    pub output_dir: PathBuf,
    /// Exact local file name instead (beats `output_dir`).
    pub output: Option<PathBuf>,
    /// Replace an existing local file.
    pub force: bool,
    /// Compare SHA-256 with the dump's record, or with the container's file while the format is tested in place
    /// (or decode a gzip dump locally when the container lacks the tools); the size is checked either way.
    pub verify: bool,
    /// Ignore the dump's record: hash and test the container's file now.
    pub in_place: bool,
    /// fsync the file before it gets its final name.
    pub sync: bool,
}

/// What a download is about to fetch: for the caller's announcement and progress bar.
pub struct Starting<'a> {
    pub dump_path: &'a str,
    pub size: u64,
    pub target: &'a ContainerRef,
    pub dest: &'a Path,
}

/// What the dump's record did for a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Not used: there was none, or `--check-in-place`.
    Unused,
    /// The bytes written hash to it: the file that passed its test at dump time.
    Matched,
    /// The bytes differed from it and the check in the container vouched for them instead.
    OutOfDate,
}

/// How a download is verified, chosen from the dump's record and the tools the container has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The dump's format (names the test and the fallback).
    pub format: DumpFormat,
    /// Whether the dump's record is (or was) the reference.
    pub record: Record,
    /// SHA-256 of the container's file compared with that of the bytes written.
    pub hash: bool,
    /// The format's test runs in the container (`gzip -t`).
    pub remote_test: Option<&'static str>,
    /// The gzip stream is decoded locally as it arrives (the container cannot test it).
    pub local_gzip: bool,
    /// The container tools whose absence forced a fallback.
    pub missing: Vec<&'static str>,
}

impl Verification {
    /// The checks for a dump of `format` in a container that has `tools`.
    pub fn choose(format: DumpFormat, tools: &[String]) -> Verification {
        let has = |tool: &str| tools.iter().any(|t| t == tool);
        let mut missing = Vec::new();
        let hash = has("sha256sum") || has("openssl");
        if !hash {
            missing.push("sha256sum");
        }
        let tool = format.test_command().and_then(|c| c.split(' ').next());
        let remote_test = match tool {
            Some(tool) if !has(tool) => {
                missing.push(tool);
                None
            }
            _ => format.test_command(),
        };
        // The remote test needs the hash to tie the tested file to the downloaded bytes; without it, a gzip
        // dump is decoded here instead.
        let (remote_test, local_gzip) = match (hash, remote_test) {
            (true, test) => (test, test.is_none() && format == DumpFormat::Gzip),
            (false, _) => (None, format == DumpFormat::Gzip),
        };
        Verification {
            format,
            record: Record::Unused,
            hash,
            remote_test,
            local_gzip,
            missing,
        }
    }

    /// The checks for a dump with a record: the local SHA-256 against it, nothing in the container.
    pub fn recorded(format: DumpFormat) -> Verification {
        Verification {
            format,
            record: Record::Matched,
            hash: false,
            remote_test: None,
            local_gzip: false,
            missing: Vec::new(),
        }
    }

    /// What the check thread computes locally.
    fn local_checks(&self) -> Checks {
        Checks {
            sha256: self.hash || self.record == Record::Matched,
            gzip: self.local_gzip,
        }
    }

    /// Whether the in-place check exec runs at all.
    fn remote(&self) -> bool {
        self.hash
    }

    /// `verified: SHA-256 matches the container's file, `gzip -t` passed in the container`, or what the
    /// fallback did and why.
    pub fn describe(&self) -> String {
        if self.record == Record::Matched {
            return match self.format.test_command() {
                Some(test) => format!(
                    "verified: SHA-256 matches the dump's record, written after `{test}` passed in the container"
                ),
                None => "verified: SHA-256 matches the dump's record".to_string(),
            };
        }
        let mut done = Vec::new();
        if self.hash {
            done.push("SHA-256 matches the container's file".to_string());
        }
        if let Some(test) = self.remote_test {
            done.push(format!("`{test}` passed in the container"));
        }
        if self.local_gzip {
            done.push("gzip decoded locally".to_string());
        }
        let lacking = if self.missing.is_empty() {
            String::new()
        } else {
            format!(" (the container has no {})", self.missing.join(" or "))
        };
        let untested =
            self.format.test_command().is_some() && self.remote_test.is_none() && !self.local_gzip;
        if done.is_empty() {
            return format!("NOT verified{lacking}; only the size was checked");
        }
        let mut text = format!(
            "verified{}: {}{lacking}",
            if self.missing.is_empty() {
                ""
            } else {
                " with a local fallback"
            },
            done.join(", ")
        );
        if untested {
            text.push_str(&format!(
                "; the {} stream itself was NOT tested",
                self.format.describe()
            ));
        }
        if self.record == Record::OutOfDate {
            text.push_str("; the dump's record was out of date");
        }
        text
    }
}

/// A completed download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The file under its final name.
    pub path: PathBuf,
    pub bytes: u64,
    pub elapsed: Duration,
    pub format: DumpFormat,
    /// How it was verified; `None` with `--no-verify`.
    pub verification: Option<Verification>,
}

impl Downloaded {
    /// `downloaded 1.0 MiB in 0.3s (3.3 MiB/s), verified: SHA-256 matches the container's file, ...`.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "downloaded {} in {secs:.1}s ({}/s), {}",
            human_bytes(self.bytes),
            human_bytes((self.bytes as f64 / secs.max(0.001)) as u64),
            match &self.verification {
                Some(v) => v.describe(),
                None => format!("{} NOT verified (--no-verify)", self.format.describe()),
            }
        )
    }
}

/// `<namespace>_<UTC time of the dump>_<engine>_dump.sql.gz` (the suffix follows the detected format).
pub fn download_name(
    namespace: &str,
    dumped_at: DateTime<Utc>,
    engine: &str,
    format: DumpFormat,
) -> String {
    format!(
        "{namespace}_{}_{engine}_{}",
        dumped_at.format("%Y-%m-%dT%H-%M-%SZ"),
        format.suffix()
    )
}

/// Downloads the session's dump file. `on_start` learns what is fetched once the dump was found and may return a
/// progress bar; when `stop` resolves first (a signal) the stream is dropped, which closes the exec and ends `cat`
/// in the pod, the partial file is removed and the error carries `stop`'s exit code.
pub async fn download(
    session: &DbSession<'_>,
    source: &impl DumpSource,
    options: &DownloadOptions,
    on_start: impl FnOnce(&Starting<'_>) -> Option<indicatif::ProgressBar>,
    stop: impl Future<Output = Exit>,
) -> Result<Downloaded, DbOpsError> {
    let hook = &session.hook;
    let file = session.stat_dump().await?;
    let name = download_name(
        &session.target.namespace,
        file.mtime,
        hook.engine_name(),
        file.format,
    );
    let dest = match &options.output {
        Some(path) => path.clone(),
        None => options.output_dir.join(&name),
    };
    if dest.exists() && !options.force {
        return Err(DbOpsError::Refused(format!(
            "{} already exists (that dump was downloaded before); pass --force to replace it",
            dest.display()
        )));
    }
    let (partial, std_file) = PartialFile::create(&dest, &name)?;
    reserve(&std_file, file.size).map_err(|e| {
        DbOpsError::Refused(format!(
            "cannot reserve {} for {} ({e}); free some space or choose another --output-dir",
            human_bytes(file.size),
            dest.display()
        ))
    })?;
    let bar = on_start(&Starting {
        dump_path: hook.dump_path(),
        size: file.size,
        target: &session.target,
        dest: &dest,
    });
    let started = Instant::now();
    let verification = options
        .verify
        .then(|| match (&file.record, options.in_place) {
            (Some(_), false) => Verification::recorded(file.format),
            _ => Verification::choose(file.format, &file.tools),
        });
    let checks = verification
        .as_ref()
        .map(Verification::local_checks)
        .unwrap_or_default();
    let stopped = |exit: Exit| DbOpsError::Stopped {
        exit,
        message: format!(
            "{}: the download stopped and its partial file was removed; {} was not written",
            if exit == Exit::Terminated {
                "terminated"
            } else {
                "interrupted"
            },
            dest.display()
        ),
    };
    tokio::pin!(stop);
    let verified = tokio::select! {
        verified = stream_and_check(session, source, std_file, options.sync, checks, verification.as_ref(), bar.clone()) => verified,
        exit = &mut stop => Err(stopped(exit)),
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let (written, local, remote) = verified?;
    judge(session, &file, written, &local, remote.as_ref())?;
    let verification = match verification {
        Some(v) if v.record == Record::Matched && file.record.as_deref() != Some(&*hex(&local)) => {
            tokio::select! {
                checked = recheck(session, &file, written, &local) => Some(checked?),
                exit = &mut stop => return Err(stopped(exit)),
            }
        }
        other => other,
    };
    partial.rename_to(&dest)?;
    Ok(Downloaded {
        path: dest,
        bytes: written,
        elapsed: started.elapsed(),
        format: file.format,
        verification,
    })
}

/// The local SHA-256 in hex; empty when it was not computed.
fn hex(local: &Verdicts) -> String {
    local
        .sha256
        .map(|sum| sum.iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default()
}

/// The bytes written differ from the dump's record: the check in the container tells a stale record (the file
/// there is what arrived and passes its test: the download stands) from damage (the hashes differ, or the test
/// fails: the download fails).
async fn recheck(
    session: &DbSession<'_>,
    file: &DumpFile,
    written: u64,
    local: &Verdicts,
) -> Result<Verification, DbOpsError> {
    let record = crate::hooks::script::record_path(session.hook.dump_path());
    let mut live = Verification::choose(file.format, &file.tools);
    if !live.remote() {
        return Err(DbOpsError::Failed(format!(
            "the downloaded bytes do not match the dump's record {record} in {} (SHA-256 here {}), and the container has no sha256sum or openssl to tell a stale record from damage; run the download again with --check-in-place",
            session.target,
            hex(local)
        )));
    }
    tracing::warn!(
        record = %record,
        "the downloaded bytes do not match the dump's record; checking the file in the container"
    );
    let checked = remote_check(session, live.remote_test).await?;
    judge_test(session, &live, &checked)?;
    judge(session, file, written, local, Some(&checked))?;
    live.record = Record::OutOfDate;
    Ok(live)
}

/// What the check in the container found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RemoteCheck {
    sha256: String,
    /// The format's test: `Ok`, or its complaint on stderr.
    test: Option<Result<(), String>>,
}

/// Streams the dump into the file and, when `verification` asks for it, runs the check in the container beside
/// it. A test that fails in the container before the stream ends stops the stream at once.
async fn stream_and_check(
    session: &DbSession<'_>,
    source: &impl DumpSource,
    file: std::fs::File,
    sync: bool,
    checks: Checks,
    verification: Option<&Verification>,
    bar: Option<indicatif::ProgressBar>,
) -> Result<(u64, Verdicts, Option<RemoteCheck>), DbOpsError> {
    let stream = stream_to_file(session, source, file, sync, checks, bar);
    let Some(verification) = verification.filter(|v| v.remote()) else {
        let (written, local) = stream.await?;
        return Ok((written, local, None));
    };
    let check = remote_check(session, verification.remote_test);
    tokio::pin!(stream, check);
    let (streamed, checked) = tokio::select! {
        streamed = &mut stream => (streamed, check.await),
        checked = &mut check => {
            // A failed check ends the download now: the stream is dropped, which closes its exec, and the
            // partial file goes with the caller's error.
            let checked = checked?;
            judge_test(session, verification, &checked)?;
            (stream.await, Ok(checked))
        }
    };
    let (written, local) = streamed?;
    let checked = checked?;
    judge_test(session, verification, &checked)?;
    Ok((written, local, Some(checked)))
}

/// Runs [`DbHook::check_script`] in the container (no time limit: it reads the whole dump).
async fn remote_check(
    session: &DbSession<'_>,
    test: Option<&'static str>,
) -> Result<RemoteCheck, DbOpsError> {
    let (out, stderr) = session
        .facts_and_stderr(session.hook.check_script(test), None)
        .await?;
    let sha256 = out
        .get("sha256")
        .map(str::trim)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            DbOpsError::Failed(format!(
                "the check in {} printed no SHA-256 for {}",
                session.target,
                session.hook.dump_path()
            ))
        })?
        .to_ascii_lowercase();
    let test = test.map(|_| match out.get("test") {
        Some("passed") => Ok(()),
        _ => Err(if stderr.is_empty() {
            "no complaint printed".to_string()
        } else {
            stderr.clone()
        }),
    });
    Ok(RemoteCheck { sha256, test })
}

/// A failed test in the container: the dump there is damaged.
fn judge_test(
    session: &DbSession<'_>,
    verification: &Verification,
    checked: &RemoteCheck,
) -> Result<(), DbOpsError> {
    match (&checked.test, verification.remote_test) {
        (Some(Err(complaint)), Some(test)) => Err(DbOpsError::Failed(format!(
            "{} is not a valid {} file (`{test}` failed in {}: {}); the dump in the container is damaged, run a new dump",
            session.hook.dump_path(),
            verification.format.describe(),
            session.target,
            complaint.lines().last().unwrap_or(complaint).trim()
        ))),
        _ => Ok(()),
    }
}

/// The size, the local checks and the hashes, in that order; the first that fails is the error.
fn judge(
    session: &DbSession<'_>,
    file: &DumpFile,
    written: u64,
    local: &Verdicts,
    remote: Option<&RemoteCheck>,
) -> Result<(), DbOpsError> {
    let dump_path = session.hook.dump_path();
    if written != file.size {
        return Err(DbOpsError::Failed(format!(
            "received {written} bytes but {dump_path} had {} bytes; the dump probably changed during the download, run it again",
            file.size
        )));
    }
    if let Some(Err(message)) = &local.gzip {
        return Err(DbOpsError::Failed(format!(
            "{dump_path} is not a valid gzip file ({message}, decoded locally); the dump in the container is damaged, run a new dump"
        )));
    }
    if let Some(remote) = remote {
        let here = hex(local);
        if here != remote.sha256 {
            return Err(DbOpsError::Failed(format!(
                "the downloaded bytes differ from {dump_path} in {} (SHA-256 here {here}, in the container {}); the transfer damaged them or the dump changed meanwhile, run the download again",
                session.target, remote.sha256
            )));
        }
    }
    Ok(())
}

/// Streams `cat DUMP` into `file`; returns the bytes written and the local checks' verdicts.
async fn stream_to_file(
    session: &DbSession<'_>,
    source: &impl DumpSource,
    file: std::fs::File,
    sync: bool,
    checks: Checks,
    bar: Option<indicatif::ProgressBar>,
) -> Result<(u64, Verdicts), DbOpsError> {
    let dump_path = session.hook.dump_path();
    let mut writer = DumpWriter::new(file, checks, sync, bar);
    let exec_result = source
        .stream_stdout(
            &session.target,
            vec!["cat".into(), "--".into(), dump_path.to_string()],
            &mut writer,
        )
        .await;
    // A failed stream's partial file is removed, so only a complete one is worth an fsync.
    let complete = exec_result.as_ref().is_ok_and(ExecResult::success);
    let written = writer.finish(complete && sync).await;
    let result = exec_result.map_err(|e| DbOpsError::Failed(e.to_string()))?;
    if !result.success() {
        return Err(DbOpsError::Failed(format!(
            "reading {dump_path} in {} failed with exit status {}: {}",
            session.target,
            result.exit_code,
            String::from_utf8_lossy(&result.stderr).trim()
        )));
    }
    let total = written
        .bytes
        .map_err(|e| DbOpsError::Failed(format!("writing the local file failed: {e}")))?;
    let verdicts = written.checked.map_err(DbOpsError::Failed)?;
    Ok((total, verdicts))
}

/// Reserves `size` bytes for the file up front: a disk too small fails now, not halfway, and the writes then fill
/// blocks already allocated. Filesystems without `fallocate` just skip it.
fn reserve(file: &std::fs::File, size: u64) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        if size == 0 {
            return Ok(());
        }
        // SAFETY: a plain syscall on a file descriptor we own; it reads no memory of ours.
        let rc = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                0,
                0,
                libc::off_t::try_from(size).unwrap_or(libc::off_t::MAX),
            )
        };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(error);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, size);
    Ok(())
}

/// The hidden file a download writes into; removed when dropped unless it was renamed to its final name.
struct PartialFile {
    path: PathBuf,
    keep: bool,
}

impl PartialFile {
    /// Creates `.NAME.partial-TOKEN` beside `dest` (never an existing file).
    fn create(
        dest: &Path,
        fallback_name: &str,
    ) -> Result<(PartialFile, std::fs::File), DbOpsError> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = dest.file_name().map_or_else(
            || fallback_name.to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let path = dir.join(format!(
            ".{file_name}.partial-{}",
            crate::hooks::script::new_token()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                DbOpsError::Refused(format!(
                    "cannot create {} ({e}); choose a writable --output-dir",
                    path.display()
                ))
            })?;
        Ok((PartialFile { path, keep: false }, file))
    }

    fn rename_to(mut self, dest: &Path) -> Result<(), DbOpsError> {
        std::fs::rename(&self.path, dest).map_err(|e| {
            DbOpsError::Failed(format!(
                "cannot rename {} to {}: {e}",
                self.path.display(),
                dest.display()
            ))
        })?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// SIGINT and SIGTERM handlers; install them before anything needs cleaning up, so that a signal is noticed
/// (and the partial file removed) instead of ending the process on the spot.
pub struct StopSignals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl StopSignals {
    pub fn install() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => StopSignals(Some((term, int))),
            _ => {
                tracing::warn!(
                    "cannot install signal handlers; a signal ends the download without cleanup"
                );
                StopSignals(None)
            }
        }
    }

    /// Resolves at the first signal with the matching exit code; never without handlers.
    pub async fn recv(&mut self) -> Exit {
        match &mut self.0 {
            Some((term, int)) => tokio::select! {
                _ = term.recv() => Exit::Terminated,
                _ = int.recv() => Exit::Interrupted,
            },
            None => std::future::pending().await,
        }
    }
}

/// What to do with a downloaded file: unpack it, import it locally, or restore it into the pod's database.
pub fn import_hint(hook: &DbHook, dest: &Path, format: DumpFormat) -> Vec<String> {
    let file = dest.display().to_string();
    let cat = format.unpack_command(&file);
    let import = match (hook, format) {
        (DbHook::Postgres(_), DumpFormat::PgCustom) => format!(
            "to import:  pg_restore --clean --if-exists --no-owner --host 127.0.0.1 --port 5432 --username \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" {file}"
        ),
        (DbHook::Postgres(_), _) => format!(
            "to import:  {cat} | psql --host 127.0.0.1 --port 5432 --username \"$POSTGRES_USER\" \"$POSTGRES_DB\""
        ),
        (DbHook::Mysql(_), _) => format!(
            "to import:  {cat} | mariadb --host 127.0.0.1 --port 3306 --user root -p \"$MYSQL_DATABASE\""
        ),
    };
    vec![
        format!("to unpack:  {cat} > dump.sql"),
        import,
        format!(
            "or restore it into the pod's database:  backup-ns {} restore --from-local {file}",
            hook.engine_name()
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::dbops::session::tests::{postgres, target};
    use crate::vocab::exec::{ContainerExec, ExecRequest, Stdin, StdoutSink};
    use futures::future::BoxFuture;
    use std::io::Write as _;
    use std::sync::Mutex;

    /// A container whose `cat` prints `data` in 1000-byte frames, then exits with `exit_code`; with `stall` it
    /// never ends after the frames (a stream the check must be able to cut short).
    struct Cat {
        data: Vec<u8>,
        exit_code: i32,
        stall: bool,
    }

    impl Cat {
        fn of(data: &[u8]) -> Cat {
            Cat {
                data: data.to_vec(),
                exit_code: 0,
                stall: false,
            }
        }
    }

    impl DumpSource for Cat {
        async fn stream_stdout(
            &self,
            _target: &ContainerRef,
            argv: Vec<String>,
            sink: &mut DumpWriter,
        ) -> Result<ExecResult, ExecError> {
            assert_eq!(argv[..2], ["cat", "--"]);
            for frame in self.data.chunks(1000) {
                sink.chunk(frame).await.unwrap();
            }
            if self.stall {
                std::future::pending::<()>().await;
            }
            Ok(ExecResult {
                exit_code: self.exit_code,
                ..ExecResult::default()
            })
        }
    }

    /// A container that answers the stat script (with `tools`) and the check script (with `check`), and records
    /// every script it ran.
    struct Container {
        stat: String,
        check: ExecResult,
        scripts: Mutex<Vec<String>>,
    }

    impl Container {
        /// A dump `data` in a container with `tools`, whose check reports `sha256_of`'s hash and `test`
        /// (`Some(true)`: passed, `Some(false)`: failed with a gzip complaint, `None`: no test line).
        fn new(data: &[u8], tools: &str, sha256_of: &[u8], test: Option<bool>) -> Container {
            let hex: String = data.iter().take(4).map(|b| format!("{b:02x}")).collect();
            let mut check = format!("backup-ns: sha256={}\n", sha256_hex(sha256_of));
            match test {
                Some(true) => check.push_str("backup-ns: test=passed\n"),
                Some(false) => check.push_str("backup-ns: test=failed\n"),
                None => {}
            }
            Container {
                stat: format!(
                    "backup-ns: dump_size={}\nbackup-ns: dump_mtime=1736378270\nbackup-ns: dump_head={hex}\nbackup-ns: tools={tools}\n",
                    data.len()
                ),
                check: ExecResult {
                    exit_code: 0,
                    stdout: check.into_bytes(),
                    stderr: if test == Some(false) {
                        b"gzip: stdin: unexpected end of file\n".to_vec()
                    } else {
                        Vec::new()
                    },
                },
                scripts: Mutex::new(Vec::new()),
            }
        }

        /// The same container with a record of `sha256_of`'s hash beside its dump.
        fn with_record(mut self, sha256_of: &[u8]) -> Container {
            self.stat
                .push_str(&format!("backup-ns: record={}\n", sha256_hex(sha256_of)));
            self
        }

        fn checks_run(&self) -> usize {
            self.scripts
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.contains("bns_sha256 <"))
                .count()
        }
    }

    impl ContainerExec for Container {
        fn exec<'a>(
            &'a self,
            request: ExecRequest,
            _stdout: StdoutSink<'a>,
        ) -> BoxFuture<'a, Result<ExecResult, ExecError>> {
            Box::pin(async move {
                let Stdin::Bytes(script) = request.stdin else {
                    panic!("scripts travel as bytes on stdin");
                };
                let script = String::from_utf8(script).unwrap();
                let is_check = script.contains("bns_sha256 <");
                self.scripts.lock().unwrap().push(script);
                Ok(if is_check {
                    self.check.clone()
                } else {
                    ExecResult {
                        exit_code: 0,
                        stdout: self.stat.clone().into_bytes(),
                        stderr: Vec::new(),
                    }
                })
            })
        }
    }

    /// The summary line ends with `verification` (after the size and speed).
    fn assert_summary(done: &Downloaded, verification: &str) {
        let summary = done.summary();
        assert!(summary.ends_with(verification), "{summary}");
    }

    fn sha256_hex(data: &[u8]) -> String {
        ring::digest::digest(&ring::digest::SHA256, data)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    const ALL_TOOLS: &str = " sha256sum gzip zstd";

    fn options(dir: &Path) -> DownloadOptions {
        DownloadOptions {
            output_dir: dir.to_path_buf(),
            output: None,
            force: false,
            verify: true,
            in_place: false,
            sync: true,
        }
    }

    /// Files in `dir`, hidden ones included, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Downloads from `container` streaming `cat` into `dir`, never stopped.
    async fn fetch(container: &Container, cat: &Cat, dir: &Path) -> Result<Downloaded, DbOpsError> {
        fetch_with(container, cat, &options(dir)).await
    }

    /// [`fetch`] with `options` as given.
    async fn fetch_with(
        container: &Container,
        cat: &Cat,
        options: &DownloadOptions,
    ) -> Result<Downloaded, DbOpsError> {
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: container,
        };
        download(&session, cat, options, |_| None, std::future::pending()).await
    }

    #[test]
    fn download_names_carry_namespace_dump_time_engine_and_real_suffix() {
        let at = DateTime::from_timestamp(1_736_378_270, 0).unwrap();
        assert_eq!(
            download_name("go-starter-dev", at, "postgres", DumpFormat::Gzip),
            "go-starter-dev_2025-01-08T23-17-50Z_postgres_dump.sql.gz"
        );
    }

    #[test]
    fn the_checks_follow_the_tools_the_container_has() {
        let tools = |t: &str| t.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let cases = [
            (
                DumpFormat::Gzip,
                ALL_TOOLS,
                "verified: SHA-256 matches the container's file, `gzip -t` passed in the container",
            ),
            (
                DumpFormat::Zstd,
                ALL_TOOLS,
                "verified: SHA-256 matches the container's file, `zstd -q -t` passed in the container",
            ),
            (
                DumpFormat::Plain,
                "sha256sum",
                "verified: SHA-256 matches the container's file",
            ),
            (
                DumpFormat::Plain,
                "openssl",
                "verified: SHA-256 matches the container's file",
            ),
            (
                DumpFormat::Gzip,
                "sha256sum",
                "verified with a local fallback: SHA-256 matches the container's file, gzip decoded locally (the container has no gzip)",
            ),
            (
                DumpFormat::Gzip,
                "",
                "verified with a local fallback: gzip decoded locally (the container has no sha256sum or gzip)",
            ),
            (
                DumpFormat::Zstd,
                "sha256sum gzip",
                "verified with a local fallback: SHA-256 matches the container's file (the container has no zstd); the zstd stream itself was NOT tested",
            ),
            (
                DumpFormat::Plain,
                "gzip zstd",
                "NOT verified (the container has no sha256sum); only the size was checked",
            ),
        ];
        for (format, have, expected) in cases {
            let v = Verification::choose(format, &tools(have));
            assert_eq!(v.describe(), expected, "{format:?} with [{have}]");
            // The local decoder is the fallback only: never beside a test in the container.
            assert!(!(v.local_gzip && v.remote_test.is_some()), "{v:?}");
        }
    }

    #[tokio::test]
    async fn a_verified_download_compares_hashes_tests_in_place_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let data = gzip(b"CREATE TABLE t ();\n");
        let container = Container::new(&data, ALL_TOOLS, &data, Some(true));
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: &container,
        };
        let mut announced = None;
        let done = download(
            &session,
            &Cat::of(&data),
            &options(dir.path()),
            |s| {
                announced = Some(s.size);
                None
            },
            std::future::pending(),
        )
        .await
        .unwrap();
        assert_eq!(announced, Some(data.len() as u64));
        assert_eq!(std::fs::read(&done.path).unwrap(), data);
        assert_eq!(
            listing(dir.path()),
            ["shop_2025-01-08T23-17-50Z_postgres_dump.sql.gz"]
        );
        assert_eq!(container.checks_run(), 1);
        let verification = done.verification.as_ref().unwrap();
        assert!(
            verification.hash && !verification.local_gzip,
            "{verification:?}"
        );
        assert_summary(
            &done,
            ", verified: SHA-256 matches the container's file, `gzip -t` passed in the container",
        );
        let check = container.scripts.lock().unwrap()[1].clone();
        assert!(check.contains("gzip -t < \"$bns_dump\""), "{check}");
    }

    #[tokio::test]
    async fn bytes_damaged_in_transit_fail_on_the_hash_and_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = gzip(&vec![7u8; 100_000]);
        let mut received = data.clone();
        let middle = received.len() / 2;
        received[middle] ^= 0x01;
        // The container's file is intact and passes its test; one bit flips on the way.
        let container = Container::new(&data, ALL_TOOLS, &data, Some(true));
        let err = fetch(&container, &Cat::of(&received), dir.path())
            .await
            .unwrap_err();
        assert_eq!(err.exit(), Exit::Failure);
        let text = err.to_string();
        assert!(
            text.starts_with("the downloaded bytes differ from /var/lib/postgresql/data/dump.sql.gz in pod/db-0 (container postgres) in namespace shop")
                && text.contains(&format!("in the container {}", sha256_hex(&data)))
                && text.contains(&format!("SHA-256 here {}", sha256_hex(&received))),
            "{text}"
        );
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }

    #[tokio::test]
    async fn a_test_failing_in_the_container_stops_the_stream_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = gzip(&vec![7u8; 100_000]);
        let container = Container::new(&data, ALL_TOOLS, &data, Some(false));
        // The stream never ends on its own: only the failed test can end the download.
        let stalled = Cat {
            stall: true,
            ..Cat::of(&data[..data.len() / 2])
        };
        let err = tokio::time::timeout(
            Duration::from_secs(10),
            fetch(&container, &stalled, dir.path()),
        )
        .await
        .expect("the failed test ends the download")
        .unwrap_err();
        assert_eq!(err.exit(), Exit::Failure);
        assert_eq!(
            err.to_string(),
            "/var/lib/postgresql/data/dump.sql.gz is not a valid gzip file (`gzip -t` failed in pod/db-0 (container postgres) in namespace shop: gzip: stdin: unexpected end of file); the dump in the container is damaged, run a new dump"
        );
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }

    #[tokio::test]
    async fn bytes_that_match_the_dumps_record_need_nothing_run_in_the_container() {
        let dir = tempfile::tempdir().unwrap();
        let data = gzip(b"CREATE TABLE t ();\n");
        let container = Container::new(&data, ALL_TOOLS, &data, Some(true)).with_record(&data);
        let done = fetch(&container, &Cat::of(&data), dir.path())
            .await
            .unwrap();
        assert_eq!(container.checks_run(), 0);
        assert_eq!(std::fs::read(&done.path).unwrap(), data);
        assert_summary(
            &done,
            ", verified: SHA-256 matches the dump's record, written after `gzip -t` passed in the container",
        );
    }

    #[tokio::test]
    async fn check_in_place_ignores_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let data = gzip(b"CREATE TABLE t ();\n");
        let container = Container::new(&data, ALL_TOOLS, &data, Some(true)).with_record(&data);
        let options = DownloadOptions {
            in_place: true,
            ..options(dir.path())
        };
        let done = fetch_with(&container, &Cat::of(&data), &options)
            .await
            .unwrap();
        assert_eq!(container.checks_run(), 1);
        assert_summary(
            &done,
            ", verified: SHA-256 matches the container's file, `gzip -t` passed in the container",
        );
    }

    #[tokio::test]
    async fn a_stale_record_is_settled_by_the_check_in_the_container() {
        let dir = tempfile::tempdir().unwrap();
        let data = gzip(b"CREATE TABLE t ();\n");
        // The record names an older dump; the file in the container is what arrives and passes its test.
        let container =
            Container::new(&data, ALL_TOOLS, &data, Some(true)).with_record(b"an older dump");
        let done = fetch(&container, &Cat::of(&data), dir.path())
            .await
            .unwrap();
        assert_eq!(container.checks_run(), 1);
        assert_summary(
            &done,
            ", verified: SHA-256 matches the container's file, `gzip -t` passed in the container; the dump's record was out of date",
        );
    }

    #[tokio::test]
    async fn bytes_damaged_in_transit_fail_against_the_record_and_the_container() {
        let dir = tempfile::tempdir().unwrap();
        let data = gzip(&vec![7u8; 100_000]);
        let mut received = data.clone();
        let middle = received.len() / 2;
        received[middle] ^= 0x01;
        let container = Container::new(&data, ALL_TOOLS, &data, Some(true)).with_record(&data);
        let err = fetch(&container, &Cat::of(&received), dir.path())
            .await
            .unwrap_err();
        assert_eq!(container.checks_run(), 1);
        assert!(
            err.to_string().starts_with(
                "the downloaded bytes differ from /var/lib/postgresql/data/dump.sql.gz"
            ),
            "{err}"
        );
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }

    #[tokio::test]
    async fn a_record_mismatch_without_hash_tools_fails_and_names_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let data = gzip(b"CREATE TABLE t ();\n");
        let container = Container::new(&data, "gzip", &[], None).with_record(b"an older dump");
        let err = fetch(&container, &Cat::of(&data), dir.path())
            .await
            .unwrap_err();
        assert_eq!(container.checks_run(), 0);
        assert!(
            err.to_string().contains(
                "do not match the dump's record /var/lib/postgresql/data/dump.sql.gz.sha256"
            ) && err
                .to_string()
                .ends_with("run the download again with --check-in-place"),
            "{err}"
        );
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }

    #[tokio::test]
    async fn without_the_tools_a_gzip_dump_is_decoded_locally_and_the_summary_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let data = gzip(b"CREATE TABLE t ();\n");
        let container = Container::new(&data, "", &[], None);
        let done = fetch(&container, &Cat::of(&data), dir.path())
            .await
            .unwrap();
        assert_eq!(container.checks_run(), 0);
        assert_summary(
            &done,
            ", verified with a local fallback: gzip decoded locally (the container has no sha256sum or gzip)",
        );
    }

    #[tokio::test]
    async fn a_damaged_short_or_stopped_download_removes_its_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = gzip(&vec![7u8; 100_000]);
        let middle = data.len() / 2;
        data[middle] ^= 0xFF;
        // No tools in the container: the damage is found by the local decoder.
        let container = Container::new(&data, "", &[], None);
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: &container,
        };
        let cat = Cat::of(&data);
        let opts = options(dir.path());
        let run = |stop: Option<Exit>| {
            download(&session, &cat, &opts, |_| None, async move {
                match stop {
                    Some(exit) => exit,
                    None => std::future::pending().await,
                }
            })
        };
        let damaged = run(None).await.unwrap_err();
        assert!(
            damaged.to_string().contains("is not a valid gzip file")
                && damaged.to_string().contains("decoded locally"),
            "{damaged}"
        );
        let stopped = run(Some(Exit::Terminated)).await.unwrap_err();
        assert_eq!(stopped.exit(), Exit::Terminated);
        let short = fetch(&container, &Cat::of(&data[..100]), dir.path())
            .await
            .unwrap_err();
        assert!(
            short.to_string().starts_with("received 100 bytes"),
            "{short}"
        );
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }

    #[tokio::test]
    async fn an_existing_file_is_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"plain sql\n".to_vec();
        let container = Container::new(&data, ALL_TOOLS, &data, None);
        let dest = dir.path().join("latest.sql");
        std::fs::write(&dest, "old").unwrap();
        let mut opts = options(dir.path());
        opts.output = Some(dest.clone());
        let cat = Cat::of(&data);
        let err = fetch_with(&container, &cat, &opts).await.unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        opts.force = true;
        let done = fetch_with(&container, &cat, &opts).await.unwrap();
        assert_summary(&done, ", verified: SHA-256 matches the container's file");
        assert_eq!(std::fs::read(&dest).unwrap(), data);
    }

    #[test]
    fn the_hint_after_a_custom_archive_uses_pg_restore() {
        let lines = import_hint(&postgres(), Path::new("d.pgdump"), DumpFormat::PgCustom);
        assert_eq!(lines[0], "to unpack:  cat d.pgdump > dump.sql");
        assert!(
            lines[1].starts_with("to import:  pg_restore "),
            "{}",
            lines[1]
        );
        assert!(lines[2].ends_with("backup-ns postgres restore --from-local d.pgdump"));
    }
}
