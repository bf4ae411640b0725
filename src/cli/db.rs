//! `backup-ns postgres|mysql dump|download|restore|info|shell`: the on-call database commands.
//!
//! Settings come from `--plan FILE` (the hook `--hook NAME|pre[N]|post[N]` names, or the plan's only hook of the
//! engine's type; see [`crate::plan::hook_selector`]) or, without a plan, from the original's `BAK_*` environment
//! (`kubectl envx cronjob/backup -- backup-ns postgres download`), through `settings::load_effective`, so these
//! commands and `run` agree on every parameter. `dump` is the very hook `run` executes; the other scripts live in
//! `hooks::dbops` and share its connection code.
//!
//! `download` streams `cat DUMP` over the exec's stdout: nothing is copied in the pod, each WebSocket frame goes
//! uncopied to a file-writer thread and (for gzip) a decoder thread through bounded queues, the size is checked
//! against a `stat` taken first, the file is fsynced (writeback starts while it streams) and it only gets its
//! final name once all of that passed.

use super::dump_file::DumpWriter;
use crate::Exit;
use crate::clock::Clock;
use crate::cluster::{Cluster, ConnectOptions};
use crate::engine::steps;
use crate::hooks::dbops::{DbHook, DumpFormat, RestoreSource, bootstrap_argv, decode_head};
use crate::hooks::script::ScriptOutput;
use crate::hooks::{self, Secret};
use crate::plan::model::{self, DbDump, HookAction, HookKind};
use crate::plan::{HookSelector, SelectError, select_hook};
use crate::settings::{self, Overrides};
use crate::vocab::exec::{ContainerExec, ExecRequest, ExecResult, PodResolver, Stdin, StdoutSink};
use crate::vocab::workload::ContainerRef;
use clap::{Args, Subcommand};
use is_terminal::IsTerminal;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Which database engine a command group speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Mysql,
}

