//! The stage the running-deployment tests share: kube-sim in RBAC mode with the manifests' image mapped to the
//! built backup-ns (`--run-image`) and libfaketime, the cluster fixture (the tenant namespaces with a PVC each, a
//! Retain snapshot class), and the tenant's app, a real PostgreSQL behind deployment/app-base. Also the edits the
//! install docs ask of users (the hook told the server's address, the lock dir of this machine) and the wait for
//! the Job a CronJob starts at a scheduled minute.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use kube_sim::Sim;
use kube_sim::kubelet::FakeTime;

use super::rbac::{apply_as_admin, cluster_yaml};
use super::rbac_model::{TENANT, controller_manifest_without_pause};
use super::support::postgres::Postgres;

pub const VIENNA: Tz = chrono_tz::Europe::Vienna;

/// The UTC instant of local Vienna time `hh:mm` on `day`.
pub fn vienna(day: NaiveDate, hh: u32, mm: u32) -> DateTime<Utc> {
    VIENNA
        .from_local_datetime(&day.and_hms_opt(hh, mm, 0).expect("time"))
        .single()
        .expect("an unambiguous local time")
        .with_timezone(&Utc)
}

pub struct Stage {
    pub sim: Sim,
    pub pg: Postgres,
    pub home: tempfile::TempDir,
    /// The hostPath lock dir every tenant's pods share (the node's `/mnt/host-backup-locks`).
    pub locks: tempfile::TempDir,
}

impl Stage {
    /// The simulator at `clock`, the cluster fixture, and PostgreSQL database `shop` behind `TENANT`'s
    /// deployment/app-base.
    pub async fn start(clock: DateTime<Utc>) -> Stage {
        let faketime = FakeTime::locate().unwrap_or_else(|message| panic!("{message}"));
        let sim = Sim::builder()
            .rbac(true)
            .snapshot_delay(Duration::ZERO)
            .clock(Some(clock))
            .run_image(
                format!("backup-ns={}", env!("CARGO_BIN_EXE_backup-ns"))
                    .parse()
                    .expect("mapping"),
            )
            .run_image("busybox=host".parse().expect("mapping"))
            // `backup-ns verify`'s pod runs the app's image with a command: this host's PostgreSQL tools (the
            // app's own container has none, so it runs nothing; its server is `pg`).
            .run_image("postgres=host".parse().expect("mapping"))
            .faketime(Some(faketime))
            .start()
            .await
            .expect("kube-sim starts");
        sim.apply_yaml(&cluster_yaml()).expect("cluster fixture");
        let pg = Postgres::start();
        pg.create_database("shop");
        pg.psql(
            "shop",
            "CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 100)",
        );
        let stage = Stage {
            sim,
            pg,
            home: tempfile::tempdir().expect("temp HOME"),
            locks: tempfile::tempdir().expect("lock dir"),
        };
        let env = stage.pg.container_env("shop");
        let mount = "/var/lib/postgresql/data";
        stage.app(
            TENANT,
            "Deployment",
            "app-base",
            ("postgres", "postgres:17", mount),
            &env,
        );
        stage
    }

    /// A one-replica workload `kind/name` in `ns` whose container (name, image, data mount path) has `env`, its
    /// data on PVC `data`.
    pub fn app(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
        (container, image, mount): (&str, &str, &str),
        env: &[(String, String)],
    ) {
        let env: String = env
            .iter()
            .map(|(k, v)| format!("        - {{name: {k}, value: \"{v}\"}}\n"))
            .collect();
        // A StatefulSet names its governing Service.
        let service = if kind == "StatefulSet" {
            format!("  serviceName: {name}\n")
        } else {
            String::new()
        };
        self.sim
            .apply_yaml(&format!(
                "apiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{service}  \
                 selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    \
                 spec:\n      containers:\n      - name: {container}\n        image: {image}\n        env:\n{env}        \
                 volumeMounts: [{{name: data, mountPath: {mount}}}]\n      \
                 volumes: [{{name: data, persistentVolumeClaim: {{claimName: data}}}}]\n"
            ))
            .expect("the app");
    }

    /// `manifest` with the edits a user makes on this machine: each hook running in container `postgres` is
    /// told the PostgreSQL server's address, and the hostPath lock dir is the stage's.
    pub fn localize(&self, manifest: &str) -> String {
        self.local_locks(&point_hooks(manifest, "postgres", self.pg.port))
    }

    /// `manifest` with its hostPath lock dir the stage's.
    pub fn local_locks(&self, manifest: &str) -> String {
        manifest.replace(
            "path: /mnt/host-backup-locks",
            &format!("path: {}", self.locks.path().display()),
        )
    }

    /// deploy/static/backup-ns-controller.yaml with no pause between deletions (the pause is real time, and the
    /// nights are simulated).
    pub fn controller_static() -> String {
        controller_manifest_without_pause()
    }

    pub async fn apply(&self, manifests: &[String]) {
        apply_as_admin(&self.sim, self.home.path(), manifests).await;
    }

    /// Moves the clock just past `at` and waits for the Job CronJob `ns/cronjob` starts for it: true when it
    /// completed, false when it failed.
    pub async fn fire(&self, ns: &str, cronjob: &str, at: DateTime<Utc>) -> bool {
        if self.sim.clock().now() < at + chrono::Duration::minutes(1) {
            self.sim.clock().set(at + chrono::Duration::minutes(1));
        }
        finished(&self.sim, ns, cronjob, at).await
    }

    /// Like [`Stage::fire`], and fails the test with the pods' statuses when the Job failed.
    pub async fn night(&self, ns: &str, cronjob: &str, at: DateTime<Utc>) {
        assert!(
            self.fire(ns, cronjob, at).await,
            "{ns}/{cronjob} at {at}: the job failed:\n{}",
            pod_logs(&self.sim, ns)
        );
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }
}

/// After every line `container: NAME` (a hook's container), the same indentation's `host` and `port`.
pub fn point_hooks(manifest: &str, container: &str, port: u16) -> String {
    let marker = format!("container: {container}");
    let mut out = String::new();
    let mut found = false;
    for line in manifest.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim() == marker {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{indent}host: 127.0.0.1\n{indent}port: {port}\n"));
            found = true;
        }
    }
    assert!(found, "no hook in container {container}: the plan moved");
    out
}

/// The Job the CronJob `ns/cronjob` starts for the run scheduled at `at`, once finished: true when complete.
pub async fn finished(sim: &Sim, ns: &str, cronjob: &str, at: DateTime<Utc>) -> bool {
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
    panic!(
        "job {ns}/{job} did not finish within 30s:\n{}",
        pod_logs(sim, ns)
    );
}

/// The status and log of every Job pod of `ns`, for failure messages.
pub fn pod_logs(sim: &Sim, ns: &str) -> String {
    let logs = &sim.shared().logs;
    sim.list("pods", Some(ns))
        .iter()
        .filter(|p| p["metadata"]["labels"]["job-name"].is_string())
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or_default();
            let containers = p["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .chain(p["spec"]["containers"].as_array())
                .flatten();
            let log: String = containers
                .filter_map(|c| c["name"].as_str())
                .map(|c| {
                    let slice = logs.read(ns, name, c, 0);
                    format!("--- {c}:\n{}", String::from_utf8_lossy(&slice.bytes))
                })
                .collect();
            format!("{name}: {:#}\n{log}", p["status"]["containerStatuses"])
        })
        .collect::<Vec<_>>()
        .join("\n")
}
