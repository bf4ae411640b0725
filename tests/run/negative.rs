//! Negative cases of issue 4 item 9: each has an exact exit code and message, and leaves no snapshot and no
//! partial dump behind.

use crate::databases::{pg_fixture, pg_plan};
use crate::support::postgres::Postgres;
use crate::{both, listing, pod, pvc, start};
use kube_sim::{Fault, PodPhase};
use std::time::{Duration, Instant};

/// No VolumeSnapshot exists, and the PVC dir holds only `allowed`.
fn assert_nothing_left(env: &crate::Env, pvc: &str, allowed: &[&str]) {
    assert!(env.snapshots().is_empty(), "{:#?}", env.snapshots());
    let files = listing(&env.pvc_dir(pvc));
    assert!(
        files.iter().all(|f| allowed.contains(&f.as_str())),
        "unexpected files in PVC {pvc}: {files:?}"
    );
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn app_fixture() -> String {
    format!(
        "{}{}",
        pvc("data"),
        pod("app-0", "app", &[], &[("data", "/data")])
    )
}

fn exec_plan(command: &str, timeout: &str) -> String {
    format!(
        "name: app\nnamespace: shop\ntargets: [data]\nhooks:\n  pre:\n{}",
        crate::app_exec_hook(command, timeout)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_is_not_ready_fails_preflight_with_exit_1() {
    let env = start(&app_fixture()).await;
    env.sim
        .set_pod_phase("shop", "app-0", PodPhase::NotReady)
        .unwrap();
    let plan = env.plan("p.yaml", &exec_plan("[touch, /data/ran]", "1m"));
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        stderr(&out).contains(
            "error: hook pre[0]/exec: pod/app-0 in namespace shop has no Running and Ready pod (app-0 (Running, not Ready))"
        ),
        "{}",
        both(&out)
    );
    assert_nothing_left(&env, "data", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_pvc_fails_preflight_naming_it() {
    let env = start(&app_fixture()).await;
    let plan = env.plan(
        "p.yaml",
        "name: app\nnamespace: shop\ntargets: [data, nope]\n",
    );
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        stderr(&out).contains("error: PersistentVolumeClaim shop/nope does not exist"),
        "{}",
        both(&out)
    );
    assert_nothing_left(&env, "data", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_the_check_without_showing_the_password() {
    let pg = Postgres::start();
    pg.create_database("shop");
    let wrong = "Wr0ngPassw0rdXYZ";
    let env_vars: Vec<(String, String)> = pg
        .container_env("shop")
        .into_iter()
        .map(|(k, v)| {
            if k == "POSTGRES_PASSWORD" {
                (k, wrong.to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let fixture = format!(
        "{}{}",
        pvc("pgdata"),
        pod(
            "db-0",
            "postgres",
            &env_vars,
            &[("pgdata", "/var/lib/postgresql/data")]
        )
    );
    let env = start(&fixture).await;
    let plan = env.plan("p.yaml", &pg_plan(pg.port, ""));
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        stderr(&out).contains("SELECT 1 failed (connection or credentials)"),
        "{}",
        both(&out)
    );
    assert!(!both(&out).contains(wrong), "{}", both(&out));
    assert_nothing_left(&env, "pgdata", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_dir_above_the_threshold_fails_before_dumping() {
    let pg = Postgres::start();
    pg.create_database("shop");
    let env = start(&pg_fixture(&pg, "shop")).await;
    let plan = env.plan(
        "p.yaml",
        &pg_plan(pg.port, "").replace(
            "      timeout: 2m\n",
            "      timeout: 2m\n      threshold: 1\n",
        ),
    );
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    // Any real filesystem with a database on it is more than 1% full.
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        stderr(&out).contains("above the threshold of 1%"),
        "{}",
        both(&out)
    );
    assert_nothing_left(&env, "pgdata", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_hook_that_exits_1_fails_the_run() {
    let env = start(&app_fixture()).await;
    let plan = env.plan(
        "p.yaml",
        &exec_plan("[sh, -c, 'echo broken >&2; exit 1']", "1m"),
    );
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        stderr(&out)
            .contains("error: hook `pre[0]/exec`: command exited with status 1 in pod/app-0"),
        "{}",
        both(&out)
    );
    assert!(stderr(&out).contains("broken"));
    assert_nothing_left(&env, "data", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_timeout_kills_the_remote_process_and_takes_no_snapshot() {
    let env = start(&app_fixture()).await;
    let plan = env.plan(
        "p.yaml",
        &exec_plan("[sh, -c, 'echo $$ > /data/pid; exec sleep 300']", "2s"),
    );
    let started = Instant::now();
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        stderr(&out).contains("error: hook `pre[0]/exec`: did not finish within 2s"),
        "{}",
        both(&out)
    );
    let pid =
        std::fs::read_to_string(env.pvc_dir("data").join("pid")).expect("the hook wrote its pid");
    let pid = pid.trim();
    assert!(
        crate::process_is_gone(pid),
        "the remote process {pid} still runs"
    );
    assert_nothing_left(&env, "data", &["pid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_never_becomes_ready_exits_4_and_is_removed() {
    let env = start(&pvc("data")).await;
    env.sim.faults().add(Fault::snapshot_never_ready());
    let plan = env.plan(
        "p.yaml",
        "name: app\nnamespace: shop\ntargets: [data]\nsnapshot:\n  readyTimeout: 2s\n",
    );
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));
    assert!(
        stderr(&out).contains("did not become ready within 2s"),
        "{}",
        both(&out)
    );
    env.eventually("the unusable snapshot is gone", |sim| {
        sim.list("volumesnapshots", Some("shop")).is_empty()
    })
    .await;
    assert_eq!(env.events_about("data").await, ["Warning BackupFailed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injection_attempt_in_the_database_name_is_dumped_literally() {
    let pg = Postgres::start();
    let evil = "a'; touch /var/lib/postgresql/data/pwned; '";
    pg.create_database(evil);
    pg.load(
        evil,
        b"CREATE TABLE t (v text); INSERT INTO t VALUES ('literal');",
    );
    let env = start(&pg_fixture(&pg, evil)).await;
    let plan = env.plan("p.yaml", &pg_plan(pg.port, ""));
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let files = listing(&env.pvc_dir("pgdata"));
    assert!(!files.contains(&"pwned".to_string()), "{files:?}");
    assert_eq!(files, ["dump.sql.gz", "dump.sql.gz.sha256"]);
    let sql = crate::gunzip(&env.pvc_dir("pgdata").join("dump.sql.gz"));
    assert!(String::from_utf8_lossy(&sql).contains("literal"));
    assert_eq!(env.snapshots().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_dump_kills_it_removes_the_partial_file_releases_the_lock_and_exits_143() {
    let pg = Postgres::start();
    pg.create_database("shop");
    // A pg_dump that writes a little, records its pid and hangs: the run is mid-dump when SIGTERM comes.
    let real = crate::support::binaries::require(
        &["psql"],
        &crate::support::binaries::postgres_dirs(),
        "apt-get install postgresql",
    );
    let real_dir = real.parent().unwrap().display().to_string();
    let host_path = std::env::var("PATH").unwrap_or_default();
    let mut vars = pg.container_env("shop");
    vars.push(("PATH".into(), format!("/fakebin:{real_dir}:{host_path}")));
    let fixture = format!(
        "{}{}{}",
        pvc("pgdata"),
        pvc("tools"),
        pod(
            "db-0",
            "postgres",
            &vars,
            &[
                ("pgdata", "/var/lib/postgresql/data"),
                ("tools", "/fakebin")
            ]
        )
    );
    let env = start(&fixture).await;
    let tools = env.pvc_dir("tools");
    {
        use std::os::unix::fs::PermissionsExt;
        let fake = tools.join("pg_dump");
        std::fs::write(
            &fake,
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (fake) 99'; exit 0; fi\necho $$ > /fakebin/pid\nhead -c 100000 /dev/zero\nexec sleep 300\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let locks = env.tmp.path().join("locks");
    let plan = env.plan(
        "p.yaml",
        &pg_plan(
            pg.port,
            &format!(
                "lock:\n  enabled: true\n  dir: {}\n  slots: 1\n  timeout: 1m\n",
                locks.display()
            ),
        ),
    );
    let mut child = env
        .command(&["run", plan.to_str().unwrap()], &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("backup-ns starts");
    env.eventually("the fake pg_dump is running", |_| {
        tools.join("pid").exists()
    })
    .await;
    // Give the partial file a moment to receive the first bytes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let partial_seen = listing(&env.pvc_dir("pgdata"));
    assert!(
        partial_seen.iter().any(|f| f != "dump.sql.gz"),
        "a partial dump file exists mid-dump: {partial_seen:?}"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || {
        let _ = &mut child;
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", both(&out));
    assert!(
        stderr(&out).contains("cancelled in pod/db-0 (container postgres) in namespace shop"),
        "{}",
        both(&out)
    );
    assert!(
        stderr(&out).contains("partial dump removed"),
        "{}",
        both(&out)
    );
    let pid = std::fs::read_to_string(tools.join("pid")).unwrap();
    assert!(
        crate::process_is_gone(&pid),
        "the fake pg_dump {pid} still runs"
    );
    assert_nothing_left(&env, "pgdata", &[]);
    assert_eq!(env.events_about("pgdata").await, ["Warning BackupFailed"]);
    // The slot is free again.
    let guard = backup_ns::lock::acquire(&backup_ns::lock::LockConfig {
        dir: locks,
        slots: 1,
        timeout: Duration::from_millis(200),
    });
    assert!(guard.is_ok(), "the lock slot is still held: {guard:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_with_one_slot_run_one_after_the_other() {
    let env = start(&app_fixture()).await;
    let locks = env.tmp.path().join("locks");
    let plan = env.plan(
        "p.yaml",
        &format!(
            "{}lock:\n  enabled: true\n  dir: {}\n  slots: 1\n  timeout: 1m\n",
            exec_plan("[sleep, '2']", "1m"),
            locks.display()
        ),
    );
    let p = plan.to_str().unwrap().to_string();
    let args = ["run", p.as_str(), "--output", "json"];
    let (a, b) = tokio::join!(env.run(&args, &[]), env.run(&args, &[]));
    assert_eq!(a.status.code(), Some(0), "{}", both(&a));
    assert_eq!(b.status.code(), Some(0), "{}", both(&b));
    let lock_wait = |out: &std::process::Output| -> u64 {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "lock")
            .map(|s| s["duration_ms"].as_u64().unwrap())
            .unwrap()
    };
    let waited = lock_wait(&a).max(lock_wait(&b));
    assert!(
        waited >= 1000,
        "the second run should wait for the first's slot (waited {waited} ms)"
    );
    assert_eq!(env.snapshots().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_is_reported_once_without_the_client_librarys_error_line() {
    let env = start("").await;
    // A kubeconfig whose server refuses connections.
    let url = format!("http://127.0.0.1:{}", crate::support::free_port());
    let kubeconfig = env.plan(
        "down.kubeconfig",
        &kube_sim::kubeconfig_yaml(&url, "t", None),
    );
    let out = env
        .run(
            &["run", "--kubeconfig", kubeconfig.to_str().unwrap()],
            &[
                ("BAK_NAMESPACE", "shop"),
                ("BAK_PVC_NAME", "data"),
                ("BAK_DB_SKIP", "true"),
            ],
        )
        .await;
    assert_ne!(out.status.code(), Some(0), "{}", both(&out));
    let stderr = stderr(&out);
    assert!(!stderr.contains("failed with error"), "{stderr}");
    assert!(
        stderr.contains("error: could not get Namespace shop")
            && stderr.contains("could not talk to the apiserver"),
        "the real error is still there: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_pvc_and_class_get_a_did_you_mean_from_what_exists() {
    let env = start(&pvc("data")).await;
    let plan = env.plan(
        "typo.yaml",
        "name: shop\nnamespace: shop\ntargets: [dta]\nsnapshot:\n  class: csi-hostpath-snapclas\n",
    );
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let stderr = stderr(&out);
    assert!(stderr.contains("did you mean `data`?"), "{stderr}");
    assert!(
        stderr.contains("did you mean `csi-hostpath-snapclass`?"),
        "{stderr}"
    );
    assert!(env.snapshots().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_namespace_gets_a_did_you_mean_from_the_namespaces_that_exist() {
    let env = start(&pvc("data")).await;
    let plan = env.plan(
        "ns-typo.yaml",
        "name: shop\nnamespace: shpo\ntargets: [data]\n",
    );
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let stderr = stderr(&out);
    assert!(
        stderr.contains("Namespace shpo does not exist; did you mean `shop`?"),
        "{stderr}"
    );
    assert!(env.snapshots().is_empty());
}
