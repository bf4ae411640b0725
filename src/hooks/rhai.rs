//! The rhai sandbox for user hooks (`hooks/*.rhai`).
//!
//! # Script API
//! | item | meaning |
//! |---|---|
//! | `exec(workload, container, cmd)` | run `cmd` in `container` of `workload` (`"deployment/app"`, `"statefulset/db"`, `"pod/p-0"`) in the plan's namespace; `cmd` is an array (argv) or a string (a `sh` script). Returns `#{code, stdout, stderr}`; a non-zero `code` is not an error. |
//! | `exec_ok(workload, container, cmd)` | like `exec`, but throws when `code` is not 0; returns the same map |
//! | `log(msg)` / `warn(msg)` | a log line (also kept in the hook report); `print`/`debug` log too |
//! | `fail(msg)` | stop the hook: it fails with `msg` |
//! | `sleep(d)` | wait `d`: seconds as a number, or a duration string such as `"500ms"`, `"2s"`, `"1m"` |
//! | `namespace` | the plan's namespace (string constant) |
//! | `targets` | the plan's target PVC names (array of strings) |
//! | `vars` | the plan's user variables (map of strings) |
//! | `args` | the hook's inline `args` from the plan (map; nested values keep their types) |
//! | `now()` | the current time as an RFC 3339 string (honours `BACKUP_NS_NOW` through the engine's clock) |
//!
//! # Sandbox
//! No file, network or process access exists beyond `exec`: rhai's standard library has none, `import` and
//! `eval` are disabled, and the module resolver resolves nothing. Limits ([`RhaiLimits`]) bound operations, call
//! depth, expression depth, string/array/map sizes and wall-clock time; the clock is checked on every operation
//! and by `sleep`, and each `exec` gets only the time that is left (the remote process is killed on expiry).
//!
//! `exec` blocks the script thread: the script runs on a `spawn_blocking` thread and each call enters the tokio
//! runtime with `Handle::block_on`, so async exec never runs inside a runtime worker.

use super::diagnostic::ScriptDiagnostic;
use super::error::HookError;
use super::exec::ExecCommand;
use super::kill::kill;
use super::report::{HookKind, HookReport, TAIL_LIMIT, tail};
use super::script::{RunFiles, new_token};
use crate::vocab::exec::{ContainerExec, ExecError, ExecRequest, PodResolver, Stdin, StdoutSink};
use crate::vocab::workload::WorkloadRef;
use ::rhai::{AST, Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, Position, Scope};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Resource limits of one script run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RhaiLimits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
}

impl Default for RhaiLimits {
    fn default() -> Self {
        RhaiLimits {
            max_operations: 10_000_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_string_size: 4 * 1024 * 1024,
            max_array_size: 100_000,
            max_map_size: 10_000,
        }
    }
}

/// One run of a rhai hook's script, as the engine hands it over: the script with what it may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RhaiRun {
    pub name: String,
    /// Shown in diagnostics (usually the script's path).
    pub path: String,
    pub source: String,
    pub namespace: String,
    pub targets: Vec<String>,
    pub vars: BTreeMap<String, String>,
    /// The hook's inline `args` from the plan, visible to the script as the `args` map.
    pub args: BTreeMap<String, serde_json::Value>,
    pub timeout: Duration,
    pub limits: RhaiLimits,
}

/// What a script can reach: exec, pod resolution and the clock.
#[derive(Clone)]
pub struct RhaiContext {
    pub exec: Arc<dyn ContainerExec>,
    pub resolver: Arc<dyn PodResolver>,
    pub now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

/// The engine with the sandbox settings but without the exec API: enough to compile and validate.
pub(super) fn sandbox_engine(limits: &RhaiLimits) -> Engine {
    let mut engine = Engine::new();
    engine.set_module_resolver(::rhai::module_resolvers::DummyModuleResolver::new());
    engine.disable_symbol("eval");
    engine.disable_symbol("import");
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine
}

/// Compiles a script from source; `path` names it in diagnostics.
pub fn compile_source(path: &str, source: &str) -> Result<AST, Box<ScriptDiagnostic>> {
    sandbox_engine(&RhaiLimits::default())
        .compile(source)
        .map_err(|e| {
            Box::new(ScriptDiagnostic::new(
                path,
                source,
                e.err_type().to_string(),
                e.position(),
            ))
        })
}

/// Reads and compiles a script file (the plan validator uses this).
pub fn compile(path: &Path) -> Result<AST, Box<ScriptDiagnostic>> {
    let shown = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| {
        Box::new(ScriptDiagnostic::new(
            &shown,
            "",
            format!("cannot read the script: {e}"),
            Position::NONE,
        ))
    })?;
    compile_source(&shown, &source)
}

