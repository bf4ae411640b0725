//! The shipped manifests on the real apiserver: every render (deploy/static, the kustomize bases and overlay, the
//! Helm values matrix of the deploy tests) passes `kubectl apply --server-side --dry-run=server` and a real
//! server-side apply into namespaces that enforce Pod Security "restricted", where the real PodSecurity admission
//! finds nothing but the documented lock exception. The real Job controller then creates a lock-off CronJob's pod
//! under "restricted" and is refused one with the lock. Helm installs, upgrades and uninstalls on the real apiserver.

use crate::cluster::{RealCluster, eventually, repo, text};
use crate::tools::{
    CHART, KUSTOMIZE_DIRS, MATRIX, STATIC_FILES, helm_cmd, helm_template_text, kustomize_text,
};
use serde_json::Value;
use std::process::Output;

/// The namespaces the renders target, as a cluster admin has them before installing: enforcing "restricted", and
/// warning about it, because PodSecurity checks a CronJob's or Deployment's pod template only in `warn`/`audit`.
const NAMESPACES: &[&str] = &["my-app", "shop", "backup-ns-system"];

fn restricted_namespace(cluster: &RealCluster, ns: &str) {
    cluster.kubectl_with_stdin(
        &["apply", "--server-side", "-f", "-"],
        &format!(
            "apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/warn: restricted
"
        ),
    );
}

/// The PodSecurity violations the apiserver warned about, one per entry, without the lock exception's (the
/// `host-backup-locks` hostPath volume and its root `lock-permission-fixer`, README "Pod Security").
fn violations_beyond_the_lock(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split_once("would violate PodSecurity \"restricted:latest\": "))
        .flat_map(|(_, list)| list.split("), ").map(str::to_owned).collect::<Vec<_>>())
        .filter(|v| {
            !v.contains("\"host-backup-locks\"") && !v.contains("\"lock-permission-fixer\"")
        })
        .collect()
}

fn apply(cluster: &RealCluster, name: &str, yaml: &str, dry_run: bool) -> Output {
    let mut args = vec!["apply", "--server-side", "-f", "-"];
    if dry_run {
        args.push("--dry-run=server");
    }
    let out = cluster.kubectl_output(&args, yaml);
    assert!(
        out.status.success(),
        "{name} (dry run: {dry_run}): {}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let suffix = if dry_run {
        "serverside-applied (server dry run)"
    } else {
        "serverside-applied"
    };
    assert!(
        stdout.lines().filter(|l| l.ends_with(suffix)).count() > 0,
        "{name}: kubectl applied nothing: {}",
        text(&out)
    );
    let beyond = violations_beyond_the_lock(&String::from_utf8_lossy(&out.stderr));
    assert!(
        beyond.is_empty(),
        "{name}: PodSecurity \"restricted\": {beyond:?}"
    );
    out
}

