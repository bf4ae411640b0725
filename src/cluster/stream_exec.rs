//! Exec whose stdout is handed over frame by frame (`postgres|mysql download`).
//!
//! kube-rs's `AttachedProcess` copies every stdout frame into an in-memory pipe that the caller then reads back
//! out, and wakes two tasks per frame. For a multi-GiB dump that is several extra copies of every byte, so this
//! path speaks the exec protocol on the raw WebSocket instead: each binary frame's payload is a reference-counted
//! [`Bytes`] handed to a [`ChunkSink`] as a slice of the frame (no copy), stderr keeps its bounded tail, and the
//! status channel gives the exit code exactly as in [`super::exec`]. Memory is bounded by the sink: while it is
//! busy no further frame is read, and TCP flow control holds back the server.

use super::client::Cluster;
use super::exec::{ExitStatus, TailBuffer, exit_status, start_message};
use crate::vocab::exec::{ExecError, ExecResult};
use crate::vocab::workload::ContainerRef;
use bytes::Bytes;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Resource;
use kube::api::AttachParams;
use tokio_tungstenite::tungstenite::Message;

/// Channel numbers of the Kubernetes exec protocol (`channel.k8s.io` and its v4/v5 successors).
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;

/// How much of stderr is kept (its tail) for the error message.
const STDERR_TAIL: usize = 64 * 1024;

/// Takes a command's stdout as it arrives.
pub trait ChunkSink {
    /// One chunk, in order. An error aborts the stream and is reported as the exec's error.
    fn chunk(&mut self, data: Bytes) -> impl Future<Output = std::io::Result<()>>;
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
        let mut socket = self
            .client()
            .connect(request)
            .await
            .map_err(|err| ExecError::Start {
                target: target.clone(),
                message: start_message(&err),
            })?
            .into_stream();

        let mut stderr = TailBuffer::new(STDERR_TAIL);
        let mut status: Option<Status> = None;
        while let Some(message) = socket.next().await {
            let frame = match message {
                Ok(Message::Binary(frame)) => frame,
                Ok(Message::Close(_)) => break,
                // Pings are answered by the WebSocket layer; text frames are not part of the protocol.
                Ok(_) => continue,
                Err(e) => return Err(broke(format!("reading the exec stream failed: {e}"))),
            };
            let Some(&channel) = frame.first() else {
                continue;
            };
            match channel {
                STDOUT if frame.len() > 1 => {
                    if let Err(e) = sink.chunk(frame.slice(1..)).await {
                        let _ = socket.close(None).await;
                        return Err(broke(format!("handling the output failed: {e}")));
                    }
                }
                STDERR => stderr.push(&frame[1..]),
                STATUS => {
                    status = Some(serde_json::from_slice(&frame[1..]).map_err(|e| {
                        broke(format!("the status channel carried invalid JSON: {e}"))
                    })?);
                    break;
                }
                // The v5 close channel and the initial one-byte frames carry nothing for us.
                _ => {}
            }
        }
        // The command has ended; a failing close handshake changes nothing about its result.
        let _ = socket.close(None).await;
        match status.as_ref().map(exit_status) {
            Some(ExitStatus::Exited(exit_code)) => Ok(ExecResult {
                exit_code,
                stdout: Vec::new(),
                stderr: stderr.into_bytes(),
            }),
            Some(ExitStatus::Failed(message)) => Err(ExecError::Start {
                target: target.clone(),
                message,
            }),
            None => Err(broke("the stream closed without an exit status".into())),
        }
    }
}

/// A download's file writer takes the frames as they come.
impl ChunkSink for crate::hooks::dbops::DumpWriter {
    async fn chunk(&mut self, data: Bytes) -> std::io::Result<()> {
        crate::hooks::dbops::DumpWriter::chunk(self, data).await
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
