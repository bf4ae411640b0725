//! [`KubeExec`]: the engine's [`ContainerExec`] port over the pod exec API (WebSocket, kube-rs `ws`).
//!
//! stdin is streamed through a bounded pipe, so a large upload (`--from-local`) moves at the pace the container
//! reads it and never sits in memory. stdout is streamed into the caller's writer (downloads) or captured, keeping
//! only the last [`CAPTURE_LIMIT`] bytes; stderr is always captured that way. The exit code comes from the status
//! channel (`NonZeroExitCode` carries it in its `ExitCode` cause). On timeout the future holding the stream is
//! dropped, which aborts kube's message loop and closes the WebSocket.
//!
//! Ending stdin (so `sh -s` runs the script it read) needs the `v5.channel.k8s.io` subprotocol's close frame,
//! served by apiservers since Kubernetes 1.30 (and by kube-sim). On older servers kube-rs can only signal EOF by
//! closing the whole socket, which may cut off the command's output.

use super::client::Cluster;
use crate::vocab::exec::{
    CAPTURE_LIMIT, ContainerExec, ExecError, ExecRequest, ExecResult, Stdin, StdoutSink,
};
use crate::vocab::workload::ContainerRef;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Pipe buffer between our tasks and kube's WebSocket loop; large enough to keep a fast stream busy.
const PIPE_BUFFER: usize = 64 * 1024;

/// Runs commands in containers through the pod exec API.
#[derive(Clone)]
pub struct KubeExec {
    client: kube::Client,
}

impl KubeExec {
    pub fn new(client: kube::Client) -> Self {
        KubeExec { client }
    }
}

impl Cluster {
    /// The [`ContainerExec`] port backed by this client.
    pub fn container_exec(&self) -> KubeExec {
        KubeExec::new(self.client().clone())
    }
}

impl ContainerExec for KubeExec {
    fn exec<'a>(
        &'a self,
        request: ExecRequest,
        stdout: StdoutSink<'a>,
    ) -> BoxFuture<'a, Result<ExecResult, ExecError>> {
        Box::pin(async move {
            let target = request.target.clone();
            match request.timeout {
                Some(after) => {
                    // Retries of the exec's upgrade never wait past the command's own deadline.
                    let deadline = tokio::time::Instant::now() + after;
                    let bounded =
                        super::retry::within_deadline(deadline, run(&self.client, request, stdout));
                    match tokio::time::timeout(after, bounded).await {
                        Ok(result) => result,
                        Err(_) => {
                            tracing::warn!(%target, ?after, "exec timed out; closing the stream");
                            Err(ExecError::Timeout { target, after })
                        }
                    }
                }
                None => run(&self.client, request, stdout).await,
            }
        })
    }
}

impl KubeExec {
    /// Starts an interactive command with a terminal (`postgres shell`): stdin and a TTY stdout (stderr is merged
    /// into it by the terminal). The caller wires its terminal to `stdin()`/`stdout()`, forwards window sizes
    /// through `terminal_size()`, and reads the exit code with [`exit_status`] from `take_status()`.
    pub async fn exec_interactive(
        &self,
        target: &ContainerRef,
        argv: Vec<String>,
    ) -> Result<kube::api::AttachedProcess, ExecError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &target.namespace);
        let params = AttachParams::interactive_tty().container(target.container.clone());
        pods.exec(&target.pod, argv, &params)
            .await
            .map_err(|err| ExecError::Start {
                target: target.clone(),
                message: start_message(&err),
            })
    }
}

/// Keeps the last `limit` bytes written to it.
#[derive(Debug)]
pub struct TailBuffer {
    buf: Vec<u8>,
    limit: usize,
    dropped: u64,
}

impl TailBuffer {
    pub fn new(limit: usize) -> Self {
        TailBuffer {
            buf: Vec::new(),
            limit,
            dropped: 0,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        // Trim only when twice the limit is reached, so trimming costs O(1) amortised per byte.
        if self.buf.len() > self.limit.saturating_mul(2) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.buf.len() > self.limit {
            let excess = self.buf.len() - self.limit;
            self.buf.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// How many leading bytes were discarded.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn into_bytes(mut self) -> Vec<u8> {
        self.trim();
        self.buf
    }
}

async fn capture(mut reader: impl AsyncRead + Unpin) -> std::io::Result<TailBuffer> {
    let mut tail = TailBuffer::new(CAPTURE_LIMIT);
    let mut chunk = vec![0u8; PIPE_BUFFER];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok(tail);
        }
        tail.push(&chunk[..n]);
    }
}

/// How an exec ended according to its status channel message.
#[derive(Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    /// The command could not run (container missing, executable not found, ...).
    Failed(String),
}

