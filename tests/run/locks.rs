//! Load and locks (issue 12, item 5): 40 `backup-ns run` processes at once share one lock dir with `slots: 4`.
//! Each run's pre-hook writes `+ <ns>` into a shared volume as it enters the locked section and its post-hook
//! `- <ns>` as it leaves, both from inside the pod, so the timeline is the cluster side's own: at most 4 runs
//! are ever between the two, and every run finishes within the lock timeout. Runs killed with SIGKILL while they
//! hold a slot leak none, because the kernel releases their flock: a run started afterwards goes straight in.

use crate::{app_exec_hook, both, pod, pvc, start};
use std::process::Stdio;
use std::time::{Duration, Instant};

const RUNS: usize = 40;
const SLOTS: usize = 4;

/// `app-0` mounting the `log` claim at `/log` and each target claim `data-N` at `/data-N`.
fn fixture(claims: usize) -> String {
    let mut yaml: String = (0..claims).map(|i| pvc(&format!("data-{i}"))).collect();
    yaml.push_str(&pvc("log"));
    let paths: Vec<(String, String)> = (0..claims)
        .map(|i| (format!("data-{i}"), format!("/data-{i}")))
        .collect();
    let mut mounts: Vec<(&str, &str)> = paths
        .iter()
        .map(|(c, p)| (c.as_str(), p.as_str()))
        .collect();
    mounts.push(("log", "/log"));
    yaml.push_str(&pod("app-0", "app", &[], &mounts));
    yaml
}

/// Plan `n`: snapshot `data-n`, its hooks marking entry and exit in `/log/events`, the pre-hook holding the slot
/// for `hold`.
fn plan(n: usize, locks: &std::path::Path, hold: &str, lock_timeout: &str) -> String {
    let mark = |sign: &str, then: &str| {
        format!("[sh, -c, 'echo \"{sign} $(date +%s%N) {n}\" >> /log/events{then}']")
    };
    format!(
        "name: load-{n}\nnamespace: shop\ntargets: [data-{n}]\nhooks:\n  pre:\n{}  post:\n{}lock:\n  \
         enabled: true\n  dir: {}\n  slots: {SLOTS}\n  timeout: {lock_timeout}\n",
        app_exec_hook(&mark("+", &format!("; sleep {hold}")), "2m"),
        app_exec_hook(&mark("-", ""), "1m"),
        locks.display()
    )
}

/// The most runs that were ever inside the locked section at once, from the `+`/`-` timeline (a `-` at the same
/// instant as a `+` counts first), and how many entered.
fn peak_inside(events: &str) -> (usize, usize) {
    let mut marks: Vec<(u128, i32)> = events
        .lines()
        .map(|line| {
            let mut parts = line.split_whitespace();
            let sign = parts.next().expect("a sign");
            let at: u128 = parts.next().and_then(|t| t.parse().ok()).expect("a time");
            (at, if sign == "+" { 1 } else { -1 })
        })
        .collect();
    marks.sort();
    let (mut inside, mut peak) = (0i32, 0i32);
    for (_, step) in &marks {
        inside += step;
        peak = peak.max(inside);
    }
    let entered = marks.iter().filter(|(_, s)| *s == 1).count();
    (peak as usize, entered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_runs_on_four_slots_never_have_more_than_four_inside_and_all_finish() {
    let env = start(&fixture(RUNS)).await;
    let locks = env.tmp.path().join("locks");
    let plans: Vec<String> = (0..RUNS)
        .map(|n| {
            let path = env.plan(&format!("load-{n}.yaml"), &plan(n, &locks, "0.3", "5m"));
            path.to_str().unwrap().to_owned()
        })
        .collect();
    let started = Instant::now();
    let children: Vec<_> = plans
        .iter()
        .map(|p| {
            env.command(&["run", p, "--output", "json"], &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("backup-ns starts")
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().expect("backup-ns ends"))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let wall = started.elapsed();
    for out in &outputs {
        assert_eq!(out.status.code(), Some(0), "{}", both(out));
    }
    let events =
        std::fs::read_to_string(env.pvc_dir("log").join("events")).expect("the hooks' log");
    let (peak, entered) = peak_inside(&events);
    assert_eq!(entered, RUNS, "every run entered once:\n{events}");
    assert!(
        (1..=SLOTS).contains(&peak),
        "{peak} runs inside at once (slots: {SLOTS}):\n{events}"
    );
    assert_eq!(env.snapshots().len(), RUNS);
    eprintln!("{RUNS} runs on {SLOTS} slots: peak {peak} inside, all done in {wall:.1?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_killed_with_sigkill_while_holding_slots_leak_none() {
    let env = start(&fixture(SLOTS * 2 + 1)).await;
    let locks = env.tmp.path().join("locks");
    let mut children: Vec<_> = (0..SLOTS * 2)
        .map(|n| {
            let path = env.plan(&format!("held-{n}.yaml"), &plan(n, &locks, "60", "5m"));
            env.command(&["run", path.to_str().unwrap()], &[])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("backup-ns starts")
        })
        .collect();
    // Wait until every slot is held (4 runs are inside their pre-hook), then kill all 8: holders and waiters.
    let events = env.pvc_dir("log").join("events");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        if peak_inside(&text).1 == SLOTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slots were never all taken:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for child in &mut children {
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    // A run that may wait only 5 s for a slot goes in at once: the kernel released every killed run's flock.
    let n = SLOTS * 2;
    let path = env.plan("after.yaml", &plan(n, &locks, "0", "5s"));
    let out = env
        .run(&["run", path.to_str().unwrap(), "--output", "json"], &[])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
    let lock_ms = report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step"] == "lock"))
        .and_then(|s| s["duration_ms"].as_u64())
        .expect("a lock step");
    assert!(lock_ms < 5000, "waited {lock_ms} ms for a slot");
}
