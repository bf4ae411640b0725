//! The Helm chart on its own: `helm lint --strict`, a schema that rejects unknown keys at every level, and a
//! values file written for the original backup-ns chart rendering the CronJob the original would have (env,
//! names, service account, labels), whose BAK_* environment `backup-ns` really reads as a plan.

use super::tools::{CHART, MATRIX, helm, helm_template};
use super::{backup_ns, doc, read, text};
use backup_ns::cli::{Cli, Command};
use clap::Parser;
use serde_json::{Value, json};

const ORIGINAL_VALUES: &str = "tests/deploy/fixtures/original-values.yaml";

fn pod_spec(cronjob: &Value) -> &Value {
    &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
}

#[test]
fn helm_lint_strict_passes_for_every_values_combination() {
    for values in MATRIX {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend_from_slice(values.args);
        let out = helm(&args);
        assert!(
            out.status.success(),
            "helm lint --strict ({}): {}",
            values.name,
            text(&out)
        );
    }
}

#[test]
fn the_schema_rejects_keys_the_chart_does_not_know_at_every_level() {
    for key in [
        "enviroment=x",
        "image.registry=x",
        "serviceAccount.labels.a=b",
        "roleBinding.roleRef.namespace=x",
        "lock.path=/x",
        "lockPermissionFixer.args=x",
        "controller.exporter.serviceMonitor=true",
        "controller.image=x",
        "securityContext.runAsRoot=true",
        "podSecurityContext.seccompProfile.kind=x",
        "resources.limit.cpu=1",
        "job.backoffLimit=1",
    ] {
        let out = helm(&["template", "x", CHART, "--set", key]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("Additional property"),
            "--set {key} must be refused by values.schema.json: {}",
            text(&out)
        );
    }
    // Wrong types and values are refused too.
    for bad in [
        "concurrencyPolicy=Sometimes",
        "logFormat=xml",
        "roleBinding.roleRef.kind=Group",
        "envData.BAK-DB=x",
    ] {
        let out = helm(&["template", "x", CHART, "--set", bad]);
        assert!(
            !out.status.success(),
            "--set {bad} must be refused: {}",
            text(&out)
        );
    }
}

#[test]
fn every_key_of_the_default_values_is_in_the_schema() {
    // The schema lists exactly what the chart reads: each default key must be declared (additionalProperties
    // false would otherwise reject the chart's own defaults), and each declared top-level key has a default.
    let schema: Value =
        serde_json::from_str(&read("charts/backup-ns/values.schema.json")).expect("schema is JSON");
    let values: Value =
        serde_saphyr::from_str(&read("charts/backup-ns/values.yaml")).expect("values are YAML");
    let declared: Vec<&String> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .filter(|k| *k != "global")
        .collect();
    let defaults: Vec<&String> = values.as_object().expect("values map").keys().collect();
    for k in &defaults {
        assert!(
            declared.contains(k),
            "values.yaml key {k} is not in the schema"
        );
    }
    for k in &declared {
        assert!(
            defaults.contains(k),
            "schema key {k} has no default in values.yaml"
        );
    }
}

