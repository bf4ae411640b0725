//! `backup-ns postgres ...` against a real PostgreSQL: dump, info, download, restore (container file and
//! `--from-local`), the confirmation refusal, and the interactive shell over a TTY exec.

use crate::env::{World, fixture, listing, name_time, ok, show, stderr, stdout};
use crate::support::postgres::Postgres;

const MOUNT: &str = "/var/lib/postgresql/data";

struct Db {
    pg: Postgres,
    world: World,
    plan: String,
}

async fn setup() -> Db {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    pg.create_database("shopdb");
    pg.psql(
        "shopdb",
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items VALUES (1, 'apple'), (2, 'pear ✓'), (3, 'O''Reilly')",
    );
    let world = World::start(&fixture("postgres", MOUNT, &pg.container_env("shopdb"))).await;
    let plan = world
        .write(
            "plan.yaml",
            &format!(
                "name: shop\nnamespace: shop\ntargets: [data]\nhooks:\n  pre:\n    - type: postgres\n      workload: pod/db-0\n      container: postgres\n      dumpFile: {MOUNT}/dump.sql.gz\n      port: {}\n",
                pg.port
            ),
        )
        .display()
        .to_string();
    Db { pg, world, plan }
}

fn rows(pg: &Postgres) -> String {
    pg.psql(
        "shopdb",
        "SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM items",
    )
}

const ORIGINAL: &str = "1:apple,2:pear ✓,3:O'Reilly";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_download_and_both_restores_round_trip_through_the_pod() {
    let Db { pg, world: w, plan } = setup().await;

    let dumped = ok(&w.bns(&["postgres", "--plan", &plan, "dump"], None).await);
    assert!(
        dumped.contains("/var/lib/postgresql/data/dump.sql.gz"),
        "{dumped}"
    );
    let in_pvc = w.pvc().join("dump.sql.gz");
    assert!(in_pvc.is_file(), "the dump landed on the PVC");
    // Its record, written after `gzip -t` passed in the container, is what `sha256sum -c` reads.
    let checked = std::process::Command::new("sha256sum")
        .args(["-c", "dump.sql.gz.sha256"])
        .current_dir(w.pvc())
        .output()
        .expect("sha256sum");
    assert!(
        checked.status.success() && String::from_utf8_lossy(&checked.stdout) == "dump.sql.gz: OK\n",
        "{checked:?}"
    );

    let info = ok(&w.bns(&["postgres", "--plan", &plan, "info"], None).await);
    assert!(info.contains("database:        shopdb"), "{info}");
    assert!(info.contains("server:          PostgreSQL "), "{info}");
    assert!(
        info.contains("client:          psql (PostgreSQL)"),
        "{info}"
    );
    assert!(
        info.contains("dump size:") && info.contains("gzip"),
        "{info}"
    );
    assert!(info.contains("dump written:"), "{info}");

    std::fs::create_dir(w.path("out")).unwrap();
    let out = w
        .bns(
            &[
                "postgres",
                "--plan",
                &plan,
                "download",
                "--output-dir",
                "out",
            ],
            None,
        )
        .await;
    ok(&out);
    let name = format!("shop_{}_postgres_dump.sql.gz", name_time(&in_pvc));
    assert_eq!(
        listing(&w.path("out")),
        vec![name.clone()],
        "{}",
        show(&out)
    );
    let local = w.path("out").join(&name);
    assert_eq!(
        std::fs::read(&local).unwrap(),
        std::fs::read(&in_pvc).unwrap()
    );
    assert!(
        show(&out).contains(
            "verified: SHA-256 matches the dump's record, written after `gzip -t` passed in the container"
        ),
        "{}",
        show(&out)
    );

    // The downloaded dump imports into a fresh database as printed.
    pg.create_database("copy");
    let sql = {
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&local)
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    pg.load("copy", &sql);
    assert_eq!(
        pg.psql(
            "copy",
            "SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM items"
        ),
        ORIGINAL
    );

    // Without --yes and without a terminal the restore refuses and changes nothing.
    pg.psql(
        "shopdb",
        "DELETE FROM items WHERE id = 1; INSERT INTO items VALUES (9, 'junk')",
    );
    let refused = w
        .bns(&["postgres", "--plan", &plan, "restore"], Some(b"yes\n"))
        .await;
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    assert!(
        stderr(&refused).contains("pass --yes"),
        "{}",
        show(&refused)
    );
    assert_eq!(rows(&pg), "2:pear ✓,3:O'Reilly,9:junk");

    // From the container's dump file.
    let restored = ok(&w
        .bns(&["postgres", "--plan", &plan, "restore", "--yes"], None)
        .await);
    assert!(restored.contains("restored the dump file"), "{restored}");
    assert_eq!(rows(&pg), ORIGINAL);

    // From the local file, uploaded through stdin.
    pg.psql("shopdb", "UPDATE items SET name = 'changed'");
    let local_arg = format!("out/{name}");
    ok(&w
        .bns(
            &[
                "postgres",
                "--plan",
                &plan,
                "restore",
                "--from-local",
                &local_arg,
                "--yes",
            ],
            None,
        )
        .await);
    assert_eq!(rows(&pg), ORIGINAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_restore_is_rolled_back_and_reported() {
    let Db { pg, world: w, plan } = setup().await;
    let bad = crate::env::gzip(b"DELETE FROM items;\nTHIS IS NOT SQL;\n");
    std::fs::write(w.path("bad.sql.gz"), bad).unwrap();
    let out = w
        .bns(
            &[
                "postgres",
                "--plan",
                &plan,
                "restore",
                "--from-local",
                "bad.sql.gz",
                "--yes",
            ],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("rolled the restore back"),
        "{}",
        show(&out)
    );
    assert!(stderr(&out).contains("syntax error"), "{}", show(&out));
    assert_eq!(rows(&pg), ORIGINAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_runs_psql_on_a_terminal_in_the_pod() {
    let Db {
        pg: _pg,
        world: w,
        plan,
    } = setup().await;
    let out = w
        .bns(
            &["postgres", "--plan", &plan, "shell"],
            Some(b"SELECT 40 + 2 AS answer, current_database();\n\\q\n"),
        )
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text.contains("42 | shopdb"), "{}", show(&out));
    assert!(
        !text.contains("PGPASSWORD"),
        "the connection script must not be echoed: {text}"
    );
}
