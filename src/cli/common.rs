//! What the operator commands (`list`, `restore`, `delete`, `adhoc`) share: the connection flags, a small runtime
//! that maps an [`OpsError`] to its exit code, and printing that survives a closed pipe.

use crate::Exit;
use crate::clock::Clock;
use crate::cluster::{Cluster, ConnectOptions};
use crate::ops::OpsError;
use crate::ops::style::Style;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// How to reach the cluster; shared by the operator commands.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Namespace (default: the kubeconfig context's namespace, in a pod its own namespace, else `default`).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE", env = "BACKUP_NS_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

impl ClusterArgs {
    pub(crate) async fn connect(&self) -> Result<Cluster, OpsError> {
        Ok(Cluster::connect(&ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            service_account_namespace_file: None,
            retry: None,
            without_retry_layer: false,
        })
        .await?)
    }
}

/// Runs an async command body on a small runtime and maps its error to the documented exit code, printing it.
pub(crate) fn block_on<F>(body: F) -> Exit
where
    F: std::future::Future<Output = Result<Exit, OpsError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure;
        }
    };
    match runtime.block_on(body) {
        Ok(exit) => exit,
        Err(err) => {
            report(&err);
            err.exit()
        }
    }
}

/// Prints an error on stderr (`error:` in red on a terminal).
pub(crate) fn report(err: &dyn std::fmt::Display) {
    eprintln!("{}: {err}", Style::for_stderr().red("error"));
}

/// The clock (`BACKUP_NS_NOW`, `TZ`), or a usage error naming the bad variable.
pub(crate) fn clock() -> Result<Clock, Exit> {
    Clock::from_env().map_err(|e| {
        report(&e);
        Exit::Usage
    })
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a stack of messages.
pub(crate) fn emit(text: &str) -> Result<(), OpsError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(OpsError::Output(e.to_string())),
    }
}

/// Writes diagnostics (or any line) to stderr. Unlike `eprintln!`, a closed stderr pipe is ignored instead of
/// a panic: diagnostics of a big hostile file used to overflow the pipe buffer of `| head` and exit 101.
pub(crate) fn diag_line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// The width diagnostics render at: `COLUMNS`, else 100.
pub(crate) fn term_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// Renders diagnostics to stderr: per file the first [`crate::plan::diag::MAX_SHOWN_PER_FILE`], then a
/// summary line, each rendered at `width` (`color` for a terminal).
pub(crate) fn print_diags(diags: &[crate::plan::Diag], width: usize, color: bool) {
    for d in crate::plan::Diagnostics(diags.to_vec()).shown() {
        diag_line(&d.render_styled(width, color));
    }
}
