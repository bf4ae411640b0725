//! `backup-ns postgres|mysql dump|download|restore|info|shell`: the on-call database commands.
//!
//! Settings come from `--plan FILE` (the hook `--hook NAME|pre[N]|post[N]` names, or the plan's only hook of the
//! engine's type; see [`crate::plan::hook_selector`]) or, without a plan, from the original's `BAK_*` environment
//! (`kubectl envx cronjob/backup -- backup-ns postgres download`), through `settings::load_effective`, so these
//! commands and `run` agree on every parameter. This file picks the hook, connects, asks on the terminal and
//! prints; the work (scripts, streaming, partial files, signals, restore) is [`crate::hooks::dbops`].

use crate::Exit;
use crate::clock::Clock;
use crate::cluster::{Cluster, ConnectOptions};
use crate::engine::steps;
use crate::hooks::dbops::{
    self, DbHook, DbOpsError, DbSession, DownloadOptions, PreparedRestore, StopSignals, human_bytes,
};
use crate::ops::age::human_age;
use crate::plan::model::{self, DbDump, HookAction, HookKind};
use crate::plan::{HookSelector, SelectError, select_hook};
use crate::settings::{self, Overrides};
use crate::vocab::exec::PodResolver;
use crate::vocab::workload::ContainerRef;
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::time::Duration;

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
    /// Skip verification (the size is still checked). Verification compares the SHA-256 of the bytes written
    /// with the dump's record (DUMP.sha256, written by the dump after its `gzip -t`/`zstd -t` passed in the
    /// container), so nothing else runs there. Without a record, or with --check-in-place, a second exec hashes
    /// the container's file (`openssl` or `sha256sum` there) and tests a gzip/zstd dump in place, beside the
    /// stream; a container without those tools gets a local gzip decode instead, and the summary says so.
    #[arg(long)]
    pub no_verify: bool,
    /// Ignore the dump's record: hash and test the container's file in place now, beside the stream (slower:
    /// `gzip -t` inflates the whole dump in the container).
    #[arg(long, conflicts_with = "no_verify")]
    pub check_in_place: bool,
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

/// Everything a subcommand needs: the database hook bound to its container, and the cluster it is reached through.
struct Ctx {
    /// The plan hook in use, named as `run` names its step (`pre[1]/postgres/orders`).
    step_name: String,
    hook: DbHook,
    timeout: Duration,
    target: ContainerRef,
    exec: crate::cluster::exec::KubeExec,
    cluster: Cluster,
}

impl Ctx {
    fn session(&self) -> DbSession<'_> {
        DbSession {
            hook: self.hook.clone(),
            target: self.target.clone(),
            exec: &self.exec,
        }
    }
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
        Err(err) => {
            eprintln!("error: {err}");
            err.exit()
        }
    }
}

async fn dispatch(engine: Engine, args: DbArgs) -> Result<(), DbOpsError> {
    let clock = Clock::from_env().map_err(|e| DbOpsError::Refused(e.to_string()))?;
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
fn selection_failure(engine: Engine, error: &SelectError) -> DbOpsError {
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
    DbOpsError::Refused(format!("{error}{hint}"))
}

async fn prepare(engine: Engine, common: &CommonArgs) -> Result<Ctx, DbOpsError> {
    if common.hook.is_some() && common.plan.is_none() {
        return Err(DbOpsError::Refused(
            "--hook (or BACKUP_NS_HOOK) picks a hook of a plan, so it needs --plan FILE (or BACKUP_NS_PLAN); the BAK_* variables describe a single database".into(),
        ));
    }
    let overrides = Overrides {
        namespace: common.namespace.clone(),
        ..Overrides::default()
    };
    let loaded =
        settings::load_effective(common.plan.as_deref(), &settings::process_env(), &overrides)
            .map_err(|diags| {
                DbOpsError::Refused(format!(
                    "cannot load the settings:\n{}",
                    diags.render(100).trim_end()
                ))
            })?;
    let plan = loaded.plan;
    let selected = select_hook(&plan, engine.hook_kind(), common.hook.as_ref())
        .map_err(|e| selection_failure(engine, &e))?;
    let (hook, dump, hook_timeout) = db_hook(selected.hook).ok_or_else(|| {
        DbOpsError::Refused(format!(
            "hook `{}` is not a database hook",
            selected.selector()
        ))
    })?;
    let failed = |e: &dyn std::fmt::Display| DbOpsError::Failed(e.to_string());
    let cluster = Cluster::connect(&ConnectOptions {
        kubeconfig: common.kubeconfig.clone(),
        context: common.context.clone(),
        namespace: common.namespace.clone().or(plan.namespace.clone()),
        ..Default::default()
    })
    .await
    .map_err(|e| failed(&e))?;
    let target = cluster
        .pod_resolver()
        .resolve(cluster.namespace(), &dump.workload, &dump.container)
        .await
        .map_err(|e| failed(&e))?;
    Ok(Ctx {
        step_name: steps::step_name(selected.hook, selected.position),
        hook,
        timeout: common.timeout.unwrap_or(hook_timeout),
        target,
        exec: cluster.container_exec(),
        cluster,
    })
}

async fn dump(ctx: &Ctx) -> Result<(), DbOpsError> {
    let report = ctx.session().dump(&ctx.step_name, ctx.timeout).await?;
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

async fn download(ctx: &Ctx, args: &DownloadArgs) -> Result<(), DbOpsError> {
    // Installed before anything needs cleaning up: a signal then stops the download and removes its partial file.
    let mut stop = StopSignals::install();
    let options = DownloadOptions {
        output_dir: args.output_dir.clone(),
        output: args.output.clone(),
        force: args.force,
        verify: !args.no_verify,
        in_place: args.check_in_place,
        sync: !args.no_sync,
    };
    let announce = |start: &dbops::download::Starting<'_>| {
        eprintln!(
            "downloading {} ({}) from {} to {}",
            start.dump_path,
            human_bytes(start.size),
            start.target,
            start.dest.display()
        );
        (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(start.size);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        })
    };
    let session = ctx.session();
    let done =
        dbops::download::download(&session, &ctx.cluster, &options, announce, stop.recv()).await?;
    eprintln!("{}", done.summary());
    println!("{}", done.path.display());
    for line in dbops::download::import_hint(&ctx.hook, &done.path, done.format) {
        println!("{line}");
    }
    Ok(())
}

