//! `kube-sim demo`: the whole product in one command, with no cluster.
//!
//! It installs backup-ns the way a user does: it applies the static manifests (deploy/static/: the cluster-wide
//! controller file once, the per-namespace file for namespace `demo`) to an in-process simulator in RBAC mode, and
//! lets their CronJobs run through a simulated year. kube-sim's kubelet runs each CronJob's pod with the given
//! `backup-ns` binary as the image's program (in-cluster config, the pod's ServiceAccount token, the plan from its
//! mounted ConfigMap) and shows it the simulated clock through libfaketime. The app is a real local PostgreSQL
//! (see [`postgres`]) behind the Deployment `app-base`: the plan's hook execs `pg_dump` into it, onto the PVC.
//! It prints what was installed, one line per simulated month, the final `backup-ns list` and the total time.
//! Everything lives in one temp dir, removed on exit, on Ctrl-C and on SIGTERM.

pub mod postgres;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::Value;

use crate::kubelet::FakeTime;
use crate::sim::{Sim, SimError};

/// The tenant namespace the demo installs into (the manifests' placeholder is `my-app`).
const NAMESPACE: &str = "demo";
/// The controller's namespace, from deploy/static/backup-ns-controller.yaml.
const SYSTEM: &str = "backup-ns-system";
/// The per-namespace and the cluster-wide manifest, in the manifests dir.
const TENANT_FILE: &str = "backup-ns.yaml";
const CONTROLLER_FILE: &str = "backup-ns-controller.yaml";
/// The weekly verify CronJob, beside the per-namespace file.
const VERIFY_FILE: &str = "backup-ns-verify.yaml";
const DB: &str = "app";
const DB_USER: &str = "app";

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A tool the demo needs is not installed.
    #[error("{tool} not found; install it with `{install}`")]
    MissingTool {
        /// What is missing.
        tool: &'static str,
        /// The apt-get line.
        install: &'static str,
    },
    /// The backup-ns binary is missing or lacks a subcommand the demo needs.
    #[error("{0}")]
    BackupNs(String),
    /// Starting or querying the demo's PostgreSQL failed.
    #[error("postgres: {0}")]
    Postgres(String),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the demo was doing.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The simulator failed.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// A backup-ns command failed; its output is included.
    #[error("`{command}` failed with exit code {code}:\n{output}")]
    Command {
        /// The command line as echoed.
        command: String,
        /// Its exit code (-1 when killed by a signal).
        code: i32,
        /// Its stdout and stderr.
        output: String,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `backup-ns` binary: the manifests' image runs it.
    pub backup_ns: PathBuf,
    /// The static manifests' dir (deploy/static).
    pub manifests: PathBuf,
    /// Nights to replay (the first one is shown in full).
    pub nights: u32,
    /// The date of the first night.
    pub start: NaiveDate,
    /// Show the commands: the edits made to the manifests and each pod's command line.
    pub verbose: bool,
}

/// What the demo ended with (also printed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    /// Nights replayed.
    pub nights: u32,
    /// VolumeSnapshots left in the namespace.
    pub snapshots: usize,
    /// VolumeSnapshotContents left in the cluster.
    pub contents: usize,
    /// Snapshots carrying `backup-ns.sh/delete-after` at the end.
    pub marked: usize,
    /// Rows in the demo table at the end.
    pub orders: u64,
    /// The `backup-ns.sh/verify-result` the weekly verify CronJob left on the snapshot it proved.
    pub verified: String,
}