#[test]
fn every_render_is_applied_server_side_into_namespaces_that_enforce_restricted() {
    let cluster = RealCluster::shared();
    let _lock = RealCluster::cluster_scoped_lock();
    for ns in NAMESPACES {
        restricted_namespace(cluster, ns);
    }
    let mut renders: Vec<(String, String)> = Vec::new();
    for file in STATIC_FILES {
        let yaml = std::fs::read_to_string(repo().join(file)).expect("reading a static manifest");
        renders.push(((*file).to_owned(), yaml));
    }
    for dir in KUSTOMIZE_DIRS {
        renders.push(((*dir).to_owned(), kustomize_text(dir)));
    }
    for values in MATRIX {
        renders.push((
            format!("helm template ({})", values.name),
            helm_template_text("backup-ns", "my-app", values.args),
        ));
    }
    for (name, yaml) in &renders {
        apply(cluster, name, yaml, true);
    }
    // The dry runs stored nothing: the tenant CronJob of the static manifest is not there yet.
    let absent = cluster.kubectl_output(&["-n", "my-app", "get", "cronjob", "backup"], "");
    assert!(
        !absent.status.success(),
        "a dry run stored it: {}",
        text(&absent)
    );
    for (name, yaml) in &renders {
        apply(cluster, name, yaml, false);
    }
    cluster.suspend_cronjobs();

    // The real Job controller makes pods from the CronJobs; admission enforces "restricted" on them. The last
    // render (Helm, lock off) left `backup-ns` without the lock; the static `backup` keeps it and is refused.
    let lock_off: Value = cluster.get_json(&["-n", "my-app", "cronjob", "backup-ns"]);
    assert!(
        !lock_off.to_string().contains("host-backup-locks"),
        "the last render applied is the lock-off one"
    );
    cluster.kubectl(&[
        "-n",
        "my-app",
        "create",
        "job",
        "lock-off",
        "--from=cronjob/backup-ns",
    ]);
    cluster.kubectl(&[
        "-n",
        "my-app",
        "create",
        "job",
        "lock-on",
        "--from=cronjob/backup",
    ]);
    // Admitted, scheduled onto the node agent, and run there: backup-ns in the pod, with its in-cluster
    // configuration, as the chart's ServiceAccount.
    let pod = finished_job_pod(cluster, "my-app", "lock-off");
    assert_eq!(pod["spec"]["nodeName"], "backup-ns-node", "{pod:#}");
    // This namespace holds no claim and no app, so the plan's preflight fails; what matters is that it got that
    // far: the plan read from the mounted ConfigMap, the apiserver reached with the projected token, and the
    // answers (not found, rather than 401 or 403) given to the ServiceAccount.
    let logs = cluster.kubectl(&["-n", "my-app", "logs", "job/lock-off"]);
    assert_eq!(
        pod.pointer("/status/containerStatuses/0/state/terminated/exitCode"),
        Some(&Value::from(1)),
        "{logs}"
    );
    assert!(
        logs.contains("backup of plan app FAILED")
            && logs.contains("PersistentVolumeClaim my-app/data does not exist"),
        "{logs}"
    );
    assert!(
        !logs.contains("forbidden") && !logs.contains("Unauthorized"),
        "{logs}"
    );
    let refusal = eventually("the lock-on job's pod is refused", || {
        let events = cluster.get_json(&[
            "-n",
            "my-app",
            "events",
            "--field-selector",
            "involvedObject.name=lock-on,reason=FailedCreate",
        ]);
        events["items"]
            .as_array()
            .and_then(|e| e.first())
            .and_then(|e| e["message"].as_str().map(str::to_owned))
    });
    assert!(
        refusal.contains("violates PodSecurity \"restricted:latest\"")
            && refusal.contains("host-backup-locks"),
        "{refusal}"
    );
    let none = cluster.get_json(&["-n", "my-app", "pods", "-l", "job-name=lock-on"]);
    assert_eq!(none["items"], serde_json::json!([]));

    a_scheduled_job_ends_in_a_ready_labelled_snapshot(cluster);
}

