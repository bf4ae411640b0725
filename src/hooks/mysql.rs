//! MySQL / MariaDB dump hook: parameters and generated check and dump scripts (pure).
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

    /// Read-only check: tools present, `SELECT 1` works, the previous dump, and `df` of the dump directory.
    pub fn check_script(&self, files: &RunFiles) -> String {
        let mut s = script::prelude(files);
        s.push_str(&script::cleanup_traps(&RunFiles {
            partial: None,
            ..files.clone()
        }));
        s.push_str(&self.preamble());
        s.push_str(&self.dump.compression.select());
        s.push_str(&format!("echo \"{MARKER}compression=$bns_compression\"\n"));
        let _ = writeln!(
            s,
            "bns_one=$(\"$bns_client\" {} --batch --skip-column-names --execute='SELECT 1' -- {} </dev/null) || {{ echo '{MARKER}error=SELECT 1 failed (connection or credentials)'; exit 1; }}",
            self.connection_args(),
            quote_with_env(&self.dump.database)
        );
        s.push_str(&format!(
            "if [ \"$bns_one\" != 1 ]; then echo '{MARKER}error=SELECT 1 returned something else'; exit 1; fi\n\
             echo '{MARKER}connected=yes'\n\
             echo \"{MARKER}tool_version=$(\"$bns_dumper\" --version 2>&1 | head -n 1)\"\n"
        ));
        s.push_str(&script::previous_dump_report(&self.dump.dump_file));
        let (dir, _) = script::split_path(&self.dump.dump_file);
        s.push_str(&format!(
            "if [ ! -d {dir} ]; then echo '{MARKER}error=dump dir does not exist'; exit 1; fi\n",
            dir = quote(dir)
        ));
        s.push_str(&script::df_report(&quote(dir)));
        // Explicit: the exec's stdin may stay open after the script, and `sh -s` would wait for more.
        s.push_str("exit 0\n");
        s
    }

    /// The dump: `mysqldump`/`mariadb-dump` through the compressor into a partial file, renamed onto the path.
    pub fn dump_script(&self, files: &RunFiles) -> String {
        let mut s = script::prelude(files);
        s.push_str(&script::cleanup_traps(files));
        s.push_str(&self.preamble());
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
        s.push_str(&script::dump_body(
            &self.dump.dump_file,
            self.dump.compression,
            &command,
        ));
        s
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
        let script = example().dump_script(&RunFiles::for_dump("/d/x.gz", "t"));
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
        let script = hook.dump_script(&RunFiles::for_dump("/d/x.gz", "t"));
        assert!(script.contains(r"-- '-e'\''x'"));
        assert!(script.contains("--lock-tables"));
    }
}
