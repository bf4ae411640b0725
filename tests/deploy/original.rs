//! The original's style runs: a tenant installed like the original backup-ns (tests/deploy/fixtures/
//! original-static.yaml: a `BAK_*` env ConfigMap, a CronJob running `backup-ns run` with no plan file) backs up on
//! schedule as the tenant ServiceAccount of deploy/static/backup-ns.yaml: the postgres hook's dump lands on the
//! volume, and each night's snapshot is dated by the simulated clock, typed and annotated as the original did.

use chrono::NaiveDate;

use super::rbac_model::{TENANT, tenant_manifest};
use super::read;
use super::stage::{Stage, vienna};

/// deploy/static/backup-ns.yaml for `TENANT` without its plan ConfigMap and CronJob: the service account and RBAC.
fn tenant_rbac() -> String {
    tenant_manifest(TENANT)
        .split("\n---\n")
        .filter(|d| !d.contains("\nkind: ConfigMap\n") && !d.contains("\nkind: CronJob\n"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_style_bak_env_configmap_backs_up_with_no_plan_file() {
    let first = NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
    let stage = Stage::start(vienna(first, 0, 0) - chrono::Duration::hours(1)).await;
    let original = read("tests/deploy/fixtures/original-static.yaml");
    let port = "BAK_DB_POSTGRES_PORT: \"5432\"";
    assert!(original.contains(port), "the fixture's port moved");
    let original = stage.local_locks(
        &original
            .replace("namespace: my-app", &format!("namespace: {TENANT}"))
            .replace(
                port,
                &format!("BAK_DB_POSTGRES_PORT: \"{}\"", stage.pg.port),
            ),
    );
    stage
        .apply(&[Stage::controller_static(), tenant_rbac(), original])
        .await;

    for night in 0..2 {
        let day = first + chrono::Duration::days(night);
        stage.night(TENANT, "backup", vienna(day, 0, 15)).await;
        // Tonight's dump is on the volume.
        let dump = std::fs::read(stage.sim.pvc_dir(TENANT, "data").join("dump.sql.gz"))
            .expect("the dump on the PVC");
        assert!(dump.starts_with(&[0x1f, 0x8b]), "a gzip dump");
        std::fs::remove_file(stage.sim.pvc_dir(TENANT, "data").join("dump.sql.gz"))
            .expect("remove the dump");
    }

    let mut snapshots = stage.sim.list("volumesnapshots", Some(TENANT));
    snapshots.sort_by_key(|s| s["metadata"]["name"].as_str().map(str::to_owned));
    assert_eq!(snapshots.len(), 2, "{snapshots:#?}");
    for (night, vs) in snapshots.iter().enumerate() {
        let day = first + chrono::Duration::days(night as i64);
        let name = vs["metadata"]["name"].as_str().expect("name");
        assert!(
            name.starts_with(&format!("data-{day}")),
            "{name} is dated {day}"
        );
        let labels = &vs["metadata"]["labels"];
        assert_eq!(labels["backup-ns.sh/type"], "cronjob", "{vs:#}");
        // BAK_LABEL_VS_POD from the downward API: the pod of that night's Job.
        assert!(
            labels["backup-ns.sh/pod"]
                .as_str()
                .is_some_and(|p| p.starts_with("backup-")),
            "{vs:#}"
        );
        let config = vs["metadata"]["annotations"]["backup-ns.sh/env-config"]
            .as_str()
            .unwrap_or_else(|| panic!("the env-config annotation: {vs:#}"));
        assert!(
            config.contains("BAK_DB_POSTGRES='true'")
                && config.contains(&format!("BAK_NAMESPACE='{TENANT}'")),
            "{config}"
        );
    }
}
