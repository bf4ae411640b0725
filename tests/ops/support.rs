//! A simulator per test, the sample snapshot history of the original README, and a runner for the binary.

use kube_sim::Sim;
use std::process::Output;
use std::time::Duration;

/// "Now" of the README's sample listing: every AGE there matches this instant.
pub const README_NOW: &str = "2025-01-09T17:20:00Z";

/// Namespaces, a default Retain snapshot class and a Bound claim `data` in `shop`.
pub const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: blog}
---
apiVersion: v1
kind: Namespace
metadata: {name: empty}
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
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: csi-hostpath-sc
  resources: {requests: {storage: 2Gi}}
"#;

/// The 23 snapshots of the original README's `backup-ns list` sample (namespace `shop`):
/// (name, content, type, daily, weekly, monthly, delete-after). Creation time = the timestamp in the name (UTC).
const README_HISTORY: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
    (
        "data-2024-04-17-001946-s6bah4",
        "snapcontent-aa164b",
        "cronjob",
        "",
        "",
        "2024-04",
        "",
    ),
    (
        "data-2024-05-01-001827-atxtnf",
        "snapcontent-00b33a",
        "cronjob",
        "",
        "",
        "2024-05",
        "",
    ),
    (
        "data-2024-06-01-001959-7osghz",
        "snapcontent-1a5a50",
        "cronjob",
        "",
        "",
        "2024-06",
        "",
    ),
    (
        "data-2024-07-01-001713-xm0gxn",
        "snapcontent-61dfe0",
        "cronjob",
        "",
        "",
        "2024-07",
        "",
    ),
    (
        "data-2024-08-01-001708-7l3q5d",
        "snapcontent-3a54f5",
        "cronjob",
        "",
        "",
        "2024-08",
        "",
    ),
    (
        "data-2024-09-01-001759-aw132j",
        "snapcontent-202c12",
        "cronjob",
        "",
        "",
        "2024-09",
        "",
    ),
    (
        "data-2024-10-01-001717-hi2hb6",
        "snapcontent-d0d009",
        "cronjob",
        "",
        "",
        "2024-10",
        "",
    ),
    (
        "data-2024-11-01-003135-fppref",
        "snapcontent-2ddcb5",
        "cronjob",
        "",
        "",
        "2024-11",
        "",
    ),
    (
        "data-2024-12-01-001746-kbxebe",
        "snapcontent-fabf33",
        "cronjob",
        "",
        "",
        "2024-12",
        "",
    ),
    (
        "data-2024-12-17-144438-otsedc",
        "snapcontent-7677a5",
        "adhoc",
        "",
        "",
        "",
        "2025-01-16",
    ),
    (
        "data-2024-12-23-001716-teefnb",
        "snapcontent-89b2b7",
        "cronjob",
        "",
        "w52",
        "",
        "",
    ),
    (
        "data-2024-12-30-002012-izgqoi",
        "snapcontent-3aa08d",
        "cronjob",
        "",
        "w53",
        "",
        "",
    ),
    (
        "data-2025-01-01-001709-sivtji",
        "snapcontent-d30758",
        "cronjob",
        "",
        "w01",
        "2025-01",
        "",
    ),
    (
        "data-2025-01-02-001754-ntwghm",
        "snapcontent-d9c9ff",
        "cronjob",
        "",
        "",
        "",
        "2025-01-09",
    ),
    (
        "data-2025-01-03-001757-vsgkkc",
        "snapcontent-2d7844",
        "cronjob",
        "2025-01-03",
        "",
        "",
        "",
    ),
    (
        "data-2025-01-04-001759-bfzceo",
        "snapcontent-4d6b12",
        "cronjob",
        "2025-01-04",
        "",
        "",
        "",
    ),
    (
        "data-2025-01-05-002023-quvkyv",
        "snapcontent-a7a4a3",
        "cronjob",
        "2025-01-05",
        "",
        "",
        "",
    ),
    (
        "data-2025-01-06-003219-meaukv",
        "snapcontent-08a8eb",
        "cronjob",
        "2025-01-06",
        "w02",
        "",
        "",
    ),
    (
        "data-2025-01-07-003037-wmkylm",
        "snapcontent-6b2c92",
        "cronjob",
        "2025-01-07",
        "",
        "",
        "",
    ),
    (
        "data-2025-01-07-182742-fgztxg",
        "snapcontent-952208",
        "adhoc",
        "",
        "",
        "",
        "2025-02-06",
    ),
    (
        "data-2025-01-08-001706-crlfxa",
        "snapcontent-a7416f",
        "cronjob",
        "2025-01-08",
        "",
        "",
        "",
    ),
    (
        "data-2025-01-08-180009-yjculw",
        "snapcontent-e3dc13",
        "adhoc",
        "",
        "",
        "",
        "2025-02-07",
    ),
    (
        "data-2025-01-09-001749-vfyfeu",
        "snapcontent-7ed61b",
        "cronjob",
        "2025-01-09",
        "",
        "",
        "",
    ),
];