/// State shared by the registered functions during one run.
struct Sandbox {
    ctx: RhaiContext,
    runtime: tokio::runtime::Handle,
    hook: String,
    namespace: String,
    deadline: Instant,
    log: Mutex<Vec<String>>,
    /// Set by [`run_until`] when the engine cancels the hook (SIGTERM/SIGINT).
    cancelled: tokio::sync::watch::Receiver<bool>,
}

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

pub(super) fn runtime_error(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        Position::NONE,
    ))
}

impl Sandbox {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    fn log(&self, level: tracing::Level, message: &str) {
        if level == tracing::Level::WARN {
            tracing::warn!(hook = %self.hook, "{message}");
        } else {
            tracing::info!(hook = %self.hook, "{message}");
        }
        let line = if level == tracing::Level::WARN {
            format!("warning: {message}")
        } else {
            message.to_string()
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(line);
        }
    }

    fn exec(&self, workload: &str, container: &str, command: Dynamic) -> RhaiResult<Map> {
        let workload: WorkloadRef = workload
            .parse()
            .map_err(|e| runtime_error(format!("exec: {e}")))?;
        let command = if command.is_string() {
            ExecCommand::Script(command.into_string().unwrap_or_default())
        } else if command.is_array() {
            let argv = command
                .into_array()
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    a.into_string().map_err(|t| {
                        runtime_error(format!("exec: argv items must be strings, found {t}"))
                    })
                })
                .collect::<Result<Vec<String>, _>>()?;
            if argv.is_empty() {
                return Err(runtime_error("exec: the argv array is empty"));
            }
            ExecCommand::Argv(argv)
        } else {
            return Err(runtime_error(format!(
                "exec: the command must be an array of strings or a script string, found {}",
                command.type_name()
            )));
        };
        let remaining = self.remaining();
        if remaining.is_zero() || self.is_cancelled() {
            return Err(terminated());
        }
        let token = new_token();
        let files = RunFiles::for_command(&token);
        let script = command.script(&files);
        let outcome = self.runtime.block_on(async {
            let target = self
                .ctx
                .resolver
                .resolve(&self.namespace, &workload, container)
                .await
                .map_err(|e| format!("exec: {e}"))?;
            let request = ExecRequest {
                target: target.clone(),
                argv: vec!["sh".into(), "-s".into()],
                stdin: Stdin::Bytes(script.into_bytes()),
                timeout: Some(remaining),
            };
            let mut cancelled = self.cancelled.clone();
            let outcome = tokio::select! {
                outcome = self.ctx.exec.exec(request, StdoutSink::Capture) => outcome,
                _ = cancelled.wait_for(|c| *c) => {
                    let cleanup = kill(&*self.ctx.exec, &target, &files).await;
                    return Err(format!("exec in {workload} was cancelled; {cleanup}"));
                }
            };
            match outcome {
                Ok(result) => Ok(result),
                Err(ExecError::Timeout { .. }) => {
                    let cleanup = kill(&*self.ctx.exec, &target, &files).await;
                    Err(format!(
                        "exec in {workload} timed out (the hook's time ran out); {cleanup}"
                    ))
                }
                Err(e) => {
                    let _ = kill(&*self.ctx.exec, &target, &files).await;
                    Err(format!("exec: {e}"))
                }
            }
        });
        if self.is_cancelled() {
            return Err(terminated());
        }
        let result = outcome.map_err(runtime_error)?;
        let mut map = Map::new();
        map.insert("code".into(), Dynamic::from(i64::from(result.exit_code)));
        map.insert(
            "stdout".into(),
            Dynamic::from(String::from_utf8_lossy(&result.stdout).into_owned()),
        );
        map.insert(
            "stderr".into(),
            Dynamic::from(String::from_utf8_lossy(&result.stderr).into_owned()),
        );
        Ok(map)
    }

    /// Sleeps in short steps so that cancellation and the deadline stop it promptly.
    fn sleep(&self, duration: Duration) -> RhaiResult<()> {
        let until = Instant::now() + duration;
        loop {
            if self.is_cancelled() {
                return Err(terminated());
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            if now >= self.deadline {
                return Err(terminated());
            }
            let step = until
                .min(self.deadline)
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
            std::thread::sleep(step);
        }
    }
}

