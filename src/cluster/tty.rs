//! Interactive database shells over a TTY exec (`postgres|mysql shell`): the local terminal in raw mode wired to
//! the remote pty, window sizes forwarded (initially and on every SIGWINCH), the exit code from the status
//! channel.
//!
//! The connection script (it may hold a literal password) must not travel in argv, and a pty echoes what it is
//! sent. So argv is a fixed bootstrap that turns echo off, prints a ready token, reads script lines until an end
//! token, turns echo back on and `eval`s them; the script is only sent after the ready token arrived.

use super::exec::{ExitStatus, KubeExec, exit_status};
use crate::vocab::exec::ExecError;
use crate::vocab::workload::ContainerRef;
use kube::api::TerminalSize;
use std::io::IsTerminal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound on what may precede the ready token (motd, shell noise) before we give up.
const READY_LIMIT: usize = 64 * 1024;

/// The fixed argv that receives the script (see the module docs).
fn bootstrap(token: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "stty -echo 2>/dev/null; echo BNS-READY-{token}; bns_s=; \
             while IFS= read -r bns_l; do [ \"$bns_l\" = BNS-END-{token} ] && break; bns_s=\"$bns_s$bns_l\n\"; done; \
             stty echo 2>/dev/null; eval \"$bns_s\""
        ),
    ]
}

/// Puts the local terminal in raw mode and restores it on drop.
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    fn enable() -> Option<RawMode> {
        // SAFETY: tcgetattr/tcsetattr only read and write the termios struct we own, on fd 0.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(0, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes saved in `enable` on fd 0.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

/// The local terminal's size (stdout, else stdin), if either is a terminal.
fn local_size() -> Option<TerminalSize> {
    for fd in [1, 0] {
        // SAFETY: TIOCGWINSZ writes a winsize struct we own.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
            return Some(TerminalSize {
                width: ws.ws_col,
                height: ws.ws_row,
            });
        }
    }
    None
}

/// Runs `script` (which ends by `exec`ing the client) interactively in `target`; returns its exit code.
/// Works without a local terminal too (stdin piped), which is how it is tested.
pub async fn shell(
    exec: &KubeExec,
    target: &ContainerRef,
    script: String,
) -> Result<i32, ExecError> {
    let token = crate::hooks::script::new_token();
    let mut process = exec.exec_interactive(target, bootstrap(&token)).await?;
    let broke = |message: String| ExecError::Stream {
        target: target.clone(),
        message,
    };
    let status = process
        .take_status()
        .ok_or_else(|| broke("no status channel".into()))?;
    let mut remote_in = process
        .stdin()
        .ok_or_else(|| broke("no stdin channel".into()))?;
    let mut remote_out = process
        .stdout()
        .ok_or_else(|| broke("no stdout channel".into()))?;
    let mut resize = process.terminal_size();
    if let Some(tx) = resize.as_mut() {
        // Without a local terminal, a conventional 80x24 beats the 0x0 a fresh pty reports.
        let size = local_size().unwrap_or(TerminalSize {
            width: 80,
            height: 24,
        });
        let _ = tx.try_send(size);
    }

    // Wait for the bootstrap to have turned echo off before sending the script.
    let ready = format!("BNS-READY-{token}");
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 8192];
    let leftover = loop {
        let n = remote_out
            .read(&mut buf)
            .await
            .map_err(|e| broke(e.to_string()))?;
        if n == 0 {
            return Err(broke("the shell closed before it was ready".into()));
        }
        seen.extend_from_slice(&buf[..n]);
        if let Some(pos) = find(&seen, ready.as_bytes()) {
            let mut rest = seen.split_off(pos + ready.len());
            // Drop the token line's own line ending.
            while rest.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
                rest.remove(0);
            }
            break rest;
        }
        if seen.len() > READY_LIMIT {
            return Err(broke(
                "the shell never became ready (no ready token)".into(),
            ));
        }
    };
    let mut payload = script.into_bytes();
    if !payload.ends_with(b"\n") {
        payload.push(b'\n');
    }
    payload.extend_from_slice(format!("BNS-END-{token}\n").as_bytes());
    remote_in
        .write_all(&payload)
        .await
        .map_err(|e| broke(e.to_string()))?;

    let interactive = std::io::stdin().is_terminal();
    let _raw = if interactive { RawMode::enable() } else { None };

    // Local stdin on a plain thread: a blocked terminal read must not keep the runtime alive at exit.
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if in_tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut stdout = tokio::io::stdout();
    let _ = stdout.write_all(&leftover).await;
    let _ = stdout.flush().await;
    let output = async {
        let mut buf = vec![0u8; 8192];
        loop {
            match remote_out.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stdout.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let _ = stdout.flush().await;
                }
            }
        }
    };
    let input = async {
        #[cfg(unix)]
        let mut winch =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
        let mut open = true;
        loop {
            tokio::select! {
                chunk = in_rx.recv(), if open => match chunk {
                    Some(bytes) => {
                        if remote_in.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    None => {
                        // Local EOF (piped input ran out): end-of-file for the remote line discipline.
                        let _ = remote_in.write_all(&[0x04]).await;
                        open = false;
                    }
                },
                Some(()) = async {
                    match winch.as_mut() {
                        Some(w) => w.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let (Some(tx), Some(size)) = (resize.as_mut(), local_size()) {
                        let _ = tx.try_send(size);
                    }
                }
            }
        }
    };
    // Output runs until the remote side closes; only then is the status read, so no output is lost. The input
    // pump never finishes on its own (it parks once the remote stdin is gone).
    let finished = async {
        output.await;
        status.await
    };
    let input = async {
        input.await;
        std::future::pending::<()>().await
    };
    let status = tokio::select! {
        status = finished => status,
        () = input => None,
    };
    match status.as_ref().map(exit_status) {
        Some(ExitStatus::Exited(code)) => Ok(code),
        Some(ExitStatus::Failed(message)) => Err(ExecError::Start {
            target: target.clone(),
            message,
        }),
        None => Err(broke("the stream closed without an exit status".into())),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
