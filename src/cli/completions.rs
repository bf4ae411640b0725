//! `backup-ns completions SHELL`: print a completion script to stdout.

use crate::Exit;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  backup-ns completions bash > /etc/bash_completion.d/backup-ns\n  backup-ns completions zsh > \"${fpath[1]}/_backup-ns\"\n  backup-ns completions fish > ~/.config/fish/completions/backup-ns.fish"
)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> Exit {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "backup-ns", &mut std::io::stdout());
    Exit::Success
}
