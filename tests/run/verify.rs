//! `backup-ns verify` on kube-sim with real PostgreSQL and MariaDB: the verification pod runs on this host's
//! database tools (`--run-image postgres=host`, `mariadb=host`), restores the snapshot's dump into a throwaway
//! server and checks it. A good dump passes with the plan's checks evaluated; a truncated dump fails at the load;
//! a wrong row count fails its check, and so does a rhai check (while another passes); a snapshot without a dump
//! fails clearly; a timeout fails; every path leaves no pod or claim behind, and a crashed run's leftovers are
//! removed by the next run.

use crate::support::mariadb::Mariadb;
use crate::support::postgres::Postgres;
use crate::{Env, both, pod, pvc, start_running};
use std::io::Write as _;

const PG_SEED: &str = "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 3000) g;
CREATE TABLE notes (id serial PRIMARY KEY, body text);
INSERT INTO notes (body) VALUES ('a'), (NULL), ('c');";

fn pg_plan(port: u16, notes: &str) -> String {
    format!(
        "name: shop
namespace: shop
targets: [pgdata]
hooks:
  pre:
    - type: postgres
      workload: pod/db-0
      container: postgres
      host: 127.0.0.1
      port: {port}
      dumpFile: /var/lib/postgresql/data/dump.sql.gz
      timeout: 2m
verify:
  checks:
    - name: items
      sql: select count(*) from items
      expect: \">= 1\"
    - name: notes
      sql: select count(*) from notes
      expect: \"{notes}\"
"
    )
}

/// The run label of every object a verify run creates.
const RUN_LABEL: &str = "backup-ns.sh/verify-run";

/// Pods and claims that a verify run left behind (any labelled one, or any claim but the fixture's).
fn leftovers(env: &Env, keep: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for plural in ["pods", "persistentvolumeclaims"] {
        for o in env.sim.list(plural, Some("shop")) {
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let labelled = o["metadata"]["labels"][RUN_LABEL].is_string();
            let verify_named = name.starts_with("backup-ns-verify-");
            if (labelled || verify_named) && !keep.contains(&name.as_str()) {
                out.push(format!("{plural}/{name}"));
            }
        }
    }
    out
}

fn report(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify -o json prints one JSON document ({e}): {}",
            both(out)
        )
    })
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check `{name}` in {report:#}"))
}

/// Writes `sql` gzip-compressed as the PVC's dump, then snapshots the PVC with a plan that has no hook (so the dump
/// is exactly these bytes, or none when `sql` is `None`); returns the snapshot's name.
async fn snapshot_with_dump(env: &Env, sql: Option<&[u8]>) -> String {
    let path = env.pvc_dir("pgdata").join("dump.sql.gz");
    match sql {
        Some(sql) => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(sql).unwrap();
            std::fs::write(&path, gz.finish().unwrap()).unwrap();
        }
        None => {
            let _ = std::fs::remove_file(&path);
        }
    }
    let before: Vec<String> = names(env);
    let plan = env.plan(
        "bare.yaml",
        "name: bare\nnamespace: shop\ntargets: [pgdata]\nsnapshot:\n  nameTemplate: \"{pvc}-{rand}\"\n",
    );
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    names(env)
        .into_iter()
        .find(|n| !before.contains(n))
        .expect("a new snapshot")
}