/// One seeded VolumeSnapshot (verbatim status, so the sim's snapshot controller leaves it alone).
pub fn snapshot_yaml(
    ns: &str,
    name: &str,
    created: &str,
    content: &str,
    ready: bool,
    labels: &[(&str, &str)],
) -> String {
    let pvc = labels
        .iter()
        .find(|(k, _)| *k == "backup-ns.sh/pvc")
        .map_or("data", |(_, v)| *v);
    let labels: String = labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
        .collect();
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!("  labels:\n{labels}")
    };
    format!(
        "---\napiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: {name}\n  \
         namespace: {ns}\n  creationTimestamp: \"{created}\"\n{labels}spec:\n  source: {{persistentVolumeClaimName: {pvc}}}\n  \
         volumeSnapshotClassName: csi-hostpath-snapclass\nstatus:\n  boundVolumeSnapshotContentName: {content}\n  \
         creationTime: \"{created}\"\n  readyToUse: {ready}\n  restoreSize: 1Gi\n"
    )
}

/// `data-2024-04-17-001946-x` → `2024-04-17T00:19:46Z`.
fn created_from_name(name: &str) -> String {
    let ts = &name["data-".len().."data-2024-04-17-001946".len()];
    format!(
        "{}T{}:{}:{}Z",
        &ts[..10],
        &ts[11..13],
        &ts[13..15],
        &ts[15..17]
    )
}

/// The README history as YAML, in namespace `ns`, with `plan` as the `backup-ns.sh/plan` label.
pub fn readme_history(ns: &str, plan: &str) -> String {
    README_HISTORY
        .iter()
        .map(
            |(name, content, ty, daily, weekly, monthly, delete_after)| {
                let retain = if *ty == "adhoc" {
                    "days"
                } else {
                    "daily_weekly_monthly"
                };
                snapshot_yaml(
                    ns,
                    name,
                    &created_from_name(name),
                    content,
                    true,
                    &[
                        ("backup-ns.sh/pvc", "data"),
                        ("backup-ns.sh/plan", plan),
                        ("backup-ns.sh/type", ty),
                        ("backup-ns.sh/retain", retain),
                        ("backup-ns.sh/daily", daily),
                        ("backup-ns.sh/weekly", weekly),
                        ("backup-ns.sh/monthly", monthly),
                        ("backup-ns.sh/delete-after", delete_after),
                    ],
                )
            },
        )
        .collect()
}

pub struct Env {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
}

/// Starts a simulator with BASE plus `yaml` applied; waits for the base claim to be Bound.
pub async fn start(yaml: &str) -> Env {
    let sim = Sim::builder()
        .snapshot_delay(Duration::from_millis(30))
        .start()
        .await
        .expect("kube-sim did not start");
    // The sim's controllers subscribe when their task first runs; let them before applying fixtures.
    tokio::time::sleep(Duration::from_millis(20)).await;
    sim.apply_yaml(BASE).expect("base fixtures apply");
    if !yaml.trim().is_empty() {
        sim.apply_yaml(yaml).expect("fixture YAML applies");
    }
    eventually("the claim shop/data is Bound", || {
        sim.get("v1", "persistentvolumeclaims", Some("shop"), "data")
            .is_some_and(|p| p["status"]["phase"] == "Bound")
    })
    .await;
    Env {
        sim,
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

/// Polls `check` every 20 ms for up to 5 s.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..250 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Env {
    /// Builds `backup-ns ARGS --kubeconfig <sim>` with a clean environment, in the test's temp dir.
    pub fn command(&self, args: &[&str], vars: &[(&str, &str)]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_backup-ns"));
        cmd.env_clear()
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .args(args)
            .arg("--kubeconfig")
            .arg(self.sim.kubeconfig_path())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs the binary to completion (asynchronously, so the in-process simulator keeps serving).
    pub async fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(60), self.command(args, vars).output())
            .await
            .expect("backup-ns finished within 60 s")
            .expect("backup-ns runs");
        Run::from(out)
    }
}
