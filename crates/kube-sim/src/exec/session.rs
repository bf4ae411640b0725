//! One exec session: spawn the process in its sandbox and pump bytes between it and the
//! WebSocket until it exits or the client goes away.
//!
//! Memory is bounded by construction: each output stream is read in fixed `CHUNK`-sized pieces and
//! the next read only starts after the WebSocket send of the previous piece has completed (the send
//! waits for the socket to accept the bytes), so a slow client slows the process down instead of
//! filling memory. Stdin is written to the child before the next client message is read, which
//! pushes back on the client through TCP. If the client disconnects, the child's whole process
//! group is killed; when the child exits normally, any background processes it left in its group
//! are killed too (a container would keep them, but a simulator must not leak processes).
//!
//! A disconnect is noticed when the socket is read or written. While stdin is stalled (the child
//! does not read a full pipe) nothing reads the socket, so the session pings the client every
//! `HEARTBEAT`; a failed write ends it. Known limit: a process that leaves the group with `setsid` escapes the kill, as it would escape a
//! `kubectl exec` timeout on a real node until the container stops.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::{BufMut as _, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::error::ExecError;
use super::protocol::{self, ClientFrame, Protocol};
use super::pty::{self, Pty};
use super::sandbox::Sandbox;
use super::spec::ExecSpec;
use super::status;

/// Bytes per output frame (plus one channel byte).
pub const CHUNK: usize = 256 * 1024;

/// How long to wait for the client to acknowledge our close before dropping the connection; it
/// keeps the final frames from being lost to a TCP reset while the client still sends.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Server ping period, as client-go's; two failed writes reveal a client that vanished silently.
const HEARTBEAT: Duration = Duration::from_secs(5);

const SANE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The process ran and exited with this code (128 + n for signal n); the client got a Status.
    Exited(i32),
    /// The process could not be started; the client got an InternalError Status with this message.
    StartFailed(String),
    /// The client went away first; the process group was killed.
    ClientGone,
}

type Sink = SplitSink<WebSocket, Message>;
type Source = SplitStream<WebSocket>;
/// A readable end of a process's output.
pub type Reader = Box<dyn AsyncRead + Unpin + Send>;
/// A writable end of a process's input.
pub type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// Serve one upgraded exec WebSocket: run `spec`, stream, send the final Status, close.
pub async fn serve(socket: WebSocket, protocol: Protocol, spec: ExecSpec) -> Outcome {
    serve_until(socket, protocol, spec, std::future::pending()).await
}

/// As [`serve`], but once `stop` completes the process group is killed with SIGKILL, as the processes of an
/// exec die when their container stops: the client then gets exit code 137, as `kubectl exec` reports it.
pub async fn serve_until(
    socket: WebSocket,
    protocol: Protocol,
    spec: ExecSpec,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Outcome {
    let (mut sink, mut source) = socket.split();
    let running = match start(&spec) {
        Ok(running) => running,
        Err(error) => {
            let message = error_chain(&error);
            tracing::info!(command = ?spec.command, %message, "exec could not start");
            send_status(&mut sink, &status::internal_error(&message)).await;
            close(&mut sink, &mut source).await;
            return Outcome::StartFailed(message);
        }
    };
    let Running {
        mut child,
        sandbox,
        stdin,
        stdout,
        stderr,
        pty_master,
    } = running;
    let group = ProcessGroup(child.id());
    let stopper = tokio::spawn(async move {
        stop.await;
        tracing::info!("exec's container stopped: process group killed");
        group.kill();
    });

    let input = pump_input(&mut source, stdin, protocol, pty_master);
    tokio::pin!(input);
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let drained = {
        let output = pump_output(&mut sink, stdout, stderr, &mut heartbeat);
        tokio::pin!(output);
        tokio::select! {
            result = &mut output => result.is_ok(),
            () = &mut input => false,
        }
    };
    let waited = if drained {
        loop {
            tokio::select! {
                waited = child.wait() => break Some(waited),
                () = &mut input => break None,
                _ = heartbeat.tick() => {
                    if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                        break None;
                    }
                }
            }
        }
    } else {
        None
    };
    // Whatever happened, nothing of this session may outlive it.
    stopper.abort();
    group.kill();
    let Some(waited) = waited else {
        let _ = child.wait().await;
        drop(sandbox);
        tracing::info!(command = ?spec.command, "exec client went away; process group killed");
        return Outcome::ClientGone;
    };
    drop(sandbox);
    let outcome = match waited {
        Ok(exit) => {
            let code = status::exit_code(exit);
            send_status(&mut sink, &status::exit_status(&spec.command, code)).await;
            Outcome::Exited(code)
        }
        Err(error) => {
            let message = format!("waiting for the command failed: {error}");
            send_status(&mut sink, &status::internal_error(&message)).await;
            Outcome::StartFailed(message)
        }
    };
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
    // Keep reading (and discarding) until the client acknowledges the close.
    let _ = tokio::time::timeout(CLOSE_GRACE, &mut input).await;
    outcome
}

