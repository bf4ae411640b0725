//! MySQL / MariaDB dump hook: parameters and the generated scripts, the check alone (dry run) and the check with
//! the dump (pure).
//!
//! The client tools are detected in the container (`mariadb` + `mariadb-dump` first, then `mysql` +
//! `mysqldump`), because MariaDB images are dropping the `mysql*` names. The password travels as `MYSQL_PWD`;
//! every option value is attached with `=` and the database name follows `--`, so no value can become an option.

use super::quote::{quote, quote_with_env};
use super::script::{self, MARKER, RunFiles};
use super::secret::Secret;
pub use crate::vocab::hook::MysqlHook;
use std::fmt::Write as _;

impl MysqlHook {
    /// Tool detection (sets `$bns_client` and `$bns_dumper`), the check that referenced container env vars
    /// exist, then the password.
    pub(crate) fn preamble(&self) -> String {
        let mut s = String::new();
        let pairs: &[(&str, &str)] = &[("mariadb", "mariadb-dump"), ("mysql", "mysqldump")];
        s.push_str("bns_client=\nbns_dumper=\n");
        for (client, dumper) in pairs {
            let _ = writeln!(
                s,
                "if [ -z \"$bns_dumper\" ] && command -v {client} >/dev/null 2>&1 && command -v {dumper} >/dev/null 2>&1; then bns_client={client}; bns_dumper={dumper}; fi"
            );
        }
        let wanted: Vec<String> = pairs.iter().map(|(c, d)| format!("{c}+{d}")).collect();
        let _ = writeln!(
            s,
            "if [ -z \"$bns_dumper\" ]; then echo '{MARKER}missing_tool={}'; exit 1; fi",
            wanted.join(" or ")
        );
        s.push_str(&self.password_env());
        s
    }

    /// The check that referenced container env vars exist, then the password as `MYSQL_PWD`.
    pub(crate) fn password_env(&self) -> String {
        let d = &self.dump;
        let password = d.secret();
        let mut s = script::env_guard(
            [&d.host, &d.user, &d.database]
                .into_iter()
                .map(String::as_str)
                .chain(password.iter().map(Secret::expose)),
        );
        if let Some(password) = &password {
            s.push_str(&password.export_line("MYSQL_PWD"));
        }
        s
    }

    /// `--host=… --port=… --user=…` as quoted words.
    pub(crate) fn connection_args(&self) -> String {
        [
            format!("--host={}", self.dump.host),
            format!("--port={}", self.dump.port),
            format!("--user={}", self.dump.user),
        ]
        .iter()
        .map(|a| quote_with_env(a))
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// The check every dump starts with: tools present, the compressor, `SELECT 1` works, the tool's version,
    /// the previous dump, and the space gate on the dump directory ([`script::space_gate`]). Read-only.
    fn check(&self) -> String {
        let mut s = self.preamble();
        s.push_str(&self.dump.compression.select());
        s.push_str(&format!("echo \"{MARKER}compression=$bns_compression\"\n"));
        // The version is asked beside `SELECT 1`, as for PostgreSQL: two process starts at the same time.
        s.push_str(&format!(
            "echo \"{MARKER}tool_version=$(\"$bns_dumper\" --version 2>&1 | head -n 1)\" &\n"
        ));
        let _ = writeln!(
            s,
            "bns_one=$(\"$bns_client\" {} --batch --skip-column-names --execute='SELECT 1' -- {} </dev/null) || {{ echo '{MARKER}error=SELECT 1 failed (connection or credentials)'; exit 1; }}",
            self.connection_args(),
            quote_with_env(&self.dump.database)
        );
        s.push_str(&format!(
            "if [ \"$bns_one\" != 1 ]; then echo '{MARKER}error=SELECT 1 returned something else'; exit 1; fi\n\
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

    /// The check and then the dump, in one exec session: `mysqldump`/`mariadb-dump` through the compressor into
    /// a partial file, renamed onto the path.
    pub fn run_script(&self, files: &RunFiles) -> String {
        let mut command = format!("\"$bns_dumper\" {}", self.connection_args());
        if self.single_transaction {
            command.push_str(" --single-transaction --quick");
        } else {
            command.push_str(" --lock-tables --add-locks");
        }
        command.push_str(" --add-drop-table --create-options --set-charset --routines --triggers");
        command.push(' ');
        command.push_str(&quote(&format!(
            "--default-character-set={}",
            self.default_character_set
        )));
        for arg in &self.dump.extra_args {
            command.push(' ');
            command.push_str(&quote(arg));
        }
        command.push_str(" -- ");
        command.push_str(&quote_with_env(&self.dump.database));
        script::check_then_dump(files, &self.check(), &self.dump.dump_file, &command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> MysqlHook {
        MysqlHook::new("statefulset/db".parse().expect("a workload"))
    }

    #[test]
    fn defaults_use_single_transaction_and_the_character_set() {
        let script = example().run_script(&RunFiles::for_dump("/d/x.gz", "t"));
        assert!(script.contains("--single-transaction --quick"));
        assert!(script.contains("'--default-character-set=utf8mb4'"));
        assert!(script.contains("-- \"${MYSQL_DATABASE}\""));
        assert!(script.contains("MYSQL_PWD=\"${MYSQL_ROOT_PASSWORD}\"; export MYSQL_PWD"));
    }

    #[test]
    fn the_run_script_checks_then_dumps_in_one_script_and_the_check_alone_writes_nothing() {
        let files = RunFiles::for_dump("/d/x.gz", "t");
        let run = example().run_script(&files);
        let select = run
            .find("--execute='SELECT 1'")
            .expect("checks the connection");
        let gate = run.find("checked=yes").expect("passes the space gate");
        let dump = run.find("--single-transaction").expect("dumps");
        assert!(select < gate && gate < dump, "{run}");
        assert_eq!(
            run.matches("bns_client=\n").count(),
            1,
            "the tools are detected once"
        );
        let check = example().check_script(&files);
        assert!(check.contains("checked=yes") && !check.contains("--single-transaction"));
        assert!(!check.contains(".partial"), "{check}");
    }

    #[test]
    fn database_name_follows_double_dash_quoted() {
        let mut hook = example();
        hook.dump.database = "-e'x".into();
        hook.single_transaction = false;
        let script = hook.run_script(&RunFiles::for_dump("/d/x.gz", "t"));
        assert!(script.contains(r"-- '-e'\''x'"));
        assert!(script.contains("--lock-tables"));
    }
}
