//! The container's environment, volume mounts and working directory.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::{Client, Server, query};
use kube_sim::exec::Mount;

const CONTAINER_DATA: &str = "/var/lib/kube-sim-exec-test/data";

async fn run(server: &Server, command: &[&str]) -> crate::support::Collected {
    let mut client = Client::connect(
        server.addr,
        "/exec",
        &query(command, "stdout=true&stderr=true"),
        "v5.channel.k8s.io",
    )
    .await
    .expect("upgrade succeeds");
    client.collect().await
}

#[tokio::test]
async fn the_process_sees_exactly_the_container_environment() {
    let server = Server::start(
        &[("POSTGRES_USER", "app"), ("B", "two words")],
        vec![],
        None,
    )
    .await;
    let collected = run(&server, &["/usr/bin/env"]).await;
    assert_eq!(
        collected.exit_code(),
        Some(0),
        "{}",
        collected.stderr_text()
    );
    let lines: BTreeSet<String> = collected.stdout_text().lines().map(str::to_owned).collect();
    let expected: BTreeSet<String> = [
        "POSTGRES_USER=app",
        "B=two words",
        "HOME=/root",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(lines, expected);
}

#[tokio::test]
async fn writes_to_a_volume_path_land_in_the_host_dir_and_nothing_else_leaks_to_the_host() {
    let pvc = tempfile::tempdir().expect("temp dir");
    assert!(
        !Path::new("/var/lib/kube-sim-exec-test").exists(),
        "test precondition: container path absent on host"
    );
    let server = Server::start(
        &[],
        vec![Mount {
            host: pvc.path().to_path_buf(),
            container: CONTAINER_DATA.into(),
            read_only: false,
        }],
        Some(CONTAINER_DATA),
    )
    .await;
    let collected = run(
        &server,
        &[
            "sh",
            "-c",
            "echo dump > /var/lib/kube-sim-exec-test/data/dump.sql && echo scratch > /kube-sim-exec-scratch && pwd && ls /proc/self/fd >/dev/null",
        ],
    )
    .await;
    assert_eq!(
        collected.exit_code(),
        Some(0),
        "{}",
        collected.stderr_text()
    );
    assert_eq!(collected.stdout_text(), format!("{CONTAINER_DATA}\n"));
    assert_eq!(
        std::fs::read_to_string(pvc.path().join("dump.sql")).expect("dump in the PVC dir"),
        "dump\n"
    );
    assert!(
        !Path::new("/kube-sim-exec-scratch").exists(),
        "scratch write leaked"
    );
    assert!(
        !Path::new("/var/lib/kube-sim-exec-test").exists(),
        "mountpoint leaked"
    );
}

#[tokio::test]
async fn host_files_are_visible_through_the_mount_and_read_only_mounts_refuse_writes() {
    let pvc = tempfile::tempdir().expect("temp dir");
    std::fs::write(pvc.path().join("seed.txt"), "seeded\n").expect("seed file");
    let server = Server::start(
        &[],
        vec![Mount {
            host: pvc.path().to_path_buf(),
            container: "/kube-sim-ro".into(),
            read_only: true,
        }],
        None,
    )
    .await;
    let collected = run(
        &server,
        &[
            "sh",
            "-c",
            "cat /kube-sim-ro/seed.txt; echo x > /kube-sim-ro/new",
        ],
    )
    .await;
    assert_eq!(collected.stdout_text(), "seeded\n");
    assert!(
        collected.stderr_text().contains("Read-only file system"),
        "{}",
        collected.stderr_text()
    );
    assert_ne!(collected.exit_code(), Some(0));
    assert!(!pvc.path().join("new").exists());
}

#[tokio::test]
async fn a_missing_host_dir_fails_the_exec_instead_of_running_unmapped() {
    let server = Server::start(
        &[],
        vec![Mount {
            host: "/nonexistent/kube-sim/pvc".into(),
            container: "/data".into(),
            read_only: false,
        }],
        None,
    )
    .await;
    let collected = run(&server, &["true"]).await;
    let status = collected.status.expect("a status");
    assert_eq!(status["reason"], "InternalError");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("/nonexistent/kube-sim/pvc"),
        "{status}"
    );
}