/// Reads the exit code from the status message: `Success` → 0, `NonZeroExitCode` → its `ExitCode` cause.
pub fn exit_status(status: &Status) -> ExitStatus {
    if status.status.as_deref() == Some("Success") {
        return ExitStatus::Exited(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|causes| {
                causes
                    .iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.trim().parse::<i32>().ok());
        if let Some(code) = code {
            return ExitStatus::Exited(code);
        }
    }
    ExitStatus::Failed(
        status
            .message
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| format!("exec failed with status {status:?}")),
    )
}

/// Why the exec could not even start, with the fix for the common cases.
pub(super) fn start_message(err: &kube::Error) -> String {
    let (code, text) = match err {
        kube::Error::Api(status) => (
            Some(status.code),
            format!("{} (HTTP {})", status.message, status.code),
        ),
        other => (None, other.to_string()),
    };
    let text_has = |c: &str| code.map(|c| c.to_string()).as_deref() == Some(c) || text.contains(c);
    if text_has("403") {
        format!(
            "{text}; the service account needs RBAC verbs `get` and `create` on `pods/exec` (a \
             WebSocket exec is authorized as both) in this namespace"
        )
    } else if text_has("404") {
        format!("{text}; the pod no longer exists (re-resolve the workload)")
    } else {
        text
    }
}

async fn run(
    client: &kube::Client,
    request: ExecRequest,
    sink: StdoutSink<'_>,
) -> Result<ExecResult, ExecError> {
    let ExecRequest {
        target,
        argv,
        stdin,
        timeout: _,
    } = request;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let wants_stdin = !matches!(stdin, Stdin::None);
    let params = AttachParams::default()
        .container(target.container.clone())
        .stdin(wants_stdin)
        .stdout(true)
        .stderr(true)
        .max_stdin_buf_size(PIPE_BUFFER)
        .max_stdout_buf_size(PIPE_BUFFER)
        .max_stderr_buf_size(PIPE_BUFFER);
    tracing::debug!(%target, program = argv.first().map(String::as_str), "exec");
    let mut process =
        pods.exec(&target.pod, argv, &params)
            .await
            .map_err(|err| ExecError::Start {
                target: target.clone(),
                message: start_message(&err),
            })?;
    let stream_broke = |message: String| ExecError::Stream {
        target: target.clone(),
        message,
    };
    let status = process
        .take_status()
        .ok_or_else(|| stream_broke("no status channel".into()))?;
    let stdout_reader = process
        .stdout()
        .ok_or_else(|| stream_broke("no stdout channel".into()))?;
    let stderr_reader = process
        .stderr()
        .ok_or_else(|| stream_broke("no stderr channel".into()))?;
    let stdin_writer = process.stdin();

    let feed = async move {
        let Some(mut writer) = stdin_writer else {
            return Ok(());
        };
        let copied = match stdin {
            Stdin::None => Ok(()),
            Stdin::Bytes(bytes) => writer.write_all(&bytes).await,
            Stdin::Reader(mut reader) => tokio::io::copy(&mut reader, &mut writer).await.map(drop),
        };
        // Closing our end sends EOF on the stdin channel: `sh -s` then runs to completion.
        let closed = writer.shutdown().await;
        copied.and(closed)
    };
    let out = async move {
        match sink {
            StdoutSink::Capture => capture(stdout_reader).await.map(TailBuffer::into_bytes),
            StdoutSink::Writer(writer) => {
                let mut reader = stdout_reader;
                tokio::io::copy(&mut reader, writer).await?;
                writer.flush().await?;
                Ok(Vec::new())
            }
        }
    };
    let err = capture(stderr_reader);
    let (fed, outputs, status, joined) =
        until_the_stream_ends(feed, async { tokio::join!(out, err) }, status, process).await;
    let Some((out, err)) = outputs else {
        // kube's message loop failed without closing our pipes: no more output will come.
        let message = joined.err().unwrap_or_else(|| NO_EXIT_STATUS.to_string());
        return Err(match status.as_ref().map(exit_status) {
            Some(ExitStatus::Failed(message)) => ExecError::Start { target, message },
            _ => ExecError::Stream { target, message },
        });
    };

    let stdout = out.map_err(|e| stream_broke(format!("writing stdout failed: {e}")))?;
    let stderr = err
        .map_err(|e| stream_broke(format!("reading stderr failed: {e}")))?
        .into_bytes();
    match status.as_ref().map(exit_status) {
        Some(ExitStatus::Exited(exit_code)) => {
            if let Some(Err(e)) = fed {
                // The command may legitimately exit before reading all its input; only worth a debug line.
                tracing::debug!(%target, %e, "stdin was not fully consumed");
            }
            Ok(ExecResult {
                exit_code,
                stdout,
                stderr,
            })
        }
        Some(ExitStatus::Failed(message)) => Err(ExecError::Start { target, message }),
        None => {
            let message = match (joined, fed.unwrap_or(Ok(()))) {
                (Err(e), _) => e,
                (Ok(()), Err(e)) => format!("sending stdin failed: {e}"),
                (Ok(()), Ok(())) => NO_EXIT_STATUS.to_string(),
            };
            Err(ExecError::Stream { target, message })
        }
    }
}

