//! Running one container process to its end: spawn it through exec's [`start`] (the sandbox every exec session
//! uses), copy its output to a sink in arrival order, stop it on request with SIGTERM then SIGKILL after the
//! grace period, and reap it. Once the main process has exited, whatever it left in its process group is killed
//! (a simulator must not leak processes), and then the output is drained to its end.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::exec::{CHUNK, ExecError, ExecSpec, Mount, ProcessGroup, Reader, exit_code, start};

/// How long output may still arrive after the process group has been killed (a grandchild that left the group
/// may hold the pipe open; its output is then cut).
const DRAIN: Duration = Duration::from_secs(2);

/// A container's process, resolved: what the pod runtime needs and nothing of the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerProcess {
    /// argv; `argv[0]` is looked up on the environment's `PATH` inside the sandbox.
    pub argv: Vec<String>,
    /// Environment in order (later duplicates win).
    pub env: Vec<(String, String)>,
    /// Volumes: host directory or file → container path.
    pub mounts: Vec<Mount>,
    /// `workingDir`; `/` when None.
    pub workdir: Option<PathBuf>,
}

/// Which output stream bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

/// How a container process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit code; 128 + n for a process killed by signal n, as container runtimes report it.
    pub code: i32,
    /// Whether it ended after a stop request (SIGTERM, and SIGKILL when the grace period ran out).
    pub stopped: bool,
}

/// Run `process` until it exits. `sink` gets its output as it arrives. When `stop` turns `Some(grace)`, the
/// process group gets SIGTERM, and SIGKILL once `grace` has passed.
///
/// # Errors
/// The sandbox could not be set up or the program could not be started (nothing ran).
pub async fn run(
    process: ContainerProcess,
    mut sink: impl FnMut(Stream, &[u8]) + Send,
    mut stop: watch::Receiver<Option<Duration>>,
) -> Result<Exit, ExecError> {
    let spec = ExecSpec {
        command: process.argv,
        env: process.env,
        mounts: process.mounts,
        workdir: process.workdir,
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let running = start(&spec)?;
    let mut child = running.child;
    let group = ProcessGroup(child.id());
    let output = pump(running.stdout, running.stderr, &mut sink);
    tokio::pin!(output);
    let mut output_done = false;
    let mut stop_open = true;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let waited = loop {
        if kill_at.is_none()
            && let Some(grace) = *stop.borrow_and_update()
        {
            group.signal(libc::SIGTERM);
            kill_at = Some(tokio::time::Instant::now() + grace);
        }
        let deadline = kill_at.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            () = &mut output, if !output_done => output_done = true,
            waited = child.wait() => break waited,
            changed = stop.changed(), if stop_open && kill_at.is_none() => stop_open = changed.is_ok(),
            () = tokio::time::sleep_until(deadline), if kill_at.is_some() => {
                group.kill();
                kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
            }
        }
    };
    // Whatever the main process left behind in its group goes with it.
    group.kill();
    if !output_done {
        let _ = tokio::time::timeout(DRAIN, &mut output).await;
    }
    drop(running.sandbox);
    let code = match waited {
        Ok(status) => exit_code(status),
        Err(error) => {
            tracing::warn!(%error, "waiting for a container process failed");
            1
        }
    };
    Ok(Exit {
        code,
        stopped: kill_at.is_some(),
    })
}

/// Copy both streams to `sink` until both reach their end.
async fn pump(
    mut stdout: Option<Reader>,
    mut stderr: Option<Reader>,
    sink: &mut (impl FnMut(Stream, &[u8]) + Send),
) {
    let mut out_buf = vec![0u8; CHUNK];
    let mut err_buf = vec![0u8; CHUNK];
    while stdout.is_some() || stderr.is_some() {
        let (stream, read) = tokio::select! {
            read = read_some(stdout.as_mut(), &mut out_buf), if stdout.is_some() => (Stream::Stdout, read),
            read = read_some(stderr.as_mut(), &mut err_buf), if stderr.is_some() => (Stream::Stderr, read),
        };
        let (reader, buf) = match stream {
            Stream::Stdout => (&mut stdout, &out_buf),
            Stream::Stderr => (&mut stderr, &err_buf),
        };
        match read {
            Ok(0) | Err(_) => *reader = None,
            Ok(n) => sink(stream, &buf[..n]),
        }
    }
}

async fn read_some(reader: Option<&mut Reader>, buf: &mut [u8]) -> std::io::Result<usize> {
    match reader {
        Some(reader) => reader.read(buf).await,
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> ContainerProcess {
        ContainerProcess {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            ..ContainerProcess::default()
        }
    }

    #[tokio::test]
    async fn output_reaches_the_sink_and_the_exit_code_comes_back() {
        let (_tx, rx) = watch::channel(None);
        let mut seen = Vec::new();
        let exit = run(
            sh("echo out; echo err >&2; exit 3"),
            |stream, bytes| seen.push((stream, bytes.to_vec())),
            rx,
        )
        .await
        .expect("ran");
        assert_eq!(
            exit,
            Exit {
                code: 3,
                stopped: false
            }
        );
        assert!(
            seen.contains(&(Stream::Stdout, b"out\n".to_vec())),
            "{seen:?}"
        );
        assert!(
            seen.contains(&(Stream::Stderr, b"err\n".to_vec())),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn a_stop_sends_sigterm_and_sigkill_after_the_grace_period() {
        let (tx, rx) = watch::channel(None);
        let trapping = tokio::spawn(run(
            sh("trap 'echo term' TERM; while :; do sleep 0.1; done"),
            |_, _| {},
            rx,
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let begun = std::time::Instant::now();
        tx.send_replace(Some(Duration::from_millis(500)));
        let exit = trapping.await.expect("joined").expect("ran");
        assert_eq!(
            exit,
            Exit {
                code: 137,
                stopped: true
            }
        );
        assert!(begun.elapsed() >= Duration::from_millis(500));

        let (tx, rx) = watch::channel(None);
        let plain = tokio::spawn(run(sh("sleep 30"), |_, _| {}, rx));
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send_replace(Some(Duration::from_secs(30)));
        let exit = plain.await.expect("joined").expect("ran");
        assert_eq!(
            exit,
            Exit {
                code: 143,
                stopped: true
            }
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_before_anything_runs() {
        let (_tx, rx) = watch::channel(None);
        let error = run(
            ContainerProcess {
                argv: vec!["kube-sim-no-such-program".into()],
                ..ContainerProcess::default()
            },
            |_, _| {},
            rx,
        )
        .await
        .expect_err("not found");
        assert!(matches!(error, ExecError::Spawn { .. }), "{error}");
    }
}
