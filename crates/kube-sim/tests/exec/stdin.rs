//! Stdin delivery and end-of-input signalling.

use crate::support::{Client, Server, drain_stream, query};
use kube_sim::exec;
use tokio_tungstenite::tungstenite::Message;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn v5_close_signal_ends_stdin_and_the_data_round_trips() {
    let server = Server::start(&[], vec![], None).await;
    let client = Client::connect(
        server.addr,
        "/exec",
        &query(&["cat"], "stdin=true&stdout=true&stderr=true"),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    let data = pattern(1024 * 1024 + 17);
    let (mut sink, mut stream) = futures::StreamExt::split(client.ws);
    // Write and read concurrently so that neither side's buffers decide the outcome.
    let writer = tokio::spawn(async move {
        for piece in data.chunks(10_000) {
            let mut frame = vec![exec::STDIN];
            frame.extend_from_slice(piece);
            futures::SinkExt::send(&mut sink, Message::binary(frame))
                .await
                .expect("send stdin");
        }
        futures::SinkExt::send(&mut sink, Message::binary(vec![exec::CLOSE, exec::STDIN]))
            .await
            .expect("send close");
        sink
    });
    let mut stdout = Vec::new();
    let collected = drain_stream(&mut stream, |channel, payload| {
        if channel == exec::STDOUT {
            stdout.extend_from_slice(payload);
        }
    })
    .await;
    drop(writer.await.expect("writer task"));
    assert_eq!(collected.exit_code(), Some(0), "{:?}", collected.status);
    assert_eq!(stdout, pattern(1024 * 1024 + 17));
}

#[tokio::test]
async fn v4_empty_stdin_frame_ends_stdin() {
    let server = Server::start(&[], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(&["wc", "-c"], "stdin=true&stdout=true"),
        "v4.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    client.send_frame(exec::STDIN, b"hello ").await;
    client.send_frame(exec::STDIN, b"world").await;
    client.send_frame(exec::STDIN, b"").await;
    let collected = client.collect().await;
    assert_eq!(collected.stdout_text().trim(), "11");
    assert_eq!(collected.exit_code(), Some(0));
}

#[tokio::test]
async fn a_script_piped_to_bash_s_runs_as_the_hooks_do() {
    let server = Server::start(&[("GREETING", "hi")], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(&["bash", "-s"], "stdin=true&stdout=true&stderr=true"),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    client
        .send_frame(
            exec::STDIN,
            b"set -e\necho \"$GREETING from script\"\nexit 4\n",
        )
        .await;
    client.close_stdin().await;
    let collected = client.collect().await;
    assert_eq!(collected.stdout_text(), "hi from script\n");
    assert_eq!(collected.exit_code(), Some(4));
}
