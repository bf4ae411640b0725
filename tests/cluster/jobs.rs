//! Jobs for `adhoc` over the wire: a Job from the CronJob template, running jobs, waiting for the result.

use crate::support::start;
use backup_ns::cluster::ClusterError;
use backup_ns::cluster::jobs::{JobOutcome, job_from_cronjob};
use kube_sim::PodPhase;
use std::collections::BTreeMap;
use std::time::Duration;

const CRONJOB: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: backup
  namespace: shop
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: backup
            image: backup-ns
            env:
            - name: BAK_TYPE
              value: cronjob
"#;

#[tokio::test]
async fn an_adhoc_job_is_created_from_the_cronjob_seen_running_and_awaited() {
    let env = start(CRONJOB).await;
    let cronjob = env
        .cluster
        .get_cronjob("shop", "backup")
        .await
        .unwrap()
        .unwrap();
    let env_vars: BTreeMap<String, String> = [("BAK_TYPE".to_string(), "adhoc".to_string())].into();
    let job = job_from_cronjob(&cronjob, "backup-adhoc-1", &env_vars);
    env.cluster.create_job(&job).await.unwrap();

    let stored = env
        .sim
        .get("batch/v1", "jobs", Some("shop"), "backup-adhoc-1")
        .unwrap();
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["env"][0],
        serde_json::json!({"name": "BAK_TYPE", "value": "adhoc"})
    );
    let running = env.cluster.active_jobs_of("shop", "backup").await.unwrap();
    assert_eq!(running.len(), 1, "the new job counts as running");
    assert!(
        env.cluster
            .active_jobs_of("shop", "other")
            .await
            .unwrap()
            .is_empty()
    );

    // Finish the job as the Job controller would.
    let mut finished = stored.clone();
    finished["status"] = serde_json::json!({
        "conditions": [{"type": "Complete", "status": "True"}],
        "succeeded": 1
    });
    let waiter = {
        let cluster = env.cluster.clone();
        tokio::spawn(async move {
            cluster
                .wait_job("shop", "backup-adhoc-1", Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.sim
        .apply_yaml(&serde_json::to_string(&finished).unwrap())
        .unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), JobOutcome::Succeeded);
    assert!(
        env.cluster
            .active_jobs_of("shop", "backup")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn waiting_for_a_job_that_never_finishes_times_out() {
    let env = start(CRONJOB).await;
    let cronjob = env
        .cluster
        .get_cronjob("shop", "backup")
        .await
        .unwrap()
        .unwrap();
    env.cluster
        .create_job(&job_from_cronjob(&cronjob, "stuck", &BTreeMap::new()))
        .await
        .unwrap();
    let err = env
        .cluster
        .wait_job("shop", "stuck", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::JobTimeout { .. }), "{err}");
}

#[tokio::test]
async fn the_job_pod_is_found_by_its_label_and_its_logs_are_followed_to_the_end() {
    let env = start(CRONJOB).await;
    let cronjob = env
        .cluster
        .get_cronjob("shop", "backup")
        .await
        .unwrap()
        .unwrap();
    env.cluster
        .create_job(&job_from_cronjob(&cronjob, "logged", &BTreeMap::new()))
        .await
        .unwrap();
    crate::support::eventually("the job controller created a pod", || {
        !env.sim.list("pods", Some("shop")).is_empty()
    })
    .await;
    let pods = env.cluster.job_pods("shop", "logged").await.unwrap();
    assert_eq!(pods.len(), 1);
    let pod = pods[0].metadata.name.clone().unwrap();
    assert!(pod.starts_with("logged-"), "{pod}");
    assert!(
        env.cluster
            .job_pods("shop", "other")
            .await
            .unwrap()
            .is_empty()
    );

    // The pod's output so far, then more while it is followed; the stream ends when the pod does.
    env.sim
        .append_pod_log("shop", &pod, None, "dump started\n")
        .unwrap();
    let mut out: Vec<u8> = Vec::new();
    let follow = env.cluster.follow_logs(
        "shop",
        &pod,
        Some("backup"),
        Duration::from_secs(5),
        &mut out,
    );
    let finish = async {
        crate::support::eventually("the log is followed", || {
            env.sim.requests().count("get", "pods/log") == 1
        })
        .await;
        env.sim.append_pod_log("shop", &pod, None, "done").unwrap();
        env.sim
            .set_pod_phase("shop", &pod, PodPhase::Succeeded)
            .unwrap();
    };
    let (followed, ()) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(follow, finish)
    })
    .await
    .expect("the log stream ends with the pod");
    followed.unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "dump started\ndone\n");
    let mut out: Vec<u8> = Vec::new();

    let err = env
        .cluster
        .follow_logs(
            "shop",
            "no-such-pod",
            None,
            Duration::from_secs(5),
            &mut out,
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Pod shop/no-such-pod does not exist");
}
