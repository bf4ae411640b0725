//! CronJobs and Jobs on the simulated clock, seen through the real kubectl: `create job --from=cronjob/...`, a
//! schedule in a time zone firing as the clock passes it (the process sees the simulated time), history limits,
//! suspend, `concurrencyPolicy`, `startingDeadlineSeconds`, and the Job's `backoffLimit`,
//! `activeDeadlineSeconds` and `ttlSecondsAfterFinished`.

use std::time::Duration;

use kube_sim::Sim;
use serde_json::Value;

use super::kubelet::seeded;
use super::{Kubectl, wait_for};

fn jobs(sim: &Sim) -> Vec<String> {
    let mut names: Vec<String> = sim
        .list("jobs", Some("app"))
        .iter()
        .filter_map(|j| j["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn job_condition(sim: &Sim, name: &str) -> Option<(String, String)> {
    let job = sim.get("batch/v1", "jobs", Some("app"), name)?;
    job.pointer("/status/conditions/0").map(|c| {
        (
            c["type"].as_str().unwrap_or_default().to_string(),
            c["reason"].as_str().unwrap_or_default().to_string(),
        )
    })
}

async fn apply(k: &Kubectl, yaml: &str) {
    let out = k.run_stdin(&["apply", "-f", "-"], Some(yaml)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn advance_to(sim: &Sim, at: &str) {
    sim.clock().set(at.parse().expect("time"));
    // A few controller ticks.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

const NIGHTLY: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: app}
spec:
  schedule: "15 0 * * *"
  timeZone: Europe/Vienna
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 2
  jobTemplate:
    metadata: {labels: {run: nightly}}
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: tools
            command: ["sh", "-c", "echo ran at $(date -u +%Y-%m-%dT%H:%M)"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cronjob_fires_on_the_simulated_clock_in_its_time_zone_and_keeps_its_history() {
    let (sim, k) = seeded().await;
    apply(&k, NIGHTLY).await;

    k.ok(&[
        "-n",
        "app",
        "create",
        "job",
        "--from=cronjob/nightly",
        "manual",
    ])
    .await;
    k.ok(&[
        "-n",
        "app",
        "wait",
        "--for=condition=complete",
        "job/manual",
        "--timeout=30s",
    ])
    .await;
    let logs = k.ok(&["-n", "app", "logs", "job/manual"]).await;
    assert_eq!(logs, "ran at 2025-03-01T00:15\n");

    // 00:15 in Vienna is 23:15 UTC in winter; nothing runs before.
    advance_to(&sim, "2025-03-01T23:14:00Z").await;
    assert_eq!(jobs(&sim), ["manual"]);
    advance_to(&sim, "2025-03-01T23:15:30Z").await;
    let first = format!(
        "nightly-{}",
        "2025-03-01T23:15:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("t")
            .timestamp()
            / 60
    );
    wait_for(|| jobs(&sim).contains(&first)).await;
    k.ok(&[
        "-n",
        "app",
        "wait",
        "--for=condition=complete",
        &format!("job/{first}"),
        "--timeout=30s",
    ])
    .await;
    let logs = k.ok(&["-n", "app", "logs", &format!("job/{first}")]).await;
    assert_eq!(
        logs, "ran at 2025-03-01T23:15\n",
        "the process sees the simulated clock"
    );
    let cronjob = k.json(&["-n", "app", "get", "cronjob", "nightly"]).await;
    assert_eq!(
        cronjob["status"]["lastScheduleTime"], "2025-03-01T23:15:00Z",
        "{cronjob:#}"
    );

    // Three more nights: two successful jobs stay (the manual one, the oldest, goes first).
    for night in [
        "2025-03-02T23:15:10Z",
        "2025-03-03T23:15:10Z",
        "2025-03-04T23:15:10Z",
    ] {
        advance_to(&sim, night).await;
        wait_for(|| {
            sim.list("jobs", Some("app"))
                .iter()
                .all(|j| j.pointer("/status/completionTime").is_some())
        })
        .await;
    }
    advance_to(&sim, "2025-03-04T23:20:00Z").await;
    wait_for(|| jobs(&sim).len() == 2).await;
    assert!(
        !jobs(&sim).contains(&"manual".to_string()),
        "{:?}",
        jobs(&sim)
    );
    let out = k.ok(&["-n", "app", "get", "cronjob", "nightly"]).await;
    assert!(out.contains("15 0 * * *") && out.contains("False"), "{out}");
    let cronjob = k.json(&["-n", "app", "get", "cronjob", "nightly"]).await;
    assert_eq!(
        cronjob["status"]["lastSuccessfulTime"]
            .as_str()
            .map(|t| &t[..10]),
        Some("2025-03-04")
    );

    // Suspended, nothing runs.
    k.ok(&[
        "-n",
        "app",
        "patch",
        "cronjob",
        "nightly",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ])
    .await;
    let before = jobs(&sim);
    advance_to(&sim, "2025-03-05T23:16:00Z").await;
    assert_eq!(jobs(&sim), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_policies_and_the_starting_deadline_decide_whether_a_run_starts() {
    let (sim, k) = seeded().await;
    let cronjob = |name: &str, policy: &str, extra: &str| {
        format!(
            r#"
apiVersion: batch/v1
kind: CronJob
metadata: {{name: {name}, namespace: app}}
spec:
  schedule: "*/10 * * * *"
  concurrencyPolicy: {policy}
  {extra}
  jobTemplate:
    metadata: {{labels: {{cron: {name}}}}}
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{{name: main, image: tools, command: ["sleep", "3600"]}}]
"#
        )
    };
    apply(&k, &cronjob("forbid", "Forbid", "")).await;
    apply(&k, &cronjob("replace", "Replace", "")).await;
    apply(&k, &cronjob("late", "Allow", "startingDeadlineSeconds: 60")).await;
    let of = |cron: &str| -> Vec<String> {
        jobs(&sim)
            .into_iter()
            .filter(|j| j.starts_with(&format!("{cron}-")))
            .collect()
    };
    advance_to(&sim, "2025-03-01T00:20:30Z").await;
    wait_for(|| of("forbid").len() == 1 && of("replace").len() == 1 && of("late").len() == 1).await;
    let replaced = of("replace");
    advance_to(&sim, "2025-03-01T00:30:30Z").await;
    wait_for(|| of("replace").len() == 1 && of("replace") != replaced).await;
    assert_eq!(
        of("forbid").len(),
        1,
        "Forbid starts nothing while a job runs"
    );
    wait_for(|| of("late").len() == 2).await;
    // The 00:40 run, seen only at 00:45, is past its 60 s starting deadline.
    advance_to(&sim, "2025-03-01T00:45:00Z").await;
    assert_eq!(of("late").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_retry_up_to_their_backoff_limit_and_honour_deadline_and_ttl() {
    let (sim, k) = seeded().await;
    let job = |name: &str, command: &str, extra: &str| {
        format!(
            r#"
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}, namespace: app}}
spec:
  {extra}
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers: [{{name: main, image: tools, command: ["sh", "-c", "{command}"]}}]
"#
        )
    };
    apply(&k, &job("flaky", "exit 1", "backoffLimit: 2")).await;
    k.ok(&[
        "-n",
        "app",
        "wait",
        "--for=condition=failed",
        "job/flaky",
        "--timeout=60s",
    ])
    .await;
    let flaky = k.json(&["-n", "app", "get", "job", "flaky"]).await;
    assert_eq!(flaky["status"]["failed"], 3, "{flaky:#}");
    assert_eq!(
        flaky["status"]["conditions"][0]["reason"],
        "BackoffLimitExceeded"
    );
    let pods = sim
        .list("pods", Some("app"))
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["job-name"] == "flaky")
        .count();
    assert_eq!(pods, 3);

    apply(&k, &job("slow", "sleep 3600", "activeDeadlineSeconds: 60")).await;
    wait_for(|| {
        sim.list("pods", Some("app")).iter().any(|p| {
            p["metadata"]["labels"]["job-name"] == "slow" && p["status"]["phase"] == "Running"
        })
    })
    .await;
    sim.clock().advance(Duration::from_secs(61));
    wait_for(|| job_condition(&sim, "slow") == Some(("Failed".into(), "DeadlineExceeded".into())))
        .await;
    wait_for(|| {
        !sim.list("pods", Some("app"))
            .iter()
            .any(|p| p["metadata"]["labels"]["job-name"] == "slow")
    })
    .await;

    apply(&k, &job("brief", "true", "ttlSecondsAfterFinished: 100")).await;
    k.ok(&[
        "-n",
        "app",
        "wait",
        "--for=condition=complete",
        "job/brief",
        "--timeout=30s",
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(jobs(&sim).contains(&"brief".to_string()));
    sim.clock().advance(Duration::from_secs(101));
    wait_for(|| !jobs(&sim).contains(&"brief".to_string())).await;
    let gone: Vec<Value> = sim
        .list("pods", Some("app"))
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["job-name"] == "brief")
        .collect();
    assert!(gone.is_empty(), "the job's pods go with it");
}
