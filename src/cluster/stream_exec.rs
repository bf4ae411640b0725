//! Exec whose stdout is handed over as it arrives (`postgres|mysql download`).
//!
//! kube-rs's `AttachedProcess` copies every stdout frame into an in-memory pipe that the caller then reads back
//! out, and wakes two tasks per frame. For a multi-GiB dump that is several extra copies of every byte, so this
//! path speaks the exec protocol on the upgraded connection itself ([`super::exec_frames`]): stdout is read
//! straight into the memory a [`ChunkSink`] offers, stderr keeps its bounded tail, and the status channel gives
//! the exit code exactly as in [`super::exec`]. Memory is bounded by the sink: while it is busy nothing more is
//! read, and TCP flow control holds back the server.

use super::client::Cluster;
use super::exec::{ExitStatus, TailBuffer, exit_status, start_message};
use super::exec_frames::ExecFrames;
use crate::vocab::exec::{ExecError, ExecResult};
use crate::vocab::workload::ContainerRef;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Resource;
use kube::api::AttachParams;

/// Channel numbers of the Kubernetes exec protocol (`channel.k8s.io` and its v4/v5 successors).
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;

/// How much of stderr is kept (its tail) for the error message.
const STDERR_TAIL: usize = 64 * 1024;

/// The most a status message may hold (a `Status` object is a few hundred bytes).
const STATUS_LIMIT: u64 = 1024 * 1024;

/// Takes a command's stdout as it arrives, into memory of its own.
pub trait ChunkSink {
    /// Room for the next bytes of stdout; never empty.
    fn space(&mut self) -> &mut [u8];
    /// The first `n` bytes of [`space`](Self::space) now hold the next stdout, in order. An error aborts the
    /// stream and is reported as the exec's error.
    fn filled(&mut self, n: usize) -> impl Future<Output = std::io::Result<()>>;
}

impl Cluster {
    /// Runs `argv` in `target` without stdin and hands every stdout chunk to `sink`; stderr's tail is captured.
    /// Returns when the command ended and all of its output was handed over.
    pub async fn exec_stdout_chunks(
        &self,
        target: &ContainerRef,
        argv: Vec<String>,
        sink: &mut impl ChunkSink,
    ) -> Result<ExecResult, ExecError> {
        let broke = |message: String| ExecError::Stream {
            target: target.clone(),
            message,
        };
        let params = AttachParams::default()
            .container(target.container.clone())
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let url = Pod::url_path(&(), Some(&target.namespace));
        let request = kube::core::Request::new(url)
            .exec(&target.pod, argv, &params)
            .map_err(|e| ExecError::Start {
                target: target.clone(),
                message: e.to_string(),
            })?;
        tracing::debug!(%target, "exec (streamed stdout)");
        let connection = self
            .client()
            .connect(request)
            .await
            .map_err(|err| ExecError::Start {
                target: target.clone(),
                message: start_message(&err),
            })?;
        let mut frames = ExecFrames::new(connection.into_stream().into_inner());
        let outcome = read_channels(&mut frames, sink).await;
        // The command has ended (or the stream broke); a failing close changes nothing about the result.
        frames.close().await;
        let (stderr, status) = outcome.map_err(broke)?;
        match status.as_ref().map(exit_status) {
            Some(ExitStatus::Exited(exit_code)) => Ok(ExecResult {
                exit_code,
                stdout: Vec::new(),
                stderr,
            }),
            Some(ExitStatus::Failed(message)) => Err(ExecError::Start {
                target: target.clone(),
                message,
            }),
            None => Err(broke("the stream closed without an exit status".into())),
        }
    }
}

/// Reads the channels until the status message (or the end of the stream): stdout into `sink`, the tail of
/// stderr, and the status.
async fn read_channels<S>(
    frames: &mut ExecFrames<S>,
    sink: &mut impl ChunkSink,
) -> Result<(Vec<u8>, Option<Status>), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut stderr = TailBuffer::new(STDERR_TAIL);
    let mut status = Vec::new();
    while let Some(part) = frames.next_part().await? {
        match part.channel {
            STDOUT => loop {
                let space = sink.space();
                if space.is_empty() {
                    // Never silently drop output: a sink without room is a bug, not the end of the part.
                    return Err("the output's sink offered no room".into());
                }
                let n = frames.read(space).await?;
                if n == 0 {
                    break;
                }
                sink.filled(n)
                    .await
                    .map_err(|e| format!("handling the output failed: {e}"))?;
            },
            STDERR => frames.each(|bytes| stderr.push(bytes)).await?,
            STATUS => {
                if status.len() as u64 + part.len > STATUS_LIMIT {
                    return Err(format!(
                        "the status channel carried over {STATUS_LIMIT} bytes"
                    ));
                }
                let start = status.len();
                status.resize(start + part.len as usize, 0);
                frames.read_exact(&mut status[start..]).await?;
                // The initial one-byte frames of the v4 protocol carry no status.
                if part.end && !status.is_empty() {
                    let parsed = serde_json::from_slice(&status)
                        .map_err(|e| format!("the status channel carried invalid JSON: {e}"))?;
                    return Ok((stderr.into_bytes(), Some(parsed)));
                }
            }
            // The v5 close channel and stdin's echo carry nothing for us; `next_part` skips what is left.
            _ => {}
        }
    }
    Ok((stderr.into_bytes(), None))
}

/// A download's file writer offers its stage buffer.
impl ChunkSink for crate::hooks::dbops::DumpWriter {
    fn space(&mut self) -> &mut [u8] {
        crate::hooks::dbops::DumpWriter::space(self)
    }

    async fn filled(&mut self, n: usize) -> std::io::Result<()> {
        crate::hooks::dbops::DumpWriter::filled(self, n).await
    }
}

/// `postgres|mysql download` streams the dump file through this exec path.
impl crate::hooks::dbops::DumpSource for Cluster {
    async fn stream_stdout(
        &self,
        target: &ContainerRef,
        argv: Vec<String>,
        sink: &mut crate::hooks::dbops::DumpWriter,
    ) -> Result<ExecResult, ExecError> {
        self.exec_stdout_chunks(target, argv, sink).await
    }
}
