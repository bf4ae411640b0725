//! MySQL / MariaDB dump hook: parameters and the generated scripts, the check alone (dry run) and the check with
//! the dump (pure).
//!
//! The client tools are detected in the container (`mariadb` + `mariadb-dump` first, then `mysql` +
//! `mysqldump`), because MariaDB images are dropping the `mysql*` names. The password travels as `MYSQL_PWD`;
//! every option value is attached with `=` and the database name follows `--`, so no value can become an option.

use super::quote::{quote, quote_with_env};
use super::script::{self, DumpParts, DumpScripts, MARKER};
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
}

impl DumpScripts for MysqlHook {
    /// The parts of its scripts: the client and dump tool found by [`Self::preamble`].
    fn parts(&self) -> DumpParts {
        let mut setup = self.preamble();
        setup.push_str(&self.dump.compression.select());
        setup.push_str(&format!("echo \"{MARKER}compression=$bns_compression\"\n"));
        let database = quote_with_env(&self.dump.database);
        let mut dump_command = format!("\"$bns_dumper\" {}", self.connection_args());
        if self.single_transaction {
            dump_command.push_str(" --single-transaction --quick");
        } else {
            dump_command.push_str(" --lock-tables --add-locks");
        }
        dump_command
            .push_str(" --add-drop-table --create-options --set-charset --routines --triggers");
        dump_command.push(' ');
        dump_command.push_str(&quote(&format!(
            "--default-character-set={}",
            self.default_character_set
        )));
        for arg in &self.dump.extra_args {
            dump_command.push(' ');
            dump_command.push_str(&quote(arg));
        }
        dump_command.push_str(" -- ");
        dump_command.push_str(&database);
        DumpParts {
            setup,
            select_one: format!(
                "\"$bns_client\" {} --batch --skip-column-names --execute='SELECT 1' -- {database}",
                self.connection_args()
            ),
            version: "\"$bns_dumper\" --version".into(),
            dump_command,
            dump_path: self.dump.dump_file.clone(),
            threshold: self.dump.threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::script::RunFiles;

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
    fn database_name_follows_double_dash_quoted() {
        let mut hook = example();
        hook.dump.database = "-e'x".into();
        hook.single_transaction = false;
        let script = hook.run_script(&RunFiles::for_dump("/d/x.gz", "t"));
        assert!(script.contains(r"-- '-e'\''x'"));
        assert!(script.contains("--lock-tables"));
    }
}
