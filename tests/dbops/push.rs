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

#[tokio::test]
async fn an_https_gateway_with_an_untrusted_certificate_is_refused_before_anything_is_sent() {
    let (url, seen, _ca) = crate::support::pushgateway::start_tls(200).await;
    let err = push(&url, "backup-ns", &[], &[Sample::new("x", "x", 1.0)])
        .await
        .unwrap_err();
    assert!(matches!(err, PushError::Connect { .. }), "{err}");
    let text = err.to_string();
    // "no CA certificates" only on a machine without a system CA bundle.
    assert!(
        text.contains("TLS handshake failed") || text.contains("no CA certificates found"),
        "{text}"
    );
    assert!(text.contains(&url), "names the gateway: {text}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_pushes_over_https_to_a_gateway_signed_by_the_ca_in_ssl_cert_file() {
    let world = crate::env::World::start(&crate::env::fixture("postgres", "/data", &[])).await;
    let (url, seen, ca) = crate::support::pushgateway::start_tls(200).await;
    let ca_file = world.write("gateway-ca.pem", &ca);
    let ca_file = ca_file.to_str().unwrap();
    let out = world
        .command(
            &["controller", "-A", "--pushgateway", &format!("{url}/base/")],
            &[
                ("SSL_CERT_FILE", ca_file),
                ("BACKUP_NS_NOW", "2025-03-01T04:30:00Z"),
            ],
        )
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", crate::env::show(&out));
    assert!(
        !crate::env::stderr(&out).contains("could not push"),
        "{}",
        crate::env::show(&out)
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/base/metrics/job/backup-ns-controller");
    assert!(
        seen[0].body.contains("backup_ns_controller_success 1\n"),
        "{}",
        seen[0].body
    );

    // Without the CA the same push is refused, and the controller says so as a warning.
    let untrusted = world
        .command(
            &["controller", "-A", "--pushgateway", &url],
            &[("BACKUP_NS_NOW", "2025-03-01T04:30:00Z")],
        )
        .output()
        .await
        .unwrap();
    let stderr = crate::env::stderr(&untrusted);
    assert!(
        stderr.contains("TLS handshake failed") || stderr.contains("no CA certificates found"),
        "{}",
        crate::env::show(&untrusted)
    );
}
