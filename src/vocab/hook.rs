//! One hook type: what a plan's `hooks.pre`/`hooks.post` entries mean once validated, and what `hooks/` runs.
//!
//! `plan` builds these (every default applied, every check passed; the file format itself belongs to
//! `plan::raw`), the engine sequences them, and `hooks/` executes them directly: the script generators are
//! methods on these types. The plain `Serialize` prints a validated hook the way a plan file writes it
//! (`plan show`, the `backup-ns.sh/plan` annotation), so a printed plan loads back to the same plan.

use crate::vocab::workload::WorkloadRef;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The hook types, in the order plans and messages list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookKind {
    Postgres,
    Mysql,
    Rhai,
    Exec,
}

impl HookKind {
    pub const ALL: [&'static str; 4] = ["postgres", "mysql", "rhai", "exec"];

    /// The `type` as written in plans.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Postgres => "postgres",
            HookKind::Mysql => "mysql",
            HookKind::Rhai => "rhai",
            HookKind::Exec => "exec",
        }
    }

    pub fn parse(s: &str) -> Option<HookKind> {
        match s {
            "postgres" => Some(HookKind::Postgres),
            "mysql" => Some(HookKind::Mysql),
            "rhai" => Some(HookKind::Rhai),
            "exec" => Some(HookKind::Exec),
            _ => None,
        }
    }
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One hook: what it does, how long it may take, and what a failure means.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// Unique within its plan: the database commands pick a hook with `--hook NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub action: HookAction,
    #[serde(with = "super::duration")]
    pub timeout: Duration,
    pub on_error: OnError,
    /// Post-hooks only; `None` means the default, `success`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
}

impl Hook {
    /// The default timeout for each hook type: dumps can take long, scripts and commands should not.
    pub fn default_timeout(kind: HookKind) -> Duration {
        match kind {
            HookKind::Postgres | HookKind::Mysql => Duration::from_secs(3600),
            HookKind::Rhai | HookKind::Exec => Duration::from_secs(600),
        }
    }

    /// `when` as it applies: post-hooks default to `success`.
    pub fn when(&self) -> When {
        self.when.unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum HookAction {
    /// Dump PostgreSQL with `pg_dump` inside the database container.
    #[serde(serialize_with = "db_hook")]
    Postgres(PostgresHook),
    /// Dump MySQL or MariaDB with `mysqldump`/`mariadb-dump` inside the database container.
    #[serde(serialize_with = "db_hook")]
    Mysql(MysqlHook),
    /// Run a rhai script (sandboxed) that may exec into containers.
    Rhai(RhaiHook),
    /// Run a plain command in a container.
    Exec(ExecHook),
}

impl HookAction {
    pub fn kind(&self) -> HookKind {
        match self {
            HookAction::Postgres(_) => HookKind::Postgres,
            HookAction::Mysql(_) => HookKind::Mysql,
            HookAction::Rhai(_) => HookKind::Rhai,
            HookAction::Exec(_) => HookKind::Exec,
        }
    }

    /// The database settings of a postgres or mysql hook.
    pub fn db(&self) -> Option<&DbDump> {
        match self {
            HookAction::Postgres(p) => Some(&p.dump),
            HookAction::Mysql(m) => Some(&m.dump),
            HookAction::Rhai(_) | HookAction::Exec(_) => None,
        }
    }

    /// A database hook with `mode: hot`: it holds a session across the snapshot instead of dumping before it.
    pub fn is_hot(&self) -> bool {
        self.db().is_some_and(|d| d.mode == DbMode::Hot)
    }

    /// The literal password of a dump hook (empty: none is set).
    pub fn password(&self) -> Option<&str> {
        match self {
            HookAction::Postgres(p) => Some(p.dump.password.as_str()),
            HookAction::Mysql(m) => Some(m.dump.password.as_str()),
            HookAction::Rhai(_) | HookAction::Exec(_) => None,
        }
        .filter(|p| !p.is_empty())
    }
}

/// What the database dump hooks share. `host`, `user`, `database` and `password` may contain `${VAR}`
/// references that the target container's env resolves; `dump_file` and `extra_args` are always literal.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbDump {
    /// The workload to exec into.
    #[serde(serialize_with = "display")]
    pub workload: WorkloadRef,
    pub container: String,
    /// Absolute path of the dump inside the container (it should live on a snapshotted PVC).
    pub dump_file: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Empty: no password is set (the container's own auth applies).
    pub password: String,
    pub database: String,
    /// `dump` (default): write a dump before the snapshot. `hot`: no dump; one session holds the database in a
    /// backup-safe state across the snapshot. The dump-only fields below are unused in hot mode.
    #[serde(skip_serializing_if = "DbMode::is_dump")]
    pub mode: DbMode,
    /// Fail before dumping when the dump directory's disk is fuller than this (percent used).
    pub threshold: u8,
    pub compression: Compression,
    /// Extra arguments for the dump tool, each quoted as one word.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
}

/// How a database hook makes the snapshot consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbMode {
    /// A dump is written onto the volume before the snapshot (what the original did).
    #[default]
    Dump,
    /// No dump: one database session is held across the snapshot (PostgreSQL `pg_backup_start`/`pg_backup_stop`,
    /// MySQL/MariaDB `FLUSH TABLES WITH READ LOCK`), for databases too large to dump every night.
    Hot,
}

impl DbMode {
    pub fn is_dump(&self) -> bool {
        *self == DbMode::Dump
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DbMode::Dump => "dump",
            DbMode::Hot => "hot",
        }
    }
}

