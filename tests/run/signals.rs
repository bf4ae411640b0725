//! Signals and deadlines (issue 12, item 6): SIGTERM arrives at every step of `run` (waiting for a lock slot, the
//! pre-hook, the snapshot wait, the post-hook, retention). Each case ends
//! in a consistent state: the documented exit code, a log line naming the step, a BackupFailed Event, the lock
//! slot released, the remote process gone, and no snapshot that the run cannot vouch for (a backup proven ready
//! before the signal is kept).

use crate::{Env, app_exec_hook, both, pod, pvc, start};
use backup_ns::lock::{LockConfig, acquire};
use kube_sim::{Fault, FaultAction};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    LockWait,
    PreHook,
    SnapshotWait,
    PostHook,
    Retention,
}

/// The plan: an exec pre- and post-hook on `app-0` (the one at `step` records its shell's pid in `/data/pid`
/// and hangs), the node lock with one slot.
fn plan(step: Step, locks: &Path) -> String {
    let hook = |hangs: bool| {
        if hangs {
            "[sh, -c, 'echo $$ > /data/pid; exec sleep 300']"
        } else {
            "['true']"
        }
    };
    // Before retention, the post-hook tells the test (which then makes the API hang) and gives it a second.
    let post = if step == Step::Retention {
        "[sh, -c, 'touch /data/post; sleep 1']"
    } else {
        hook(step == Step::PostHook)
    };
    format!(
        "name: app\nnamespace: shop\ntargets: [data]\nhooks:\n  pre:\n{}  post:\n{}snapshot:\n  \
         readyTimeout: 5m\nlock:\n  enabled: true\n  dir: {}\n  slots: 1\n  timeout: 5m\n",
        app_exec_hook(hook(step == Step::PreHook), "5m"),
        app_exec_hook(post, "5m"),
        locks.display()
    )
}

/// kube-sim with the claim `data` mounted at `/data` in the pod `app-0`.
async fn start_app() -> Env {
    start(&format!(
        "{}{}",
        pvc("data"),
        pod("app-0", "app", &[], &[("data", "/data")])
    ))
    .await
}

