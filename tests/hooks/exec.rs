//! Plain exec hooks: argv and scripts, failure, and timeout with the remote process killed.

use crate::support::local_exec::LocalExec;
use crate::{process_is_gone, read_pid, target};
use backup_ns::hooks::{self, ExecCommand, HookError};
use std::time::Duration;

/// Runs `command` the way an exec hook runs, with no cancellation.
async fn run(
    command: ExecCommand,
    exec: &LocalExec,
    timeout: Duration,
) -> Result<hooks::HookReport, HookError> {
    hooks::run_command_until(
        "app",
        &command,
        exec,
        &target(),
        timeout,
        std::future::pending::<()>(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_hooks_run_argv_and_scripts_over_stdin() {
    let exec = LocalExec::new();
    let report = run(
        ExecCommand::Argv(vec![
            "printf".into(),
            "%s|".into(),
            "a b".into(),
            "$(id)".into(),
        ]),
        &exec,
        Duration::from_secs(30),
    )
    .await
    .expect("argv runs");
    assert_eq!(report.stdout_tail, "a b|$(id)|");
    assert_eq!(report.exit_code, Some(0));

    let script =
        "set -e\nx=1\necho \"out $x\"\necho err >&2\n[ -z \"${bns_pidfile:-}\" ] || echo leaked\n";
    let report = run(
        ExecCommand::Script(script.into()),
        &exec,
        Duration::from_secs(30),
    )
    .await
    .expect("script runs");
    assert_eq!(report.stdout_tail, "out 1\n");
    assert_eq!(report.stderr_tail, "err\n");
    for record in exec.records() {
        assert_eq!(record.argv, ["sh", "-s"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_hook_failure_carries_status_and_stderr() {
    let err = run(
        ExecCommand::Script("echo 'maintenance endpoint down' >&2; exit 3".into()),
        &LocalExec::new(),
        Duration::from_secs(30),
    )
    .await
    .expect_err("exit 3 fails");
    match &err {
        HookError::CommandFailed { exit_code: 3, .. } => {}
        other => panic!("expected CommandFailed(3), got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "hook `app`: command exited with status 3 in pod/db-0 (container db) in namespace shop; stderr: maintenance endpoint down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_hook_timeout_kills_the_remote_process() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!(
        "sh -c 'echo $$ > \"{}\"; exec sleep 120'\n",
        pid_file.display()
    );
    let exec = LocalExec::new();
    let err = run(ExecCommand::Script(script), &exec, Duration::from_secs(2))
        .await
        .expect_err("times out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        err.to_string().contains("did not finish within 2s"),
        "{err}"
    );
    assert!(err.to_string().contains("was killed"), "{err}");
    let pid = read_pid(&pid_file, 5);
    assert!(process_is_gone(pid), "sleep {pid} still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_kills_the_remote_process() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!(
        "sh -c 'echo $$ > \"{}\"; exec sleep 120'\n",
        pid_file.display()
    );
    let err = hooks::run_command_until(
        "app",
        &ExecCommand::Script(script),
        &LocalExec::new(),
        &target(),
        Duration::from_secs(60),
        tokio::time::sleep(Duration::from_millis(1500)),
    )
    .await
    .expect_err("cancelled");
    assert!(matches!(err, HookError::Cancelled { .. }), "{err:?}");
    let pid = read_pid(&pid_file, 5);
    assert!(process_is_gone(pid), "sleep {pid} still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_that_read_stdin_do_not_swallow_the_script_and_set_e_still_works() {
    let exec = LocalExec::new();
    let run = |command: ExecCommand| {
        let exec = &exec;
        async move { run(command, exec, Duration::from_secs(30)).await }
    };
    let report = run(ExecCommand::Argv(vec!["cat".into()]))
        .await
        .expect("cat reads /dev/null");
    assert_eq!(report.stdout_tail, "");
    let report = run(ExecCommand::Script("cat\necho after".into()))
        .await
        .expect("script continues");
    assert_eq!(report.stdout_tail, "after\n");
    let err = run(ExecCommand::Script(
        "set -e\nfalse\necho not reached".into(),
    ))
    .await
    .expect_err("set -e stops the user script");
    assert!(
        matches!(err, HookError::CommandFailed { exit_code: 1, .. }),
        "{err:?}"
    );
    let report = run(ExecCommand::Script(
        "false\necho without set -e it goes on".into(),
    ))
    .await
    .expect("no errexit by default");
    assert_eq!(report.stdout_tail, "without set -e it goes on\n");
}
