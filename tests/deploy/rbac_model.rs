//! What the shipped RBAC split must allow and refuse, as `kubectl auth can-i` arguments: the tenant's service
//! account (deploy/static/backup-ns.yaml in namespace [`TENANT`]) and the controller's
//! (deploy/static/backup-ns-controller.yaml). The kube-sim deploy tests and the real-cluster tests check the same
//! lists, so the simulator's authorizer and the real one are held to one model. The shipped roles' mutants
//! ([`mutants_of`]) are shared the same way: both mutation tests break the night with each of them.

/// The tenant namespace the tenant manifest is installed into.
pub const TENANT: &str = "shop";
/// Another tenant's namespace, which the tenant must not reach.
pub const OTHER: &str = "other";

pub const VS: &str = "volumesnapshots.snapshot.storage.k8s.io";
pub const VSC: &str = "volumesnapshotcontents.snapshot.storage.k8s.io";
pub const VSCLASS: &str = "volumesnapshotclasses.snapshot.storage.k8s.io";

/// What a tenant's backup run needs: snapshots, labels, exec and Events in its namespace, and the read-only
/// cluster objects its preflight checks; and what its `verify` needs: a temporary claim and pod, the pod's log.
pub const TENANT_ALLOWED: &[&[&str]] = &[
    &["create", VS, "-n", TENANT],
    &["patch", VS, "-n", TENANT],
    &["list", VS, "-n", TENANT],
    &["watch", VS, "-n", TENANT],
    // A WebSocket exec is authorized as both `get` and `create` (the real 1.36 apiserver checks both).
    &["get", "pods", "--subresource=exec", "-n", TENANT],
    &["create", "pods", "--subresource=exec", "-n", TENANT],
    &["get", "persistentvolumeclaims", "-n", TENANT],
    &["list", "deployments.apps", "-n", TENANT],
    &["create", "events", "-n", TENANT],
    &["list", VSCLASS],
    &["get", "namespaces"],
    // `backup-ns verify`: its temporary claim and verification pod.
    &["create", "persistentvolumeclaims", "-n", TENANT],
    &["delete", "persistentvolumeclaims", "-n", TENANT],
    &["create", "pods", "-n", TENANT],
    &["delete", "pods", "-n", TENANT],
    &["watch", "pods", "-n", TENANT],
    &["get", "pods", "--subresource=log", "-n", TENANT],
];

/// What only the controller (or nobody) may do: content writes, deletions, other namespaces, secrets.
pub const TENANT_FORBIDDEN: &[&[&str]] = &[
    &["patch", VSC],
    &["delete", VSC],
    &["delete", VS, "-n", TENANT],
    &["create", VS, "-n", OTHER],
    &["patch", VS, "-n", OTHER],
    &["list", VS, "-A"],
    &["create", "pods", "--subresource=exec", "-n", OTHER],
    &["create", "pods", "-n", OTHER],
    &["create", "persistentvolumeclaims", "-n", OTHER],
    &["get", "secrets", "-n", TENANT],
    &["create", VSCLASS],
];

/// The controller's cluster-wide retention work.
pub const CONTROLLER_ALLOWED: &[&[&str]] = &[
    &["list", VS, "-A"],
    &["patch", VS, "-n", OTHER],
    &["delete", VS, "-n", TENANT],
    &["delete", VS, "-n", OTHER],
    &["patch", VSC],
    &["delete", VSC],
    &["list", VSCLASS],
    &["list", "namespaces"],
    &["create", "events", "-n", TENANT],
    // A crashed `backup-ns verify` run's labelled claim and pod (the code deletes nothing else).
    &["list", "persistentvolumeclaims", "-A"],
    &["list", "pods", "-A"],
    &["delete", "persistentvolumeclaims", "-n", TENANT],
    &["delete", "pods", "-n", TENANT],
];

/// Nothing tenant-private: no exec into tenants' pods, no secrets, no reading or making claims and pods.
pub const CONTROLLER_FORBIDDEN: &[&[&str]] = &[
    &["create", "pods", "--subresource=exec", "-n", TENANT],
    &["get", "secrets", "-n", TENANT],
    &["get", "persistentvolumeclaims", "-n", TENANT],
    &["create", "persistentvolumeclaims", "-n", TENANT],
    &["create", "pods", "-n", TENANT],
    &["get", "pods", "--subresource=log", "-n", TENANT],
];

/// deploy/static/backup-ns.yaml for namespace `ns`, the file's documented way: copy it and set the namespace.
pub fn tenant_manifest(ns: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/static/backup-ns.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    assert!(
        text.contains("namespace: my-app"),
        "deploy/static/backup-ns.yaml should use the placeholder namespace my-app"
    );
    text.replace("namespace: my-app", &format!("namespace: {ns}"))
        .replace(
            "backup-ns-cluster-read-my-app",
            &format!("backup-ns-cluster-read-{ns}"),
        )
}

/// deploy/static/backup-ns-controller.yaml with no pause between deletions (tests wait for them in real time).
pub fn controller_manifest_without_pause() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/static/backup-ns-controller.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let tz = "  TZ: \"Europe/Vienna\"\n";
    assert!(text.contains(tz), "the controller's TZ setting moved");
    text.replace(tz, &format!("{tz}  BACKUP_NS_DELETE_PAUSE: \"0s\"\n"))
}

/// A shipped role with one grant removed.
pub struct Mutant {
    /// `Role/NAME` or `ClusterRole/NAME`.
    pub role: String,
    /// What was removed, e.g. `rule 4 (volumesnapshots): verb watch`.
    pub what: String,
    pub doc: serde_json::Value,
}

fn as_strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(serde_json::Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Every one-grant removal of `role`'s rules.
pub fn mutants_of(role: &serde_json::Value) -> Vec<Mutant> {
    let id = format!(
        "{}/{}",
        role["kind"].as_str().expect("kind"),
        role["metadata"]["name"].as_str().expect("name")
    );
    let rules = role["rules"].as_array().expect("rules");
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let label = format!("rule {i} ({})", as_strs(&rule["resources"]).join(","));
        for field in ["verbs", "resources", "apiGroups"] {
            let values = as_strs(&rule[field]);
            for value in &values {
                let mut doc = role.clone();
                let rules = doc["rules"].as_array_mut().expect("rules");
                let kept: Vec<&String> = values.iter().filter(|v| *v != value).collect();
                if kept.is_empty() {
                    rules.remove(i);
                } else {
                    rules[i][field] = serde_json::json!(kept);
                }
                let singular = &field[..field.len() - 1];
                out.push(Mutant {
                    role: id.clone(),
                    what: format!("{label}: {singular} {value:?}"),
                    doc,
                });
            }
        }
    }
    out
}
