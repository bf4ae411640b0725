//! Authentication (bearer tokens: the kubeconfig's admin identity and service-account tokens issued through
//! the TokenRequest subresource) and RBAC authorization against the stored Roles/ClusterRoles/Bindings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::status::{ApiError, qualified};
use crate::store::Store;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name (`system:serviceaccount:NS:NAME` for service accounts).
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The kubeconfig's admin identity (bypasses RBAC).
    pub fn admin() -> Self {
        UserInfo {
            name: "kube-sim-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    /// A service account.
    pub fn service_account(ns: &str, name: &str) -> Self {
        UserInfo {
            name: format!("system:serviceaccount:{ns}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// No credentials.
    pub fn anonymous() -> Self {
        UserInfo {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    /// Members of system:masters are never refused.
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// Issued bearer tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    admin: String,
    inner: Arc<Mutex<HashMap<String, UserInfo>>>,
}

impl Tokens {
    /// A token table with a fresh admin token.
    pub fn new() -> Self {
        Tokens {
            admin: format!("kube-sim-admin-{}", uuid::Uuid::new_v4().simple()),
            inner: Arc::default(),
        }
    }

    /// The admin token written into the kubeconfig.
    pub fn admin_token(&self) -> &str {
        &self.admin
    }

    /// Issue a token for a service account.
    pub fn issue(&self, ns: &str, sa: &str) -> String {
        let token = format!("kube-sim-sa.{ns}.{sa}.{}", uuid::Uuid::new_v4().simple());
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), UserInfo::service_account(ns, sa));
        token
    }

    /// Resolve an `Authorization` header value. None = no credentials; Err = invalid token (401).
    pub fn authenticate(&self, header: Option<&str>) -> Result<Option<UserInfo>, ApiError> {
        let Some(h) = header else { return Ok(None) };
        let Some(token) = h.strip_prefix("Bearer ").map(str::trim) else {
            return Err(ApiError::new(401, "Unauthorized", "Unauthorized"));
        };
        if token == self.admin {
            return Ok(Some(UserInfo::admin()));
        }
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
            .map(Some)
            .ok_or_else(|| ApiError::new(401, "Unauthorized", "Unauthorized"))
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Self::new()
    }
}

/// One authorization question.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    /// Verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`).
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource (`status`, `exec`, ...), empty for none.
    pub subresource: String,
    /// Namespace, empty for cluster scope.
    pub namespace: String,
    /// Object name, empty for collections.
    pub name: String,
}

fn list_has(v: Option<&Value>, want: &str) -> bool {
    v.and_then(Value::as_array).is_some_and(|a| {
        a.iter()
            .any(|x| x.as_str() == Some("*") || x.as_str() == Some(want))
    })
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if !list_has(rule.get("verbs"), &a.verb) || !list_has(rule.get("apiGroups"), &a.group) {
        return false;
    }
    let full = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resources_ok = rule
        .get("resources")
        .and_then(Value::as_array)
        .is_some_and(|rs| {
            rs.iter().filter_map(Value::as_str).any(|r| {
                r == "*"
                    || r == full
                    || (a.subresource.is_empty() && r == a.resource)
                    || (r.starts_with("*/") && !a.subresource.is_empty() && r[2..] == a.subresource)
                    || (r.ends_with("/*")
                        && !a.subresource.is_empty()
                        && r[..r.len() - 2] == a.resource)
            })
        });
    if !resources_ok {
        return false;
    }
    match rule.get("resourceNames").and_then(Value::as_array) {
        Some(names) if !names.is_empty() => {
            !a.name.is_empty() && names.iter().any(|n| n.as_str() == Some(&a.name))
        }
        _ => true,
    }
}

fn subject_matches(subject: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let kind = subject
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = subject
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        _ => false,
    }
}

/// Whether `user` may do `a`, by the stored RBAC objects. Returns the reason when allowed.
pub fn authorize(store: &Store, user: &UserInfo, a: &Attributes) -> bool {
    if user.is_admin() {
        return true;
    }
    let rules_of = |kind: &str, ns: &str, name: &str| -> Vec<Value> {
        let obj = if kind == "ClusterRole" {
            store.find("rbac.authorization.k8s.io", "clusterroles", "", name)
        } else {
            store.find("rbac.authorization.k8s.io", "roles", ns, name)
        };
        obj.and_then(|o| o.get("rules").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    };
    let check_binding = |b: &Value, ns: &str| -> bool {
        let subjects = b
            .get("subjects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !subjects.iter().any(|s| subject_matches(s, user, ns)) {
            return false;
        }
        let kind = b
            .pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = b
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        rules_of(kind, ns, name).iter().any(|r| rule_allows(r, a))
    };
    for b in store.all_of("rbac.authorization.k8s.io", "clusterrolebindings") {
        if check_binding(&b, "") {
            return true;
        }
    }
    if !a.namespace.is_empty() {
        for b in store.all_of("rbac.authorization.k8s.io", "rolebindings") {
            let ns = b
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if ns == a.namespace && check_binding(&b, &ns) {
                return true;
            }
        }
    }
    false
}

/// Every rule that applies to `user` in `namespace` (cluster-wide bindings plus the namespace's RoleBindings),
/// as SelfSubjectRulesReview reports them.
pub fn rules_for(store: &Store, user: &UserInfo, namespace: &str) -> Vec<Value> {
    if user.is_admin() {
        return vec![serde_json::json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})];
    }
    let mut out = Vec::new();
    let mut collect = |b: &Value, ns: &str| {
        let subjects = b
            .get("subjects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !subjects.iter().any(|s| subject_matches(s, user, ns)) {
            return;
        }
        let kind = b
            .pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = b
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let role = if kind == "ClusterRole" {
            store.find("rbac.authorization.k8s.io", "clusterroles", "", name)
        } else {
            store.find("rbac.authorization.k8s.io", "roles", ns, name)
        };
        if let Some(rules) = role.and_then(|r| r.get("rules").and_then(Value::as_array).cloned()) {
            out.extend(rules);
        }
    };
    for b in store.all_of("rbac.authorization.k8s.io", "clusterrolebindings") {
        collect(&b, "");
    }
    for b in store.all_of("rbac.authorization.k8s.io", "rolebindings") {
        if b.pointer("/metadata/namespace").and_then(Value::as_str) == Some(namespace) {
            collect(&b, namespace);
        }
    }
    out
}

/// The 403 a real apiserver returns for a refused request.
pub fn forbidden(user: &UserInfo, a: &Attributes) -> ApiError {
    let what = if a.name.is_empty() {
        qualified(&a.group, &a.resource)
    } else {
        format!("{} \"{}\"", qualified(&a.group, &a.resource), a.name)
    };
    let res = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!(
            "{what} is forbidden: User \"{}\" cannot {} resource \"{res}\" in API group \"{}\" {scope}",
            user.name, a.verb, a.group
        ),
    );
    let mut d = serde_json::json!({"kind": a.resource});
    if !a.name.is_empty() {
        d["name"] = a.name.clone().into();
    }
    if !a.group.is_empty() {
        d["group"] = a.group.clone().into();
    }
    e.details = Some(d);
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use serde_json::json;

    fn attrs(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn role_bindings_grant_exactly_their_rules() {
        let store = Store::new(SimClock::new(None));
        store
            .load("rbac.authorization.k8s.io", "roles", json!({"metadata": {"name": "r", "namespace": "app"}, "rules": [
                {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots"], "verbs": ["get", "list", "create"]},
                {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["plan"]}]}))
            .expect("role");
        store
            .load(
                "rbac.authorization.k8s.io",
                "rolebindings",
                json!({"metadata": {"name": "b", "namespace": "app"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "backup", "namespace": "app"}]}),
            )
            .expect("binding");
        let sa = UserInfo::service_account("app", "backup");
        let g = "snapshot.storage.k8s.io";
        assert!(authorize(
            &store,
            &sa,
            &attrs("list", g, "volumesnapshots", "", "app", "")
        ));
        assert!(!authorize(
            &store,
            &sa,
            &attrs("delete", g, "volumesnapshots", "", "app", "x")
        ));
        assert!(!authorize(
            &store,
            &sa,
            &attrs("list", g, "volumesnapshots", "", "other", "")
        ));
        assert!(authorize(
            &store,
            &sa,
            &attrs("create", "", "pods", "exec", "app", "db-0")
        ));
        assert!(!authorize(
            &store,
            &sa,
            &attrs("get", "", "pods", "", "app", "db-0")
        ));
        assert!(authorize(
            &store,
            &sa,
            &attrs("get", "", "configmaps", "", "app", "plan")
        ));
        assert!(!authorize(
            &store,
            &sa,
            &attrs("get", "", "configmaps", "", "app", "other")
        ));
        let other = UserInfo::service_account("app", "intruder");
        assert!(!authorize(
            &store,
            &other,
            &attrs("list", g, "volumesnapshots", "", "app", "")
        ));
        let e = forbidden(&other, &attrs("list", g, "volumesnapshots", "", "app", ""));
        assert_eq!(
            e.message,
            "volumesnapshots.snapshot.storage.k8s.io is forbidden: User \"system:serviceaccount:app:intruder\" cannot list resource \"volumesnapshots\" in API group \"snapshot.storage.k8s.io\" in the namespace \"app\""
        );
    }
}
