//! Pod exec over the wire (kube-rs WebSocket ↔ kube-sim's remote-command server running real processes):
//! exit codes, stdout/stderr, stdin as bytes and as a streamed reader, stdout into a writer, the capture limit,
//! timeouts and start failures; and the streamed variant that hands stdout frames to a sink (downloads).

use crate::support::{eventually, start};
use backup_ns::cluster::stream_exec::ChunkSink;
use backup_ns::vocab::exec::{
    CAPTURE_LIMIT, ContainerExec, ExecError, ExecRequest, PodResolver, Stdin, StdoutSink,
};
use backup_ns::vocab::workload::ContainerRef;
use kube_sim::Fault;
use std::time::Duration;

const POD: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: shop
spec:
  containers:
  - name: db
    image: postgres
"#;

async fn target(env: &crate::support::Env) -> ContainerRef {
    eventually("the pod is running", || {
        env.sim
            .get("v1", "pods", Some("shop"), "db-0")
            .is_some_and(|p| p["status"]["phase"] == "Running")
    })
    .await;
    env.cluster
        .pod_resolver()
        .resolve("shop", &"pod/db-0".parse().unwrap(), "db")
        .await
        .unwrap()
}

fn request(target: &ContainerRef, argv: &[&str], stdin: Stdin) -> ExecRequest {
    ExecRequest {
        target: target.clone(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        stdin,
        timeout: Some(Duration::from_secs(30)),
    }
}

#[tokio::test]
async fn exit_codes_stdout_and_stderr_come_back_separately() {
    let env = start(POD).await;
    let t = target(&env).await;
    let exec = env.cluster.container_exec();
    let result = exec
        .exec(
            request(
                &t,
                &["sh", "-c", "echo out; echo err >&2; exit 3"],
                Stdin::None,
            ),
            StdoutSink::Capture,
        )
        .await
        .unwrap();
    assert_eq!(result.exit_code, 3);
    assert_eq!(result.stdout, b"out\n");
    assert_eq!(result.stderr, b"err\n");
    assert!(!result.success());

    let ok = exec
        .exec(request(&t, &["true"], Stdin::None), StdoutSink::Capture)
        .await
        .unwrap();
    assert!(ok.success());
}

#[tokio::test]
async fn scripts_travel_over_stdin_and_run_to_completion() {
    let env = start(POD).await;
    let t = target(&env).await;
    let script = b"x='a b'; echo \"hello $x $((1+2))\"\nexit 0\n".to_vec();
    let result = env
        .cluster
        .container_exec()
        .exec(
            request(&t, &["sh", "-s"], Stdin::Bytes(script)),
            StdoutSink::Capture,
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&result.stdout), "hello a b 3\n");
    assert_eq!(result.exit_code, 0);
}

#[tokio::test]
async fn a_large_stdin_reader_is_streamed_through() {
    let env = start(POD).await;
    let t = target(&env).await;
    let size = 8 * 1024 * 1024;
    let data = vec![b'x'; size];
    let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = Box::new(std::io::Cursor::new(data));
    let result = env
        .cluster
        .container_exec()
        .exec(
            request(&t, &["wc", "-c"], Stdin::Reader(reader)),
            StdoutSink::Capture,
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&result.stdout).trim(),
        size.to_string()
    );
}

#[tokio::test]
async fn stdout_streams_into_a_writer_and_is_not_captured() {
    let env = start(POD).await;
    let t = target(&env).await;
    let mut sink: Vec<u8> = Vec::new();
    let size = 3 * 1024 * 1024;
    let result = env
        .cluster
        .container_exec()
        .exec(
            request(
                &t,
                &["sh", "-c", &format!("head -c {size} /dev/zero")],
                Stdin::None,
            ),
            StdoutSink::Writer(&mut sink),
        )
        .await
        .unwrap();
    assert_eq!(result.exit_code, 0);
    assert!(result.stdout.is_empty());
    assert_eq!(sink.len(), size);
    assert!(sink.iter().all(|b| *b == 0));
}

#[tokio::test]
async fn captured_output_keeps_only_the_tail() {
    let env = start(POD).await;
    let t = target(&env).await;
    let script = format!("head -c {} /dev/zero; printf END", CAPTURE_LIMIT + 100_000);
    let result = env
        .cluster
        .container_exec()
        .exec(
            request(&t, &["sh", "-c", &script], Stdin::None),
            StdoutSink::Capture,
        )
        .await
        .unwrap();
    assert_eq!(result.stdout.len(), CAPTURE_LIMIT);
    assert!(result.stdout.ends_with(b"END"));
}

