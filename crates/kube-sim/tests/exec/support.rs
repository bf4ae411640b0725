//! Test harness: an in-test axum server exposing `kube_sim::exec` on `/exec`, and a minimal
//! remote-command WebSocket client speaking the same channel protocol as kubectl/kube-rs.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use kube_sim::exec::{self, ExecRequest, Mount, Outcome};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Clone)]
struct Container {
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    workdir: Option<std::path::PathBuf>,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

/// A running test server for one simulated container.
pub struct Server {
    pub addr: SocketAddr,
    pub outcomes: mpsc::UnboundedReceiver<Outcome>,
}

impl Server {
    pub async fn start(env: &[(&str, &str)], mounts: Vec<Mount>, workdir: Option<&str>) -> Server {
        let (tx, rx) = mpsc::unbounded_channel();
        let container = Container {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            mounts,
            workdir: workdir.map(Into::into),
            outcomes: tx,
        };
        let app = Router::new()
            .route("/exec", get(handle))
            .route("/exec-helper", get(handle_with_helper))
            .with_state(container);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("test server runs");
        });
        Server { addr, outcomes: rx }
    }

    pub async fn next_outcome(&mut self) -> Outcome {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.outcomes.recv())
            .await
            .expect("session ends within 30 s")
            .expect("server alive")
    }
}

/// Route using the public building blocks directly, reporting each session's outcome.
async fn handle(
    State(container): State<Container>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let request = match ExecRequest::from_query(query.as_deref().unwrap_or("")) {
        Ok(request) => request,
        Err(error) => return exec::status_response(&error),
    };
    let Some(protocol) = exec::negotiate(&headers) else {
        return exec::upgrade(ws, &headers, request.into_spec(vec![], vec![], None));
    };
    let spec = request.into_spec(container.env, container.mounts, container.workdir);
    let mut ws = ws;
    ws.set_selected_protocol(axum::http::HeaderValue::from_static(protocol.name()));
    ws.on_upgrade(move |socket| async move {
        let outcome = exec::serve(socket, protocol, spec).await;
        let _ = container.outcomes.send(outcome);
    })
}

/// Route using the one-call `exec::upgrade` helper, as the simulator's pod route does.
async fn handle_with_helper(
    State(container): State<Container>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    match ExecRequest::from_query(query.as_deref().unwrap_or("")) {
        Ok(request) => exec::upgrade(
            ws,
            &headers,
            request.into_spec(container.env, container.mounts, container.workdir),
        ),
        Err(error) => exec::status_response(&error),
    }
}

/// Everything a finished session sent.
#[derive(Debug, Default)]
pub struct Collected {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Option<serde_json::Value>,
    pub closed_normally: bool,
}

impl Collected {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn exit_code(&self) -> Option<i64> {
        let status = self.status.as_ref()?;
        if status["status"] == "Success" {
            return Some(0);
        }
        status["details"]["causes"]
            .as_array()?
            .iter()
            .find(|c| c["reason"] == "ExitCode")?["message"]
            .as_str()?
            .parse()
            .ok()
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: Option<String>,
}

/// Query string for `command` with the given stream flags.
pub fn query(command: &[&str], flags: &str) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for part in command {
        serializer.append_pair("command", part);
    }
    let mut query = serializer.finish();
    if !flags.is_empty() {
        query.push('&');
        query.push_str(flags);
    }
    query
}

impl Client {
    /// Connect offering `protocols` (comma-separated, like kube-rs).
    pub async fn connect(
        addr: SocketAddr,
        path: &str,
        query: &str,
        protocols: &str,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let mut request = format!("ws://{addr}{path}?{query}")
            .into_client_request()
            .expect("valid ws url");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            protocols.parse().expect("ascii header"),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request).await?;
        let protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Client { ws, protocol })
    }

    pub async fn send_frame(&mut self, channel: u8, payload: &[u8]) {
        let mut frame = vec![channel];
        frame.extend_from_slice(payload);
        self.ws
            .send(Message::binary(frame))
            .await
            .expect("send frame to server");
    }

    /// v5 stdin half-close.
    pub async fn close_stdin(&mut self) {
        self.ws
            .send(Message::binary(vec![exec::CLOSE, exec::STDIN]))
            .await
            .expect("send close signal");
    }

    /// Read until the server closes, handing each data frame to `on_data` (channel, payload).
    pub async fn drain(&mut self, on_data: impl FnMut(u8, &[u8])) -> Collected {
        drain_stream(&mut self.ws, on_data).await
    }

    /// Read everything until the server closes, keeping stdout and stderr.
    pub async fn collect(&mut self) -> Collected {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut collected = self
            .drain(|channel, payload| match channel {
                exec::STDOUT => stdout.extend_from_slice(payload),
                exec::STDERR => stderr.extend_from_slice(payload),
                _ => {}
            })
            .await;
        collected.stdout = stdout;
        collected.stderr = stderr;
        collected
    }
}

/// Peak resident memory of this test process (VmHWM) in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Whether `pid` is gone (or a zombie nobody reaped, which no longer runs).
pub fn process_is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Read `stream` until the server closes, handing each data frame to `on_data`.
pub async fn drain_stream<S>(stream: &mut S, mut on_data: impl FnMut(u8, &[u8])) -> Collected
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut collected = Collected::default();
    while let Some(message) = stream.next().await {
        match message {
            Ok(Message::Binary(data)) => match data.split_first() {
                Some((&exec::ERROR, json)) => {
                    collected.status =
                        Some(serde_json::from_slice(json).expect("status channel holds JSON"));
                }
                Some((&channel, payload)) => on_data(channel, payload),
                None => {}
            },
            Ok(Message::Close(frame)) => {
                collected.closed_normally = frame.is_some_and(|f| u16::from(f.code) == 1000);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    collected
}
