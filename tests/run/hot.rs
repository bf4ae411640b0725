//! `mode: hot` on kube-sim with a real PostgreSQL whose data directory lives on the snapshotted volume (the
//! hostpath driver copies the volume's directory, so the snapshot holds the database itself, cut while it runs).
//! The session is held across the snapshot and ends on every path: after a signal, its timeout or a failure the
//! server has no backup-ns session left; a good run records the backup_label on the snapshot, and the restored
//! copy, given that label and the server's WAL archive, starts and holds every row committed before the backup,
//! while rows were written all through it.

use crate::support::mariadb::Mariadb;
use crate::support::postgres::Postgres;
use crate::{Env, both, pod, pvc, start_running};
use backup_ns::labels::{self, HotBackup};
use kube_sim::Fault;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn plan(port: u16, timeout: &str, ready_timeout: &str) -> String {
    format!(
        "name: shop
namespace: shop
targets: [pgdata]
hooks:
  pre:
    - type: postgres
      mode: hot
      workload: pod/db-0
      container: postgres
      host: 127.0.0.1
      port: {port}
      timeout: {timeout}
snapshot:
  readyTimeout: {ready_timeout}
"
    )
}

/// Sessions the hot hook holds on the server (it connects as application `backup-ns`).
fn backup_sessions(pg: &Postgres) -> u64 {
    pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'backup-ns'",
    )
    .parse()
    .expect("a count")
}

/// Inserts `items` rows 1, 2, 3, … one transaction each until stopped; `committed` is the last id committed.
fn writer(
    pg: Arc<Postgres>,
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut id = committed.load(Ordering::SeqCst);
        while !stop.load(Ordering::SeqCst) {
            id += 1;
            pg.psql(
                "shop",
                &format!("INSERT INTO items VALUES ({id}, 'item {id}')"),
            );
            committed.store(id, Ordering::SeqCst);
        }
    })
}

