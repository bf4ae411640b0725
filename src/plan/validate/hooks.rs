//! Validates `hooks`: each hook's type, name (unique across `pre` and `post`), timeout, `onError`/`when`, and
//! the keys of its type with their defaults. Rhai scripts are found and read here, once, and compiled with the
//! engine's own compiler; the text then travels in the validated hook.

use super::{Context, duration, int, json_map, missing, name_check};
use crate::plan::diag::{Code, Collector, Diag, SourceFile};
use crate::plan::model::{Hooks, is_env_ref};
use crate::plan::raw::{self, Spanned};
use crate::plan::rules;
use crate::vocab::hook::{
    DEFAULT_CHARACTER_SET, DEFAULT_HOST, DEFAULT_THRESHOLD, DUMP_KEYS, DbDefaults, DbDump, DbMode,
    ExecHook, Hook, HookAction, HookKind, MYSQL, MYSQL_DUMP_KEYS, MysqlHook, OnError, POSTGRES,
    POSTGRES_DUMP_KEYS, PgFormat, PostgresHook, RhaiHook, default_dump_file,
};
use crate::vocab::suggest::suggest;
use crate::vocab::workload::WorkloadRef;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub fn validate(raw: &Spanned<raw::Hooks>, ctx: &Context<'_>, cx: &mut Collector) -> Hooks {
    // Hook names are unique across both lists: `--hook NAME` must pick exactly one.
    let mut names = HashMap::new();
    let mut list = |hooks: &Option<Spanned<raw::HookList>>, post: bool, cx: &mut Collector| {
        hooks.as_ref().map_or_else(Vec::new, |l| {
            l.0.iter()
                .filter_map(|h| hook(h, post, &mut names, ctx, cx))
                .collect()
        })
    };
    let pre = list(&raw.pre, false, cx);
    let post = list(&raw.post, true, cx);
    Hooks { pre, post }
}

fn hook(
    raw: &Spanned<raw::Hook>,
    post: bool,
    names: &mut HashMap<String, Range<usize>>,
    ctx: &Context<'_>,
    cx: &mut Collector,
) -> Option<Hook> {
    let keys = &raw.keys;
    let anchor = keys.first().unwrap_or(raw.span.clone());
    // Before `type`, so a duplicate name is reported even when the hook has other problems.
    let name = raw.name.as_ref().map(|n| hook_name(n, names, cx));
    let Some(type_name) = &raw.kind else {
        missing(
            cx,
            keys,
            &anchor,
            "a hook",
            "type",
            "set `type` to one of postgres, mysql, rhai, exec",
        );
        return None;
    };
    let Some(kind) = HookKind::parse(type_name) else {
        let help = match suggest(type_name, HookKind::ALL) {
            Some(s) => format!("did you mean `{s}`? hook types: postgres, mysql, rhai, exec"),
            None => "hook types: postgres, mysql, rhai, exec".to_string(),
        };
        cx.err(
            Code::UnknownHookType,
            type_name.span.clone(),
            format!("unknown hook type `{}`", type_name.value),
            "unknown hook type",
            &help,
        );
        return None;
    };
    let timeout = duration(cx, &raw.timeout, "timeout", Hook::default_timeout(kind));
    let on_error = raw.on_error.as_ref().map_or(OnError::Fail, |c| c.value.0);
    let when = if post {
        raw.when.as_ref().map(|w| w.value.0)
    } else {
        if keys.has_value("when") {
            cx.err(
                Code::WhenOnPreHook,
                keys.span_of("when").unwrap_or(anchor.clone()),
                "`when` is only allowed on post-hooks".into(),
                "pre-hooks always run",
                "remove `when`, or move this hook to `hooks.post`",
            );
        }
        None
    };
    let what = format!("{} hook", kind.as_str());
    let at = Place {
        keys,
        anchor: &anchor,
        what: &what,
    };
    let raw_action = raw.action.as_ref()?;
    hot_mode(raw_action, post, &at, cx);
    let action = match raw_action {
        raw::HookAction::Postgres(p) => postgres(p, &at, cx).map(HookAction::Postgres),
        raw::HookAction::Mysql(m) => mysql(m, &at, cx).map(HookAction::Mysql),
        raw::HookAction::Rhai(r) => rhai(r, &at, ctx, cx).map(HookAction::Rhai),
        raw::HookAction::Exec(e) => exec(e, &at, cx).map(HookAction::Exec),
    };
    Some(Hook {
        name,
        action: action?,
        timeout,
        on_error,
        when,
    })
}

