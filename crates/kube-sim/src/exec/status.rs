//! The `metav1.Status` objects the kubelet writes on the error channel when a command ends.
//!
//! Shapes follow the kubelet's v4 status writer: no `kind`/`apiVersion`, an empty `metadata`, and
//! for a non-zero exit `reason: NonZeroExitCode` with one cause `{reason: ExitCode, message: "<n>"}`
//! — client-go and kube-rs read the exit code from exactly there.

use serde_json::{Value, json};

/// The status for a process that exited with `code` (0 → Success).
#[must_use]
pub fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The status for a command that could not be started (the kubelet reports these as 500s).
#[must_use]
pub fn internal_error(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "code": 500,
        "details": {"causes": [{"message": message}]},
    })
}

/// The exit code of a finished child the way a container runtime reports it: the exit code, or
/// 128 + signal number for a process killed by a signal.
#[must_use]
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_exit_is_a_bare_success_status() {
        assert_eq!(
            exit_status(&["true".into()], 0),
            json!({"metadata": {}, "status": "Success"})
        );
    }

    #[test]
    fn non_zero_exit_carries_the_code_as_an_exit_code_cause() {
        let status = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(
            status["details"]["causes"],
            json!([{"reason": "ExitCode", "message": "3"}])
        );
        assert_eq!(
            status["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
    }

    #[test]
    fn signal_deaths_map_to_128_plus_the_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(3 << 8)), 3);
    }
}