#[tokio::test]
async fn a_command_past_its_timeout_is_cut_off() {
    let env = start(POD).await;
    let t = target(&env).await;
    // A distinctive argument so the process can be found on this host (kube-sim runs it as a local child).
    let mut req = request(&t, &["sleep", "31.7"], Stdin::None);
    req.timeout = Some(Duration::from_millis(500));
    let running = || {
        std::process::Command::new("pgrep")
            .args(["-f", "sleep 31.7"])
            .output()
            .expect("this test needs pgrep (apt-get install procps)")
            .status
            .success()
    };
    let started = std::time::Instant::now();
    let exec = env.cluster.container_exec();
    let call = tokio::spawn(async move { exec.exec(req, StdoutSink::Capture).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        running(),
        "the remote command should be running before the timeout"
    );
    let err = call.await.unwrap().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "command in pod/db-0 (container db) in namespace shop did not finish within 500ms"
    );
    // Closing the stream ends the remote process.
    for _ in 0..50 {
        if !running() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the remote `sleep 31.7` still runs 5s after the exec stream was closed");
}

#[tokio::test]
async fn exec_into_a_missing_pod_fails_to_start_and_says_so() {
    let env = start(POD).await;
    let mut t = target(&env).await;
    t.pod = "gone-0".into();
    let err = env
        .cluster
        .container_exec()
        .exec(request(&t, &["true"], Stdin::None), StdoutSink::Capture)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Start { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "could not start a command in pod/gone-0 (container db) in namespace shop: pods \"gone-0\" not found \
         (HTTP 404); the pod no longer exists (re-resolve the workload)"
    );
}

#[tokio::test]
async fn an_injected_exec_failure_is_reported_as_a_start_error_with_its_message() {
    let env = start(POD).await;
    let t = target(&env).await;
    env.sim
        .faults()
        .add(Fault::exec_fail("container runtime is down"));
    let err = env
        .cluster
        .container_exec()
        .exec(request(&t, &["true"], Stdin::None), StdoutSink::Capture)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Start { .. }), "{err}");
    assert!(
        err.to_string().contains("container runtime is down"),
        "{err}"
    );
}

