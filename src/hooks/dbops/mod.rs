//! The operator's database commands (`postgres|mysql dump|download|restore|info|shell`) as a library: the CLI
//! parses flags, calls these functions and prints what they return.
//!
//! - this file: the scripts, built from the same hook parameters and connection code as the dump
//!   ([`PostgresHook`], [`MysqlHook`]) and quoted the same way; pure;
//! - [`session`]: a hook bound to its container; runs fact scripts, stats the dump file, runs the dump;
//! - [`download`]: streams the dump into a local file (partial-file removal, stop on a signal, size check, the
//!   check in the container beside the stream);
//! - [`dump_file`]: the local file end of a download (staged aligned writes, SHA-256 or gzip check, writeback,
//!   fsync);
//! - [`restore`]: checks a local dump and restores it (or the container's file) into the live database;
//! - [`info`]: versions, database size and the dump file's facts.
//!
//! Like the dump scripts they travel on stdin and report facts as `backup-ns: KEY=VALUE` lines. A restore of a
//! local file needs stdin for the data too: [`bootstrap_argv`] reads exactly the script's bytes with `dd bs=1`
//! (a shell reading a script from a pipe may read ahead and swallow data) and `eval`s it, leaving the rest of
//! stdin to the restore pipeline. argv then carries only that fixed bootstrap and a byte count, never a value.

pub mod download;
pub mod dump_file;
pub mod info;
pub mod restore;
pub mod session;

pub use download::{DownloadOptions, Downloaded, DumpSource, StopSignals, download_name};
pub use dump_file::{Checks, DumpWriter};
pub use info::DbInfo;
pub use restore::{LocalDump, PreparedRestore};
pub use session::{DbSession, DumpFile};

use super::mysql::MysqlHook;
use super::postgres::{PostgresHook, tool_check};
use super::quote::quote;
use super::script::{MARKER, split_path};
use crate::Exit;
use std::fmt::Write as _;

/// The container tools a verified download uses in place: the hash (`openssl` preferred, as it uses the CPU's
/// SHA extensions where Debian's `sha256sum` does not: about a fifth of the CPU), and each compressed format's
/// test.
pub const VERIFY_TOOLS: [&str; 4] = ["sha256sum", "openssl", "gzip", "zstd"];

/// The database engines the commands speak.
#[derive(Debug, Clone)]
pub enum DbHook {
    Postgres(PostgresHook),
    Mysql(MysqlHook),
}

/// The format of a dump, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    Gzip,
    Zstd,
    /// `pg_dump --format=custom` (`PGDMP`).
    PgCustom,
    Plain,
}

impl DumpFormat {
    /// Detects the format from the magic bytes at the start of a dump.
    pub fn sniff(head: &[u8]) -> DumpFormat {
        if head.starts_with(&[0x1f, 0x8b]) {
            DumpFormat::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            DumpFormat::Zstd
        } else if head.starts_with(b"PGDMP") {
            DumpFormat::PgCustom
        } else {
            DumpFormat::Plain
        }
    }

    /// The local command that turns a file of this format into SQL (`gzip -dc FILE`), for the hints after a
    /// download.
    pub fn unpack_command(self, file: &str) -> String {
        match self {
            DumpFormat::Gzip => format!("gzip -dc {file}"),
            DumpFormat::Zstd => format!("zstd -dc {file}"),
            DumpFormat::PgCustom | DumpFormat::Plain => format!("cat {file}"),
        }
    }

