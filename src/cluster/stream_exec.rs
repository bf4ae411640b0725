//! Exec whose stdout is handed over as owned chunks (`postgres|mysql download`): large stdout buffers in the
//! WebSocket client and no intermediate pipe, so a multi-GiB dump moves with as few copies and wake-ups as
//! possible. The caller bounds memory through the channel's capacity.

use super::client::Cluster;
use super::exec::{ExitStatus, exit_status};
use crate::engine::ports::{ContainerRef, ExecError, ExecResult};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncReadExt;

/// The client-side stdout buffer and the largest chunk handed over.
pub const STREAM_CHUNK: usize = 1024 * 1024;

impl Cluster {
    /// Runs `argv` in `target` without stdin and sends every stdout chunk to `chunks`; stderr is captured (its
    /// tail). Returns when the command ended and all output was sent. A closed receiver aborts the stream.
    pub async fn exec_stdout_chunks(
        &self,
        target: &ContainerRef,
        argv: Vec<String>,
        chunks: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<ExecResult, ExecError> {
        let pods: Api<Pod> = Api::namespaced(self.client().clone(), &target.namespace);
        let params = AttachParams::default()
            .container(target.container.clone())
            .stdin(false)
            .stdout(true)
            .stderr(true)
            .max_stdout_buf_size(STREAM_CHUNK)
            .max_stderr_buf_size(64 * 1024);
        let broke = |message: String| ExecError::Stream {
            target: target.clone(),
            message,
        };
        let mut process =
            pods.exec(&target.pod, argv, &params)
                .await
                .map_err(|err| ExecError::Start {
                    target: target.clone(),
                    message: err.to_string(),
                })?;
        let status = process
            .take_status()
            .ok_or_else(|| broke("no status channel".into()))?;
        let mut stdout = process
            .stdout()
            .ok_or_else(|| broke("no stdout channel".into()))?;
        let mut stderr = process
            .stderr()
            .ok_or_else(|| broke("no stderr channel".into()))?;
        let out = async {
            let mut buf = vec![0u8; STREAM_CHUNK];
            loop {
                let n = stdout.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                if chunks.send(buf[..n].to_vec()).await.is_err() {
                    return Err(std::io::Error::other("the receiver stopped"));
                }
            }
        };
        let err = async {
            let mut tail = super::exec::TailBuffer::new(64 * 1024);
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => return tail.into_bytes(),
                    Ok(n) => tail.push(&buf[..n]),
                }
            }
        };
        let (out, stderr) = tokio::join!(out, err);
        drop(chunks);
        let status = status.await;
        let _ = process.join().await;
        out.map_err(|e| broke(format!("reading stdout failed: {e}")))?;
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