/// A `mode: hot` database hook: a pre-hook (its session spans the snapshot, so it must open before it), and
/// none of the dump's keys (each one set is reported where it is written).
fn hot_mode(raw: &raw::HookAction, post: bool, at: &Place<'_>, cx: &mut Collector) {
    let (mode, own) = match raw {
        raw::HookAction::Postgres(p) => (&p.dump.mode, POSTGRES_DUMP_KEYS),
        raw::HookAction::Mysql(m) => (&m.dump.mode, MYSQL_DUMP_KEYS),
        raw::HookAction::Rhai(_) | raw::HookAction::Exec(_) => return,
    };
    let Some(mode) = mode.as_ref().filter(|m| m.value.0 == DbMode::Hot) else {
        return;
    };
    if post {
        cx.err(
            Code::HotModePlacement,
            mode.span.clone(),
            format!("a `mode: hot` {} is a post-hook", at.what),
            "post-hooks run after the snapshots",
            "a hot session opens before the snapshots and ends after them: move this hook to `hooks.pre`",
        );
    }
    for key in DUMP_KEYS.iter().chain(own) {
        if let Some(span) = at.keys.span_of(key) {
            cx.err(
                Code::HotModeKey,
                span,
                format!("`{key}` does not apply to a `mode: hot` {}", at.what),
                "only dumps use this",
                &format!(
                    "a hot backup writes no dump: remove `{key}`, or use `mode: dump` (the default) to keep the dump"
                ),
            );
        }
    }
}

/// Where a hook's missing keys are reported, and how the hook is called in messages.
struct Place<'a> {
    keys: &'a raw::Keys,
    anchor: &'a Range<usize>,
    what: &'a str,
}

impl Place<'_> {
    fn missing(&self, cx: &mut Collector, key: &str, help: &str) {
        missing(cx, self.keys, self.anchor, self.what, key, help);
    }
}

/// A hook's optional `name`: a DNS-1123 label, not used by an earlier hook of the plan (`names`: each name's
/// first span, so many hooks stay linear).
fn hook_name(
    name: &Spanned<String>,
    names: &mut HashMap<String, Range<usize>>,
    cx: &mut Collector,
) -> String {
    name_check(
        cx,
        name,
        "hook name",
        rules::dns1123_label,
        "hook names are DNS-1123 labels: lowercase letters, digits and `-`, at most 63 characters",
    );
    match names.get(&name.value) {
        Some(first) => {
            let (line, _) = cx.src.line_col(first.start);
            let d = Diag::error(
                Code::DuplicateHookName,
                format!("hook name `{}` is used twice (first on line {line})", name.value),
            )
            .at(&cx.src, name.span.clone(), "duplicate")
            .also(first.clone(), "first used here")
            .help("hook names are unique within a plan, across `pre` and `post`, so `--hook NAME` picks exactly one; rename one of them");
            cx.diags.push(d);
        }
        None => {
            names.insert(name.value.clone(), name.span.clone());
        }
    }
    name.value.clone()
}

fn workload(
    value: &Option<Spanned<String>>,
    required: Option<&Place<'_>>,
    cx: &mut Collector,
) -> Option<WorkloadRef> {
    let Some(text) = value else {
        if let Some(at) = required {
            at.missing(
                cx,
                "workload",
                "set `workload: deployment/NAME` (or statefulset/NAME, pod/NAME)",
            );
        }
        return None;
    };
    match text.parse::<WorkloadRef>() {
        Ok(w) => {
            let name = Spanned {
                span: text.span.clone(),
                value: w.name.clone(),
            };
            name_check(
                cx,
                &name,
                "workload name",
                rules::dns1123_subdomain,
                "workload names are DNS-1123 names",
            );
            Some(w)
        }
        Err(e) => {
            cx.err(
                Code::BadWorkload,
                text.span.clone(),
                format!("malformed workload reference `{}`", text.value),
                &e.to_string(),
                "write `deployment/NAME`, `statefulset/NAME` or `pod/NAME`",
            );
            None
        }
    }
}

fn container(value: &Spanned<String>, cx: &mut Collector) -> String {
    name_check(
        cx,
        value,
        "container name",
        rules::dns1123_label,
        "container names are DNS-1123 labels",
    );
    value.value.clone()
}

