//! A throwaway PostgreSQL server: `initdb` in a temp dir owned by the `postgres` OS user (initdb and postgres
//! refuse to run as root, and CI runs as root), started with `runuser -u postgres` on a free port of 127.0.0.1
//! with its socket in the temp dir. Local socket connections are trusted (for the test's admin queries); TCP
//! needs a password (scram-sha-256), which is what the hooks use. Stopped and deleted on drop.

use super::binaries;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "apt-get install postgresql";

pub struct Postgres {
    dir: tempfile::TempDir,
    /// The data directory (in `dir`, or where [`Postgres::start_on`] put it).
    data: PathBuf,
    bin_dir: PathBuf,
    child: Child,
    pub port: u16,
    /// A superuser that logs in over TCP with [`Postgres::password`].
    pub user: String,
    pub password: String,
}

impl Postgres {
    /// Starts a fresh server. Panics (failing the test) with an install hint when the binaries are missing.
    pub fn start() -> Postgres {
        Self::start_with(None, &[], true)
    }

    /// Starts a fresh server whose data directory is `data` (e.g. inside a simulated volume, so that a snapshot
    /// of the volume holds the database itself), with extra `-c` settings. `data`'s parents are made
    /// traversable for the `postgres` user.
    pub fn start_on(data: &Path, settings: &[&str]) -> Postgres {
        Self::start_with(Some(data), settings, true)
    }

    /// Starts a server on an existing data directory `data` (a restored copy: it recovers first), handed to the
    /// `postgres` user with the mode the server demands. The superuser `bns` comes with the copy.
    pub fn recover(data: &Path, settings: &[&str]) -> Postgres {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700));
        Self::start_with(Some(data), settings, false)
    }

    fn start_with(data: Option<&Path>, settings: &[&str], init: bool) -> Postgres {
        let initdb = binaries::require(&["initdb"], &binaries::postgres_dirs(), INSTALL);
        // postgres and initdb must be the same major version: take the server from initdb's own directory.
        let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        let bin_dir = initdb
            .parent()
            .expect("initdb has a directory")
            .to_path_buf();
        for tool in ["postgres", "psql", "pg_ctl"] {
            assert!(
                bin_dir.join(tool).exists() || binaries::find(&[tool], &[]).is_some(),
                "`{tool}` not found beside {}; install it with `{INSTALL}`",
                initdb.display()
            );
        }
        binaries::require(&["runuser"], &[], "apt-get install util-linux");
        let (uid, gid) = super::os_user_ids("postgres");

        let dir = tempfile::Builder::new()
            .prefix("bns-pg-")
            .tempdir()
            .expect("temp dir for postgres");
        super::chown_tree(dir.path(), uid, gid);
        let data = super::data_dir(data, dir.path().join("data"), uid, gid);
        if init {
            let out = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&initdb)
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ])
                .output()
                .expect("running initdb");
            assert!(
                out.status.success(),
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = super::free_port();
            let log_path = dir.path().join(format!("server-{port}.log"));
            let log = std::fs::File::create(&log_path).expect("server log");
            super::chown_tree(&log_path, uid, gid);
            let child = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(tool(&bin_dir, "postgres"))
                .arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(dir.path())
                .args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ])
                .args(settings.iter().flat_map(|s| ["-c", s]))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log fd"))
                .stderr(log)
                .spawn()
                .expect("starting postgres");
            let mut child = child;
            if wait_ready(
                &mut child,
                &bin_dir,
                dir.path(),
                port,
                Duration::from_secs(60),
            ) {
                let server = Postgres {
                    dir,
                    data,
                    bin_dir,
                    child,
                    port,
                    user: "bns".into(),
                    password: super::random_password(),
                };
                if init {
                    let sql = format!(
                        "CREATE ROLE bns LOGIN SUPERUSER PASSWORD '{}'",
                        server.password
                    );
                    server.psql("postgres", &sql);
                }
                return server;
            }
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            stop(&mut child, &bin_dir, &data);
        }
        panic!("postgres did not start after 5 attempts; last log:\n{last_log}");
    }

    /// The env an official `postgres` image's container would have for database `db`: `POSTGRES_USER`,
    /// `POSTGRES_PASSWORD`, `POSTGRES_DB` (give it to `LocalExec::envs` to use the hooks' defaults).
    pub fn container_env(&self, db: &str) -> Vec<(String, String)> {
        vec![
            ("POSTGRES_USER".into(), self.user.clone()),
            ("POSTGRES_PASSWORD".into(), self.password.clone()),
            ("POSTGRES_DB".into(), db.into()),
        ]
    }

    /// The temp dir (holds the data dir and the socket); tests may put dump dirs elsewhere.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs SQL as the `postgres` superuser over the local socket; returns unaligned, tuples-only output.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        psql_at(&self.bin_dir, self.dir.path(), self.port, db, sql)
    }

    /// Like [`Postgres::try_psql`], failing the test on an SQL error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql failed for `{sql}`: {e}"))
    }

    /// Feeds a whole SQL file (e.g. a decompressed plain dump) to psql as the superuser.
    pub fn load(&self, db: &str, sql: &[u8]) {
        use std::io::Write;
        let mut child = Command::new(tool(&self.bin_dir, "psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres"])
            .arg("-h")
            .arg(self.dir.path())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(sql)
            .expect("writing SQL to psql");
        let out = child.wait_with_output().expect("psql");
        assert!(
            out.status.success(),
            "loading SQL failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates a database with `name` taken literally (quoted as an identifier).
    pub fn create_database(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")),
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop(&mut self.child, &self.bin_dir, &self.data);
    }
}

fn tool(bin_dir: &Path, name: &str) -> PathBuf {
    let beside = bin_dir.join(name);
    if beside.exists() {
        beside
    } else {
        binaries::find(&[name], &[]).unwrap_or(beside)
    }
}

fn psql_at(
    bin_dir: &Path,
    socket_dir: &Path,
    port: u16,
    db: &str,
    sql: &str,
) -> Result<String, String> {
    let out = Command::new(tool(bin_dir, "psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "postgres",
        ])
        .arg("-h")
        .arg(socket_dir)
        .arg("-p")
        .arg(port.to_string())
        .arg("-d")
        .arg(db)
        .arg("-c")
        .arg(sql)
        .env_remove("PGPASSWORD")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn wait_ready(
    child: &mut Child,
    bin_dir: &Path,
    socket_dir: &Path,
    port: u16,
    limit: Duration,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if psql_at(bin_dir, socket_dir, port, "postgres", "SELECT 1").is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn stop(child: &mut Child, bin_dir: &Path, data: &Path) {
    let _ = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(tool(bin_dir, "pg_ctl"))
        .arg("-D")
        .arg(data)
        .args(["stop", "-m", "immediate", "-w", "-t", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}