/// What an exec reports when its stream closed before the status channel said how the command ended.
pub const NO_EXIT_STATUS: &str = "the stream closed without an exit status";

/// How long output already buffered may take to be read once kube's message loop has failed.
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Drives an exec's stdin feed and its output readers until the WebSocket ends, and never longer.
///
/// kube's message loop closes the stdout/stderr pipes when the stream ends cleanly (a status frame, or a close
/// without one), but when it ends with an error (the server closed the socket while we were sending stdin, a
/// reset) it drops them unclosed, and a reader would then wait forever; a stdin writer whose reader is gone
/// waits forever too once the pipe is full. The status future resolves exactly when the loop ends (with the
/// status, or empty when the loop dropped its sender), so it is watched beside the I/O: after it, stdin is
/// abandoned, the loop's result is read, and if the loop failed the outputs get [`DRAIN_GRACE`] to hand over
/// what is buffered. `process` is held until then, so that dropping this future (a timeout) still aborts the
/// loop and closes the socket. Returns the stdin result (if it finished), the outputs (`None` if they never
/// ended), the status and the loop's result.
async fn until_the_stream_ends<F, O>(
    feed: impl Future<Output = F>,
    outputs: impl Future<Output = O>,
    status: impl Future<Output = Option<Status>>,
    process: kube::api::AttachedProcess,
) -> (Option<F>, Option<O>, Option<Status>, Result<(), String>) {
    let mut feed = std::pin::pin!(feed);
    let mut outputs = std::pin::pin!(outputs);
    let mut status = std::pin::pin!(status);
    let mut fed = None;
    let mut done = None;
    let ended = loop {
        tokio::select! {
            f = &mut feed, if fed.is_none() => fed = Some(f),
            s = &mut status => break s,
            o = &mut outputs, if done.is_none() => done = Some(o),
        }
    };
    // The loop has ended (or is returning): its result comes at once.
    let joined = process.join().await.map_err(|e| e.to_string());
    let outputs = match (done, &joined) {
        (Some(o), _) => Some(o),
        (None, Ok(())) => Some(outputs.await),
        (None, Err(_)) => tokio::time::timeout(DRAIN_GRACE, outputs).await.ok(),
    };
    (fed, outputs, ended, joined)
}

/// The container a request is aimed at, for callers that build requests.
pub fn container(namespace: &str, pod: &str, container: &str) -> ContainerRef {
    ContainerRef {
        namespace: namespace.into(),
        pod: pod.into(),
        container: container.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    fn status(
        status: &str,
        reason: Option<&str>,
        message: Option<&str>,
        code: Option<&str>,
    ) -> Status {
        Status {
            status: Some(status.into()),
            reason: reason.map(Into::into),
            message: message.map(Into::into),
            details: code.map(|c| StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some(c.into()),
                    field: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn exit_codes_come_from_the_status_channel() {
        assert_eq!(
            exit_status(&status("Success", None, None, None)),
            ExitStatus::Exited(0)
        );
        assert_eq!(
            exit_status(&status(
                "Failure",
                Some("NonZeroExitCode"),
                Some("command terminated with non-zero exit code"),
                Some("42")
            )),
            ExitStatus::Exited(42)
        );
    }

    #[test]
    fn a_failure_without_an_exit_code_is_reported_with_its_message() {
        assert_eq!(
            exit_status(&status(
                "Failure",
                Some("InternalError"),
                Some("executable file not found"),
                None
            )),
            ExitStatus::Failed("executable file not found".into())
        );
    }

    #[test]
    fn the_tail_buffer_keeps_exactly_the_last_bytes_in_bounded_memory() {
        let mut tail = TailBuffer::new(10);
        for i in 0..100u8 {
            tail.push(&[i, i]);
            assert!(tail.buf.len() <= 21, "buffer grew to {}", tail.buf.len());
        }
        assert!(tail.dropped() > 0);
        assert_eq!(
            tail.into_bytes(),
            vec![95, 95, 96, 96, 97, 97, 98, 98, 99, 99]
        );
    }

    #[tokio::test]
    async fn capture_keeps_at_most_the_capture_limit() {
        let data = vec![7u8; CAPTURE_LIMIT + 12345];
        let tail = capture(&data[..]).await.unwrap();
        assert_eq!(tail.into_bytes().len(), CAPTURE_LIMIT);
    }
}