impl Engine {
    pub fn name(self) -> &'static str {
        self.hook_kind().as_str()
    }

    /// The plan hook type that describes this engine's database.
    pub fn hook_kind(self) -> HookKind {
        match self {
            Engine::Postgres => HookKind::Postgres,
            Engine::Mysql => HookKind::Mysql,
        }
    }

    fn other(self) -> Engine {
        match self {
            Engine::Postgres => Engine::Mysql,
            Engine::Mysql => Engine::Postgres,
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  # With the namespace's backup CronJob env (the original's pattern):
  kubectl envx cronjob/backup -- backup-ns postgres download
  # With a plan file:
  backup-ns postgres --plan plans/postgres-app.yaml info
  backup-ns postgres --plan plans/postgres-app.yaml dump
  backup-ns postgres --plan plans/postgres-app.yaml download --output-dir ~/dumps
  backup-ns mysql --plan plans/mariadb-app.yaml restore --yes
  backup-ns postgres --plan plans/postgres-app.yaml restore --from-local shop_2026-01-08T23-17-50Z_postgres_dump.sql.gz
  backup-ns mysql --plan plans/mariadb-app.yaml shell
  # A plan with several hooks of this type: pick one by name, or by position when it has none
  # (quoted, so the shell does not read the brackets as a glob):
  backup-ns postgres --plan plans/shop-multi-pvc.yaml --hook shop-db download
  backup-ns postgres --plan plans/shop-multi-pvc.yaml --hook 'pre[1]' info

Settings: the plan's hook named by --hook, else its only hook of this type (several: pass --hook);
without --plan, the BAK_* variables (BAK_DB_POSTGRES=true, ...).")]
pub struct DbArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub action: DbAction,
}

/// Where the database is and how to reach the cluster.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Plan file whose hook of this type describes the database (else the BAK_* environment).
    #[arg(long, global = true, env = "BACKUP_NS_PLAN", value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// The plan's hook to use: its `name`, or its position (`pre[0]`, `post[1]`). Needed when the plan has
    /// several hooks of this type; needs --plan.
    #[arg(
        long,
        global = true,
        env = "BACKUP_NS_HOOK",
        value_name = "NAME|pre[N]|post[N]"
    )]
    pub hook: Option<HookSelector>,
    /// Namespace (overrides the plan's; default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
    /// Path to a kubeconfig (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, global = true, env = "BACKUP_NS_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// How long the command may run (default: the hook's timeout for dumps, none for the others).
    #[arg(long, global = true, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// Run the dump hook now (the same code `run` executes), writing the dump file in the container.
    #[command(after_help = "Examples:\n  backup-ns postgres --plan plans/postgres-app.yaml dump")]
    Dump,
    /// Stream the container's dump file into a local file, verified, named <ns>_<time>_<engine>_dump.sql.gz.
    #[command(
        after_help = "Examples:\n  backup-ns postgres download\n  backup-ns mysql --plan plans/mariadb-app.yaml download --output-dir /tmp/dumps\n  backup-ns postgres --plan plans/shop-multi-pvc.yaml --hook shop-db download\n  backup-ns postgres download --output latest.sql.gz --force\n  backup-ns postgres download --no-verify --no-sync   # fastest: size check only, no fsync"
    )]
    Download(DownloadArgs),
    /// Restore the container's dump file (or --from-local FILE) into the live database. Asks first.
    #[command(
        after_help = "Examples:\n  backup-ns postgres restore\n  backup-ns postgres restore --yes\n  backup-ns mysql restore --from-local shop_2026-01-08T23-17-50Z_mysql_dump.sql.gz --yes"
    )]
    Restore(RestoreArgs),
    /// Tool and server versions, database size, and the dump file's age and size.
    #[command(
        after_help = "Examples:\n  backup-ns postgres info\n  backup-ns mysql --plan plans/mariadb-app.yaml info\n  backup-ns postgres --plan plans/shop-multi-pvc.yaml --hook 'pre[1]' info"
    )]
    Info,
    /// An interactive psql / mariadb session in the database container (TTY, follows window resizes).
    #[command(
        after_help = "Examples:\n  backup-ns postgres shell\n  backup-ns mysql -n shop shell"
    )]
    Shell,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Directory for the downloaded file (its name is derived from namespace, dump time and engine).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub output_dir: PathBuf,
    /// Exact local file name instead (overrides --output-dir).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace an existing local file.
    #[arg(long)]
    pub force: bool,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Skip the gzip integrity check (the size is still checked). The check inflates the whole dump as it
    /// arrives; on a compressed dump that, not the network, usually limits the speed.
    #[arg(long)]
    pub no_verify: bool,
    /// Don't fsync the file before giving it its final name (like pg_dump's --no-sync). Faster on slow disks,
    /// but a machine crash soon after may leave a truncated file under the final name.
    #[arg(long)]
    pub no_sync: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(short, long)]
    pub yes: bool,
    /// Upload this local dump (gzip, zstd or plain SQL) through stdin instead of using the container's file.
    #[arg(long, value_name = "FILE")]
    pub from_local: Option<PathBuf>,
}

/// A failure with its exit code; the message names the object and the fix.
struct Fail(Exit, String);

impl Fail {
    fn usage(message: impl Into<String>) -> Fail {
        Fail(Exit::Usage, message.into())
    }
    fn failed(message: impl Into<String>) -> Fail {
        Fail(Exit::Failure, message.into())
    }
}

/// Everything a subcommand needs: the database parameters, where it runs, and an exec.
struct Ctx {
    engine: Engine,
    /// The plan hook in use, named as `run` names its step (`pre[1]/postgres/orders`).
    step_name: String,
    hook: DbHook,
    timeout: Duration,
    namespace: String,
    target: ContainerRef,
    exec: crate::cluster::exec::KubeExec,
    cluster: Cluster,
    secret: Option<Secret>,
}

pub fn run(engine: Engine, args: DbArgs) -> Exit {
    // One thread drives the exec stream: a download then never waits for a wake-up from another thread per
    // frame (the file writer, gzip check and fsync use their own threads).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure;
        }
    };
    match runtime.block_on(dispatch(engine, args)) {
        Ok(()) => Exit::Success,
        Err(Fail(exit, message)) => {
            eprintln!("error: {message}");
            exit
        }
    }
}

async fn dispatch(engine: Engine, args: DbArgs) -> Result<(), Fail> {
    let clock = Clock::from_env().map_err(|e| Fail::usage(e.to_string()))?;
    let ctx = prepare(engine, &args.common).await?;
    match args.action {
        DbAction::Dump => dump(&ctx).await,
        DbAction::Download(a) => download(&ctx, &a).await,
        DbAction::Restore(a) => restore(&ctx, &a, args.common.timeout).await,
        DbAction::Info => info(&ctx, &clock, args.common.timeout).await,
        DbAction::Shell => shell(&ctx).await,
    }
}

