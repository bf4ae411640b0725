//! `postgres|mysql download`: the container's dump file streamed into a verified local file.
//!
//! `cat DUMP` runs in the pod and its stdout arrives frame by frame ([`DumpSource`]); nothing is copied in the pod.
//! Each frame goes uncopied to a [`DumpWriter`] (file-writer and gzip-check threads behind bounded queues). The
//! bytes land in a hidden `.NAME.partial-TOKEN` file beside the destination, which is removed on every way out
//! (error, signal, panic) except success: the size is checked against a `stat` taken first, the gzip stream must
//! end cleanly, the file is fsynced, and only then does it get its final name.

use super::dump_file::DumpWriter;
use super::{DbHook, DbOpsError, DbSession, DumpFormat, human_bytes};
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
    /// Decode a gzip dump as it arrives (the size is checked either way).
    pub verify: bool,
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

/// A completed download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The file under its final name.
    pub path: PathBuf,
    pub bytes: u64,
    pub elapsed: Duration,
    pub format: DumpFormat,
    /// The gzip stream was decoded end to end.
    pub verified: bool,
}

impl Downloaded {
    /// `downloaded 1.0 MiB in 0.3s (3.3 MiB/s), gzip verified`.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "downloaded {} in {secs:.1}s ({}/s){}",
            human_bytes(self.bytes),
            human_bytes((self.bytes as f64 / secs.max(0.001)) as u64),
            match (self.format, self.verified) {
                (_, true) => ", gzip verified",
                (DumpFormat::Gzip, false) => ", gzip NOT verified (--no-verify)",
                _ => "",
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
    let bar = on_start(&Starting {
        dump_path: hook.dump_path(),
        size: file.size,
        target: &session.target,
        dest: &dest,
    });
    let started = Instant::now();
    let verify = file.format == DumpFormat::Gzip && options.verify;
    let streamed = tokio::select! {
        streamed = stream_to_file(session, source, std_file, options.sync, verify, bar.clone()) => streamed,
        exit = stop => Err(DbOpsError::Stopped {
            exit,
            message: format!(
                "{}: the download stopped and its partial file was removed; {} was not written",
                if exit == Exit::Terminated { "terminated" } else { "interrupted" },
                dest.display()
            ),
        }),
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let (written, gzip_ok) = streamed?;
    if written != file.size {
        return Err(DbOpsError::Failed(format!(
            "received {written} bytes but {} had {} bytes; the dump probably changed during the download, run it again",
            hook.dump_path(),
            file.size
        )));
    }
    if let Some(Err(message)) = gzip_ok {
        return Err(DbOpsError::Failed(format!(
            "{} is not a valid gzip file ({message}); the dump in the container is damaged, run a new dump",
            hook.dump_path()
        )));
    }
    partial.rename_to(&dest)?;
    Ok(Downloaded {
        path: dest,
        bytes: written,
        elapsed: started.elapsed(),
        format: file.format,
        verified: verify,
    })
}

/// Streams `cat DUMP` into `file`; returns the bytes written and, for gzip, the integrity verdict.
async fn stream_to_file(
    session: &DbSession<'_>,
    source: &impl DumpSource,
    file: std::fs::File,
    sync: bool,
    verify_gzip: bool,
    bar: Option<indicatif::ProgressBar>,
) -> Result<(u64, Option<Result<(), String>>), DbOpsError> {
    let dump_path = session.hook.dump_path();
    let mut writer = DumpWriter::new(file, verify_gzip, bar);
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
    Ok((total, written.gzip))
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
    use crate::hooks::dbops::session::tests::{Canned, postgres, target};
    use bytes::Bytes;
    use std::io::Write as _;

    /// A container whose `cat` prints `data` in 1000-byte frames, then exits with `exit_code`.
    struct Cat {
        data: Vec<u8>,
        exit_code: i32,
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
                sink.chunk(Bytes::copy_from_slice(frame)).await.unwrap();
            }
            Ok(ExecResult {
                exit_code: self.exit_code,
                ..ExecResult::default()
            })
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// The stat script's answer for a dump of `size` bytes starting with `head`.
    fn stat(size: usize, head: &[u8]) -> Canned {
        let hex: String = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
        Canned::new(
            0,
            &format!(
                "backup-ns: dump_size={size}\nbackup-ns: dump_mtime=1736378270\nbackup-ns: dump_head={hex}\n"
            ),
            "",
        )
    }

    fn options(dir: &Path) -> DownloadOptions {
        DownloadOptions {
            output_dir: dir.to_path_buf(),
            output: None,
            force: false,
            verify: true,
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

    #[test]
    fn download_names_carry_namespace_dump_time_engine_and_real_suffix() {
        let at = DateTime::from_timestamp(1_736_378_270, 0).unwrap();
        assert_eq!(
            download_name("go-starter-dev", at, "postgres", DumpFormat::Gzip),
            "go-starter-dev_2025-01-08T23-17-50Z_postgres_dump.sql.gz"
        );
    }

    #[tokio::test]
    async fn a_verified_download_gets_its_final_name_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let data = gzip(b"CREATE TABLE t ();\n");
        let exec = stat(data.len(), &data);
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: &exec,
        };
        let mut announced = None;
        let done = download(
            &session,
            &Cat {
                data: data.clone(),
                exit_code: 0,
            },
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
        assert!(done.verified);
        assert_eq!(std::fs::read(&done.path).unwrap(), data);
        assert_eq!(
            listing(dir.path()),
            ["shop_2025-01-08T23-17-50Z_postgres_dump.sql.gz"]
        );
        assert!(
            done.summary().ends_with(", gzip verified"),
            "{}",
            done.summary()
        );
    }

    #[tokio::test]
    async fn a_damaged_short_or_stopped_download_removes_its_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = gzip(&vec![7u8; 100_000]);
        let middle = data.len() / 2;
        data[middle] ^= 0xFF;
        let exec = stat(data.len(), &data);
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: &exec,
        };
        let cat = Cat {
            data: data.clone(),
            exit_code: 0,
        };
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
            damaged.to_string().contains("is not a valid gzip file"),
            "{damaged}"
        );
        let stopped = run(Some(Exit::Terminated)).await.unwrap_err();
        assert_eq!(stopped.exit(), Exit::Terminated);
        let short = download(
            &session,
            &Cat {
                data: data[..100].to_vec(),
                exit_code: 0,
            },
            &opts,
            |_| None,
            std::future::pending(),
        )
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
        let exec = stat(data.len(), &data);
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: &exec,
        };
        let dest = dir.path().join("latest.sql");
        std::fs::write(&dest, "old").unwrap();
        let mut opts = options(dir.path());
        opts.output = Some(dest.clone());
        let cat = Cat {
            data: data.clone(),
            exit_code: 0,
        };
        let err = download(&session, &cat, &opts, |_| None, std::future::pending())
            .await
            .unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        opts.force = true;
        let done = download(&session, &cat, &opts, |_| None, std::future::pending())
            .await
            .unwrap();
        assert!(!done.verified);
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