fn names(env: &Env) -> Vec<String> {
    env.snapshots()
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backups_are_proven_by_restoring_them_and_every_path_cleans_up() {
    let pg = Postgres::start();
    pg.create_database("shop");
    pg.load("shop", PG_SEED.as_bytes());
    let fixture = format!(
        "{}{}",
        pvc("pgdata"),
        pod(
            "db-0",
            "postgres",
            &pg.container_env("shop"),
            &[("pgdata", "/var/lib/postgresql/data")]
        )
    );
    let env = start_running(&fixture, false, &["postgres=host"]).await;
    // A crashed run's leftovers: labelled, created long ago.
    env.sim
        .apply_yaml(
            "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: backup-ns-verify-crashed
  namespace: shop
  creationTimestamp: \"2020-01-01T00:00:00Z\"
  labels: {backup-ns.sh/verify-run: crashed}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
",
        )
        .unwrap();
    let good = env.plan("shop.yaml", &pg_plan(pg.port, "== 3"));
    let out = env.run(&["run", good.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let snapshot = names(&env).pop().expect("the backup's snapshot");

    // A good dump passes, with the plan's checks evaluated.
    let verify = |plan: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "verify".to_string(),
            "-n".into(),
            "shop".into(),
            "--plan".into(),
            plan.to_str().unwrap().into(),
            "-o".into(),
            "json".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let args = verify(&good, &["--latest", "--pvc", "pgdata"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.run(&args, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let passed = report(&out);
    assert_eq!(passed["passed"], true, "{passed:#}");
    assert_eq!(passed["snapshot"], snapshot.as_str());
    for name in [
        "dump", "decodes", "loads", "tables", "fresh", "items", "notes",
    ] {
        assert_eq!(check(&passed, name)["passed"], true, "{name}: {passed:#}");
    }
    assert_eq!(check(&passed, "notes")["detail"], "3 == 3");
    assert_eq!(
        passed["tables"],
        serde_json::json!([{"name": "public.items", "rows": 3000}, {"name": "public.notes", "rows": 3}])
    );
    let vs = env
        .snapshots()
        .into_iter()
        .find(|s| s["metadata"]["name"] == snapshot.as_str())
        .unwrap();
    let annotations = &vs["metadata"]["annotations"];
    assert!(
        annotations["backup-ns.sh/verified-at"].is_string(),
        "{vs:#}"
    );
    assert_eq!(
        annotations["backup-ns.sh/verify-result"],
        "passed: 7 checks, 2 tables, 3003 rows"
    );
    assert!(
        env.events_about(&snapshot)
            .await
            .contains(&"Normal BackupVerified".to_string()),
        "{:?}",
        env.events_about(&snapshot).await
    );
    assert_eq!(
        leftovers(&env, &[]),
        Vec::<String>::new(),
        "the crashed run's claim went too"
    );

    // A wrong row count fails its check (exit 7), and is recorded as a failure.
    let wrong = env.plan("wrong.yaml", &pg_plan(pg.port, "== 5"));
    let args = verify(&wrong, &[snapshot.as_str()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.run(&args, &[]).await;
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    let failed = report(&out);
    assert_eq!(failed["failure"], "notes: 3, expected == 5", "{failed:#}");
    assert_eq!(check(&failed, "loads")["passed"], true);
    assert!(
        env.events_about(&snapshot)
            .await
            .contains(&"Warning BackupVerifyFailed".to_string())
    );
    assert_eq!(leftovers(&env, &[]), Vec::<String>::new());

    // rhai checks read the restored database through their queries: one passes with its log line as detail,
    // the other fails with its own message.
    let scripted = pg_plan(pg.port, "== 3");
    let (head, _) = scripted.split_once("verify:\n").unwrap();
    let scripted = env.plan(
        "scripted.yaml",
        &format!(
            "{head}verify:
  checks:
    - name: bodies
      rhai: |
        let rows = query(\"select id, coalesce(body, '') from notes order by id\");
        let empty = rows.filter(|r| r[1] == \"\").len();
        log(`${{rows.len()}} notes, ${{empty}} without a body`);
        rows.len() == 3 && empty == 1 && rows[2] == [\"3\", \"c\"]
    - name: ids
      rhai: |
        let top = scalar(\"select max(id) from items\");
        if top != 5000 {{ fail(`the highest item id is ${{top}}, expected 5000`) }}
"
        ),
    );
    let args = verify(&scripted, &[snapshot.as_str()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.run(&args, &[]).await;
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    let failed = report(&out);
    assert_eq!(check(&failed, "bodies")["passed"], true, "{failed:#}");
    assert_eq!(
        check(&failed, "bodies")["detail"],
        "3 notes, 1 without a body"
    );
    assert_eq!(
        failed["failure"], "ids: the highest item id is 3000, expected 5000 (script line 2)",
        "{failed:#}"
    );
    assert_eq!(leftovers(&env, &[]), Vec::<String>::new());

    // A truncated dump fails at the load.
    let sql = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(env.pvc_dir("pgdata").join("dump.sql.gz"))
        .output()
        .unwrap()
        .stdout;
    let cut = String::from_utf8_lossy(&sql)
        .find("CREATE TABLE public.notes")
        .expect("the dump creates notes")
        + 30;
    let truncated = snapshot_with_dump(&env, Some(&sql[..cut])).await;
    let args = verify(&good, &[truncated.as_str()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.run(&args, &[]).await;
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    let failed = report(&out);
    assert_eq!(check(&failed, "decodes")["passed"], true, "{failed:#}");
    assert_eq!(check(&failed, "loads")["passed"], false, "{failed:#}");
    assert!(
        failed["failure"]
            .as_str()
            .unwrap()
            .starts_with("loads: the dump does not load"),
        "{failed:#}"
    );
    assert_eq!(leftovers(&env, &[]), Vec::<String>::new());

    // A snapshot without a dump fails with a clear message.
    let empty = snapshot_with_dump(&env, None).await;
    let args = verify(&good, &[empty.as_str(), "--keep"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.run(&args, &[]).await;
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    let failed = report(&out);
    assert!(
        failed["failure"]
            .as_str()
            .unwrap()
            .contains("no dump file at /var/lib/postgresql/data/dump.sql.gz in the snapshot"),
        "{failed:#}"
    );
    // --keep leaves the restored claim, unlabelled, and nothing else.
    let kept = failed["kept_claim"]
        .as_str()
        .expect("a kept claim")
        .to_string();
    assert_eq!(leftovers(&env, &[&kept]), Vec::<String>::new());
    let claim = env.sim.list("persistentvolumeclaims", Some("shop"));
    let claim = claim
        .iter()
        .find(|c| c["metadata"]["name"] == kept.as_str())
        .unwrap();
    assert!(
        claim["metadata"]["labels"][RUN_LABEL].is_null(),
        "{claim:#}"
    );

    // A timeout fails (exit 1) and cleans up too.
    let args = verify(&good, &[snapshot.as_str(), "--timeout", "1s"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.run(&args, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        report(&out)["failure"]
            .as_str()
            .unwrap()
            .contains("did not finish within 1s"),
        "{}",
        both(&out)
    );
    env.eventually("the timed-out run's pod and claim are gone", |_| {
        leftovers(&env, &[&kept]).is_empty()
    })
    .await;

    // SIGTERM while the pod runs a slow check: exit 143, and the pod and claim are gone.
    let slow = env.plan(
        "slow.yaml",
        &pg_plan(pg.port, "== 3").replace(
            "    - name: items\n      sql: select count(*) from items",
            "    - name: items\n      sql: select count(*) from pg_sleep(60)",
        ),
    );
    let args = verify(&slow, &[snapshot.as_str()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = env
        .command(&args, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("backup-ns verify starts");
    let pid = child.id();
    env.eventually("the verification pod runs", |sim| {
        sim.list("pods", Some("shop")).iter().any(|p| {
            p["metadata"]["labels"][RUN_LABEL].is_string() && p["status"]["phase"] == "Running"
        })
    })
    .await;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", both(&out));
    assert_eq!(report(&out)["signal"], "SIGTERM");
    assert_eq!(leftovers(&env, &[&kept]), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_backup_is_proven_with_the_plan_recorded_on_its_snapshot() {
    let db = Mariadb::start();
    db.create_database("shop");
    db.load(
        "shop",
        b"CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB;
INSERT INTO items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_1500;",
    );
    let fixture = format!(
        "{}{}",
        pvc("mydata"),
        pod(
            "maria-0",
            "mariadb",
            &db.container_env("shop"),
            &[("mydata", "/var/lib/mysql")]
        )
    );
    let env = start_running(&fixture, false, &["mariadb=host"]).await;
    let plan = env.plan(
        "shop.yaml",
        &format!(
            "name: shop
namespace: shop
targets: [mydata]
hooks:
  pre:
    - type: mysql
      workload: pod/maria-0
      container: mariadb
      host: 127.0.0.1
      port: {}
      user: ${{MYSQL_USER}}
      password: ${{MYSQL_PASSWORD}}
      dumpFile: /var/lib/mysql/dump.sql.gz
      singleTransaction: true
      timeout: 2m
verify:
  checks:
    - {{name: items, sql: 'select count(*) from items', expect: '== 1500'}}
    - {{name: named, sql: 'select count(*) from items where name like ''item %''', expect: '> 1000'}}
",
            db.port
        ),
    );
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let out = env
        .run(
            &[
                // No --plan: the plan recorded on the snapshot names the hook and carries the checks.
                "verify", "--latest", "--pvc", "mydata", "-n", "shop", "-o", "json",
            ],
            &[],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let passed = report(&out);
    assert_eq!(passed["passed"], true, "{passed:#}");
    assert_eq!(check(&passed, "items")["detail"], "1500 == 1500");
    assert_eq!(check(&passed, "named")["passed"], true);
    assert_eq!(
        passed["tables"],
        serde_json::json!([{"name": "items", "rows": 1500}])
    );
    assert_eq!(leftovers(&env, &[]), Vec::<String>::new());
}

/// A labelled verify object of run `run`, created at `created`, recording `timeout`.
fn verify_object(kind: &str, name: &str, run: &str, created: &str, timeout: &str) -> String {
    let meta = format!(
        "metadata:
  name: {name}
  namespace: shop
  creationTimestamp: \"{created}\"
  labels: {{{RUN_LABEL}: {run}}}
  annotations: {{backup-ns.sh/verify-timeout: {timeout}}}
"
    );
    match kind {
        "pod" => format!(
            "---\napiVersion: v1\nkind: Pod\n{meta}spec:\n  containers: [{{name: verify, image: postgres:17}}]\n"
        ),
        _ => format!(
            "---\napiVersion: v1\nkind: PersistentVolumeClaim\n{meta}spec:\n  accessModes: [ReadWriteOnce]\n  \
             resources: {{requests: {{storage: 1Gi}}}}\n"
        ),
    }
}

/// `backup-ns controller -n shop` with `flag`, at 12:00 of the day the fixture's verify runs crashed.
async fn controller(env: &Env, flag: &str) -> std::process::Output {
    let kubeconfig = env.sim.kubeconfig_path().display().to_string();
    let args = ["controller", "-n", "shop", "--delete-pause=0s", flag];
    let vars = [
        ("BACKUP_NS_NOW", "2025-03-01T12:00:00Z"),
        ("KUBECONFIG", kubeconfig.as_str()),
    ];
    env.run(&args, &vars).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_removes_only_crashed_verify_runs_leftovers_and_names_each() {
    let crashed = "2025-03-01T10:00:00Z";
    let fixture = [
        pvc("pgdata"),
        verify_object("pod", "backup-ns-verify-crashed", "crashed", crashed, "30m"),
        verify_object(
            "claim",
            "backup-ns-verify-crashed",
            "crashed",
            crashed,
            "30m",
        ),
        // Still within its run's timeout: the run may be going.
        verify_object(
            "claim",
            "backup-ns-verify-running",
            "running",
            "2025-03-01T11:50:00Z",
            "30m",
        ),
        verify_object("claim", "backup-ns-verify-long", "long", crashed, "4h"),
        // Labelled but not named like a verify run's object: not ours to delete.
        verify_object("claim", "orders-restored", "crashed", crashed, "30m"),
    ]
    .concat();
    let env = crate::start(&fixture).await;
    let objects = |env: &Env| {
        let mut out = Vec::new();
        for plural in ["pods", "persistentvolumeclaims"] {
            for o in env.sim.list(plural, Some("shop")) {
                out.push(format!(
                    "{plural}/{}",
                    o["metadata"]["name"].as_str().unwrap_or_default()
                ));
            }
        }
        out.sort();
        out
    };
    let before = objects(&env);

    let out = controller(&env, "--dry-run").await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for kind in ["pod", "claim"] {
        assert!(
            text.contains(&format!(
                "verify leftovers: would remove {kind} shop/backup-ns-verify-crashed of crashed verify run crashed\n"
            )),
            "{}",
            both(&out)
        );
    }
    assert_eq!(
        text.matches("verify leftovers:").count(),
        2,
        "{}",
        both(&out)
    );
    assert_eq!(objects(&env), before, "a dry run deletes nothing");

    let out = controller(&env, "-o=json").await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let report = report(&out);
    assert_eq!(
        report["verify_leftovers"]["removed"],
        serde_json::json!([
            {"kind": "pod", "namespace": "shop", "name": "backup-ns-verify-crashed", "run": "crashed"},
            {"kind": "claim", "namespace": "shop", "name": "backup-ns-verify-crashed", "run": "crashed"},
        ]),
        "{report:#}"
    );
    env.eventually("the crashed run's pod and claim are gone", |_| {
        objects(&env)
            == [
                "persistentvolumeclaims/backup-ns-verify-long",
                "persistentvolumeclaims/backup-ns-verify-running",
                "persistentvolumeclaims/orders-restored",
                "persistentvolumeclaims/pgdata",
            ]
    })
    .await;
}
