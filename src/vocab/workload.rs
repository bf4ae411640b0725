//! Workload and container references: what a plan names (`deployment/NAME`) and where a command finally runs
//! (a container of a concrete pod). Parsing and display only.

use std::fmt;
use std::str::FromStr;

/// The kind of workload a hook execs into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    Pod,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::Pod => "pod",
        }
    }
}

/// A workload reference as written in plans and the original's env: `deployment/NAME`, `statefulset/NAME`,
/// `pod/NAME`. Short forms `deploy/`, `sts/` and `po/` are accepted as kubectl accepts them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
}

/// Why a workload reference string is malformed. The message is written for a diagnostic's label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadRefError {
    #[error("expected KIND/NAME (for example `deployment/app-base`), found `{0}`")]
    MissingSlash(String),
    #[error("unknown workload kind `{0}`; expected deployment, statefulset or pod")]
    UnknownKind(String),
    #[error("workload name is empty")]
    EmptyName,
}

impl FromStr for WorkloadRef {
    type Err = WorkloadRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = s
            .split_once('/')
            .ok_or_else(|| WorkloadRefError::MissingSlash(s.to_string()))?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
            "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
            "pod" | "pods" | "po" => WorkloadKind::Pod,
            _ => return Err(WorkloadRefError::UnknownKind(kind.to_string())),
        };
        if name.is_empty() {
            return Err(WorkloadRefError::EmptyName);
        }
        Ok(WorkloadRef {
            kind,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// A container in a concrete, running pod: where a command actually executes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pod/{} (container {}) in namespace {}",
            self.pod, self.container, self.namespace
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_refs_parse_long_and_short_forms() {
        let cases = [
            ("deployment/app-base", WorkloadKind::Deployment, "app-base"),
            ("deploy/app", WorkloadKind::Deployment, "app"),
            ("statefulset/db", WorkloadKind::StatefulSet, "db"),
            ("sts/db", WorkloadKind::StatefulSet, "db"),
            ("pod/p-0", WorkloadKind::Pod, "p-0"),
        ];
        for (input, kind, name) in cases {
            let parsed: WorkloadRef = input.parse().expect(input);
            assert_eq!(parsed.kind, kind, "{input}");
            assert_eq!(parsed.name, name, "{input}");
        }
    }

    #[test]
    fn malformed_workload_refs_say_what_is_wrong() {
        assert_eq!(
            "app-base".parse::<WorkloadRef>(),
            Err(WorkloadRefError::MissingSlash("app-base".into()))
        );
        assert_eq!(
            "daemonset/x".parse::<WorkloadRef>(),
            Err(WorkloadRefError::UnknownKind("daemonset".into()))
        );
        assert_eq!(
            "pod/".parse::<WorkloadRef>(),
            Err(WorkloadRefError::EmptyName)
        );
    }

    #[test]
    fn workload_refs_display_in_canonical_form() {
        let parsed: WorkloadRef = "sts/db".parse().unwrap();
        assert_eq!(parsed.to_string(), "statefulset/db");
    }
}
