//! Stopping a hook's remote process: after a timeout or a cancel, a second exec kills the process tree the
//! script recorded and removes its partial dump. Used by the runner and by the rhai sandbox's `exec`.

use super::script::{self, RunFiles, ScriptOutput};
use crate::vocab::exec::{ContainerExec, ExecRequest, Stdin, StdoutSink};
use crate::vocab::workload::ContainerRef;
use std::time::Duration;

/// How long the kill exec itself may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);

/// Kills the process tree recorded in `files.pid_file` and removes the partial dump, with a second exec.
/// Returns a sentence for the error message saying what happened.
pub async fn kill(exec: &dyn ContainerExec, target: &ContainerRef, files: &RunFiles) -> String {
    let request = ExecRequest {
        target: target.clone(),
        argv: vec!["sh".into(), "-s".into()],
        stdin: Stdin::Bytes(script::kill_script(files).into_bytes()),
        timeout: Some(KILL_TIMEOUT),
    };
    let removed = if files.partial.is_some() {
        " and the partial dump removed"
    } else {
        ""
    };
    match exec.exec(request, StdoutSink::Capture).await {
        Ok(result) if result.success() => {
            let out = ScriptOutput::parse(&String::from_utf8_lossy(&result.stdout));
            if out.get("pidfile") == Some("missing") {
                return format!(
                    "the remote process had not recorded its pid (read-only directory?) and may still run{}",
                    if files.partial.is_some() {
                        "; the partial dump was removed"
                    } else {
                        ""
                    }
                );
            }
            match out.get("killed") {
                Some(pids) if !pids.is_empty() => {
                    format!("the remote process (pid {pids}) was killed{removed}")
                }
                _ => format!("no remote process was left to kill{removed}"),
            }
        }
        Ok(result) => format!(
            "the kill command failed with status {}; the remote process may still run",
            result.exit_code
        ),
        Err(e) => format!("the kill command could not run ({e}); the remote process may still run"),
    }
}
