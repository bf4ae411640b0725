//! PostgreSQL dump hook: the parameters and the generated scripts, the check alone (dry run) and the check with the
//! dump (pure; the runner executes them).
//!
//! Connection settings travel as libpq environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
//! `PGPASSWORD`), never as options: a database name that starts with `-` or contains `=` can then neither become
//! an option nor a connection string, and no value ever needs to be in argv.

use super::quote::{quote, quote_with_env};
use super::script::{self, MARKER, RunFiles};
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

    /// The check every dump starts with: tools present, the compressor, `SELECT 1` works, the tool's version,
    /// the previous dump, and the space gate on the dump directory ([`script::space_gate`]). Read-only.
    fn check(&self) -> String {
        let mut s = tool_check(&["psql", "pg_dump"]);
        s.push_str(&self.dump.compression.select());
        s.push_str(&format!("echo \"{MARKER}compression=$bns_compression\"\n"));
        s.push_str(&self.connection_env());
        // The version is asked beside `SELECT 1` (one short line, written at once, so it never tears another):
        // two process starts at the same time instead of one after the other.
        s.push_str(&format!(
            "echo \"{MARKER}tool_version=$(pg_dump --version 2>&1 | head -n 1)\" &\n\
             bns_one=$(psql -X -A -t -v ON_ERROR_STOP=1 -c 'SELECT 1' </dev/null) || {{ echo '{MARKER}error=SELECT 1 failed (connection or credentials)'; exit 1; }}\n\
             if [ \"$bns_one\" != 1 ]; then echo '{MARKER}error=SELECT 1 returned something else'; exit 1; fi\n\
             echo '{MARKER}connected=yes'\n"
        ));
        s.push_str(&script::previous_dump_report(&self.dump.dump_file));
        s.push_str("wait\n");
        let (dir, _) = script::split_path(&self.dump.dump_file);
        s.push_str(&script::space_gate(dir, self.dump.threshold));
        s
    }

    /// Only the check (`--dry-run`): nothing is written.
    pub fn check_script(&self, files: &RunFiles) -> String {
        script::check_only(files, &self.check())
    }

    /// The check and then the dump, in one exec session: `pg_dump` piped through the compressor into a partial
    /// file, renamed onto the dump path.
    pub fn run_script(&self, files: &RunFiles) -> String {
        let mut command = String::from("pg_dump");
        match self.format {
            PgFormat::Plain => {
                command.push_str(" --format=plain --clean --if-exists");
            }
            PgFormat::Custom => command.push_str(" --format=custom"),
        }
        for arg in &self.dump.extra_args {
            command.push(' ');
            command.push_str(&quote(arg));
        }
        script::check_then_dump(files, &self.check(), &self.dump.dump_file, &command)
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
        assert!(script.contains("| bns_compress > \"$bns_tmp\""));
        assert!(script.contains("bns_compress() { gzip -c; }"));
        assert!(script.contains("PGDATABASE=\"${POSTGRES_DB}\"; export PGDATABASE"));
    }

    #[test]
    fn the_run_script_checks_then_dumps_in_one_script_and_the_check_alone_writes_nothing() {
        let run = example().run_script(&files());
        let select = run.find("-c 'SELECT 1'").expect("checks the connection");
        let gate = run.find("checked=yes").expect("passes the space gate");
        let dump = run.find("pg_dump --format").expect("dumps");
        assert!(select < gate && gate < dump, "{run}");
        assert_eq!(run.matches("bns_compress() {").count(), 1, "one compressor");
        let check = example().check_script(&files());
        assert!(check.contains("checked=yes") && !check.contains("pg_dump --format"));
        assert!(!check.contains(".partial"), "{check}");
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