fn db_dump(
    raw: &raw::DbDump,
    d: &DbDefaults,
    at: &Place<'_>,
    cx: &mut Collector,
) -> Option<DbDump> {
    let workload = workload(&raw.workload, Some(at), cx);
    let container = raw
        .container
        .as_ref()
        .map_or_else(|| d.container.to_string(), |c| container(c, cx));
    let compression = raw
        .compression
        .as_ref()
        .map_or_else(Default::default, |c| c.value.0);
    let dump_file = match &raw.dump_file {
        Some(path) => {
            dump_path_check(path, d, cx);
            path.value.clone()
        }
        None => default_dump_file(d, compression),
    };
    let port = int(cx, &raw.port, "port", 1, 65535, Code::OutOfRange).map_or(d.port, |p| p as u16);
    let password = match &raw.password {
        Some(p) => {
            if !p.is_empty() && !is_env_ref(p) {
                cx.warn(
                    Code::LiteralSecret,
                    p.span.clone(),
                    "literal password in the plan".into(),
                    "this secret ends up in Git and in the plan annotation (redacted)",
                    &format!(
                        "reference the container's env instead, e.g. `password: \"{}\"`",
                        d.password
                    ),
                );
            }
            p.value.clone()
        }
        None => d.password.to_string(),
    };
    let mode = raw.mode.as_ref().map_or(DbMode::Dump, |m| m.value.0);
    let threshold = match &raw.threshold {
        Some(t) if (1..=100).contains(&t.value.0) => t.value.0 as u8,
        Some(t) => {
            cx.err(Code::ThresholdRange, t.span.clone(), format!("threshold {} % is out of range", t.value.0), "must be 1..=100", "the threshold is the disk usage in percent above which the dump is refused; the default is 90");
            DEFAULT_THRESHOLD
        }
        None => DEFAULT_THRESHOLD,
    };
    let text = |v: &Option<Spanned<String>>, default: &str| {
        v.as_ref()
            .map_or_else(|| default.to_string(), |s| s.value.clone())
    };
    Some(DbDump {
        workload: workload?,
        container,
        dump_file,
        host: text(&raw.host, DEFAULT_HOST),
        port,
        user: text(&raw.user, d.user),
        password,
        database: text(&raw.database, d.database),
        mode,
        threshold,
        compression,
        extra_args: strings(&raw.extra_args),
    })
}

fn strings(list: &Option<Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
    list.as_ref()
        .map(|l| l.iter().map(|s| s.value.clone()).collect())
        .unwrap_or_default()
}

fn dump_path_check(path: &Spanned<String>, d: &DbDefaults, cx: &mut Collector) {
    let span = path.span.clone();
    if !path.starts_with('/') {
        cx.err(
            Code::BadPath,
            span,
            format!("dump path `{}` is not absolute", path.value),
            "relative path",
            &format!(
                "use an absolute path inside the container, e.g. `{}/dump.sql.gz`",
                d.data_dir
            ),
        );
        return;
    }
    if path.ends_with('/') {
        cx.err(
            Code::BadPath,
            span,
            format!("dump path `{}` is a directory", path.value),
            "needs a file name",
            "end the path with a file name such as `dump.sql.gz`",
        );
        return;
    }
    const USUAL: [&str; 9] = [
        "/var/lib/postgresql/",
        "/var/lib/mysql/",
        "/var/lib/mariadb/",
        "/bitnami/",
        "/data/",
        "/mnt/",
        "/srv/",
        "/backup",
        "/var/backups/",
    ];
    if !USUAL.iter().any(|p| path.starts_with(p)) {
        cx.warn(
            Code::DumpPathUnusual,
            span,
            format!("dump path `{}` is outside the usual data mounts", path.value),
            "may not be on a snapshotted PVC",
            &format!("the dump is only in the backup if this path is on a target PVC; the usual place is under `{}`", d.data_dir),
        );
    }
}

fn postgres(raw: &raw::PostgresHook, at: &Place<'_>, cx: &mut Collector) -> Option<PostgresHook> {
    let format = raw.format.as_ref().map_or(PgFormat::Plain, |f| f.value.0);
    let dump = db_dump(&raw.dump, &POSTGRES, at, cx)?;
    Some(PostgresHook { dump, format })
}

fn mysql(raw: &raw::MysqlHook, at: &Place<'_>, cx: &mut Collector) -> Option<MysqlHook> {
    let default_character_set = raw
        .default_character_set
        .as_ref()
        .map_or_else(|| DEFAULT_CHARACTER_SET.to_string(), |c| c.value.clone());
    // Consistent InnoDB dumps without blocking writers are the safe default; the BAK_* compat layer sets
    // `singleTransaction: false` explicitly to keep the original's `--lock-tables` behaviour.
    let single_transaction = raw.single_transaction.as_ref().is_none_or(|s| s.value);
    let dump = db_dump(&raw.dump, &MYSQL, at, cx)?;
    Some(MysqlHook {
        dump,
        default_character_set,
        single_transaction,
    })
}

