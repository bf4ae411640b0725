//! Hook tests: generated scripts run for real through `LocalExec` against throwaway PostgreSQL and MariaDB
//! servers, plus the exec hook, timeouts and the rhai sandbox.

#[path = "../support/mod.rs"]
mod support;

mod examples;
mod exec;
mod mariadb;
mod postgres;
mod rhai;

use backup_ns::hooks::{self, HookError};
use backup_ns::vocab::hook::HookAction;
use backup_ns::vocab::workload::ContainerRef;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The "container" every local exec pretends to run in.
pub fn target() -> ContainerRef {
    ContainerRef {
        namespace: "shop".into(),
        pod: "db-0".into(),
        container: "db".into(),
    }
}

/// Names of the files in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dump dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Decompresses a dump file with the system tool (`gzip -dc` / `zstd -dc`).
pub fn decompress(tool: &str, path: &Path) -> Vec<u8> {
    let out = std::process::Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is needed to read dumps (apt-get install {tool}): {e}"));
    assert!(out.status.success(), "{tool} -dc failed: {out:?}");
    out.stdout
}

/// Writes an executable fake tool into `dir` (for failure modes real tools cannot be pushed into).
pub fn fake_tool(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write fake tool");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Whether a process is gone (no /proc entry, or a zombie nobody reaped yet).
pub fn process_is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Waits up to `secs` seconds for `path` to exist and hold a PID.
pub fn read_pid(path: &Path, secs: u64) -> u32 {
    let start = std::time::Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            start.elapsed().as_secs() < secs,
            "no pid appeared in {}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Asserts every exec was `sh -s` (scripts on stdin, nothing in argv) and no secret is in any argv.
pub fn assert_scripts_only_on_stdin(records: &[support::local_exec::ExecRecord], secret: &str) {
    assert!(!records.is_empty(), "no exec happened");
    for record in records {
        assert_eq!(record.argv, ["sh", "-s"], "argv must never carry a script");
        assert!(!record.argv.concat().contains(secret));
    }
}

/// Runs the dump hook `action`, whose `threshold` is 0 and whose dump goes into `dumps`: it fails on the space
/// threshold (df rounds Capacity up, so any filesystem holding data reports at least 1%) in its one exec session,
/// before anything is written.
pub async fn assert_threshold_trips_before_dumping(action: &HookAction, dumps: &Path) {
    let exec = support::local_exec::LocalExec::new();
    let err = hooks::run("db", action, &exec, &target(), Duration::from_secs(60))
        .await
        .expect_err("threshold trips");
    assert!(
        matches!(&err, HookError::SpaceThreshold { used_percent, threshold_percent: 0, dir, .. }
            if *used_percent >= 1 && Path::new(dir) == dumps),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("above the threshold of 0%"),
        "{err}"
    );
    assert_eq!(
        exec.records().len(),
        1,
        "one exec session, stopped by its check"
    );
    assert!(listing(dumps).is_empty(), "the dump never started");
}
