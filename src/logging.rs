//! Log setup: human-readable on a terminal, one JSON object per line for CronJobs (`--log-format json`).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written: `human` for terminals, `json` for CronJobs and log shippers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Installs the global tracing subscriber. Logs go to stderr so stdout stays machine-readable.
/// `verbose`: 0 info, 1 debug, 2 and more trace (`BACKUP_NS_LOG` overrides with a full filter).
pub fn init(format: LogFormat, verbose: u8) {
    let default_level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // kube-client's HTTP trace layer logs every failed request at ERROR ("failed with error client error
    // (Connect)") before backup-ns reports the same failure with its context; below -vv it only repeats it.
    // Its client logs the whole text of an answer that does not parse at WARN: that can be many MiB (a cut-short
    // list), or a Secret's data; backup-ns reports such an answer itself, naming the resource and where the
    // parse failed.
    let client_trace = if verbose >= 2 {
        ""
    } else {
        ",kube_client::client::builder=off,kube_client::client=error"
    };
    let filter = EnvFilter::try_from_env("BACKUP_NS_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!("backup_ns={default_level},warn{client_trace}"))
    });
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (e.g. in tests that call `run` twice) is harmless, so the error is ignored on purpose.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.with_ansi(ansi).with_target(false).try_init(),
    };
}