/// Runs the demo; the caller races it against Ctrl-C/SIGTERM (dropping this future cleans everything up).
pub async fn run(opts: DemoOptions) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    let out = Narrator::new(opts.verbose);
    let bns = BackupNs::probe(&opts.backup_ns)?;
    if !postgres::is_root() {
        return Err(DemoError::BackupNs(
            "the demo must run as root: kube-sim runs commands exec'd into pods in their own mount namespace \
             (the pod's PVCs mounted at their container paths), which needs root"
                .into(),
        ));
    }

    let tmp = tempfile::Builder::new()
        .prefix("backup-ns-demo-")
        .tempdir()
        .map_err(|source| DemoError::Io {
            what: "creating the demo's temp dir".into(),
            source,
        })?;
    // The postgres OS user must be able to reach its data dir inside.
    set_mode(tmp.path(), 0o711)?;
    let root = tmp.path();
    out.say(&format!(
        "backup-ns demo: the static manifests installed on a simulated cluster, their CronJobs run night after night \
         (temp dir {})",
        root.display()
    ));

    out.say("Starting a throwaway PostgreSQL (initdb on a free port) ...");
    let pg_dir = root.join("postgres");
    mkdir(&pg_dir)?;
    let pg = postgres::Postgres::start(&pg_dir)?;
    let password = random_password();
    pg.psql(
        "postgres",
        &format!("CREATE ROLE {DB_USER} LOGIN PASSWORD '{password}'"),
    )?;
    pg.psql("postgres", &format!("CREATE DATABASE {DB} OWNER {DB_USER}"))?;
    pg.psql(
        DB,
        &format!(
            "SET ROLE {DB_USER}; CREATE TABLE orders (id bigserial PRIMARY KEY, placed date NOT NULL, \
             amount numeric(10,2) NOT NULL); INSERT INTO orders (placed, amount) SELECT DATE '{}', \
             (random()*100)::numeric(10,2) FROM generate_series(1, 1000)",
            opts.start
        ),
    )?;
    out.say(&format!(
        "  PostgreSQL on 127.0.0.1:{}, database `{DB}` seeded with 1000 orders",
        pg.port
    ));

    let faketime = FakeTime::locate().map_err(|_| DemoError::MissingTool {
        tool: "libfaketime (it shows the pods the simulated clock)",
        install: "apt-get install libfaketime",
    })?;
    let (tenant, controller, verify, locks) = manifests(&opts.manifests, root, pg.port, &out)?;
    let first_night = night_at(opts.start, 0, 15);
    let kubeconfig = root.join("kubeconfig");
    let image = |spec: String| {
        spec.parse::<crate::runtime::RunImage>()
            .map_err(|e| DemoError::BackupNs(format!("--run-image {spec}: {e}")))
    };
    let sim = Sim::builder()
        .state_dir(root.join("sim"))
        .snapshot_delay(Duration::ZERO)
        .clock(Some(first_night - chrono::Duration::hours(1)))
        .rbac(true)
        .run_image(image(format!("backup-ns={}", bns.path.display()))?)
        .run_image(image("busybox=host".into())?)
        // The verification pod runs the app container's image with a command: this host's PostgreSQL tools. The
        // app's own container has no command, so it still runs nothing (its server is the local one above).
        .run_image(image("postgres=host".into())?)
        .faketime(Some(faketime))
        .kubeconfig(&kubeconfig)
        .start()
        .await?;
    // The controllers subscribe to store events when their task first runs; let it run before seeding.
    tokio::time::sleep(Duration::from_millis(50)).await;
    out.say(&format!(
        "Started kube-sim at {} (RBAC on; image backup-ns runs {}; kubeconfig {})",
        sim.url(),
        bns.path.display(),
        kubeconfig.display()
    ));
    sim.apply_yaml(&namespace_yaml(&password))?;
    wait_bound(&sim).await?;
    out.say("  the cluster: a Retain VolumeSnapshotClass; namespace `demo` with PVC `data`, Secret `app-db` and \
             Deployment `app-base` (its `postgres` container is that server)");
    out.command(
        &format!(
            "mkdir -p {} (the node's hostPath lock dir)",
            locks.display()
        ),
        true,
    );
    out.took(Duration::ZERO, true);

    out.say("");
    out.say("Installing backup-ns from the static manifests, as the README says:");
    for (file, text) in [
        (CONTROLLER_FILE, &controller),
        (TENANT_FILE, &tenant),
        (VERIFY_FILE, &verify),
    ] {
        out.command(
            &format!("kubectl apply -f {}", opts.manifests.join(file).display()),
            true,
        );
        let started = Instant::now();
        let objects = sim.apply_yaml(text)?;
        out.took(started.elapsed(), true);
        let names: Vec<String> = objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect();
        out.say(&format!("  {file}: {}", names.join(", ")));
    }

    out.say("");
    out.say(&format!(
        "Letting the CronJobs run for {} nights: cronjob/backup in `demo` at 00:15 (backup-ns run, as its \
         ServiceAccount, the plan from its ConfigMap), cronjob/backup-ns-controller at 04:30 (retention for every \
         namespace). Each night takes about a second; `--nights 60` is shorter.",
        opts.nights
    ));
    let loop_started = Instant::now();
    let mut month = opts.start.format("%Y-%m").to_string();
    let mut verified = String::new();
    for n in 0..opts.nights {
        let date = opts.start + chrono::Days::new(u64::from(n));
        let this_month = date.format("%Y-%m").to_string();
        if this_month != month {
            out.month_summary(&month, &sim);
            month = this_month;
        }
        if n > 0 {
            pg.psql(
                DB,
                &format!(
                    "INSERT INTO orders (placed, amount) SELECT DATE '{date}', (random()*100)::numeric(10,2) \
                     FROM generate_series(1, 20)"
                ),
            )?;
        }
        scheduled(&sim, &out, NAMESPACE, "backup", night_at(date, 0, 15)).await?;
        if n + 1 == opts.nights {
            verified = weekly_verify(&sim, &out, date).await?;
        }
        scheduled(
            &sim,
            &out,
            SYSTEM,
            "backup-ns-controller",
            night_at(date, 4, 30),
        )
        .await?;
    }
    out.month_summary(&month, &sim);
    let loop_time = loop_started.elapsed();
    let env = ChildEnv {
        kubeconfig: kubeconfig.clone(),
    };

    out.say("");
    let end = night_at(opts.start + chrono::Days::new(u64::from(opts.nights)), 9, 0);
    sim.clock().set(end);
    out.say(&format!(
        "What is left after {} nights (7 daily, 4 weekly, 12 monthly, overlapping):",
        opts.nights
    ));
    let listed = bns
        .run(&out, &env, &["list", "-n", NAMESPACE], end, true)
        .await?;
    out.block(&listed);
    let snaps = sim.list("volumesnapshots", Some(NAMESPACE));
    let kept = snaps.len();
    let marked = snaps
        .iter()
        .filter(|s| label(s, "backup-ns.sh/delete-after").is_some())
        .count();
    // The snapshot controller removes a `Delete` content asynchronously after its snapshot goes; give it a
    // bounded moment to catch up so the count below reflects the settled cluster.
    let settle_deadline = Instant::now() + Duration::from_secs(5);
    let mut contents = sim.list("volumesnapshotcontents", None).len();
    while contents != kept && Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        contents = sim.list("volumesnapshotcontents", None).len();
    }
    let rows = pg.psql(DB, "SELECT count(*) FROM orders")?;
    out.say(&format!(
        "{} nights backed up, {kept} VolumeSnapshots kept ({contents} VolumeSnapshotContents), {rows} orders in \
         the database.",
        opts.nights
    ));
    out.say(&format!(
        "Total time {:.1}s (the nightly replay {:.1}s, {:.0} ms per night). Cleaning up {} ...",
        started.elapsed().as_secs_f64(),
        loop_time.as_secs_f64(),
        loop_time.as_secs_f64() * 1000.0 / f64::from(opts.nights.max(1)),
        root.display()
    ));
    let report = DemoReport {
        nights: opts.nights,
        snapshots: kept,
        contents,
        marked,
        orders: rows.parse().unwrap_or(0),
        verified,
    };
    sim.shutdown().await;
    drop(pg);
    drop(tmp);
    Ok(report)
}

