//! Disconnecting clients take their processes with them.

use std::time::Duration;

use crate::support::{Client, Server, process_is_dead, query};
use futures::StreamExt;
use kube_sim::exec::{self, Outcome};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn dropping_the_connection_kills_the_whole_process_group() {
    let mut server = Server::start(&[], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(
            &["sh", "-c", "sleep 1000 & echo $$ $!; wait"],
            "stdout=true",
        ),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    let pids: Vec<u32> = loop {
        match client.ws.next().await {
            Some(Ok(Message::Binary(data))) if data.first() == Some(&exec::STDOUT) => {
                break String::from_utf8_lossy(&data[1..])
                    .split_whitespace()
                    .map(|p| p.parse().expect("pid"))
                    .collect();
            }
            Some(Ok(_)) => {}
            other => panic!("expected the pids on stdout, got {other:?}"),
        }
    };
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&pid| !process_is_dead(pid)), "both run");

    drop(client);

    assert_eq!(server.next_outcome().await, Outcome::ClientGone);
    for _ in 0..100 {
        if pids.iter().all(|&pid| process_is_dead(pid)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("processes {pids:?} survived the client's disconnect");
}

#[tokio::test]
async fn a_vanished_client_is_noticed_even_while_stdin_is_stalled() {
    let mut server = Server::start(&[], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(
            &["sh", "-c", "echo $$; exec sleep 1000"],
            "stdin=true&stdout=true",
        ),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    let pid: u32 = loop {
        match client.ws.next().await {
            Some(Ok(Message::Binary(data))) if data.first() == Some(&exec::STDOUT) => {
                break String::from_utf8_lossy(&data[1..])
                    .trim()
                    .parse()
                    .expect("pid");
            }
            Some(Ok(_)) => {}
            other => panic!("expected the pid on stdout, got {other:?}"),
        }
    };
    // sleep never reads stdin: the pipe fills and the server's stdin write stalls.
    for _ in 0..16 {
        client.send_frame(exec::STDIN, &[b'x'; 64 * 1024]).await;
    }
    drop(client);
    assert_eq!(server.next_outcome().await, Outcome::ClientGone);
    for _ in 0..100 {
        if process_is_dead(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("process {pid} survived the client's disconnect");
}