#[test]
fn a_values_file_written_for_the_original_chart_renders_the_original_cronjob() {
    let rendered = helm_template("shop", "shop", &["-f", ORIGINAL_VALUES]);
    let cronjob = doc(&rendered, "CronJob", "shop-backup");

    // fullnameOverride names the CronJob and the env ConfigMap; envData is that ConfigMap, and no plan is rendered.
    let env_cm = doc(&rendered, "ConfigMap", "shop-backup-env");
    assert_eq!(
        env_cm["data"],
        json!({
            "BAK_LABEL_VS_TYPE": "cronjob",
            "BAK_LABEL_VS_RETAIN": "daily_weekly_monthly",
            "BAK_FLOCK": "true",
            "BAK_FLOCK_DIR": "/mnt/host-backup-locks",
            "BAK_DB_POSTGRES": "true",
            "BAK_DB_POSTGRES_EXEC_RESOURCE": "deployment/shop-db",
            "BAK_DB_POSTGRES_EXEC_CONTAINER": "postgres",
        })
    );
    assert!(
        !rendered
            .iter()
            .any(|d| d["kind"] == "ConfigMap" && d["data"]["plan.yaml"].is_string()),
        "envData replaces the chart's default plan"
    );

    // serviceAccount.name, its annotations; the RoleBinding binds the original's ClusterRole, no chart Role.
    let sa = doc(&rendered, "ServiceAccount", "shop-backup-sa");
    assert_eq!(
        sa["metadata"]["annotations"]["example.com/owner"],
        "shop-team"
    );
    let rb = doc(&rendered, "RoleBinding", "shop-backup-sa");
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "backup-ns-role"})
    );
    assert_eq!(rb["subjects"][0]["name"], "shop-backup-sa");
    assert!(!rendered.iter().any(|d| d["kind"] == "Role"));

    // The CronJob: schedule, history, job limits, annotations.
    let spec = &cronjob["spec"];
    assert_eq!(spec["schedule"], "32 0 * * *");
    assert_eq!(spec["timeZone"], "Europe/Vienna");
    assert_eq!(spec["successfulJobsHistoryLimit"], 5);
    assert_eq!(spec["failedJobsHistoryLimit"], 2);
    assert_eq!(spec["jobTemplate"]["spec"]["backoffLimit"], 2);
    assert_eq!(spec["jobTemplate"]["spec"]["activeDeadlineSeconds"], 10800);
    assert_eq!(
        cronjob["metadata"]["annotations"]["example.com/managed"],
        "helm"
    );
    let template = &spec["jobTemplate"]["spec"]["template"];
    assert_eq!(template["metadata"]["labels"]["team"], "shop");
    assert_eq!(
        template["metadata"]["labels"]["app.kubernetes.io/instance"],
        "shop"
    );
    assert_eq!(
        template["metadata"]["annotations"]["example.com/scrape"],
        "false"
    );

    // The pod: service account, image, pull secrets, scheduling, resources.
    let pod = pod_spec(cronjob);
    assert_eq!(pod["serviceAccountName"], "shop-backup-sa");
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(
        pod["imagePullSecrets"],
        json!([{"name": "registry-example"}])
    );
    assert_eq!(pod["priorityClassName"], "backup-low");
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(pod["tolerations"][0]["key"], "backup");
    assert!(pod["affinity"]["nodeAffinity"].is_object());
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example.com/backup-ns:v0.3.0");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["resources"]["requests"]["cpu"], "50m");

    // The env: the ConfigMap via envFrom, and the original's downward-API variables.
    assert_eq!(
        c["envFrom"],
        json!([{"configMapRef": {"name": "shop-backup-env"}}])
    );
    let env = c["env"].as_array().expect("env");
    let field = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("env {name}"))["valueFrom"]["fieldRef"]["fieldPath"]
            .clone()
    };
    assert_eq!(field("BAK_NAMESPACE"), "metadata.namespace");
    assert_eq!(field("BAK_LABEL_VS_POD"), "metadata.name");
    assert!(
        env.iter()
            .any(|e| e["name"] == "TZ" && e["value"] == "Europe/Vienna")
    );

    // The lock: the file's own hostPath volume and mount, once; its permission fixer with its image.
    let volumes = pod["volumes"].as_array().expect("volumes");
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0]["hostPath"]["path"], "/tmp/backup-ns-locks");
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    let fixer = &pod["initContainers"][0];
    assert_eq!(fixer["name"], "lock-permission-fixer");
    assert_eq!(fixer["image"], "busybox:1.26.2");

    // `backup-ns run` with no plan file: the args parse, and the environment the pod gets is a valid plan that
    // backs up the pod's namespace with the postgres hook and the lock dir the volume is mounted at.
    let args: Vec<String> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string").to_owned())
        .collect();
    let cli = Cli::try_parse_from(std::iter::once("backup-ns".to_owned()).chain(args.clone()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    match cli.command {
        Command::Run(run) => assert!(run.plan.is_none(), "{args:?} names a plan file"),
        other => panic!("{args:?} is not `run`: {other:?}"),
    }
    let mut pod_env: Vec<(String, String)> = env_cm["data"]
        .as_object()
        .expect("data")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_owned()))
        .collect();
    pod_env.push(("BAK_NAMESPACE".into(), "shop".into()));
    pod_env.push((
        "BAK_LABEL_VS_POD".into(),
        "shop-backup-29000000-abcde".into(),
    ));
    let env_refs: Vec<(&str, &str)> = pod_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let home = tempfile::tempdir().expect("temp HOME");
    let out = backup_ns(
        &["plan", "from-env", "--format", "json"],
        &env_refs,
        home.path(),
    );
    assert!(out.status.success(), "plan from-env: {}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    assert_eq!(plan["namespace"], "shop");
    assert_eq!(plan["hooks"]["pre"][0]["type"], "postgres");
    assert_eq!(plan["hooks"]["pre"][0]["workload"], "deployment/shop-db");
    assert_eq!(plan["snapshot"]["type"], "cronjob");
    assert_eq!(plan["lock"]["enabled"], true);
    assert_eq!(plan["lock"]["dir"], mounts[0]["mountPath"]);
}

#[test]
fn an_existing_plan_configmap_is_mounted_and_the_chart_renders_none() {
    let rendered = helm_template(
        "backup-ns",
        "my-app",
        &["--set", "existingPlanConfigMap=team-plan"],
    );
    assert!(
        !rendered.iter().any(|d| d["kind"] == "ConfigMap"),
        "no chart ConfigMap"
    );
    let pod = pod_spec(doc(&rendered, "CronJob", "backup-ns"));
    let plan = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "plan")
        .expect("plan volume");
    assert_eq!(plan["configMap"]["name"], "team-plan");
}

#[test]
fn envdata_and_an_existing_plan_configmap_are_refused_together() {
    let out = helm(&[
        "template",
        "x",
        CHART,
        "--set",
        "existingPlanConfigMap=team-plan",
        "--set",
        "envData.BAK_DB_SKIP=true",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exclude each other"),
        "{}",
        text(&out)
    );
}

#[test]
fn lock_off_removes_the_hostpath_and_the_fixer() {
    let rendered = helm_template("backup-ns", "my-app", &["--set", "lock.enabled=false"]);
    let pod = pod_spec(doc(&rendered, "CronJob", "backup-ns"));
    assert!(pod["initContainers"].is_null(), "{pod}");
    let volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| v["name"].as_str().expect("name"))
        .collect();
    assert_eq!(volumes, ["plan"]);
}