    /// How `info` names the format.
    pub fn describe(self) -> &'static str {
        match self {
            DumpFormat::Gzip => "gzip",
            DumpFormat::Zstd => "zstd",
            DumpFormat::PgCustom => "pg_dump custom",
            DumpFormat::Plain => "plain",
        }
    }

    /// The file name suffix a download gets.
    pub fn suffix(self) -> &'static str {
        match self {
            DumpFormat::Gzip => "dump.sql.gz",
            DumpFormat::Zstd => "dump.sql.zst",
            DumpFormat::PgCustom => "dump.pgdump",
            DumpFormat::Plain => "dump.sql",
        }
    }

    /// The command that tests a dump of this format in place, reading it on stdin; `None` when the format has
    /// no test of its own (its SHA-256 is all there is to compare).
    pub fn test_command(self) -> Option<&'static str> {
        match self {
            DumpFormat::Gzip => Some("gzip -t"),
            DumpFormat::Zstd => Some("zstd -q -t"),
            DumpFormat::PgCustom | DumpFormat::Plain => None,
        }
    }

    /// Shell filter that turns the dump into the restore tool's input.
    fn decompressor(self) -> &'static str {
        match self {
            DumpFormat::Gzip => "gzip -dc",
            DumpFormat::Zstd => "zstd -q -dc",
            DumpFormat::PgCustom | DumpFormat::Plain => "cat",
        }
    }
}

/// Where a restore reads the dump from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreSource {
    /// The dump file in the container (the hook's `dumpFile`); the format is detected there.
    ContainerFile,
    /// The bytes following the script on stdin, in the given format (detected locally).
    Stdin(DumpFormat),
}

/// Why a database command refused or failed. Messages name the object and the next step; the variant gives the
/// documented exit code.
#[derive(Debug, thiserror::Error)]
pub enum DbOpsError {
    /// Bad input or a refusal before anything changed (exit 2).
    #[error("{0}")]
    Refused(String),
    /// The operation failed (exit 1).
    #[error("{0}")]
    Failed(String),
    /// A signal stopped the operation (exit 130 or 143).
    #[error("{message}")]
    Stopped { exit: Exit, message: String },
}

impl DbOpsError {
    /// The documented exit code for this failure.
    pub fn exit(&self) -> Exit {
        match self {
            DbOpsError::Refused(_) => Exit::Usage,
            DbOpsError::Failed(_) => Exit::Failure,
            DbOpsError::Stopped { exit, .. } => *exit,
        }
    }
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl DbHook {
    /// The engine's name as the commands and plans spell it: `postgres` or `mysql`.
    pub fn engine_name(&self) -> &'static str {
        match self {
            DbHook::Postgres(_) => "postgres",
            DbHook::Mysql(_) => "mysql",
        }
    }

    /// The password, for redacting it from anything the container prints.
    pub fn password(&self) -> Option<super::Secret> {
        match self {
            DbHook::Postgres(p) => p.dump.secret(),
            DbHook::Mysql(m) => m.dump.secret(),
        }
    }

    pub fn dump_path(&self) -> &str {
        match self {
            DbHook::Postgres(p) => &p.dump.dump_file,
            DbHook::Mysql(m) => &m.dump.dump_file,
        }
    }

    /// Connection setup: tool checks, env guards, the password (exported before anything runs).
    fn connect(&self) -> String {
        let mut s = String::from("set -eu\numask 077\n");
        match self {
            DbHook::Postgres(p) => {
                s.push_str(&tool_check(&["psql"]));
                s.push_str(&p.connection_env());
            }
            DbHook::Mysql(m) => s.push_str(&m.preamble()),
        }
        s
    }

    /// The client command reading SQL on stdin. PostgreSQL restores in one transaction and stops at the first
    /// error, so a failed restore changes nothing.
    fn sql_client(&self) -> String {
        match self {
            DbHook::Postgres(_) => {
                "psql -X -q -v ON_ERROR_STOP=1 --single-transaction >/dev/null".to_string()
            }
            DbHook::Mysql(m) => format!(
                "\"$bns_client\" {} --batch -- {}",
                m.connection_args(),
                super::quote::quote_with_env(&m.dump.database)
            ),
        }
    }

