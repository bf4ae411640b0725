//! What to run for one exec session: the request as the client sent it (`ExecRequest`, parsed from
//! the query string) and the resolved process description (`ExecSpec`) the route builds from the
//! pod's container.

use std::path::PathBuf;

use super::error::ExecError;

/// The exec query parameters of `pods/NAME/exec`, as kubectl and kube-rs send them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// `command=` repeated: argv of the process.
    pub command: Vec<String>,
    /// `container=`; `None` means the pod's only (or default) container.
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecRequest {
    /// Parse a raw query string and apply the apiserver's validation.
    ///
    /// # Errors
    /// [`ExecError::InvalidRequest`] for unparsable booleans, no command, no stream, or tty
    /// together with stderr (the same checks the apiserver makes).
    pub fn from_query(query: &str) -> Result<Self, ExecError> {
        let mut request = ExecRequest::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "command" => request.command.push(value.into_owned()),
                "container" if !value.is_empty() => request.container = Some(value.into_owned()),
                "stdin" => request.stdin = parse_bool(&key, &value)?,
                "stdout" => request.stdout = parse_bool(&key, &value)?,
                "stderr" => request.stderr = parse_bool(&key, &value)?,
                "tty" => request.tty = parse_bool(&key, &value)?,
                // Unknown parameters are ignored, as the apiserver's query decoder does.
                _ => {}
            }
        }
        if request.command.is_empty() {
            return Err(ExecError::InvalidRequest(
                "you must specify at least 1 command".into(),
            ));
        }
        if !(request.stdin || request.stdout || request.stderr) {
            return Err(ExecError::InvalidRequest(
                "you must specify at least one of stdin, stdout, stderr".into(),
            ));
        }
        if request.tty && request.stderr {
            return Err(ExecError::InvalidRequest(
                "stderr cannot be requested together with tty; a terminal merges it into stdout"
                    .into(),
            ));
        }
        Ok(request)
    }

    /// The process description for this request in a container with the given environment,
    /// mounts and working directory.
    #[must_use]
    pub fn into_spec(
        self,
        env: Vec<(String, String)>,
        mounts: Vec<Mount>,
        workdir: Option<PathBuf>,
    ) -> ExecSpec {
        ExecSpec {
            command: self.command,
            env,
            mounts,
            workdir,
            stdin: self.stdin,
            stdout: self.stdout,
            stderr: self.stderr,
            tty: self.tty,
        }
    }
}

/// Go's `strconv.ParseBool`, which the apiserver uses for these parameters.
fn parse_bool(key: &str, value: &str) -> Result<bool, ExecError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(ExecError::InvalidRequest(format!(
            "invalid value {other:?} for query parameter {key:?}: expected true or false"
        ))),
    }
}

/// A fully resolved process to run "inside" a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// argv; `command[0]` is looked up on the container's `PATH` inside the sandbox.
    pub command: Vec<String>,
    /// The container's environment, in pod-spec order (later duplicates win). `PATH` and `HOME`
    /// are added when absent, as container runtimes do.
    pub env: Vec<(String, String)>,
    /// Volume mounts: host directory (PVC backing dir) → container path.
    pub mounts: Vec<Mount>,
    /// `workingDir` of the container; `/` when `None`.
    pub workdir: Option<PathBuf>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// One volume mount of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Existing host directory or file.
    pub host: PathBuf,
    /// Absolute path inside the container.
    pub container: PathBuf,
    pub read_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_command_parameters_build_argv_in_order() {
        let request = ExecRequest::from_query(
            "command=sh&command=-c&command=echo%20out%3B%20exit%203&container=postgres&stdout=true&stderr=1",
        )
        .expect("valid query");
        assert_eq!(request.command, ["sh", "-c", "echo out; exit 3"]);
        assert_eq!(request.container.as_deref(), Some("postgres"));
        assert!(request.stdout && request.stderr && !request.stdin && !request.tty);
    }

    #[test]
    fn requests_without_command_or_streams_are_rejected() {
        assert!(matches!(
            ExecRequest::from_query("stdout=true"),
            Err(ExecError::InvalidRequest(m)) if m.contains("at least 1 command")
        ));
        assert!(matches!(
            ExecRequest::from_query("command=ls"),
            Err(ExecError::InvalidRequest(m)) if m.contains("at least one of stdin")
        ));
    }

    #[test]
    fn bad_booleans_and_tty_with_stderr_are_rejected() {
        assert!(matches!(
            ExecRequest::from_query("command=ls&stdout=yes"),
            Err(ExecError::InvalidRequest(m)) if m.contains("\"stdout\"")
        ));
        assert!(ExecRequest::from_query("command=ls&stdout=true&stderr=true&tty=true").is_err());
    }
}
