//! `backup-ns adhoc`: the Job copies the CronJob with overrides that `backup-ns run` understands, a running backup
//! Job blocks a second one, and with `--wait` / `--follow` the exit code mirrors the Job's result (set here through
//! the simulator, which does not run job pods: tests write their output and end them).

use crate::support::{Env, eventually, start};
use backup_ns::plan::model::BackupType;
use backup_ns::plan::model::Retention;
use backup_ns::settings::{Overrides, load_effective};
use backup_ns::vocab::retention::RetentionPolicy;
use kube_sim::PodPhase;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const NOW: &str = "2025-01-08T15:56:14Z";
const JOB: &str = "backup-adhoc-2025-01-08-155614";

const CRONJOB: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup, namespace: shop}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      # As the shipped manifests: a failed backup is not retried (kube-sim's Job controller honours the limit).
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: backup
            image: ghcr.io/backup-ns/backup-ns
            args: [run, --plan, /plans/app.yaml]
            env:
            - {name: BACKUP_NS_LOG_FORMAT, value: json}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: legacy, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: backup
            image: ghcr.io/backup-ns/backup-ns
            args: [run]
            env:
            - {name: BAK_DB_SKIP, value: "true"}
            - {name: BAK_LABEL_VS_TYPE, value: cronjob}
            - {name: BAK_LABEL_VS_RETAIN, value: daily_weekly_monthly}
            - {name: BAK_FLOCK, value: "true"}
"#;

