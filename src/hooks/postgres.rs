//! PostgreSQL dump hook: the parameters and the generated scripts, the check alone (dry run) and the check with the
//! dump (pure; the runner executes them).
//!
//! Connection settings travel as libpq environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
//! `PGPASSWORD`), never as options: a database name that starts with `-` or contains `=` can then neither become
//! an option nor a connection string, and no value ever needs to be in argv.

use super::quote::{quote, quote_with_env};
use super::script::{self, DumpParts, DumpScripts, MARKER};
use super::secret::Secret;
pub use crate::vocab::hook::{PgFormat, PostgresHook};
use std::fmt::Write as _;

impl PostgresHook {
    /// Referenced container env vars must exist; then the secret, before anything could print; then the rest.
    pub(crate) fn connection_env(&self) -> String {
        let d = &self.dump;
        let password = d.secret();
        let mut s = script::env_guard(
            [&d.host, &d.user, &d.database]
                .into_iter()
                .map(String::as_str)
                .chain(password.iter().map(Secret::expose)),
        );
        if let Some(password) = &password {
            s.push_str(&password.export_line("PGPASSWORD"));
        }
        for (var, value) in [
            ("PGHOST", d.host.as_str()),
            ("PGUSER", d.user.as_str()),
            ("PGDATABASE", d.database.as_str()),
        ] {
            let _ = writeln!(s, "{var}={}; export {var}", quote_with_env(value));
        }
        let _ = writeln!(s, "PGPORT={}; export PGPORT", d.port);
        s.push_str("PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-15}; export PGCONNECT_TIMEOUT\n");
        s.push_str("PGAPPNAME=backup-ns; export PGAPPNAME\n");
        s
    }
}

impl DumpScripts for PostgresHook {
    /// The parts of its scripts: `psql` and `pg_dump` with libpq's environment.
    fn parts(&self) -> DumpParts {
        let mut setup = tool_check(&["psql", "pg_dump"]);
        setup.push_str(&self.dump.compression.select());
        setup.push_str(&format!("echo \"{MARKER}compression=$bns_compression\"\n"));
        setup.push_str(&self.connection_env());
        let mut dump_command = String::from("pg_dump");
        match self.format {
            PgFormat::Plain => dump_command.push_str(" --format=plain --clean --if-exists"),
            PgFormat::Custom => dump_command.push_str(" --format=custom"),
        }
        for arg in &self.dump.extra_args {
            dump_command.push(' ');
            dump_command.push_str(&quote(arg));
        }
        DumpParts {
            setup,
            select_one: "psql -X -A -t -v ON_ERROR_STOP=1 -c 'SELECT 1'".into(),
            version: "pg_dump --version".into(),
            dump_command,
            dump_path: self.dump.dump_file.clone(),
            threshold: self.dump.threshold,
        }
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
    use crate::hooks::script::RunFiles;

    fn example() -> PostgresHook {
        PostgresHook::new("statefulset/db".parse().expect("a workload"))
    }

    fn files() -> RunFiles {
        RunFiles::for_dump("/data/dump.sql.gz", "tok")
    }

    #[test]
    fn password_is_exported_before_anything_runs() {
        let mut hook = example();
        hook.dump.password = "lit'pw".into();
        let script = hook.run_script(&files());
        let export = script.find("PGPASSWORD=").expect("exported");
        let dump = script.find("pg_dump --format").expect("dumps");
        assert!(export < dump);
        assert!(script.contains(r"PGPASSWORD='lit'\''pw'; export PGPASSWORD"));
    }

    #[test]
    fn defaults_dump_plain_clean_if_exists_through_gzip() {
        let script = example().run_script(&files());
        assert!(
            script.contains("pg_dump --format=plain --clean --if-exists </dev/null || bns_status")
        );
        assert!(script.contains("| bns_compress | { tee \"$bns_tmp\" ||"));
        assert!(script.contains("bns_compress() { gzip -c; }"));
        assert!(script.contains("PGDATABASE=\"${POSTGRES_DB}\"; export PGDATABASE"));
    }

    #[test]
    fn custom_format_and_extra_args_are_quoted_words() {
        let mut hook = example();
        hook.format = PgFormat::Custom;
        hook.dump.compression = crate::vocab::hook::Compression::None;
        hook.dump.extra_args = vec!["--exclude-table=a b".into()];
        let script = hook.run_script(&files());
        assert!(script.contains("pg_dump --format=custom '--exclude-table=a b'"));
        assert!(!script.contains("--clean"));
    }
}
