//! The product against the real thing: `scripts/cluster up` starts Kubernetes' own control plane and the CSI
//! snapshot stack built from the modules pinned in tools/k8s/, and these tests drive it with the real kubectl,
//! Helm and the built backup-ns binary. The node is our agent (`kube-sim node-agent`), with `busybox`, `postgres` and
//! `mariadb` mapped to the host's tools and `backup-ns` to the built binary: pods of those images run their commands
//! as host processes (a pod without a command runs none), others run none.
//!
//! The tests share one cluster (started by the first test that needs it, stopped when the test process exits) and
//! keep apart by namespace; only `down`'s own test starts a second one. The first `up` on a machine builds the
//! binaries (many minutes; progress goes to stderr). Missing tools fail the test with the line that installs them;
//! nothing is skipped.

mod cluster;
mod components;
mod conformance;
mod databases;
mod jobs;
mod manifests;
mod operator;
mod pods;
mod rbac;
mod rbac_mutants;
mod retention;
mod run;

#[path = "../support/mod.rs"]
mod support;

/// The RBAC expectations of the shipped manifests, shared with the kube-sim deploy tests.
#[path = "../deploy/rbac_model.rs"]
mod rbac_model;

/// Helm and kustomize as the kube-sim deploy tests drive them (the same values matrix and kustomize dirs).
#[path = "../deploy/tools.rs"]
#[allow(dead_code)]
mod tools;

// What tools.rs takes from its parent module.
use cluster::{repo, text};

/// Every document of a multi-document YAML file.
fn docs(yaml: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple::<serde_json::Value>(yaml)
        .unwrap_or_else(|e| panic!("manifest is not valid YAML: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The kubectl on PATH; `scripts/cluster` and the tests' preflight name its install line when it is missing.
fn kubectl_bin() -> std::path::PathBuf {
    std::path::PathBuf::from("kubectl")
}