fn spawn(env: &Env, plan: &Path) -> Child {
    env.command(&["run", plan.to_str().unwrap(), "--output", "json"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("backup-ns starts")
}

async fn sigterm(child: Child) -> Output {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

fn slot_is_free(locks: PathBuf) -> bool {
    acquire(&LockConfig {
        dir: locks,
        slots: 1,
        timeout: Duration::from_millis(200),
    })
    .is_ok()
}

fn ready_snapshots(env: &Env) -> usize {
    env.snapshots()
        .iter()
        .filter(|s| s["status"]["readyToUse"] == true)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_at_every_step_of_run_leaves_a_consistent_state() {
    // (step, what the log names, snapshots left, the last Event on the PVC). A backup proven before the signal
    // is kept and reported as such (BackupSucceeded), and the stop gets its own Warning after it.
    let table = [
        (
            Step::LockWait,
            "while waiting for a lock slot",
            0,
            "Warning BackupFailed",
        ),
        (
            Step::PreHook,
            "cancelled in pod/app-0",
            0,
            "Warning BackupFailed",
        ),
        (
            Step::SnapshotWait,
            "stopped by a signal while waiting for",
            0,
            "Warning BackupFailed",
        ),
        (
            Step::PostHook,
            "cancelled in pod/app-0",
            1,
            "Warning RunStopped",
        ),
        (
            Step::Retention,
            "retention stopped by a signal",
            1,
            "Warning RunStopped",
        ),
    ];
    for (step, logged, kept, last_event) in table {
        let case = std::time::Instant::now();
        let env = start_app().await;
        let locks = env.tmp.path().join("locks");
        let plan_path = env.plan("p.yaml", &plan(step, &locks));
        let pid_file = env.pvc_dir("data").join("pid");
        let mut holder = None;
        match step {
            Step::LockWait => {
                holder = Some(
                    acquire(&LockConfig {
                        dir: locks.clone(),
                        slots: 1,
                        timeout: Duration::from_secs(1),
                    })
                    .expect("the test takes the only slot"),
                )
            }
            Step::SnapshotWait => env.sim.faults().add(Fault::snapshot_never_ready()),
            Step::PreHook | Step::PostHook | Step::Retention => {}
        }
        let child = spawn(&env, &plan_path);
        match step {
            Step::LockWait => tokio::time::sleep(Duration::from_secs(2)).await,
            Step::PreHook | Step::PostHook => {
                env.eventually("the hook is running", |_| pid_file.exists())
                    .await
            }
            Step::SnapshotWait => {
                env.eventually("the snapshot is created", |sim| {
                    !sim.list("volumesnapshots", Some("shop")).is_empty()
                })
                .await
            }
            Step::Retention => {
                let marker = env.pvc_dir("data").join("post");
                env.eventually("the post-hook ran", |_| marker.exists())
                    .await;
                // Retention's list now hangs (the run lists nothing else after its post-hooks).
                env.sim.faults().add(Fault::request(
                    "list",
                    "volumesnapshots",
                    FaultAction::Timeout {
                        after: Duration::from_secs(120),
                    },
                ));
                env.eventually("retention's list hangs", |sim| {
                    sim.faults().fired().iter().any(|n| *n > 0)
                })
                .await
            }
        }
        let out = sigterm(child).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(143), "{step:?}: {}", both(&out));
        assert!(stderr.contains(logged), "{step:?}: {}", both(&out));
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("a JSON summary even when stopped");
        assert_eq!(report["success"], false, "{step:?}: {report:#}");
        drop(holder);
        assert!(slot_is_free(locks), "{step:?}: the slot is still held");
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            assert!(
                crate::process_is_gone(&pid),
                "{step:?}: the hook's process {pid} still runs"
            );
        }
        env.eventually("only vouched-for snapshots are left", |sim| {
            sim.list("volumesnapshots", Some("shop")).len() == kept
        })
        .await;
        assert_eq!(ready_snapshots(&env), kept, "{step:?}");
        let events = env.events_about("data").await;
        assert_eq!(
            events.last().map(String::as_str),
            Some(last_event),
            "{step:?}: {events:?}"
        );
        if kept > 0 {
            assert!(
                events.contains(&"Normal BackupSucceeded".to_string()),
                "{step:?}: {events:?}"
            );
        }
        eprintln!(
            "{step:?}: consistent after SIGTERM ({:.1?})",
            case.elapsed()
        );
    }
}

/// The pod deleted under a running hook: its exec process dies with its container (SIGKILL, exit 137), and the
/// run fails at that hook with a log line naming it, a BackupFailed Event, the lock slot released and no
/// snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_deleted_under_a_running_hook_fails_the_run_cleanly() {
    let env = start_app().await;
    let locks = env.tmp.path().join("locks");
    let plan_path = env.plan("p.yaml", &plan(Step::PreHook, &locks));
    let pid_file = env.pvc_dir("data").join("pid");
    let child = spawn(&env, &plan_path);
    env.eventually("the hook is running", |_| pid_file.exists())
        .await;
    env.sim
        .delete("v1", "pods", Some("shop"), "app-0")
        .expect("the pod is deleted");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()),
    )
    .await
    .expect("the run ends once its pod is gone")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        stderr.contains(
            "command exited with status 137 (SIGKILL: its container stopped, e.g. the pod was deleted"
        ) && stderr.contains("pod/app-0"),
        "the log names the hook's pod and how its process ended: {}",
        both(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
    assert_eq!(report["success"], false, "{report:#}");
    assert!(slot_is_free(locks), "the slot is still held");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        crate::process_is_gone(&pid),
        "the hook's process {pid} still runs"
    );
    assert!(env.snapshots().is_empty(), "{:?}", env.snapshots());
    let events = env.events_about("data").await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("Warning BackupFailed"),
        "{events:?}"
    );
}
