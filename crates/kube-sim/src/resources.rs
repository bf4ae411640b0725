//! The resource registry: which group/version/resource triples exist, their kinds, scope, short names,
//! categories and subresources. Built-in types are listed here; CRD-backed types are derived from stored CRDs.

use std::sync::Arc;

use serde_json::Value;

/// The CRDs every simulator starts with (copies of ../shared/reference/crds, embedded so a clean clone works).
pub const EMBEDDED_CRDS: &[(&str, &str)] = &[
    (
        "snapshot.storage.k8s.io_volumesnapshotclasses.yaml",
        include_str!("../crds/snapshot.storage.k8s.io_volumesnapshotclasses.yaml"),
    ),
    (
        "snapshot.storage.k8s.io_volumesnapshotcontents.yaml",
        include_str!("../crds/snapshot.storage.k8s.io_volumesnapshotcontents.yaml"),
    ),
    (
        "snapshot.storage.k8s.io_volumesnapshots.yaml",
        include_str!("../crds/snapshot.storage.k8s.io_volumesnapshots.yaml"),
    ),
    (
        "groupsnapshot.storage.k8s.io_volumegroupsnapshotclasses.yaml",
        include_str!("../crds/groupsnapshot.storage.k8s.io_volumegroupsnapshotclasses.yaml"),
    ),
    (
        "groupsnapshot.storage.k8s.io_volumegroupsnapshotcontents.yaml",
        include_str!("../crds/groupsnapshot.storage.k8s.io_volumegroupsnapshotcontents.yaml"),
    ),
    (
        "groupsnapshot.storage.k8s.io_volumegroupsnapshots.yaml",
        include_str!("../crds/groupsnapshot.storage.k8s.io_volumegroupsnapshots.yaml"),
    ),
];

/// One served version of a resource.
#[derive(Clone, Debug)]
pub struct VersionInfo {
    /// Version name (`v1`, `v1beta2`).
    pub name: String,
    /// openAPIV3Schema of a CRD version (None for built-ins).
    pub schema: Option<Arc<Value>>,
    /// additionalPrinterColumns of a CRD version.
    pub printer_columns: Vec<Value>,
}

/// Everything the server needs to know about one resource.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    /// API group (`""` for core).
    pub group: String,
    /// Served versions, preferred (storage) first.
    pub versions: Vec<VersionInfo>,
    /// Plural resource name used in paths.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Subresources (`status`, `exec`, `token`, ...).
    pub subresources: Vec<String>,
    /// Whether this type comes from a CRD (patch semantics and validation differ).
    pub from_crd: bool,
}

impl ResourceInfo {
    /// Whether `version` is served.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v.name == version)
    }

    /// The preferred version.
    pub fn preferred_version(&self) -> &str {
        self.versions
            .first()
            .map(|v| v.name.as_str())
            .unwrap_or("v1")
    }

    /// `group/version` or `v1` for core.
    pub fn api_version(&self, version: &str) -> String {
        crate::paths::api_version(&self.group, version)
    }

    /// The version's info.
    pub fn version(&self, version: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.name == version)
    }

    /// Whether it has a status subresource.
    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    cats: &[&str],
    subs: &[&str],
) -> ResourceInfo {
    ResourceInfo {
        group: group.to_string(),
        versions: vec![VersionInfo {
            name: "v1".to_string(),
            schema: None,
            printer_columns: Vec::new(),
        }],
        plural: plural.to_string(),
        singular: kind.to_lowercase(),
        kind: kind.to_string(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: cats.iter().map(|s| s.to_string()).collect(),
        subresources: subs.iter().map(|s| s.to_string()).collect(),
        from_crd: false,
    }
}

/// The built-in resources the simulator serves.
pub fn builtins() -> Vec<ResourceInfo> {
    vec![
        builtin(
            "",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            &[],
            &["status", "finalize"],
        ),
        builtin(
            "",
            "pods",
            "Pod",
            true,
            &["po"],
            &["all"],
            &["status", "exec", "log"],
        ),
        builtin("", "secrets", "Secret", true, &[], &[], &[]),
        builtin("", "configmaps", "ConfigMap", true, &["cm"], &[], &[]),
        // Stored only (no endpoints, no cluster IPs): the shipped manifests and the Helm chart create one.
        builtin(
            "",
            "services",
            "Service",
            true,
            &["svc"],
            &["all"],
            &["status"],
        ),
        builtin(
            "",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            &[],
            &["status"],
        ),
        builtin(
            "",
            "persistentvolumes",
            "PersistentVolume",
            false,
            &["pv"],
            &[],
            &["status"],
        ),
        builtin("", "events", "Event", true, &["ev"], &[], &[]),
        builtin(
            "",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            &[],
            &["token"],
        ),
        builtin("", "nodes", "Node", false, &["no"], &[], &["status"]),
        // Stored only: a claim without a class gets the default one, and its volume the class's provisioner.
        builtin(
            "storage.k8s.io",
            "storageclasses",
            "StorageClass",
            false,
            &["sc"],
            &[],
            &[],
        ),
        builtin(
            "apps",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            &["all"],
            &["status", "scale"],
        ),
        builtin(
            "apps",
            "statefulsets",
            "StatefulSet",
            true,
            &["sts"],
            &["all"],
            &["status", "scale"],
        ),
        builtin(
            "apps",
            "replicasets",
            "ReplicaSet",
            true,
            &["rs"],
            &["all"],
            &["status", "scale"],
        ),
        builtin("batch", "jobs", "Job", true, &[], &["all"], &["status"]),
        builtin(
            "batch",
            "cronjobs",
            "CronJob",
            true,
            &["cj"],
            &["all"],
            &["status"],
        ),
        builtin("events.k8s.io", "events", "Event", true, &["ev"], &[], &[]),
        builtin(
            "rbac.authorization.k8s.io",
            "roles",
            "Role",
            true,
            &[],
            &[],
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            &[],
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            &[],
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            &[],
            &[],
        ),
        builtin(
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            false,
            &[],
            &[],
            &[],
        ),
        builtin(
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            false,
            &[],
            &[],
            &[],
        ),
        builtin(
            "authorization.k8s.io",
            "subjectaccessreviews",
            "SubjectAccessReview",
            false,
            &[],
            &[],
            &[],
        ),
        builtin(
            "authentication.k8s.io",
            "tokenreviews",
            "TokenReview",
            false,
            &[],
            &[],
            &[],
        ),
        builtin(
            "coordination.k8s.io",
            "leases",
            "Lease",
            true,
            &[],
            &[],
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            &["api-extensions"],
            &["status"],
        ),
    ]
}

/// Resources that only accept `create` and are never stored (reviews).
pub fn is_virtual(group: &str, plural: &str) -> bool {
    matches!(
        (group, plural),
        ("authorization.k8s.io", _) | ("authentication.k8s.io", "tokenreviews")
    )
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Derive the resource a CRD object defines. Returns None when the CRD is malformed.
pub fn from_crd(crd: &Value) -> Option<ResourceInfo> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let plural = names.get("plural")?.as_str()?.to_string();
    let kind = names.get("kind")?.as_str()?.to_string();
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let mut versions = Vec::new();
    let mut subresources = Vec::new();
    for v in spec.get("versions")?.as_array()? {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let info = VersionInfo {
            name: v.get("name")?.as_str()?.to_string(),
            schema: v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new),
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        };
        if v.pointer("/subresources/status").is_some() && subresources.is_empty() {
            subresources.push("status".to_string());
        }
        // The storage version is the preferred one and goes first.
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            versions.insert(0, info);
        } else {
            versions.push(info);
        }
    }
    if versions.is_empty() {
        return None;
    }
    // kube-apiserver prefers the highest stable version over the storage version in discovery when v1 exists.
    if let Some(pos) = versions.iter().position(|v| v.name == "v1") {
        let v1 = versions.remove(pos);
        versions.insert(0, v1);
    }
    Some(ResourceInfo {
        group,
        versions,
        plural,
        singular,
        kind,
        namespaced,
        short_names: strings(names.get("shortNames").unwrap_or(&Value::Null)),
        categories: strings(names.get("categories").unwrap_or(&Value::Null)),
        subresources,
        from_crd: true,
    })
}

