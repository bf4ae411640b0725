//! Plain `exec` hook: a command (argv) or a shell script run in the target container.
//!
//! Both are wrapped in a generated script sent to `sh -s`, so even a plain argv never appears in the exec URL
//! (the apiserver audit log) and the runner gets a pid file to kill the command on timeout.
//!
//! The command's stdin is `/dev/null`: `sh -s` is still reading the rest of our script from stdin, and a command
//! that reads stdin (a REPL-ish CLI, `mysql` without `-e`) would otherwise swallow it. A user script is carried
//! in a single-quoted variable and `eval`ed in a subshell with the shell's default options (not our `set -eu`),
//! outside any `||` context so that its own `set -e` keeps working.

use super::quote::quote;
use super::script::{self, RunFiles};

/// What an exec hook runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecCommand {
    /// A program and its arguments; each is one quoted word.
    Argv(Vec<String>),
    /// A POSIX shell script.
    Script(String),
}

impl ExecCommand {
    /// The wrapper script: pid file, cleanup trap, the command as a child (so the trap still runs), its status.
    pub fn script(&self, files: &RunFiles) -> String {
        let mut s = script::prelude(files);
        s.push_str(&script::cleanup_traps(files));
        match self {
            ExecCommand::Argv(argv) => {
                let words: Vec<String> = argv.iter().map(|a| quote(a)).collect();
                s.push_str("bns_status=0\n");
                s.push_str(&words.join(" "));
                s.push_str(" </dev/null || bns_status=$?\n");
            }
            ExecCommand::Script(body) => {
                s.push_str(&format!("bns_script={}\n", quote(body)));
                s.push_str("set +e\n");
                s.push_str(
                    "( unset -f bns_pgid bns_cleanup; unset bns_pidfile bns_s; set +eu; eval \"$bns_script\" ) </dev/null\n",
                );
                s.push_str("bns_status=$?\n");
            }
        }
        s.push_str("exit \"$bns_status\"\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_words_are_quoted_and_read_no_stdin() {
        let cmd = ExecCommand::Argv(vec!["echo".into(), "a b".into(), "$(id)".into()]);
        let s = cmd.script(&RunFiles::for_command("t"));
        assert!(s.contains("'echo' 'a b' '$(id)' </dev/null || bns_status=$?"));
    }

    #[test]
    fn user_scripts_travel_quoted_in_a_variable() {
        let cmd = ExecCommand::Script("echo 'hi'\nexit 3\n".into());
        let s = cmd.script(&RunFiles::for_command("t"));
        assert!(s.contains("bns_script='echo '\\''hi'\\''\nexit 3\n'\n"));
        assert!(s.ends_with("bns_status=$?\nexit \"$bns_status\"\n"));
    }
}
