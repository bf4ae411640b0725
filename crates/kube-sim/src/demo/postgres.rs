//! The demo's own PostgreSQL: `initdb` in a directory of the demo's temp dir, served on a free port of 127.0.0.1
//! with its socket in that directory. initdb and postgres refuse to run as root, so as root both run as the
//! `postgres` OS user (via `runuser`), which the server package creates. Local socket connections are trusted (the
//! demo's own admin queries); TCP needs a password (scram-sha-256), which is what backup-ns's hook uses, reading it
//! from the pod's Secret-backed env. The server runs in its own process group so a Ctrl-C in the terminal reaches
//! the demo, which then stops the server cleanly ([`Postgres`]'s Drop).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::DemoError;

/// The install line printed when a PostgreSQL tool is missing.
pub const INSTALL: &str = "apt-get install postgresql postgresql-client";

/// A running throwaway server; stopped on drop.
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<String>,
    child: Option<Child>,
    /// TCP port on 127.0.0.1.
    pub port: u16,
}

impl Postgres {
    /// Runs `initdb` in `dir/data` and starts the server on a free port (retrying on a lost port race).
    pub fn start(dir: &Path) -> Result<Postgres, DemoError> {
        let bin_dir = server_bin_dir()?;
        let run_as = if is_root() {
            find_on_path("runuser").ok_or(DemoError::MissingTool {
                tool: "runuser",
                install: "apt-get install util-linux",
            })?;
            let (uid, gid) = os_user_ids("postgres")?;
            chown_tree(dir, uid, gid)?;
            Some("postgres".to_owned())
        } else {
            None
        };
        let mut pg = Postgres {
            dir: dir.to_path_buf(),
            bin_dir,
            run_as,
            child: None,
            port: 0,
        };
        let data = dir.join("data");
        let out = pg
            .command("initdb")
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
            .map_err(|e| DemoError::Postgres(format!("running initdb: {e}")))?;
        if !out.status.success() {
            return Err(DemoError::Postgres(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port()?;
            let log_path = dir.join(format!("server-{port}.log"));
            let log = std::fs::File::create(&log_path).map_err(|source| DemoError::Io {
                what: format!("creating {}", log_path.display()),
                source,
            })?;
            if let Some(user) = &pg.run_as {
                let (uid, gid) = os_user_ids(user)?;
                chown_tree(&log_path, uid, gid)?;
            }
            let log_err = log.try_clone().map_err(|source| DemoError::Io {
                what: "duplicating the server log handle".into(),
                source,
            })?;
            let child = {
                use std::os::unix::process::CommandExt;
                pg.command("postgres")
                    .arg("-D")
                    .arg(&data)
                    .arg("-p")
                    .arg(port.to_string())
                    .arg("-k")
                    .arg(dir)
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
                    .stdin(Stdio::null())
                    .stdout(log_err)
                    .stderr(log)
                    // Own process group: Ctrl-C goes to the demo, which shuts the server down in order.
                    .process_group(0)
                    .spawn()
                    .map_err(|e| DemoError::Postgres(format!("starting postgres: {e}")))?
            };
            pg.child = Some(child);
            pg.port = port;
            if pg.wait_ready(Duration::from_secs(60)) {
                return Ok(pg);
            }
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            pg.stop();
        }
        Err(DemoError::Postgres(format!(
            "postgres did not start after 5 attempts; last log:\n{last_log}"
        )))
    }

    /// Runs SQL as the `postgres` superuser over the local socket; returns unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, DemoError> {
        let out = Command::new(self.tool("psql"))
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
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(db)
            .arg("-c")
            .arg(sql)
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| DemoError::Postgres(format!("running psql: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(DemoError::Postgres(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if self.psql("postgres", "SELECT 1").is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// A server tool, run as the server's OS user when the demo runs as root.
    fn command(&self, tool: &str) -> Command {
        let path = self.tool(tool);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn tool(&self, name: &str) -> PathBuf {
        let beside = self.bin_dir.join(name);
        if beside.exists() {
            beside
        } else {
            find_on_path(name).unwrap_or(beside)
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "fast", "-w", "-t", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directory of `initdb` (Debian keeps it in `/usr/lib/postgresql/N/bin`, newest first), which also holds a
/// `postgres` and `pg_ctl` of the same major version.
fn server_bin_dir() -> Result<PathBuf, DemoError> {
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    versioned.sort_by_key(|d| std::cmp::Reverse(d.0));
    let initdb = versioned
        .into_iter()
        .map(|(_, d)| d.join("initdb"))
        .find(|p| is_executable(p))
        .or_else(|| find_on_path("initdb"))
        .ok_or(DemoError::MissingTool {
            tool: "initdb",
            install: INSTALL,
        })?;
    let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
    let dir = initdb.parent().map(Path::to_path_buf).unwrap_or_default();
    for tool in ["postgres", "pg_ctl", "psql", "pg_dump"] {
        if !is_executable(&dir.join(tool)) && find_on_path(tool).is_none() {
            return Err(DemoError::MissingTool {
                tool: "postgres/pg_ctl/psql/pg_dump",
                install: INSTALL,
            });
        }
    }
    Ok(dir)
}

/// The first executable `name` on PATH or in the sbin directories.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether this process runs as root (the demo needs it for kube-sim's exec sandbox).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn os_user_ids(user: &str) -> Result<(u32, u32), DemoError> {
    let id = |flag: &str| -> Result<u32, DemoError> {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .map_err(|e| DemoError::Postgres(format!("running `id`: {e}")))?;
        if !out.status.success() {
            return Err(DemoError::MissingTool {
                tool: "the `postgres` OS user",
                install: INSTALL,
            });
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| DemoError::Postgres(format!("`id {flag} {user}` printed no number: {e}")))
    };
    Ok((id("-u")?, id("-g")?))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), DemoError> {
    let io = |source| DemoError::Io {
        what: format!("handing {} to the postgres user", path.display()),
        source,
    };
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io)?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io)?.flatten() {
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1 (a server that loses the race retries with another).
pub fn free_port() -> Result<u16, DemoError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| DemoError::Io {
            what: "finding a free port on 127.0.0.1".into(),
            source,
        })
}
