//! Pods on the real cluster: the scheduler binds them to the node agent (`kube-sim node-agent`), which runs the
//! mapped images as host processes. Exec goes client → apiserver → the agent's kubelet API; these tests prove
//! which way the apiserver takes (the WebSocket passed through, or translated to SPDY), that kubectl and kube-rs
//! both get stdin, stdout, stderr and the exit code through it, and that the remote process dies with its client.
//! The product's own exec (database dumps, downloads, restores) through that path is in databases.rs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::{RealCluster, text};

/// A namespace with one Running pod `shell` of the `busybox` image (mapped to the host's tools), looping.
fn shell_pod(cluster: &RealCluster, ns: &str) {
    cluster.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: shell, namespace: {ns}}}\nspec:\n  \
         terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: busybox:1.36\n    \
         command: [sh, -c, 'while :; do sleep 1; done']\n"
    ));
    cluster.wait_for(ns, "pod/shell", "{.status.phase}", "Running");
}

/// The apiserver's count of WebSocket exec requests of `proxy_type` (`proxied_to_kubelet` when the node takes the
/// WebSocket itself, `translated_at_apiserver` when the apiserver speaks SPDY to it).
fn exec_requests(cluster: &RealCluster, proxy_type: &str) -> u64 {
    let metrics = cluster.kubectl(&["get", "--raw", "/metrics"]);
    metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_websocket_streaming_requests_total{"))
        .filter(|l| {
            l.contains(&format!("proxy_type=\"{proxy_type}\""))
                && l.contains("subresource=\"exec\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|n| n as u64)
        .sum()
}

/// Waits until no process has `pid` (it was killed and reaped).
fn wait_gone(pid: u32, what: &str) {
    let started = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: the remote process {pid} still runs 20s after its client went away"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kube_client(cluster: &RealCluster) -> (tokio::runtime::Runtime, kube::Client) {
    // A worker thread of its own, so that kube-rs's connection task keeps running (and closes the WebSocket when
    // its session is dropped) between the test's `block_on`s.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let client = rt.block_on(async {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(cluster.kubeconfig()).expect("the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("a client config");
        kube::Client::try_from(config).expect("a client")
    });
    (rt, client)
}

#[test]
fn exec_passes_the_websocket_through_to_the_node_agent_for_kubectl_and_kube_rs() {
    let cluster = RealCluster::shared();
    let ns = "pods-exec";
    shell_pod(cluster, ns);
    let node = cluster.kubectl(&[
        "get",
        "node",
        "backup-ns-node",
        "-o",
        "jsonpath={.status.declaredFeatures}",
    ]);
    assert!(
        node.contains("ExtendWebSocketsToKubelet"),
        "the node declares {node}"
    );
    let proxied = exec_requests(cluster, "proxied_to_kubelet");
    let translated = exec_requests(cluster, "translated_at_apiserver");

    // kubectl: stdin in, stdout and stderr apart, the exit code out.
    let out = cluster.kubectl_output(
        &[
            "-n",
            ns,
            "exec",
            "-i",
            "shell",
            "--",
            "sh",
            "-c",
            "cat; echo to-stderr >&2; exit 7",
        ],
        "hello through the apiserver\n",
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello through the apiserver\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("to-stderr"),
        "{}",
        text(&out)
    );

    // kube-rs: the same over its own WebSocket client.
    let (rt, client) = kube_client(cluster);
    let pods: Api<Pod> = Api::namespaced(client, ns);
    let (stdout, stderr, status) = rt.block_on(async {
        let params = AttachParams::default()
            .stdin(true)
            .stdout(true)
            .stderr(true);
        let mut process = pods
            .exec(
                "shell",
                [
                    "sh",
                    "-c",
                    "read line; echo got-$line; echo warn >&2; exit 4",
                ],
                &params,
            )
            .await
            .expect("kube-rs exec through the apiserver");
        let mut stdin = process.stdin().expect("stdin");
        stdin.write_all(b"ping\n").await.expect("writing stdin");
        let mut out = process.stdout().expect("stdout");
        let mut err = process.stderr().expect("stderr");
        let status = process.take_status().expect("status");
        let (mut o, mut e) = (String::new(), String::new());
        let (r1, r2) = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
        r1.expect("reading stdout");
        r2.expect("reading stderr");
        let status = status.await.expect("a status");
        drop(stdin);
        (o, e, status)
    });
    assert_eq!(stdout, "got-ping\n");
    assert_eq!(stderr, "warn\n");
    assert_eq!(
        status.reason.as_deref(),
        Some("NonZeroExitCode"),
        "{status:?}"
    );
    let code = status
        .details
        .and_then(|d| d.causes)
        .and_then(|c| {
            c.into_iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message);
    assert_eq!(code.as_deref(), Some("4"));

    // The path: both were passed through as WebSockets, none translated to SPDY (and the agent speaks no SPDY).
    assert!(
        exec_requests(cluster, "proxied_to_kubelet") >= proxied + 2,
        "the apiserver proxied the WebSocket to the node"
    );
    assert_eq!(
        exec_requests(cluster, "translated_at_apiserver"),
        translated
    );

    // The client goes away: kubectl killed mid-command takes the remote process with it.
    let mut kubectl = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args([
            "-n",
            ns,
            "exec",
            "shell",
            "--",
            "sh",
            "-c",
            "echo $$; exec sleep 300",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl exec");
    let mut line = String::new();
    BufReader::new(kubectl.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the remote pid");
    let pid: u32 = line.trim().parse().expect("a pid");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    kubectl.kill().expect("killing kubectl");
    let _ = kubectl.wait();
    wait_gone(pid, "kubectl");

    // And kube-rs dropping its session.
    let pid: u32 = rt.block_on(async {
        let params = AttachParams::default().stdout(true).stderr(false);
        let mut process = pods
            .exec("shell", ["sh", "-c", "echo $$; exec sleep 300"], &params)
            .await
            .expect("kube-rs exec");
        let mut out = process.stdout().expect("stdout");
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while out.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
            buf.push(byte[0]);
        }
        process.abort();
        drop(process);
        String::from_utf8_lossy(&buf).trim().parse().expect("a pid")
    });
    wait_gone(pid, "kube-rs");
    cluster.kubectl(&["delete", "namespace", ns, "--wait=false"]);
}
