//! The `hooks` section as written: `pre` and `post` lists of hooks, each with a `type` that decides which
//! further keys it takes.

use super::{
    Choice, Choices, DurationString, FromNode, HookNameString, JsonMap, Keys, Spanned,
    WorkloadString, field, mapping, raw_mapping, spanned, unknown_keys,
};
use crate::plan::diag::Collector;
use crate::plan::node::{Key, Node, NodeKind};
use crate::vocab::hook::{Compression, DbMode, HookKind, OnError, PgFormat, When};
use std::collections::BTreeMap;

impl Choices for OnError {
    const NAME: &'static str = "OnError";
    const CHOICES: &'static [(&'static str, Self)] =
        &[("fail", OnError::Fail), ("continue", OnError::Continue)];
}

impl Choices for When {
    const NAME: &'static str = "When";
    const CHOICES: &'static [(&'static str, Self)] =
        &[("success", When::Success), ("always", When::Always)];
}

impl Choices for PgFormat {
    const NAME: &'static str = "PgFormat";
    const CHOICES: &'static [(&'static str, Self)] =
        &[("plain", PgFormat::Plain), ("custom", PgFormat::Custom)];
}

impl Choices for DbMode {
    const NAME: &'static str = "DbMode";
    const CHOICES: &'static [(&'static str, Self)] =
        &[("dump", DbMode::Dump), ("hot", DbMode::Hot)];
}

impl Choices for Compression {
    const NAME: &'static str = "Compression";
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
        ("none", Compression::None),
    ];
}

raw_mapping! {
    /// Hooks run in order before (`pre`) and after (`post`) the snapshots.
    #[schemars(deny_unknown_fields)]
    pub struct Hooks in "hooks" {
        /// Run before the snapshots; a failure stops the backup unless `onError: continue`.
        "pre" => pre: HookList,
        /// Run after the snapshots.
        "post" => post: HookList,
    }
}

/// A list of hooks; items that are not hooks are reported and left out.
#[derive(Debug, Clone, Default, PartialEq, schemars::JsonSchema)]
#[schemars(transparent)]
pub struct HookList(pub Vec<Spanned<Hook>>);

impl FromNode for HookList {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        match &node.kind {
            NodeKind::Seq(items) => Some(HookList(
                items
                    .iter()
                    .filter_map(|n| spanned(n, "a hook", cx))
                    .collect(),
            )),
            other => {
                cx.wrong_type(
                    node.span.clone(),
                    other.type_name(),
                    "a list of hooks",
                    &format!("hooks.{what}"),
                    "each hook is a mapping with a `type`",
                );
                None
            }
        }
    }
}

/// One hook. `type` picks the action; `name`, `timeout`, `onError` and (post-hooks only) `when` apply to all.
#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Hook {
    #[schemars(skip)]
    pub keys: Keys,
    /// Optional name (DNS-1123 label, unique within the plan): the database commands pick the hook with
    /// `--hook NAME`, and the run summary shows it.
    #[schemars(with = "Option<HookNameString>")]
    pub name: Option<Spanned<String>>,
    /// `type` as written (the schema describes it through the action's tag).
    #[schemars(skip)]
    pub kind: Option<Spanned<String>>,
    /// The type's own keys; `None` when `type` is absent or unknown.
    #[schemars(flatten, with = "HookAction")]
    pub action: Option<HookAction>,
    /// How long the hook may run (e.g. `30m`); default 1h for dumps, 10m otherwise.
    #[schemars(with = "Option<DurationString>")]
    pub timeout: Option<Spanned<super::DurationText>>,
    /// `fail` (default) stops the backup; `continue` logs and goes on.
    #[schemars(rename = "onError")]
    pub on_error: Option<Spanned<Choice<OnError>>>,
    /// Post-hooks only: run after a successful backup (`success`, default) or always.
    pub when: Option<Spanned<Choice<When>>>,
}

/// The keys every hook takes, whatever its type.
pub const COMMON_KEYS: &[&str] = &["name", "type", "timeout", "onError", "when"];

#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
#[schemars(tag = "type", rename_all = "lowercase")]
pub enum HookAction {
    /// Dump PostgreSQL with `pg_dump` inside the database container.
    Postgres(PostgresHook),
    /// Dump MySQL or MariaDB with `mysqldump` inside the database container.
    Mysql(MysqlHook),
    /// Run a rhai script (sandboxed) that may exec into containers.
    Rhai(RhaiHook),
    /// Run a plain command in a container.
    Exec(ExecHook),
}

impl FromNode for Hook {
    /// Reads the common keys, then the keys of its `type`. Unknown keys are only judged once the type is
    /// known (what is unknown depends on it).
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        let (entries, keys) = mapping(node, what, cx)?;
        let name = field(entries, "name", cx);
        let kind: Option<Spanned<String>> = field(entries, "type", cx);
        let timeout = field(entries, "timeout", cx);
        let on_error = field(entries, "onError", cx);
        let when = field(entries, "when", cx);
        let action = kind
            .as_ref()
            .and_then(|k| HookKind::parse(k))
            .map(|k| HookAction::read(k, entries, &keys, cx));
        Some(Hook {
            keys,
            name,
            kind,
            action,
            timeout,
            on_error,
            when,
        })
    }
}

