//! `backup-ns exporter`: the metrics text for a fixed set of snapshots (golden, ages from `BACKUP_NS_NOW`), and
//! that it follows creations, label changes and deletions through its watch without re-listing.

use crate::env::World;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const NOW: &str = "2026-03-10T12:00:00Z";

fn snapshot(
    ns: &str,
    name: &str,
    pvc: &str,
    requested: &str,
    ready: Option<&str>,
    labels: &[(&str, &str)],
) -> String {
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("    backup-ns.sh/{k}: \"{v}\"\n"))
        .collect();
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!("  labels:\n{labels}")
    };
    let status = match ready {
        Some(created) => format!(
            "status:\n  boundVolumeSnapshotContentName: snapcontent-{name}\n  creationTime: \"{created}\"\n  readyToUse: true\n"
        ),
        None => format!(
            "status:\n  boundVolumeSnapshotContentName: snapcontent-{name}\n  readyToUse: false\n"
        ),
    };
    format!(
        "---\napiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: {name}\n  namespace: {ns}\n  creationTimestamp: \"{requested}\"\n{labels}spec:\n  source:\n    persistentVolumeClaimName: {pvc}\n{status}"
    )
}

fn fixtures() -> String {
    let mut y = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n",
    );
    let gfs = [
        ("retain", "daily_weekly_monthly"),
        ("type", "cronjob"),
        ("plan", "nightly"),
        ("pvc", "data"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        gfs.iter().copied().chain(extra.iter().copied()).collect()
    };
    y.push_str(&snapshot(
        "shop",
        "data-1",
        "data",
        "2026-03-08T01:00:00Z",
        Some("2026-03-08T01:00:05Z"),
        &with(&[
            ("daily", "2026-03-08"),
            ("weekly", "2026-w10"),
            ("monthly", "2026-03"),
        ]),
    ));
    y.push_str(&snapshot(
        "shop",
        "data-2",
        "data",
        "2026-03-09T01:00:00Z",
        Some("2026-03-09T01:00:04Z"),
        &with(&[("daily", "2026-03-09")]),
    ));
    y.push_str(&snapshot(
        "shop",
        "data-3",
        "data",
        "2026-03-10T11:30:00Z",
        None,
        &with(&[]),
    ));
    y.push_str(&snapshot(
        "shop",
        "data-old",
        "data",
        "2026-01-01T01:00:00Z",
        Some("2026-01-01T01:00:03Z"),
        &with(&[("delete-after", "2026-03-11")]),
    ));
    y.push_str(&snapshot(
        "shop",
        "logs-adhoc",
        "logs",
        "2026-03-05T10:00:00Z",
        Some("2026-03-05T10:00:02Z"),
        &[
            ("retain", "days"),
            ("retain-days", "30"),
            ("type", "adhoc"),
            ("plan", "pre-upgrade"),
            ("pvc", "logs"),
        ],
    ));
    // Not ours: no backup-ns label.
    y.push_str(&snapshot(
        "other",
        "manual",
        "data",
        "2026-03-01T00:00:00Z",
        Some("2026-03-01T00:00:01Z"),
        &[],
    ));
    y
}

struct Exporter {
    _child: tokio::process::Child,
    addr: String,
}

async fn start_exporter(w: &World) -> Exporter {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_backup-ns"))
        .args(["exporter", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(w.sim.kubeconfig_path())
        .current_dir(w.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BACKUP_NS_NOW", NOW)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("exporter starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("backup-ns exporter listening on http://") {
                return rest.trim_end_matches("/metrics").to_string();
            }
        }
        panic!("the exporter exited without listening");
    })
    .await
    .expect("the exporter printed its address");
    // Keep draining its logs so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Exporter {
        _child: child,
        addr,
    }
}

async fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the exporter");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// Scrapes until `check` holds (the watch delivers asynchronously); returns the last body.
async fn scrape_until(addr: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let mut body = String::new();
    for _ in 0..200 {
        body = get(addr, "/metrics").await.1;
        if check(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}; last scrape:\n{body}");
}

const GOLDEN: &str = r#"# HELP backup_ns_exporter_synced 1 once the snapshot watch has listed every VolumeSnapshot; 0 while it (re)lists.
# TYPE backup_ns_exporter_synced gauge
backup_ns_exporter_synced 1
# HELP backup_ns_exporter_snapshots_seen VolumeSnapshots with backup-ns labels currently known to the exporter.
# TYPE backup_ns_exporter_snapshots_seen gauge
backup_ns_exporter_snapshots_seen 5
# HELP backup_ns_cluster_snapshots VolumeSnapshots in the cluster (the exporter's or the pass's scope), backup-ns or not.
# TYPE backup_ns_cluster_snapshots gauge
backup_ns_cluster_snapshots 6
# HELP backup_ns_cluster_snapshots_limit The snapshot count deploy/prometheus-rule.yaml warns near (--snapshot-limit).
# TYPE backup_ns_cluster_snapshots_limit gauge
backup_ns_cluster_snapshots_limit 20000
# HELP backup_ns_last_success_timestamp_seconds Creation time (Unix seconds) of the newest ready backup-ns snapshot of the PVC.
# TYPE backup_ns_last_success_timestamp_seconds gauge
backup_ns_last_success_timestamp_seconds{namespace="shop",pvc="data"} 1773018004
backup_ns_last_success_timestamp_seconds{namespace="shop",pvc="logs"} 1772704802
# HELP backup_ns_last_verified_timestamp_seconds When `backup-ns verify` last proved a snapshot of the PVC by restoring it (Unix seconds).
# TYPE backup_ns_last_verified_timestamp_seconds gauge
# HELP backup_ns_plan_info The plan named by the PVC's newest ready snapshot (always 1).
# TYPE backup_ns_plan_info gauge
backup_ns_plan_info{namespace="shop",pvc="data",plan="nightly"} 1
backup_ns_plan_info{namespace="shop",pvc="logs",plan="pre-upgrade"} 1
# HELP backup_ns_snapshots backup-ns VolumeSnapshots of the PVC.
# TYPE backup_ns_snapshots gauge
backup_ns_snapshots{namespace="shop",pvc="data"} 4
backup_ns_snapshots{namespace="shop",pvc="logs"} 1
# HELP backup_ns_snapshots_by_tier backup-ns VolumeSnapshots of the PVC per retention tier label (daily, weekly, monthly, yearly), adhoc type and retain=days.
# TYPE backup_ns_snapshots_by_tier gauge
backup_ns_snapshots_by_tier{namespace="shop",pvc="data",tier="daily"} 2
backup_ns_snapshots_by_tier{namespace="shop",pvc="data",tier="weekly"} 1
backup_ns_snapshots_by_tier{namespace="shop",pvc="data",tier="monthly"} 1
backup_ns_snapshots_by_tier{namespace="shop",pvc="data",tier="yearly"} 0
backup_ns_snapshots_by_tier{namespace="shop",pvc="data",tier="adhoc"} 0
backup_ns_snapshots_by_tier{namespace="shop",pvc="data",tier="days"} 0
backup_ns_snapshots_by_tier{namespace="shop",pvc="logs",tier="daily"} 0
backup_ns_snapshots_by_tier{namespace="shop",pvc="logs",tier="weekly"} 0
backup_ns_snapshots_by_tier{namespace="shop",pvc="logs",tier="monthly"} 0
backup_ns_snapshots_by_tier{namespace="shop",pvc="logs",tier="yearly"} 0
backup_ns_snapshots_by_tier{namespace="shop",pvc="logs",tier="adhoc"} 1
backup_ns_snapshots_by_tier{namespace="shop",pvc="logs",tier="days"} 1
# HELP backup_ns_snapshots_marked_for_deletion backup-ns VolumeSnapshots of the PVC carrying a delete-after label.
# TYPE backup_ns_snapshots_marked_for_deletion gauge
backup_ns_snapshots_marked_for_deletion{namespace="shop",pvc="data"} 1
backup_ns_snapshots_marked_for_deletion{namespace="shop",pvc="logs"} 0
# HELP backup_ns_snapshots_not_ready backup-ns VolumeSnapshots of the PVC that are not readyToUse.
# TYPE backup_ns_snapshots_not_ready gauge
backup_ns_snapshots_not_ready{namespace="shop",pvc="data"} 1
backup_ns_snapshots_not_ready{namespace="shop",pvc="logs"} 0
# HELP backup_ns_oldest_not_ready_age_seconds Age in seconds of the PVC's oldest snapshot that is not ready (0 when all are ready).
# TYPE backup_ns_oldest_not_ready_age_seconds gauge
backup_ns_oldest_not_ready_age_seconds{namespace="shop",pvc="data"} 1800
backup_ns_oldest_not_ready_age_seconds{namespace="shop",pvc="logs"} 0
"#;

async fn world() -> World {
    let dir = tempfile::Builder::new()
        .prefix("bns-exporter-")
        .tempdir()
        .unwrap();
    let sim = kube_sim::Sim::builder()
        .start()
        .await
        .expect("kube-sim starts");
    tokio::time::sleep(Duration::from_millis(20)).await;
    sim.apply_yaml(&fixtures()).expect("fixtures apply");
    World { sim, dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_text_is_computed_from_snapshot_labels() {
    let w = world().await;
    let exporter = start_exporter(&w).await;
    let body = scrape_until(&exporter.addr, "the watch synced", |b| {
        b.contains("\nbackup_ns_exporter_synced 1\n")
    })
    .await;
    assert_eq!(body, GOLDEN);
    let (status, text) = get(&exporter.addr, "/healthz").await;
    assert!(status.contains("200"), "{status} {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_follows_changes_through_its_watch_without_relisting() {
    let w = world().await;
    let exporter = start_exporter(&w).await;
    scrape_until(&exporter.addr, "the watch synced", |b| {
        b.contains("\nbackup_ns_exporter_synced 1\n")
    })
    .await;
    let lists = w.sim.requests().count("list", "volumesnapshots");

    // A new ready nightly backup moves the last success and the counts.
    w.sim
        .apply_yaml(&snapshot(
            "shop",
            "data-4",
            "data",
            "2026-03-10T01:00:00Z",
            Some("2026-03-10T01:00:06Z"),
            &[
                ("retain", "daily_weekly_monthly"),
                ("plan", "nightly-v2"),
                ("pvc", "data"),
                ("daily", "2026-03-10"),
            ],
        ))
        .unwrap();
    let body = scrape_until(&exporter.addr, "data-4 is counted", |b| {
        b.contains("backup_ns_snapshots{namespace=\"shop\",pvc=\"data\"} 5\n")
    })
    .await;
    assert!(
        body.contains(
            "backup_ns_last_success_timestamp_seconds{namespace=\"shop\",pvc=\"data\"} 1773104406\n"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "backup_ns_plan_info{namespace=\"shop\",pvc=\"data\",plan=\"nightly-v2\"} 1\n"
        ),
        "{body}"
    );

    // Marking for deletion is a label change.
    w.sim
        .apply_yaml(&snapshot(
            "shop",
            "data-2",
            "data",
            "2026-03-09T01:00:00Z",
            Some("2026-03-09T01:00:04Z"),
            &[
                ("retain", "daily_weekly_monthly"),
                ("plan", "nightly"),
                ("pvc", "data"),
                ("delete-after", "2026-03-12"),
            ],
        ))
        .unwrap();
    scrape_until(&exporter.addr, "data-2 is marked", |b| {
        b.contains("backup_ns_snapshots_marked_for_deletion{namespace=\"shop\",pvc=\"data\"} 2\n")
    })
    .await;

    // A deleted snapshot disappears; the only snapshot of `logs` going away removes the PVC's series.
    let cluster = backup_ns::cluster::Cluster::connect(&backup_ns::cluster::ConnectOptions {
        kubeconfig: Some(w.sim.kubeconfig_path().to_path_buf()),
        namespace: Some("shop".into()),
        service_account_namespace_file: Some(w.dir.path().join("no-sa")),
        ..Default::default()
    })
    .await
    .unwrap();
    let api: kube::Api<backup_ns::cluster::VolumeSnapshot> =
        kube::Api::namespaced(cluster.client().clone(), "shop");
    api.delete("logs-adhoc", &Default::default()).await.unwrap();
    let body = scrape_until(&exporter.addr, "logs-adhoc is gone", |b| {
        !b.contains("pvc=\"logs\"")
    })
    .await;
    assert!(
        body.contains("backup_ns_exporter_snapshots_seen 5\n"),
        "{body}"
    );

    assert_eq!(
        w.sim.requests().count("list", "volumesnapshots"),
        lists,
        "changes must arrive through the watch, not by listing again"
    );
}