/// The lock-off CronJob once its namespace has what the plan names: the claim `data`, and the plan edited in its
/// ConfigMap (the README's "edit plan.yaml") to a snapshot-only one, because no app runs behind the shipped plan's
/// postgres hook here (tests/real_cluster/pods.rs dumps a real PostgreSQL through exec). A job created from the
/// CronJob is run by the real Job controller and scheduler on the node agent, and backup-ns in its pod, as the
/// tenant ServiceAccount under "restricted", cuts a snapshot that the real snapshot controller makes ready.
fn a_scheduled_job_ends_in_a_ready_labelled_snapshot(cluster: &RealCluster) {
    let ns = "my-app";
    cluster.apply(&crate::cluster::claim(ns, "data", None));
    cluster.wait_for(ns, "pvc/data", "{.status.phase}", "Bound");
    let cronjob = cluster.get_json(&["-n", ns, "cronjob", "backup-ns"]);
    let config_map = cronjob
        .pointer("/spec/jobTemplate/spec/template/spec/volumes")
        .and_then(Value::as_array)
        .and_then(|volumes| {
            volumes
                .iter()
                .find_map(|v| v.pointer("/configMap/name").and_then(Value::as_str))
        })
        .expect("the CronJob mounts its plan from a ConfigMap")
        .to_owned();
    let plan = "name: app\ntargets: [data]\nsnapshot:\n  type: cronjob\nretention: standard\nlock:\n  enabled: false\n";
    cluster.kubectl(&[
        "-n",
        ns,
        "patch",
        "configmap",
        &config_map,
        "--type",
        "merge",
        "-p",
        &serde_json::json!({"data": {"plan.yaml": plan}}).to_string(),
    ]);
    cluster.kubectl(&[
        "-n",
        ns,
        "create",
        "job",
        "scheduled",
        "--from=cronjob/backup-ns",
    ]);
    let pod = finished_job_pod(cluster, ns, "scheduled");
    let logs = cluster.kubectl(&["-n", ns, "logs", "job/scheduled"]);
    assert_eq!(
        pod.pointer("/status/containerStatuses/0/state/terminated/exitCode"),
        Some(&Value::from(0)),
        "{logs}"
    );
    let names = cluster.snapshot_names(ns);
    assert_eq!(names.len(), 1, "one snapshot of data: {names:?}\n{logs}");
    let snapshot = &names[0];
    cluster.wait_for(
        ns,
        &format!("volumesnapshot/{snapshot}"),
        "{.status.readyToUse}",
        "true",
    );
    let object = cluster.get_json(&["-n", ns, "volumesnapshot", snapshot]);
    let labels = &object["metadata"]["labels"];
    assert_eq!(labels["backup-ns.sh/pvc"], "data", "{object:#}");
    assert_eq!(labels["backup-ns.sh/type"], "cronjob", "{object:#}");
    assert!(labels["backup-ns.sh/daily"].is_string(), "{object:#}");
    // The pod ran as the tenant's ServiceAccount, and the driver holds the snapshot's data.
    assert_eq!(pod["spec"]["serviceAccountName"], "backup-ns", "{pod:#}");
    let (_, handle) = cluster.content_of(ns, snapshot);
    assert!(
        cluster.snapshot_file(&handle).exists(),
        "the driver's snapshot {handle}"
    );
}

/// The first pod of job `job` in `ns`, once its container has terminated.
fn finished_job_pod(cluster: &RealCluster, ns: &str, job: &str) -> Value {
    eventually(&format!("job {job}'s pod runs to its end"), || {
        let pods = cluster.get_json(&["-n", ns, "pods", "-l", &format!("job-name={job}")]);
        pods["items"]
            .as_array()
            .and_then(|p| p.first().cloned())
            .filter(|p| {
                p.pointer("/status/containerStatuses/0/state/terminated")
                    .is_some()
            })
    })
}

/// Helm with the admin kubeconfig, its state in `home`.
fn helm(cluster: &RealCluster, home: &std::path::Path, args: &[&str]) -> Output {
    helm_cmd(home)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args)
        .output()
        .expect("helm starts")
}

