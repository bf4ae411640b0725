//! The mass-deletion guard through the CLI: `prune` refuses with exit 5 and deletes nothing in that namespace;
//! `--force` overrides. Snapshots without `backup-ns.sh/retain` are never deleted, forced or not.

use crate::cli::{backup_ns, doomed_namespace, text};
use crate::support::{Seed, labels, names, seed_docs, start, utc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_trips_with_exit_5_and_force_overrides_it() {
    let env = start().await;
    doomed_namespace(&env, "shop", 6);
    doomed_namespace(&env, "calm", 1);
    // Unmanaged look-alikes: a past delete-after, but no retain label.
    env.sim
        .apply_yaml(&seed_docs(&Seed {
            namespace: "shop",
            name: "unlabelled",
            pvc: "data",
            labels: labels(&[("backup-ns.sh/delete-after", "2000-01-01")]),
            retention: None,
            created: utc("2020-01-01T00:00:00Z"),
            policy: "Delete",
        }))
        .unwrap();

    let now = "2025-03-01T04:30:00Z";
    let out = backup_ns(&env, &["prune", "-A", "--delete-pause", "0s"], now).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("GUARD shop"),
        "{}",
        text(&out)
    );
    assert_eq!(
        names(&env.sim, "shop").len(),
        7,
        "nothing deleted while the guard trips"
    );

    let out = backup_ns(
        &env,
        &["prune", "-A", "--delete-pause", "0s", "--force"],
        now,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        names(&env.sim, "shop"),
        vec!["data-000".to_string(), "unlabelled".to_string()]
    );

    // Converged: nothing left to do.
    let out = backup_ns(
        &env,
        &["prune", "-A", "--delete-pause", "0s", "-o", "json"],
        now,
    )
    .await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcomes"], serde_json::json!([]), "{report:#}");
}
