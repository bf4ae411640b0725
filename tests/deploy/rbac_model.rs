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

pub fn as_strs(v: &serde_json::Value) -> Vec<String> {
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

/// The shipped roles as the mutation tests name them.
pub const TENANT_ROLE: &str = "Role/backup-ns";
pub const CONTROLLER: &str = "ClusterRole/backup-ns-controller";
pub const CLUSTER_READ: &str = "ClusterRole/backup-ns-cluster-read";

/// Why a grant that no night needs stays, for the mutation tests' survivor lists.
pub const GROUP: &str = "`snapshot.consistency: group` only (a VolumeGroupSnapshot of several PVCs, see the header of \
                     deploy/static/backup-ns.yaml); the nightly plan snapshots one PVC";
pub const PVC_PATCH: &str = "`snapshot.consistency: group` only: the target PVCs get the `backup-ns.sh/group` label the \
                         group's selector uses; the nightly plan snapshots one PVC";
pub const STATEFULSETS: &str = "hooks that target `statefulset/NAME` (the kustomize example overlay's MariaDB, run in \
                            installs.rs); the nightly plan's hook targets a Deployment";
pub const WORKLOAD_LIST: &str = "the resolver gets the workload and lists its pods, so no night needs it; it stays because \
                             the RBAC model (rbac_model.rs TENANT_ALLOWED) that the real-cluster tests hold a real API \
                             server to declares it";
pub const WAIT_WATCH: &str = "waiting for readyToUse: the wait lists the snapshot first and watches only while it is not ready; \
                    kube-sim's snapshots are ready before the run waits, a real CSI driver's are not";
pub const TENANT_EVENTS: &str = "backup-ns writes each events.k8s.io/v1 Event once (no series, no core/v1 writes); the \
                             core group and `patch` stay for Event recorders that write core/v1 or patch a series";
pub const REBIND: &str = "label sync and `backup-ns rebind` of a dangling content (the RBAC table in src/cluster/mod.rs); \
                      a night without drifted labels or dangling contents calls neither";
pub const CONTROLLER_MARKS: &str = "marking and tier-label moves for namespaces whose own run did not make them; here each \
                                tenant's run marks its snapshots before the controller runs";
pub const CONTROLLER_READS: &str = "read-only and not used by the nightly pass, which works from the snapshots and contents \
                                it lists; it stays because the RBAC model (rbac_model.rs CONTROLLER_ALLOWED: list \
                                namespaces, list volumesnapshotclasses) declares it";
pub const CONTROLLER_EVENTS: &str = "the controller reports through its log and the exporter and writes no Events today; \
                                 it stays because the RBAC model (rbac_model.rs CONTROLLER_ALLOWED) declares it";
pub const SNAPSHOT_GET: &str = "`get` of one snapshot by name: a create whose answer was lost is looked up so (the \
                                retry policy's `create_once`); the night's run reads its snapshot through list and \
                                watch";
pub const CLASS_GET: &str = "`get` of a named class (a plan's `snapshot.class`); the nightly plan uses the default class, \
                         which the preflight finds with `list`";

/// Mutants that leave the night intact on kube-sim and on the real cluster alike, each with why the grant stays:
/// (role, mutant, reason). Each mutation test adds the survivors only its cluster has.
pub const UNNEEDED_ON_BOTH: &[(&str, &str, &str)] = &[
    (
        TENANT_ROLE,
        "rule 1 (persistentvolumeclaims): apiGroup \"\"",
        PVC_PATCH,
    ),
    (
        TENANT_ROLE,
        "rule 1 (persistentvolumeclaims): resource \"persistentvolumeclaims\"",
        PVC_PATCH,
    ),
    (
        TENANT_ROLE,
        "rule 1 (persistentvolumeclaims): verb \"patch\"",
        PVC_PATCH,
    ),
    (
        TENANT_ROLE,
        "rule 6 (deployments,statefulsets): resource \"statefulsets\"",
        STATEFULSETS,
    ),
    (
        TENANT_ROLE,
        "rule 6 (deployments,statefulsets): verb \"list\"",
        WORKLOAD_LIST,
    ),
    (
        TENANT_ROLE,
        "rule 7 (volumesnapshots): verb \"get\"",
        SNAPSHOT_GET,
    ),
    (
        TENANT_ROLE,
        "rule 8 (volumegroupsnapshots): apiGroup \"groupsnapshot.storage.k8s.io\"",
        GROUP,
    ),
    (
        TENANT_ROLE,
        "rule 8 (volumegroupsnapshots): resource \"volumegroupsnapshots\"",
        GROUP,
    ),
    (
        TENANT_ROLE,
        "rule 8 (volumegroupsnapshots): verb \"create\"",
        GROUP,
    ),
    (
        TENANT_ROLE,
        "rule 8 (volumegroupsnapshots): verb \"get\"",
        GROUP,
    ),
    (
        TENANT_ROLE,
        "rule 8 (volumegroupsnapshots): verb \"list\"",
        GROUP,
    ),
    (
        TENANT_ROLE,
        "rule 8 (volumegroupsnapshots): verb \"watch\"",
        GROUP,
    ),
    (TENANT_ROLE, "rule 9 (events): apiGroup \"\"", TENANT_EVENTS),
    (
        TENANT_ROLE,
        "rule 9 (events): verb \"patch\"",
        TENANT_EVENTS,
    ),
    (
        CONTROLLER,
        "rule 0 (volumesnapshots): verb \"create\"",
        REBIND,
    ),
    (
        CONTROLLER,
        "rule 0 (volumesnapshots): verb \"patch\"",
        CONTROLLER_MARKS,
    ),
    (
        CONTROLLER,
        "rule 0 (volumesnapshots): verb \"watch\"",
        REBIND,
    ),
    (
        CONTROLLER,
        "rule 1 (volumesnapshotcontents): verb \"create\"",
        REBIND,
    ),
    (
        CONTROLLER,
        "rule 1 (volumesnapshotcontents): verb \"delete\"",
        REBIND,
    ),
    (
        CONTROLLER,
        "rule 1 (volumesnapshotcontents): verb \"get\"",
        REBIND,
    ),
    (
        CONTROLLER,
        "rule 1 (volumesnapshotcontents): verb \"watch\"",
        REBIND,
    ),
    (
        CONTROLLER,
        "rule 2 (volumesnapshotclasses): apiGroup \"snapshot.storage.k8s.io\"",
        CONTROLLER_READS,
    ),
    (
        CONTROLLER,
        "rule 2 (volumesnapshotclasses): resource \"volumesnapshotclasses\"",
        CONTROLLER_READS,
    ),
    (
        CONTROLLER,
        "rule 2 (volumesnapshotclasses): verb \"get\"",
        CONTROLLER_READS,
    ),
    (
        CONTROLLER,
        "rule 2 (volumesnapshotclasses): verb \"list\"",
        CONTROLLER_READS,
    ),
    (
        CONTROLLER,
        "rule 3 (namespaces): apiGroup \"\"",
        CONTROLLER_READS,
    ),
    (
        CONTROLLER,
        "rule 3 (namespaces): resource \"namespaces\"",
        CONTROLLER_READS,
    ),
    (
        CONTROLLER,
        "rule 3 (namespaces): verb \"get\"",
        CONTROLLER_READS,
    ),
    (
        CONTROLLER,
        "rule 3 (namespaces): verb \"list\"",
        CONTROLLER_READS,
    ),
    (
        CONTROLLER,
        "rule 4 (events): apiGroup \"\"",
        CONTROLLER_EVENTS,
    ),
    (
        CONTROLLER,
        "rule 4 (events): apiGroup \"events.k8s.io\"",
        CONTROLLER_EVENTS,
    ),
    (
        CONTROLLER,
        "rule 4 (events): resource \"events\"",
        CONTROLLER_EVENTS,
    ),
    (
        CONTROLLER,
        "rule 4 (events): verb \"create\"",
        CONTROLLER_EVENTS,
    ),
    (
        CONTROLLER,
        "rule 4 (events): verb \"patch\"",
        CONTROLLER_EVENTS,
    ),
    (
        CLUSTER_READ,
        "rule 0 (volumesnapshotclasses): verb \"get\"",
        CLASS_GET,
    ),
    (
        CLUSTER_READ,
        "rule 1 (volumegroupsnapshotclasses): apiGroup \"groupsnapshot.storage.k8s.io\"",
        GROUP,
    ),
    (
        CLUSTER_READ,
        "rule 1 (volumegroupsnapshotclasses): resource \"volumegroupsnapshotclasses\"",
        GROUP,
    ),
    (
        CLUSTER_READ,
        "rule 1 (volumegroupsnapshotclasses): verb \"get\"",
        GROUP,
    ),
    (
        CLUSTER_READ,
        "rule 1 (volumegroupsnapshotclasses): verb \"list\"",
        GROUP,
    ),
];