/// A started process and the ends of its streams that were asked for. Keep `sandbox` until the process has
/// been reaped: dropping it removes the host staging directory.
pub struct Running {
    /// The process; its pid is its process-group id.
    pub child: Child,
    /// The mount-namespace recipe it runs in.
    pub sandbox: Sandbox,
    /// Its stdin (pipe or pty master), when asked for.
    pub stdin: Option<Writer>,
    /// Its stdout (or the terminal's output), when asked for.
    pub stdout: Option<Reader>,
    /// Its stderr, when asked for and not a terminal.
    pub stderr: Option<Reader>,
    pty_master: Option<OwnedFd>,
}

/// Spawn the process of `spec` in its sandbox, with the container's environment (`PATH` and `HOME` added when
/// absent, as container runtimes do). Exec sessions and the pod runtime start processes only through here.
///
/// # Errors
/// The sandbox could not be prepared or entered, or the program could not be started.
pub fn start(spec: &ExecSpec) -> Result<Running, ExecError> {
    let program = spec.command.first().cloned().unwrap_or_default();
    let sandbox = Sandbox::prepare(&spec.mounts, spec.workdir.as_deref())?;
    let mut command = Command::new(&program);
    command
        .args(spec.command.iter().skip(1))
        .env_clear()
        .kill_on_drop(true);
    if !spec.env.iter().any(|(name, _)| name == "PATH") {
        command.env("PATH", SANE_PATH);
    }
    if !spec.env.iter().any(|(name, _)| name == "HOME") {
        command.env("HOME", "/root");
    }
    command.envs(spec.env.iter().map(|(k, v)| (k, v)));

    if spec.tty {
        let pty = Pty::open().map_err(ExecError::Pty)?;
        let slave = |pty: &Pty| {
            pty.slave
                .try_clone()
                .map(Stdio::from)
                .map_err(ExecError::Pty)
        };
        command
            .stdin(slave(&pty)?)
            .stdout(slave(&pty)?)
            .stderr(slave(&pty)?);
        let child = sandbox.spawn(&mut command, &program, true)?;
        // The parent's slave copies must go, or reading the master never sees the end.
        drop(command);
        let Pty { master, slave } = pty;
        drop(slave);
        let file = |fd: &OwnedFd| {
            fd.try_clone()
                .map(|fd| tokio::fs::File::from_std(std::fs::File::from(fd)))
                .map_err(ExecError::Pty)
        };
        let reader: Reader = Box::new(PtyReader(file(&master)?));
        let writer: Option<Writer> = if spec.stdin {
            Some(Box::new(file(&master)?))
        } else {
            None
        };
        return Ok(Running {
            child,
            sandbox,
            stdin: writer,
            stdout: spec.stdout.then_some(reader),
            stderr: None,
            pty_master: Some(master),
        });
    }

    let piped = |wanted: bool| {
        if wanted {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    command
        .stdin(piped(spec.stdin))
        .stdout(piped(spec.stdout))
        .stderr(piped(spec.stderr));
    let mut child = sandbox.spawn(&mut command, &program, false)?;
    if let Some(out) = &child.stdout {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETPIPE_SZ on a pipe we own; failure leaves the default size.
        unsafe { libc::fcntl(out.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    }
    let stdin = child.stdin.take().map(|w| Box::new(w) as Writer);
    let stdout = child.stdout.take().map(|r| Box::new(r) as Reader);
    let stderr = child.stderr.take().map(|r| Box::new(r) as Reader);
    Ok(Running {
        child,
        sandbox,
        stdin,
        stdout,
        stderr,
        pty_master: None,
    })
}

/// Copy stdout and stderr to their channels until both reach EOF. `Err` when the client is gone.
/// Pings go out every `heartbeat` tick: writing is what reveals a vanished client while the process
/// is silent and stdin is stalled.
async fn pump_output(
    sink: &mut Sink,
    mut stdout: Option<Reader>,
    mut stderr: Option<Reader>,
    heartbeat: &mut tokio::time::Interval,
) -> Result<(), axum::Error> {
    let mut out_buf = BytesMut::new();
    let mut err_buf = BytesMut::new();
    while stdout.is_some() || stderr.is_some() {
        let (channel, read) = tokio::select! {
            read = read_frame(stdout.as_mut(), &mut out_buf, protocol::STDOUT), if stdout.is_some() => (protocol::STDOUT, read),
            read = read_frame(stderr.as_mut(), &mut err_buf, protocol::STDERR), if stderr.is_some() => (protocol::STDERR, read),
            _ = heartbeat.tick() => {
                sink.send(Message::Ping(Bytes::new())).await?;
                continue;
            }
        };
        let (reader, buf) = if channel == protocol::STDOUT {
            (&mut stdout, &mut out_buf)
        } else {
            (&mut stderr, &mut err_buf)
        };
        match read {
            Ok(0) | Err(_) => *reader = None,
            Ok(_) => sink.send(Message::Binary(buf.split().freeze())).await?,
        }
    }
    Ok(())
}

/// Reads up to [`CHUNK`] bytes of `reader` into `buf`, after the channel byte: a whole frame, with no copy. The
/// frame sent before has been dropped by then, so `reserve` takes its memory back instead of allocating.
async fn read_frame(
    reader: Option<&mut Reader>,
    buf: &mut BytesMut,
    channel: u8,
) -> std::io::Result<usize> {
    let Some(reader) = reader else {
        return Ok(0);
    };
    buf.clear();
    buf.reserve(CHUNK + 1);
    buf.put_u8(channel);
    let mut limited = reader.take(CHUNK as u64);
    limited.read_buf(buf).await
}

/// Feed client messages to the child until the client closes the connection or it breaks.
async fn pump_input(
    source: &mut Source,
    mut stdin: Option<Writer>,
    protocol: Protocol,
    pty_master: Option<OwnedFd>,
) {
    while let Some(message) = source.next().await {
        let data = match message {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Close(_)) | Err(_) => return,
            // Text (base64 protocols), ping and pong carry nothing for us.
            Ok(_) => continue,
        };
        match protocol::parse_client_frame(protocol, &data) {
            // v4 has no close signal; an empty stdin frame is kube-sim's documented EOF marker.
            ClientFrame::Stdin([]) if protocol == Protocol::V4 => close_stdin(&mut stdin).await,
            ClientFrame::Stdin(bytes) => {
                if let Some(writer) = stdin.as_mut() {
                    let written = async {
                        writer.write_all(bytes).await?;
                        writer.flush().await
                    };
                    // A child that closed its stdin gets no more input (EPIPE), like a pipe would.
                    if written.await.is_err() {
                        stdin = None;
                    }
                }
            }
            ClientFrame::Close(protocol::STDIN) => close_stdin(&mut stdin).await,
            ClientFrame::Resize(json) => {
                if let (Some(master), Ok(size)) = (
                    pty_master.as_ref(),
                    serde_json::from_slice::<TerminalSize>(json),
                ) && let Err(error) = pty::resize(master, size.width, size.height)
                {
                    tracing::debug!(%error, "terminal resize failed");
                }
            }
            ClientFrame::Close(_) | ClientFrame::Ignored => {}
        }
    }
}

async fn close_stdin(stdin: &mut Option<Writer>) {
    if let Some(mut writer) = stdin.take() {
        let _ = writer.shutdown().await;
    }
}

/// The resize channel's payload, as kubectl and kube-rs send it.
#[derive(Debug, Deserialize)]
struct TerminalSize {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

async fn send_status(sink: &mut Sink, status: &serde_json::Value) {
    let json = serde_json::to_vec(status).unwrap_or_default();
    let frame = protocol::server_frame(protocol::ERROR, &json);
    let _ = sink.send(Message::Binary(Bytes::from(frame))).await;
}

async fn close(sink: &mut Sink, source: &mut Source) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = source.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

fn error_chain(error: &ExecError) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The child's process group (its pid is the group id, see `Sandbox::spawn`).
#[derive(Debug, Clone, Copy)]
pub struct ProcessGroup(pub Option<u32>);

impl ProcessGroup {
    /// SIGKILL to every process of the group.
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    /// Send `signal` to every process of the group.
    pub fn signal(&self, signal: i32) {
        if let Some(pgid) = self.0.and_then(|pid| i32::try_from(pid).ok())
            && pgid > 1
        {
            // SAFETY: plain kill(2) on a process group we created.
            unsafe { libc::kill(-pgid, signal) };
        }
    }
}

/// Reading a pty master fails with EIO once every slave descriptor is closed; that is the
/// terminal's end of file.
struct PtyReader(tokio::fs::File);

impl AsyncRead for PtyReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(error)) if error.raw_os_error() == Some(libc::EIO) => {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}
