//! Exit codes, stdout/stderr separation, status objects and negotiation.

use crate::support::{Client, Server, query};
use kube_sim::exec::Outcome;

const OUT_ERR_EXIT_3: [&str; 3] = ["sh", "-c", "echo out; echo err >&2; exit 3"];

#[tokio::test]
async fn non_zero_exit_returns_both_streams_and_a_non_zero_exit_code_status_in_v5() {
    let mut server = Server::start(&[], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(&OUT_ERR_EXIT_3, "stdout=true&stderr=true"),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    assert_eq!(client.protocol.as_deref(), Some("v5.channel.k8s.io"));
    let collected = client.collect().await;
    assert_eq!(collected.stdout_text(), "out\n");
    assert_eq!(collected.stderr_text(), "err\n");
    let status = collected.status.clone().expect("a status on channel 3");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(collected.exit_code(), Some(3));
    assert!(collected.closed_normally, "server closes with 1000");
    assert_eq!(server.next_outcome().await, Outcome::Exited(3));
}

#[tokio::test]
async fn v4_is_negotiated_when_offered_alone_and_reports_success() {
    let mut server = Server::start(&[], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(&["echo", "hello"], "stdout=true"),
        "v4.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    assert_eq!(client.protocol.as_deref(), Some("v4.channel.k8s.io"));
    let collected = client.collect().await;
    assert_eq!(collected.stdout_text(), "hello\n");
    assert_eq!(
        collected.status,
        Some(serde_json::json!({"metadata": {}, "status": "Success"}))
    );
    assert_eq!(server.next_outcome().await, Outcome::Exited(0));
}

#[tokio::test]
async fn kube_rs_style_offer_gets_v5_through_the_upgrade_helper() {
    let server = Server::start(&[], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec-helper",
        &query(&OUT_ERR_EXIT_3, "stdout=true&stderr=true"),
        "v5.channel.k8s.io, v4.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    assert_eq!(client.protocol.as_deref(), Some("v5.channel.k8s.io"));
    let collected = client.collect().await;
    assert_eq!(collected.exit_code(), Some(3));
    assert_eq!(collected.stdout_text(), "out\n");
}

#[tokio::test]
async fn unrequested_streams_are_not_sent() {
    let server = Server::start(&[], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(&OUT_ERR_EXIT_3, "stdout=true"),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    let collected = client.collect().await;
    assert_eq!(collected.stdout_text(), "out\n");
    assert!(collected.stderr.is_empty());
    assert_eq!(collected.exit_code(), Some(3));
}

#[tokio::test]
async fn signal_death_is_reported_as_128_plus_the_signal() {
    let server = Server::start(&[], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(&["sh", "-c", "kill -9 $$"], "stdout=true"),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    assert_eq!(client.collect().await.exit_code(), Some(137));
}

#[tokio::test]
async fn a_missing_command_is_an_internal_error_status_naming_it() {
    let mut server = Server::start(&[], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(&["kube-sim-no-such-command"], "stdout=true"),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    let status = client.collect().await.status.expect("a status");
    assert_eq!(status["reason"], "InternalError");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"kube-sim-no-such-command\": executable file not found in $PATH"),
        "{message}"
    );
    assert!(matches!(
        server.next_outcome().await,
        Outcome::StartFailed(_)
    ));
}

#[tokio::test]
async fn unsupported_subprotocols_are_refused_with_400() {
    let server = Server::start(&[], vec![], None).await;
    let refused = Client::connect(
        server.addr,
        "/exec",
        &query(&["true"], "stdout=true"),
        "channel.k8s.io",
    )
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("v5.channel.k8s.io"), "{body}");
        }
        Err(other) => panic!("expected an HTTP 400, got {other}"),
        Ok(_) => panic!("expected an HTTP 400, got an upgrade"),
    }
}

#[tokio::test]
async fn invalid_queries_are_refused_with_a_bad_request_status() {
    let server = Server::start(&[], vec![], None).await;
    let refused = Client::connect(server.addr, "/exec", "stdout=true", "v5.channel.k8s.io").await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("Status JSON body");
            assert_eq!(body["kind"], "Status");
            assert_eq!(body["reason"], "BadRequest");
            assert_eq!(body["message"], "you must specify at least 1 command");
        }
        Err(other) => panic!("expected an HTTP 400, got {other}"),
        Ok(_) => panic!("expected an HTTP 400, got an upgrade"),
    }
}
