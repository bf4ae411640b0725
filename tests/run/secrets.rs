//! Secrets never leave: known passwords configured in every place a plan takes one (a literal hook password,
//! the container's env, a secret-looking `vars` entry, the `BAK_*` password variables), then a full run, a failed
//! run, the offline commands and the database commands, at the highest verbosity and in both log formats. None of
//! the passwords may appear in stdout, stderr, the JSON summary, Events, VolumeSnapshot labels or annotations,
//! Pushgateway bodies, or the command line of any process on the machine while they run.

use crate::databases::{pg_fixture, pg_plan};
use crate::support::mariadb::Mariadb;
use crate::support::postgres::Postgres;
use crate::{Env, both, start};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Watches every process's command line (`/proc/*/cmdline`) while commands run, recording any that holds a
/// secret. `seen` counts the backup-ns processes it caught, so a watcher that sees nothing fails the test.
struct ArgvWatch {
    stop: Arc<AtomicBool>,
    leaks: Arc<Mutex<Vec<String>>>,
    seen: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ArgvWatch {
    fn start(secrets: Vec<String>) -> ArgvWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let leaks = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(AtomicUsize::new(0));
        let (s, l, n) = (Arc::clone(&stop), Arc::clone(&leaks), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            let mut known = std::collections::HashSet::new();
            while !s.load(Ordering::Relaxed) {
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                        continue;
                    };
                    let argv = String::from_utf8_lossy(&raw).replace('\0', " ");
                    if argv.contains("backup-ns") && known.insert(entry.file_name()) {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    if secrets.iter().any(|p| argv.contains(p.as_str())) {
                        l.lock().unwrap().push(argv);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        ArgvWatch {
            stop,
            leaks,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let leaks = self.leaks.lock().unwrap().clone();
        (leaks, self.seen.load(Ordering::Relaxed))
    }
}

/// Fails naming `what` and the secret when any of `secrets` is in `text`.
fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a password leaked into {what}:\n{text}"
        );
    }
}

fn check_output(what: &str, out: &Output, secrets: &[String]) {
    assert_clean(
        &format!("{what} (stdout)"),
        &String::from_utf8_lossy(&out.stdout),
        secrets,
    );
    assert_clean(
        &format!("{what} (stderr)"),
        &String::from_utf8_lossy(&out.stderr),
        secrets,
    );
}

/// Everything the cluster holds that backup-ns wrote: Events and every VolumeSnapshot (labels, annotations).
/// A database family's commands (`info`, `dump`, `download` of a working plan; `info`, `dump` of a broken one),
/// each checked for secrets; none may panic.
async fn db_commands(
    env: &Env,
    family: &str,
    plan: &str,
    broken: &str,
    log: &[&str],
    kubeconfig: &str,
    secrets: &[String],
) {
    for command in [
        vec![family, "--plan", plan, "info"],
        vec![family, "--plan", plan, "dump"],
        vec![family, "--plan", plan, "download", "--output-dir", "."],
        vec![family, "--plan", broken, "info"],
        vec![family, "--plan", broken, "dump"],
    ] {
        let mut args = command.clone();
        args.extend(log);
        args.extend(["--kubeconfig", kubeconfig]);
        let out = env.run(&args, &[]).await;
        assert_ne!(out.status.code(), Some(101), "{}", both(&out));
        check_output(&format!("`{}`", command.join(" ")), &out, secrets);
    }
}

fn check_cluster(env: &Env, secrets: &[String]) -> usize {
    // backup-ns writes events.k8s.io/v1 Events (`list("events")` would pick the core group).
    let events = env.sim.shared().store.all_of("events.k8s.io", "events");
    for e in &events {
        assert_clean("an Event", &e.to_string(), secrets);
    }
    for s in env.snapshots() {
        assert_clean("a VolumeSnapshot", &s["metadata"].to_string(), secrets);
    }
    for c in env.sim.list("volumesnapshotcontents", None) {
        assert_clean(
            "a VolumeSnapshotContent",
            &c["metadata"].to_string(),
            secrets,
        );
    }
    events.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_appears_in_any_output_of_runs_and_database_commands() {
    let pg = Postgres::start();
    pg.create_database("shop");
    pg.psql("shop", "CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    let env = start(&pg_fixture(&pg, "shop")).await;
    let (push_url, pushed) = crate::support::pushgateway::start(200).await;

    // The real password, literal in the plan (and in the container env the fixture sets), plus made-up ones in a
    // secret-looking var and in the BAK_* password variables.
    let vars_secret = format!("vars-{}", crate::support::random_password());
    let bak_pg_secret = format!("bakpg-{}", crate::support::random_password());
    let bak_my_secret = format!("bakmy-{}", crate::support::random_password());
    let secrets = vec![
        pg.password.clone(),
        vars_secret.clone(),
        bak_pg_secret.clone(),
        bak_my_secret.clone(),
    ];
    let with_secrets = |port: u16| {
        format!(
            "{}      password: \"{}\"\nvars:\n  api_token: \"{vars_secret}\"\n  nested:\n    db_password: \"{vars_secret}\"\n",
            pg_plan(port, ""),
            pg.password
        )
    };
    let plan = env.plan("shop.yaml", &with_secrets(pg.port));
    let plan = plan.to_str().unwrap();
    let broken = env.plan("broken.yaml", &with_secrets(crate::support::free_port()));
    let broken = broken.to_str().unwrap();
    let toml = env.plan(
        "shop.toml",
        &format!(
            "name = \"shop\"\nnamespace = \"shop\"\ntargets = [\"pgdata\"]\n[vars]\ntoken = \"{vars_secret}\"\n"
        ),
    );
    let toml = toml.to_str().unwrap();
    // A file that does not parse still has its snippet masked.
    let unparsable = env.plan(
        "unparsable.yaml",
        &format!("name: shop\ntargets: [pgdata\nvars:\n  password: {vars_secret}\n"),
    );
    let unparsable = unparsable.to_str().unwrap();
    let kubeconfig = env.sim.kubeconfig_path().to_str().unwrap().to_string();
    let bak_env = [
        ("BAK_NAMESPACE", "shop"),
        ("BAK_PVC_NAME", "pgdata"),
        ("BAK_DB_POSTGRES", "true"),
        ("BAK_DB_POSTGRES_PASSWORD", bak_pg_secret.as_str()),
        ("BAK_DB_MYSQL_PASSWORD", bak_my_secret.as_str()),
    ];

    let watch = ArgvWatch::start(secrets.clone());
    let mut ran = 0;
    for log_format in ["human", "json"] {
        let log = ["--log-format", log_format, "-vv"];
        for (file, code, what) in [(plan, 0, "a successful run"), (broken, 1, "a failed run")] {
            let mut args = vec!["run", file, "--output", "json", "--pushgateway", &push_url];
            args.extend(log);
            let out = env.run(&args, &[]).await;
            assert_eq!(out.status.code(), Some(code), "{}", both(&out));
            check_output(what, &out, &secrets);
            ran += 1;
        }

        // A dry run from the BAK_* variables (the hook's password is the BAK one, so it must not connect).
        let mut args = vec!["run", "--dry-run"];
        args.extend(log);
        let out = env.run(&args, &bak_env).await;
        assert_ne!(out.status.code(), Some(101), "{}", both(&out));
        check_output("a BAK_* dry run", &out, &secrets);

        db_commands(&env, "postgres", plan, broken, &log, &kubeconfig, &secrets).await;
    }
    for offline in [
        vec!["validate", plan, toml],
        vec!["validate", "--format", "json", plan, toml],
        vec!["validate", unparsable],
        vec!["validate", "--format", "json", unparsable],
        vec!["plan", "show", plan],
        vec!["plan", "show", plan, "--format", "json"],
        vec!["plan", "show", plan, "--format", "toml"],
        vec!["plan", "show", plan, "--redacted"],
        vec!["plan", "show", toml],
    ] {
        let out = env.run(&offline, &[]).await;
        assert_ne!(out.status.code(), Some(101), "{}", both(&out));
        check_output(&format!("`{}`", offline.join(" ")), &out, &secrets);
    }
    for bak in [
        vec!["plan", "show"],
        vec!["plan", "show", "--format", "json"],
    ] {
        let out = env.run(&bak, &bak_env).await;
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));
        check_output("`plan show` from BAK_* variables", &out, &secrets);
    }
    let (leaks, seen) = watch.finish();
    assert!(leaks.is_empty(), "a password on a command line: {leaks:#?}");
    assert!(
        seen >= ran,
        "the command-line watcher caught {seen} backup-ns processes"
    );

    // The warnings are still there, masked: the snippet shows where, never what.
    let out = env.run(&["validate", plan], &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plan::literal-secret"), "{stderr}");
    assert!(stderr.contains(&"*".repeat(pg.password.len())), "{stderr}");

    let events = check_cluster(&env, &secrets);
    assert!(events >= 2, "the runs emitted Events");
    assert!(
        !env.snapshots().is_empty(),
        "the successful runs cut snapshots"
    );
    let pushed = pushed.lock().unwrap().clone();
    assert_eq!(pushed.len(), 4, "{pushed:?}");
    for push in &pushed {
        assert_clean(
            "a Pushgateway body",
            &format!("{} {}", push.path, push.body),
            &secrets,
        );
    }
}

/// The same for MariaDB: the real password literal in a `mysql` hook (and in the container's env), through a
/// successful and a failed run and every `mysql` database command, at the highest verbosity in both log formats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mariadb_password_appears_in_any_output_of_runs_and_database_commands() {
    let db = Mariadb::start();
    db.create_database("shop");
    db.load(
        "shop",
        b"CREATE TABLE t (id INT); INSERT INTO t VALUES (1);",
    );
    let fixture = format!(
        "{}{}",
        crate::pvc("mydata"),
        crate::pod(
            "maria-0",
            "mariadb",
            &db.container_env("shop"),
            &[("mydata", "/var/lib/mysql")]
        )
    );
    let env = start(&fixture).await;
    let secrets = vec![db.password.clone()];
    let plan_for = |port: u16| {
        format!(
            "name: shop\nnamespace: shop\ntargets: [mydata]\nhooks:\n  pre:\n    - type: mysql\n      \
             workload: pod/maria-0\n      container: mariadb\n      host: 127.0.0.1\n      port: {port}\n      \
             user: ${{MYSQL_USER}}\n      password: \"{}\"\n      dumpFile: /var/lib/mysql/dump.sql.gz\n      \
             timeout: 2m\n",
            db.password
        )
    };
    let plan = env.plan("shop.yaml", &plan_for(db.port));
    let plan = plan.to_str().unwrap();
    let broken = env.plan("broken.yaml", &plan_for(crate::support::free_port()));
    let broken = broken.to_str().unwrap();
    let kubeconfig = env.sim.kubeconfig_path().to_str().unwrap().to_string();

    let watch = ArgvWatch::start(secrets.clone());
    let mut ran = 0;
    for log_format in ["human", "json"] {
        let log = ["--log-format", log_format, "-vv"];
        for (file, code, what) in [(plan, 0, "a successful run"), (broken, 1, "a failed run")] {
            let mut args = vec!["run", file, "--output", "json"];
            args.extend(log);
            let out = env.run(&args, &[]).await;
            assert_eq!(out.status.code(), Some(code), "{}", both(&out));
            check_output(what, &out, &secrets);
            ran += 1;
        }
        db_commands(&env, "mysql", plan, broken, &log, &kubeconfig, &secrets).await;
    }
    let offline = ["validate", "--format", "json", plan];
    let out = env.run(&offline, &[]).await;
    check_output("`validate --format json`", &out, &secrets);
    let out = env
        .run(&["plan", "show", plan, "--format", "json"], &[])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    check_output("`plan show --format json`", &out, &secrets);
    let (leaks, seen) = watch.finish();
    assert!(leaks.is_empty(), "a password on a command line: {leaks:#?}");
    assert!(seen >= ran, "the watcher caught {seen} backup-ns processes");
    let events = check_cluster(&env, &secrets);
    assert!(events >= 2, "the runs emitted Events");
    assert!(
        !env.snapshots().is_empty(),
        "the successful runs cut snapshots"
    );
}
