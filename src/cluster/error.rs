//! `ClusterError`: every way a Kubernetes API operation can fail, named after the operation and carrying the object,
//! plus [`ApiFailure`], which turns an HTTP status into a sentence and, where obvious, a fix (403 → the missing RBAC
//! verb and resource, 404 → the missing object or CRD).

use std::fmt;
use std::time::Duration;

/// The object an operation was about: its kind, the `resource.group` RBAC names it by, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: &'static str,
    /// The RBAC resource, e.g. `volumesnapshots.snapshot.storage.k8s.io` or `persistentvolumeclaims`.
    pub resource: &'static str,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn new(
        kind: &'static str,
        resource: &'static str,
        namespace: Option<&str>,
        name: &str,
    ) -> Self {
        ObjectRef {
            kind,
            resource,
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// What a list was over: a resource in one namespace or cluster-wide, with an optional selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRef {
    pub resource: &'static str,
    pub namespace: Option<String>,
    pub selector: Option<String>,
}

impl fmt::Display for ListRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.resource)?;
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}")?,
            None => f.write_str(" in all namespaces")?,
        }
        if let Some(sel) = &self.selector {
            write!(f, " matching `{sel}`")?;
        }
        Ok(())
    }
}

/// A failed API call, reduced to what a person needs: status, the server's message, and a suggested fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    /// HTTP status; `None` when the request never got an answer (connection, TLS, timeout).
    pub code: Option<u16>,
    pub reason: String,
    pub message: String,
    pub suggestion: Option<String>,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match (self.code, self.reason.is_empty()) {
            (Some(code), false) => write!(f, " (HTTP {code} {})", self.reason)?,
            (Some(code), true) => write!(f, " (HTTP {code})")?,
            (None, _) => {}
        }
        if let Some(s) = &self.suggestion {
            write!(f, "; {s}")?;
        }
        Ok(())
    }
}

impl ApiFailure {
    /// Describes `err`, raised by `verb` on `resource` (in `namespace`, if namespaced), and suggests a fix.
    pub fn from_kube(
        err: &kube::Error,
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
        object: Option<&str>,
    ) -> Self {
        match err {
            kube::Error::Api(status) => {
                let code = status.code;
                let suggestion = suggest(code, verb, resource, namespace, object);
                ApiFailure {
                    code: Some(code),
                    reason: status.reason.clone(),
                    message: if status.message.is_empty() {
                        "the apiserver refused the request".to_string()
                    } else {
                        status.message.clone()
                    },
                    suggestion,
                }
            }
            // The apiserver answered 200, but with something that is not the object asked for: JSON cut short, a
            // proxy's HTML page, or fields of the wrong type. Nothing in it is used.
            kube::Error::SerdeError(e) => ApiFailure {
                code: None,
                reason: String::new(),
                message: format!(
                    "the apiserver's answer is not valid JSON for {resource}: {}",
                    unreadable_answer(e)
                ),
                suggestion: Some(
                    "nothing in that answer was used; the apiserver, or a proxy between it and backup-ns, \
                     sent a cut-short, non-JSON or wrongly typed answer: check the server URL in the kubeconfig \
                     and any proxy on the way"
                        .to_string(),
                ),
            },
            kube::Error::FromUtf8(e) => ApiFailure {
                code: None,
                reason: String::new(),
                message: format!("the apiserver's answer for {resource} is not UTF-8 text: {e}"),
                suggestion: Some(
                    "nothing in that answer was used; check the server URL in the kubeconfig and any proxy on \
                     the way"
                        .to_string(),
                ),
            },
            other => ApiFailure {
                code: None,
                reason: String::new(),
                message: other.to_string(),
                suggestion: Some(
                    "could not talk to the apiserver; check the server URL in the kubeconfig and the network"
                        .to_string(),
                ),
            },
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code == Some(404)
    }

    pub fn is_forbidden(&self) -> bool {
        self.code == Some(403)
    }
}

/// What is wrong with an answer that did not parse, in words: where it ended, or which field had what.
fn unreadable_answer(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => format!("it ends early ({e})"),
        Category::Syntax => format!("it is not JSON ({e})"),
        Category::Data | Category::Io => format!("a field has the wrong type ({e})"),
    }
}

