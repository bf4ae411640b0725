//! TTY sessions: a real pseudo-terminal with resize.

use crate::support::{Client, Server, query};
use kube_sim::exec;

#[tokio::test]
async fn tty_sessions_get_a_terminal_that_follows_resize_messages() {
    let server = Server::start(&[], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(
            &[
                "sh",
                "-c",
                "read line; stty size; test -t 0 && echo is-a-tty",
            ],
            "stdin=true&stdout=true&tty=true",
        ),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    client
        .send_frame(exec::RESIZE, br#"{"Width":123,"Height":45}"#)
        .await;
    client.send_frame(exec::STDIN, b"go\n").await;
    let collected = client.collect().await;
    let output = collected.stdout_text();
    assert!(output.contains("45 123"), "{output:?}");
    assert!(output.contains("is-a-tty"), "{output:?}");
    assert_eq!(collected.exit_code(), Some(0));
}