    fn restore_pipeline(&self, format: DumpFormat, input: &str) -> String {
        match (self, format) {
            (DbHook::Postgres(_), DumpFormat::PgCustom) => format!(
                "pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error -d \"$PGDATABASE\" {input}"
            ),
            _ => format!("{} {input} | {}", format.decompressor(), self.sql_client()),
        }
    }

    /// The restore script. From the container file: the file must exist and pass `gzip -t`/`zstd -t` before the
    /// database is touched. From stdin: the last line is the pipeline, which reads the rest of stdin.
    pub fn restore_script(&self, source: RestoreSource) -> String {
        let mut s = self.connect();
        match source {
            RestoreSource::ContainerFile => {
                let _ = writeln!(s, "bns_dump={}", quote(self.dump_path()));
                let _ = writeln!(
                    s,
                    "if [ ! -f \"$bns_dump\" ]; then echo \"{MARKER}error=no dump file at $bns_dump (run a dump first)\"; exit 1; fi"
                );
                s.push_str(
                    "bns_magic=$(od -An -tx1 -N4 \"$bns_dump\" | tr -d ' \\n')\ncase \"$bns_magic\" in\n",
                );
                for (pattern, format) in [
                    ("1f8b*", DumpFormat::Gzip),
                    ("28b52ffd", DumpFormat::Zstd),
                    ("50474d50", DumpFormat::PgCustom),
                    ("*", DumpFormat::Plain),
                ] {
                    let check = match format {
                        DumpFormat::Gzip => format!(
                            "gzip -t \"$bns_dump\" || {{ echo '{MARKER}error=the dump file is not a valid gzip file'; exit 1; }}; "
                        ),
                        DumpFormat::Zstd => format!(
                            "zstd -q -t \"$bns_dump\" || {{ echo '{MARKER}error=the dump file is not a valid zstd file'; exit 1; }}; "
                        ),
                        _ => String::new(),
                    };
                    let pipeline = if matches!(self, DbHook::Mysql(_))
                        && format == DumpFormat::PgCustom
                    {
                        format!(
                            "echo '{MARKER}error=a pg_dump custom archive cannot be restored into MySQL'; exit 1"
                        )
                    } else {
                        self.restore_pipeline(format, "< \"$bns_dump\"")
                    };
                    let _ = writeln!(s, "  {pattern}) {check}{pipeline} ;;");
                }
                s.push_str("esac\n");
                let _ = writeln!(s, "echo '{MARKER}restored=yes'");
                s.push_str("exit 0\n");
            }
            RestoreSource::Stdin(format) => {
                // The pipeline must be the script's last command: `eval` runs it, and its status is the script's.
                s.push_str(&self.restore_pipeline(format, ""));
                s.push('\n');
            }
        }
        s
    }

    /// Size and modification time (Unix seconds) of the dump file, or `dump=none`; the SHA-256 its record holds
    /// (`record=`, [`crate::hooks::script::record_path`]); and which of the tools a verified download runs in
    /// place ([`VERIFY_TOOLS`]) the container has.
    pub fn stat_script(&self) -> String {
        let mut s = String::from("set -u\n");
        s.push_str(&dump_facts(self.dump_path()));
        let _ = writeln!(
            s,
            "bns_record={}\nif [ -f \"$bns_record\" ]; then bns_rec=; read -r bns_rec bns_rest < \"$bns_record\" || true; echo \"{MARKER}record=$bns_rec\"; fi",
            quote(&crate::hooks::script::record_path(self.dump_path()))
        );
        let _ = writeln!(
            s,
            "bns_tools=; for bns_t in {}; do if command -v \"$bns_t\" >/dev/null 2>&1; then bns_tools=\"$bns_tools $bns_t\"; fi; done; echo \"{MARKER}tools=$bns_tools\"",
            VERIFY_TOOLS.join(" ")
        );
        s.push_str("exit 0\n");
        s
    }

