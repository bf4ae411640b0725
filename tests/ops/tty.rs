//! Behaviour on a terminal, through a pseudo-terminal made by util-linux `script`: `delete` asks and obeys the
//! answer, `list` colours its table unless `NO_COLOR` is set.

use crate::support::{Env, Run, eventually, start};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const SNAPSHOT: &str = r#"
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: ours-1
  namespace: shop
  labels: {backup-ns.sh/type: adhoc, backup-ns.sh/retain: days, backup-ns.sh/pvc: data}
spec:
  source: {persistentVolumeClaimName: data}
"#;

fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Runs `backup-ns ARGS --kubeconfig <sim>` with stdin and stdout on a pseudo-terminal, typing `input`.
async fn run_on_tty(env: &Env, args: &[&str], vars: &[(&str, &str)], input: &str) -> Run {
    let mut line = quote(env!("CARGO_BIN_EXE_backup-ns"));
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line.push_str(" --kubeconfig ");
    line.push_str(&quote(&env.sim.kubeconfig_path().to_string_lossy()));
    let mut cmd = tokio::process::Command::new("script");
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", env.dir.path())
        .current_dir(env.dir.path())
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run `script` ({e}); the terminal tests need util-linux's script: apt-get install bsdutils"
        )
    });
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Give the program time to reach its prompt before typing, as a person would.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stdin.write_all(input.as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the program on the terminal finished")
        .unwrap();
    drop(stdin);
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ready() -> Env {
    let env = start(SNAPSHOT).await;
    eventually("ours-1 is ready", || {
        env.sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some("shop"),
                "ours-1",
            )
            .is_some_and(|v| v["status"]["readyToUse"] == true)
    })
    .await;
    env
}

fn exists(env: &Env) -> bool {
    env.sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshots",
            Some("shop"),
            "ours-1",
        )
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_delete_asks_and_anything_but_yes_keeps_the_snapshot() {
    let env = ready().await;
    let run = run_on_tty(
        &env,
        &["delete", "ours-1", "-n", "shop"],
        &[("NO_COLOR", "1")],
        "n\n",
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("Delete these 1 snapshot(s)? [y/N]"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("aborted: nothing was deleted"),
        "{run:?}"
    );
    assert!(exists(&env));

    let run = run_on_tty(
        &env,
        &["delete", "ours-1", "-n", "shop"],
        &[("NO_COLOR", "1")],
        "yes\n",
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("volumesnapshot/ours-1 deleted"),
        "{run:?}"
    );
    assert!(!exists(&env));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_colours_on_a_terminal_unless_no_color_is_set() {
    let env = ready().await;
    let run = run_on_tty(&env, &["list", "-n", "shop"], &[], "").await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("\x1b[1mNAME\x1b[0m"), "{run:?}");
    assert!(run.stdout.contains("\x1b[32mtrue\x1b[0m"), "{run:?}");

    let run = run_on_tty(&env, &["list", "-n", "shop"], &[("NO_COLOR", "1")], "").await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("NAME "), "{run:?}");
    assert!(!run.stdout.contains('\x1b'), "{run:?}");
}
