//! A throwaway MariaDB server: `mariadb-install-db` into a temp dir owned by the `mysql` OS user, `mariadbd` on
//! a free port of 127.0.0.1 with its socket in the temp dir (`--user=mysql`, so it also runs when the tests run
//! as root). root logs in over the socket (unix_socket auth, for the test's admin queries); a test user with a
//! password logs in over TCP, which is what the hooks use. Killed and deleted on drop.

use super::binaries;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "apt-get install mariadb-server";

pub struct Mariadb {
    dir: tempfile::TempDir,
    client: PathBuf,
    child: Child,
    pub port: u16,
    /// Has all privileges, logs in over TCP with [`Mariadb::password`].
    pub user: String,
    pub password: String,
}

impl Mariadb {
    /// Starts a fresh server. Panics (failing the test) with an install hint when the binaries are missing.
    pub fn start() -> Mariadb {
        Self::start_with(None, &[], true)
    }

    /// Starts a fresh server whose data directory is `data` (e.g. inside a simulated volume, so that a snapshot
    /// of the volume holds the database itself), with extra server options (later ones win).
    pub fn start_on(data: &Path, options: &[&str]) -> Mariadb {
        Self::start_with(Some(data), options, true)
    }

    /// Starts a server on an existing data directory (a restored copy: InnoDB recovers it first), handed to the
    /// `mysql` user. The test user comes with the copy; its password is not known here (root uses the socket).
    pub fn recover(data: &Path, options: &[&str]) -> Mariadb {
        Self::start_with(Some(data), options, false)
    }

    fn start_with(data: Option<&Path>, options: &[&str], init: bool) -> Mariadb {
        let install_db =
            binaries::require(&["mariadb-install-db", "mysql_install_db"], &[], INSTALL);
        let server = binaries::require(&["mariadbd", "mysqld"], &[], INSTALL);
        let client =
            binaries::require(&["mariadb", "mysql"], &[], "apt-get install mariadb-client");
        let (uid, gid) = super::os_user_ids("mysql");

        let dir = tempfile::Builder::new()
            .prefix("bns-my-")
            .tempdir()
            .expect("temp dir for mariadb");
        // A private tmpdir: parallel servers must not share /tmp for their internal temp tables.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).expect("tmpdir for mariadb");
        super::chown_tree(dir.path(), uid, gid);
        let data = super::data_dir(data, dir.path().join("data"), uid, gid);
        if init {
            install(&install_db, &data, &tmp);
        }
        let socket = dir.path().join("mysqld.sock");
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = super::free_port();
            let log_path = dir.path().join(format!("error-{port}.log"));
            let mut child = Command::new(&server)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!(
                    "--pid-file={}",
                    dir.path().join("mysqld.pid").display()
                ))
                .arg(format!("--log-error={}", log_path.display()))
                .arg(format!("--port={port}"))
                .arg(format!("--tmpdir={}", tmp.display()))
                .args([
                    "--bind-address=127.0.0.1",
                    "--user=mysql",
                    "--skip-name-resolve",
                    "--innodb-buffer-pool-size=16M",
                    "--innodb-flush-log-at-trx-commit=0",
                    "--skip-log-bin",
                    "--character-set-server=utf8mb4",
                    "--collation-server=utf8mb4_unicode_ci",
                ])
                .args(options)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting mariadbd");
            if wait_ready(&mut child, &client, &socket, Duration::from_secs(60)) {
                let server = Mariadb {
                    dir,
                    client,
                    child,
                    port,
                    user: "bns".into(),
                    password: super::random_password(),
                };
                if init {
                    server.sql(
                        "",
                        &format!(
                            "CREATE USER 'bns'@'%' IDENTIFIED BY '{}'; GRANT ALL PRIVILEGES ON *.* TO 'bns'@'%'",
                            server.password
                        ),
                    );
                }
                return server;
            }
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("mariadbd did not start after 5 attempts; last log:\n{last_log}");
    }

    /// The env an official `mariadb` image's container would have for database `db`: `MYSQL_USER`,
    /// `MYSQL_PASSWORD`, `MYSQL_DATABASE`, and `MYSQL_ROOT_PASSWORD` (the test user's, as it has all privileges).
    pub fn container_env(&self, db: &str) -> Vec<(String, String)> {
        vec![
            ("MYSQL_USER".into(), self.user.clone()),
            ("MYSQL_PASSWORD".into(), self.password.clone()),
            ("MYSQL_DATABASE".into(), db.into()),
            ("MYSQL_ROOT_PASSWORD".into(), self.password.clone()),
        ]
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// Runs SQL as root over the socket in database `db` (empty: none); returns tab-separated rows.
    pub fn try_sql(&self, db: &str, sql: &str) -> Result<String, String> {
        sql_at(&self.client, &self.socket(), db, sql)
    }

    /// Like [`Mariadb::try_sql`], failing the test on an SQL error.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.try_sql(db, sql)
            .unwrap_or_else(|e| panic!("SQL failed for `{sql}`: {e}"))
    }

    /// Feeds a whole SQL file (a decompressed dump) to the client as root.
    pub fn load(&self, db: &str, sql: &[u8]) {
        use std::io::Write;
        let mut child = Command::new(&self.client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "--batch", "--default-character-set=utf8mb4"])
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mariadb client");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(sql)
            .expect("writing SQL to the client");
        let out = child.wait_with_output().expect("mariadb client");
        assert!(
            out.status.success(),
            "loading SQL failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates a database with `name` taken literally (quoted as an identifier).
    pub fn create_database(&self, name: &str) {
        self.sql(
            "",
            &format!("CREATE DATABASE `{}`", name.replace('`', "``")),
        );
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mariadb-install-db` into `data` (owned by `mysql`), with `tmp` as its temp dir.
fn install(install_db: &Path, data: &Path, tmp: &Path) {
    let out = Command::new(install_db)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--user=mysql",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ])
        .arg(format!("--tmpdir={}", tmp.display()))
        .env("TMPDIR", tmp)
        .output()
        .expect("running mariadb-install-db");
    assert!(
        out.status.success(),
        "mariadb-install-db failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sql_at(client: &Path, socket: &Path, db: &str, sql: &str) -> Result<String, String> {
    let mut cmd = Command::new(client);
    cmd.arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args([
            "-uroot",
            "--batch",
            "--skip-column-names",
            "--default-character-set=utf8mb4",
        ])
        .arg("-e")
        .arg(sql);
    if !db.is_empty() {
        cmd.arg(db);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn wait_ready(child: &mut Child, client: &Path, socket: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if socket.exists() && sql_at(client, socket, "", "SELECT 1").is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