/// The selected hook's parameters for the database scripts, with its dump settings and timeout; `None` unless
/// it is a postgres or mysql hook.
pub fn db_hook(hook: &model::Hook) -> Option<(DbHook, &DbDump, Duration)> {
    match &hook.action {
        HookAction::Postgres(p) => Some((DbHook::Postgres(p.clone()), &p.dump, hook.timeout)),
        HookAction::Mysql(m) => Some((DbHook::Mysql(m.clone()), &m.dump, hook.timeout)),
        HookAction::Rhai(_) | HookAction::Exec(_) => None,
    }
}

/// The selection error as the command reports it, with the next step to take.
fn selection_failure(engine: Engine, error: &SelectError) -> Fail {
    let hint = match error {
        SelectError::NoneOfKind { wanted, .. } => format!(
            "; add one (`type: {wanted}`) or use `backup-ns {}` for the other engine",
            engine.other().name()
        ),
        SelectError::WrongKind {
            actual, selector, ..
        } if *actual == engine.other().hook_kind() => {
            format!("; use `backup-ns {actual} --hook {selector}` for it")
        }
        _ => String::new(),
    };
    Fail::usage(format!("{error}{hint}"))
}

async fn prepare(engine: Engine, common: &CommonArgs) -> Result<Ctx, Fail> {
    if common.hook.is_some() && common.plan.is_none() {
        return Err(Fail::usage(
            "--hook (or BACKUP_NS_HOOK) picks a hook of a plan, so it needs --plan FILE (or BACKUP_NS_PLAN); the BAK_* variables describe a single database",
        ));
    }
    let overrides = Overrides {
        namespace: common.namespace.clone(),
        ..Overrides::default()
    };
    let loaded =
        settings::load_effective(common.plan.as_deref(), &settings::process_env(), &overrides)
            .map_err(|diags| {
                Fail::usage(format!(
                    "cannot load the settings:\n{}",
                    diags.render(100).trim_end()
                ))
            })?;
    let plan = loaded.plan;
    let selected = select_hook(&plan, engine.hook_kind(), common.hook.as_ref())
        .map_err(|e| selection_failure(engine, &e))?;
    let (hook, dump, hook_timeout) = db_hook(selected.hook).ok_or_else(|| {
        Fail::usage(format!(
            "hook `{}` is not a database hook",
            selected.selector()
        ))
    })?;
    let cluster = Cluster::connect(&ConnectOptions {
        kubeconfig: common.kubeconfig.clone(),
        context: common.context.clone(),
        namespace: common.namespace.clone().or(plan.namespace.clone()),
        ..Default::default()
    })
    .await
    .map_err(|e| Fail::failed(e.to_string()))?;
    let namespace = cluster.namespace().to_string();
    let target = cluster
        .pod_resolver()
        .resolve(&namespace, &dump.workload, &dump.container)
        .await
        .map_err(|e| Fail::failed(e.to_string()))?;
    let secret = match &hook {
        DbHook::Postgres(p) => p.dump.secret(),
        DbHook::Mysql(m) => m.dump.secret(),
    };
    Ok(Ctx {
        engine,
        step_name: steps::step_name(selected.hook, selected.position),
        hook,
        timeout: common.timeout.unwrap_or(hook_timeout),
        namespace,
        target,
        exec: cluster.container_exec(),
        cluster: cluster.clone(),
        secret,
    })
}

impl Ctx {
    fn redact(&self, text: &str) -> String {
        match &self.secret {
            Some(s) => s.redact(text),
            None => text.to_string(),
        }
    }

    /// Runs a fact script (`sh -s`) and parses its `backup-ns:` lines; a non-zero exit is an error.
    async fn facts(&self, script: String, timeout: Option<Duration>) -> Result<ScriptOutput, Fail> {
        let result = self
            .exec
            .exec(
                ExecRequest {
                    target: self.target.clone(),
                    argv: vec!["sh".into(), "-s".into()],
                    stdin: Stdin::Bytes(script.into_bytes()),
                    timeout: Some(timeout.unwrap_or(Duration::from_secs(120))),
                },
                StdoutSink::Capture,
            )
            .await
            .map_err(|e| Fail::failed(e.to_string()))?;
        let stdout = self.redact(&String::from_utf8_lossy(&result.stdout));
        let out = ScriptOutput::parse(&stdout);
        if !result.success() {
            let reason = out
                .get("missing_tool")
                .map(|t| format!("`{t}` is not installed in the container"))
                .or_else(|| out.get("error").map(str::to_string))
                .unwrap_or_else(|| format!("exit status {}", result.exit_code));
            return Err(Fail::failed(format!(
                "{reason} in {}\n{}",
                self.target,
                self.redact(String::from_utf8_lossy(&result.stderr).trim())
            )));
        }
        Ok(out)
    }
}

