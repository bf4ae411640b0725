//! MySQL/MariaDB hooks against a real MariaDB server.

use crate::support::local_exec::LocalExec;
use crate::support::mariadb::Mariadb;
use crate::{
    assert_scripts_only_on_stdin, assert_threshold_trips_before_dumping, decompress, listing,
    target,
};
use backup_ns::hooks::{self, HookError};
use backup_ns::vocab::hook::{Compression, HookAction, MysqlHook};
use std::time::Duration;

const SEED: &str = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(200) NOT NULL, price DECIMAL(10,2)) ENGINE=InnoDB;
INSERT INTO items SELECT seq, CONCAT('item ', seq, ' ''quoted'' ünïcødé 🦀'), seq * 1.25 FROM seq_1_to_3000;
CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT) ENGINE=InnoDB;
INSERT INTO notes (body) VALUES ('a'), (NULL), ('tab\tand newline\ninside');";

const CHECKSUM: &str = "SET SESSION group_concat_max_len = 67108864; SELECT CONCAT((SELECT COUNT(*) FROM items), ':', (SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', id, name, price) ORDER BY id SEPARATOR ',')) FROM items), ':', (SELECT COUNT(*) FROM notes), ':', (SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', id, COALESCE(body, '<null>')) ORDER BY id SEPARATOR ',')) FROM notes))";

fn hook(db: &Mariadb, dump_path: &str) -> MysqlHook {
    let mut hook = MysqlHook::new("statefulset/db".parse().expect("a workload"));
    hook.dump.port = db.port;
    hook.dump.dump_file = dump_path.into();
    hook
}

fn named(params: MysqlHook) -> HookAction {
    HookAction::Mysql(params)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_dump_restores_into_an_empty_database_with_identical_rows() {
    let db = Mariadb::start();
    db.create_database("shop");
    db.load("shop", SEED.as_bytes());
    let dumps = tempfile::tempdir().unwrap();
    let dump_path = dumps.path().join("dump.sql.zst");
    let exec = LocalExec::new()
        .env("MYSQL_USER", &db.user)
        .env("MYSQL_PASSWORD", &db.password)
        .env("MYSQL_DATABASE", "shop");
    let mut params = hook(&db, dump_path.to_str().unwrap());
    params.dump.user = "${MYSQL_USER}".into();
    params.dump.password = String::from("${MYSQL_PASSWORD}");
    params.dump.compression = Compression::Zstd;

    let report = hooks::run(
        "mysql",
        &named(params),
        &exec,
        &target(),
        Duration::from_secs(120),
    )
    .await
    .expect("dump succeeds");
    let size = std::fs::metadata(&dump_path).expect("dump exists").len();
    assert_eq!(report.dump_size, Some(size));
    assert_eq!(report.compression.as_deref(), Some("zstd"));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let version = report.tool_version.unwrap_or_default();
    assert!(
        version.contains("mariadb-dump") || version.contains("mysqldump"),
        "{version}"
    );
    assert_eq!(
        listing(dumps.path()),
        ["dump.sql.zst", "dump.sql.zst.sha256"]
    );

    let sql = decompress("zstd", &dump_path);
    let text = String::from_utf8_lossy(&sql);
    assert!(
        text.contains("DROP TABLE IF EXISTS `items`"),
        "add-drop-table"
    );
    assert!(
        !text.contains("CREATE DATABASE"),
        "restorable into any database"
    );
    db.create_database("restored");
    db.load("restored", &sql);
    assert_eq!(db.sql("restored", CHECKSUM), db.sql("shop", CHECKSUM));
    assert!(db.sql("shop", CHECKSUM).starts_with("3000:"));

    let records = exec.records();
    assert_eq!(
        records.len(),
        1,
        "the check and the dump share one exec session"
    );
    assert_scripts_only_on_stdin(&records, &db.password);
    for record in &records {
        assert!(!String::from_utf8_lossy(&record.stdin).contains(&db.password));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_wrong_password_fails_and_never_shows_the_password() {
    let db = Mariadb::start();
    let dumps = tempfile::tempdir().unwrap();
    let dump_path = dumps.path().join("dump.sql.gz");
    let wrong = "Wr0ng-My-Pa55-unique-4412";
    let exec = LocalExec::new();
    let mut params = hook(&db, dump_path.to_str().unwrap());
    params.dump.user = db.user.clone();
    params.dump.password = String::from(wrong);
    params.dump.database = "mysql".into();
    let err = hooks::run(
        "mysql",
        &named(params),
        &exec,
        &target(),
        Duration::from_secs(60),
    )
    .await
    .expect_err("a wrong password fails");
    assert!(matches!(err, HookError::CheckFailed { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("Access denied"), "{shown}");
    assert!(!shown.contains(wrong), "{shown}");
    assert_scripts_only_on_stdin(&exec.records(), wrong);
    assert_eq!(
        exec.records().len(),
        1,
        "one exec session, stopped by its check"
    );
    assert!(listing(dumps.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_injection_attempt_is_dumped_literally() {
    let db = Mariadb::start();
    let work = tempfile::tempdir().unwrap();
    let pwned = work.path().join("x");
    let evil_db = format!("a'; touch {}; '", pwned.display());
    db.create_database(&evil_db);
    db.sql(
        &evil_db,
        "CREATE TABLE literal_marker (v TEXT); INSERT INTO literal_marker VALUES ('ok')",
    );
    let dumps = tempfile::tempdir().unwrap();
    let dump_path = dumps.path().join("dump.sql.gz");
    let mut params = hook(&db, dump_path.to_str().unwrap());
    params.dump.user = db.user.clone();
    params.dump.password = db.password.clone();
    params.dump.database = evil_db;
    params.single_transaction = false;
    let exec = LocalExec::new().cwd(work.path());
    hooks::run(
        "mysql",
        &named(params),
        &exec,
        &target(),
        Duration::from_secs(60),
    )
    .await
    .expect("the oddly named database is dumped");
    let sql = String::from_utf8(decompress("gzip", &dump_path)).unwrap();
    assert!(sql.contains("literal_marker"));
    assert!(!pwned.exists(), "the injected command ran");
    assert!(
        listing(work.path()).is_empty(),
        "nothing was created in the working directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_space_threshold_exceeded_fails_before_dumping() {
    let db = Mariadb::start();
    let dumps = tempfile::tempdir().unwrap();
    let mut params = hook(&db, dumps.path().join("dump.sql.gz").to_str().unwrap());
    params.dump.user = db.user.clone();
    params.dump.password = db.password.clone();
    params.dump.database = "mysql".into();
    params.dump.threshold = 0;
    assert_threshold_trips_before_dumping(&named(params), dumps.path()).await;
}