    /// The in-place check a verified download runs beside the stream: the SHA-256 of the dump file and, when the
    /// format has one, its test (`gzip -t`), side by side. Reports `sha256=HEX` and `test=passed|failed`; the
    /// test's complaint goes to stderr.
    pub fn check_script(&self, test: Option<&str>) -> String {
        let mut s = String::from("set -u\n");
        let _ = writeln!(s, "bns_dump={}", quote(self.dump_path()));
        // The dump is read through stdin, so no file name ever reaches an option parser or the output's escaping.
        if let Some(test) = test {
            let _ = writeln!(s, "{test} < \"$bns_dump\" >/dev/null & bns_test=$!");
        }
        s.push_str(crate::hooks::script::SHA256_FN);
        let _ = writeln!(
            s,
            "bns_sum=$(bns_sha256 < \"$bns_dump\") || {{ echo '{MARKER}error=the SHA-256 of the dump file could not be computed'; exit 1; }}"
        );
        let _ = writeln!(s, "echo \"{MARKER}sha256=${{bns_sum%% *}}\"");
        if test.is_some() {
            let _ = writeln!(
                s,
                "if wait \"$bns_test\"; then echo '{MARKER}test=passed'; else echo '{MARKER}test=failed'; fi"
            );
        }
        s.push_str("exit 0\n");
        s
    }

    /// Tool versions, server version, database name and size, and the dump file's size and time.
    pub fn info_script(&self) -> String {
        let mut s = self.connect();
        // Per engine: the client and dump tool to ask for --version, the command around one quoted query, and
        // the queries (fact, SQL, what to call it in an error, prefix of the printed value).
        type Facts<'a> = [(&'a str, &'a str, &'a str, &'a str); 3];
        let (client, dumper, (before, after), facts): (&str, &str, (String, String), Facts) =
            match self {
                DbHook::Postgres(_) => (
                    "psql",
                    "pg_dump",
                    (
                        "psql -X -A -t -v ON_ERROR_STOP=1 -c ".to_string(),
                        String::new(),
                    ),
                    [
                        (
                            "server_version",
                            "SHOW server_version",
                            "SHOW server_version",
                            "PostgreSQL ",
                        ),
                        (
                            "database",
                            "SELECT current_database()",
                            "SELECT current_database()",
                            "",
                        ),
                        (
                            "db_size",
                            "SELECT pg_database_size(current_database())",
                            "pg_database_size",
                            "",
                        ),
                    ],
                ),
                DbHook::Mysql(m) => (
                    "\"$bns_client\"",
                    "\"$bns_dumper\"",
                    (
                        format!(
                            "\"$bns_client\" {} --batch --skip-column-names --execute=",
                            m.connection_args()
                        ),
                        format!(" -- {}", super::quote::quote_with_env(&m.dump.database)),
                    ),
                    [
                        ("server_version", "SELECT VERSION()", "SELECT VERSION()", ""),
                        ("database", "SELECT DATABASE()", "SELECT DATABASE()", ""),
                        (
                            "db_size",
                            "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = DATABASE()",
                            "the size query",
                            "",
                        ),
                    ],
                ),
            };
        for (fact, tool) in [("client_version", client), ("dump_tool_version", dumper)] {
            let _ = writeln!(
                s,
                "echo \"{MARKER}{fact}=$({tool} --version 2>&1 | head -n 1)\""
            );
        }
        for (fact, sql, what, prefix) in facts {
            let _ = writeln!(
                s,
                "bns_r=$({before}{}{after} </dev/null) || {{ echo '{MARKER}error={what} failed (connection or credentials)'; exit 1; }}",
                quote(sql)
            );
            let _ = writeln!(s, "echo \"{MARKER}{fact}={prefix}$bns_r\"");
        }
        s.push_str(&dump_facts(self.dump_path()));
        s.push_str("exit 0\n");
        s
    }