async fn dump(ctx: &Ctx) -> Result<(), Fail> {
    let action = match &ctx.hook {
        DbHook::Postgres(p) => HookAction::Postgres(p.clone()),
        DbHook::Mysql(m) => HookAction::Mysql(m.clone()),
    };
    let report = hooks::run(&ctx.step_name, &action, &ctx.exec, &ctx.target, ctx.timeout)
        .await
        .map_err(|e| Fail::failed(e.to_string()))?;
    println!(
        "dumped {} to {} in {} ({}, {:.1}s)",
        report
            .dump_size
            .map_or_else(|| "?".to_string(), human_bytes),
        ctx.hook.dump_path(),
        ctx.target,
        report
            .tool_version
            .as_deref()
            .unwrap_or("unknown tool version"),
        report.duration.as_secs_f64()
    );
    Ok(())
}

/// The dump file's size, time and format, as `stat` reported it in the container.
struct DumpFile {
    size: u64,
    mtime: chrono::DateTime<chrono::Utc>,
    format: DumpFormat,
}

async fn stat_dump(ctx: &Ctx) -> Result<DumpFile, Fail> {
    let out = ctx.facts(ctx.hook.stat_script(), None).await?;
    dump_file(ctx, &out)?.ok_or_else(|| {
        Fail::failed(format!(
            "there is no dump file at {} in {}; create one with `backup-ns {} dump`",
            ctx.hook.dump_path(),
            ctx.target,
            ctx.engine.name()
        ))
    })
}

fn dump_file(ctx: &Ctx, out: &ScriptOutput) -> Result<Option<DumpFile>, Fail> {
    if out.get("dump") == Some("nodir") {
        return Err(Fail::failed(format!(
            "the directory of the dump file {} does not exist in {}; check the hook's dumpFile",
            ctx.hook.dump_path(),
            ctx.target
        )));
    }
    let (Some(size), Some(mtime)) = (out.get("dump_size"), out.get("dump_mtime")) else {
        return Ok(None);
    };
    let bad = || {
        Fail::failed(format!(
            "unexpected stat output for {}",
            ctx.hook.dump_path()
        ))
    };
    let size = size.trim().parse::<u64>().map_err(|_| bad())?;
    let mtime = mtime
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .ok_or_else(bad)?;
    let format = DumpFormat::sniff(&decode_head(out.get("dump_head").unwrap_or_default()));
    Ok(Some(DumpFile {
        size,
        mtime,
        format,
    }))
}

/// `<namespace>_<UTC time of the dump>_<engine>_dump.sql.gz` (the suffix follows the detected format).
pub fn download_name(
    namespace: &str,
    dumped_at: chrono::DateTime<chrono::Utc>,
    engine: Engine,
    format: DumpFormat,
) -> String {
    format!(
        "{namespace}_{}_{}_{}",
        dumped_at.format("%Y-%m-%dT%H-%M-%SZ"),
        engine.name(),
        format.suffix()
    )
}

