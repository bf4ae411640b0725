//! kube-rs `Api::<Pod>::exec` (the client backup-ns uses) against kube-sim.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::sim_with_pod;

#[tokio::test]
async fn kube_rs_exec_streams_stdin_and_reports_the_exit_status() {
    tokio::time::timeout(std::time::Duration::from_secs(60), exec_round_trip())
        .await
        .expect("the kube-rs exec round trip finishes within 60 s");
}

async fn exec_round_trip() {
    let sim = sim_with_pod().await;
    let kubeconfig = Kubeconfig::read_from(sim.kubeconfig_path()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    let client = kube::Client::try_from(config).expect("client");
    let pods: Api<Pod> = Api::namespaced(client, "app");
    let params = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let mut process = pods
        .exec(
            "db-0",
            [
                "sh",
                "-c",
                "tr a-z A-Z; echo \"user=$POSTGRES_USER\" >&2; exit 5",
            ],
            &params,
        )
        .await
        .expect("exec starts");
    let mut stdin = process.stdin().expect("stdin");
    let mut stdout = process.stdout().expect("stdout");
    let mut stderr = process.stderr().expect("stderr");
    let status = process.take_status().expect("status future");
    stdin
        .write_all(b"piped to bash -s\n")
        .await
        .expect("write stdin");
    // kube-rs only sends the v5 stdin close on shutdown; dropping the writer half is not enough.
    stdin.shutdown().await.expect("close stdin");
    let mut out = String::new();
    let mut err = String::new();
    let (read_out, read_err) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err)
    );
    read_out.expect("read stdout");
    read_err.expect("read stderr");
    let status = status.await.expect("a status arrives");
    process.join().await.expect("session ends cleanly");
    assert_eq!(out, "PIPED TO BASH -S\n");
    assert_eq!(err, "user=app\n");
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let causes = status.details.and_then(|d| d.causes).unwrap_or_default();
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason.as_deref(), Some("ExitCode"));
    assert_eq!(causes[0].message.as_deref(), Some("5"));
}
