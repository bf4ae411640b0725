//! Issue 15's RBAC mutation test against the real authorizer, on a cluster of this test's own (the controller
//! sweeps every namespace). The mutants are the kube-sim test's (`rbac_model::mutants_of`: one verb, resource or
//! API group removed from one rule of the tenant Role or of a controller ClusterRole), and each must break a night of
//! the installed product, whose processes run here as host processes with their ServiceAccounts' tokens
//! (TokenRequest through `kubectl create token`):
//! - the tenant (`Role/backup-ns`, `ClusterRole/backup-ns-cluster-read`): `backup-ns run` of a plan whose
//!   postgres hook dumps a real PostgreSQL through exec into a Deployment's pod, the snapshot ready through the
//!   real snapshot controller and CSI driver, labelled, with a BackupSucceeded Event; for the Role's mutants also
//!   `verify --latest` as the verify CronJob runs it (a restore into a temporary claim, the dump loaded in a pod of
//!   the app's image), leaving no claim or pod;
//! - the controller (`ClusterRole/backup-ns-controller`): `controller -A` deletes a snapshot past its delete-after
//!   (its content switched to Delete for the real snapshot controller) and a crashed verify run's claim and pod;
//! - the exporter (`ClusterRole/backup-ns-exporter`): a fresh `exporter` is synced and counts every snapshot, on
//!   two polls in a row.
//!
//! Which part a role's mutant runs follows from the shipped bindings (a role bound to the tenant's account can only
//! change what the tenant can do), and the test derives it from them. After each mutant is written with
//! `kubectl replace`, the test waits until `kubectl auth can-i` with the account's own token answers no for a
//! grant the mutant removed, so the real authorizer's cache has it before the night runs, and after the shipped role
//! is restored, until it answers yes again.
//!
//! A mutant whose night passes must be listed in `rbac_model::UNNEEDED_ON_BOTH` with why its grant stays, and the
//! list must match exactly; the two mutants whose outcome depends on which of two real processes comes first are in [`TIMING`],
//! where either outcome is accepted. The list differs from kube-sim's in two ways, both found here:
//! - `get` on `pods/exec` is needed: the 1.36 apiserver authorizes a WebSocket exec as `get` and as `create`
//!   (kube-sim asked only for `create`; it now asks for both, and its own list lost that entry);
//! - the wait for readyToUse may need `watch`, and the controller's delete may need `get`, when the real CSI
//!   driver or snapshot controller is slower or quicker than the product ([`TIMING`]).

use crate::cluster::{RealCluster, backup_ns_command, eventually, kubectl_with, text};
use crate::docs;
use crate::rbac::kubeconfig_as;
use crate::rbac_model::{
    CONTROLLER, Mutant, TENANT, TENANT_ROLE, UNNEEDED_ON_BOTH, WAIT_WATCH, as_strs, mutants_of,
    tenant_manifest,
};
use crate::support::postgres::Postgres;
use chrono::NaiveDate;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// The namespace of the snapshots the controller's nights delete, one per night, apart from the tenant's own
/// (whose runs relabel their namespace's snapshots).
const SEEDED: &str = "rbac-seeded";

const DELETE_REREAD: &str = "the real snapshot controller writes a snapshot as soon as retention switches its \
                             content to Delete (its bound-protection finalizer); a delete that meets that write's 409 \
                             reads the snapshot once to tell it from a relabel (`delete_listed_snapshot`), so whether \
                             `get` is needed depends on which comes first (on kube-sim it never is: REBIND there)";

/// Mutants whose night fails or passes depending on timing, so that either outcome is accepted:
/// (role, mutant, why).
const TIMING: &[(&str, &str, &str)] = &[
    (
        TENANT_ROLE,
        "rule 7 (volumesnapshots): verb \"watch\"",
        WAIT_WATCH,
    ),
    (
        CONTROLLER,
        "rule 0 (volumesnapshots): verb \"get\"",
        DELETE_REREAD,
    ),
];

