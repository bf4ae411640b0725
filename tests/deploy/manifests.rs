//! The manifests and the chart agree with the binary: embedded plans validate, CronJob args parse. (The chart's
//! RBAC and objects are compared with the static manifests in sources.rs.)

use super::{backup_ns, doc, docs, read, repo, text};
use backup_ns::cli::{Cli, Command};
use clap::Parser;

/// `backup-ns validate FILE` on `plan` written to a temp file named `name`.
pub fn validates(name: &str, plan: &str) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join(name);
    std::fs::write(&path, plan).expect("write plan");
    let out = backup_ns(
        &["validate", "--deny-warnings", path.to_str().expect("utf8")],
        &[],
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "{name} does not validate:\n{plan}\n{}",
        text(&out)
    );
}

fn container_args(manifest: &[serde_json::Value], cronjob: &str) -> Vec<String> {
    let cj = doc(manifest, "CronJob", cronjob);
    cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap_or_else(|| panic!("CronJob {cronjob} has args"))
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}

#[test]
fn tenant_configmap_plan_validates() {
    let manifest = docs(&read("deploy/static/backup-ns.yaml"));
    let cm = doc(&manifest, "ConfigMap", "backup-ns-plan");
    let plan = cm["data"]["plan.yaml"]
        .as_str()
        .expect("plan.yaml in the ConfigMap");
    validates("plan.yaml", plan);
}

#[test]
fn every_plan_in_plans_validates() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = backup_ns(
        &["validate", repo().join("plans").to_str().expect("utf8")],
        &[],
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "plans/ does not validate: {}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("plans/demo.yaml"),
        "the demo plan is among them: {stdout}"
    );
}

#[test]
fn tenant_cronjob_args_are_a_valid_run_command_line() {
    let manifest = docs(&read("deploy/static/backup-ns.yaml"));
    let args = container_args(&manifest, "backup");
    let cli = Cli::try_parse_from(std::iter::once("backup-ns".to_owned()).chain(args.clone()))
        .unwrap_or_else(|e| panic!("CronJob args {args:?} do not parse: {e}"));
    assert!(
        matches!(cli.command, Command::Run(_)),
        "{args:?} is not `run`"
    );
    // The plan path must be where the ConfigMap volume is mounted.
    let cj = doc(&manifest, "CronJob", "backup");
    let mount =
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .find(|m| m["name"] == "plan")
            .expect("plan mount");
    let plan_path = format!(
        "{}/plan.yaml",
        mount["mountPath"].as_str().expect("mountPath")
    );
    assert!(
        args.contains(&plan_path),
        "{args:?} does not read {plan_path}"
    );
}

#[test]
fn controller_cronjob_args_are_a_valid_controller_command_line() {
    let manifest = docs(&read("deploy/static/backup-ns-controller.yaml"));
    let args = container_args(&manifest, "backup-ns-controller");
    let cli = Cli::try_parse_from(std::iter::once("backup-ns".to_owned()).chain(args.clone()))
        .unwrap_or_else(|e| panic!("CronJob args {args:?} do not parse: {e}"));
    assert!(
        matches!(cli.command, Command::Controller(_)),
        "{args:?} is not `controller`"
    );
}

#[test]
fn helm_chart_default_plan_validates() {
    let values: serde_json::Value =
        serde_saphyr::from_str(&read("charts/backup-ns/values.yaml")).expect("values.yaml is YAML");
    let plan = values["plan"]
        .as_str()
        .expect("values.yaml has a `plan` string");
    validates("plan.yaml", plan);
}

#[test]
fn kustomize_plans_validate() {
    for plan in [
        "deploy/kustomize/namespace/plan.yaml",
        "deploy/kustomize/example-tenant/plan.yaml",
    ] {
        validates("plan.yaml", &read(plan));
    }
}

#[test]
fn every_plan_named_in_a_help_example_ships_in_plans() {
    let mut named = Vec::new();
    for entry in std::fs::read_dir(repo().join("src/cli")).expect("src/cli") {
        let path = entry.expect("entry").path();
        let source = std::fs::read_to_string(&path).expect("source");
        for (at, _) in source.match_indices("plans/") {
            let name: String = source[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/._-".contains(*c))
                .collect();
            if name.ends_with(".yaml") || name.ends_with(".toml") {
                named.push((path.display().to_string(), name));
            }
        }
    }
    assert!(named.len() > 10, "the help examples name plans: {named:?}");
    for (file, plan) in named {
        assert!(
            repo().join(&plan).is_file(),
            "{file} shows an example with {plan}, which does not exist"
        );
    }
}
