//! A simulator with one running pod whose data volume is a PVC, plus a clean kubectl runner.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use kube_sim::Sim;

/// Container path of the pod's PVC mount (absent on the host, so mapping is observable).
pub const DATA: &str = "/var/lib/kube-sim-exec-kubectl/data";

const POD: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: app
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: app
stringData:
  password: s3cr3t
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: app
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: app
spec:
  containers:
  - name: postgres
    image: postgres:17
    env:
    - name: POSTGRES_USER
      value: app
    - name: POSTGRES_PASSWORD
      valueFrom:
        secretKeyRef:
          name: db
          key: password
    volumeMounts:
    - name: data
      mountPath: /var/lib/kube-sim-exec-kubectl/data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: data
status:
  phase: Running
  containerStatuses:
  - name: postgres
    ready: true
    state:
      running: {}
"#;

pub async fn sim_with_pod() -> Sim {
    sim_with_pod_rbac(false).await
}

pub async fn sim_with_pod_rbac(rbac: bool) -> Sim {
    let sim = Sim::builder()
        .rbac(rbac)
        .start()
        .await
        .expect("kube-sim starts");
    sim.apply_yaml(POD).expect("pod fixture applies");
    std::fs::create_dir_all(sim.pvc_dir("app", "data")).expect("PVC dir");
    sim
}

fn kubectl_bin() -> PathBuf {
    for dir in ["/usr/local/bin", "/usr/bin", "/bin"] {
        let path = Path::new(dir).join("kubectl");
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "kubectl is not installed: the exec fidelity tests need the real kubectl 1.32 (install it from the Kubernetes apt repository with `apt-get install kubectl`, or put the binary in /usr/local/bin)"
    );
}

/// Run kubectl against `sim` with a clean environment (no KUBECONFIG or ~/.kube leaks in).
pub async fn kubectl(sim: &Sim, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use tokio::io::AsyncWriteExt;
    let home = tempfile::tempdir().expect("temp HOME");
    let mut command = tokio::process::Command::new(kubectl_bin());
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home.path())
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("kubectl starts");
    let mut input = child.stdin.take().expect("stdin pipe");
    if let Some(bytes) = stdin {
        input.write_all(bytes).await.expect("write kubectl stdin");
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("kubectl finishes within 120 s")
        .expect("kubectl output")
}
