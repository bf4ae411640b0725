//! `metrics::push` against a stand-in Pushgateway (a local HTTP server recording what it receives).

use crate::support::pushgateway::start as gateway;
use backup_ns::metrics::{PushError, Sample, push};

#[tokio::test]
async fn a_push_replaces_the_group_with_the_samples_in_text_format() {
    let (url, seen) = gateway(200).await;
    let samples = vec![
        Sample::new(
            "backup_ns_run_success",
            "1 when the last run succeeded.",
            1.0,
        )
        .label("pvc", "data"),
        Sample::new(
            "backup_ns_run_duration_seconds",
            "Duration of the last run.",
            12.5,
        ),
    ];
    push(
        &url,
        "backup-ns",
        &[("namespace", "shop"), ("plan", "a/b")],
        &samples,
    )
    .await
    .expect("push succeeds");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let crate::support::pushgateway::Pushed {
        method,
        path,
        content_type,
        body,
    } = &seen[0];
    assert_eq!(method, "PUT");
    assert_eq!(
        path,
        "/metrics/job/backup-ns/namespace/shop/plan@base64/YS9i"
    );
    assert_eq!(content_type, "text/plain; version=0.0.4");
    assert_eq!(
        body,
        "# HELP backup_ns_run_success 1 when the last run succeeded.\n\
         # TYPE backup_ns_run_success gauge\n\
         backup_ns_run_success{pvc=\"data\"} 1\n\
         # HELP backup_ns_run_duration_seconds Duration of the last run.\n\
         # TYPE backup_ns_run_duration_seconds gauge\n\
         backup_ns_run_duration_seconds 12.5\n"
    );
}

#[tokio::test]
async fn a_rejected_or_unreachable_push_is_an_error_naming_the_gateway() {
    let (url, _) = gateway(400).await;
    let err = push(&url, "backup-ns", &[], &[Sample::new("x", "x", 1.0)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, PushError::Rejected { status: 400, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("pushgateway says no"), "{err}");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = push(&format!("http://{closed}"), "j", &[], &[])
        .await
        .unwrap_err();
    assert!(matches!(err, PushError::Connect { .. }), "{err}");
    let err = push("http://x", "j", &[], &[Sample::new("bad-name", "x", 1.0)])
        .await
        .unwrap_err();
    assert!(matches!(err, PushError::Name { .. }), "{err}");
}