/// How long one backup-ns process of a night may take before the night fails as hung.
const PROCESS_LIMIT: Duration = Duration::from_secs(120);

/// The identities the shipped bindings give the product: `namespace/account`.
const TENANT_ACCOUNT: &str = "shop/backup-ns";
const CONTROLLER_ACCOUNT: &str = "backup-ns-system/backup-ns-controller";
const EXPORTER_ACCOUNT: &str = "backup-ns-system/backup-ns-exporter";

/// The name prefix of the crashed verify runs' claims and pods.
const CRASHED: &str = "backup-ns-verify-crashed-";

/// The rows the app's database holds, which `verify` counts.
const ROWS: u32 = 300;

/// `kind/name` of a role document.
fn role_id(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["kind"].as_str().unwrap_or_default(),
        doc["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Role `kind/name` to the `namespace/account` ServiceAccounts its bindings name.
fn bound_accounts(all: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for binding in all
        .iter()
        .filter(|d| d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding")
    {
        let role = format!(
            "{}/{}",
            binding["roleRef"]["kind"].as_str().unwrap_or_default(),
            binding["roleRef"]["name"].as_str().unwrap_or_default()
        );
        for subject in binding["subjects"].as_array().into_iter().flatten() {
            assert_eq!(subject["kind"], "ServiceAccount", "{binding:#}");
            out.entry(role.clone()).or_default().insert(format!(
                "{}/{}",
                subject["namespace"].as_str().unwrap_or_default(),
                subject["name"].as_str().unwrap_or_default()
            ));
        }
    }
    out
}

/// Every (apiGroup, resource, verb) the rules of `roles` grant.
fn grants<'a>(roles: impl IntoIterator<Item = &'a Value>) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for role in roles {
        for rule in role["rules"].as_array().into_iter().flatten() {
            for group in as_strs(&rule["apiGroups"]) {
                for resource in as_strs(&rule["resources"]) {
                    for verb in as_strs(&rule["verbs"]) {
                        out.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    out
}

/// `kubectl auth can-i` arguments for a grant, in `TENANT` (the cluster-scoped resources ignore it).
fn can_i_args(grant: &(String, String, String)) -> Vec<String> {
    let (group, resource, verb) = grant;
    let (resource, sub) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (resource.as_str(), None),
    };
    let mut args = vec![
        "auth".to_owned(),
        "can-i".to_owned(),
        verb.clone(),
        if group.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}.{group}")
        },
        "-n".to_owned(),
        TENANT.to_owned(),
    ];
    if let Some(sub) = sub {
        args.push(format!("--subresource={sub}"));
    }
    args
}

/// Polls the real authorizer, as the account of `kubeconfig`, until it answers `want` for `grant`.
fn await_authorizer(kubeconfig: &Path, grant: &(String, String, String), want: bool) {
    let args = can_i_args(grant);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let answer = if want { "yes" } else { "no" };
    eventually(
        &format!("kubectl {} answering {answer}", args.join(" ")),
        || {
            let out = kubectl_with(kubeconfig, &args, "");
            (String::from_utf8_lossy(&out.stdout).trim() == answer).then_some(())
        },
    );
}

/// Runs backup-ns with `kubeconfig` (as `cluster::backup_ns_with`), but a process that outlives
/// [`PROCESS_LIMIT`] is killed and reported as hung.
fn backup_ns_limited(kubeconfig: &Path, args: &[&str], now: &str) -> Result<Output, String> {
    let home = tempfile::tempdir().expect("temp HOME for backup-ns");
    let mut child = backup_ns_command(kubeconfig, home.path(), args)
        .env("BACKUP_NS_NOW", now)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running backup-ns");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for backup-ns") {
            break status;
        }
        if started.elapsed() > PROCESS_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "backup-ns {args:?} did not end within {PROCESS_LIMIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    })
}

/// `backup-ns ARGS` at `now` that must exit 0; Err with the end of its output otherwise.
fn succeeds(kubeconfig: &Path, args: &[&str], now: &str) -> Result<String, String> {
    let out = backup_ns_limited(kubeconfig, args, now)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    // The exit code, the problems the process logged (warnings and errors) and the end of its output.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.starts_with("error"))
        .take(4)
        .collect();
    let all = text(&out);
    let tail: Vec<&str> = all.lines().rev().take(4).collect();
    Err(format!(
        "backup-ns {} exited {:?}: {} | ... {}",
        args.first().unwrap_or(&""),
        out.status.code(),
        problems.join(" | "),
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    ))
}

/// The names of `kind` objects in `ns` (all namespaces: `None`) matching `selector`, with whether each is being
/// deleted.
fn objects(
    cluster: &RealCluster,
    ns: Option<&str>,
    kind: &str,
    selector: Option<&str>,
) -> Vec<(String, bool)> {
    let mut args = vec![kind];
    match ns {
        Some(ns) => args.extend(["-n", ns]),
        None => args.push("-A"),
    }
    if let Some(selector) = selector {
        args.extend(["-l", selector]);
    }
    cluster.get_json(&args)["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                o["metadata"]["deletionTimestamp"].is_string(),
            )
        })
        .collect()
}