/// Removes the partial file unless the download completed.
struct PartialFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn download(ctx: &Ctx, args: &DownloadArgs) -> Result<(), Fail> {
    let mut stop = StopSignals::install();
    let file = stat_dump(ctx).await?;
    let name = download_name(&ctx.namespace, file.mtime, ctx.engine, file.format);
    let dest = match &args.output {
        Some(path) => path.clone(),
        None => args.output_dir.join(&name),
    };
    if dest.exists() && !args.force {
        return Err(Fail::usage(format!(
            "{} already exists (that dump was downloaded before); pass --force to replace it",
            dest.display()
        )));
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(name);
    let partial_path = dir.join(format!(
        ".{file_name}.partial-{}",
        hooks::script::new_token()
    ));
    let std_file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial_path)
        .map_err(|e| {
            Fail::usage(format!(
                "cannot create {} ({e}); choose a writable --output-dir",
                partial_path.display()
            ))
        })?;
    let mut partial = PartialFile {
        path: partial_path.clone(),
        keep: false,
    };
    eprintln!(
        "downloading {} ({}) from {} to {}",
        ctx.hook.dump_path(),
        human_bytes(file.size),
        ctx.target,
        dest.display()
    );
    let bar = (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(file.size);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let started = Instant::now();
    let verify_gzip = file.format == DumpFormat::Gzip && !args.no_verify;
    // On SIGINT/SIGTERM the stream is dropped (closing the exec, which ends `cat` in the pod) and `partial`
    // removes the file on the way out.
    let streamed = tokio::select! {
        streamed = stream_to_file(ctx, std_file, args, verify_gzip, bar.clone()) => streamed,
        exit = stop.recv() => Err(Fail(
            exit,
            format!(
                "{}: the download stopped and its partial file was removed; {} was not written",
                if exit == Exit::Terminated { "terminated" } else { "interrupted" },
                dest.display()
            ),
        )),
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let (written, gzip_ok) = streamed?;
    if written != file.size {
        return Err(Fail::failed(format!(
            "received {written} bytes but {} had {} bytes; the dump probably changed during the download, run it again",
            ctx.hook.dump_path(),
            file.size
        )));
    }
    if let Some(Err(message)) = gzip_ok {
        return Err(Fail::failed(format!(
            "{} is not a valid gzip file ({message}); the dump in the container is damaged, run a new dump",
            ctx.hook.dump_path()
        )));
    }
    std::fs::rename(&partial_path, &dest).map_err(|e| {
        Fail::failed(format!(
            "cannot rename {} to {}: {e}",
            partial_path.display(),
            dest.display()
        ))
    })?;
    partial.keep = true;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "downloaded {} in {secs:.1}s ({}/s){}",
        human_bytes(written),
        human_bytes((written as f64 / secs.max(0.001)) as u64),
        match (file.format, verify_gzip) {
            (_, true) => ", gzip verified",
            (DumpFormat::Gzip, false) => ", gzip NOT verified (--no-verify)",
            _ => "",
        }
    );
    println!("{}", dest.display());
    print_import_hint(ctx, &dest, file.format);
    Ok(())
}

/// SIGINT and SIGTERM handlers, installed before anything needs cleaning up.
struct StopSignals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl StopSignals {
    fn install() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => StopSignals(Some((term, int))),
            _ => {
                tracing::warn!(
                    "cannot install signal handlers; a signal ends the download without cleanup"
                );
                StopSignals(None)
            }
        }
    }

    /// Resolves at the first signal with the matching exit code; never without handlers.
    async fn recv(&mut self) -> Exit {
        match &mut self.0 {
            Some((term, int)) => tokio::select! {
                _ = term.recv() => Exit::Terminated,
                _ = int.recv() => Exit::Interrupted,
            },
            None => std::future::pending().await,
        }
    }
}

/// Streams `cat DUMP` into `file`; returns the bytes written and, for gzip, the integrity verdict.
async fn stream_to_file(
    ctx: &Ctx,
    file: std::fs::File,
    args: &DownloadArgs,
    verify_gzip: bool,
    bar: Option<indicatif::ProgressBar>,
) -> Result<(u64, Option<Result<(), String>>), Fail> {
    let mut writer = DumpWriter::new(file, verify_gzip, bar);
    let exec_result = ctx
        .cluster
        .exec_stdout_chunks(
            &ctx.target,
            vec!["cat".into(), "--".into(), ctx.hook.dump_path().to_string()],
            &mut writer,
        )
        .await;
    // A failed stream's partial file is removed, so only a complete one is worth an fsync.
    let complete = exec_result.as_ref().is_ok_and(ExecResult::success);
    let written = writer.finish(complete && !args.no_sync).await;
    let result = exec_result.map_err(|e| Fail::failed(e.to_string()))?;
    if !result.success() {
        return Err(Fail::failed(format!(
            "reading {} in {} failed with exit status {}: {}",
            ctx.hook.dump_path(),
            ctx.target,
            result.exit_code,
            String::from_utf8_lossy(&result.stderr).trim()
        )));
    }
    let total = written
        .bytes
        .map_err(|e| Fail::failed(format!("writing the local file failed: {e}")))?;
    Ok((total, written.gzip))
}

