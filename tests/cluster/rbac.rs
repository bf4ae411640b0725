//! A tenant's service account under RBAC: what it may do works, and what it may not do is reported with the
//! missing verb and resource, and leaves nothing half done.

use crate::support::{BASE, eventually};
use backup_ns::cluster::{Cluster, ClusterError, ConnectOptions, NewSnapshot};
use kube_sim::Sim;
use std::time::Duration;

/// The tenant may manage VolumeSnapshots in its namespace but has no access to cluster-scoped contents.
const TENANT_ROLE: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: backup
  namespace: shop
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: backup
  namespace: shop
rules:
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshots"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: backup
  namespace: shop
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: backup
subjects:
- kind: ServiceAccount
  name: backup
  namespace: shop
"#;

#[tokio::test]
async fn a_tenant_without_content_access_gets_the_missing_rbac_rule_and_keeps_its_snapshot() {
    let sim = Sim::builder()
        .snapshot_delay(Duration::from_millis(50))
        .rbac(true)
        .start()
        .await
        .expect("kube-sim did not start");
    tokio::time::sleep(Duration::from_millis(20)).await;
    sim.apply_yaml(BASE).unwrap();
    sim.apply_yaml(TENANT_ROLE).unwrap();
    eventually("the PVC is Bound", || {
        sim.get("v1", "persistentvolumeclaims", Some("shop"), "data")
            .is_some_and(|p| p["status"]["phase"] == "Bound")
    })
    .await;

    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("tenant");
    let token = sim.token_for("shop", "backup");
    // The sim's own kubeconfig (server URL and, in RBAC mode, the CA of its TLS endpoint) with the tenant's token
    // in place of the admin's.
    let admin = std::fs::read_to_string(sim.kubeconfig_path()).unwrap();
    let tenant_config: String = admin
        .lines()
        .map(|line| match line.split_once("token: ") {
            Some((indent, _)) if indent.trim().is_empty() => format!("{indent}token: {token}\n"),
            _ => format!("{line}\n"),
        })
        .collect();
    assert!(
        tenant_config.contains(&token),
        "the sim kubeconfig has a token line:\n{admin}"
    );
    std::fs::write(&kubeconfig, tenant_config).unwrap();
    let tenant = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(kubeconfig),
        namespace: Some("shop".into()),
        service_account_namespace_file: Some(tmp.path().join("no-sa")),
        ..Default::default()
    })
    .await
    .unwrap();

    tenant.require_bound_pvc("shop", "data").await.unwrap();
    tenant
        .create_snapshot(&NewSnapshot {
            namespace: "shop".into(),
            name: "t1".into(),
            pvc: "data".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    tenant
        .wait_snapshot_ready("shop", "t1", Duration::from_secs(10))
        .await
        .unwrap();

    let err = tenant.delete_snapshot("shop", "t1").await.unwrap_err();
    assert!(err.is_forbidden(), "{err}");
    assert!(
        err.to_string().contains(
            "the service account needs RBAC verb `get` on `volumesnapshotcontents.snapshot.storage.k8s.io` \
             cluster-wide"
        ),
        "{err}"
    );
    assert!(
        sim.get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("shop"),
            "t1"
        )
        .is_some(),
        "the snapshot must not be deleted when its content could not be switched to Delete"
    );

    let err = tenant.get_pvc("other", "data").await.unwrap_err();
    assert!(matches!(err, ClusterError::Get { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("RBAC verb `get` on `persistentvolumeclaims` in namespace other"),
        "{err}"
    );
}