/// The night's scenario: the product installed on the cluster, the app's database, one kubeconfig per account.
struct Scenario {
    cluster: RealCluster,
    _dir: tempfile::TempDir,
    plan: PathBuf,
    accounts: BTreeMap<&'static str, PathBuf>,
    /// The seeded snapshots not yet made due, with their contents.
    seeds: Vec<(String, String)>,
    /// The night's date: every night is a day of its own, as the tenant's CronJob would make it, so the tier labels
    /// move as they do over real nights (the processes run with BACKUP_NS_NOW pinned to it).
    day: NaiveDate,
    nights: usize,
    _pg: Postgres,
}

impl Scenario {
    fn kubeconfig(&self, account: &str) -> &Path {
        &self.accounts[account]
    }

    /// BACKUP_NS_NOW for `hh:mm` UTC of the night's day.
    fn at(&self, hour: u32, minute: u32) -> String {
        self.day
            .and_hms_opt(hour, minute, 0)
            .expect("a time of day")
            .and_utc()
            .to_rfc3339()
    }

    /// The tenant backs up: a new snapshot, ready, labelled, with a BackupSucceeded Event; with `verify`, the
    /// verify CronJob's `verify --latest` passes and leaves nothing behind.
    fn tenant(&self, verify: bool) -> Result<(), String> {
        let cluster = &self.cluster;
        let succeeded = || {
            cluster.get_json(&[
                "events",
                "-n",
                TENANT,
                "--field-selector",
                "reason=BackupSucceeded",
            ])["items"]
                .as_array()
                .map_or(0, Vec::len)
        };
        let before: BTreeSet<String> = cluster.snapshot_names(TENANT).into_iter().collect();
        let events = succeeded();
        let tenant = self.kubeconfig(TENANT_ACCOUNT);
        succeeds(
            tenant,
            &["run", self.plan.to_str().expect("utf8 path")],
            &self.at(0, 15),
        )?;
        let new: Vec<String> = cluster
            .snapshot_names(TENANT)
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect();
        let [snapshot] = new.as_slice() else {
            return Err(format!("not one new snapshot but {new:?}"));
        };
        let vs = cluster.get_json(&["-n", TENANT, "volumesnapshot", snapshot]);
        if vs["status"]["readyToUse"] != true
            || vs["metadata"]["labels"]["backup-ns.sh/daily"] != self.day.to_string().as_str()
            || vs["metadata"]["labels"]["backup-ns.sh/pvc"] != "data"
        {
            return Err(format!(
                "the new snapshot is not ready and labelled: {vs:#}"
            ));
        }
        if succeeded() <= events {
            return Err("no new BackupSucceeded event".into());
        }
        if verify {
            let report = succeeds(
                tenant,
                &[
                    "verify",
                    "--latest",
                    "--plan",
                    self.plan.to_str().expect("utf8 path"),
                    "-o",
                    "json",
                ],
                &self.at(3, 45),
            )?;
            let report: Value = serde_json::from_str(&report)
                .map_err(|e| format!("verify -o json printed no JSON ({e}): {report}"))?;
            if report["passed"] != true || report["snapshot"] != snapshot.as_str() {
                return Err(format!("verify did not pass on {snapshot}: {report:#}"));
            }
            let vs = cluster.get_json(&["-n", TENANT, "volumesnapshot", snapshot]);
            let result = vs["metadata"]["annotations"]["backup-ns.sh/verify-result"]
                .as_str()
                .unwrap_or_default();
            if !result.starts_with("passed: ") {
                return Err(format!("{snapshot} was not marked verified: `{result}`"));
            }
            // Its own (another run's are the controller's to remove); objects being deleted are gone as far as the
            // run is concerned (a claim waits for its pod to stop).
            let run = format!(
                "backup-ns.sh/verify-run={}",
                report["run"].as_str().unwrap_or_default()
            );
            let left: Vec<String> = ["pods", "pvc"]
                .iter()
                .flat_map(|kind| objects(cluster, Some(TENANT), kind, Some(&run)))
                .filter(|(_, deleting)| !deleting)
                .map(|(name, _)| name)
                .collect();
            if !left.is_empty() {
                return Err(format!("the verify run left {left:?} behind"));
            }
        }
        Ok(())
    }

