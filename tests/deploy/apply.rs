//! The renders against an API server: `kubectl apply --dry-run=server` of every static file, kustomize build and
//! Helm values combination, and a real Helm release lifecycle (install, upgrade changing the plan, uninstall) on
//! kube-sim, also for a release whose values file was written for the original chart. Helm keeps each release
//! revision in a Secret labelled `owner=helm`; the tests read them back.

use super::tools::{
    KUSTOMIZE_DIRS, MATRIX, STATIC_FILES, helm_cmd, helm_template_text, kustomize_text,
};
use super::{kubectl, read, text};
use kube_sim::Sim;
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// The namespaces the renders target, as a cluster admin has them before installing.
const NAMESPACES: &[&str] = &["my-app", "shop", "backup-ns-system"];

async fn start() -> (Sim, tempfile::TempDir) {
    let sim = Sim::builder()
        .snapshot_delay(Duration::ZERO)
        .start()
        .await
        .expect("kube-sim starts");
    for ns in NAMESPACES {
        sim.apply_yaml(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        ))
        .expect("namespace");
    }
    (sim, tempfile::tempdir().expect("temp HOME"))
}

/// Helm against the simulator, without blocking the runtime that serves it.
pub(super) async fn helm_on(sim: &Sim, home: &Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::from(helm_cmd(home));
    cmd.arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .args(args)
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("helm finished within 120s")
        .expect("helm starts")
}

