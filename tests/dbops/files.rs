//! Download and restore refusals that need no database: missing, damaged or already downloaded dumps, and a
//! damaged local file for `--from-local`.

use crate::env::{World, fixture, gzip, listing, name_time, ok, show, stderr};

const MOUNT: &str = "/var/lib/postgresql/data";

fn plan(world: &World) -> String {
    world
        .write(
            "plan.yaml",
            &format!(
                "name: shop\nnamespace: shop\ntargets: [data]\nhooks:\n  pre:\n    - type: postgres\n      workload: pod/db-0\n      container: postgres\n      dumpFile: {MOUNT}/dump.sql.gz\n"
            ),
        )
        .display()
        .to_string()
}

async fn world() -> World {
    let env = vec![
        ("POSTGRES_USER".to_string(), "app".to_string()),
        ("POSTGRES_PASSWORD".to_string(), "pw".to_string()),
        ("POSTGRES_DB".to_string(), "app".to_string()),
    ];
    World::start(&fixture("postgres", MOUNT, &env)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_without_a_dump_says_how_to_make_one() {
    let w = world().await;
    let plan = plan(&w);
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
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("there is no dump file at /var/lib/postgresql/data/dump.sql.gz")
            && stderr(&out).contains("backup-ns postgres dump"),
        "{}",
        show(&out)
    );
    assert!(listing(&w.path("out")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_gzip_dump_is_refused_and_leaves_no_file_behind() {
    let w = world().await;
    let plan = plan(&w);
    std::fs::create_dir(w.path("out")).unwrap();
    let mut damaged = gzip(&b"CREATE TABLE t (x int);\n".repeat(50_000));
    damaged.truncate(damaged.len() / 2);
    std::fs::write(w.pvc().join("dump.sql.gz"), &damaged).unwrap();
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
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("is not a valid gzip file"),
        "{}",
        show(&out)
    );
    assert!(
        listing(&w.path("out")).is_empty(),
        "{:?}",
        listing(&w.path("out"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_is_byte_identical_named_after_the_dump_and_never_overwritten_silently() {
    let w = world().await;
    let plan = plan(&w);
    std::fs::create_dir(w.path("out")).unwrap();
    // Several MiB with little redundancy, so the stream spans many chunks.
    let sql: Vec<u8> = (0..400_000u32)
        .flat_map(|i| {
            format!(
                "INSERT INTO t VALUES ({});\n",
                i.wrapping_mul(2_654_435_761)
            )
            .into_bytes()
        })
        .collect();
    let dump = gzip(&sql);
    let in_pvc = w.pvc().join("dump.sql.gz");
    std::fs::write(&in_pvc, &dump).unwrap();
    let expected = format!("shop_{}_postgres_dump.sql.gz", name_time(&in_pvc));

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
    let text = ok(&out);
    assert_eq!(listing(&w.path("out")), vec![expected.clone()]);
    assert_eq!(std::fs::read(w.path("out").join(&expected)).unwrap(), dump);
    assert!(text.lines().next().unwrap().ends_with(&expected), "{text}");
    assert!(
        text.contains(&format!("gzip -dc out/{expected} | psql")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "backup-ns postgres restore --from-local out/{expected}"
        )),
        "{text}"
    );
    assert!(stderr(&out).contains("gzip verified"), "{}", show(&out));

    let again = w
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
    assert_eq!(again.status.code(), Some(2), "{}", show(&again));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        show(&again)
    );

    let forced = w
        .bns(
            &[
                "postgres",
                "--plan",
                &plan,
                "download",
                "--output",
                "out/latest.sql.gz",
                "--force",
            ],
            None,
        )
        .await;
    ok(&forced);
    assert_eq!(std::fs::read(w.path("out/latest.sql.gz")).unwrap(), dump);
    assert_eq!(listing(&w.path("out")).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_a_damaged_local_file_is_refused_before_anything_runs() {
    let w = world().await;
    let plan = plan(&w);
    let mut damaged = gzip(b"SELECT 1;\n");
    damaged.truncate(damaged.len() - 4);
    std::fs::write(w.path("bad.sql.gz"), &damaged).unwrap();
    w.sim.requests().reset();
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
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("bad.sql.gz is not a valid gzip file"),
        "{}",
        show(&out)
    );
    let execs: u64 = w
        .sim
        .requests()
        .snapshot()
        .iter()
        .filter(|((_, resource), _)| resource == "pods/exec")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(execs, 0, "no exec may run for a refused restore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_plan_or_bak_variables_the_commands_explain_what_is_missing() {
    let w = world().await;
    let out = w.bns(&["postgres", "info"], None).await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("BAK_*"), "{}", show(&out));
    let plan = w.write(
        "snap-only.yaml",
        "name: shop\nnamespace: shop\ntargets: [data]\n",
    );
    let out = w
        .bns(
            &["mysql", "--plan", &plan.display().to_string(), "info"],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("has no mysql hook"), "{}", show(&out));
}