/// The static manifests with the edits the README asks of a user, plus two for this machine; returns (tenant,
/// controller, verify CronJob, the hostPath lock dir). Each edit is shown with `--verbose`.
fn manifests(
    dir: &Path,
    root: &Path,
    port: u16,
    out: &Narrator,
) -> Result<(String, String, String, PathBuf), DemoError> {
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read_to_string(&path).map_err(|source| DemoError::Io {
            what: format!(
                "reading {} (run from the repository root, or pass --manifests DIR)",
                path.display()
            ),
            source,
        })
    };
    let locks = root.join("locks");
    mkdir(&locks)?;
    let edit = |text: String, file: &str, from: &str, to: &str, why: &str| {
        if !text.contains(from) {
            return Err(DemoError::BackupNs(format!(
                "{file} changed: `{}` not found",
                from.trim()
            )));
        }
        out.detail(&format!(
            "  edit {file}: `{}` -> `{}` ({why})",
            from.trim(),
            to.trim()
        ));
        Ok(text.replace(from, to))
    };
    let mut tenant = read(TENANT_FILE)?;
    tenant = edit(
        tenant,
        TENANT_FILE,
        "namespace: my-app",
        &format!("namespace: {NAMESPACE}"),
        "the tenant's namespace",
    )?;
    tenant = edit(
        tenant,
        TENANT_FILE,
        "backup-ns-cluster-read-my-app",
        &format!("backup-ns-cluster-read-{NAMESPACE}"),
        "the binding is named after the namespace",
    )?;
    let hook = "          container: postgres\n";
    tenant = edit(
        tenant,
        TENANT_FILE,
        hook,
        &format!("{hook}          host: 127.0.0.1\n          port: {port}\n"),
        "plan.yaml: where the database listens",
    )?;
    tenant = edit(
        tenant,
        TENANT_FILE,
        "path: /mnt/host-backup-locks",
        &format!("path: {}", locks.display()),
        "the node's lock dir on this machine",
    )?;
    let mut controller = read(CONTROLLER_FILE)?;
    let tz = "  TZ: \"Europe/Vienna\"\n";
    controller = edit(
        controller,
        CONTROLLER_FILE,
        tz,
        &format!("{tz}  BACKUP_NS_DELETE_PAUSE: \"0s\"\n"),
        "no real-time pause between deletions in a simulated year",
    )?;
    controller = edit(
        controller,
        CONTROLLER_FILE,
        "\"--listen\", \":9153\"",
        "\"--listen\", \"127.0.0.1:0\"",
        "the exporter on a free local port",
    )?;
    let verify = edit(
        read(VERIFY_FILE)?,
        VERIFY_FILE,
        "namespace: my-app",
        &format!("namespace: {NAMESPACE}"),
        "the tenant's namespace",
    )?;
    // Daily, but only a run fired on time counts: the demo fires it on its last night alone.
    let verify = edit(
        verify,
        VERIFY_FILE,
        "schedule: \"45 3 * * 0\"",
        "schedule: \"45 3 * * *\"\n  startingDeadlineSeconds: 600",
        "daily at 03:45, within 10 minutes: the demo runs it on its last night",
    )?;
    Ok((tenant, controller, verify, locks))
}