    /// The controller's pass: one seeded snapshot made due and a crashed verify run's claim and pod (past their
    /// 1h timeout at the controller's 04:30: they were created in real time, days before the night's date) are
    /// removed.
    fn controller(&mut self) -> Result<(), String> {
        let night = self.nights;
        let cluster = &self.cluster;
        let crashed = format!("{CRASHED}{night}");
        let meta = format!(
            "metadata:\n  name: {crashed}\n  namespace: {TENANT}\n  labels: {{backup-ns.sh/verify-run: crashed-{night}}}\n  \
             annotations: {{backup-ns.sh/verify-timeout: 1h}}\n"
        );
        cluster.apply(&format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\n{meta}spec:\n  accessModes: [ReadWriteOnce]\n  \
             resources: {{requests: {{storage: 1Gi}}}}\n---\napiVersion: v1\nkind: Pod\n{meta}spec:\n  \
             containers: [{{name: verify, image: postgres:17}}]\n"
        ));
        let (due, content) = self.seeds.pop().expect("a seeded snapshot for every night");
        cluster.kubectl(&[
            "-n",
            SEEDED,
            "label",
            "volumesnapshot",
            &due,
            "backup-ns.sh/delete-after=2000-01-01",
            "--overwrite",
        ]);
        // The mass-deletion guard is off: the nights are compressed (the days go on through nights that run no
        // backup or whose controller is a killed mutant), so snapshots that are legitimately due pile up and would
        // trip it. The guard is the product's own logic (tests/retention_cluster, the unit tests), not RBAC's.
        let args = [
            "controller",
            "-A",
            "--delete-pause",
            "0s",
            "--guard-max-share",
            "100",
            "-o",
            "json",
        ];
        let out = backup_ns_limited(self.kubeconfig(CONTROLLER_ACCOUNT), &args, &self.at(4, 30))?;
        if !out.status.success() {
            // The namespaces where a step failed, and why (the report on stdout says it per namespace).
            let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let failed: Vec<&Value> = report["namespaces"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n["failed"].as_array().is_some_and(|f| !f.is_empty()))
                .collect();
            let problems = &report["verify_leftovers"]["problems"];
            return Err(format!(
                "backup-ns controller exited {:?}: failed in {} leftovers {problems} | {}",
                out.status.code(),
                serde_json::to_string(&failed).unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .filter(|l| l.starts_with("error"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
        // Deleted (gone, or held by the snapshot controller's finalizers), its content switched to Delete so that
        // the real snapshot controller removes it and the driver's file.
        let kept = objects(cluster, Some(SEEDED), "volumesnapshots", None)
            .into_iter()
            .any(|(name, deleting)| name == due && !deleting);
        if kept {
            // What the pass made of it: its outcome and its decision in the plan.
            let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let mentions = |v: &Value| v.to_string().contains(&format!("\"{due}\""));
            let said: Vec<String> = ["outcomes", "plan"]
                .iter()
                .flat_map(|k| match &report["retention"][k] {
                    Value::Array(items) => items.iter().filter(|i| mentions(i)).cloned().collect(),
                    Value::Object(map) => map
                        .values()
                        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                        .filter(|i| mentions(i))
                        .collect(),
                    _ => Vec::new(),
                })
                .map(|v| v.to_string())
                .collect();
            return Err(format!(
                "the due snapshot {due} was not deleted: {}",
                said.join(" | ")
            ));
        }
        let policy = cluster.kubectl_output(
            &[
                "get",
                "volumesnapshotcontent",
                &content,
                "-o",
                "jsonpath={.spec.deletionPolicy}",
            ],
            "",
        );
        if policy.status.success() && policy.stdout != b"Delete" {
            return Err(format!(
                "the due snapshot's content {content} was left as {}",
                String::from_utf8_lossy(&policy.stdout)
            ));
        }
        for kind in ["pods", "pvc"] {
            if objects(cluster, Some(TENANT), kind, None)
                .iter()
                .any(|(name, deleting)| *name == crashed && !deleting)
            {
                return Err(format!(
                    "the controller did not remove the crashed verify run's {kind}"
                ));
            }
        }
        Ok(())
    }

    /// A fresh exporter as its account: synced, counting every snapshot of the cluster, on two polls in a row.
    fn exporter(&self) -> Result<(), String> {
        let home = tempfile::tempdir().expect("temp HOME for the exporter");
        let mut child = backup_ns_command(
            self.kubeconfig(EXPORTER_ACCOUNT),
            home.path(),
            &["exporter", "--listen", "127.0.0.1:0"],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the exporter");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .strip_prefix("backup-ns exporter listening on http://")
                    .and_then(|rest| rest.strip_suffix("/metrics"))
                {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let result = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => self.exporter_counts(&addr),
            Err(_) => Err("the exporter did not start listening within 30s".into()),
        };
        let _ = child.kill();
        let _ = child.wait();
        result
    }

    fn exporter_counts(&self, addr: &str) -> Result<(), String> {
        // Twice in a row, 200 ms apart: a role without `watch` lets the exporter list again after each refused
        // watch, and one lucky poll in such a window must not pass for a live watch.
        let mut live = 0;
        let mut last = String::new();
        for _ in 0..25 {
            let want = format!(
                "backup_ns_exporter_snapshots_seen {}\n",
                objects(&self.cluster, None, "volumesnapshots", None).len()
            );
            last = metrics(addr);
            if last.contains("backup_ns_exporter_synced 1\n") && last.contains(&want) {
                live += 1;
                if live == 2 {
                    return Ok(());
                }
            } else {
                live = 0;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let shown: Vec<&str> = last
            .lines()
            .filter(|l| l.starts_with("backup_ns_exporter_s"))
            .collect();
        Err(format!(
            "the exporter is not synced with every snapshot: {shown:?}"
        ))
    }
}

fn metrics(addr: &str) -> String {
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    if conn
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return String::new();
    }
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body
}

/// The parts of the night that a role's mutant can break, from the accounts the role is bound to.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Part {
    /// The tenant's run; with verify for the tenant Role.
    Tenant {
        verify: bool,
    },
    Controller,
    Exporter,
}

/// One night of `parts`, on the next day.
fn night(scenario: &mut Scenario, parts: &[Part]) -> Result<(), String> {
    scenario.day += chrono::Duration::days(1);
    scenario.nights += 1;
    for part in parts {
        match part {
            Part::Tenant { verify } => scenario.tenant(*verify)?,
            Part::Controller => scenario.controller()?,
            Part::Exporter => scenario.exporter()?,
        }
    }
    Ok(())
}

const EVERY_PART: &[Part] = &[
    Part::Tenant { verify: true },
    Part::Controller,
    Part::Exporter,
];

/// The app: a Deployment `app-base` whose pod (made here: the cluster runs no Deployment controller) is the
/// database's, image `postgres:17` (no process here; exec runs this host's tools with the container's env and the
/// claim `data` at its mount), and the plan that dumps it, as the tenant manifest's plan does, with a verify check.
fn deploy_app(cluster: &RealCluster, pg: &Postgres, dir: &Path) -> PathBuf {
    let env: String = pg
        .container_env("shop")
        .iter()
        .map(|(k, v)| format!("- {{name: {k}, value: \"{v}\"}}\n"))
        .collect();
    let mount = "/var/lib/postgresql/data";
    // The pod spec, indented by `pad`.
    let spec = |pad: &str| {
        format!(
            "{pad}containers:\n{pad}  - name: postgres\n{pad}    image: postgres:17\n{pad}    env:\n{}{pad}    \
             volumeMounts: [{{name: data, mountPath: {mount}}}]\n{pad}volumes: [{{name: data, \
             persistentVolumeClaim: {{claimName: data}}}}]\n",
            env.lines()
                .map(|l| format!("{pad}    {l}\n"))
                .collect::<String>()
        )
    };
    cluster.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-base, namespace: {TENANT}}}\nspec:\n  \
         replicas: 1\n  selector: {{matchLabels: {{app: app-base}}}}\n  template:\n    metadata: {{labels: {{app: \
         app-base}}}}\n    spec:\n{}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: app-base-0, namespace: \
         {TENANT}, labels: {{app: app-base}}}}\nspec:\n{}",
        spec("      "),
        spec("  ")
    ));
    cluster.wait_for(TENANT, "pod/app-base-0", "{.status.phase}", "Running");
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "name: app\nnamespace: {TENANT}\ntargets: [data]\nhooks:\n  pre:\n    - type: postgres\n      \
             workload: deployment/app-base\n      container: postgres\n      host: 127.0.0.1\n      port: {}\n      \
             dumpFile: {mount}/dump.sql.gz\n      timeout: 2m\nsnapshot:\n  type: cronjob\nretention: standard\n\
             lock:\n  enabled: false\nverify:\n  checks:\n    - {{name: items, sql: 'select count(*) from items', \
             expect: '== {ROWS}'}}\n",
            pg.port
        ),
    )
    .expect("writing the plan");
    plan
}