/// The error raised when the wall-clock limit is reached or the hook is cancelled outside `on_progress`.
fn terminated() -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTerminated(
        Dynamic::from("timeout"),
        Position::NONE,
    ))
}

fn parse_sleep(text: &str) -> RhaiResult<Duration> {
    humantime::parse_duration(text.trim())
        .map_err(|e| runtime_error(format!("sleep: `{text}` is not a duration ({e})")))
}

fn seconds(value: f64) -> RhaiResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| runtime_error(format!("sleep: {value} is not a valid number of seconds")))
}

/// The full engine for one run: sandbox settings, wall-clock limit and the API.
fn run_engine(sandbox: &Arc<Sandbox>, limits: &RhaiLimits) -> Engine {
    let mut engine = sandbox_engine(limits);
    let deadline = sandbox.deadline;
    let cancelled = sandbox.cancelled.clone();
    engine.on_progress(move |_| {
        (Instant::now() >= deadline || *cancelled.borrow()).then(|| Dynamic::from("stopped"))
    });

    let s = Arc::clone(sandbox);
    engine.on_print(move |text| s.log(tracing::Level::INFO, text));
    let s = Arc::clone(sandbox);
    engine.on_debug(move |text, _, _| s.log(tracing::Level::INFO, text));
    let s = Arc::clone(sandbox);
    engine.register_fn("log", move |msg: &str| s.log(tracing::Level::INFO, msg));
    let s = Arc::clone(sandbox);
    engine.register_fn("warn", move |msg: &str| s.log(tracing::Level::WARN, msg));
    engine.register_fn("fail", |msg: &str| -> RhaiResult<()> {
        Err(runtime_error(msg))
    });
    let s = Arc::clone(sandbox);
    engine.register_fn(
        "exec",
        move |workload: &str, container: &str, command: Dynamic| {
            s.exec(workload, container, command)
        },
    );
    let s = Arc::clone(sandbox);
    engine.register_fn(
        "exec_ok",
        move |workload: &str, container: &str, command: Dynamic| -> RhaiResult<Map> {
            let map = s.exec(workload, container, command)?;
            let code = map.get("code").and_then(|c| c.as_int().ok()).unwrap_or(-1);
            if code != 0 {
                let stderr = map
                    .get("stderr")
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                let stderr = tail(stderr.trim(), 512);
                return Err(runtime_error(format!(
                    "exec_ok: command in {workload} (container {container}) exited with status {code}{}",
                    if stderr.is_empty() { String::new() } else { format!(": {stderr}") }
                )));
            }
            Ok(map)
        },
    );
    let s = Arc::clone(sandbox);
    engine.register_fn("sleep", move |secs: i64| {
        #[allow(clippy::cast_precision_loss)]
        let d = seconds(secs as f64)?;
        s.sleep(d)
    });
    let s = Arc::clone(sandbox);
    engine.register_fn("sleep", move |secs: f64| s.sleep(seconds(secs)?));
    let s = Arc::clone(sandbox);
    engine.register_fn("sleep", move |text: ImmutableString| {
        s.sleep(parse_sleep(&text)?)
    });
    let s = Arc::clone(sandbox);
    engine.register_fn("now", move || -> String {
        (s.ctx.now)().to_rfc3339_opts(SecondsFormat::Secs, true)
    });
    engine
}

