//! Large streams flow with bounded memory and backpressure.

use std::time::Duration;

use crate::support::{Client, Server, peak_rss_kib, query};
use futures::StreamExt;
use kube_sim::exec;
use tokio_tungstenite::tungstenite::Message;

/// Stream size in MiB; `KUBE_SIM_EXEC_STREAM_MIB=1024` turns the test into the 1 GiB measurement.
fn size_mib() -> u64 {
    std::env::var("KUBE_SIM_EXEC_STREAM_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

#[tokio::test]
async fn a_100_mib_stdout_stream_arrives_complete_with_bounded_memory_while_the_client_stalls() {
    let mib = size_mib();
    let size = mib * 1024 * 1024;
    let server = Server::start(&[], vec![], None).await;
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(
            &[
                "sh",
                "-c",
                &format!("head -c {size} /dev/zero | tr '\\0' 'k'"),
            ],
            "stdout=true&stderr=true",
        ),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    let before = peak_rss_kib();
    let started = std::time::Instant::now();

    // Take one frame, then stall: without backpressure the server would buffer ~100 MiB now.
    let first = client.ws.next().await.expect("a frame").expect("no error");
    let mut received = match first {
        Message::Binary(data) => data.len() as u64 - 1,
        other => panic!("unexpected first message {other:?}"),
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during_stall = peak_rss_kib();

    let mut wrong_bytes = 0u64;
    let collected = client
        .drain(|channel, payload| {
            if channel == exec::STDOUT {
                received += payload.len() as u64;
                wrong_bytes += payload.iter().filter(|&&b| b != b'k').count() as u64;
            }
        })
        .await;
    let after = peak_rss_kib();
    let seconds = started.elapsed().as_secs_f64() - 2.0;
    println!(
        "exec {mib} MiB stream: {:.0} MiB/s after the 2 s stall (debug build, client in-process)",
        mib as f64 / seconds.max(0.001)
    );
    println!(
        "exec {mib} MiB stream: peak RSS before {before} KiB, after stall {during_stall} KiB, after {after} KiB (growth {} KiB)",
        after.saturating_sub(before)
    );
    assert_eq!(collected.exit_code(), Some(0));
    assert_eq!(received, size);
    assert_eq!(wrong_bytes, 0);
    assert!(
        after.saturating_sub(before) < 32 * 1024,
        "peak RSS grew by {} KiB for a {mib} MiB stream: output is being buffered",
        after.saturating_sub(before)
    );
}