/// Moves the clock past the CronJob `ns/cronjob`'s run at `at` and waits for the Job it starts; a failed Job fails
/// the demo with its pod's log. With `--verbose` the pod's command line is shown.
async fn scheduled(
    sim: &Sim,
    out: &Narrator,
    ns: &str,
    cronjob: &str,
    at: DateTime<Utc>,
) -> Result<(), DemoError> {
    sim.clock().set(at + chrono::Duration::minutes(1));
    let job = format!("{cronjob}-{}", at.timestamp() / 60);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let mut shown = false;
    loop {
        let pod = sim
            .list("pods", Some(ns))
            .into_iter()
            .find(|p| p["metadata"]["labels"]["job-name"] == job.as_str());
        if let Some(pod) = &pod
            && !shown
        {
            shown = true;
            let c = &pod["spec"]["containers"][0];
            let args: Vec<&str> = c["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
            out.pod_command(&format!(
                "[{} {ns}/{pod_name} as {}] backup-ns {}",
                at.with_timezone(&ZONE).format("%Y-%m-%d %H:%M"),
                pod["spec"]["serviceAccountName"]
                    .as_str()
                    .unwrap_or("default"),
                args.join(" ")
            ));
        }
        let condition = sim
            .get("batch/v1", "jobs", Some(ns), &job)
            .and_then(|j| j.pointer("/status/conditions/0").cloned());
        if let Some(c) = condition
            && c["status"] == "True"
        {
            if c["type"] == "Complete" {
                out.pod_took(started.elapsed());
                return Ok(());
            }
            let log = pod
                .as_ref()
                .and_then(|p| p["metadata"]["name"].as_str())
                .map(|name| {
                    ["backup", "controller", "verify"]
                        .iter()
                        .map(|c| {
                            String::from_utf8_lossy(&sim.shared().logs.read(ns, name, c, 0).bytes)
                                .into_owned()
                        })
                        .collect::<String>()
                })
                .unwrap_or_default();
            out.finish_line();
            return Err(DemoError::Command {
                command: format!("job {ns}/{job}"),
                code: 1,
                output: log,
            });
        }
        if Instant::now() >= deadline {
            out.finish_line();
            return Err(DemoError::BackupNs(format!(
                "job {ns}/{job} did not finish within 120s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the verify CronJob at 03:45 of the last night `day`, between its backup and its controller run (as the
/// tenant's ServiceAccount: the newest snapshot restored into a temporary claim, its dump loaded into a throwaway
/// PostgreSQL in a pod of the app's image) and returns the result it recorded on the snapshot.
async fn weekly_verify(sim: &Sim, out: &Narrator, day: NaiveDate) -> Result<String, DemoError> {
    out.say(&format!(
        "The verify CronJob (weekly; here on the last night, {day}) proves the newest backup by restoring it:"
    ));
    let started = Instant::now();
    scheduled(sim, out, NAMESPACE, "backup-verify", night_at(day, 3, 45)).await?;
    let proved = sim
        .list("volumesnapshots", Some(NAMESPACE))
        .into_iter()
        .find_map(|s| {
            let result = s["metadata"]["annotations"]["backup-ns.sh/verify-result"].as_str()?;
            Some((
                s["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                result.to_string(),
            ))
        })
        .ok_or_else(|| {
            DemoError::BackupNs(
                "the verify Job completed but no snapshot carries a verify result".into(),
            )
        })?;
    out.say(&format!(
        "  VolumeSnapshot {}: {} ({:.1}s; its claim and pod are gone again)",
        proved.0,
        proved.1,
        started.elapsed().as_secs_f64()
    ));
    Ok(proved.1)
}

/// The backup-ns binary the demo drives.
struct BackupNs {
    path: PathBuf,
}

impl BackupNs {
    fn probe(path: &Path) -> Result<BackupNs, DemoError> {
        let help = |args: &[&str]| {
            std::process::Command::new(path)
                .args(args)
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
        };
        match help(&[]) {
            Ok(true) => {}
            _ => {
                return Err(DemoError::BackupNs(format!(
                    "cannot run {} --help; build it first (`cargo build --bins`, or use scripts/demo)",
                    path.display()
                )));
            }
        }
        Ok(BackupNs {
            path: path.to_path_buf(),
        })
    }

    /// Runs one backup-ns command at simulated time `now`, echoing it; fails with its output on a non-zero exit.
    async fn run(
        &self,
        out: &Narrator,
        env: &ChildEnv,
        args: &[&str],
        now: DateTime<Utc>,
        full: bool,
    ) -> Result<String, DemoError> {
        let now_s = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let echo = format!("BACKUP_NS_NOW={now_s} backup-ns {}", args.join(" "));
        out.command(&echo, full);
        let started = Instant::now();
        let output = tokio::process::Command::new(&self.path)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("KUBECONFIG", &env.kubeconfig)
            .env("BACKUP_NS_NOW", &now_s)
            .env("TZ", "Europe/Vienna")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Ctrl-C drops this future: the child goes with it.
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| DemoError::Io {
                what: format!("running {}", self.path.display()),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            out.finish_line();
            return Err(DemoError::Command {
                command: echo,
                code: output.status.code().unwrap_or(-1),
                output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
            });
        }
        out.took(started.elapsed(), full);
        // The summary (stdout) is what the demo shows; the logs on stderr repeat it line by line.
        Ok(stdout)
    }
}

struct ChildEnv {
    kubeconfig: PathBuf,
}

/// Console output: narration, echoed commands, month summaries. On a terminal the per-night command lines
/// overwrite each other so the month summaries stay readable; elsewhere every line is kept.
struct Narrator {
    tty: bool,
    verbose: bool,
}

impl Narrator {
    fn new(verbose: bool) -> Narrator {
        Narrator {
            tty: std::io::stdout().is_terminal() && !verbose,
            verbose,
        }
    }

    /// A line shown with `--verbose` only.
    fn detail(&self, line: &str) {
        if self.verbose {
            self.say(line);
        }
    }

    /// A scheduled pod's command line: with `--verbose` only.
    fn pod_command(&self, echo: &str) {
        if self.verbose {
            self.command(echo, true);
        }
    }

    fn pod_took(&self, d: Duration) {
        if self.verbose {
            self.took(d, true);
        }
    }

    fn say(&self, line: &str) {
        self.finish_line();
        println!("{line}");
    }

    // print! (not a locked stdout) so test harnesses capture the narration too.
    fn command(&self, echo: &str, full: bool) {
        if self.tty && !full {
            print!("\r\x1b[2K  $ {echo}");
        } else {
            print!("  $ {echo}");
        }
        let _ = std::io::stdout().flush();
    }

    fn took(&self, d: Duration, full: bool) {
        if self.tty && !full {
            print!("  ({} ms)", d.as_millis());
        } else {
            println!("  ({} ms)", d.as_millis());
        }
        let _ = std::io::stdout().flush();
    }

    fn finish_line(&self) {
        if self.tty {
            print!("\r\x1b[2K");
            let _ = std::io::stdout().flush();
        }
    }

    fn block(&self, text: &str) {
        self.finish_line();
        for line in text.lines() {
            println!("    {line}");
        }
    }

    fn month_summary(&self, month: &str, sim: &Sim) {
        let snaps = sim.list("volumesnapshots", Some(NAMESPACE));
        let marked = snaps
            .iter()
            .filter(|s| label(s, "backup-ns.sh/delete-after").is_some())
            .count();
        self.say(&format!(
            "  {month} done: {} snapshots in the namespace, {marked} marked for deletion",
            snaps.len()
        ));
    }
}

fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["labels"][key].as_str()
}

/// The sample namespace: a Retain snapshot class (the safe production default), the app's DB Secret, its PVC and
/// a Deployment whose `postgres` container carries the official image's env.
fn namespace_yaml(password: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-hostpath-snapclass
  annotations:
    snapshot.storage.kubernetes.io/is-default-class: "true"
driver: hostpath.csi.k8s.io
deletionPolicy: Retain
---
apiVersion: v1
kind: Secret
metadata:
  name: app-db
  namespace: {NAMESPACE}
type: Opaque
stringData:
  password: "{password}"
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: {NAMESPACE}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-base
  namespace: {NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: app-base
  template:
    metadata:
      labels:
        app: app-base
    spec:
      containers:
        - name: postgres
          image: postgres:17
          env:
            - name: POSTGRES_USER
              value: {DB_USER}
            - name: POSTGRES_DB
              value: {DB}
            - name: POSTGRES_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: app-db
                  key: password
          volumeMounts:
            - name: data
              mountPath: /var/lib/postgresql/data
      volumes:
        - name: data
          persistentVolumeClaim:
            claimName: data
"#
    )
}

/// Waits (bounded) until the PVC is Bound and the Deployment's pod is Running, as a preflight will demand.
async fn wait_bound(sim: &Sim) -> Result<(), DemoError> {
    for _ in 0..250 {
        let bound = sim
            .list("persistentvolumeclaims", Some(NAMESPACE))
            .iter()
            .all(|p| p["status"]["phase"] == "Bound");
        let running = sim
            .list("pods", Some(NAMESPACE))
            .iter()
            .any(|p| p["status"]["phase"] == "Running");
        if bound && running {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(DemoError::BackupNs(
        "kube-sim did not bind the PVC or start the app pod within 5s".into(),
    ))
}

/// The manifests' CronJobs run in `timeZone: Europe/Vienna`; their times never fall into a DST gap.
const ZONE: chrono_tz::Tz = chrono_tz::Europe::Vienna;

/// The UTC instant of local time `hour:minute` on `date` in the manifests' time zone.
fn night_at(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let naive = date.and_hms_opt(hour, minute, 0).unwrap_or_default();
    ZONE.from_local_datetime(&naive)
        .earliest()
        .map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc))
}

fn mkdir(path: &Path) -> Result<(), DemoError> {
    std::fs::create_dir_all(path).map_err(|source| DemoError::Io {
        what: format!("creating {}", path.display()),
        source,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), DemoError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        DemoError::Io {
            what: format!("chmod {}", path.display()),
            source,
        }
    })
}

/// Letters and digits only, so it needs no quoting in SQL or YAML.
fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nights_are_vienna_times_of_their_date() {
        let d = NaiveDate::from_ymd_opt(2025, 3, 30).unwrap_or_default();
        // Summer time from 02:00 that night: 04:30 CEST.
        assert_eq!(night_at(d, 4, 30).to_rfc3339(), "2025-03-30T02:30:00+00:00");
        assert_eq!(night_at(d, 0, 15).to_rfc3339(), "2025-03-29T23:15:00+00:00");
    }
}
