//! Plain `exec` hook: a command (argv) or a shell script run in the target container.
//!
//! Both are wrapped in a generated script sent to `sh -s`, so even a plain argv never appears in the exec URL
//! (the apiserver audit log) and the runner gets a pid file to kill the command on timeout. A user script runs
//! in its own `sh -s`, fed through a here-document with a unique delimiter, so our strict mode does not change
//! its semantics.

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
    pub fn script(&self, files: &RunFiles, token: &str) -> String {
        let mut s = script::prelude(files);
        s.push_str(&script::cleanup_traps(files));
        s.push_str("bns_status=0\n");
        match self {
            ExecCommand::Argv(argv) => {
                let words: Vec<String> = argv.iter().map(|a| quote(a)).collect();
                s.push_str(&words.join(" "));
                s.push_str(" || bns_status=$?\n");
            }
            ExecCommand::Script(body) => {
                let mut delimiter = format!("BACKUP_NS_SCRIPT_{token}");
                while body.lines().any(|l| l == delimiter) {
                    delimiter.push('X');
                }
                s.push_str(&format!("sh -s <<'{delimiter}' || bns_status=$?\n"));
                s.push_str(body);
                if !body.ends_with('\n') {
                    s.push('\n');
                }
                s.push_str(&delimiter);
                s.push('\n');
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
    fn argv_words_are_quoted() {
        let cmd = ExecCommand::Argv(vec!["echo".into(), "a b".into(), "$(id)".into()]);
        let s = cmd.script(&RunFiles::for_command("t"), "t");
        assert!(s.contains("'echo' 'a b' '$(id)' || bns_status=$?"));
    }

    #[test]
    fn heredoc_delimiter_never_collides_with_the_script() {
        let cmd = ExecCommand::Script("echo hi\nBACKUP_NS_SCRIPT_t\n".into());
        let s = cmd.script(&RunFiles::for_command("t"), "t");
        assert!(s.contains("<<'BACKUP_NS_SCRIPT_tX'"));
        assert!(s.ends_with("BACKUP_NS_SCRIPT_tX\nexit \"$bns_status\"\n"));
    }
}