/// (revision, status) of each release Secret Helm keeps for `release` in `ns`, sorted.
fn release_history(cluster: &RealCluster, ns: &str, release: &str) -> Vec<(String, String)> {
    let secrets = cluster.get_json(&[
        "-n",
        ns,
        "secrets",
        "-l",
        &format!("owner=helm,name={release}"),
    ]);
    let mut history: Vec<(String, String)> = secrets["items"]
        .as_array()
        .expect("a Secret list")
        .iter()
        .map(|s| {
            let l = &s["metadata"]["labels"];
            (
                l["version"].as_str().unwrap_or_default().to_owned(),
                l["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    history.sort();
    history
}

fn exists(cluster: &RealCluster, ns: Option<&str>, object: &str) -> bool {
    let mut args = vec!["get", object];
    if let Some(ns) = ns {
        args.extend_from_slice(&["-n", ns]);
    }
    cluster.kubectl_output(&args, "").status.success()
}

#[test]
fn helm_installs_upgrades_and_uninstalls_on_the_real_apiserver() {
    let cluster = RealCluster::shared();
    let _lock = RealCluster::cluster_scoped_lock();
    let home = tempfile::tempdir().expect("temp HOME");
    // The static manifests' cluster-scoped objects carry the same names and no Helm ownership; as on a cluster
    // moving to Helm, they go first (other tests apply them again under the same lock).
    cluster.kubectl(&[
        "delete",
        "--ignore-not-found",
        "clusterrole/backup-ns-controller",
        "clusterrole/backup-ns-cluster-read",
        "clusterrole/backup-ns-exporter",
        "clusterrolebinding/backup-ns-controller",
        "clusterrolebinding/backup-ns-exporter",
    ]);

    let controller = helm(
        cluster,
        home.path(),
        &[
            "install",
            "backup-ns-controller",
            CHART,
            "-n",
            "backup-ns-ctl",
            "--create-namespace",
            "--set",
            "controller.enabled=true",
            "--set",
            "backup.enabled=false",
        ],
    );
    assert!(
        controller.status.success(),
        "helm install controller: {}",
        text(&controller)
    );
    for object in [
        "cronjob/backup-ns-controller",
        "deployment/backup-ns-exporter",
        "service/backup-ns-exporter",
    ] {
        assert!(
            exists(cluster, Some("backup-ns-ctl"), object),
            "{object} installed"
        );
    }
    assert!(exists(cluster, None, "clusterrole/backup-ns-controller"));

    let ns = "helm-app";
    restricted_namespace(cluster, ns);
    let install = helm(
        cluster,
        home.path(),
        &[
            "install",
            "backup-ns",
            CHART,
            "-n",
            ns,
            "--set",
            "lock.enabled=false",
        ],
    );
    assert!(install.status.success(), "helm install: {}", text(&install));
    cluster.suspend_cronjobs();
    let beyond = violations_beyond_the_lock(&String::from_utf8_lossy(&install.stderr));
    assert!(beyond.is_empty(), "{beyond:?}");
    assert!(
        !String::from_utf8_lossy(&install.stderr).contains("violate PodSecurity"),
        "lock off meets \"restricted\" outright: {}",
        text(&install)
    );
    let cronjob = cluster.get_json(&["-n", ns, "cronjob", "backup-ns"]);
    assert_eq!(
        cronjob["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    assert_eq!(
        release_history(cluster, ns, "backup-ns"),
        [("1".into(), "deployed".into())]
    );

    let plan = home.path().join("shop-plan.yaml");
    std::fs::copy(
        repo().join("deploy/kustomize/example-tenant/plan.yaml"),
        &plan,
    )
    .expect("plan");
    let upgrade = helm(
        cluster,
        home.path(),
        &[
            "upgrade",
            "backup-ns",
            CHART,
            "-n",
            ns,
            "--reuse-values",
            "--set-file",
            &format!("plan={}", plan.display()),
        ],
    );
    assert!(upgrade.status.success(), "helm upgrade: {}", text(&upgrade));
    cluster.suspend_cronjobs();
    let plan_text = cluster.kubectl(&[
        "-n",
        ns,
        "get",
        "configmap",
        "backup-ns-plan",
        "-o",
        "jsonpath={.data.plan\\.yaml}",
    ]);
    assert!(
        plan_text.contains("workload: statefulset/shop-db"),
        "{plan_text}"
    );
    assert_eq!(
        release_history(cluster, ns, "backup-ns"),
        [
            ("1".into(), "superseded".into()),
            ("2".into(), "deployed".into())
        ]
    );

    let uninstall = helm(cluster, home.path(), &["uninstall", "backup-ns", "-n", ns]);
    assert!(
        uninstall.status.success(),
        "helm uninstall: {}",
        text(&uninstall)
    );
    for object in [
        "cronjob/backup-ns",
        "configmap/backup-ns-plan",
        "serviceaccount/backup-ns",
        "role/backup-ns",
        "rolebinding/backup-ns",
    ] {
        assert!(!exists(cluster, Some(ns), object), "{object} left behind");
    }
    assert!(!exists(
        cluster,
        None,
        &format!("clusterrolebinding/backup-ns-cluster-read-{ns}")
    ));
    assert_eq!(release_history(cluster, ns, "backup-ns"), []);
    assert!(
        exists(
            cluster,
            Some("backup-ns-ctl"),
            "cronjob/backup-ns-controller"
        ),
        "the controller release stays"
    );

    let uninstall = helm(
        cluster,
        home.path(),
        &["uninstall", "backup-ns-controller", "-n", "backup-ns-ctl"],
    );
    assert!(
        uninstall.status.success(),
        "helm uninstall controller: {}",
        text(&uninstall)
    );
    assert!(!exists(cluster, None, "clusterrole/backup-ns-controller"));
}
