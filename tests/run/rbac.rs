//! The shipped per-namespace RBAC (deploy/static/backup-ns.yaml + the controller's cluster-read role) is enough for an
//! in-namespace `backup-ns run`, including its retention step, without any VolumeSnapshotContent rights.

use crate::{both, pod, pvc, start_with};
use backup_ns::labels;

/// The ServiceAccount/Role/Binding documents of a deploy file, moved into namespace `shop`.
fn rbac_documents(text: &str) -> String {
    text.split("\n---\n")
        .filter(|doc| {
            doc.lines().any(|l| {
                matches!(
                    l.trim(),
                    "kind: ServiceAccount"
                        | "kind: Role"
                        | "kind: RoleBinding"
                        | "kind: ClusterRole"
                        | "kind: ClusterRoleBinding"
                )
            })
        })
        .map(|doc| doc.replace("my-app", "shop"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_namespace_rbac_runs_a_backup_twice_with_tier_labels_only_on_the_first() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tenant = std::fs::read_to_string(format!("{root}/deploy/static/backup-ns.yaml")).unwrap();
    let controller =
        std::fs::read_to_string(format!("{root}/deploy/static/backup-ns-controller.yaml")).unwrap();
    let fixture = format!(
        "{}{}\n---\n{}\n---\n{}",
        pvc("data"),
        pod("app-0", "app", &[], &[("data", "/data")]),
        rbac_documents(&tenant),
        rbac_documents(&controller)
    );
    let env = start_with(&fixture, true).await;
    let kubeconfig = env.tmp.path().join("tenant-kubeconfig");
    // The admin kubeconfig trusts the sim's CA; swap its token for the tenant service account's.
    let admin = std::fs::read_to_string(env.sim.kubeconfig_path()).unwrap();
    let tenant_token = env.sim.token_for("shop", "backup-ns");
    let swapped: String = admin
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("token:") {
                format!("    token: {tenant_token}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(swapped.contains(&tenant_token));
    std::fs::write(&kubeconfig, swapped).unwrap();
    let plan = env.plan(
        "p.yaml",
        "name: app
namespace: shop
targets: [data]
hooks:
  pre:
    - type: exec
      workload: pod/app-0
      container: app
      command: [touch, /data/flushed]
",
    );
    let k = kubeconfig.to_str().unwrap();
    let now = [("BACKUP_NS_NOW", "2025-03-05T01:00:00Z")];
    let first = env
        .run(&["run", plan.to_str().unwrap(), "--kubeconfig", k], &now)
        .await;
    assert_eq!(first.status.code(), Some(0), "{}", both(&first));
    let later = [("BACKUP_NS_NOW", "2025-03-05T13:00:00Z")];
    let second = env
        .run(
            &[
                "run",
                plan.to_str().unwrap(),
                "--kubeconfig",
                k,
                "-o",
                "json",
            ],
            &later,
        )
        .await;
    assert_eq!(second.status.code(), Some(0), "{}", both(&second));
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let retention = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "retention")
        .unwrap();
    assert_eq!(retention["outcome"], "ok", "{retention:#?}");

    let mut snaps = env.snapshots();
    assert_eq!(snaps.len(), 2);
    snaps.sort_by_key(|s| s["metadata"]["name"].as_str().unwrap().to_string());
    let [a, b] = [
        &snaps[0]["metadata"]["labels"],
        &snaps[1]["metadata"]["labels"],
    ];
    assert!(a[labels::DAILY] == "2025-03-05" || b[labels::DAILY] == "2025-03-05");
    assert!(
        a.get(labels::DAILY).is_none() || b.get(labels::DAILY).is_none(),
        "only the first snapshot of the day holds the daily label: {a} {b}"
    );
    assert_eq!(env.events_about("data").await.len(), 2);
}