fn rhai(
    raw: &raw::RhaiHook,
    at: &Place<'_>,
    ctx: &Context<'_>,
    cx: &mut Collector,
) -> Option<RhaiHook> {
    let workload = workload(&raw.workload, None, cx);
    let container = raw.container.as_ref().map(|c| container(c, cx));
    let args = raw
        .args
        .as_ref()
        .map(|a| json_map(cx, a, "args"))
        .unwrap_or_default();
    let Some(script) = &raw.script else {
        at.missing(cx, "script", "set `script: hooks/NAME.rhai`");
        return None;
    };
    let (path, source) = read_script(script, ctx.base_dir, cx)?;
    Some(RhaiHook {
        script: path,
        source,
        workload,
        container,
        args,
    })
}

/// Finds the script next to the plan, in its `hooks/` dir, in its parent (the repository root when plans live
/// in `plans/`), or in `../hooks/`; reads it and compiles it. Returns where it was found and its text.
fn read_script(
    script: &Spanned<String>,
    base_dir: Option<&Path>,
    cx: &mut Collector,
) -> Option<(PathBuf, String)> {
    let span = script.span.clone();
    let given = Path::new(&script.value);
    let candidates: Vec<PathBuf> = match base_dir {
        _ if given.is_absolute() => vec![given.to_path_buf()],
        Some(base) => vec![
            base.join(given),
            base.join("hooks").join(given),
            base.join("..").join(given),
            base.join("..").join("hooks").join(given),
        ],
        None => vec![given.to_path_buf()],
    };
    let Some(found) = candidates.iter().find(|p| p.is_file()) else {
        let tried: Vec<String> = candidates
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect();
        cx.err(
            Code::HookScriptMissing,
            span,
            format!("rhai script `{}` not found", script.value),
            "no such file",
            &format!("looked for {}", tried.join(", ")),
        );
        return None;
    };
    // Through the same bounded gate as the plan itself (10 MiB, UTF-8, no NUL), so that a hostile script file
    // referenced from a small plan cannot make validate read without limit.
    let text = match crate::plan::read::read_source(found, "rhai script") {
        Ok(source) => source.text.clone(),
        Err(refused) => {
            let help = match refused.code {
                Code::TooLarge => {
                    "a hook script is a few KiB; check that this is the file you meant".to_string()
                }
                _ => refused
                    .help
                    .clone()
                    .unwrap_or_else(|| "check the file".to_string()),
            };
            cx.err(
                refused.code,
                span,
                refused.message.clone(),
                "refused",
                &help,
            );
            return None;
        }
    };
    // The same compiler (and sandbox settings) the engine runs the script with, so validate and run agree.
    if let Err(err) = crate::hooks::rhai::compile_source(&found.display().to_string(), &text) {
        let script_src = SourceFile::new(found.display().to_string(), text);
        let offset = match (err.line, err.column) {
            (0, _) => script_src.text.len(),
            (line, 0) => script_src.offset_of(line, 1),
            (line, col) => script_src.offset_of(line, col),
        };
        let (pline, pcol) = cx.src.line_col(span.start);
        let message = err.message.clone();
        let d = Diag::error(
            Code::HookScriptSyntax,
            format!("rhai script `{}` does not compile: {message}", script.value),
        )
        .at(&script_src, offset..offset, message)
        .help(format!(
            "referenced from {}:{pline}:{pcol}; fix the script's syntax",
            cx.src.name
        ));
        cx.diags.push(d);
        return None;
    }
    Some((found.clone(), text))
}

fn exec(raw: &raw::ExecHook, at: &Place<'_>, cx: &mut Collector) -> Option<ExecHook> {
    let workload = workload(&raw.workload, Some(at), cx);
    let container = match &raw.container {
        Some(c) => Some(container(c, cx)),
        None => {
            at.missing(cx, "container", "name the container to exec into");
            None
        }
    };
    let command = match &raw.command {
        Some(list) if list.first().is_none_or(|s| s.trim().is_empty()) => {
            cx.err(
                Code::EmptyCommand,
                list.span.clone(),
                "exec hook has an empty command".into(),
                "nothing to run",
                "give the program and its arguments, e.g. `command: [sh, -c, \"sync\"]`",
            );
            None
        }
        Some(list) => Some(list.iter().map(|s| s.value.clone()).collect()),
        None => {
            at.missing(
                cx,
                "command",
                "give the program and its arguments, e.g. `command: [sh, -c, \"sync\"]`",
            );
            None
        }
    };
    Some(ExecHook {
        workload: workload?,
        container: container?,
        command: command?,
    })
}
