//! PostgreSQL hooks against a real server.

use crate::support::local_exec::LocalExec;
use crate::support::postgres::Postgres;
use crate::{
    assert_scripts_only_on_stdin, assert_threshold_trips_before_dumping, decompress, fake_tool,
    listing, process_is_gone, read_pid, target,
};
use backup_ns::hooks::{self, HookError, HookReport};
use backup_ns::vocab::hook::{Compression, HookAction, PostgresHook};
use std::time::Duration;

const SEED: &str = "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));
INSERT INTO items SELECT g, 'item ' || g || E' \\'quoted\\' ünïcødé', g * 1.25 FROM generate_series(1, 5000) g;
CREATE TABLE notes (id serial PRIMARY KEY, body text);
INSERT INTO notes (body) VALUES ('a'), (NULL), ('tab	and newline
inside');";

const CHECKSUM: &str = "SELECT (SELECT count(*) FROM items) || ':' || (SELECT md5(string_agg(id || '|' || name || '|' || price, ',' ORDER BY id)) FROM items) || ':' || (SELECT count(*) FROM notes) || ':' || (SELECT md5(string_agg(id || '|' || coalesce(body, '<null>'), ',' ORDER BY id)) FROM notes)";

fn hook(pg: &Postgres, dump_path: &str) -> PostgresHook {
    let mut hook = PostgresHook::new("statefulset/db".parse().expect("a workload"));
    hook.dump.port = pg.port;
    hook.dump.dump_file = dump_path.into();
    hook
}

/// [`hook`] with the server's user and password, dumping `database`.
fn authed(pg: &Postgres, dump_path: &std::path::Path, database: &str) -> PostgresHook {
    let mut params = hook(pg, dump_path.to_str().unwrap());
    params.dump.user = pg.user.clone();
    params.dump.password = pg.password.clone();
    params.dump.database = database.into();
    params
}

/// Runs the dump hook `params` through `exec`, with a minute to finish.
async fn run_pg(params: PostgresHook, exec: &LocalExec) -> Result<HookReport, HookError> {
    hooks::run(
        "pg",
        &named(params),
        exec,
        &target(),
        Duration::from_secs(60),
    )
    .await
}

fn named(params: PostgresHook) -> HookAction {
    HookAction::Postgres(params)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dump_restores_into_an_empty_database_with_identical_rows() {
    let pg = Postgres::start();
    pg.create_database("shop");
    pg.load("shop", SEED.as_bytes());
    let dumps = tempfile::tempdir().unwrap();
    let dump_path = dumps.path().join("dump.sql.gz");
    // The original's defaults: user, password and database come from the container's own env.
    let exec = LocalExec::new().envs(pg.container_env("shop"));

    let report = hooks::run(
        "pg",
        &named(hook(&pg, dump_path.to_str().unwrap())),
        &exec,
        &target(),
        Duration::from_secs(120),
    )
    .await
    .expect("dump succeeds");

    let size = std::fs::metadata(&dump_path).expect("dump exists").len();
    assert_eq!(report.dump_size, Some(size));
    assert!(
        report
            .tool_version
            .as_deref()
            .unwrap_or("")
            .starts_with("pg_dump (PostgreSQL)"),
        "{report:?}"
    );
    assert!(report.disk.is_some());
    assert_eq!(report.previous_dump.as_deref(), Some("none"));
    assert_eq!(
        listing(dumps.path()),
        ["dump.sql.gz", "dump.sql.gz.sha256"],
        "no partial or pid file is left"
    );

    let sql = decompress("gzip", &dump_path);
    assert!(
        String::from_utf8_lossy(&sql).contains("DROP TABLE IF EXISTS"),
        "plain --clean --if-exists dump"
    );
    pg.create_database("restored");
    pg.load("restored", &sql);
    assert_eq!(pg.psql("restored", CHECKSUM), pg.psql("shop", CHECKSUM));
    assert!(pg.psql("shop", CHECKSUM).starts_with("5000:"));

    let records = exec.records();
    assert_scripts_only_on_stdin(&records, &pg.password);
    for record in &records {
        let script = String::from_utf8_lossy(&record.stdin);
        assert!(
            !script.contains(&pg.password),
            "an env-provided password never leaves the container"
        );
    }

    // A second run sees the previous dump and replaces it atomically.
    let again = hooks::run(
        "pg",
        &named(hook(&pg, dump_path.to_str().unwrap())),
        &exec,
        &target(),
        Duration::from_secs(120),
    )
    .await
    .expect("second dump succeeds");
    assert!(
        again
            .previous_dump
            .unwrap()
            .starts_with(&format!("{size} bytes"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wrong_password_fails_and_never_shows_the_password() {
    let pg = Postgres::start();
    let dumps = tempfile::tempdir().unwrap();
    let dump_path = dumps.path().join("dump.sql.gz");
    let wrong = "Wr0ng-Pa55-unique-7731";
    let exec = LocalExec::new();
    let mut params = hook(&pg, dump_path.to_str().unwrap());
    params.dump.user = pg.user.clone();
    params.dump.password = String::from(wrong);
    params.dump.database = "postgres".into();

    let err = run_pg(params, &exec)
        .await
        .expect_err("a wrong password fails");
    assert!(matches!(err, HookError::CheckFailed { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("SELECT 1 failed"), "{shown}");
    assert!(shown.contains("password authentication failed"), "{shown}");
    assert!(!shown.contains(wrong), "{shown}");
    assert_scripts_only_on_stdin(&exec.records(), wrong);
    assert_eq!(
        exec.records().len(),
        1,
        "one exec session, stopped by its check"
    );
    assert!(listing(dumps.path()).is_empty());

    // The same through the container's env.
    let exec = LocalExec::new().env("POSTGRES_PASSWORD", wrong);
    let mut params = hook(&pg, dump_path.to_str().unwrap());
    params.dump.user = pg.user.clone();
    params.dump.database = "postgres".into();
    let err = run_pg(params, &exec)
        .await
        .expect_err("a wrong env password fails");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("password authentication failed"), "{shown}");
    assert!(!shown.contains(wrong), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_injection_attempt_is_dumped_literally() {
    let pg = Postgres::start();
    let marker = tempfile::tempdir().unwrap();
    let pwned = marker.path().join("x");
    let evil_db = format!("a'; touch {}; '", pwned.display());
    pg.create_database(&evil_db);
    pg.psql(
        &evil_db,
        "CREATE TABLE literal_marker (v text); INSERT INTO literal_marker VALUES ('ok')",
    );
    // The dump directory has a quote and a `$(...)` in its name too.
    let parent = tempfile::tempdir().unwrap();
    let dumps = parent.path().join("it's $(touch x) dir");
    std::fs::create_dir(&dumps).unwrap();
    let dump_path = dumps.join("dump.sql.gz");

    let mut params = hook(&pg, dump_path.to_str().unwrap());
    params.dump.user = pg.user.clone();
    params.dump.password = pg.password.clone();
    params.dump.database = evil_db.clone();
    let exec = LocalExec::new().cwd(parent.path());
    run_pg(params, &exec)
        .await
        .expect("the oddly named database is dumped");

    let sql = String::from_utf8(decompress("gzip", &dump_path)).unwrap();
    assert!(
        sql.contains("literal_marker"),
        "dumped the database named literally"
    );
    assert!(!pwned.exists(), "the injected command ran");
    assert!(!parent.path().join("x").exists() && !dumps.join("x").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_space_threshold_exceeded_fails_before_dumping() {
    let pg = Postgres::start();
    let dumps = tempfile::tempdir().unwrap();
    let mut params = hook(&pg, dumps.path().join("dump.sql.gz").to_str().unwrap());
    params.dump.user = pg.user.clone();
    params.dump.password = pg.password.clone();
    params.dump.database = "postgres".into();
    params.dump.threshold = 0;
    assert_threshold_trips_before_dumping(&named(params), dumps.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_space_gate_reads_df_as_the_runner_does_and_stops_before_the_dump() {
    let pg = Postgres::start();
    let dumps = tempfile::tempdir().unwrap();
    let dump_path = dumps.path().join("dump.sql.gz");
    let mut params = authed(&pg, &dump_path, "postgres");
    params.dump.threshold = 90;
    let header = "Filesystem 1024-blocks Used Available Capacity Mounted on";
    // A long filesystem name on a line of its own, spaces in the mount point (as `parse_df` reads them).
    let wrapped = |pct: u8| {
        format!(
            "cat <<'EOF'\n{header}\nmy volume:/exports/a very long name\n   100 {pct} {} {pct}% /mnt/my data\nEOF",
            100 - pct
        )
    };
    for (df, expected) in [
        (wrapped(95), Err("above the threshold of 90%")),
        (wrapped(90), Ok(90)),
        (
            "echo 'df: cannot read the mount table' >&2; exit 1".to_string(),
            Err("unexpected `df -P` output: no output"),
        ),
        (
            format!("echo '{header}'; echo 'x 1 2 3 n/a /'"),
            Err("unexpected `df -P` output: no capacity column"),
        ),
    ] {
        let fakes = tempfile::tempdir().unwrap();
        fake_tool(fakes.path(), "df", &df);
        let exec = LocalExec::new().path_prepend(fakes.path());
        let outcome = run_pg(params.clone(), &exec).await;
        assert_eq!(exec.records().len(), 1, "{df}: one exec session");
        match (outcome, expected) {
            (Ok(report), Ok(used)) => {
                assert_eq!(report.disk.map(|d| d.used_percent), Some(used), "{df}");
                assert!(report.dump_size.unwrap() > 0, "{df}");
                assert_eq!(
                    listing(dumps.path()),
                    ["dump.sql.gz", "dump.sql.gz.sha256"],
                    "{df}"
                );
                std::fs::remove_file(&dump_path).unwrap();
                std::fs::remove_file(dumps.path().join("dump.sql.gz.sha256")).unwrap();
            }
            (Err(err), Err(message)) => {
                assert!(err.to_string().contains(message), "{df}: {err}");
                assert!(
                    matches!(
                        err,
                        HookError::SpaceThreshold {
                            used_percent: 95,
                            ..
                        } | HookError::Output { .. }
                    ),
                    "{df}: {err:?}"
                );
                assert!(
                    listing(dumps.path()).is_empty(),
                    "{df}: the dump never started"
                );
            }
            (outcome, expected) => panic!("{df}: expected {expected:?}, got {outcome:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_timeout_kills_the_dump_and_leaves_no_partial_file() {
    let pg = Postgres::start();
    let dumps = tempfile::tempdir().unwrap();
    let fakes = tempfile::tempdir().unwrap();
    let pid_file = fakes.path().join("pg_dump.pid");
    // A pg_dump that writes a little and then hangs, like one stuck on a lock.
    fake_tool(
        fakes.path(),
        "pg_dump",
        &format!(
            "case \"$1\" in --version) echo 'pg_dump (fake) 1'; exit 0;; esac\necho $$ > '{}'\necho 'SELECT 1;'\nexec sleep 120",
            pid_file.display()
        ),
    );
    let exec = LocalExec::new().path_prepend(fakes.path());
    let dump_path = dumps.path().join("dump.sql.gz");
    std::fs::write(&dump_path, b"previous dump").unwrap();
    let params = authed(&pg, &dump_path, "postgres");

    let err = hooks::run(
        "pg",
        &named(params),
        &exec,
        &target(),
        Duration::from_secs(8),
    )
    .await
    .expect_err("times out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        err.to_string()
            .contains("was killed and the partial dump removed"),
        "{err}"
    );
    let pid = read_pid(&pid_file, 1);
    assert!(process_is_gone(pid), "the remote pg_dump {pid} still runs");
    assert_eq!(
        listing(dumps.path()),
        ["dump.sql.gz"],
        "no partial file is left"
    );
    assert_eq!(
        std::fs::read(&dump_path).unwrap(),
        b"previous dump",
        "the previous dump is untouched"
    );
    let records = exec.records();
    assert_eq!(records.len(), 2, "the check with the dump, then the kill");
    assert!(String::from_utf8_lossy(&records[1].stdin).contains("kill -TERM"));
}

/// Runs the dump hook with `tool` replaced by a shell script of `body`; the dump must fail, and its reason is
/// returned.
async fn dump_with_fake(params: &PostgresHook, tool: &str, body: &str) -> String {
    let fakes = tempfile::tempdir().unwrap();
    fake_tool(fakes.path(), tool, body);
    let exec = LocalExec::new().path_prepend(fakes.path());
    let err = run_pg(params.clone(), &exec)
        .await
        .expect_err("the dump fails");
    match err {
        HookError::DumpFailed { reason, .. } => reason,
        other => panic!("{tool}: expected DumpFailed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_byte_and_failing_dumps_fail_and_keep_the_previous_dump() {
    let pg = Postgres::start();
    let dumps = tempfile::tempdir().unwrap();
    let dump_path = dumps.path().join("dump.sql.gz");
    std::fs::write(&dump_path, b"previous dump").unwrap();
    let params = authed(&pg, &dump_path, "postgres");

    for (body, reason) in [
        ("exit 0", "empty dump"),
        (
            "echo 'partial SQL'; echo 'pg_dump: error: connection lost' >&2; exit 1",
            "dump tool exited with status 1",
        ),
    ] {
        let failed = dump_with_fake(
            &params,
            "pg_dump",
            &format!("case \"$1\" in --version) echo 'pg_dump (fake) 1'; exit 0;; esac\n{body}"),
        )
        .await;
        assert_eq!(failed, reason);
        assert_eq!(
            listing(dumps.path()),
            ["dump.sql.gz"],
            "partial file removed"
        );
        assert_eq!(std::fs::read(&dump_path).unwrap(), b"previous dump");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_or_a_short_write_fails_the_dump_and_keeps_the_previous_one_and_its_record()
{
    let pg = Postgres::start();
    let dumps = tempfile::tempdir().unwrap();
    let dump_path = dumps.path().join("dump.sql.gz");
    let params = authed(&pg, &dump_path, "postgres");
    hooks::run(
        "pg",
        &named(params.clone()),
        &LocalExec::new(),
        &target(),
        Duration::from_secs(60),
    )
    .await
    .expect("the first dump succeeds");
    let previous = std::fs::read(&dump_path).unwrap();
    let record = std::fs::read_to_string(dumps.path().join("dump.sql.gz.sha256")).unwrap();
    assert!(
        record.ends_with("  dump.sql.gz\n") && record.len() == 64 + 2 + 11 + 1,
        "{record:?}"
    );

    let gzip = crate::support::binaries::find(&["gzip"], &[]).expect("gzip");
    let tee = crate::support::binaries::find(&["tee"], &[]).expect("tee");
    for (tool, body, reason) in [
        (
            "gzip",
            // The compressor cuts its stream short and still exits 0.
            format!(
                "case \"$1\" in -c) {} -c | head -c 100; exit 0;; esac\nexec {} \"$@\"",
                gzip.display(),
                gzip.display()
            ),
            "the compressed dump failed its test as it was written (gzip): gzip: stdin: unexpected end of file",
        ),
        (
            "tee",
            // The file gets a short write (a full disk); the stream itself goes on whole.
            format!("{} \"$1\"; truncate -s 50 \"$1\"; exit 1", tee.display()),
            "the dump could not be written whole (tee exited with status 1)",
        ),
    ] {
        assert_eq!(dump_with_fake(&params, tool, &body).await, reason, "{tool}");
        assert_eq!(
            listing(dumps.path()),
            ["dump.sql.gz", "dump.sql.gz.sha256"],
            "{tool}: no partial file is left"
        );
        assert_eq!(std::fs::read(&dump_path).unwrap(), previous, "{tool}");
        assert_eq!(
            std::fs::read_to_string(dumps.path().join("dump.sql.gz.sha256")).unwrap(),
            record,
            "{tool}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_check_reports_tools_and_disk_without_dumping() {
    let pg = Postgres::start();
    let dumps = tempfile::tempdir().unwrap();
    let dump_path = dumps.path().join("dump.sql.gz");
    let params = authed(&pg, &dump_path, "postgres");
    let exec = LocalExec::new();
    let report = hooks::check(
        "pg",
        &named(params),
        &exec,
        &target(),
        Duration::from_secs(60),
    )
    .await
    .expect("check passes");
    assert!(report.checked_only);
    assert!(report.tool_version.unwrap().contains("pg_dump"));
    assert!(report.disk.is_some());
    assert_eq!(exec.records().len(), 1);
    assert!(listing(dumps.path()).is_empty(), "a check writes nothing");

    // A container with a shell and coreutils but no PostgreSQL client tools.
    let bare = tempfile::tempdir().unwrap();
    for tool in ["sh", "rm", "cat", "df", "wc", "head", "date", "gzip"] {
        let real = crate::support::binaries::find(&[tool], &[]).expect("coreutils present");
        std::os::unix::fs::symlink(real, bare.path().join(tool)).unwrap();
    }
    let exec = LocalExec::new().env("PATH", bare.path().to_str().unwrap());
    let mut params = PostgresHook::new("statefulset/db".parse().expect("a workload"));
    params.dump.dump_file = dump_path.to_str().unwrap().into();
    let err = hooks::check(
        "pg",
        &named(params),
        &exec,
        &target(),
        Duration::from_secs(60),
    )
    .await
    .expect_err("no tools on PATH");
    assert!(
        matches!(&err, HookError::ToolMissing { tool, .. } if tool == "psql"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_container_env_is_named_in_the_error() {
    let dumps = tempfile::tempdir().unwrap();
    let mut params = PostgresHook::new("statefulset/db".parse().expect("a workload"));
    params.dump.dump_file = dumps.path().join("dump.sql.gz").to_str().unwrap().into();
    let exec = LocalExec::new()
        .env("POSTGRES_USER", "app")
        .env("POSTGRES_DB", "app");
    let err = hooks::check(
        "pg",
        &named(params),
        &exec,
        &target(),
        Duration::from_secs(60),
    )
    .await
    .expect_err("POSTGRES_PASSWORD is not set");
    match &err {
        HookError::CheckFailed { reason, .. } => {
            assert_eq!(
                reason,
                "environment variable POSTGRES_PASSWORD is not set in the container"
            );
        }
        other => panic!("expected CheckFailed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_falls_back_to_gzip_when_the_container_lacks_it() {
    let pg = Postgres::start();
    // A container with the PostgreSQL client tools and gzip, but no zstd.
    let bare = tempfile::tempdir().unwrap();
    let pg_dirs = crate::support::binaries::postgres_dirs();
    for tool in [
        "sh", "rm", "cat", "df", "wc", "head", "date", "gzip", "dd", "mv", "sync", "tee", "psql",
        "pg_dump",
    ] {
        let real = crate::support::binaries::find(&[tool], &pg_dirs).expect("tool present");
        // Debian's /usr/bin/psql is a perl wrapper: prefer the real binaries of the newest server version.
        let real = pg_dirs
            .iter()
            .map(|d| d.join(tool))
            .find(|p| p.exists())
            .unwrap_or(real);
        std::os::unix::fs::symlink(real, bare.path().join(tool)).unwrap();
    }
    let exec = LocalExec::new().env("PATH", bare.path().to_str().unwrap());
    let dumps = tempfile::tempdir().unwrap();
    let dump_path = dumps.path().join("dump.sql.zst");
    let mut params = authed(&pg, &dump_path, "postgres");
    params.dump.compression = Compression::Zstd;

    // Without `tee` the stream cannot be tested as it is written: the check says so before anything is written.
    let tee = bare.path().join("tee");
    let real_tee = std::fs::read_link(&tee).unwrap();
    std::fs::remove_file(&tee).unwrap();
    let err = run_pg(params.clone(), &exec).await.expect_err("no tee");
    assert!(
        matches!(&err, HookError::ToolMissing { tool, .. } if tool == "tee"),
        "{err:?}"
    );
    assert!(
        listing(dumps.path()).is_empty(),
        "{:?}",
        listing(dumps.path())
    );
    std::os::unix::fs::symlink(real_tee, &tee).unwrap();

    let report = run_pg(params, &exec)
        .await
        .expect("dump succeeds with gzip");
    assert_eq!(report.compression.as_deref(), Some("gzip"));
    assert_eq!(
        report.warnings,
        ["zstd is not installed in the container; compressing with gzip"]
    );
    assert!(!decompress("gzip", &dump_path).is_empty());
    // Neither openssl nor sha256sum here: the dump stands without a record, and nothing else is left behind.
    assert_eq!(listing(dumps.path()), ["dump.sql.zst"]);

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["kind"], "postgres");
    assert_eq!(json["dump_size"], report.dump_size.unwrap());
    assert!(json["duration_ms"].is_u64());
    assert!(!json.to_string().contains(&pg.password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_scripts_work_under_dash_and_bash() {
    let pg = Postgres::start();
    pg.create_database("shop");
    pg.load("shop", SEED.as_bytes());
    for shell in ["dash", "bash"] {
        // `sh` in the "container" is this shell.
        let bin = tempfile::tempdir().unwrap();
        let real =
            crate::support::binaries::require(&[shell], &[], &format!("apt-get install {shell}"));
        std::os::unix::fs::symlink(real, bin.path().join("sh")).unwrap();
        let exec = LocalExec::new().path_prepend(bin.path());
        let dumps = tempfile::tempdir().unwrap();
        let dump_path = dumps.path().join("dump.sql.gz");
        let mut params = hook(&pg, dump_path.to_str().unwrap());
        params.dump.user = pg.user.clone();
        params.dump.password = pg.password.clone();
        params.dump.database = "shop".into();
        run_pg(params, &exec)
            .await
            .unwrap_or_else(|e| panic!("dump under {shell}: {e}"));
        let restored = format!("restored_{shell}");
        pg.create_database(&restored);
        pg.load(&restored, &decompress("gzip", &dump_path));
        assert_eq!(
            pg.psql(&restored, CHECKSUM),
            pg.psql("shop", CHECKSUM),
            "{shell}"
        );
        assert_eq!(
            listing(dumps.path()),
            ["dump.sql.gz", "dump.sql.gz.sha256"],
            "{shell}"
        );
    }
}
