//! Download and restore refusals that need no database: missing, damaged or already downloaded dumps, a
//! damaged local file for `--from-local`, and which of several hooks `--hook` picks.

use crate::env::{World, fixture, gzip, listing, name_time, ok, show, stderr};
use std::time::Duration;

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

/// `backup-ns postgres --plan PLAN ARGS...` with stdin closed.
async fn postgres(w: &World, plan: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec!["postgres", "--plan", plan];
    full.extend_from_slice(args);
    w.bns(&full, None).await
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
    let out = postgres(&w, &plan, &["download", "--output-dir", "out"]).await;
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
    let out = postgres(&w, &plan, &["download", "--output-dir", "out"]).await;
    // The container's own `gzip -t` found it, beside the stream.
    refused_leaving_nothing(
        &w,
        &out,
        &format!(
            "{MOUNT}/dump.sql.gz is not a valid gzip file (`gzip -t` failed in pod/db-0 (container postgres) in namespace shop: gzip: stdin: unexpected end of file); the dump in the container is damaged, run a new dump"
        ),
    );

    // --no-verify skips the checks: the same bytes arrive, and the output says they were not checked.
    let unchecked = postgres(
        &w,
        &plan,
        &[
            "download",
            "--no-verify",
            "--output",
            "out/unchecked.sql.gz",
        ],
    )
    .await;
    ok(&unchecked);
    assert!(
        stderr(&unchecked).contains("gzip NOT verified (--no-verify)"),
        "{}",
        show(&unchecked)
    );
    assert_eq!(
        std::fs::read(w.path("out/unchecked.sql.gz")).unwrap(),
        damaged
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

    let out = postgres(&w, &plan, &["download", "--output-dir", "out"]).await;
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
    assert!(
        stderr(&out).contains(
            "verified: SHA-256 matches the container's file, `gzip -t` passed in the container"
        ),
        "{}",
        show(&out)
    );

    let again = postgres(&w, &plan, &["download", "--output-dir", "out"]).await;
    assert_eq!(again.status.code(), Some(2), "{}", show(&again));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        show(&again)
    );

    let forced = postgres(
        &w,
        &plan,
        &[
            "download",
            "--output",
            "out/latest.sql.gz",
            "--force",
            "--no-sync",
        ],
    )
    .await;
    ok(&forced);
    assert_eq!(std::fs::read(w.path("out/latest.sql.gz")).unwrap(), dump);
    assert_eq!(listing(&w.path("out")).len(), 2);
}

/// A local disk too small for the dump is refused before the stream, and nothing is left behind. The "disk" is a
/// file-size limit on the backup-ns process (RLIMIT_FSIZE, with SIGXFSZ ignored so the write fails with EFBIG
/// instead of killing it), as `fallocate` meets it on a full filesystem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_disk_too_small_is_refused_before_the_stream_and_leaves_nothing() {
    let w = world().await;
    let plan = plan(&w);
    std::fs::create_dir(w.path("out")).unwrap();
    std::fs::write(w.pvc().join("dump.sql.gz"), gzip(&vec![b'x'; 64 << 20])).unwrap();
    let mut cmd = w.command(
        &[
            "postgres",
            "--plan",
            &plan,
            "download",
            "--output-dir",
            "out",
        ],
        &[],
    );
    cmd.stdin(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("backup-ns finished within 120s")
        .expect("backup-ns output");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("cannot reserve")
            && stderr(&out).contains("choose another --output-dir"),
        "{}",
        show(&out)
    );
    assert!(
        listing(&w.path("out")).is_empty(),
        "{:?}",
        listing(&w.path("out"))
    );
}

