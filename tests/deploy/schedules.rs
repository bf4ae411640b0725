//! The static manifests running on their own: deploy/static/ applied with the real kubectl to kube-sim in RBAC
//! mode, with the image mapped to the built binary (`--run-image`), and the simulated clock moved over 30 nights.
//! Each night the tenant CronJob's pod runs `backup-ns run` with the plan from its mounted ConfigMap, connecting
//! with its in-cluster configuration as the tenant ServiceAccount, and sees the simulated date: its postgres hook
//! execs into the app's pod, where a real PostgreSQL answers, and the dump lands on the volume. Each morning the
//! controller CronJob's pod runs retention as the controller ServiceAccount. After 30 days the namespace holds
//! exactly the snapshots the retention simulation of the same policy keeps.
//!
//! The substitutions are the ones the manifests' header asks for (namespace, image, plan.yaml: the hook is told
//! the throwaway server's port), plus two for the test machine: the hostPath lock dir is a temp dir, and the
//! controller's pause between deletions is 0s (it is real time, and the nights are simulated).

use std::collections::BTreeSet;
use std::time::Duration;

use backup_ns::retention::simulate::{Scenario, simulate};
use backup_ns::vocab::retention::{RetentionPolicy, TierCounts};
use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use kube_sim::Sim;
use kube_sim::kubelet::FakeTime;

use super::rbac::{apply_as_admin, cluster_yaml};
use super::rbac_model::{TENANT, tenant_manifest};
use super::read;
use super::support::postgres::Postgres;

const VIENNA: Tz = chrono_tz::Europe::Vienna;

/// The UTC instant of local Vienna time `hh:mm` on `day`.
fn vienna(day: NaiveDate, hh: u32, mm: u32) -> chrono::DateTime<Utc> {
    VIENNA
        .from_local_datetime(&day.and_hms_opt(hh, mm, 0).expect("time"))
        .single()
        .expect("an unambiguous local time")
        .with_timezone(&Utc)
}