/// The database's pod, once the server runs on its volume (the server's credentials go into its env).
async fn database_pod(
    env: &Env,
    name: &str,
    container: &str,
    vars: &[(String, String)],
    mount: (&str, &str),
) {
    env.sim
        .apply_yaml(&pod(name, container, vars, &[mount]))
        .unwrap();
    env.eventually("the database pod runs", |sim| {
        sim.list("pods", Some("shop"))
            .iter()
            .all(|p| p["status"]["phase"] == "Running")
    })
    .await;
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_hot_backup_holds_its_session_across_the_snapshot_and_never_leaves_it_open() {
    // `restore`'s label pod runs on this host's tools.
    let env = start_running(&pvc("pgdata"), false, &["postgres=host"]).await;
    // The WAL archive lives outside the volume, as a real one would.
    let archive = tempfile::Builder::new()
        .prefix("bns-wal-")
        .tempdir()
        .unwrap();
    let (uid, gid) = crate::support::os_user_ids("postgres");
    crate::support::chown_tree(archive.path(), uid, gid);
    let archive_command = format!("archive_command=cp %p {}/%f", archive.path().display());
    let data = env.pvc_dir("pgdata").join("pgdata");
    let pg = Arc::new(Postgres::start_on(
        &data,
        &["archive_mode=on", &archive_command, "wal_level=replica"],
    ));
    pg.create_database("shop");
    pg.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)",
    );
    // The database's pod mounts the volume the server's data directory is on.
    database_pod(
        &env,
        "db-0",
        "postgres",
        &pg.container_env("shop"),
        ("pgdata", "/var/lib/postgresql/data"),
    )
    .await;

    // A signal while the snapshot is awaited: the session was open across it, and is gone after exit 143.
    env.sim.faults().add(Fault::snapshot_never_ready());
    let held = env.plan("held.yaml", &(plan(pg.port, "2m", "60s")));
    let child = env
        .command(&["run", held.to_str().unwrap()], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("backup-ns run starts");
    wait_for("the hot session is open during the snapshot", || {
        backup_sessions(&pg) == 1 && !env.snapshots().is_empty()
    })
    .await;
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", both(&out));
    wait_for(
        "the server has no backup-ns session after the signal",
        || backup_sessions(&pg) == 0,
    )
    .await;
    // The server is no longer in backup mode: a new backup starts and stops in one session.
    pg.psql(
        "postgres",
        "SELECT pg_backup_start('probe', true); SELECT pg_backup_stop(false);",
    );

    // The hook's timeout ends the session while the run still waits for its snapshot.
    let short = env.plan("short.yaml", &(plan(pg.port, "2s", "30s")));
    let mut child = env
        .command(&["run", short.to_str().unwrap()], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("backup-ns run starts");
    wait_for("the hot session opens", || backup_sessions(&pg) == 1).await;
    wait_for("the timeout ends the hot session", || {
        backup_sessions(&pg) == 0
    })
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the session ended before the run did, while it waited for the snapshot"
    );
    let _ = child.kill();
    let _ = child.wait();

    // A failed snapshot ends the session (the run fails with exit 4, the snapshot is removed).
    let failing = env.plan("failing.yaml", &(plan(pg.port, "2m", "2s")));
    let out = env.run(&["run", failing.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));
    assert_eq!(backup_sessions(&pg), 0, "{}", both(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the backup was ended on the server"),
        "{}",
        both(&out)
    );
    env.sim.faults().clear();
    for vs in env.snapshots() {
        let name = vs["metadata"]["name"].as_str().unwrap().to_string();
        let _ = env.sim.delete(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("shop"),
            &name,
        );
    }

    // A good run while rows are written all through it.
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writes = writer(Arc::clone(&pg), Arc::clone(&stop), Arc::clone(&committed));
    wait_for("rows are being written", || {
        committed.load(Ordering::SeqCst) >= 20
    })
    .await;
    let before = committed.load(Ordering::SeqCst);
    let good = env.plan("good.yaml", &(plan(pg.port, "2m", "60s")));
    let out = env
        .run(&["run", good.to_str().unwrap(), "-o", "json"], &[])
        .await;
    let during = committed.load(Ordering::SeqCst);
    wait_for("more rows are written after the backup", || {
        committed.load(Ordering::SeqCst) > during + 5
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    writes.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&pg.password));
    assert!(during > before, "rows were written during the backup");
    assert_eq!(backup_sessions(&pg), 0, "the session ended with the run");

    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:#?}");
    let name = snaps[0]["metadata"]["name"].as_str().unwrap().to_string();
    let recorded = snaps[0]["metadata"]["annotations"][labels::ANNOTATION_HOT_BACKUP]
        .as_str()
        .unwrap_or_else(|| panic!("no hot-backup annotation: {:#}", snaps[0]));
    let hot = HotBackup::from_annotation(recorded).expect("the annotation reads back");
    let label = hot.backup_label.clone().expect("a backup_label");
    assert!(label.contains("LABEL: backup-ns"), "{label}");
    assert!(
        label.contains(&format!(
            "START WAL LOCATION: {}",
            hot.start_lsn.as_deref().unwrap()
        )),
        "{hot:#?}"
    );
    assert!(
        hot.stop_lsn.is_some() && hot.tablespace_map.is_none(),
        "{hot:#?}"
    );
    println!(
        "PostgreSQL was in backup mode for {} ms (pg_backup_start to pg_backup_stop)",
        hot.held_ms
    );
    assert_eq!(hot.workload, "pod/db-0");
    assert_eq!(hot.data_directory.as_deref(), Some(data.to_str().unwrap()));
    assert!(!env.pvc_dir("pgdata").join("dump.sql.gz").exists());

    // verify does not mistake the missing dump for a broken backup: without the archive's restore_command it
    // says what it needs (exit 2).
    let out = env
        .run(&["verify", &name, "-n", "shop", "-o", "json"], &[])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has `mode: hot`")
            && String::from_utf8_lossy(&out.stderr).contains("`verify.restoreCommand`"),
        "{}",
        both(&out)
    );
    // With a restore_command that finds nothing, the copy has only the WAL on the volume, which ends before
    // pg_backup_stop() wrote the end of the backup: recovery never reaches a consistent state, the server stops,
    // and verify fails (exit 7).
    let out = verify_with(
        &env,
        &name,
        &plan(pg.port, "2m", "60s"),
        "  restoreCommand: 'false'\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    let recovers = check_named(&report, "recovers");
    assert_eq!(recovers["passed"], false, "{report:#}");
    println!("without the archive: {}", recovers["detail"]);
    let detail = recovers["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("postgres did not recover the copy: ") && detail.contains("FATAL"),
        "{report:#}"
    );
    assert_eq!(
        names(&env, "persistentvolumeclaims"),
        ["pgdata"],
        "verify's claim is gone"
    );

    // Given the archive's, verify's pod copies the data directory off the restored claim, writes the recorded
    // label into the copy and recovers it from the archive to the end of the backup: every row committed before
    // the backup, none committed after the run.
    let out = verify_with(
        &env,
        &name,
        &plan(pg.port, "2m", "60s"),
        &format!(
            "  restoreCommand: cp {}/%f %p\n  checks:\n    - {{name: items, sql: 'select count(*) from items', expect: '>= {before}'}}\n",
            archive.path().display()
        ),
    )
    .await;
    let report = recovered(&out, "/pgdata");
    let check = |name: &str| check_named(&report, name);
    assert_eq!(check("items")["passed"], true, "{report:#}");
    let proven = report["tables"][0]["rows"].as_u64().unwrap_or(0);
    assert_eq!(report["tables"][0]["name"], "public.items", "{report:#}");
    assert!(
        proven >= before && proven <= during,
        "verify's copy holds {proven} rows: not between the {before} committed before the backup and the {during} after it"
    );
    println!(
        "verify recovered the hot PostgreSQL copy with {proven} rows ({before} committed before the backup, {during} after it)"
    );
    assert_eq!(names(&env, "pods"), ["db-0"], "verify's pod is gone");
    assert_eq!(
        names(&env, "persistentvolumeclaims"),
        ["pgdata"],
        "verify's claim is gone"
    );

    // `backup-ns restore` writes the label back into the restored volume's data directory; given the archive's
    // WAL the copy starts and recovers.
    let kubeconfig = env.sim.kubeconfig_path().to_str().unwrap().to_string();
    let out = env
        .run(
            &[
                "restore",
                &name,
                "--pvc",
                "pgdata-restored",
                "-n",
                "shop",
                "--kubeconfig",
                &kubeconfig,
            ],
            &[],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("backup_label written into /pgdata on persistentvolumeclaim/pgdata-restored"),
        "{}",
        both(&out)
    );
    let restored = env.pvc_dir("pgdata-restored").join("pgdata");
    assert_eq!(
        std::fs::read_to_string(restored.join("backup_label")).unwrap(),
        label,
        "the recorded label, byte for byte"
    );
    assert!(
        !restored.join("postmaster.pid").exists(),
        "the live server's pid file is dropped"
    );
    assert_eq!(names(&env, "pods"), ["db-0"], "the label pod is gone");
    recovery(&restored, uid, gid);
    let restore_command = format!("restore_command=cp {}/%f %p", archive.path().display());
    let copy = Postgres::recover(&restored, &[&restore_command]);
    let rows = committed_prefix(
        |sql| copy.psql("shop", sql),
        before,
        committed.load(Ordering::SeqCst),
    );
    let sum = |db: &Postgres| {
        db.psql(
            "shop",
            &format!(
                "SELECT md5(string_agg(id || name, ',' ORDER BY id)) FROM items WHERE id <= {rows}"
            ),
        )
    };
    assert_eq!(
        sum(&copy),
        sum(&pg),
        "the restored rows are the committed ones"
    );
}

/// The restored copy holds rows 1..=N without a gap and `before <= N <= upto`: every row committed before the
/// backup, none that was not committed by its end. Returns N.
fn committed_prefix(query: impl Fn(&str) -> String, before: u64, upto: u64) -> u64 {
    let rows: u64 = query("SELECT count(*) FROM items").parse().unwrap();
    let max: u64 = query("SELECT coalesce(max(id), 0) FROM items")
        .parse()
        .unwrap();
    assert_eq!(rows, max, "the restored rows are 1..={max} without a gap");
    assert!(
        rows >= before,
        "the copy holds every row committed before the backup ({rows} < {before})"
    );
    assert!(
        rows <= upto,
        "the copy holds {rows} rows, more than the {upto} committed"
    );
    rows
}

/// What the operator adds to a restored hot PostgreSQL copy: recovery from the WAL archive (the
/// `restore_command` is given to the server), the directory handed to `postgres`.
fn recovery(data: &Path, uid: u32, gid: u32) {
    std::fs::write(data.join("recovery.signal"), "").unwrap();
    crate::support::chown_tree(data, uid, gid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_hot_backup_holds_the_read_lock_across_the_snapshot_and_its_copy_recovers() {
    // `verify`'s pod runs on this host's MariaDB.
    let env = start_running(&pvc("mydata"), false, &["mariadb=host"]).await;
    let data = env.pvc_dir("mydata").join("mysql");
    // Commits reach the redo log only once a second: the hook's FLUSH ENGINE LOGS must write them out.
    let db = Arc::new(Mariadb::start_on(
        &data,
        &["--innodb-flush-log-at-trx-commit=0"],
    ));
    db.create_database("shop");
    db.sql(
        "shop",
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL) ENGINE=InnoDB",
    );
    database_pod(
        &env,
        "maria-0",
        "mariadb",
        &db.container_env("shop"),
        ("mydata", "/var/lib/mysql"),
    )
    .await;
    let plan = env.plan(
        "shop.yaml",
        &format!(
            "name: shop
namespace: shop
targets: [mydata]
hooks:
  pre:
    - type: mysql
      mode: hot
      workload: pod/maria-0
      container: mariadb
      host: 127.0.0.1
      port: {}
      user: ${{MYSQL_USER}}
      password: ${{MYSQL_PASSWORD}}
      timeout: 2m
verify:
  checks:
    - {{name: items, sql: 'select count(*) from items', expect: '>= 20'}}
",
            db.port
        ),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writes = {
        let (db, stop, committed) = (Arc::clone(&db), Arc::clone(&stop), Arc::clone(&committed));
        std::thread::spawn(move || {
            let mut id = 0;
            while !stop.load(Ordering::SeqCst) {
                id += 1;
                db.sql(
                    "shop",
                    &format!("INSERT INTO items VALUES ({id}, 'item {id}')"),
                );
                committed.store(id, Ordering::SeqCst);
            }
        })
    };
    wait_for("rows are being written", || {
        committed.load(Ordering::SeqCst) >= 20
    })
    .await;
    let before = committed.load(Ordering::SeqCst);
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    let after = committed.load(Ordering::SeqCst);
    wait_for("writes go on after the lock", || {
        committed.load(Ordering::SeqCst) > after + 5
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    writes.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("UNLOCK TABLES after holding the read lock"),
        "{table}"
    );
    // With commits written to the redo log only once a second, the lock waited until they were.
    assert!(table.contains("redo log durable up to LSN "), "{table}");
    for line in table.lines().filter(|l| l.starts_with("pre[0]/mysql")) {
        println!("{line}");
    }

    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:#?}");
    let hot = HotBackup::from_annotation(
        snaps[0]["metadata"]["annotations"][labels::ANNOTATION_HOT_BACKUP]
            .as_str()
            .expect("a hot-backup annotation"),
    )
    .unwrap();
    assert_eq!(hot.workload, "pod/maria-0");
    assert_eq!(
        hot.database.as_deref(),
        Some("shop"),
        "${{MYSQL_DATABASE}} as the container had it"
    );
    assert!(hot.backup_label.is_none());
    let name = snaps[0]["metadata"]["name"].as_str().unwrap().to_string();

    let restored = env.restore(&name, "mydata-restored").await.join("mysql");
    let copy = Mariadb::recover(&restored, &[]);
    // Nothing was committed while the lock was held, so nothing after `after` either.
    let rows = committed_prefix(|sql| copy.sql("shop", sql), before, after);
    let sum = |db: &Mariadb| {
        db.sql(
            "shop",
            &format!(
                "SET SESSION group_concat_max_len = 67108864; \
                 SELECT MD5(GROUP_CONCAT(id, name ORDER BY id)) FROM items WHERE id <= {rows}"
            ),
        )
    };
    assert_eq!(sum(&copy), sum(&db));

    // `verify` proves the same snapshot on its own: its pod copies the data directory off the restored claim,
    // MariaDB recovers the copy, and the tables and the plan's check are answered from it.
    let out = env
        .run(&["verify", &name, "-n", "shop", "-o", "json"], &[])
        .await;
    let report = recovered(&out, "/mysql");
    let check = |name: &str| check_named(&report, name);
    assert_eq!(check("items")["detail"], format!("{rows} >= 20"));
    assert_eq!(
        report["tables"],
        serde_json::json!([{"name": "items", "rows": rows}]),
        "the rows the test's own recovery of the snapshot found"
    );
    assert!(report["dump_bytes"].is_null(), "{report:#}");
    assert_eq!(
        names(&env, "persistentvolumeclaims"),
        ["mydata", "mydata-restored"],
        "verify's claim is gone"
    );
    assert_eq!(names(&env, "pods"), ["maria-0"], "verify's pod is gone");
}

/// `backup-ns verify SNAPSHOT -o json` with `--plan`: `plan` given the `verify` section `section` (its lines).
async fn verify_with(env: &Env, snapshot: &str, plan: &str, section: &str) -> std::process::Output {
    let file = env.plan("verify.yaml", &format!("{plan}verify:\n{section}"));
    let file = file.to_str().unwrap();
    env.run(
        &[
            "verify", snapshot, "-n", "shop", "--plan", file, "-o", "json",
        ],
        &[],
    )
    .await
}

/// The report of a verify run that passed on a hot snapshot: the data directory `dir` (on the claim) was copied and
/// the server recovered it.
fn recovered(out: &std::process::Output, dir: &str) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", both(out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!(report["passed"], true, "{report:#}");
    let copy = check_named(&report, "copy");
    assert!(
        copy["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("data directory {dir} (")),
        "{report:#}"
    );
    assert_eq!(
        check_named(&report, "recovers")["passed"],
        true,
        "{report:#}"
    );
    report
}

/// The check `name` of a verify report.
fn check_named(report: &serde_json::Value, name: &str) -> serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check `{name}` in {report:#}"))
        .clone()
}

/// The names of the namespace's objects of `plural`, sorted.
fn names(env: &Env, plural: &str) -> Vec<String> {
    let mut names: Vec<String> = env
        .sim
        .list(plural, Some("shop"))
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}