fn job_env(job: &serde_json::Value) -> BTreeMap<String, String> {
    job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn get_job(env: &Env, name: &str) -> Option<serde_json::Value> {
    env.sim.get("batch/v1", "jobs", Some("shop"), name)
}

/// Starts `backup-ns adhoc -n shop FLAG --timeout 30s` at `now`, with stdout and stderr piped.
fn spawn_adhoc(env: &Env, flag: &str, now: &str) -> tokio::process::Child {
    env.command(
        &["adhoc", "-n", "shop", flag, "--timeout", "30s"],
        &[("BACKUP_NS_NOW", now)],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap()
}

/// Finishes a Job as the Job controller would.
fn finish(env: &Env, name: &str, condition: serde_json::Value) {
    let mut job = get_job(env, name).expect("the job exists");
    job["status"] = serde_json::json!({"conditions": [condition]});
    env.sim
        .apply_yaml(&serde_json::to_string(&job).unwrap())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adhoc_job_overrides_type_retention_and_lock_in_a_way_run_understands() {
    let env = start(CRONJOB).await;
    let run = env
        .run(
            &["adhoc", "-n", "shop", "--retain-days", "14"],
            &[("BACKUP_NS_NOW", NOW)],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with(&format!(
            "job.batch/{JOB} created in namespace shop from cronjob/backup (adhoc, kept 14 days)"
        )),
        "{run:?}"
    );
    let job = get_job(&env, JOB).expect("the job was created");
    assert_eq!(job["metadata"]["ownerReferences"][0]["name"], "backup");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["args"][2],
        "/plans/app.yaml"
    );
    let vars = job_env(&job);
    assert_eq!(
        vars["BACKUP_NS_LOG_FORMAT"], "json",
        "the CronJob's own env is kept"
    );
    assert!(!vars.keys().any(|k| k.starts_with("BAK_")), "{vars:?}");

    // What `backup-ns run --plan` in that container would execute: a cronjob plan turned adhoc.
    let plan_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/postgres-app.yaml");
    let loaded =
        load_effective(Some(&plan_file), &vars, &Overrides::default()).expect("the overrides load");
    assert_eq!(loaded.plan.snapshot.backup_type, BackupType::Adhoc);
    assert_eq!(
        loaded.plan.retention,
        Retention {
            profile: None,
            policy: RetentionPolicy::Days(14),
        }
    );
    assert!(!loaded.plan.lock.enabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cronjob_configured_with_bak_variables_gets_matching_bak_overrides() {
    let env = start(CRONJOB).await;
    let run = env
        .run(
            &[
                "adhoc",
                "-n",
                "shop",
                "--from",
                "cronjob/legacy",
                "-o",
                "json",
            ],
            &[("BACKUP_NS_NOW", NOW)],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let job: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(job["metadata"]["name"], "legacy-adhoc-2025-01-08-155614");
    assert!(
        get_job(&env, "legacy-adhoc-2025-01-08-155614").is_none(),
        "-o prints without creating"
    );
    let vars = job_env(&job);
    assert_eq!(vars["BAK_LABEL_VS_TYPE"], "adhoc");
    assert_eq!(vars["BAK_LABEL_VS_RETAIN"], "days");
    assert_eq!(vars["BAK_LABEL_VS_RETAIN_DAYS"], "30");
    assert_eq!(vars["BAK_FLOCK"], "false");
    let loaded = load_effective(None, &vars, &Overrides::default()).expect("the BAK_* env loads");
    assert_eq!(loaded.plan.snapshot.backup_type, BackupType::Adhoc);
    assert_eq!(
        loaded.plan.retention,
        Retention {
            profile: None,
            policy: RetentionPolicy::Days(30),
        }
    );
    assert!(!loaded.plan.lock.enabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adhoc_refuses_while_a_backup_job_of_the_cronjob_is_running() {
    let env = start(CRONJOB).await;
    let uid = env
        .sim
        .get("batch/v1", "cronjobs", Some("shop"), "backup")
        .unwrap()["metadata"]["uid"]
        .clone();
    let owned = |name: &str, status: &str| {
        format!(
            "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  namespace: shop\n  ownerReferences:\n  \
             - {{apiVersion: batch/v1, kind: CronJob, name: backup, uid: {uid}, controller: true}}\nspec:\n  template:\n    \
             spec:\n      restartPolicy: Never\n      containers: [{{name: backup, image: backup-ns}}]\n{status}"
        )
    };
    let done = "status:\n  startTime: \"2025-01-08T02:00:00Z\"\n  conditions: [{type: Complete, status: \"True\"}]\n";
    env.sim.apply_yaml(&owned("backup-29000000", done)).unwrap();
    env.sim.apply_yaml(&owned("backup-29000120", "")).unwrap();

    let run = env
        .run(
            &["adhoc", "-n", "shop", "--wait"],
            &[("BACKUP_NS_NOW", NOW)],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "a backup Job of CronJob shop/backup is still running (backup-29000120); wait for it \
             (`kubectl -n shop wait --for=condition=complete job/backup-29000120`)"
        ),
        "{run:?}"
    );
    assert!(get_job(&env, JOB).is_none(), "no second job was created");
    // Printing creates nothing, so it is not refused.
    let run = env
        .run(
            &["adhoc", "-n", "shop", "-o", "yaml"],
            &[("BACKUP_NS_NOW", NOW)],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("name: {JOB}")), "{run:?}");

    // Another CronJob's jobs do not block.
    let run = env
        .run(
            &["adhoc", "-n", "shop", "--from", "legacy"],
            &[("BACKUP_NS_NOW", NOW)],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_the_exit_code_mirrors_the_job_result() {
    let env = start(CRONJOB).await;
    for (condition, code, now, job) in [
        (
            serde_json::json!({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                               "message": "Job has reached the specified backoff limit"}),
            1,
            NOW,
            JOB,
        ),
        (
            serde_json::json!({"type": "Complete", "status": "True"}),
            0,
            "2025-01-08T16:00:00Z",
            "backup-adhoc-2025-01-08-160000",
        ),
    ] {
        let child = spawn_adhoc(&env, "--wait", now);
        eventually("the adhoc job exists", || get_job(&env, job).is_some()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        finish(&env, job, condition);
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("adhoc returns once the job finished")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{stdout}{stderr}");
        if code == 1 {
            assert!(
                stderr.contains(&format!(
                    "Job shop/{job} failed: BackoffLimitExceeded: Job has reached the specified backoff limit; \
                     see its logs: `kubectl -n shop logs job/{job}`"
                )),
                "{stderr}"
            );
        } else {
            assert!(
                stdout.contains(&format!("job.batch/{job} completed")),
                "{stdout}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_the_job_pod_logs_and_then_reports_the_result() {
    let env = start(CRONJOB).await;
    let child = spawn_adhoc(&env, "--follow", NOW);
    eventually("the job's pod exists", || {
        env.sim
            .list("pods", Some("shop"))
            .iter()
            .any(|p| p["metadata"]["labels"]["job-name"] == JOB)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    finish(
        &env,
        JOB,
        serde_json::json!({"type": "Complete", "status": "True"}),
    );
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("adhoc --follow returns")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("job.batch/{JOB} completed")),
        "{stdout}"
    );
    let pod_logs = env.sim.requests().count("get", "pods/log");
    assert!(pod_logs >= 1, "the pod's log was requested");
}

/// Reads a running command's stdout line by line (bytes: container output need not be UTF-8).
struct Lines(tokio::io::Split<tokio::io::BufReader<tokio::process::ChildStdout>>);

impl Lines {
    fn of(child: &mut tokio::process::Child) -> Self {
        use tokio::io::AsyncBufReadExt;
        Lines(tokio::io::BufReader::new(child.stdout.take().expect("piped stdout")).split(b'\n'))
    }

    /// The next line, or None at the end of the output.
    async fn next(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(Duration::from_secs(30), self.0.next_segment())
            .await
            .expect("a line (or the end) within 30 s")
            .expect("readable stdout")
    }

    async fn rest(&mut self) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        while let Some(line) = self.next().await {
            lines.push(line);
        }
        lines
    }
}

/// The Job's pod, once the simulator's Job controller created it.
async fn job_pod(env: &Env, job: &str) -> String {
    let find = || {
        env.sim
            .list("pods", Some("shop"))
            .into_iter()
            .find(|p| p["metadata"]["labels"]["job-name"] == job)
            .and_then(|p| p["metadata"]["name"].as_str().map(str::to_string))
    };
    eventually("the job's pod exists", || find().is_some()).await;
    find().expect("the job's pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_prints_the_pod_output_while_it_is_written_and_exits_with_the_job_result() {
    let env = start(CRONJOB).await;
    for (phase, code, now, job) in [
        (PodPhase::Succeeded, 0, NOW, JOB),
        (
            PodPhase::Failed,
            1,
            "2025-01-08T16:00:00Z",
            "backup-adhoc-2025-01-08-160000",
        ),
    ] {
        let log_requests = env.sim.requests().count("get", "pods/log");
        let mut child = spawn_adhoc(&env, "--follow", now);
        let mut stdout = Lines::of(&mut child);
        let created = stdout.next().await.expect("the creation line");
        assert!(
            created.starts_with(format!("job.batch/{job} created").as_bytes()),
            "{}",
            String::from_utf8_lossy(&created)
        );
        // Written as soon as the pod exists, typically before adhoc has found it and asked for its logs.
        let pod = job_pod(&env, job).await;
        let log = |text: &[u8]| {
            env.sim
                .append_pod_log("shop", &pod, None, text)
                .expect("the pod's log takes output");
        };
        log(b"plan app loaded\nsnapshot data-1 ");
        assert_eq!(
            stdout.next().await.as_deref(),
            Some(&b"plan app loaded"[..])
        );
        // adhoc is following now: the rest of a split line, output that is not UTF-8, a last line without newline.
        assert_eq!(
            env.sim.requests().count("get", "pods/log"),
            log_requests + 1,
            "one log stream"
        );
        log(b"created\n");
        assert_eq!(
            stdout.next().await.as_deref(),
            Some(&b"snapshot data-1 created"[..])
        );
        log(b"table caf\xe9 dumped\nbye");
        env.sim.set_pod_phase("shop", &pod, phase).unwrap();
        let rest = stdout.rest().await;
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("adhoc --follow returns once the pod ended")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{rest:?}\n{stderr}");
        let mut want = vec![b"table caf\xe9 dumped".to_vec(), b"bye".to_vec()];
        if code == 0 {
            want.push(
                format!(
                    "job.batch/{job} completed; `backup-ns list -n shop --adhoc` shows the snapshot"
                )
                .into_bytes(),
            );
        } else {
            assert!(
                stderr.contains(&format!(
                    "Job shop/{job} failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
                )),
                "{stderr}"
            );
        }
        assert_eq!(rest, want, "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_cronjob_or_a_bad_from_names_the_problem() {
    let env = start(CRONJOB).await;
    let run = env
        .run(&["adhoc", "-n", "shop", "--from", "cronjob/nightly"], &[])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "CronJob shop/nightly does not exist; adhoc copies the namespace's backup CronJob"
        ),
        "{run:?}"
    );
    let run = env
        .run(&["adhoc", "-n", "shop", "--from", "deployment/app"], &[])
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("--from `deployment/app`: expected cronjob/NAME"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_does_not_change_the_exit_code() {
    // `backup-ns adhoc --follow | head -2`: once head has exited, the job's result still decides the exit code.
    let env = start(CRONJOB).await;
    let mut child = spawn_adhoc(&env, "--follow", NOW);
    let mut stdout = Lines::of(&mut child);
    stdout.next().await.expect("the creation line");
    let pod = job_pod(&env, JOB).await;
    let log = |text: &[u8]| {
        env.sim
            .append_pod_log("shop", &pod, None, text)
            .expect("the pod's log takes output");
    };
    log(b"first line\n");
    assert_eq!(stdout.next().await.as_deref(), Some(&b"first line"[..]));
    drop(stdout); // the reader exits; adhoc's next write meets a closed pipe
    log(b"written to nobody\n");
    log(b"nor this\n");
    env.sim
        .set_pod_phase("shop", &pod, PodPhase::Succeeded)
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("adhoc --follow returns once the job ended")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}