/// Defaults of a database hook, as in the original's `BAK_DB_*` variables: what validation fills in for an
/// absent key, and what [`PostgresHook::new`] / [`MysqlHook::new`] start from.
pub struct DbDefaults {
    pub container: &'static str,
    pub data_dir: &'static str,
    pub port: u16,
    pub user: &'static str,
    pub password: &'static str,
    pub database: &'static str,
}

pub const POSTGRES: DbDefaults = DbDefaults {
    container: "postgres",
    data_dir: "/var/lib/postgresql/data",
    port: 5432,
    user: "${POSTGRES_USER}",
    password: "${POSTGRES_PASSWORD}",
    database: "${POSTGRES_DB}",
};

pub const MYSQL: DbDefaults = DbDefaults {
    container: "mysql",
    data_dir: "/var/lib/mysql",
    port: 3306,
    user: "root",
    password: "${MYSQL_ROOT_PASSWORD}",
    database: "${MYSQL_DATABASE}",
};

/// Default disk-usage threshold in percent before a dump is attempted.
pub const DEFAULT_THRESHOLD: u8 = 90;
/// Default database host: the database in the container the hook execs into.
pub const DEFAULT_HOST: &str = "127.0.0.1";

impl DbDump {
    /// Every default of `d` for a dump from `workload`.
    pub fn with_defaults(workload: WorkloadRef, d: &DbDefaults) -> DbDump {
        DbDump {
            workload,
            container: d.container.to_string(),
            dump_file: default_dump_file(d, Compression::Gzip),
            host: DEFAULT_HOST.to_string(),
            port: d.port,
            user: d.user.to_string(),
            password: d.password.to_string(),
            database: d.database.to_string(),
            mode: DbMode::Dump,
            threshold: DEFAULT_THRESHOLD,
            compression: Compression::Gzip,
            extra_args: Vec::new(),
        }
    }
}

/// `DATA_DIR/dump.sql` plus the compression's suffix.
pub fn default_dump_file(d: &DbDefaults, compression: Compression) -> String {
    format!("{}/dump.sql{}", d.data_dir, compression.suffix())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostgresHook {
    #[serde(flatten)]
    pub dump: DbDump,
    pub format: PgFormat,
}

impl PostgresHook {
    /// A plain, gzip'd dump with the container's own `POSTGRES_*` credentials (what a plan gets by default).
    pub fn new(workload: WorkloadRef) -> PostgresHook {
        PostgresHook {
            dump: DbDump::with_defaults(workload, &POSTGRES),
            format: PgFormat::Plain,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MysqlHook {
    #[serde(flatten)]
    pub dump: DbDump,
    /// `--default-character-set`.
    pub default_character_set: String,
    /// `--single-transaction` (a consistent InnoDB snapshot without locks); otherwise `--lock-tables`.
    pub single_transaction: bool,
}

/// The character set a MySQL dump uses by default: `utf8mb4`, because the original's `utf8` is MySQL's 3-byte
/// alias and mangles 4-byte characters.
pub const DEFAULT_CHARACTER_SET: &str = "utf8mb4";

impl MysqlHook {
    /// A gzip'd `--single-transaction` dump as root with the container's `MYSQL_ROOT_PASSWORD` (what a plan gets
    /// by default).
    pub fn new(workload: WorkloadRef) -> MysqlHook {
        MysqlHook {
            dump: DbDump::with_defaults(workload, &MYSQL),
            default_character_set: DEFAULT_CHARACTER_SET.to_string(),
            single_transaction: true,
        }
    }
}

/// A rhai hook. The script was read and compiled when the plan was loaded; `source` is that text, so the
/// engine runs exactly what validation checked and never reads the file again.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RhaiHook {
    /// Where the script was found (shown in diagnostics and printed plans).
    pub script: PathBuf,
    #[serde(skip)]
    pub source: String,
    /// Default workload for the script's `exec` calls.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "display_opt"
    )]
    pub workload: Option<WorkloadRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Visible to the script as `args`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecHook {
    #[serde(serialize_with = "display")]
    pub workload: WorkloadRef,
    pub container: String,
    /// Program and arguments (argv; no shell unless the command is one).
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Fail,
    Continue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    #[default]
    Success,
    Always,
}

/// `pg_dump --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PgFormat {
    /// Plain SQL (`--format=plain --clean --if-exists`), so it restores over an existing schema.
    #[default]
    Plain,
    /// `--format=custom`, for `pg_restore` (already compressed; pair with [`Compression::None`]).
    Custom,
}

/// How a dump stream is compressed on its way into the dump file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `gzip -c`, the original's format (`dump.sql.gz`).
    #[default]
    Gzip,
    /// `zstd -q -c`: faster and smaller; falls back to gzip (with a warning) when the container has no `zstd`.
    Zstd,
    /// Written as the tool produced it (for `pg_dump --format=custom`, which compresses itself).
    None,
}