fn print_import_hint(ctx: &Ctx, dest: &Path, format: DumpFormat) {
    let file = dest.display();
    let cat = match format {
        DumpFormat::Gzip => format!("gzip -dc {file}"),
        DumpFormat::Zstd => format!("zstd -dc {file}"),
        DumpFormat::PgCustom | DumpFormat::Plain => format!("cat {file}"),
    };
    println!("to unpack:  {cat} > dump.sql");
    match (&ctx.hook, format) {
        (DbHook::Postgres(_), DumpFormat::PgCustom) => println!(
            "to import:  pg_restore --clean --if-exists --no-owner --host 127.0.0.1 --port 5432 --username \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" {file}"
        ),
        (DbHook::Postgres(_), _) => println!(
            "to import:  {cat} | psql --host 127.0.0.1 --port 5432 --username \"$POSTGRES_USER\" \"$POSTGRES_DB\""
        ),
        (DbHook::Mysql(_), _) => println!(
            "to import:  {cat} | mariadb --host 127.0.0.1 --port 3306 --user root -p \"$MYSQL_DATABASE\""
        ),
    }
    println!(
        "or restore it into the pod's database:  backup-ns {} restore --from-local {file}",
        ctx.engine.name()
    );
}

/// Asks on the terminal; without one, refuses unless `--yes` was given.
fn confirm(question: &str) -> Result<(), Fail> {
    if !std::io::stdin().is_terminal() {
        return Err(Fail::usage(format!(
            "{question}\nrefusing without confirmation: stdin is not a terminal; pass --yes to restore anyway"
        )));
    }
    eprint!("{question}\ntype `yes` to continue: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Fail::usage(format!("cannot read the answer: {e}")))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Fail::usage("not confirmed; nothing was changed"))
    }
}