/// A world whose container's PATH is `bin`: a directory of links to the host's `tools` (plus any scripts the
/// caller puts there), so that the container lacks every other tool.
async fn world_with_path(tools: &[&str]) -> (World, tempfile::TempDir) {
    let bin = tempfile::Builder::new()
        .prefix("bns-container-bin-")
        .tempdir()
        .unwrap();
    for tool in tools {
        let host = ["/usr/bin", "/bin"]
            .iter()
            .map(|dir| std::path::Path::new(dir).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is not on this host (apt-get install coreutils)"));
        std::os::unix::fs::symlink(host, bin.path().join(tool)).unwrap();
    }
    let env = vec![
        ("POSTGRES_USER".to_string(), "app".to_string()),
        ("POSTGRES_PASSWORD".to_string(), "pw".to_string()),
        ("POSTGRES_DB".to_string(), "app".to_string()),
        ("PATH".to_string(), bin.path().display().to_string()),
    ];
    (World::start(&fixture("postgres", MOUNT, &env)).await, bin)
}

/// What the stat script and `cat` need; without sha256sum, gzip and zstd.
const BASIC_TOOLS: [&str; 6] = ["sh", "cat", "wc", "tr", "od", "date"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_without_sha256sum_or_gzip_gets_a_local_gzip_check_and_says_so() {
    let (w, _bin) = world_with_path(&BASIC_TOOLS).await;
    let plan = plan(&w);
    std::fs::create_dir(w.path("out")).unwrap();
    let dump = gzip(&b"INSERT INTO t VALUES (1);\n".repeat(20_000));
    std::fs::write(w.pvc().join("dump.sql.gz"), &dump).unwrap();
    let out = postgres(&w, &plan, &["download", "--output", "out/d.sql.gz"]).await;
    ok(&out);
    assert_eq!(std::fs::read(w.path("out/d.sql.gz")).unwrap(), dump);
    assert!(
        stderr(&out).contains(
            "verified with a local fallback: gzip decoded locally (the container has no sha256sum or gzip)"
        ),
        "{}",
        show(&out)
    );
    // The fallback still refuses a damaged dump, and leaves nothing behind.
    let mut damaged = dump.clone();
    damaged.truncate(dump.len() - 8);
    std::fs::write(w.pvc().join("dump.sql.gz"), &damaged).unwrap();
    let out = postgres(&w, &plan, &["download", "--output", "out/e.sql.gz"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("is not a valid gzip file")
            && stderr(&out).contains("decoded locally"),
        "{}",
        show(&out)
    );
    assert_eq!(listing(&w.path("out")), vec!["d.sql.gz".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_changed_on_the_way_fail_the_hash_comparison_and_leave_no_file() {
    let mut tools = BASIC_TOOLS.to_vec();
    tools.retain(|t| *t != "cat");
    tools.push("sha256sum");
    let (w, bin) = world_with_path(&tools).await;
    // The container's `cat` damages what it sends (same length, one letter swapped for another), as a broken
    // transfer would; sha256sum reads the intact file.
    let cat = bin.path().join("cat");
    std::fs::write(&cat, "#!/bin/sh\n/bin/cat \"$@\" | /usr/bin/tr x y\n").unwrap();
    std::fs::set_permissions(&cat, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let plan = plan(&w);
    std::fs::create_dir(w.path("out")).unwrap();
    // A plain dump (named .gz by the plan, but its bytes decide): SHA-256 is all there is to compare.
    std::fs::write(w.pvc().join("dump.sql.gz"), "SELECT 'xyz';\n".repeat(1000)).unwrap();
    let out = postgres(&w, &plan, &["download", "--output-dir", "out"]).await;
    refused_leaving_nothing(
        &w,
        &out,
        &format!(
            "the downloaded bytes differ from {MOUNT}/dump.sql.gz in pod/db-0 (container postgres) in namespace shop (SHA-256 here "
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_a_damaged_local_file_is_refused_before_anything_runs() {
    let w = world().await;
    let plan = plan(&w);
    let mut damaged = gzip(b"SELECT 1;\n");
    damaged.truncate(damaged.len() - 4);
    std::fs::write(w.path("bad.sql.gz"), &damaged).unwrap();
    w.sim.requests().reset();
    let out = postgres(
        &w,
        &plan,
        &["restore", "--from-local", "bad.sql.gz", "--yes"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("bad.sql.gz is not a valid gzip file"),
        "{}",
        show(&out)
    );
    assert_eq!(execs(&w), 0, "no exec may run for a refused restore");
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

/// Exec requests the simulator has served since the last reset.
fn execs(w: &World) -> u64 {
    w.sim
        .requests()
        .snapshot()
        .iter()
        .filter(|((_, resource), _)| resource == "pods/exec")
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_postgres_hooks_only_hook_picks_one_and_it_downloads_that_hooks_dump() {
    let w = world().await;
    let db = |name: &str, file: &str| {
        format!(
            "    - {name}type: postgres\n      workload: pod/db-0\n      dumpFile: {MOUNT}/{file}\n"
        )
    };
    let plan = w
        .write(
            "two.yaml",
            &format!(
                "name: shop\nnamespace: shop\ntargets: [data]\nhooks:\n  pre:\n{}{}",
                db("name: orders\n      ", "orders.sql.gz"),
                db("", "billing.sql.gz")
            ),
        )
        .display()
        .to_string();
    let orders = gzip(b"CREATE TABLE orders (id int);\n");
    let billing = gzip(b"CREATE TABLE invoices (id int);\n");
    std::fs::write(w.pvc().join("orders.sql.gz"), &orders).unwrap();
    std::fs::write(w.pvc().join("billing.sql.gz"), &billing).unwrap();
    std::fs::create_dir(w.path("out")).unwrap();
    let download = |hook: Option<&'static str>, output: &'static str| {
        let plan = plan.clone();
        let w = &w;
        async move {
            let mut args = vec!["postgres", "--plan", &plan, "download", "--output", output];
            if let Some(hook) = hook {
                args.extend(["--hook", hook]);
            }
            w.bns(&args, None).await
        }
    };

    w.sim.requests().reset();
    let refused = download(None, "out/any.sql.gz").await;
    for part in [
        "plan `shop` has 2 postgres hooks",
        "`orders` (pre[0], postgres, dumpFile /var/lib/postgresql/data/orders.sql.gz)",
        "`pre[1]` (postgres, dumpFile /var/lib/postgresql/data/billing.sql.gz)",
        "pass `--hook`",
    ] {
        usage_error(&refused, part);
    }
    assert_eq!(execs(&w), 0, "nothing may run before the hook is chosen");
    assert!(listing(&w.path("out")).is_empty());

    ok(&download(Some("pre[1]"), "out/billing.sql.gz").await);
    ok(&download(Some("orders"), "out/orders.sql.gz").await);
    assert_eq!(
        std::fs::read(w.path("out/billing.sql.gz")).unwrap(),
        billing
    );
    assert_eq!(std::fs::read(w.path("out/orders.sql.gz")).unwrap(), orders);

    usage_error(
        &download(Some("invoices"), "out/none.sql.gz").await,
        "plan `shop` has no hook `invoices`; its hooks: `orders`",
    );
    usage_error(
        &w.bns(&["postgres", "--hook", "orders", "info"], None).await,
        "--hook (or BACKUP_NS_HOOK) picks a hook of a plan, so it needs --plan FILE",
    );

    // BACKUP_NS_PLAN and BACKUP_NS_HOOK stand in for the flags (e.g. set once in a debug pod's environment).
    let from_env = w
        .bns_env(
            &["postgres", "download", "--output", "out/from-env.sql.gz"],
            None,
            &[("BACKUP_NS_PLAN", &plan), ("BACKUP_NS_HOOK", "orders")],
        )
        .await;
    ok(&from_env);
    assert_eq!(
        std::fs::read(w.path("out/from-env.sql.gz")).unwrap(),
        orders
    );
}

/// A download refused with exit 1, saying `says`, with nothing written to `out/`.
fn refused_leaving_nothing(w: &World, out: &std::process::Output, says: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", show(out));
    assert!(stderr(out).contains(says), "{}", show(out));
    assert!(
        listing(&w.path("out")).is_empty(),
        "{:?}",
        listing(&w.path("out"))
    );
}

/// Asserts exit code 2 (usage) and that stderr `says` something.
fn usage_error(out: &std::process::Output, says: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", show(out));
    assert!(stderr(out).contains(says), "{says}: {}", show(out));
}

#[test]
fn both_engines_help_documents_hook_with_examples() {
    for engine in ["postgres", "mysql"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_backup-ns"))
            .args([engine, "--help"])
            .env_clear()
            .output()
            .expect("backup-ns runs");
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{help}");
        for part in [
            "--hook <NAME|pre[N]|post[N]>",
            "Examples:\n  ",
            "--hook shop-db download",
            "--hook 'pre[1]' info",
        ] {
            assert!(help.contains(part), "{engine} --help lacks {part}: {help}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_exits_130_or_143_and_leaves_no_partial_file() {
    let w = world().await;
    let plan = plan(&w);
    std::fs::create_dir(w.path("out")).unwrap();
    // A sparse 8 GiB dump: made at once, and far longer to stream than the test needs to interrupt it.
    std::fs::File::create(w.pvc().join("dump.sql.gz"))
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    for (signal, code, word) in [
        (libc::SIGINT, 130, "interrupted"),
        (libc::SIGTERM, 143, "terminated"),
    ] {
        let child = w
            .command(
                &[
                    "postgres",
                    "--plan",
                    &plan,
                    "download",
                    "--output-dir",
                    "out",
                ],
                &[],
            )
            .spawn()
            .unwrap();
        // Interrupt once the (hidden) partial file is filling up.
        let streaming = || {
            std::fs::read_dir(w.path("out"))
                .unwrap()
                .flatten()
                .any(|e| e.metadata().is_ok_and(|m| m.len() > 1 << 20))
        };
        for _ in 0..3000 {
            if streaming() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(streaming(), "the download never started streaming");
        let pid = child.id().expect("running") as libc::pid_t;
        // SAFETY: sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("the download stops promptly")
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", show(&out));
        assert!(
            stderr(&out).contains(&format!(
                "{word}: the download stopped and its partial file was removed"
            )),
            "{}",
            show(&out)
        );
        let left: Vec<_> = std::fs::read_dir(w.path("out"))
            .unwrap()
            .flatten()
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
