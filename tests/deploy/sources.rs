//! One source of truth: the static manifests, the kustomize bases and `helm template` with default values render
//! the same objects once the install tool's own marks (Helm's labels and config checksums, the release's name for
//! the CronJob) are normalised away. The three cannot drift apart.

use super::tools::{helm_template, kustomize};
use super::{docs, read};
use serde_json::Value;

/// Labels an install tool adds for its own bookkeeping; selectors and labels compare without them.
const TOOL_LABELS: &[&str] = &[
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/name",
];

fn strip_labels(map: &mut Value) {
    if let Some(m) = map.as_object_mut() {
        m.retain(|k, _| !TOOL_LABELS.contains(&k.as_str()));
    }
}

/// Removes tool labels, checksum annotations and the maps they leave empty, at `meta` (an object's metadata or a
/// pod template's).
fn normalise_meta(meta: &mut Value) {
    let Some(m) = meta.as_object_mut() else {
        return;
    };
    if let Some(labels) = m.get_mut("labels") {
        strip_labels(labels);
    }
    if let Some(Value::Object(ann)) = m.get_mut("annotations") {
        ann.retain(|k, _| !k.starts_with("checksum/"));
    }
    m.retain(|_, v| !matches!(v, Value::Object(o) if o.is_empty()));
}

/// One rendered object, normalised; `renames` maps (kind, name) to the canonical name. Only existing fields are
/// touched (`pointer_mut`), so normalising never adds one.
fn normalise(mut doc: Value, renames: &[(&str, &str, &str)]) -> Value {
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    if let Some(meta) = doc.pointer_mut("/metadata") {
        normalise_meta(meta);
    }
    for (k, from, to) in renames {
        if kind == *k && doc["metadata"]["name"] == *from {
            doc["metadata"]["name"] = Value::String((*to).to_owned());
        }
    }
    let selector = if kind == "Service" {
        "/spec/selector"
    } else {
        "/spec/selector/matchLabels"
    };
    if let Some(s) = doc.pointer_mut(selector) {
        strip_labels(s);
    }
    let template = if kind == "CronJob" {
        "/spec/jobTemplate/spec/template"
    } else {
        "/spec/template"
    };
    if let Some(Value::Object(t)) = doc.pointer_mut(template) {
        if let Some(meta) = t.get_mut("metadata") {
            normalise_meta(meta);
        }
        t.retain(|k, v| k != "metadata" || v.as_object().is_some_and(|m| !m.is_empty()));
    }
    doc
}

/// The normalised objects, sorted by kind, namespace and name.
fn objects(docs: Vec<Value>, renames: &[(&str, &str, &str)]) -> Vec<Value> {
    let mut out: Vec<Value> = docs.into_iter().map(|d| normalise(d, renames)).collect();
    out.sort_by_key(|d| {
        format!(
            "{}/{}/{}",
            d["kind"].as_str().unwrap_or_default(),
            d["metadata"]["namespace"].as_str().unwrap_or_default(),
            d["metadata"]["name"].as_str().unwrap_or_default()
        )
    });
    out
}

fn assert_same(what: &str, expected: &[Value], actual: &[Value]) {
    let show = |v: &Value| serde_json::to_string_pretty(v).expect("json");
    let names = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|d| format!("{}/{}", d["kind"], d["metadata"]["name"]))
            .collect()
    };
    assert_eq!(
        names(expected),
        names(actual),
        "{what}: the object lists differ"
    );
    for (e, a) in expected.iter().zip(actual) {
        assert!(
            e == a,
            "{what}: {}/{} differs\nexpected:\n{}\nactual:\n{}",
            e["kind"],
            e["metadata"]["name"],
            show(e),
            show(a)
        );
    }
}

/// Helm names the CronJob after the release (the original chart's naming, so upgrades keep it); the static file
/// keeps the original static manifest's `backup`.
const HELM_RENAMES: &[(&str, &str, &str)] = &[("CronJob", "backup-ns", "backup")];

#[test]
fn the_namespace_part_is_the_same_in_static_kustomize_and_helm() {
    let static_objects = objects(docs(&read("deploy/static/backup-ns.yaml")), &[]);
    assert_eq!(
        static_objects.len(),
        6,
        "SA, Role, RoleBinding, ClusterRoleBinding, ConfigMap, CronJob"
    );
    let kustomized = objects(kustomize("deploy/kustomize/namespace"), &[]);
    assert_same(
        "kustomize namespace base vs static",
        &static_objects,
        &kustomized,
    );
    let helm = objects(helm_template("backup-ns", "my-app", &[]), HELM_RENAMES);
    assert_same("helm defaults vs static", &static_objects, &helm);
}