/// An exec whose server ends the stream right after its error frame, or without a status, must end at once:
/// before the fix about 4 runs in 10 waited inside the exec until the hook's timeout. 200 execs with a script on
/// stdin (as hooks send it, racing the server's close) and a long deadline: none may reach the deadline.
#[tokio::test]
async fn two_hundred_execs_against_a_failing_exec_all_end_at_once() {
    let env = start(POD).await;
    let t = target(&env).await;
    env.sim
        .faults()
        .add(Fault::exec_fail("container runtime is down"));
    let exec = env.cluster.container_exec();
    let script = "echo dumping; sleep 1\n".repeat(2000).into_bytes();
    let mut hangs = 0;
    let started = std::time::Instant::now();
    for _ in 0..200 {
        let mut req = request(&t, &["sh", "-s"], Stdin::Bytes(script.clone()));
        req.timeout = Some(Duration::from_secs(20));
        let one = std::time::Instant::now();
        match exec.exec(req, StdoutSink::Capture).await {
            Err(ExecError::Timeout { .. }) => hangs += 1,
            // The failure status when kube's loop read it; when the loop was still sending stdin as the server
            // closed, the socket's error (the status is then unread): either way the exec ends at once.
            Err(e @ ExecError::Start { .. }) => {
                assert!(e.to_string().contains("container runtime is down"), "{e}")
            }
            Err(ExecError::Stream { .. }) => {}
            Ok(r) => panic!("an exec under the execFail fault succeeded: {r:?}"),
        }
        assert!(
            one.elapsed() < Duration::from_secs(5),
            "one exec took {:?}",
            one.elapsed()
        );
    }
    assert_eq!(hangs, 0, "execs that waited until their deadline");
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[tokio::test]
async fn a_stream_closed_mid_output_ends_the_exec_at_once_without_an_exit_status() {
    let env = start(POD).await;
    let t = target(&env).await;
    env.sim
        .faults()
        .add(Fault::exec_cut("half of the dump", false));
    let exec = env.cluster.container_exec();
    for stdin in [Stdin::None, Stdin::Bytes(b"echo hi\n".repeat(50_000))] {
        let mut req = request(&t, &["sh", "-s"], stdin);
        req.timeout = Some(Duration::from_secs(20));
        let started = std::time::Instant::now();
        let err = exec
            .exec(req, StdoutSink::Capture)
            .await
            .expect_err("no exit status, no success");
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
        assert!(matches!(err, ExecError::Stream { .. }), "{err}");
    }
}

#[tokio::test]
async fn a_status_frame_then_an_immediate_close_reports_the_status() {
    let env = start(POD).await;
    let t = target(&env).await;
    env.sim.faults().add(Fault::exec_cut("all of it\n", true));
    let exec = env.cluster.container_exec();
    let mut req = request(&t, &["true"], Stdin::None);
    req.timeout = Some(Duration::from_secs(20));
    let started = std::time::Instant::now();
    let result = exec.exec(req, StdoutSink::Capture).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(result.exit_code, 0);
    assert_eq!(result.stdout, b"all of it\n");
}

#[tokio::test]
async fn an_interactive_session_gets_a_terminal_and_our_input() {
    use backup_ns::cluster::exec::{ExitStatus, exit_status};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let env = start(POD).await;
    let t = target(&env).await;
    let argv = [
        "sh",
        "-c",
        "test -t 1 && echo is-a-tty; read line; echo got:$line",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut session = env
        .cluster
        .container_exec()
        .exec_interactive(&t, argv)
        .await
        .unwrap();
    let status = session.take_status().unwrap();
    let mut stdin = session.stdin().unwrap();
    let mut stdout = session.stdout().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    let mut output = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_to_end(&mut output))
        .await
        .expect("the session ends")
        .unwrap();
    let text = String::from_utf8_lossy(&output);
    assert!(text.contains("is-a-tty"), "{text:?}");
    assert!(text.contains("got:hello"), "{text:?}");
    let status = status.await.expect("an exit status");
    assert_eq!(exit_status(&status), ExitStatus::Exited(0));
}

/// Collects the chunks of `exec_stdout_chunks` (offering 64 KiB at a time); fails with `fail_after` chunks
/// seen, when set.
#[derive(Default)]
struct Collect {
    bytes: Vec<u8>,
    buffer: Vec<u8>,
    chunks: usize,
    fail_after: Option<usize>,
}

impl ChunkSink for Collect {
    fn space(&mut self) -> &mut [u8] {
        self.buffer.resize(64 * 1024, 0);
        &mut self.buffer
    }

    async fn filled(&mut self, n: usize) -> std::io::Result<()> {
        if self.fail_after == Some(self.chunks) {
            return Err(std::io::Error::other("the disk is full (test)"));
        }
        self.chunks += 1;
        self.bytes.extend_from_slice(&self.buffer[..n]);
        Ok(())
    }
}

#[tokio::test]
async fn streamed_stdout_reaches_the_sink_complete_and_in_order() {
    let env = start(POD).await;
    let t = target(&env).await;
    let mut sink = Collect::default();
    let result = env
        .cluster
        .exec_stdout_chunks(
            &t,
            vec!["seq".into(), "1".into(), "300000".into()],
            &mut sink,
        )
        .await
        .unwrap();
    assert_eq!(result.exit_code, 0);
    assert!(result.stdout.is_empty() && result.stderr.is_empty());
    let expected: String = (1..=300_000).map(|i| format!("{i}\n")).collect();
    assert!(sink.chunks > 1, "2 MB should arrive in several frames");
    assert!(sink.bytes == expected.as_bytes(), "the stream differs");
}

#[tokio::test]
async fn streamed_exec_reports_the_exit_code_and_stderr_tail() {
    let env = start(POD).await;
    let t = target(&env).await;
    let mut sink = Collect::default();
    let argv = [
        "sh",
        "-c",
        "printf partial; echo 'cat: dump: Permission denied' >&2; exit 4",
    ];
    let result = env
        .cluster
        .exec_stdout_chunks(&t, argv.iter().map(|s| s.to_string()).collect(), &mut sink)
        .await
        .unwrap();
    assert_eq!(result.exit_code, 4);
    assert_eq!(result.stderr, b"cat: dump: Permission denied\n");
    assert_eq!(sink.bytes, b"partial");
}

#[tokio::test]
async fn a_failing_sink_aborts_the_stream_with_its_reason() {
    let env = start(POD).await;
    let t = target(&env).await;
    let mut sink = Collect {
        fail_after: Some(1),
        ..Collect::default()
    };
    let argv = ["head", "-c", "20000000", "/dev/zero"];
    let err = env
        .cluster
        .exec_stdout_chunks(&t, argv.iter().map(|s| s.to_string()).collect(), &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Stream { .. }), "{err}");
    assert!(err.to_string().contains("the disk is full (test)"), "{err}");
    assert_eq!(
        sink.chunks, 1,
        "no chunk may be handed over after the failure"
    );
}

/// A sink that (wrongly) offers no room.
struct NoRoom;

impl ChunkSink for NoRoom {
    fn space(&mut self) -> &mut [u8] {
        &mut []
    }

    async fn filled(&mut self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_sink_without_room_is_an_error_not_a_silent_end_of_stdout() {
    let env = start(POD).await;
    let t = target(&env).await;
    let err = env
        .cluster
        .exec_stdout_chunks(&t, vec!["echo".into(), "data".into()], &mut NoRoom)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Stream { .. }), "{err}");
    assert!(err.to_string().contains("offered no room"), "{err}");
}

#[tokio::test]
async fn a_streamed_exec_into_a_missing_pod_fails_to_start_and_says_so() {
    let env = start(POD).await;
    let mut t = target(&env).await;
    t.pod = "gone-0".into();
    let err = env
        .cluster
        .exec_stdout_chunks(&t, vec!["true".into()], &mut Collect::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Start { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("(HTTP 404); the pod no longer exists (re-resolve the workload)"),
        "{err}"
    );
}
