//! The kubelet: pods whose image `--run-image` maps really run, seen through the real kubectl: their environment
//! and volumes, the service-account projection (a kubectl inside the pod uses its in-cluster configuration and is
//! held to its ServiceAccount's RBAC), `logs -f`, exit codes in the status, deletion's SIGTERM then SIGKILL,
//! `activeDeadlineSeconds` on the simulated clock, and the simulated clock as the process's wall-clock time.

use std::path::Path;
use std::time::Duration;

use kube_sim::Sim;
use kube_sim::kubelet::FakeTime;
use serde_json::Value;

use super::{Kubectl, wait_for};

const START: &str = "2025-03-01T00:15:00Z";

/// RBAC mode (TLS, as in-cluster clients need), `tools` running host commands, the clock at [`START`].
async fn running_sim() -> Sim {
    let faketime = FakeTime::locate().unwrap_or_else(|message| panic!("{message}"));
    Sim::builder()
        .rbac(true)
        .clock(Some(START.parse().expect("time")))
        .run_image("tools=host".parse().expect("mapping"))
        .run_image(format!("shell:1={}", "/bin/sh").parse().expect("mapping"))
        .faketime(Some(faketime))
        .start()
        .await
        .expect("sim starts")
}

/// [`running_sim`] with [`SEED`] applied, and a kubectl for it.
pub(super) async fn seeded() -> (Sim, Kubectl) {
    let sim = running_sim().await;
    sim.apply_yaml(SEED).expect("seed");
    let k = Kubectl::new(&sim);
    (sim, k)
}

const SEED: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: runner, namespace: app}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-configmaps, namespace: app}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: runner, namespace: app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-configmaps}
subjects: [{kind: ServiceAccount, name: runner, namespace: app}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: plan, namespace: app}
data: {plan.yaml: "kind: plan\n", other: "not projected\n", MODE: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: app}
stringData: {password: s3cr3t}
"#;

