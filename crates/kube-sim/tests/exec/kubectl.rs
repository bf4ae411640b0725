//! The real kubectl 1.32 (WebSocket v5 exec, SPDY fallback on upgrade failure) against kube-sim.

use std::io::{Read, Write};

use crate::cluster::{DATA, kubectl, sim_with_pod};
use crate::support::peak_rss_kib;
use kube_sim::{Fault, PodPhase};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn kubectl_exec_returns_exit_code_3_and_both_streams() {
    let sim = sim_with_pod().await;
    let out = kubectl(
        &sim,
        &[
            "exec",
            "-n",
            "app",
            "db-0",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    assert!(
        text(&out.stderr).starts_with("err\n"),
        "{}",
        text(&out.stderr)
    );
    assert!(sim.requests().count("create", "pods/exec") >= 1);
}

#[tokio::test]
async fn kubectl_exec_i_feeds_stdin_and_the_container_env_is_there() {
    let sim = sim_with_pod().await;
    let out = kubectl(
        &sim,
        &[
            "exec",
            "-i",
            "-n",
            "app",
            "db-0",
            "-c",
            "postgres",
            "--",
            "sh",
            "-c",
            "cat; echo \"$POSTGRES_USER:$POSTGRES_PASSWORD\"",
        ],
        Some(b"from stdin\n"),
    )
    .await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from stdin\napp:s3cr3t\n");
}

#[tokio::test]
async fn kubectl_exec_writes_land_in_the_pvc_directory() {
    let sim = sim_with_pod().await;
    let out = kubectl(
        &sim,
        &[
            "exec",
            "-n",
            "app",
            "db-0",
            "--",
            "sh",
            "-c",
            &format!("echo dumped | gzip -c > {DATA}/dump.sql.gz"),
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let gz =
        std::fs::read(sim.pvc_dir("app", "data").join("dump.sql.gz")).expect("dump in PVC dir");
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "a gzip file");
}

#[tokio::test]
async fn kubectl_cp_copies_100_mib_out_of_a_pod_byte_identical() {
    let sim = sim_with_pod().await;
    let source = sim.pvc_dir("app", "data").join("big.bin");
    {
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(&source).expect("create big file"));
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut block = vec![0u8; 1024 * 1024];
        for _ in 0..100 {
            for byte in &mut block {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            file.write_all(&block).expect("write block");
        }
        file.flush().expect("flush");
    }
    let target_dir = tempfile::tempdir().expect("target dir");
    let target = target_dir.path().join("big.bin");
    let before = peak_rss_kib();
    let out = kubectl(
        &sim,
        &[
            "cp",
            &format!("app/db-0:{DATA}/big.bin"),
            target.to_str().expect("utf-8 temp path"),
        ],
        None,
    )
    .await;
    let after = peak_rss_kib();
    println!(
        "kubectl cp 100 MiB: kube-sim process peak RSS {before} KiB -> {after} KiB (growth {} KiB)",
        after.saturating_sub(before)
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(files_identical(&source, &target), "copied file differs");
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "kube-sim grew by {} KiB while streaming 100 MiB",
        after.saturating_sub(before)
    );
}

fn files_identical(a: &std::path::Path, b: &std::path::Path) -> bool {
    let (Ok(mut a), Ok(mut b)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut buf_a, mut buf_b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut buf_a).expect("read a");
        if n == 0 {
            return b.read(&mut buf_b).expect("read b") == 0;
        }
        if b.read_exact(&mut buf_b[..n]).is_err() || buf_a[..n] != buf_b[..n] {
            return false;
        }
    }
}

#[tokio::test]
async fn an_injected_exec_fault_fails_kubectl_exec_with_its_message() {
    let sim = sim_with_pod().await;
    sim.faults().add(Fault::exec_fail("disk on fire"));
    let out = kubectl(&sim, &["exec", "-n", "app", "db-0", "--", "true"], None).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("disk on fire"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn exec_into_a_pending_pod_or_unknown_container_is_refused_with_the_kubelet_wording() {
    let sim = sim_with_pod().await;
    let out = kubectl(
        &sim,
        &["exec", "-n", "app", "db-0", "-c", "mysql", "--", "true"],
        None,
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("container mysql is not valid for pod db-0"),
        "{}",
        text(&out.stderr)
    );
    sim.set_pod_phase("app", "db-0", PodPhase::Pending)
        .expect("pod goes pending");
    let out = kubectl(&sim, &["exec", "-n", "app", "db-0", "--", "true"], None).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unable to upgrade connection"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn kubectl_cp_copies_a_file_into_a_pod_through_stdin() {
    let sim = sim_with_pod().await;
    let source_dir = tempfile::tempdir().expect("source dir");
    let source = source_dir.path().join("upload.bin");
    // Written in 1 MiB blocks: the memory tests in this binary share one peak-RSS figure.
    {
        let mut file = std::fs::File::create(&source).expect("create upload");
        let block: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 253) as u8).collect();
        for _ in 0..20 {
            file.write_all(&block).expect("write upload");
        }
    }
    let out = kubectl(
        &sim,
        &[
            "cp",
            source.to_str().expect("utf-8 temp path"),
            &format!("app/db-0:{DATA}/upload.bin"),
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let landed = sim.pvc_dir("app", "data").join("upload.bin");
    assert!(files_identical(&source, &landed), "uploaded file differs");
}

const EXEC_ROLES: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: backup, namespace: app}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: viewer, namespace: app}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: backup, namespace: app}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [get, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: viewer, namespace: app}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
- {apiGroups: [""], resources: [pods/exec], verbs: [create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: backup, namespace: app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: backup}
subjects: [{kind: ServiceAccount, name: backup, namespace: app}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: viewer, namespace: app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: viewer}
subjects: [{kind: ServiceAccount, name: viewer, namespace: app}]
"#;

/// A WebSocket exec is authorized as `get` and as `create` on pods/exec, as the real 1.36 apiserver does
/// (tests/real_cluster/rbac_mutants.rs found it): `create` alone is refused.
#[tokio::test]
async fn under_rbac_exec_needs_get_and_create_on_pods_exec() {
    let sim = crate::cluster::sim_with_pod_rbac(true).await;
    sim.apply_yaml(EXEC_ROLES).expect("roles apply");
    let backup = sim.token_for("app", "backup");
    let viewer = sim.token_for("app", "viewer");
    let allowed = kubectl(
        &sim,
        &[
            "exec", "-n", "app", "db-0", "--token", &backup, "--", "echo", "allowed",
        ],
        None,
    )
    .await;
    assert!(
        allowed.status.success(),
        "stderr: {}",
        text(&allowed.stderr)
    );
    assert_eq!(text(&allowed.stdout), "allowed\n");
    let refused = kubectl(
        &sim,
        &[
            "exec", "-n", "app", "db-0", "--token", &viewer, "--", "echo", "refused",
        ],
        None,
    )
    .await;
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains(
            "User \"system:serviceaccount:app:viewer\" cannot get resource \"pods/exec\" in API group \"\" in the namespace \"app\""
        ),
        "{}",
        text(&refused.stderr)
    );
    assert!(refused.stdout.is_empty());
}

#[tokio::test]
async fn kubectl_exec_it_gets_a_terminal_with_the_callers_size() {
    assert!(
        std::path::Path::new("/usr/bin/script").is_file(),
        "this test gives kubectl a terminal with script(1): install it with `apt-get install bsdutils`"
    );
    let sim = sim_with_pod().await;
    let home = tempfile::tempdir().expect("temp HOME");
    // kubectl sends the size right after the streams open, racing the process start (as on a real
    // node), so the command waits until the resize has landed.
    let inner = format!(
        "stty cols 77 rows 33; kubectl --kubeconfig {} exec -it -n app db-0 -- sh -c 'while [ \"$(stty size)\" = \"0 0\" ]; do sleep 0.1; done; stty size; test -t 1 && echo on-a-tty; exit 4'",
        sim.kubeconfig_path().display()
    );
    let mut child = tokio::process::Command::new("/usr/bin/script")
        .args(["-qec", &inner, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home.path())
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script starts");
    // Keep stdin open (script would forward an EOF into the terminal) until kubectl is done.
    let stdin = child.stdin.take();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl -it finishes within 60 s")
        .expect("script output");
    drop(stdin);
    let output = text(&out.stdout);
    assert!(output.contains("33 77"), "{output:?}");
    assert!(output.contains("on-a-tty"), "{output:?}");
    assert_eq!(
        out.status.code(),
        Some(4),
        "{output:?} {}",
        text(&out.stderr)
    );
}
