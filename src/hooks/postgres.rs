//! PostgreSQL dump hook: the parameters and the generated check and dump scripts (pure; the runner executes them).
//!
//! Connection settings travel as libpq environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
//! `PGPASSWORD`), never as options: a database name that starts with `-` or contains `=` can then neither become
//! an option nor a connection string, and no value ever needs to be in argv.

use super::quote::{quote, quote_with_env};
use super::script::{self, Compression, MARKER, RunFiles};
use super::secret::Secret;
use std::fmt::Write as _;

/// `pg_dump --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PgFormat {
    /// Plain SQL (`--format=plain`), with `--clean --if-exists` so it restores over an existing schema.
    #[default]
    Plain,
    /// `--format=custom`, for `pg_restore` (already compressed; pair with [`Compression::None`]).
    Custom,
}

/// Everything the PostgreSQL hook needs. `host`, `user`, `database` and `password` may contain `${VAR}`
/// references to the container's env; `dump_path` and `extra_args` are always literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresDump {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// `None`: no password is set (the container's `.pgpass` or trust auth applies).
    pub password: Option<Secret>,
    pub database: String,
    /// Absolute path inside the container; its directory must exist.
    pub dump_path: String,
    pub format: PgFormat,
    /// `--clean --if-exists` for plain dumps.
    pub clean: bool,
    /// Extra `pg_dump` arguments, each quoted as one word.
    pub extra_args: Vec<String>,
    pub compression: Compression,
    /// Fail before dumping when the dump directory's filesystem is fuller than this (percent used).
    pub threshold_percent: u8,
}

impl Default for PostgresDump {
    /// The original's defaults: the container's own `POSTGRES_*` env supplies the credentials.
    fn default() -> Self {
        PostgresDump {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "${POSTGRES_USER}".into(),
            password: Some(Secret::new("${POSTGRES_PASSWORD}")),
            database: "${POSTGRES_DB}".into(),
            dump_path: "/var/lib/postgresql/data/dump.sql.gz".into(),
            format: PgFormat::Plain,
            clean: true,
            extra_args: Vec::new(),
            compression: Compression::Gzip,
            threshold_percent: 90,
        }
    }
}

impl PostgresDump {
    /// Referenced container env vars must exist; then the secret, before anything could print; then the rest.
    pub(crate) fn connection_env(&self) -> String {
        let mut s = script::env_guard(
            [&self.host, &self.user, &self.database]
                .into_iter()
                .map(String::as_str)
                .chain(self.password.iter().map(Secret::expose)),
        );
        if let Some(password) = &self.password {
            s.push_str(&password.export_line("PGPASSWORD"));
        }
        for (var, value) in [
            ("PGHOST", self.host.as_str()),
            ("PGUSER", self.user.as_str()),
            ("PGDATABASE", self.database.as_str()),
        ] {
            let _ = writeln!(s, "{var}={}; export {var}", quote_with_env(value));
        }
        let _ = writeln!(s, "PGPORT={}; export PGPORT", self.port);
        s.push_str("PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-15}; export PGCONNECT_TIMEOUT\n");
        s.push_str("PGAPPNAME=backup-ns; export PGAPPNAME\n");
        s
    }

    /// Read-only check: tools present, `SELECT 1` works, the previous dump, and `df` of the dump directory.
    pub fn check_script(&self, files: &RunFiles) -> String {
        let mut s = script::prelude(files);
        s.push_str(&script::cleanup_traps(&RunFiles {
            partial: None,
            ..files.clone()
        }));
        s.push_str(&tool_check(&["psql", "pg_dump"]));
        s.push_str(&self.compression.select());
        s.push_str(&format!("echo \"{MARKER}compression=$bns_compression\"\n"));
        s.push_str(&self.connection_env());
        s.push_str(&format!(
            "bns_one=$(psql -X -A -t -v ON_ERROR_STOP=1 -c 'SELECT 1' </dev/null) || {{ echo '{MARKER}error=SELECT 1 failed (connection or credentials)'; exit 1; }}\n\
             if [ \"$bns_one\" != 1 ]; then echo '{MARKER}error=SELECT 1 returned something else'; exit 1; fi\n\
             echo '{MARKER}connected=yes'\n\
             echo \"{MARKER}tool_version=$(pg_dump --version 2>&1 | head -n 1)\"\n"
        ));
        s.push_str(&script::previous_dump_report(&self.dump_path));
        let (dir, _) = script::split_path(&self.dump_path);
        s.push_str(&format!(
            "if [ ! -d {dir} ]; then echo '{MARKER}error=dump dir does not exist'; exit 1; fi\n",
            dir = quote(dir)
        ));
        s.push_str(&script::df_report(&quote(dir)));
        // Explicit: the exec's stdin may stay open after the script, and `sh -s` would wait for more.
        s.push_str("exit 0\n");
        s
    }

    /// The dump: `pg_dump` piped through the compressor into a partial file, renamed onto the dump path.
    pub fn dump_script(&self, files: &RunFiles) -> String {
        let mut s = script::prelude(files);
        s.push_str(&script::cleanup_traps(files));
        s.push_str(&self.connection_env());
        let mut command = String::from("pg_dump");
        match self.format {
            PgFormat::Plain => {
                command.push_str(" --format=plain");
                if self.clean {
                    command.push_str(" --clean --if-exists");
                }
            }
            PgFormat::Custom => command.push_str(" --format=custom"),
        }
        for arg in &self.extra_args {
            command.push(' ');
            command.push_str(&quote(arg));
        }
        s.push_str(&script::dump_body(
            &self.dump_path,
            self.compression,
            &command,
            "pg_dump --version",
        ));
        s
    }
}

/// Lines that fail the script with `missing_tool=NAME` when a tool is not on the container's PATH.
pub(crate) fn tool_check(tools: &[&str]) -> String {
    let mut s = String::new();
    for tool in tools {
        let _ = writeln!(
            s,
            "command -v {tool} >/dev/null 2>&1 || {{ echo '{MARKER}missing_tool={tool}'; exit 1; }}"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> RunFiles {
        RunFiles::for_dump("/data/dump.sql.gz", "tok")
    }

    #[test]
    fn password_is_exported_before_anything_runs() {
        let hook = PostgresDump {
            password: Some(Secret::new("lit'pw")),
            ..PostgresDump::default()
        };
        let script = hook.dump_script(&files());
        let export = script.find("PGPASSWORD=").expect("exported");
        let dump = script.find("pg_dump --format").expect("dumps");
        assert!(export < dump);
        assert!(script.contains(r"PGPASSWORD='lit'\''pw'; export PGPASSWORD"));
    }

    #[test]
    fn defaults_dump_plain_clean_if_exists_through_gzip() {
        let script = PostgresDump::default().dump_script(&files());
        assert!(
            script.contains("pg_dump --format=plain --clean --if-exists </dev/null || bns_status")
        );
        assert!(script.contains("| bns_compress > \"$bns_tmp\""));
        assert!(script.contains("bns_compress() { gzip -c; }"));
        assert!(script.contains("PGDATABASE=\"${POSTGRES_DB}\"; export PGDATABASE"));
    }

    #[test]
    fn custom_format_and_extra_args_are_quoted_words() {
        let hook = PostgresDump {
            format: PgFormat::Custom,
            compression: Compression::None,
            extra_args: vec!["--exclude-table=a b".into()],
            ..PostgresDump::default()
        };
        let script = hook.dump_script(&files());
        assert!(script.contains("pg_dump --format=custom '--exclude-table=a b'"));
        assert!(!script.contains("--clean"));
    }
}