#[tokio::test]
async fn nested_and_single_file_mounts_are_mapped() {
    let data = tempfile::tempdir().expect("data dir");
    let dumps = tempfile::tempdir().expect("dumps dir");
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(config.path(), "max_connections=7\n").expect("write config");
    let server = Server::start(
        &[],
        vec![
            Mount {
                host: dumps.path().to_path_buf(),
                container: "/kube-sim-data/dumps".into(),
                read_only: false,
            },
            Mount {
                host: data.path().to_path_buf(),
                container: "/kube-sim-data".into(),
                read_only: false,
            },
            Mount {
                host: config.path().to_path_buf(),
                container: "/etc/kube-sim-exec-test.conf".into(),
                read_only: true,
            },
        ],
        None,
    )
    .await;
    let collected = run(
        &server,
        &[
            "sh",
            "-c",
            "cat /etc/kube-sim-exec-test.conf && echo a > /kube-sim-data/top && echo b > /kube-sim-data/dumps/inner",
        ],
    )
    .await;
    assert_eq!(
        collected.exit_code(),
        Some(0),
        "{}",
        collected.stderr_text()
    );
    assert_eq!(collected.stdout_text(), "max_connections=7\n");
    assert!(data.path().join("top").is_file());
    assert!(dumps.path().join("inner").is_file());
    assert!(!data.path().join("dumps").join("inner").exists());
    assert!(!Path::new("/etc/kube-sim-exec-test.conf").exists());
}

#[tokio::test]
async fn concurrent_sessions_each_see_only_their_own_volume_at_the_same_path() {
    let first = tempfile::tempdir().expect("first PVC");
    let second = tempfile::tempdir().expect("second PVC");
    let mount = |dir: &tempfile::TempDir| Mount {
        host: dir.path().to_path_buf(),
        container: CONTAINER_DATA.into(),
        read_only: false,
    };
    let server_a = Server::start(&[("WHO", "a")], vec![mount(&first)], None).await;
    let server_b = Server::start(&[("WHO", "b")], vec![mount(&second)], None).await;
    let script = [
        "sh",
        "-c",
        "sleep 0.3; echo $WHO > /var/lib/kube-sim-exec-test/data/who",
    ];
    let (a, b) = tokio::join!(run(&server_a, &script), run(&server_b, &script));
    assert_eq!(a.exit_code(), Some(0), "{}", a.stderr_text());
    assert_eq!(b.exit_code(), Some(0), "{}", b.stderr_text());
    assert_eq!(
        std::fs::read_to_string(first.path().join("who")).expect("a wrote"),
        "a\n"
    );
    assert_eq!(
        std::fs::read_to_string(second.path().join("who")).expect("b wrote"),
        "b\n"
    );
}

#[tokio::test]
async fn unix_sockets_under_run_reach_host_servers_such_as_the_local_database() {
    assert!(
        Path::new("/usr/bin/python3").is_file(),
        "this test connects with python3 inside the exec sandbox: install it with `apt-get install python3`"
    );
    let socket = Path::new("/run").join(format!("kube-sim-exec-test-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind a socket under /run");
    let server = Server::start(&[], vec![], None).await;
    let client_script = format!(
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect({:?}); s.sendall(b'hello db')",
        socket.display().to_string()
    );
    let accept = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut received = String::new();
        stream.read_to_string(&mut received).await.expect("read");
        received
    });
    let collected = run(&server, &["python3", "-c", &client_script]).await;
    let _ = std::fs::remove_file(&socket);
    assert_eq!(
        collected.exit_code(),
        Some(0),
        "{}",
        collected.stderr_text()
    );
    let received = tokio::time::timeout(std::time::Duration::from_secs(10), accept)
        .await
        .expect("the host server got the connection")
        .expect("accept task");
    assert_eq!(received, "hello db");
}

#[tokio::test]
async fn a_missing_working_dir_is_created_inside_the_container_only() {
    let server = Server::start(&[], vec![], Some("/kube-sim-exec-workdir/app")).await;
    let collected = run(&server, &["sh", "-c", "pwd; touch here"]).await;
    assert_eq!(
        collected.exit_code(),
        Some(0),
        "{}",
        collected.stderr_text()
    );
    assert_eq!(collected.stdout_text(), "/kube-sim-exec-workdir/app\n");
    assert!(
        !Path::new("/kube-sim-exec-workdir").exists(),
        "workdir leaked to the host"
    );
}