/// Asks on the terminal; without one, refuses unless `--yes` was given.
fn confirm(question: &str) -> Result<(), DbOpsError> {
    if !std::io::stdin().is_terminal() {
        return Err(DbOpsError::Refused(format!(
            "{question}\nrefusing without confirmation: stdin is not a terminal; pass --yes to restore anyway"
        )));
    }
    eprint!("{question}\ntype `yes` to continue: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| DbOpsError::Refused(format!("cannot read the answer: {e}")))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(DbOpsError::Refused(
            "not confirmed; nothing was changed".into(),
        ))
    }
}

async fn restore(
    ctx: &Ctx,
    args: &RestoreArgs,
    timeout: Option<Duration>,
) -> Result<(), DbOpsError> {
    let session = ctx.session();
    let prepared = PreparedRestore::new(&session, args.from_local.as_deref()).await?;
    if !args.yes {
        confirm(&prepared.question(&session))?;
    }
    let restored = prepared.run(&session, timeout).await?;
    println!(
        "restored {} into {} in {:.1}s",
        restored.what,
        ctx.target,
        restored.elapsed.as_secs_f64()
    );
    Ok(())
}

async fn info(ctx: &Ctx, clock: &Clock, timeout: Option<Duration>) -> Result<(), DbOpsError> {
    let info = dbops::info::info(&ctx.session(), timeout).await?;
    let unknown = |fact: Option<String>| fact.unwrap_or_else(|| "unknown".to_string());
    println!("hook:            {}", ctx.step_name);
    println!("target:          {}", ctx.target);
    println!("database:        {}", unknown(info.database));
    println!("server:          {}", unknown(info.server_version));
    println!("client:          {}", unknown(info.client_version));
    println!("dump tool:       {}", unknown(info.dump_tool_version));
    println!(
        "database size:   {}",
        unknown(info.db_size.map(human_bytes))
    );
    println!("dump file:       {}", ctx.hook.dump_path());
    match info.dump {
        Some(file) => {
            println!(
                "dump size:       {} ({} bytes, {})",
                human_bytes(file.size),
                file.size,
                file.format.describe()
            );
            println!(
                "dump written:    {} ({} ago)",
                file.mtime.format("%Y-%m-%dT%H:%M:%SZ"),
                human_age(clock.now_utc() - file.mtime)
            );
        }
        None => println!(
            "dump size:       none yet (run `backup-ns {} dump`)",
            ctx.hook.engine_name()
        ),
    }
    Ok(())
}

async fn shell(ctx: &Ctx) -> Result<(), DbOpsError> {
    let code = crate::cluster::tty::shell(
        &ctx.exec,
        &ctx.target,
        ctx.hook.shell_script(std::io::stdin().is_terminal()),
    )
    .await
    .map_err(|e| DbOpsError::Failed(e.to_string()))?;
    if code == 0 {
        Ok(())
    } else {
        Err(DbOpsError::Failed(format!(
            "the shell exited with status {code}"
        )))
    }
}