/// The fix for an HTTP status, when it is obvious.
fn suggest(
    code: u16,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    object: Option<&str>,
) -> Option<String> {
    match code {
        401 => Some(
            "the credentials were rejected; check the user or token in the kubeconfig".to_string(),
        ),
        403 => Some(match namespace {
            Some(ns) => format!(
                "the service account needs RBAC verb `{verb}` on `{resource}` in namespace {ns} (a Role and \
                 RoleBinding there)"
            ),
            None => format!(
                "the service account needs RBAC verb `{verb}` on `{resource}` cluster-wide (a ClusterRole and \
                 ClusterRoleBinding)"
            ),
        }),
        404 => Some(match object {
            Some(name) => format!(
                "`{name}` does not exist{}",
                namespace
                    .map(|ns| format!(" in namespace {ns}"))
                    .unwrap_or_default()
            ),
            None => format!(
                "the API for `{resource}` is not served; are its CRDs installed (snapshot.storage.k8s.io/v1, \
                 groupsnapshot.storage.k8s.io/v1)?"
            ),
        }),
        409 => Some(match object {
            Some(name) => format!("`{name}` already exists or was changed concurrently"),
            None => "the object was changed concurrently; retry".to_string(),
        }),
        422 => Some("the apiserver rejected the object as invalid".to_string()),
        429 => Some("the apiserver is throttling requests; retry later".to_string()),
        500..=599 => Some("the apiserver failed; retry later".to_string()),
        _ => None,
    }
}

/// Every failure of the cluster layer. Variants are named after the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("could not configure the Kubernetes client: {message}")]
    Config { message: String },
    #[error("could not get {object}: {failure}")]
    Get {
        object: ObjectRef,
        failure: Box<ApiFailure>,
    },
    #[error("could not list {list}: {failure}")]
    List {
        list: ListRef,
        failure: Box<ApiFailure>,
    },
    #[error("could not create {object}: {failure}")]
    Create {
        object: ObjectRef,
        failure: Box<ApiFailure>,
    },
    #[error("could not patch {object}: {failure}")]
    Patch {
        object: ObjectRef,
        failure: Box<ApiFailure>,
    },
    /// A JSON patch `test` op failed: someone else changed the label since we read it. Re-read and decide again.
    #[error(
        "{object} was changed concurrently ({detail}); nothing was overwritten, re-read it and retry"
    )]
    Conflict { object: ObjectRef, detail: String },
    #[error("could not delete {object}: {failure}")]
    Delete {
        object: ObjectRef,
        failure: Box<ApiFailure>,
    },
    #[error("could not watch {object}: {message}")]
    Watch { object: ObjectRef, message: String },
    /// A required object does not exist (preflight: namespace, PVC, class).
    #[error("{object} does not exist")]
    Missing { object: ObjectRef },
    #[error("{object} did not become ready within {}", humantime::format_duration(*.after))]
    NotReady { object: ObjectRef, after: Duration },
    /// The snapshot controller reported `status.error`.
    #[error("{object} failed: {message}")]
    SnapshotFailed { object: ObjectRef, message: String },
    #[error("{object} disappeared while waiting for it")]
    Vanished { object: ObjectRef },
    /// The object exists but cannot be used as asked (not Bound, no bound content, no default class ...).
    #[error("{object}: {problem}")]
    Unusable { object: ObjectRef, problem: String },
    #[error("could not read the logs of {object}: {message}")]
    Logs { object: ObjectRef, message: String },
    #[error("{object} did not finish within {}", humantime::format_duration(*.after))]
    JobTimeout { object: ObjectRef, after: Duration },
}

impl ClusterError {
    /// The API failure behind this error, if it came from an HTTP call.
    pub fn failure(&self) -> Option<&ApiFailure> {
        match self {
            ClusterError::Get { failure, .. }
            | ClusterError::List { failure, .. }
            | ClusterError::Create { failure, .. }
            | ClusterError::Patch { failure, .. }
            | ClusterError::Delete { failure, .. } => Some(failure.as_ref()),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ClusterError::Missing { .. })
            || self.failure().is_some_and(ApiFailure::is_not_found)
    }