pub(super) fn pod_phase(sim: &Sim, name: &str) -> String {
    sim.get("v1", "pods", Some("app"), name)
        .and_then(|p| {
            p.pointer("/status/phase")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_pod_runs_with_its_env_volumes_and_service_account_and_kubectl_logs_follows_it() {
    let (_sim, k) = seeded().await;
    let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: app, labels: {tier: batch}}
spec:
  serviceAccountName: runner
  restartPolicy: Never
  initContainers:
  - name: prepare
    image: shell:1
    args: ["-c", "echo prepared > /work/init-was-here"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: tools:latest
    command: ["sh", "-c"]
    args:
    - |
      set -e
      echo "pod=$POD ns=$NS mode=$MODE password=$PASSWORD cfg_mode=$CFG_MODE"
      echo "plan=$(cat /etc/plan/plan.yaml) listed=$(ls /etc/plan | tr '\n' ' ')"
      echo "tier=$(cat /etc/podinfo/tier) init=$(cat /work/init-was-here) pwd=$(pwd)"
      echo "sa-ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)"
      echo "today=$(date -u +%Y-%m-%dT%H:%M)"
      kubectl get configmap plan -o jsonpath='{.metadata.name}'; echo
      kubectl get secrets 2>&1 || true
      echo done >&2
    workingDir: /work
    env:
    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: MODE, valueFrom: {configMapKeyRef: {name: plan, key: MODE}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
    envFrom: [{configMapRef: {name: plan}, prefix: CFG_}]
    volumeMounts:
    - {name: plan, mountPath: /etc/plan, readOnly: true}
    - {name: podinfo, mountPath: /etc/podinfo}
    - {name: work, mountPath: /work}
  volumes:
  - name: plan
    configMap: {name: plan, items: [{key: plan.yaml, path: plan.yaml}]}
  - name: podinfo
    downwardAPI: {items: [{path: tier, fieldRef: {fieldPath: "metadata.labels['tier']"}}]}
  - {name: work, emptyDir: {}}
"#;
    k.run_stdin(&["apply", "-f", "-"], Some(pod)).await;
    let out = k
        .ok(&[
            "-n",
            "app",
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "pod/probe",
            "--timeout=60s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
    let logs = k.ok(&["-n", "app", "logs", "probe"]).await;
    for line in [
        "pod=probe ns=app mode=fast password=s3cr3t cfg_mode=fast",
        "plan=kind: plan listed=plan.yaml ",
        "tier=batch init=prepared pwd=/work",
        "sa-ns=app",
        "today=2025-03-01T00:1",
        "\nplan\n",
        "User \"system:serviceaccount:app:runner\" cannot list resource \"secrets\"",
        "done",
    ] {
        assert!(
            logs.contains(line),
            "{line:?} missing from the pod's logs:\n{logs}"
        );
    }
    let status = k.json(&["-n", "app", "get", "pod", "probe"]).await;
    let main = &status["status"]["containerStatuses"][0];
    assert_eq!(main["state"]["terminated"]["exitCode"], 0, "{status:#}");
    assert_eq!(main["state"]["terminated"]["reason"], "Completed");
    assert_eq!(
        status["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_fail_the_pod_and_logs_follow_until_the_process_ends() {
    let (sim, k) = seeded().await;
    let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: failing, namespace: app}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: tools
    command: ["sh", "-c", "echo first; sleep 1; echo second; exit 3"]
"#;
    k.run_stdin(&["apply", "-f", "-"], Some(pod)).await;
    wait_for(|| pod_phase(&sim, "failing") == "Running").await;
    let followed = k.run(&["-n", "app", "logs", "-f", "failing"]).await;
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "first\nsecond\n");
    k.ok(&[
        "-n",
        "app",
        "wait",
        "--for=jsonpath={.status.phase}=Failed",
        "pod/failing",
        "--timeout=30s",
    ])
    .await;
    let status = k.json(&["-n", "app", "get", "pod", "failing"]).await;
    let terminated = &status["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (
            terminated["exitCode"].as_i64(),
            terminated["reason"].as_str()
        ),
        (Some(3), Some("Error"))
    );

    // A program that cannot start is a container that failed to start, not a hang.
    let missing = pod.replace("name: failing", "name: missing").replace(
        "[\"sh\", \"-c\", \"echo first; sleep 1; echo second; exit 3\"]",
        "[\"kube-sim-no-such-tool\"]",
    );
    k.run_stdin(&["apply", "-f", "-"], Some(&missing)).await;
    k.ok(&[
        "-n",
        "app",
        "wait",
        "--for=jsonpath={.status.phase}=Failed",
        "pod/missing",
        "--timeout=30s",
    ])
    .await;
    let status = k.json(&["-n", "app", "get", "pod", "missing"]).await;
    let terminated = &status["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["reason"], "StartError", "{status:#}");
    assert!(
        terminated["message"]
            .as_str()
            .unwrap_or_default()
            .contains("kube-sim-no-such-tool")
    );
}

fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
        && !std::fs::read_to_string(Path::new("/proc").join(pid).join("stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_sends_sigterm_then_sigkill_and_the_active_deadline_fails_the_pod() {
    let (sim, k) = seeded().await;
    let host = tempfile::tempdir().expect("host dir");
    let pod = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: stubborn, namespace: app}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: tools
    command: ["sh", "-c", "trap 'echo term > /out/term' TERM; echo $$ > /out/pid; while :; do sleep 0.1; done"]
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes: [{{name: out, hostPath: {{path: {}}}}}]
"#,
        host.path().display()
    );
    k.run_stdin(&["apply", "-f", "-"], Some(&pod)).await;
    let pid_file = host.path().join("pid");
    wait_for(|| pid_file.exists()).await;
    let pid = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .to_string();
    assert!(alive(&pid));
    k.ok(&["-n", "app", "delete", "pod", "stubborn", "--wait=false"])
        .await;
    wait_for(|| host.path().join("term").exists()).await;
    // The shell traps SIGTERM and keeps going: only SIGKILL, after the 2 s grace period, ends it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(alive(&pid), "SIGKILL came before the grace period ended");
    wait_for(|| !alive(&pid)).await;

    let deadline = r#"
apiVersion: v1
kind: Pod
metadata: {name: slow, namespace: app}
spec:
  restartPolicy: Never
  activeDeadlineSeconds: 600
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: tools, command: ["sleep", "3600"]}]
"#;
    k.run_stdin(&["apply", "-f", "-"], Some(deadline)).await;
    wait_for(|| pod_phase(&sim, "slow") == "Running").await;
    sim.clock().advance(Duration::from_secs(601));
    k.ok(&[
        "-n",
        "app",
        "wait",
        "--for=jsonpath={.status.phase}=Failed",
        "pod/slow",
        "--timeout=30s",
    ])
    .await;
    let status = k.json(&["-n", "app", "get", "pod", "slow"]).await;
    assert_eq!(status["status"]["reason"], "DeadlineExceeded", "{status:#}");
    assert_eq!(
        status["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        143
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_images_and_host_images_without_a_command_keep_running_without_a_process() {
    let (_sim, k) = seeded().await;
    let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: idle, namespace: app}
spec:
  containers:
  - {name: db, image: postgres:17}
  - {name: tools, image: tools}
"#;
    k.run_stdin(&["apply", "-f", "-"], Some(pod)).await;
    k.ok(&[
        "-n",
        "app",
        "wait",
        "--for=condition=Ready",
        "pod/idle",
        "--timeout=30s",
    ])
    .await;
    let status = k.json(&["-n", "app", "get", "pod", "idle"]).await;
    assert_eq!(status["status"]["phase"], "Running");
    assert!(status["status"]["containerStatuses"][1]["state"]["running"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_command_runs_mapped_images_and_refuses_a_bad_mapping() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args(["serve", "--kubeconfig"])
        .arg(dir.path().join("kc"))
        .args(["--run-image", "backup-ns"])
        .output()
        .await
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("expected IMAGE=PROGRAM"), "{err}");

    let seed = dir.path().join("seed.yaml");
    std::fs::write(
        &seed,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n---\napiVersion: v1\nkind: Pod\n\
         metadata: {name: clock, namespace: app}\nspec:\n  restartPolicy: Never\n  containers:\n  \
         - {name: main, image: \"tools:1\", command: [date, -u, \"+%Y-%m-%d %H:%M\"]}\n",
    )
    .expect("seed");
    let kubeconfig = dir.path().join("kc");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args([
            "serve",
            "--rbac",
            "--clock",
            "2031-07-04T12:00:00Z",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .arg("--apply")
        .arg(&seed)
        .args(["--run-image", "tools=host"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kube-sim starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("ready in time")
        .expect("read");
    assert!(ready.is_some_and(|l| l.starts_with("kube-sim ready https://")));
    let k = Kubectl {
        kubeconfig,
        home: tempfile::tempdir().expect("home"),
    };
    k.ok(&[
        "-n",
        "app",
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/clock",
        "--timeout=30s",
    ])
    .await;
    assert_eq!(
        k.ok(&["-n", "app", "logs", "clock"]).await,
        "2031-07-04 12:00\n"
    );
}
