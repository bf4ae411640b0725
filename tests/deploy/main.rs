//! Deploy-manifest fidelity: the three install paths (deploy/static, deploy/kustomize, charts/backup-ns) say what
//! the binary and the RBAC model expect, render the same objects, meet Pod Security "restricted", pass a server-side
//! dry run, and Helm installs, upgrades and uninstalls on kube-sim. RBAC is proven against kube-sim in `--rbac`
//! mode with minted service-account tokens, through the real `kubectl auth can-i`, real kubectl requests and the
//! real `backup-ns` binary, and as a mutation test of every shipped role (rbac_mutants.rs). Every install path runs
//! end to end on the shared stage (stage.rs: the CronJobs' pods run the built binary in-cluster on the simulated
//! clock): deploy/static over 30 nights, the kustomize overlay, helm install and upgrade, the original's `BAK_*`
//! ConfigMap, `adhoc --follow`, two tenants on one lock slot. The README's demo runs too. Helm comes from
//! scripts/install-helm.sh.

mod adhoc;
mod apply;
mod chart;
mod demo;
mod installs;
mod locks;
mod manifests;
mod original;
mod pod_security;
mod rbac;
mod rbac_model;
mod rbac_mutants;
mod schedules;
mod sources;
mod stage;
#[path = "../support/mod.rs"]
mod support;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// Every document of a multi-document YAML file.
pub fn docs(yaml: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple::<serde_json::Value>(yaml)
        .unwrap_or_else(|e| panic!("manifest is not valid YAML: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The one document of `kind` named `name`.
pub fn doc<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in the manifest"))
}

/// Runs the real backup-ns binary with a clean environment plus `env`.
pub fn backup_ns(args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_backup-ns"));
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("TZ", "UTC")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("backup-ns starts")
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The real kubectl; a missing one fails the test with how to install it.
pub fn kubectl_bin() -> PathBuf {
    for dir in ["/usr/local/bin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join("kubectl");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "kubectl is not installed: the RBAC tests need the real kubectl (install it with `apt-get install kubectl` \
         from the Kubernetes apt repository, or place the binary in /usr/local/bin)"
    );
}

/// Runs kubectl against `kubeconfig` (optionally as a service-account `token`), with stdin, bounded in time.
pub async fn kubectl(
    kubeconfig: &Path,
    home: &Path,
    token: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(kubectl_bin());
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(t) = token {
        cmd.arg("--token").arg(t);
    }
    let mut child = cmd.spawn().expect("kubectl starts");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl finished within 60s")
        .expect("kubectl output")
}