/// The registry: built-ins plus the resources defined by stored CRDs.
#[derive(Clone, Debug)]
pub struct Registry {
    builtins: Vec<ResourceInfo>,
    crds: Vec<ResourceInfo>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            builtins: builtins(),
            crds: Vec::new(),
        }
    }
}

impl Registry {
    /// Every resource.
    pub fn all(&self) -> impl Iterator<Item = &ResourceInfo> {
        self.builtins.iter().chain(self.crds.iter())
    }

    /// Replace the CRD-backed part from the stored CRD objects.
    pub fn set_crds<'a>(&mut self, crds: impl Iterator<Item = &'a Value>) {
        self.crds = crds.filter_map(from_crd).collect();
    }

    /// Find by group + plural.
    pub fn by_plural(&self, group: &str, plural: &str) -> Option<&ResourceInfo> {
        self.all().find(|r| r.group == group && r.plural == plural)
    }

    /// Find by group + kind.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&ResourceInfo> {
        self.all().find(|r| r.group == group && r.kind == kind)
    }

    /// Find by plural alone (first match; core before others), for the library API.
    pub fn by_plural_any(&self, plural: &str) -> Option<&ResourceInfo> {
        self.all().find(|r| r.plural == plural)
    }

    /// Groups in discovery order with their versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.all().filter(|r| !r.group.is_empty()) {
            let entry = match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some(e) => e,
                None => {
                    out.push((r.group.clone(), Vec::new()));
                    let last = out.len() - 1;
                    &mut out[last]
                }
            };
            for v in &r.versions {
                if !entry.1.contains(&v.name) {
                    entry.1.push(v.name.clone());
                }
            }
        }
        out
    }
}

/// Parse the embedded CRDs into objects.
pub fn embedded_crd_objects() -> Vec<Value> {
    EMBEDDED_CRDS
        .iter()
        .filter_map(|(_, text)| serde_saphyr::from_str::<Value>(text).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_crd_parses_into_a_resource() {
        let crds = embedded_crd_objects();
        assert_eq!(crds.len(), EMBEDDED_CRDS.len());
        let mut reg = Registry::default();
        reg.set_crds(crds.iter());
        let vs = reg
            .by_plural("snapshot.storage.k8s.io", "volumesnapshots")
            .expect("vs");
        assert_eq!(vs.short_names, vec!["vs"]);
        assert!(vs.namespaced && vs.has_status() && vs.serves("v1"));
        let vgs = reg
            .by_plural("groupsnapshot.storage.k8s.io", "volumegroupsnapshots")
            .expect("vgs");
        assert_eq!(vgs.preferred_version(), "v1");
        assert!(vgs.serves("v1beta1") && vgs.serves("v1beta2"));
        let vsc = reg
            .by_kind("snapshot.storage.k8s.io", "VolumeSnapshotContent")
            .expect("vsc");
        assert!(!vsc.namespaced);
        assert!(!vsc.serves("v1beta1"), "v1beta1 is not served");
    }
}