impl HookAction {
    fn read(
        kind: HookKind,
        entries: &[(Key, Node)],
        keys: &Keys,
        cx: &mut Collector,
    ) -> HookAction {
        let what = format!("{} hook", kind.as_str());
        let (action, own): (HookAction, Vec<&str>) = match kind {
            HookKind::Postgres => (
                HookAction::Postgres(PostgresHook {
                    format: field(entries, "format", cx),
                    dump: DbDump::read(entries, keys.clone(), cx),
                }),
                [PostgresHook::KEYS, DbDump::KEYS].concat(),
            ),
            HookKind::Mysql => (
                HookAction::Mysql(MysqlHook {
                    default_character_set: field(entries, "defaultCharacterSet", cx),
                    single_transaction: field(entries, "singleTransaction", cx),
                    dump: DbDump::read(entries, keys.clone(), cx),
                }),
                [MysqlHook::KEYS, DbDump::KEYS].concat(),
            ),
            HookKind::Rhai => (
                HookAction::Rhai(RhaiHook::read(entries, keys.clone(), cx)),
                RhaiHook::KEYS.to_vec(),
            ),
            HookKind::Exec => (
                HookAction::Exec(ExecHook::read(entries, keys.clone(), cx)),
                ExecHook::KEYS.to_vec(),
            ),
        };
        let accepted = [COMMON_KEYS, &own].concat();
        unknown_keys(entries, &accepted, &what, cx);
        action
    }
}

/// A `postgres` hook's own keys.
#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct PostgresHook {
    /// `plain` SQL (default, like the original) or pg_dump's `custom` archive format.
    pub format: Option<Spanned<Choice<PgFormat>>>,
    #[schemars(flatten)]
    pub dump: DbDump,
}

impl PostgresHook {
    pub const KEYS: &'static [&'static str] = &["format"];
}

/// A `mysql` hook's own keys.
#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct MysqlHook {
    /// `--default-character-set` for mysqldump (default `utf8mb4`).
    #[schemars(rename = "defaultCharacterSet")]
    pub default_character_set: Option<Spanned<String>>,
    /// Use `--single-transaction` (default; consistent InnoDB dumps without table locks) instead of
    /// `--lock-tables`.
    #[schemars(rename = "singleTransaction")]
    pub single_transaction: Option<Spanned<bool>>,
    #[schemars(flatten)]
    pub dump: DbDump,
}

impl MysqlHook {
    pub const KEYS: &'static [&'static str] = &["defaultCharacterSet", "singleTransaction"];
}

raw_mapping! {
    /// Options shared by the database dump hooks.
    pub struct DbDump in "a database hook" {
        /// Workload to exec into: `deployment/NAME`, `statefulset/NAME` or `pod/NAME`.
        #[schemars(with = "WorkloadString")]
        "workload" => workload: String,
        /// Container in that workload's pod (default `postgres` / `mysql`).
        "container" => container: String,
        /// `dump` (default) writes a dump onto the volume before the snapshot. `hot` writes none: one session
        /// holds the database backup-safe across the snapshot (PostgreSQL `pg_backup_start`/`pg_backup_stop`,
        /// its backup_label recorded on the snapshot; MySQL/MariaDB `FLUSH TABLES WITH READ LOCK`). Pre-hooks
        /// only; the dump keys (`compression`, `dumpFile`, `threshold`, `extraArgs`, `format`,
        /// `defaultCharacterSet`, `singleTransaction`) do not apply.
        "mode" => mode: Choice<DbMode>,
        /// `gzip` (default), `zstd` or `none`.
        "compression" => compression: Choice<Compression>,
        /// Absolute path of the dump inside the container; it should live on a snapshotted PVC.
        "dumpFile" => dump_file: String,
        /// Database host as seen from the container (default `127.0.0.1`).
        "host" => host: String,
        /// Database port (default 5432 / 3306).
        #[schemars(with = "Option<u16>")]
        "port" => port: i128,
        /// Evaluated inside the container, so `${POSTGRES_USER}` reads the container's own env.
        "user" => user: String,
        /// Prefer an env reference such as `${POSTGRES_PASSWORD}`; literals draw a warning.
        "password" => password: String,
        /// Database to dump.
        "database" => database: String,
        /// Fail before dumping when the dump directory's disk is fuller than this (percent, 1..=100).
        #[schemars(with = "Option<u8>")]
        "threshold" => threshold: Percent,
        /// Extra arguments appended to the dump command (each quoted safely).
        #[schemars(with = "Option<Vec<String>>")]
        "extraArgs" => extra_args: Vec<Spanned<String>>,
    }
}

/// A percentage as written (checked for range by validation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub i128);

impl FromNode for Percent {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        match node.kind {
            NodeKind::Int(i) => Some(Percent(i)),
            ref other => {
                cx.wrong_type(
                    node.span.clone(),
                    other.type_name(),
                    "a percentage (integer 1..=100)",
                    what,
                    "",
                );
                None
            }
        }
    }
}

raw_mapping! {
    /// A `rhai` hook's own keys.
    pub struct RhaiHook in "rhai hook" {
        /// Default workload for the script's `exec` calls.
        #[schemars(with = "Option<WorkloadString>")]
        "workload" => workload: String,
        /// Default container for the script's `exec` calls.
        "container" => container: String,
        /// Inline arguments, visible to the script as `args`.
        #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
        "args" => args: JsonMap,
        /// Script path, resolved relative to the plan file's dir, then its `hooks/`, then `..`, then `../hooks/`.
        #[schemars(with = "String")]
        "script" => script: String,
    }
}

raw_mapping! {
    /// An `exec` hook's own keys.
    pub struct ExecHook in "exec hook" {
        #[schemars(with = "WorkloadString")]
        "workload" => workload: String,
        #[schemars(with = "String")]
        "container" => container: String,
        /// Program and arguments (not run through a shell unless you write `["sh", "-c", "..."]`).
        #[schemars(with = "Vec<String>")]
        "command" => command: Vec<Spanned<String>>,
    }
}
