//! Local stand-ins for the engine's ports, so hook scripts run for real (against real databases) without a
//! cluster: [`LocalExec`] runs argv as a local process with a given environment (the "container env"), and
//! [`LocalResolver`] resolves a fixed set of workloads.
//!
//! Like a real pod exec, a timeout does not kill the process: the stream is abandoned and the process lives on,
//! so tests prove that the hook runner's kill exec does the killing.

use backup_ns::vocab::exec::{
    CAPTURE_LIMIT, ContainerExec, ExecError, ExecRequest, ExecResult, PodResolver, ResolveError,
    Stdin, StdoutSink,
};
use backup_ns::vocab::workload::{ContainerRef, WorkloadRef};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One recorded exec: where, with which argv, and the stdin script (for assertions on what was sent).
#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub target: ContainerRef,
    pub argv: Vec<String>,
    pub stdin: Vec<u8>,
}

/// Runs exec requests as local processes. The environment is exactly `env` plus a `PATH` (the given one, or
/// the test process's).
#[derive(Default)]
pub struct LocalExec {
    env: BTreeMap<String, String>,
    cwd: Option<std::path::PathBuf>,
    records: Mutex<Vec<ExecRecord>>,
}

impl LocalExec {
    pub fn new() -> LocalExec {
        let mut env = BTreeMap::new();
        env.insert(
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        );
        LocalExec {
            env,
            cwd: None,
            records: Mutex::new(Vec::new()),
        }
    }

    /// Sets a variable of the "container" environment.
    pub fn env(mut self, key: &str, value: &str) -> LocalExec {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Sets several variables, e.g. `Postgres::container_env`.
    pub fn envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> LocalExec {
        self.env.extend(vars);
        self
    }

    /// Puts `dir` first on PATH (for fake tools).
    pub fn path_prepend(mut self, dir: &std::path::Path) -> LocalExec {
        let path = self.env.get("PATH").cloned().unwrap_or_default();
        self.env
            .insert("PATH".into(), format!("{}:{path}", dir.display()));
        self
    }

    /// The working directory of every command (default: the test's own).
    pub fn cwd(mut self, dir: &std::path::Path) -> LocalExec {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Every exec so far.
    pub fn records(&self) -> Vec<ExecRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn keep_tail(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() > CAPTURE_LIMIT {
        bytes.drain(..bytes.len() - CAPTURE_LIMIT);
    }
    bytes
}

impl ContainerExec for LocalExec {
    fn exec<'a>(
        &'a self,
        request: ExecRequest,
        stdout: StdoutSink<'a>,
    ) -> BoxFuture<'a, Result<ExecResult, ExecError>> {
        Box::pin(async move {
            let ExecRequest {
                target,
                argv,
                stdin,
                timeout,
            } = request;
            let start_error = |message: String| ExecError::Start {
                target: target.clone(),
                message,
            };
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| start_error("empty argv".into()))?;
            let recorded_stdin = match &stdin {
                Stdin::Bytes(b) => b.clone(),
                _ => Vec::new(),
            };
            if let Ok(mut records) = self.records.lock() {
                records.push(ExecRecord {
                    target: target.clone(),
                    argv: argv.clone(),
                    stdin: recorded_stdin,
                });
            }
            let mut command = tokio::process::Command::new(program);
            if let Some(dir) = &self.cwd {
                command.current_dir(dir);
            }
            let mut child = command
                .args(args)
                .env_clear()
                .envs(&self.env)
                .stdin(match stdin {
                    Stdin::None => Stdio::null(),
                    _ => Stdio::piped(),
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .map_err(|e| start_error(format!("{program}: {e}")))?;

            let mut child_stdin = child.stdin.take();
            let feed = async move {
                if let Some(pipe) = child_stdin.as_mut() {
                    match stdin {
                        Stdin::Bytes(bytes) => {
                            let _ = pipe.write_all(&bytes).await;
                        }
                        Stdin::Reader(mut reader) => {
                            let _ = tokio::io::copy(&mut reader, pipe).await;
                        }
                        Stdin::None => {}
                    }
                }
                drop(child_stdin);
            };
            let mut out_pipe = child.stdout.take().expect("piped stdout");
            let mut err_pipe = child.stderr.take().expect("piped stderr");
            let read_out = async move {
                match stdout {
                    StdoutSink::Capture => {
                        let mut buf = Vec::new();
                        out_pipe.read_to_end(&mut buf).await.map(|_| buf)
                    }
                    StdoutSink::Writer(writer) => tokio::io::copy(&mut out_pipe, writer)
                        .await
                        .map(|_| Vec::new()),
                }
            };
            let read_err = async move {
                let mut buf = Vec::new();
                err_pipe.read_to_end(&mut buf).await.map(|_| buf)
            };
            let all = async {
                let ((), out, err, status) = tokio::join!(feed, read_out, read_err, child.wait());
                (out, err, status)
            };
            let (out, err, status) = match timeout {
                Some(limit) => match tokio::time::timeout(limit, all).await {
                    Ok(done) => done,
                    Err(_) => {
                        return Err(ExecError::Timeout {
                            target: target.clone(),
                            after: limit,
                        });
                    }
                },
                None => all.await,
            };
            let stream_error = |e: std::io::Error| ExecError::Stream {
                target: target.clone(),
                message: e.to_string(),
            };
            let status = status.map_err(stream_error)?;
            Ok(ExecResult {
                // A signal death shows as 128+N, as a shell would report it.
                exit_code: status.code().unwrap_or_else(|| {
                    use std::os::unix::process::ExitStatusExt;
                    128 + status.signal().unwrap_or(0)
                }),
                stdout: keep_tail(out.map_err(stream_error)?),
                stderr: keep_tail(err.map_err(stream_error)?),
            })
        })
    }
}

/// Resolves `workload` + `container` pairs it was given to a pod named after the workload; anything else is
/// [`ResolveError::NotFound`].
#[derive(Default)]
pub struct LocalResolver {
    known: Vec<(WorkloadRef, String)>,
}

impl LocalResolver {
    pub fn with(mut self, workload: &str, container: &str) -> LocalResolver {
        self.known.push((
            workload.parse().expect("valid workload ref"),
            container.to_string(),
        ));
        self
    }
}

impl PodResolver for LocalResolver {
    fn resolve<'a>(
        &'a self,
        namespace: &'a str,
        workload: &'a WorkloadRef,
        container: &'a str,
    ) -> BoxFuture<'a, Result<ContainerRef, ResolveError>> {
        Box::pin(async move {
            match self.known.iter().find(|(w, _)| w == workload) {
                None => Err(ResolveError::NotFound {
                    namespace: namespace.to_string(),
                    workload: workload.clone(),
                    near: None,
                }),
                Some((_, c)) if c != container => Err(ResolveError::NoSuchContainer {
                    namespace: namespace.to_string(),
                    workload: workload.clone(),
                    pod: format!("{}-0", workload.name),
                    container: container.to_string(),
                    available: c.clone(),
                    near: None,
                }),
                Some(_) => Ok(ContainerRef {
                    namespace: namespace.to_string(),
                    pod: format!("{}-0", workload.name),
                    container: container.to_string(),
                }),
            }
        })
    }
}
