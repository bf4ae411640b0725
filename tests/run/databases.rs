//! Full cycle for both databases: seed → `backup-ns run` → snapshot ready → restore the snapshot into a new PVC →
//! load the dump from it into an empty database → identical row counts and checksums.

use crate::support::mariadb::Mariadb;
use crate::support::postgres::Postgres;
use crate::{both, gunzip, pod, pvc, start};
use backup_ns::labels;

const PG_SEED: &str = "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));
INSERT INTO items SELECT g, 'item ' || g || E' \\'quoted\\' ünïcødé', g * 1.25 FROM generate_series(1, 3000) g;
CREATE TABLE notes (id serial PRIMARY KEY, body text);
INSERT INTO notes (body) VALUES ('a'), (NULL), ('tab	and newline
inside');";

const PG_CHECKSUM: &str = "SELECT (SELECT count(*) FROM items) || ':' || (SELECT md5(string_agg(id || '|' || name || '|' || price, ',' ORDER BY id)) FROM items) || ':' || (SELECT count(*) FROM notes) || ':' || (SELECT md5(string_agg(id || '|' || coalesce(body, '<null>'), ',' ORDER BY id)) FROM notes)";

const MY_SEED: &str = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(200) NOT NULL, price DECIMAL(10,2)) ENGINE=InnoDB;
INSERT INTO items SELECT seq, CONCAT('item ', seq, ' ''quoted'' ünïcødé 🦀'), seq * 1.25 FROM seq_1_to_3000;
CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT) ENGINE=InnoDB;
INSERT INTO notes (body) VALUES ('a'), (NULL), ('tab\\tand newline\\ninside');";

const MY_CHECKSUM: &str = "SET SESSION group_concat_max_len = 67108864; SELECT CONCAT((SELECT COUNT(*) FROM items), ':', (SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', id, name, price) ORDER BY id SEPARATOR ',')) FROM items), ':', (SELECT COUNT(*) FROM notes), ':', (SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', id, COALESCE(body, '<null>')) ORDER BY id SEPARATOR ',')) FROM notes))";

pub fn pg_plan(port: u16, extra: &str) -> String {
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
{extra}"
    )
}

pub fn pg_fixture(pg: &Postgres, db: &str) -> String {
    format!(
        "{}{}",
        pvc("pgdata"),
        pod(
            "db-0",
            "postgres",
            &pg.container_env(db),
            &[("pgdata", "/var/lib/postgresql/data")]
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_full_cycle_restores_identical_rows_from_the_snapshot() {
    let pg = Postgres::start();
    pg.create_database("shop");
    pg.load("shop", PG_SEED.as_bytes());
    let env = start(&pg_fixture(&pg, "shop")).await;
    let plan = env.plan("shop.yaml", &pg_plan(pg.port, ""));

    let out = env
        .run(
            &["run", plan.to_str().unwrap(), "--output", "json"],
            &[("BACKUP_NS_POD", "backup-job-1")],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(report["success"], true);
    assert_eq!(report["hooks"][0]["kind"], "postgres");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&pg.password));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&pg.password));

    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:#?}");
    let vs = &snaps[0];
    let name = vs["metadata"]["name"].as_str().unwrap();
    assert_eq!(vs["status"]["readyToUse"], true);
    let l = &vs["metadata"]["labels"];
    assert_eq!(l[labels::PVC], "pgdata");
    assert_eq!(l[labels::PLAN], "shop");
    assert_eq!(l[labels::TYPE], "adhoc");
    assert_eq!(l[labels::POD], "backup-job-1");
    assert_eq!(l[labels::RETAIN], "daily_weekly_monthly");
    assert!(
        l[labels::DAILY].is_string()
            && l[labels::WEEKLY].is_string()
            && l[labels::MONTHLY].is_string()
    );
    let a = &vs["metadata"]["annotations"];
    assert!(
        !a[labels::ANNOTATION_PLAN]
            .as_str()
            .unwrap()
            .contains(&pg.password)
    );
    let hooks: serde_json::Value =
        serde_json::from_str(a[labels::ANNOTATION_HOOKS].as_str().unwrap()).unwrap();
    assert!(hooks[0]["dump_size"].as_u64().unwrap() > 0);
    assert_eq!(
        a[labels::ANNOTATION_RETENTION],
        r#"{"daily":7,"monthly":12,"weekly":4}"#
    );
    let on_pvc = env.events_about("pgdata").await;
    assert_eq!(on_pvc, ["Normal BackupSucceeded"]);
    let on_pod = env.events_about("backup-job-1").await;
    assert_eq!(on_pod, ["Normal BackupSucceeded"]);

    let restored = env.restore(name, "pgdata-restored").await;
    let sql = gunzip(&restored.join("dump.sql.gz"));
    pg.create_database("restored");
    pg.load("restored", &sql);
    assert_eq!(
        pg.psql("restored", PG_CHECKSUM),
        pg.psql("shop", PG_CHECKSUM)
    );
    assert!(pg.psql("restored", PG_CHECKSUM).starts_with("3000:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_full_cycle_restores_identical_rows_from_the_snapshot() {
    let db = Mariadb::start();
    db.create_database("shop");
    db.load("shop", MY_SEED.as_bytes());
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
    let env = start(&fixture).await;
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
      defaultCharacterSet: utf8mb4
      singleTransaction: true
      timeout: 2m
retention:
  days: 30
",
            db.port
        ),
    );
    let out = env.run(&["run", plan.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("pre[0]/mysql") && table.contains("succeeded"),
        "{table}"
    );
    assert!(!table.contains(&db.password));

    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    let l = &snaps[0]["metadata"]["labels"];
    assert_eq!(l[labels::RETAIN], "days");
    assert_eq!(l[labels::RETAIN_DAYS], "30");
    assert!(l[labels::DELETE_AFTER].is_string());
    let name = snaps[0]["metadata"]["name"].as_str().unwrap();
    let restored = env.restore(name, "mydata-restored").await;
    let sql = gunzip(&restored.join("dump.sql.gz"));
    db.create_database("restored");
    db.load("restored", &sql);
    assert_eq!(db.sql("restored", MY_CHECKSUM), db.sql("shop", MY_CHECKSUM));
    assert!(db.sql("restored", MY_CHECKSUM).starts_with("3000:"));
}