/// The object kinds a render creates, for the "nothing was stored" check.
const STORED: &[&str] = &[
    "cronjobs",
    "configmaps",
    "serviceaccounts",
    "deployments",
    "services",
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_render_passes_a_server_side_dry_run_and_stores_nothing() {
    let (sim, home) = start().await;
    let mut renders: Vec<(String, String)> = Vec::new();
    for file in STATIC_FILES {
        renders.push(((*file).to_owned(), read(file)));
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
        let out = kubectl(
            sim.kubeconfig_path(),
            home.path(),
            None,
            &["apply", "--dry-run=server", "-f", "-"],
            Some(yaml),
        )
        .await;
        assert!(out.status.success(), "{name}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let objects = stdout
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert!(
            objects > 0,
            "{name}: kubectl applied nothing: {}",
            text(&out)
        );
    }
    for plural in STORED {
        assert!(
            sim.list(plural, None).is_empty(),
            "a dry run stored {plural}: {:?}",
            sim.list(plural, None)
        );
    }
}

fn release_secrets(sim: &Sim, ns: &str, release: &str) -> Vec<Value> {
    sim.list("secrets", Some(ns))
        .into_iter()
        .filter(|s| {
            s["metadata"]["labels"]["owner"] == "helm" && s["metadata"]["labels"]["name"] == release
        })
        .collect()
}

fn status_of(secrets: &[Value], version: &str) -> String {
    secrets
        .iter()
        .find(|s| s["metadata"]["labels"]["version"] == version)
        .unwrap_or_else(|| panic!("no release Secret for revision {version}: {secrets:?}"))["metadata"]["labels"]
        ["status"]
        .as_str()
        .expect("status label")
        .to_owned()
}

fn plan_text(sim: &Sim) -> String {
    sim.get("v1", "configmaps", Some("my-app"), "backup-ns-plan")
        .expect("the plan ConfigMap exists")["data"]["plan.yaml"]
        .as_str()
        .expect("plan.yaml")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_with_a_new_plan_and_uninstalls_on_kube_sim() {
    let (sim, home) = start().await;
    let chart = super::tools::CHART;

    // The cluster part first, into a namespace Helm creates.
    let controller = helm_on(
        &sim,
        home.path(),
        &[
            "install",
            "backup-ns-controller",
            chart,
            "-n",
            "backup-ns-ctl",
            "--create-namespace",
            "--set",
            "controller.enabled=true",
            "--set",
            "backup.enabled=false",
        ],
    )
    .await;
    assert!(
        controller.status.success(),
        "helm install controller: {}",
        text(&controller)
    );
    assert!(sim.get("v1", "namespaces", None, "backup-ns-ctl").is_some());
    for (version, plural, name) in [
        ("batch/v1", "cronjobs", "backup-ns-controller"),
        ("apps/v1", "deployments", "backup-ns-exporter"),
        ("v1", "services", "backup-ns-exporter"),
    ] {
        assert!(
            sim.get(version, plural, Some("backup-ns-ctl"), name)
                .is_some(),
            "{plural}/{name} installed"
        );
    }

    // The tenant part with the default values.
    let install = helm_on(
        &sim,
        home.path(),
        &["install", "backup-ns", chart, "-n", "my-app"],
    )
    .await;
    assert!(install.status.success(), "helm install: {}", text(&install));
    assert!(
        String::from_utf8_lossy(&install.stdout).contains("create job --from=cronjob/backup-ns"),
        "NOTES are printed: {}",
        text(&install)
    );
    let cronjob = sim
        .get("batch/v1", "cronjobs", Some("my-app"), "backup-ns")
        .expect("CronJob installed");
    assert_eq!(
        cronjob["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    assert!(plan_text(&sim).contains("workload: deployment/app-base"));
    let secrets = release_secrets(&sim, "my-app", "backup-ns");
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert_eq!(status_of(&secrets, "1"), "deployed");
    assert_eq!(secrets[0]["type"], "helm.sh/release.v1");
    let checksum = |cj: &Value| {
        cj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            .clone()
    };
    let before = checksum(&cronjob);

    // Upgrade with another plan (the example overlay's).
    let plan = home.path().join("shop-plan.yaml");
    std::fs::write(&plan, read("deploy/kustomize/example-tenant/plan.yaml")).expect("plan");
    let upgrade = helm_on(
        &sim,
        home.path(),
        &[
            "upgrade",
            "backup-ns",
            chart,
            "-n",
            "my-app",
            "--set-file",
            &format!("plan={}", plan.display()),
        ],
    )
    .await;
    assert!(upgrade.status.success(), "helm upgrade: {}", text(&upgrade));
    assert!(
        plan_text(&sim).contains("workload: statefulset/shop-db"),
        "{}",
        plan_text(&sim)
    );
    let after = sim
        .get("batch/v1", "cronjobs", Some("my-app"), "backup-ns")
        .expect("CronJob kept");
    assert_ne!(
        before,
        checksum(&after),
        "a new plan rolls into the next run's pod"
    );
    let secrets = release_secrets(&sim, "my-app", "backup-ns");
    assert_eq!(secrets.len(), 2, "{secrets:?}");
    assert_eq!(status_of(&secrets, "1"), "superseded");
    assert_eq!(status_of(&secrets, "2"), "deployed");
    let list = helm_on(&sim, home.path(), &["list", "-n", "my-app", "-o", "json"]).await;
    assert!(list.status.success(), "helm list: {}", text(&list));
    let releases: Value = serde_json::from_slice(&list.stdout).expect("helm list JSON");
    assert_eq!(releases[0]["revision"], "2", "{releases}");

    // Uninstall removes every object and the release history.
    let uninstall = helm_on(
        &sim,
        home.path(),
        &["uninstall", "backup-ns", "-n", "my-app"],
    )
    .await;
    assert!(
        uninstall.status.success(),
        "helm uninstall: {}",
        text(&uninstall)
    );
    for plural in [
        "cronjobs",
        "configmaps",
        "serviceaccounts",
        "roles",
        "rolebindings",
    ] {
        assert!(
            sim.list(plural, Some("my-app")).is_empty(),
            "{plural} left behind"
        );
    }
    assert!(
        !sim.list("clusterrolebindings", None)
            .iter()
            .any(|b| b["metadata"]["name"] == "backup-ns-cluster-read-my-app"),
        "the cluster-read binding is removed"
    );
    assert!(release_secrets(&sim, "my-app", "backup-ns").is_empty());
    // The controller release is untouched.
    assert!(
        sim.get(
            "batch/v1",
            "cronjobs",
            Some("backup-ns-ctl"),
            "backup-ns-controller"
        )
        .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_with_the_original_values_file_installs_and_upgrades_unchanged() {
    let (sim, home) = start().await;
    let chart = super::tools::CHART;
    let values = "tests/deploy/fixtures/original-values.yaml";
    for verb in ["install", "upgrade"] {
        let out = helm_on(
            &sim,
            home.path(),
            &[verb, "shop", chart, "-n", "shop", "-f", values],
        )
        .await;
        assert!(out.status.success(), "helm {verb}: {}", text(&out));
        let cronjob = sim
            .get("batch/v1", "cronjobs", Some("shop"), "shop-backup")
            .expect("the original's CronJob name");
        let pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "shop-backup-sa");
        assert_eq!(
            pod["containers"][0]["envFrom"][0]["configMapRef"]["name"],
            "shop-backup-env"
        );
        assert!(
            sim.get("v1", "configmaps", Some("shop"), "shop-backup-env")
                .is_some()
        );
    }
    let secrets = release_secrets(&sim, "shop", "shop");
    assert_eq!(status_of(&secrets, "2"), "deployed");
}
