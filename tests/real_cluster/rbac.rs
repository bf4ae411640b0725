//! The real authorizer over the shipped RBAC split: deploy/static/backup-ns-controller.yaml and the tenant's
//! deploy/static/backup-ns.yaml (namespace rewritten, as the README says) are applied, each service account gets a
//! token from the TokenRequest API (`kubectl create token`), and `kubectl auth can-i` must agree with the model the
//! kube-sim deploy tests check. Then the backup-ns binary runs with each identity's kubeconfig: the tenant backs up
//! its namespace and gets a 403 on other namespaces and on VolumeSnapshotContent writes; the controller's retention
//! works.

use crate::cluster::{RealCluster, backup_ns_with, kubectl_with, plan_file, text};
use crate::rbac_model::{
    CONTROLLER_ALLOWED, CONTROLLER_FORBIDDEN, OTHER, TENANT, TENANT_ALLOWED, TENANT_FORBIDDEN,
    tenant_manifest,
};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A kubeconfig for `namespace/account` with a fresh token: the admin's server and CA, the token as the user.
pub(crate) fn kubeconfig_as(
    cluster: &RealCluster,
    dir: &Path,
    namespace: &str,
    account: &str,
) -> PathBuf {
    let token = cluster.kubectl(&[
        "-n",
        namespace,
        "create",
        "token",
        account,
        "--duration",
        "1h",
    ]);
    let server = cluster.kubectl(&[
        "config",
        "view",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let path = dir.join(format!("{account}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: '{server}', certificate-authority: '{}'}}}}]
users: [{{name: {account}, user: {{token: '{}'}}}}]
contexts: [{{name: c, context: {{cluster: c, user: {account}, namespace: {namespace}}}}}]
current-context: c
",
            cluster.dir().join("pki/ca.crt").display(),
            token.trim()
        ),
    )
    .expect("writing the kubeconfig");
    path
}

fn can_i(kubeconfig: &Path, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let out = kubectl_with(kubeconfig, &all, "");
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        _ => panic!("kubectl auth can-i {args:?}: {}", text(&out)),
    }
}

/// A failure that the real authorizer caused, with the product's explanation.
fn assert_forbidden(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("403 Forbidden"),
        "{what} must get a 403: {}",
        text(out)
    );
}

