//! `backup-ns mysql ...` against a real MariaDB: dump, info, download, restore from the container's file and
//! from a local file, and the shell.

use crate::env::{World, fixture, listing, name_time, ok, show, stdout};
use crate::support::mariadb::Mariadb;

const MOUNT: &str = "/var/lib/mysql";
const ORIGINAL: &str = "1\tapple\n2\tpear ✓\n3\tO'Reilly";

fn rows(db: &Mariadb) -> String {
    db.sql("shopdb", "SELECT id, name FROM items ORDER BY id")
}

async fn setup() -> (Mariadb, World, String) {
    let db = tokio::task::spawn_blocking(Mariadb::start).await.unwrap();
    db.create_database("shopdb");
    db.sql(
        "shopdb",
        "CREATE TABLE items (id int PRIMARY KEY, name varchar(50)) DEFAULT CHARSET=utf8mb4; \
         INSERT INTO items VALUES (1, 'apple'), (2, 'pear ✓'), (3, 'O''Reilly')",
    );
    let world = World::start(&fixture("mariadb", MOUNT, &db.container_env("shopdb"))).await;
    let plan = world
        .write(
            "plan.yaml",
            &format!(
                "name: shop\nnamespace: shop\ntargets: [data]\nhooks:\n  pre:\n    - type: mysql\n      workload: pod/db-0\n      container: mariadb\n      dumpFile: {MOUNT}/dump.sql.gz\n      user: ${{MYSQL_USER}}\n      password: ${{MYSQL_PASSWORD}}\n      database: ${{MYSQL_DATABASE}}\n      port: {}\n",
                db.port
            ),
        )
        .display()
        .to_string();
    (db, world, plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_dump_download_and_restores_round_trip_through_the_pod() {
    let (db, w, plan) = setup().await;
    ok(&w.bns(&["mysql", "--plan", &plan, "dump"], None).await);
    let in_pvc = w.pvc().join("dump.sql.gz");
    assert!(in_pvc.is_file());

    let info = ok(&w.bns(&["mysql", "--plan", &plan, "info"], None).await);
    assert!(info.contains("database:        shopdb"), "{info}");
    assert!(info.contains("MariaDB"), "{info}");
    assert!(
        info.contains("dump size:") && info.contains("gzip"),
        "{info}"
    );

    std::fs::create_dir(w.path("out")).unwrap();
    ok(&w
        .bns(
            &["mysql", "--plan", &plan, "download", "--output-dir", "out"],
            None,
        )
        .await);
    let name = format!("shop_{}_mysql_dump.sql.gz", name_time(&in_pvc));
    assert_eq!(listing(&w.path("out")), vec![name.clone()]);
    assert_eq!(
        std::fs::read(w.path("out").join(&name)).unwrap(),
        std::fs::read(&in_pvc).unwrap()
    );

    db.sql(
        "shopdb",
        "DELETE FROM items WHERE id = 1; UPDATE items SET name = 'x'",
    );
    ok(&w
        .bns(&["mysql", "--plan", &plan, "restore", "--yes"], None)
        .await);
    assert_eq!(rows(&db), ORIGINAL);

    db.sql("shopdb", "DROP TABLE items");
    let local = format!("out/{name}");
    let out = w
        .bns(
            &[
                "mysql",
                "--plan",
                &plan,
                "restore",
                "--from-local",
                &local,
                "--yes",
            ],
            None,
        )
        .await;
    ok(&out);
    assert_eq!(rows(&db), ORIGINAL, "{}", show(&out));

    let shell = w
        .bns(
            &["mysql", "--plan", &plan, "shell"],
            Some(b"SELECT 40 + 2 AS answer;\nexit\n"),
        )
        .await;
    assert_eq!(shell.status.code(), Some(0), "{}", show(&shell));
    assert!(stdout(&shell).contains("42"), "{}", show(&shell));
}
