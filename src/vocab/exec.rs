//! Running commands in containers: the request, its stdin and stdout, the result and its errors, and the two
//! traits that carry them, [`ContainerExec`] and [`PodResolver`].
//!
//! `cluster::` implements them against the Kubernetes API (pod exec over WebSocket); tests may implement them
//! with local processes. The futures are boxed so the traits stay object-safe (`Arc<dyn ContainerExec>` is
//! what the rhai sandbox holds).

use super::workload::{ContainerRef, WorkloadRef};
use futures::future::BoxFuture;
use std::fmt;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// At most this many bytes of stdout and stderr are kept when output is captured (the tail is kept).
pub const CAPTURE_LIMIT: usize = 1024 * 1024;

/// What the command reads on stdin. Scripts always travel here, never in argv: argv ends up in the apiserver's
/// audit log and in the pod's process table.
pub enum Stdin {
    None,
    Bytes(Vec<u8>),
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stdin::None => f.write_str("Stdin::None"),
            Stdin::Bytes(b) => write!(f, "Stdin::Bytes({} bytes)", b.len()),
            Stdin::Reader(_) => f.write_str("Stdin::Reader(..)"),
        }
    }
}

/// Where stdout goes: captured (bounded by [`CAPTURE_LIMIT`]) or streamed into a writer (downloads).
pub enum StdoutSink<'a> {
    Capture,
    Writer(&'a mut (dyn AsyncWrite + Send + Unpin)),
}

/// One command execution in a container.
#[derive(Debug)]
pub struct ExecRequest {
    pub target: ContainerRef,
    /// The program and its arguments, e.g. `["sh", "-s"]`. Never carries secrets or script bodies.
    pub argv: Vec<String>,
    pub stdin: Stdin,
    /// On expiry the exec stream is closed and the call fails with [`ExecError::Timeout`].
    pub timeout: Option<Duration>,
}

/// The outcome of a command that ran to completion (any exit code).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    /// Empty when stdout was streamed into a writer.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecResult {
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// Why a command could not be run to completion. A non-zero exit code is not an error: see [`ExecResult`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("could not start a command in {target}: {message}")]
    Start {
        target: ContainerRef,
        message: String,
    },
    #[error("command in {target} did not finish within {}", humantime::format_duration(*.after))]
    Timeout {
        target: ContainerRef,
        after: Duration,
    },
    #[error("exec stream to {target} broke: {message}")]
    Stream {
        target: ContainerRef,
        message: String,
    },
}

/// Runs commands inside containers.
pub trait ContainerExec: Send + Sync {
    fn exec<'a>(
        &'a self,
        request: ExecRequest,
        stdout: StdoutSink<'a>,
    ) -> BoxFuture<'a, Result<ExecResult, ExecError>>;
}

/// Why a workload could not be resolved to a ready container. Messages name the object and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{workload} not found in namespace {namespace}{}", hint(near))]
    NotFound {
        namespace: String,
        workload: WorkloadRef,
        /// The nearest existing workload of the same kind, as `kind/name`.
        near: Option<String>,
    },
    #[error("{workload} in namespace {namespace} has no Running and Ready pod ({detail})")]
    NoReadyPod {
        namespace: String,
        workload: WorkloadRef,
        detail: String,
    },
    #[error(
        "pod {pod} of {workload} in namespace {namespace} has no container `{container}` (it has: {available}){}",
        hint(near)
    )]
    NoSuchContainer {
        namespace: String,
        workload: WorkloadRef,
        pod: String,
        container: String,
        available: String,
        /// The nearest container name the pod has.
        near: Option<String>,
    },
    #[error("could not look up {workload} in namespace {namespace}: {message}")]
    Api {
        namespace: String,
        workload: WorkloadRef,
        message: String,
    },
}

/// `; did you mean `X`?` for a near name, else nothing.
fn hint(near: &Option<String>) -> String {
    near.as_deref()
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default()
}

/// Resolves `deployment/NAME` etc. to a Running and Ready pod that has the named container.
pub trait PodResolver: Send + Sync {
    fn resolve<'a>(
        &'a self,
        namespace: &'a str,
        workload: &'a WorkloadRef,
        container: &'a str,
    ) -> BoxFuture<'a, Result<ContainerRef, ResolveError>>;
}