    pub fn is_forbidden(&self) -> bool {
        self.failure().is_some_and(ApiFailure::is_forbidden)
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, ClusterError::Conflict { .. })
    }
}

/// A `Result` whose error is [`ClusterError`].
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            status: None,
            code,
            message: message.to_string(),
            metadata: None,
            reason: reason.to_string(),
            details: None,
        }))
    }

    #[test]
    fn an_answer_that_does_not_parse_names_the_resource_and_what_was_wrong_not_the_network() {
        let parse = |text: &str| {
            let e = serde_json::from_str::<std::collections::BTreeMap<String, String>>(text)
                .expect_err("does not parse");
            ApiFailure::from_kube(
                &kube::Error::SerdeError(e),
                "list",
                "volumesnapshots.snapshot.storage.k8s.io",
                Some("shop"),
                None,
            )
            .to_string()
        };
        for (text, what) in [
            (r#"{"a": "b"#, "it ends early"),
            ("<html>", "it is not JSON"),
            (r#"{"a": ["b"]}"#, "a field has the wrong type"),
        ] {
            let said = parse(text);
            assert!(
                said.starts_with(
                    "the apiserver's answer is not valid JSON for volumesnapshots.snapshot.storage.k8s.io: "
                ) && said.contains(what)
                    && said.contains("nothing in that answer was used")
                    && !said.contains("could not talk"),
                "{said}"
            );
        }
    }

    #[test]
    fn a_forbidden_call_names_the_missing_rbac_verb_and_resource() {
        let f = ApiFailure::from_kube(
            &api_error(403, "Forbidden", "forbidden"),
            "patch",
            "volumesnapshotcontents.snapshot.storage.k8s.io",
            None,
            Some("snapcontent-1"),
        );
        let text = f.to_string();
        assert!(text.contains("HTTP 403 Forbidden"), "{text}");
        assert!(
            text.contains(
                "RBAC verb `patch` on `volumesnapshotcontents.snapshot.storage.k8s.io` cluster-wide"
            ),
            "{text}"
        );
        assert!(f.is_forbidden());
    }

    #[test]
    fn a_namespaced_forbidden_call_suggests_a_role_in_that_namespace() {
        let f = ApiFailure::from_kube(
            &api_error(403, "Forbidden", "nope"),
            "create",
            "volumesnapshots.snapshot.storage.k8s.io",
            Some("shop"),
            None,
        );
        assert!(f.to_string().contains("in namespace shop (a Role"), "{f}");
    }

    #[test]
    fn a_missing_object_and_a_missing_crd_read_differently() {
        let obj = ApiFailure::from_kube(
            &api_error(404, "NotFound", "not found"),
            "get",
            "persistentvolumeclaims",
            Some("shop"),
            Some("data"),
        );
        assert!(
            obj.to_string()
                .contains("`data` does not exist in namespace shop"),
            "{obj}"
        );
        let crd = ApiFailure::from_kube(
            &api_error(404, "NotFound", "404 page not found"),
            "list",
            "volumegroupsnapshots.groupsnapshot.storage.k8s.io",
            None,
            None,
        );
        assert!(crd.to_string().contains("CRDs installed"), "{crd}");
    }

    #[test]
    fn errors_name_the_object_they_are_about() {
        let err = ClusterError::Get {
            object: ObjectRef::new(
                "PersistentVolumeClaim",
                "persistentvolumeclaims",
                Some("shop"),
                "data",
            ),
            failure: Box::new(ApiFailure::from_kube(
                &api_error(404, "NotFound", "persistentvolumeclaims \"data\" not found"),
                "get",
                "persistentvolumeclaims",
                Some("shop"),
                Some("data"),
            )),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("could not get PersistentVolumeClaim shop/data:"),
            "{text}"
        );
        assert!(err.is_not_found());
        assert!(!err.is_forbidden());
    }
}