/// `count` snapshots of `SEEDED`'s claim, retained by days with a delete-after far ahead, once ready: the
/// controller's nights make one due each. Then one more, a second later, that is never made due: retention keeps
/// the newest ready backup of a PVC whatever its labels say, so none of the others may be the newest. Returns the
/// (snapshot, content) pairs of the first `count`.
fn seed(cluster: &RealCluster, count: usize) -> Vec<(String, String)> {
    cluster.namespace_with_claims(SEEDED, &["data"]);
    let snapshot = |name: &str| {
        format!(
            "---\napiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: {name}\n  \
             namespace: {SEEDED}\n  labels: {{backup-ns.sh/retain: days, backup-ns.sh/pvc: data, \
             backup-ns.sh/delete-after: \"2999-01-01\"}}\nspec:\n  source: {{persistentVolumeClaimName: data}}\n"
        )
    };
    let ready = |want: usize| {
        eventually(&format!("{want} seeded snapshots ready"), || {
            let items = cluster.get_json(&["-n", SEEDED, "volumesnapshots"])["items"].clone();
            let pairs: Vec<(String, String)> = items
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["status"]["readyToUse"] == true)
                .filter_map(|s| {
                    Some((
                        s["metadata"]["name"].as_str()?.to_owned(),
                        s["status"]["boundVolumeSnapshotContentName"]
                            .as_str()?
                            .to_owned(),
                    ))
                })
                .collect();
            (pairs.len() == want).then_some(pairs)
        })
    };
    cluster.apply(
        &(0..count)
            .map(|i| snapshot(&format!("seeded-{i}")))
            .collect::<String>(),
    );
    let seeds = ready(count);
    // Kubernetes timestamps have whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    cluster.apply(&snapshot("seeded-newest"));
    ready(count + 1);
    seeds
}

