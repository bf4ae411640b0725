//! Thin entry point: parse the command line, hand it to the library, map the outcome to an exit code.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = backup_ns::cli::Cli::parse();
    backup_ns::run(cli).into()
}
