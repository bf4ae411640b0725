//! The shipped example hooks (hooks/*.rhai) run end to end against fake application tools in the "container",
//! so their logic (not only their syntax) is tested.

use crate::fake_tool;
use crate::support::local_exec::{LocalExec, LocalResolver};
use backup_ns::hooks::HookError;
use backup_ns::hooks::rhai::{self, RhaiContext, RhaiLimits, RhaiRun};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn example(name: &str, vars: &[(&str, &str)]) -> RhaiRun {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("hooks")
        .join(name);
    RhaiRun {
        name: name.trim_end_matches(".rhai").into(),
        path: format!("hooks/{name}"),
        source: std::fs::read_to_string(&path).expect("example hook exists"),
        namespace: "shop".into(),
        targets: vec!["data".into()],
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        timeout: Duration::from_secs(60),
        args: Default::default(),
        limits: RhaiLimits::default(),
    }
}

fn context(exec: LocalExec, workload: &str, container: &str) -> RhaiContext {
    RhaiContext {
        exec: Arc::new(exec),
        resolver: Arc::new(LocalResolver::default().with(workload, container)),
        now: Arc::new(chrono::Utc::now),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bgsave_waits_until_lastsave_changes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lastsave");
    std::fs::write(&state, "1700000000\n").unwrap();
    fake_tool(
        dir.path(),
        "redis-cli",
        &format!(
            "[ \"${{REDISCLI_AUTH:-}}\" = 's3cret-redis' ] || {{ echo 'AUTH failed' >&2; exit 1; }}\n\
             case \"$1\" in\n\
             LASTSAVE) cat '{s}';;\n\
             BGSAVE) (sleep 2; echo 1700000100 > '{s}') >/dev/null 2>&1 & echo 'Background saving started';;\n\
             INFO) printf '# Persistence\\nrdb_last_bgsave_status:ok\\n';;\n\
             esac",
            s = state.display()
        ),
    );
    let exec = LocalExec::new()
        .path_prepend(dir.path())
        .env("REDIS_PASSWORD", "s3cret-redis");
    let hook = example(
        "redis-bgsave.rhai",
        &[
            ("workload", "statefulset/redis"),
            ("auth_env", "REDIS_PASSWORD"),
        ],
    );
    let report = rhai::run(&hook, &context(exec, "statefulset/redis", "redis"))
        .await
        .expect("bgsave hook succeeds");
    assert!(
        report.stdout_tail.contains("Background saving started"),
        "{}",
        report.stdout_tail
    );
    assert!(
        report
            .stdout_tail
            .contains("LASTSAVE changed to 1700000100"),
        "{}",
        report.stdout_tail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bgsave_rejects_an_unsafe_auth_env_name() {
    let hook = example(
        "redis-bgsave.rhai",
        &[
            ("workload", "statefulset/redis"),
            ("auth_env", "X}; rm -rf /; ${Y"),
        ],
    );
    let err = rhai::run(
        &hook,
        &context(LocalExec::new(), "statefulset/redis", "redis"),
    )
    .await
    .expect_err("refused");
    assert!(
        err.to_string()
            .contains("must be an environment variable name"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodump_writes_the_archive_with_credentials_outside_argv() {
    let dir = tempfile::tempdir().unwrap();
    let args_log = dir.path().join("args");
    fake_tool(
        dir.path(),
        "mongodump",
        &format!(
            "echo \"$@\" > '{log}'\n\
             for a in \"$@\"; do case \"$a\" in --archive=*) out=${{a#--archive=}};; --config=*) cfg=${{a#--config=}};; esac; done\n\
             grep -q 'password: m0ngo-pw' \"$cfg\" || {{ echo 'auth failed' >&2; exit 1; }}\n\
             echo 'archive bytes' > \"$out\"",
            log = args_log.display()
        ),
    );
    let data = tempfile::tempdir().unwrap();
    let archive = data.path().join("it's dump.archive.gz");
    let exec = LocalExec::new()
        .path_prepend(dir.path())
        .env("MONGO_INITDB_ROOT_USERNAME", "root")
        .env("MONGO_INITDB_ROOT_PASSWORD", "m0ngo-pw");
    let hook = example(
        "mongodump.rhai",
        &[
            ("workload", "statefulset/mongodb"),
            ("archive", archive.to_str().unwrap()),
        ],
    );
    let report = rhai::run(&hook, &context(exec, "statefulset/mongodb", "mongodb"))
        .await
        .expect("mongodump hook succeeds");
    assert_eq!(
        std::fs::read_to_string(&archive).unwrap(),
        "archive bytes\n"
    );
    assert_eq!(
        crate::listing(data.path()),
        ["it's dump.archive.gz"],
        "no partial or config file left"
    );
    assert!(
        !std::fs::read_to_string(&args_log)
            .unwrap()
            .contains("m0ngo-pw")
    );
    assert!(
        report.stdout_tail.contains("(14 bytes)"),
        "{}",
        report.stdout_tail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_on_and_off_toggle_the_application() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("maintenance");
    let vars = [
        ("workload", "deployment/app"),
        ("container", "app"),
        ("on_command", &*format!("touch '{}'", flag.display())),
        ("off_command", &*format!("rm -f '{}'", flag.display())),
        (
            "status_command",
            &*format!(
                "if [ -e '{}' ]; then echo enabled; else echo disabled; fi",
                flag.display()
            ),
        ),
    ];
    let on = example("maintenance-on.rhai", &vars);
    rhai::run(&on, &context(LocalExec::new(), "deployment/app", "app"))
        .await
        .expect("maintenance on");
    assert!(flag.exists());
    let off = example("maintenance-off.rhai", &vars);
    rhai::run(&off, &context(LocalExec::new(), "deployment/app", "app"))
        .await
        .expect("maintenance off");
    assert!(!flag.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_off_fails_loudly_when_the_app_stays_in_maintenance() {
    let vars = [
        ("workload", "deployment/app"),
        ("off_command", "echo 'occ: database locked' >&2; exit 1"),
        ("status_command", "echo enabled"),
        ("attempts", "1"),
    ];
    let err = rhai::run(
        &example("maintenance-off.rhai", &vars),
        &context(LocalExec::new(), "deployment/app", "app"),
    )
    .await
    .expect_err("still in maintenance");
    match &err {
        HookError::Script { diagnostic, .. } => {
            assert!(
                diagnostic
                    .message
                    .contains("still in maintenance mode after 1 attempts")
            );
            assert!(diagnostic.message.contains("database locked"));
        }
        other => panic!("expected a script failure, got {other:?}"),
    }
}