#[test]
fn every_shipped_role_mutant_breaks_a_night_on_the_real_cluster_except_the_listed_ones() {
    let started = Instant::now();
    let cluster = RealCluster::up();
    let dir = tempfile::tempdir().expect("temp dir");
    let controller_manifest = std::fs::read_to_string(
        crate::cluster::repo().join("deploy/static/backup-ns-controller.yaml"),
    )
    .expect("reading the controller manifest");
    let tenant = tenant_manifest(TENANT);
    cluster.namespace_with_claims(TENANT, &["data"]);
    cluster.kubectl_with_stdin(&["apply", "--server-side", "-f", "-"], &controller_manifest);
    cluster.kubectl_with_stdin(&["apply", "--server-side", "-f", "-"], &tenant);
    cluster.suspend_cronjobs();

    let all: Vec<Value> = docs(&tenant)
        .into_iter()
        .chain(docs(&controller_manifest))
        .collect();
    let shipped: Vec<Value> = all
        .iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .cloned()
        .collect();
    assert_eq!(shipped.len(), 4, "the tenant Role and three ClusterRoles");
    let bound = bound_accounts(&all);
    let parts_of = |role: &str| -> Vec<Part> {
        let accounts = bound
            .get(role)
            .unwrap_or_else(|| panic!("{role} is bound to no account"));
        accounts
            .iter()
            .map(|account| match account.as_str() {
                TENANT_ACCOUNT => Part::Tenant {
                    verify: role == TENANT_ROLE,
                },
                CONTROLLER_ACCOUNT => Part::Controller,
                EXPORTER_ACCOUNT => Part::Exporter,
                other => panic!("{role} is bound to {other}, which no part of the night runs as"),
            })
            .collect()
    };
    let account_of = |role: &str| -> &str {
        let accounts = &bound[role];
        assert_eq!(accounts.len(), 1, "{role} is bound to one account");
        accounts.iter().next().expect("checked")
    };

    let mutants: Vec<(usize, Mutant)> = shipped
        .iter()
        .enumerate()
        .flat_map(|(i, role)| mutants_of(role).into_iter().map(move |m| (i, m)))
        .collect();
    let controller_nights = 3 + mutants
        .iter()
        .filter(|(_, m)| parts_of(&m.role).contains(&Part::Controller))
        .count();
    let seeds = seed(&cluster, controller_nights);

    let pg = Postgres::start();
    pg.create_database("shop");
    pg.load(
        "shop",
        format!(
            "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, {ROWS}) g;"
        )
        .as_bytes(),
    );
    let plan = deploy_app(&cluster, &pg, dir.path());
    let mut accounts = BTreeMap::new();
    for account in [TENANT_ACCOUNT, CONTROLLER_ACCOUNT, EXPORTER_ACCOUNT] {
        let (ns, name) = account.split_once('/').expect("namespace/account");
        accounts.insert(account, kubeconfig_as(&cluster, dir.path(), ns, name));
    }
    let mut scenario = Scenario {
        cluster,
        _dir: dir,
        plan,
        accounts,
        seeds,
        day: chrono::Utc::now().date_naive(),
        nights: 0,
        _pg: pg,
    };
    let setup = started.elapsed();

    // The night holds with the shipped roles (twice, so that the tenant's namespace holds more than one backup).
    for _ in 0..2 {
        if let Err(why) = night(&mut scenario, EVERY_PART) {
            panic!("a night fails with the shipped roles: {why}");
        }
    }
    let baseline = started.elapsed() - setup;

    let mut survivors = BTreeSet::new();
    let mut killed = Vec::new();
    for (i, mutant) in &mutants {
        let role = &shipped[*i];
        let id = role_id(role);
        let account = account_of(&id);
        // The grants of every role bound to that account, before and after: what the mutant takes away.
        let others: Vec<&Value> = shipped
            .iter()
            .filter(|r| role_id(r) != id && bound[&role_id(r)].contains(account))
            .collect();
        let removed: Vec<(String, String, String)> = grants(others.iter().copied().chain([role]))
            .difference(&grants(others.iter().copied().chain([&mutant.doc])))
            .cloned()
            .collect();
        let kubeconfig = scenario.kubeconfig(account).to_owned();
        scenario
            .cluster
            .kubectl_with_stdin(&["replace", "-f", "-"], &mutant.doc.to_string());
        if let Some(grant) = removed.first() {
            await_authorizer(&kubeconfig, grant, false);
        }
        let t0 = Instant::now();
        let result = night(&mut scenario, &parts_of(&id));
        let took = t0.elapsed();
        scenario
            .cluster
            .kubectl_with_stdin(&["replace", "-f", "-"], &role.to_string());
        if let Some(grant) = removed.first() {
            await_authorizer(&kubeconfig, grant, true);
        }
        eprintln!(
            "rbac mutant {} {}: {} in {:.1}s",
            mutant.role,
            mutant.what,
            match &result {
                Ok(()) => "survived".to_owned(),
                Err(why) => format!("killed ({why})"),
            },
            took.as_secs_f64()
        );
        match result {
            Ok(()) => {
                survivors.insert((mutant.role.clone(), mutant.what.clone()));
            }
            Err(why) => killed.push(format!("{} {}: {why}", mutant.role, mutant.what)),
        }
    }
    // After the mutants, the shipped roles still make a good night (nothing was left broken).
    if let Err(why) = night(&mut scenario, EVERY_PART) {
        panic!("the shipped roles fail after the mutants: {why}");
    }
    eprintln!(
        "rbac mutants on the real cluster: {} mutants, {} killed; setup {:.0}s, two shipped nights {:.0}s, all {:.0}s",
        mutants.len(),
        killed.len(),
        setup.as_secs_f64(),
        baseline.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let listed: BTreeSet<(String, String)> = UNNEEDED_ON_BOTH
        .iter()
        .map(|(role, what, _)| ((*role).to_owned(), (*what).to_owned()))
        .collect();
    let timing: BTreeSet<(String, String)> = TIMING
        .iter()
        .map(|(role, what, _)| ((*role).to_owned(), (*what).to_owned()))
        .collect();
    let survivors: BTreeSet<(String, String)> = survivors.difference(&timing).cloned().collect();
    let line = |(role, what): &(String, String)| format!("  {role} {what}");
    let unlisted: Vec<String> = survivors.difference(&listed).map(line).collect();
    let stale: Vec<String> = listed.difference(&survivors).map(line).collect();
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "mutants that broke no night but are not listed in UNNEEDED (remove the grant or list why it stays):\n{}\n\
         listed in UNNEEDED but the night now needs them (remove them from the list):\n{}\nkilled:\n{}",
        unlisted.join("\n"),
        stale.join("\n"),
        killed.join("\n")
    );
}