/// A plan value (JSON) as a rhai value: objects become maps, arrays arrays, numbers `i64`/`f64`.
fn json_to_dynamic(value: &serde_json::Value) -> Dynamic {
    match value {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => Dynamic::from(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from(i),
            None => Dynamic::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Dynamic::from(s.clone()),
        serde_json::Value::Array(items) => {
            Dynamic::from(items.iter().map(json_to_dynamic).collect::<Array>())
        }
        serde_json::Value::Object(map) => Dynamic::from(
            map.iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect::<Map>(),
        ),
    }
}

/// Runs a rhai hook to completion (or failure) within `hook.timeout`.
pub async fn run(hook: &RhaiRun, ctx: &RhaiContext) -> Result<HookReport, HookError> {
    run_until(hook, ctx, std::future::pending::<()>()).await
}

/// Like [`run`], but stops the script when `cancel` completes (SIGTERM/SIGINT in the engine): the running `exec`
/// (if any) is killed in its container and [`HookError::Cancelled`] is returned.
pub async fn run_until(
    hook: &RhaiRun,
    ctx: &RhaiContext,
    cancel: impl std::future::Future<Output = ()>,
) -> Result<HookReport, HookError> {
    let start = Instant::now();
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let ast = compile_source(&hook.path, &hook.source).map_err(|diagnostic| HookError::Script {
        hook: hook.name.clone(),
        diagnostic,
    })?;
    let sandbox = Arc::new(Sandbox {
        ctx: ctx.clone(),
        runtime: tokio::runtime::Handle::current(),
        hook: hook.name.clone(),
        namespace: hook.namespace.clone(),
        deadline: start + hook.timeout,
        log: Mutex::new(Vec::new()),
        cancelled: cancel_rx,
    });
    let thread_sandbox = Arc::clone(&sandbox);
    let thread_hook = hook.clone();
    let mut script = tokio::task::spawn_blocking(move || {
        let engine = run_engine(&thread_sandbox, &thread_hook.limits);
        let mut scope = Scope::new();
        scope.push_constant("namespace", thread_hook.namespace.clone());
        let targets: Array = thread_hook
            .targets
            .iter()
            .cloned()
            .map(Dynamic::from)
            .collect();
        scope.push_constant("targets", targets);
        let vars: Map = thread_hook
            .vars
            .iter()
            .map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone())))
            .collect();
        scope.push_constant("vars", vars);
        let args: Map = thread_hook
            .args
            .iter()
            .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
            .collect();
        scope.push_constant("args", args);
        engine.run_ast_with_scope(&mut scope, &ast)
    });
    let outcome = tokio::select! {
        outcome = &mut script => outcome,
        () = cancel => {
            let _ = cancel_tx.send(true);
            // The script stops at its next operation, sleep step or exec; wait so its exec is cleaned up.
            let _ = script.await;
            let log = sandbox.log.lock().map(|l| l.join("\n")).unwrap_or_default();
            return Err(HookError::Cancelled {
                hook: hook.name.clone(),
                target: format!("rhai script {}", hook.path),
                cleanup: format!("the script was stopped{}", last_line(&log)),
            });
        }
    };

    let log = sandbox.log.lock().map(|l| l.join("\n")).unwrap_or_default();
    let result = match outcome {
        Ok(result) => result,
        Err(join) => {
            return Err(HookError::Script {
                hook: hook.name.clone(),
                diagnostic: Box::new(ScriptDiagnostic::new(
                    &hook.path,
                    &hook.source,
                    format!("the script thread failed: {join}"),
                    Position::NONE,
                )),
            });
        }
    };
    match result {
        Ok(()) => Ok(HookReport {
            duration: start.elapsed(),
            stdout_tail: tail(&log, TAIL_LIMIT),
            ..HookReport::new(&hook.name, HookKind::Rhai, None)
        }),
        Err(err) => Err(script_error(hook, *err)),
    }
}

fn last_line(log: &str) -> String {
    log.lines()
        .last()
        .map(|l| format!(" after logging `{l}`"))
        .unwrap_or_default()
}

/// Maps a rhai error to a [`HookError`]: the innermost error's message and position (so an error inside a script
/// function points into that function), with the limits named in plain words.
fn script_error(hook: &RhaiRun, mut err: EvalAltResult) -> HookError {
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = err {
        err = *inner;
    }
    let pos = err.take_position();
    let message = match &err {
        EvalAltResult::ErrorTerminated(..) => {
            let diagnostic =
                ScriptDiagnostic::new(&hook.path, &hook.source, "stopped here".into(), pos);
            return HookError::Timeout {
                hook: hook.name.clone(),
                target: format!("rhai script {}", hook.path),
                after: hook.timeout,
                cleanup: format!("the script was stopped at line {}", diagnostic.line),
            };
        }
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "the script exceeded its limit of {} operations",
            hook.limits.max_operations
        ),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "the script exceeded its call depth limit of {}",
            hook.limits.max_call_levels
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            format!("the script exceeded a size limit: {what}")
        }
        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
        other => other.to_string(),
    };
    HookError::Script {
        hook: hook.name.clone(),
        diagnostic: Box::new(ScriptDiagnostic::new(
            &hook.path,
            &hook.source,
            message,
            pos,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_point_at_line_and_column() {
        let err = compile_source("x.rhai", "let a = 1;\nlet b = ;\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 9));
        assert!(err.to_string().starts_with("x.rhai:2:9: "), "{err}");
    }

    #[test]
    fn eval_and_import_are_not_available() {
        assert!(compile_source("x.rhai", "eval(\"1\")").is_err());
        assert!(compile_source("x.rhai", "import \"fs\" as fs;").is_err());
    }
}