#[test]
fn the_controller_part_is_the_same_in_static_kustomize_and_helm() {
    let static_objects = objects(docs(&read("deploy/static/backup-ns-controller.yaml")), &[]);
    let kustomized = objects(kustomize("deploy/kustomize/controller"), &[]);
    assert_same(
        "kustomize controller base vs static",
        &static_objects,
        &kustomized,
    );
    // Helm does not own the namespace it installs into (`--create-namespace` makes it).
    let without_namespace: Vec<Value> = static_objects
        .into_iter()
        .filter(|d| d["kind"] != "Namespace")
        .collect();
    let helm = objects(
        helm_template(
            "backup-ns",
            "backup-ns-system",
            &[
                "--set",
                "controller.enabled=true",
                "--set",
                "backup.enabled=false",
            ],
        ),
        &[],
    );
    assert_same(
        "helm controller.enabled vs static",
        &without_namespace,
        &helm,
    );
}

#[test]
fn the_normalisation_keeps_real_differences() {
    // The comparison would be worthless if normalising erased what matters: a changed schedule still differs.
    let base = objects(docs(&read("deploy/static/backup-ns.yaml")), &[]);
    let changed = objects(
        helm_template("backup-ns", "my-app", &["--set", "schedule=0 3 * * *"]),
        HELM_RENAMES,
    );
    let cronjob = |v: &[Value]| {
        v.iter()
            .find(|d| d["kind"] == "CronJob")
            .expect("a CronJob")
            .clone()
    };
    assert_ne!(cronjob(&base), cronjob(&changed));
    assert_eq!(cronjob(&changed)["spec"]["schedule"], "0 3 * * *");
}

#[test]
fn the_example_overlay_changes_only_the_namespace_the_plan_and_the_schedule() {
    // The base with the tenant's three settings applied by hand must equal the overlay's render.
    let base = serde_json::to_string(&kustomize("deploy/kustomize/namespace")).expect("json");
    let mut expected: Vec<Value> =
        serde_json::from_str(&base.replace("my-app", "shop")).expect("json");
    for d in &mut expected {
        match d["kind"].as_str() {
            Some("CronJob") => d["spec"]["schedule"] = "45 1 * * *".into(),
            Some("ConfigMap") => {
                d["data"]["plan.yaml"] = read("deploy/kustomize/example-tenant/plan.yaml").into();
            }
            _ => {}
        }
    }
    let overlay = objects(kustomize("deploy/kustomize/example-tenant"), &[]);
    assert_same(
        "example overlay vs base + tenant settings",
        &objects(expected, &[]),
        &overlay,
    );
    assert!(
        overlay
            .iter()
            .any(|d| d["metadata"]["name"] == "backup-ns-cluster-read-shop"),
        "the overlay names the tenant's cluster-read binding after its namespace"
    );
}

/// The weekly verify CronJob: deploy/static/backup-ns-verify.yaml, the kustomize `verify` base and `helm template`
/// with `verify.enabled=true` render the same object; the chart's default renders none.
#[test]
fn the_verify_cronjob_is_the_same_in_static_kustomize_and_helm() {
    let static_objects = objects(docs(&read("deploy/static/backup-ns-verify.yaml")), &[]);
    assert_eq!(static_objects.len(), 1, "one CronJob");
    assert_eq!(
        static_objects[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
            [0],
        "verify"
    );
    let kustomized = objects(kustomize("deploy/kustomize/verify"), &[]);
    assert_same(
        "kustomize verify base vs static",
        &static_objects,
        &kustomized,
    );
    let verify_only = |docs: Vec<Value>| -> Vec<Value> {
        docs.into_iter()
            .filter(|d| d["kind"] == "CronJob" && d["metadata"]["name"] == "backup-verify")
            .collect()
    };
    let renames = &[("CronJob", "backup-ns-verify", "backup-verify")];
    let helm = verify_only(objects(
        helm_template("backup-ns", "my-app", &["--set", "verify.enabled=true"]),
        renames,
    ));
    assert_same("helm verify.enabled vs static", &static_objects, &helm);
    let weekly = verify_only(objects(
        helm_template(
            "backup-ns",
            "my-app",
            &[
                "--set",
                "verify.enabled=true",
                "--set",
                "verify.schedule=0 5 * * 6",
            ],
        ),
        renames,
    ));
    assert_eq!(weekly[0]["spec"]["schedule"], "0 5 * * 6");
    let default = verify_only(objects(helm_template("backup-ns", "my-app", &[]), renames));
    assert!(default.is_empty(), "off by default: {default:#?}");
}
