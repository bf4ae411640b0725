//! The other two install paths run end to end, like deploy/static in schedules.rs but over a few nights:
//! - the kustomize example overlay (deploy/kustomize/example-tenant, `kubectl kustomize` unchanged but for the
//!   hook's server address and the lock dir): its MariaDB plan dumps a real MariaDB behind statefulset/shop-db;
//! - `helm install` of the chart (the controller part, then the tenant part with the default plan), then a
//!   `helm upgrade` that changes the plan: the next night's snapshot is cut by the new plan, the earlier ones
//!   stay as the old plan made them.
//!
//! Each night the tenant's CronJob runs backup-ns in its pod as the tenant ServiceAccount, and each morning the
//! controller's CronJob runs retention as the controller's.

use std::path::Path;

use chrono::NaiveDate;
use serde_json::Value;

use super::apply::helm_on;
use super::rbac_model::TENANT;
use super::stage::{Stage, point_hooks, vienna};
use super::support::mariadb::Mariadb;
use super::text;
use super::tools::{CHART, kustomize_text};

/// The controller's namespace of the static manifests, which the Helm install reuses.
const SYSTEM: &str = "backup-ns-system";

/// The snapshots of `TENANT`, oldest first (their names start with the local time they were cut).
fn snapshots(stage: &Stage) -> Vec<Value> {
    let mut all = stage.sim.list("volumesnapshots", Some(TENANT));
    all.sort_by_key(|s| s["metadata"]["name"].as_str().map(str::to_owned));
    all
}

/// Every gzip file on PVC `TENANT/data`.
fn dumps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("the PVC's dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".gz"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kustomize_example_overlay_backs_up_its_mariadb_each_night() {
    let first = NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
    let stage = Stage::start(vienna(first, 0, 0)).await;
    let db = Mariadb::start();
    db.create_database("shop");
    db.sql(
        "shop",
        "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2)",
    );
    let mount = "/var/lib/mysql";
    let env = db.container_env("shop");
    // The official image's root: MYSQL_ROOT_PASSWORD over TCP, which the plan's hook uses by default.
    let root_password = &env
        .iter()
        .find(|(k, _)| k == "MYSQL_ROOT_PASSWORD")
        .expect("root password")
        .1;
    db.sql(
        "",
        &format!(
            "CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '{root_password}'; \
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1'"
        ),
    );
    stage.app(
        TENANT,
        "StatefulSet",
        "shop-db",
        ("mariadb", "mariadb:11", mount),
        &env,
    );

    let overlay = kustomize_text("deploy/kustomize/example-tenant");
    assert!(
        overlay.contains("namespace: shop"),
        "the overlay's namespace moved"
    );
    let overlay = stage.local_locks(&point_hooks(&overlay, "mariadb", db.port));
    stage.apply(&[Stage::controller_static(), overlay]).await;

    for night in 0..3 {
        let day = first + chrono::Duration::days(night);
        // The overlay's schedule: 01:45 local (the pod starts in the minute after, which names the snapshot).
        stage.night(TENANT, "backup", vienna(day, 1, 45)).await;
        stage
            .night(SYSTEM, "backup-ns-controller", vienna(day, 4, 30))
            .await;
    }
    let snapshots = snapshots(&stage);
    assert_eq!(snapshots.len(), 3, "{snapshots:#?}");
    for (night, vs) in snapshots.iter().enumerate() {
        let day = first + chrono::Duration::days(night as i64);
        assert!(
            vs["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("data-{day}-014"))),
            "{vs:#}"
        );
        assert_eq!(
            vs["metadata"]["labels"]["backup-ns.sh/plan"], "shop",
            "{vs:#}"
        );
    }
    let on_volume = dumps(&stage.sim.pvc_dir(TENANT, "data"));
    assert!(!on_volume.is_empty(), "the MariaDB dump is on the volume");
}

/// `helm` against the stage's simulator as its admin; fails the test when helm does.
async fn helm(stage: &Stage, args: &[&str]) {
    let out = helm_on(&stage.sim, stage.home(), args).await;
    assert!(out.status.success(), "helm {args:?}: {}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_backs_up_each_night_and_an_upgraded_plan_takes_effect_the_next_night() {
    let first = NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
    let stage = Stage::start(vienna(first, 0, 0)).await;
    let locks = format!("lock.hostPath={}", stage.locks.path().display());

    // The cluster part, as the chart's values file says: once, into its own namespace.
    helm(
        &stage,
        &[
            "install",
            "backup-ns-controller",
            CHART,
            "-n",
            SYSTEM,
            "--create-namespace",
            "--set",
            "controller.enabled=true",
            "--set",
            "backup.enabled=false",
            // Real time between deletions; the nights are simulated.
            "--set-string",
            "controller.settings.BACKUP_NS_DELETE_PAUSE=0s",
        ],
    )
    .await;

    // The tenant part with the chart's default plan, told where this machine's server listens.
    let default_plan: Value =
        serde_saphyr::from_str(&super::read("charts/backup-ns/values.yaml")).expect("values");
    let plan_v1 = point_hooks(
        default_plan["plan"].as_str().expect("the default plan"),
        "postgres",
        stage.pg.port,
    );
    let plan_file = stage.home().join("plan.yaml");
    std::fs::write(&plan_file, &plan_v1).expect("plan");
    let plan_arg = format!("plan={}", plan_file.display());
    let tenant = |verb| {
        [
            verb,
            "backup-ns",
            CHART,
            "-n",
            TENANT,
            "--set",
            locks.as_str(),
            "--set-file",
            plan_arg.as_str(),
        ]
    };
    helm(&stage, &tenant("install")).await;

    for night in 0..2 {
        let day = first + chrono::Duration::days(night);
        stage.night(TENANT, "backup-ns", vienna(day, 0, 15)).await;
        stage
            .night(SYSTEM, "backup-ns-controller", vienna(day, 4, 30))
            .await;
    }

    // The upgrade changes the plan: its snapshots now carry a label of the tenant's.
    let snapshot = "  type: cronjob\n";
    assert!(
        plan_v1.contains(snapshot),
        "the default plan's snapshot moved"
    );
    let plan_v2 = plan_v1.replace(
        snapshot,
        &format!("{snapshot}  labels:\n    example.com/plan: v2\n"),
    );
    std::fs::write(&plan_file, &plan_v2).expect("plan");
    helm(&stage, &tenant("upgrade")).await;
    let day = first + chrono::Duration::days(2);
    stage.night(TENANT, "backup-ns", vienna(day, 0, 15)).await;

    let snapshots = snapshots(&stage);
    assert_eq!(snapshots.len(), 3, "{snapshots:#?}");
    let plan_labels: Vec<&Value> = snapshots
        .iter()
        .map(|vs| &vs["metadata"]["labels"]["example.com/plan"])
        .collect();
    assert_eq!(
        plan_labels,
        [&Value::Null, &Value::Null, &Value::from("v2")],
        "only the night after the upgrade ran the new plan"
    );
    for vs in &snapshots {
        assert_eq!(
            vs["metadata"]["labels"]["backup-ns.sh/plan"], "app",
            "{vs:#}"
        );
        assert_eq!(
            vs["metadata"]["labels"]["backup-ns.sh/type"], "cronjob",
            "{vs:#}"
        );
    }
    assert!(
        dumps(&stage.sim.pvc_dir(TENANT, "data")).contains(&"dump.sql.gz".to_owned()),
        "the postgres dump is on the volume"
    );
}