/// The Job the CronJob `name` starts for the run scheduled at `at`, once it has finished: true when complete.
async fn finished(sim: &Sim, ns: &str, cronjob: &str, at: chrono::DateTime<Utc>) -> bool {
    let job = format!("{cronjob}-{}", at.timestamp() / 60);
    for _ in 0..600 {
        if let Some(j) = sim.get("batch/v1", "jobs", Some(ns), &job)
            && let Some(c) = j.pointer("/status/conditions/0")
            && c["status"] == "True"
        {
            return c["type"] == "Complete";
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {ns}/{job} did not finish within 30s");
}

/// Every container log of the pods of `ns`, for failure messages.
fn pod_logs(sim: &Sim, ns: &str) -> String {
    sim.list("pods", Some(ns))
        .iter()
        .map(|p| format!("{}: {:#}", p["metadata"]["name"], p["status"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_nights_of_the_static_manifests_keep_the_gfs_set_the_policy_says() {
    let faketime = FakeTime::locate().unwrap_or_else(|message| panic!("{message}"));
    let first = NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
    let sim = Sim::builder()
        .rbac(true)
        .snapshot_delay(Duration::ZERO)
        .clock(Some(vienna(first, 0, 0) - chrono::Duration::hours(1)))
        .run_image(
            format!("backup-ns={}", env!("CARGO_BIN_EXE_backup-ns"))
                .parse()
                .expect("mapping"),
        )
        .run_image("busybox=host".parse().expect("mapping"))
        .faketime(Some(faketime))
        .start()
        .await
        .expect("kube-sim starts");
    sim.apply_yaml(&cluster_yaml()).expect("cluster fixture");
    // The tenant's app: a PostgreSQL (the throwaway server on this host) in deployment/app-base, data on the PVC.
    let pg = Postgres::start();
    pg.create_database("shop");
    pg.psql(
        "shop",
        "CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 100)",
    );
    let env: String = pg
        .container_env("shop")
        .iter()
        .map(|(k, v)| format!("        - {{name: {k}, value: \"{v}\"}}\n"))
        .collect();
    sim.apply_yaml(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-base, namespace: {TENANT}}}\nspec:\n  \
         selector: {{matchLabels: {{app: base}}}}\n  template:\n    metadata: {{labels: {{app: base}}}}\n    spec:\n      \
         containers:\n      - name: postgres\n        image: postgres:17\n        env:\n{env}        \
         volumeMounts: [{{name: data, mountPath: /var/lib/postgresql/data}}]\n      \
         volumes: [{{name: data, persistentVolumeClaim: {{claimName: data}}}}]\n"
    ))
    .expect("the app");
    let home = tempfile::tempdir().expect("temp HOME");
    let locks = tempfile::tempdir().expect("lock dir");

    let hook = "          container: postgres\n";
    let tenant = tenant_manifest(TENANT);
    assert!(
        tenant.contains(hook),
        "the plan's hook moved; update this test"
    );
    let tenant = tenant
        .replace(
            hook,
            &format!(
                "{hook}          host: 127.0.0.1\n          port: {}\n",
                pg.port
            ),
        )
        .replace(
            "path: /mnt/host-backup-locks",
            &format!("path: {}", locks.path().display()),
        );
    let controller = read("deploy/static/backup-ns-controller.yaml").replace(
        "  TZ: \"Europe/Vienna\"\n",
        "  TZ: \"Europe/Vienna\"\n  BACKUP_NS_DELETE_PAUSE: \"0s\"\n",
    );
    apply_as_admin(&sim, home.path(), &[controller, tenant]).await;

    for night in 0..30 {
        let day = first + chrono::Duration::days(night);
        let backup = vienna(day, 0, 15);
        sim.clock().set(backup + chrono::Duration::minutes(1));
        assert!(
            finished(&sim, TENANT, "backup", backup).await,
            "night {day}: the backup job failed:\n{}",
            pod_logs(&sim, TENANT)
        );
        let retention = vienna(day, 4, 30);
        sim.clock().set(retention + chrono::Duration::minutes(1));
        assert!(
            finished(&sim, "backup-ns-system", "backup-ns-controller", retention).await,
            "day {day}: the controller job failed:\n{}",
            pod_logs(&sim, "backup-ns-system")
        );
    }

    // The last night's dump is on the volume (a gzip stream).
    let dump = std::fs::read(sim.pvc_dir(TENANT, "data").join("dump.sql.gz"))
        .expect("the dump on the PVC");
    assert!(
        dump.len() > 100 && dump.starts_with(&[0x1f, 0x8b]),
        "{} bytes",
        dump.len()
    );

    // The tenant's pods ran as its ServiceAccount, in-cluster: the pod's own token, nothing else was given.
    let pod = sim
        .list("pods", Some(TENANT))
        .into_iter()
        .find(|p| p["metadata"]["labels"]["job-name"].is_string())
        .expect("a backup pod");
    assert_eq!(pod["spec"]["serviceAccountName"], "backup-ns");

    let snapshots = sim.list("volumesnapshots", Some(TENANT));
    // Named by backup-ns from its own clock (`{pvc}-{timestamp}-{rand}`, local time): the simulated night.
    let present: BTreeSet<String> = snapshots
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .filter_map(|name| name.strip_prefix("data-").and_then(|rest| rest.get(..10)))
        .map(str::to_string)
        .collect();
    assert_eq!(
        present.len(),
        snapshots.len(),
        "one snapshot per simulated night: {snapshots:#?}"
    );
    let standard = TierCounts {
        daily: 7,
        weekly: 4,
        monthly: 12,
        yearly: 0,
    };
    let expected = simulate(&Scenario {
        policy: RetentionPolicy::Tiers(standard),
        defaults: standard,
        start: first,
        days: 30,
        at: NaiveTime::from_hms_opt(0, 15, 0).expect("time"),
        grace_days: 1,
        tz: VIENNA,
    })
    .expect("simulation");
    let kept: BTreeSet<String> = expected
        .backups
        .iter()
        .filter(|b| b.deleted.is_none())
        .map(|b| b.taken.to_string())
        .collect();
    assert_eq!(present, kept, "the namespace holds what the policy keeps");
}