impl Compression {
    /// The dump file suffix this compression gets by default (`.gz`, `.zst`, nothing).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::None => "",
        }
    }
}

/// The keys only a dump uses, for every database hook and for each type: a `mode: hot` hook is refused with any of
/// them (plan validation) and printed without them (so that a printed hot plan loads back).
pub const DUMP_KEYS: &[&str] = &["compression", "dumpFile", "threshold", "extraArgs"];
pub const POSTGRES_DUMP_KEYS: &[&str] = &["format"];
pub const MYSQL_DUMP_KEYS: &[&str] = &["defaultCharacterSet", "singleTransaction"];

/// A database hook as written: in hot mode without the dump's keys (their defaults mean nothing there).
fn db_hook<S: Serializer, T: Serialize + DbHook>(hook: &T, s: S) -> Result<S::Ok, S::Error> {
    if hook.db().mode != DbMode::Hot {
        return hook.serialize(s);
    }
    let mut value = serde_json::to_value(hook).map_err(serde::ser::Error::custom)?;
    if let Some(map) = value.as_object_mut() {
        for key in DUMP_KEYS.iter().chain(T::OWN_DUMP_KEYS) {
            map.remove(*key);
        }
    }
    value.serialize(s)
}

/// What [`db_hook`] needs of a postgres or mysql hook.
trait DbHook {
    const OWN_DUMP_KEYS: &'static [&'static str];
    fn db(&self) -> &DbDump;
}

impl DbHook for PostgresHook {
    const OWN_DUMP_KEYS: &'static [&'static str] = POSTGRES_DUMP_KEYS;
    fn db(&self) -> &DbDump {
        &self.dump
    }
}

impl DbHook for MysqlHook {
    const OWN_DUMP_KEYS: &'static [&'static str] = MYSQL_DUMP_KEYS;
    fn db(&self) -> &DbDump {
        &self.dump
    }
}

fn display<S: Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn display_opt<S: Serializer, T: std::fmt::Display>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hot_hook_prints_without_the_dump_keys_and_a_dump_hook_without_its_mode() {
        let mut pg = PostgresHook::new("statefulset/db".parse().unwrap());
        let dump = serde_json::to_value(HookAction::Postgres(pg.clone())).unwrap();
        assert_eq!(dump["type"], "postgres");
        assert_eq!(dump["compression"], "gzip");
        assert!(dump.get("mode").is_none(), "{dump}");
        pg.dump.mode = DbMode::Hot;
        let hot = serde_json::to_value(HookAction::Postgres(pg)).unwrap();
        assert_eq!(hot["type"], "postgres");
        assert_eq!(hot["mode"], "hot");
        assert_eq!(hot["workload"], "statefulset/db");
        for key in DUMP_KEYS.iter().chain(POSTGRES_DUMP_KEYS) {
            assert!(hot.get(*key).is_none(), "{key} in {hot}");
        }
        let mut my = MysqlHook::new("statefulset/db".parse().unwrap());
        my.dump.mode = DbMode::Hot;
        let hot = serde_json::to_value(HookAction::Mysql(my)).unwrap();
        assert!(hot.get("singleTransaction").is_none() && hot.get("dumpFile").is_none());
    }

    #[test]
    fn kinds_parse_what_they_print() {
        for name in HookKind::ALL {
            assert_eq!(HookKind::parse(name).map(HookKind::as_str), Some(name));
        }
        assert_eq!(HookKind::parse("backup"), None);
    }
}