#[test]
fn the_real_authorizer_holds_the_tenant_to_its_namespace_and_lets_the_controller_do_retention() {
    let cluster = RealCluster::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    for ns in [TENANT, OTHER] {
        cluster.namespace_with_claims(ns, &["data"]);
    }
    // Held to the end: the Helm test removes and reinstalls the same ClusterRoles.
    let _lock = RealCluster::cluster_scoped_lock();
    cluster.kubectl_with_stdin(
        &["apply", "--server-side", "-f", "-"],
        &std::fs::read_to_string(
            crate::cluster::repo().join("deploy/static/backup-ns-controller.yaml"),
        )
        .expect("reading the controller manifest"),
    );
    cluster.kubectl_with_stdin(
        &["apply", "--server-side", "-f", "-"],
        &tenant_manifest(TENANT),
    );
    cluster.suspend_cronjobs();
    let tenant = kubeconfig_as(cluster, dir.path(), TENANT, "backup-ns");
    let controller = kubeconfig_as(
        cluster,
        dir.path(),
        "backup-ns-system",
        "backup-ns-controller",
    );

    for (who, kubeconfig, allowed, forbidden) in [
        ("tenant", &tenant, TENANT_ALLOWED, TENANT_FORBIDDEN),
        (
            "controller",
            &controller,
            CONTROLLER_ALLOWED,
            CONTROLLER_FORBIDDEN,
        ),
    ] {
        for args in allowed {
            assert!(can_i(kubeconfig, args), "{who} should be allowed: {args:?}");
        }
        for args in forbidden {
            assert!(
                !can_i(kubeconfig, args),
                "{who} must be forbidden: {args:?}"
            );
        }
    }

    // The tenant backs up its own namespace (a snapshot-only plan: no exec needed).
    let plan = plan_file(dir.path(), "app", TENANT, &["data"], false);
    let run = backup_ns_with(&tenant, &["run", plan.to_str().expect("utf8 path")], &[]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "the tenant runs its plan: {}",
        text(&run)
    );
    let snapshot = cluster
        .snapshot_names(TENANT)
        .pop()
        .expect("the tenant's snapshot");
    let other_plan = plan_file(dir.path(), "theirs", OTHER, &["data"], false);
    let admin_run = cluster.backup_ns(&["run", other_plan.to_str().expect("utf8 path")], &[]);
    assert_eq!(admin_run.status.code(), Some(0), "{}", text(&admin_run));

    // Another namespace's snapshots: neither listed nor snapshotted.
    assert_forbidden(
        "tenant listing another namespace",
        &backup_ns_with(&tenant, &["list", "-n", OTHER], &[]),
    );
    assert_forbidden(
        "tenant listing all namespaces",
        &backup_ns_with(&tenant, &["list", "-A"], &[]),
    );
    let foreign = backup_ns_with(
        &tenant,
        &["run", other_plan.to_str().expect("utf8 path")],
        &[],
    );
    assert!(!foreign.status.success(), "{}", text(&foreign));
    assert!(
        String::from_utf8_lossy(&foreign.stderr).contains("forbidden")
            || String::from_utf8_lossy(&foreign.stdout).contains("forbidden"),
        "a run into another namespace names the refusal: {}",
        text(&foreign)
    );
    assert_eq!(
        cluster.snapshot_names(OTHER).len(),
        1,
        "nothing created in {OTHER}"
    );

    // VolumeSnapshotContent writes: label sync and delete (which switches the content to Delete first).
    assert_forbidden(
        "tenant syncing labels onto contents",
        &backup_ns_with(&tenant, &["sync-labels", "-n", TENANT], &[]),
    );
    assert_forbidden(
        "tenant deleting its snapshot",
        &backup_ns_with(&tenant, &["delete", &snapshot, "-n", TENANT, "--yes"], &[]),
    );
    let (content, _) = cluster.content_of(TENANT, &snapshot);
    let patch = kubectl_with(
        &tenant,
        &[
            "patch",
            "volumesnapshotcontent",
            &content,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"deletionPolicy":"Delete"}}"#,
        ],
        "",
    );
    assert!(
        !patch.status.success() && String::from_utf8_lossy(&patch.stderr).contains("forbidden"),
        "{}",
        text(&patch)
    );
    assert_eq!(
        cluster.kubectl(&[
            "get",
            "volumesnapshotcontent",
            &content,
            "-o",
            "jsonpath={.spec.deletionPolicy}"
        ]),
        "Retain"
    );
    assert_eq!(
        cluster.snapshot_names(TENANT),
        std::slice::from_ref(&snapshot)
    );

    // The controller, with its own token, plans retention across every namespace (`--force`: the other tests'
    // namespaces on the shared cluster would trip the mass-deletion guard) and writes contents' labels.
    let ctl = backup_ns_with(
        &controller,
        &["controller", "-A", "--dry-run", "--force", "-o", "json"],
        &[],
    );
    assert_eq!(ctl.status.code(), Some(0), "{}", text(&ctl));
    let sync = backup_ns_with(&controller, &["sync-labels", "-n", TENANT], &[]);
    assert_eq!(sync.status.code(), Some(0), "{}", text(&sync));
    let labels = cluster.kubectl(&[
        "get",
        "volumesnapshotcontent",
        &content,
        "-o",
        "jsonpath={.metadata.labels.backup-ns\\.sh/pvc}",
    ]);
    assert_eq!(
        labels, "data",
        "the controller copied the labels onto the content"
    );
}