    /// The script an interactive shell `eval`s: connection setup, then `exec` of the client on the terminal.
    /// Without a local terminal (input piped in) psql's pager is turned off: it would wait for keys forever.
    pub fn shell_script(&self, local_terminal: bool) -> String {
        let mut s = self.connect();
        match self {
            DbHook::Postgres(_) => {
                if !local_terminal {
                    s.push_str("PSQL_PAGER=cat; export PSQL_PAGER; PAGER=cat; export PAGER\n");
                }
                s.push_str("exec psql -X\n");
            }
            DbHook::Mysql(m) => {
                let _ = writeln!(
                    s,
                    "exec \"$bns_client\" {} -- {}",
                    m.connection_args(),
                    super::quote::quote_with_env(&m.dump.database)
                );
            }
        }
        s
    }
}

fn dump_facts(path: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "bns_dump={}", quote(path));
    let (dir, _) = split_path(path);
    let _ = writeln!(s, "bns_dir={}", quote(dir));
    let _ = writeln!(
        s,
        "if [ -f \"$bns_dump\" ]; then echo \"{MARKER}dump_size=$(wc -c < \"$bns_dump\" | tr -d ' ')\"; echo \"{MARKER}dump_mtime=$(date -r \"$bns_dump\" +%s)\"; echo \"{MARKER}dump_head=$(od -An -tx1 -N4 \"$bns_dump\" | tr -d ' \\n')\"; \
         elif [ -d \"$bns_dir\" ]; then echo '{MARKER}dump=none'; else echo '{MARKER}dump=nodir'; fi"
    );
    s
}

/// `sh -c BOOTSTRAP` that reads exactly `script_len` bytes of script from stdin and evaluates it; the rest of
/// stdin stays unread for the script's commands.
pub fn bootstrap_argv(script_len: usize) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "bns_script=$(dd bs=1 count={script_len} 2>/dev/null) || exit 125; eval \"$bns_script\""
        ),
    ]
}

/// Decodes the hex of the first bytes (`od -An -tx1`) a fact script reported.
pub fn decode_head(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units_with_one_decimal() {
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    fn workload() -> crate::vocab::workload::WorkloadRef {
        "statefulset/db".parse().expect("a workload")
    }

    #[test]
    fn formats_are_sniffed_from_magic_bytes() {
        assert_eq!(DumpFormat::sniff(&[0x1f, 0x8b, 8, 0]), DumpFormat::Gzip);
        assert_eq!(
            DumpFormat::sniff(&decode_head("28b52ffd")),
            DumpFormat::Zstd
        );
        assert_eq!(DumpFormat::sniff(b"PGDMP\x01"), DumpFormat::PgCustom);
        assert_eq!(DumpFormat::sniff(b"-- SQL"), DumpFormat::Plain);
    }

    #[test]
    fn a_stdin_restore_ends_with_its_pipeline_and_keeps_the_password_out_of_argv() {
        let mut pg = PostgresHook::new(workload());
        pg.dump.password = "s3cr'et".into();
        let hook = DbHook::Postgres(pg);
        let script = hook.restore_script(RestoreSource::Stdin(DumpFormat::Gzip));
        assert!(script.ends_with(
            "gzip -dc  | psql -X -q -v ON_ERROR_STOP=1 --single-transaction >/dev/null\n"
        ));
        assert!(script.contains(r"PGPASSWORD='s3cr'\''et'"));
        let argv = bootstrap_argv(script.len()).join(" ");
        assert!(!argv.contains("s3cr"));
        assert!(argv.contains(&format!("count={}", script.len())));
    }

    #[test]
    fn a_mysql_restore_names_the_database_after_double_dash() {
        let mut mysql = MysqlHook::new(workload());
        mysql.dump.database = "-x".into();
        let hook = DbHook::Mysql(mysql);
        let script = hook.restore_script(RestoreSource::ContainerFile);
        assert!(script.contains("--batch -- '-x'"));
        assert!(script.contains("gzip -t \"$bns_dump\""));
    }
}
