//! The rhai sandbox: API, limits, diagnostics, and the shipped example hooks.

use crate::support::local_exec::{LocalExec, LocalResolver};
use backup_ns::hooks::HookError;
use backup_ns::hooks::diagnostic::ScriptDiagnostic;
use backup_ns::hooks::rhai::{self, RhaiContext, RhaiLimits, RhaiRun};
use chrono::{TimeZone, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn context(exec: LocalExec) -> RhaiContext {
    RhaiContext {
        exec: Arc::new(exec),
        resolver: Arc::new(LocalResolver::default().with("deployment/app", "app")),
        now: Arc::new(|| Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()),
    }
}

fn hook(source: &str) -> RhaiRun {
    RhaiRun {
        name: "custom".into(),
        path: "hooks/custom.rhai".into(),
        source: source.into(),
        namespace: "shop".into(),
        targets: vec!["data".into(), "uploads".into()],
        vars: BTreeMap::from([("mode".to_string(), "fast".to_string())]),
        timeout: Duration::from_secs(30),
        args: Default::default(),
        limits: RhaiLimits::default(),
    }
}

async fn run(source: &str) -> Result<backup_ns::hooks::HookReport, HookError> {
    rhai::run(&hook(source), &context(LocalExec::new())).await
}

fn diagnostic(err: &HookError) -> &ScriptDiagnostic {
    match err {
        HookError::Script { diagnostic, .. } => diagnostic,
        other => panic!("expected a script diagnostic, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_returns_code_stdout_and_stderr() {
    let report = run(r#"
let r = exec("deployment/app", "app", ["sh", "-c", "echo out; echo err >&2; exit 2"]);
if r.code != 2 { fail("code " + r.code); }
let o = r.stdout;
o.trim();
log("stdout=" + o + "|stderr=" + r.stderr);
let s = exec("deployment/app", "app", "echo from script");
warn("script=" + s.stdout);
"#)
    .await
    .expect("script succeeds");
    assert!(
        report.stdout_tail.contains("stdout=out|stderr=err\n"),
        "{}",
        report.stdout_tail
    );
    assert!(
        report.stdout_tail.contains("warning: script=from script"),
        "{}",
        report.stdout_tail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_ok_throws_on_a_non_zero_exit_with_the_call_site() {
    let err =
        run("let a = 1;\n  exec_ok(\"deployment/app\", \"app\", \"echo boom >&2; exit 7\");\n")
            .await
            .expect_err("exec_ok throws");
    let d = diagnostic(&err);
    assert_eq!((d.line, d.column), (2, 3), "{d}");
    assert!(
        d.message.contains("exited with status 7: boom"),
        "{}",
        d.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_stops_the_hook_with_its_message_and_position() {
    let err =
        run("log(\"start\");\nif true {\n    fail(\"cache not flushed\");\n}\nlog(\"never\");\n")
            .await
            .expect_err("fail() fails");
    let d = diagnostic(&err);
    assert_eq!(d.message, "cache not flushed");
    assert_eq!((d.line, d.column), (3, 5));
    assert_eq!(
        err.to_string(),
        "hook `custom`: hooks/custom.rhai:3:5: cache not flushed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_sees_namespace_targets_vars_and_now() {
    let report = run(r#"log(namespace + " " + targets.len() + " " + targets[1] + " " + vars.mode + " " + now());"#)
        .await
        .expect("runs");
    assert_eq!(
        report.stdout_tail,
        "shop 2 uploads fast 2025-03-01T12:00:00Z"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_workloads_and_bad_arguments_are_script_errors() {
    let err = run("exec(\"deployment/nope\", \"app\", \"true\");")
        .await
        .expect_err("unknown");
    assert!(
        diagnostic(&err)
            .message
            .contains("deployment/nope not found in namespace shop")
    );
    let err = run("exec(\"nope\", \"app\", \"true\");")
        .await
        .expect_err("malformed");
    assert!(diagnostic(&err).message.contains("expected KIND/NAME"));
    let err = run("exec(\"deployment/app\", \"app\", 42);")
        .await
        .expect_err("bad type");
    assert!(
        diagnostic(&err)
            .message
            .contains("array of strings or a script string")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_trip_with_clear_messages() {
    let mut h = hook("let x = 0; loop { x += 1; }");
    h.limits.max_operations = 10_000;
    let err = rhai::run(&h, &context(LocalExec::new()))
        .await
        .expect_err("ops limit");
    assert!(
        diagnostic(&err)
            .message
            .contains("limit of 10000 operations"),
        "{err}"
    );

    let err = run("fn f(n) { f(n + 1) } f(0);")
        .await
        .expect_err("recursion");
    assert!(
        diagnostic(&err).message.contains("call depth limit of 32"),
        "{err}"
    );

    let mut h = hook("let s = \"x\"; loop { s += s; }");
    h.limits.max_string_size = 1024;
    let err = rhai::run(&h, &context(LocalExec::new()))
        .await
        .expect_err("string size");
    assert!(diagnostic(&err).message.contains("size limit"), "{err}");

    let mut h = hook("let a = []; loop { a.push(1); }");
    h.limits.max_array_size = 100;
    let err = rhai::run(&h, &context(LocalExec::new()))
        .await
        .expect_err("array size");
    assert!(diagnostic(&err).message.contains("size limit"), "{err}");

    let mut h = hook("let x = 0;\nloop { x += 1; }");
    h.timeout = Duration::from_millis(300);
    h.limits.max_operations = 0; // unlimited: only the wall clock can stop it
    let started = std::time::Instant::now();
    let err = rhai::run(&h, &context(LocalExec::new()))
        .await
        .expect_err("wall clock");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let mut h = hook("sleep(\"10s\");");
    h.timeout = Duration::from_millis(300);
    let err = rhai::run(&h, &context(LocalExec::new()))
        .await
        .expect_err("sleep past the deadline");
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_inside_a_script_is_killed_when_the_script_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let mut h = hook(&format!(
        "exec(\"deployment/app\", \"app\", \"sh -c 'echo $$ > {}; exec sleep 120'\");",
        pid_file.display()
    ));
    h.timeout = Duration::from_secs(2);
    let err = rhai::run(&h, &context(LocalExec::new()))
        .await
        .expect_err("times out");
    assert!(diagnostic(&err).message.contains("was killed"), "{err}");
    let pid = crate::read_pid(&pid_file, 5);
    assert!(crate::process_is_gone(pid), "sleep {pid} still runs");
}

#[test]
fn sandbox_has_no_eval_import_or_file_access() {
    for source in ["eval(\"1\")", "import \"x\" as x;"] {
        assert!(rhai::compile_source("s.rhai", source).is_err(), "{source}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_errors_inside_functions_point_into_the_function() {
    let err = run("fn check(x) {\n  if x > 1 {\n    throw \"too big\";\n  }\n}\ncheck(5);\n")
        .await
        .expect_err("throws");
    let d = diagnostic(&err);
    assert_eq!(d.message, "too big");
    assert_eq!(d.line, 3);
}

#[test]
fn compile_errors_are_miette_diagnostics_with_line_and_column() {
    let d = rhai::compile_source("hooks/bad.rhai", "let ok = 1;\nlet = 2;\n")
        .expect_err("syntax error");
    assert_eq!((d.line, d.column), (2, 5));
    let mut rendered = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut rendered, &*d)
        .unwrap();
    assert!(rendered.contains("hooks/bad.rhai:2:5"), "{rendered}");
    assert!(rendered.contains("let = 2;"), "{rendered}");
}

#[test]
fn shipped_example_hooks_compile() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("hooks/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            rhai::compile(&path).unwrap_or_else(|d| panic!("{d}"));
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("//"),
                "{} starts with a usage comment",
                path.display()
            );
            seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for expected in [
        "redis-bgsave.rhai",
        "mongodump.rhai",
        "maintenance-on.rhai",
        "maintenance-off.rhai",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "missing hooks/{expected}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_the_script_and_kills_its_exec() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let h = hook(&format!(
        "log(\"before\");\nexec(\"deployment/app\", \"app\", \"sh -c 'echo $$ > {}; exec sleep 120'\");\nlog(\"after\");",
        pid_file.display()
    ));
    let started = std::time::Instant::now();
    let err = rhai::run_until(
        &h,
        &context(LocalExec::new()),
        tokio::time::sleep(Duration::from_millis(1500)),
    )
    .await
    .expect_err("cancelled");
    assert!(matches!(err, HookError::Cancelled { .. }), "{err:?}");
    assert!(err.to_string().contains("after logging `before`"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let pid = crate::read_pid(&pid_file, 5);
    assert!(crate::process_is_gone(pid), "sleep {pid} still runs");

    // A script busy in a loop or a sleep stops too.
    for source in ["loop { }", "sleep(60);"] {
        let started = std::time::Instant::now();
        let mut h = hook(source);
        h.limits.max_operations = 0; // unlimited: only cancellation can stop it
        let err = rhai::run_until(
            &h,
            &context(LocalExec::new()),
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await
        .expect_err("cancelled");
        assert!(
            matches!(err, HookError::Cancelled { .. }),
            "{source}: {err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{source}");
    }
}