/// Checks a local dump before anything is sent: readable, and a complete gzip stream when it is gzip.
fn check_local(path: &Path) -> Result<(DumpFormat, u64), Fail> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| Fail::usage(format!("cannot read {}: {e}", path.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size == 0 {
        return Err(Fail::usage(format!(
            "{} is empty; refusing to restore it",
            path.display()
        )));
    }
    let mut head = [0u8; 8];
    let n = std::io::Read::read(&mut file, &mut head)
        .map_err(|e| Fail::usage(format!("cannot read {}: {e}", path.display())))?;
    let format = DumpFormat::sniff(&head[..n]);
    if format == DumpFormat::Gzip {
        let file = std::fs::File::open(path)
            .map_err(|e| Fail::usage(format!("cannot read {}: {e}", path.display())))?;
        let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
        std::io::copy(&mut decoder, &mut std::io::sink()).map_err(|e| {
            Fail::usage(format!(
                "{} is not a valid gzip file ({e}); refusing to restore it",
                path.display()
            ))
        })?;
    }
    Ok((format, size))
}

async fn restore(ctx: &Ctx, args: &RestoreArgs, timeout: Option<Duration>) -> Result<(), Fail> {
    let (source, stdin, argv, what) = match &args.from_local {
        Some(path) => {
            let (format, size) = check_local(path)?;
            if matches!(ctx.hook, DbHook::Mysql(_)) && format == DumpFormat::PgCustom {
                return Err(Fail::usage(format!(
                    "{} is a pg_dump custom archive; it cannot be restored into MySQL",
                    path.display()
                )));
            }
            let script = ctx.hook.restore_script(RestoreSource::Stdin(format));
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| Fail::usage(format!("cannot read {}: {e}", path.display())))?;
            let argv = bootstrap_argv(script.len());
            let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> =
                Box::new(std::io::Cursor::new(script.into_bytes()).chain(file));
            (
                RestoreSource::Stdin(format),
                Stdin::Reader(reader),
                argv,
                format!("the local file {} ({})", path.display(), human_bytes(size)),
            )
        }
        None => {
            let file = stat_dump(ctx).await?;
            let script = ctx.hook.restore_script(RestoreSource::ContainerFile);
            (
                RestoreSource::ContainerFile,
                Stdin::Bytes(script.into_bytes()),
                vec!["sh".into(), "-s".into()],
                format!(
                    "the dump file {} ({}, written {})",
                    ctx.hook.dump_path(),
                    human_bytes(file.size),
                    file.mtime.format("%Y-%m-%d %H:%M:%S UTC")
                ),
            )
        }
    };
    if !args.yes {
        confirm(&format!(
            "This restores {what} into the live {} database in {}, replacing the objects it contains.",
            ctx.engine.name(),
            ctx.target
        ))?;
    }
    let started = Instant::now();
    let result = ctx
        .exec
        .exec(
            ExecRequest {
                target: ctx.target.clone(),
                argv,
                stdin,
                timeout,
            },
            StdoutSink::Capture,
        )
        .await
        .map_err(|e| Fail::failed(e.to_string()))?;
    let stdout = ctx.redact(&String::from_utf8_lossy(&result.stdout));
    let out = ScriptOutput::parse(&stdout);
    let stderr = ctx.redact(String::from_utf8_lossy(&result.stderr).trim());
    if !result.success() {
        let reason = out
            .get("missing_tool")
            .map(|t| format!("`{t}` is not installed in the container"))
            .or_else(|| out.get("error").map(str::to_string))
            .unwrap_or_else(|| format!("the restore exited with status {}", result.exit_code));
        let tail: String = stderr
            .chars()
            .rev()
            .take(4000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(Fail::failed(format!(
            "restore into {} failed: {reason}{}\n{tail}",
            ctx.target,
            if ctx.engine == Engine::Postgres {
                " (PostgreSQL rolled the restore back: nothing was changed)"
            } else {
                ""
            }
        )));
    }
    if source == RestoreSource::ContainerFile && out.get("restored") != Some("yes") {
        return Err(Fail::failed(format!(
            "the restore script in {} ended without confirming the restore",
            ctx.target
        )));
    }
    println!(
        "restored {what} into {} in {:.1}s",
        ctx.target,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn info(ctx: &Ctx, clock: &Clock, timeout: Option<Duration>) -> Result<(), Fail> {
    let out = ctx.facts(ctx.hook.info_script(), timeout).await?;
    let field = |k: &str| out.get(k).unwrap_or("unknown").to_string();
    println!("hook:            {}", ctx.step_name);
    println!("target:          {}", ctx.target);
    println!("database:        {}", field("database"));
    println!("server:          {}", field("server_version"));
    println!("client:          {}", field("client_version"));
    println!("dump tool:       {}", field("dump_tool_version"));
    let size = out
        .get("db_size")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or_else(|| "unknown".to_string(), human_bytes);
    println!("database size:   {size}");
    println!("dump file:       {}", ctx.hook.dump_path());
    match dump_file(ctx, &out)? {
        Some(file) => {
            let age = clock.now_utc() - file.mtime;
            println!(
                "dump size:       {} ({} bytes, {})",
                human_bytes(file.size),
                file.size,
                match file.format {
                    DumpFormat::Gzip => "gzip",
                    DumpFormat::Zstd => "zstd",
                    DumpFormat::PgCustom => "pg_dump custom",
                    DumpFormat::Plain => "plain",
                }
            );
            println!(
                "dump written:    {} ({} ago)",
                file.mtime.format("%Y-%m-%dT%H:%M:%SZ"),
                human_age(age)
            );
        }
        None => println!(
            "dump size:       none yet (run `backup-ns {} dump`)",
            ctx.engine.name()
        ),
    }
    Ok(())
}

async fn shell(ctx: &Ctx) -> Result<(), Fail> {
    crate::cluster::tty::shell(
        &ctx.exec,
        &ctx.target,
        ctx.hook.shell_script(std::io::stdin().is_terminal()),
    )
    .await
    .map_err(|e| Fail::failed(e.to_string()))
    .and_then(|code| {
        if code == 0 {
            Ok(())
        } else {
            Err(Fail(
                Exit::Failure,
                format!("the shell exited with status {code}"),
            ))
        }
    })
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// kubectl-style ages: `45s`, `12m`, `5h3m`, `3d4h`, `267d`.
pub fn human_age(age: chrono::TimeDelta) -> String {
    let s = age.num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        86_400..864_000 => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_carry_namespace_dump_time_engine_and_real_suffix() {
        let at = chrono::DateTime::from_timestamp(1_736_378_270, 0).unwrap();
        assert_eq!(
            download_name("go-starter-dev", at, Engine::Postgres, DumpFormat::Gzip),
            "go-starter-dev_2025-01-08T23-17-50Z_postgres_dump.sql.gz"
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_age(chrono::TimeDelta::seconds(59)), "59s");
        assert_eq!(human_age(chrono::TimeDelta::seconds(7_500)), "2h5m");
        assert_eq!(human_age(chrono::TimeDelta::days(267)), "267d");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
