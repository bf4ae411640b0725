//! The validated plan: what the engine consumes. No spans, every default applied, every check passed.
//!
//! The file format belongs to [`super::raw`]; these types only print the way a plan file is written (plain
//! `Serialize`), for `plan show`/`plan from-env`, the redacted annotation and the settings layering, and a
//! printed plan loads back to the same plan. Hooks are the shared [`crate::vocab::hook`] types.

pub use crate::vocab::hook::{
    Compression, DEFAULT_THRESHOLD, DbDump, DbMode, ExecHook, Hook, HookAction, HookKind,
    MysqlHook, OnError, PgFormat, PostgresHook, RhaiHook, When,
};
use crate::vocab::retention::RetentionPolicy;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Default snapshot name: the original's `{{ .pvcName }}-{{ .timestamp }}-{{ .rand }}`.
pub const DEFAULT_NAME_TEMPLATE: &str = "{pvc}-{timestamp}-{rand}";
/// The hostPath-mounted directory for the lock slot files (as in the original).
pub const DEFAULT_LOCK_DIR: &str = "/mnt/host-backup-locks";

/// A backup plan: which PVCs of which namespace to snapshot, what to run before and after, how long to keep.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Plan name (DNS-1123 label). Written into the `backup-ns.sh/plan` label.
    pub name: String,
    /// Namespace to back up. When absent: `--namespace`, then the in-cluster service-account namespace, then
    /// the kubeconfig context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// PVC names to snapshot (at least one, no duplicates).
    pub targets: Vec<String>,
    pub hooks: Hooks,
    pub snapshot: Snapshot,
    /// A named profile (`standard`, `adhoc` or one from the profiles file) or an inline policy.
    pub retention: Retention,
    pub lock: Lock,
    /// How `backup-ns verify` proves the backups.
    #[serde(skip_serializing_if = "Verify::is_default")]
    pub verify: Verify,
    /// Run every check and print what would be created, but write nothing.
    pub dry_run: bool,
    /// IANA time zone of the plan's calendar; `None`: `TZ`, else UTC. Validation checked the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Variables handed to rhai hooks as `vars`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, serde_json::Value>,
}

/// Hooks run in order before (`pre`) and after (`post`) the snapshots.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<Hook>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<Hook>,
}

/// Which hook list a hook is in: `hooks.pre` (before the snapshots) or `hooks.post` (after them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Pre,
    Post,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

/// Where a hook sits in its plan, written `pre[0]` or `post[1]` (0-based, as in the run summary's step names).
/// It identifies a hook that has no `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookPosition {
    pub phase: Phase,
    pub index: usize,
}

impl std::fmt::Display for HookPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.phase.as_str(), self.index)
    }
}

impl std::str::FromStr for HookPosition {
    type Err = String;

    /// Parses `pre[N]` or `post[N]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a hook position like `pre[0]` or `post[1]`");
        let (phase, rest) = if let Some(rest) = s.strip_prefix("pre[") {
            (Phase::Pre, rest)
        } else if let Some(rest) = s.strip_prefix("post[") {
            (Phase::Post, rest)
        } else {
            return Err(bad());
        };
        let digits = rest.strip_suffix(']').ok_or_else(bad)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let index = digits.parse().map_err(|_| bad())?;
        Ok(HookPosition { phase, index })
    }
}

/// How the VolumeSnapshots are made and named.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// VolumeSnapshotClass; absent = the cluster's default class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Placeholders: `{pvc}`, `{timestamp}` (`2006-01-02-150405`, local time), `{rand}` (6 letters), `{plan}`.
    pub name_template: String,
    pub wait_until_ready: bool,
    #[serde(with = "crate::vocab::duration")]
    pub ready_timeout: Duration,
    /// Extra labels on every VolumeSnapshot.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on every VolumeSnapshot.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `individual` snapshots per PVC, or one VolumeGroupSnapshot over all targets.
    pub consistency: Consistency,
    /// Value of the `backup-ns.sh/type` label (`BAK_LABEL_VS_TYPE`).
    #[serde(rename = "type")]
    pub backup_type: BackupType,
    /// Value of the `backup-ns.sh/pod` label (`BAK_LABEL_VS_POD`), e.g. the CronJob's pod name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Fixed value for `{rand}` (`BAK_VS_RAND`); random per run when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rand: Option<String>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            class: None,
            name_template: DEFAULT_NAME_TEMPLATE.to_string(),
            wait_until_ready: true,
            ready_timeout: Duration::from_secs(15 * 60),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            consistency: Consistency::Individual,
            backup_type: BackupType::Adhoc,
            pod: None,
            rand: None,
        }
    }
}

impl Snapshot {
    /// The VolumeSnapshot name for one PVC. `timestamp` is `YYYY-MM-DD-HHMMSS` in local time; `rand` is used
    /// when [`Snapshot::rand`] is not fixed. Validation guarantees the template only has known placeholders
    /// and that the result fits 63 characters for every target.
    pub fn render_name(&self, pvc: &str, timestamp: &str, rand: &str, plan: &str) -> String {
        let rand = self.rand.as_deref().unwrap_or(rand);
        super::rules::render_template(&self.name_template, pvc, timestamp, rand, plan)
            .unwrap_or_else(|_| format!("{pvc}-{timestamp}-{rand}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    #[default]
    Individual,
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    Cronjob,
    #[default]
    Adhoc,
}

impl BackupType {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Cronjob => "cronjob",
            BackupType::Adhoc => "adhoc",
        }
    }
}

/// The plan's retention: the resolved policy and, when it came from a named profile, that profile's name.
/// Named profiles are resolved at load time, so everything downstream works with [`RetentionPolicy`] alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Retention {
    pub profile: Option<String>,
    pub policy: RetentionPolicy,
}

impl Retention {
    /// A policy given inline (no profile name).
    pub fn inline(policy: RetentionPolicy) -> Retention {
        Retention {
            profile: None,
            policy,
        }
    }

    /// The profile name this policy came from, if any.
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }
}

/// How a resolved retention is written in a plan file (and so in `plan` output and the redacted plan
/// annotation): a flat mapping of the counts or `days`, with the profile name beside them, which
/// [`super::raw::Retention`] reads back.
#[derive(Serialize)]
#[serde(untagged)]
enum RetentionFile<'a> {
    /// Grandfather-father-son: keep the newest N per tier (label `retain=daily_weekly_monthly`).
    Tiers {
        #[serde(skip_serializing_if = "Option::is_none")]
        profile: Option<&'a str>,
        daily: u32,
        weekly: u32,
        monthly: u32,
        #[serde(skip_serializing_if = "is_zero")]
        yearly: u32,
    },
    /// Time to live: delete N days after creation (label `retain=days`).
    Days {
        #[serde(skip_serializing_if = "Option::is_none")]
        profile: Option<&'a str>,
        days: u32,
    },
}

impl<'a> From<&'a Retention> for RetentionFile<'a> {
    fn from(r: &'a Retention) -> Self {
        let profile = r.profile.as_deref();
        match r.policy {
            RetentionPolicy::Tiers(c) => RetentionFile::Tiers {
                profile,
                daily: c.daily,
                weekly: c.weekly,
                monthly: c.monthly,
                yearly: c.yearly,
            },
            RetentionPolicy::Days(days) => RetentionFile::Days { profile, days },
        }
    }
}

impl Serialize for Retention {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RetentionFile::from(self).serialize(s)
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Node-level lock slots so that few backups run at once on one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lock {
    pub enabled: bool,
    pub dir: String,
    /// Number of slot files `1.lock … N.lock`; absent = number of CPUs / 2, at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<u32>,
    #[serde(with = "crate::vocab::duration")]
    pub timeout: Duration,
}

impl Default for Lock {
    fn default() -> Self {
        Lock {
            enabled: false,
            dir: DEFAULT_LOCK_DIR.to_string(),
            slots: None,
            timeout: Duration::from_secs(3600),
        }
    }
}

impl Lock {
    /// The slot count in effect: the configured one, else max(1, CPUs / 2).
    pub fn slots(&self) -> u32 {
        self.slots.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            u32::try_from(cpus / 2).unwrap_or(u32::MAX).max(1)
        })
    }
}

/// How `backup-ns verify` proves a backup of this plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verify {
    /// The database hook whose dump is verified (a name or `pre[N]`); `None`: chosen from the snapshot's PVC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    #[serde(with = "crate::vocab::duration")]
    pub timeout: Duration,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<VerifyCheck>,
    /// The archive's `restore_command` for hot PostgreSQL snapshots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_command: Option<String>,
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            hook: None,
            timeout: Duration::from_secs(30 * 60),
            checks: Vec::new(),
            restore_command: None,
        }
    }
}

impl Verify {
    fn is_default(&self) -> bool {
        *self == Verify::default()
    }
}

/// One check of `verify.checks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyCheck {
    pub name: String,
    #[serde(flatten)]
    pub test: CheckTest,
}

/// What a check asks of the restored database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CheckTest {
    /// The first column of the first row of `sql` must meet `expect`.
    Sql { sql: String, expect: Expect },
    /// A rhai script that reads the answers to `queries` (its `query`/`scalar` calls' literal SQL, in order).
    Rhai {
        rhai: String,
        #[serde(skip)]
        queries: Vec<String>,
    },
}

/// A comparison a check's answer must meet: `>= 1`, `== 42`, ... (a bare number means `==`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    pub op: Comparison,
    pub value: i64,
}

/// The comparison operators of [`Expect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Ge => ">=",
            Comparison::Gt => ">",
            Comparison::Le => "<=",
            Comparison::Lt => "<",
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
        }
    }
}

impl Expect {
    /// True when `answer` meets the comparison.
    pub fn holds(&self, answer: i64) -> bool {
        match self.op {
            Comparison::Ge => answer >= self.value,
            Comparison::Gt => answer > self.value,
            Comparison::Le => answer <= self.value,
            Comparison::Lt => answer < self.value,
            Comparison::Eq => answer == self.value,
            Comparison::Ne => answer != self.value,
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.op.as_str(), self.value)
    }
}

impl std::str::FromStr for Expect {
    type Err = String;

    /// Parses `>= 1`, `>1`, `== 42`, `= 42`, `!= 0`, `< 10`, `<= 10` or a bare `42`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let ops = [
            (">=", Comparison::Ge),
            ("<=", Comparison::Le),
            ("==", Comparison::Eq),
            ("!=", Comparison::Ne),
            (">", Comparison::Gt),
            ("<", Comparison::Lt),
            ("=", Comparison::Eq),
        ];
        let (op, rest) = ops
            .iter()
            .find_map(|(word, op)| text.strip_prefix(word).map(|rest| (*op, rest)))
            .unwrap_or((Comparison::Eq, text));
        let value = rest.trim().parse::<i64>().map_err(|_| {
            format!("`{s}` is not a comparison with a whole number such as `>= 1` or `== 42`")
        })?;
        Ok(Expect { op, value })
    }
}

impl Serialize for Expect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Plan {
    /// A plan with every default: what a file with only `name` and `targets` loads to. Handy for tests of other
    /// subsystems (`Plan::new("app", ["data"])`).
    pub fn new<I, S>(name: &str, targets: I) -> Plan
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Plan {
            name: name.to_string(),
            namespace: None,
            targets: targets.into_iter().map(Into::into).collect(),
            hooks: Hooks::default(),
            snapshot: Snapshot::default(),
            retention: Retention::default(),
            lock: Lock::default(),
            verify: Verify::default(),
            dry_run: false,
            time_zone: None,
            vars: BTreeMap::new(),
        }
    }

    /// Every hook with its position: the pre-hooks, then the post-hooks, each in plan order.
    pub fn hooks_with_positions(&self) -> impl Iterator<Item = (HookPosition, &Hook)> {
        fn list(phase: Phase, hooks: &[Hook]) -> impl Iterator<Item = (HookPosition, &Hook)> {
            hooks
                .iter()
                .enumerate()
                .map(move |(index, hook)| (HookPosition { phase, index }, hook))
        }
        list(Phase::Pre, &self.hooks.pre).chain(list(Phase::Post, &self.hooks.post))
    }

    /// The plan as JSON with secrets removed: literal passwords and `vars`/`args` whose key looks secret
    /// become `"<redacted>"`. Env references such as `${POSTGRES_PASSWORD}` are kept (they are not secrets).
    /// This is what goes into the `backup-ns.sh/plan` annotation.
    pub fn redacted_json(&self) -> serde_json::Value {
        serde_json::to_value(self.redacted()).unwrap_or(serde_json::Value::Null)
    }

    /// The plan with the secrets of [`Plan::redacted_json`] replaced by `"<redacted>"` (what `plan show`
    /// prints unless asked for the secrets).
    pub fn redacted(&self) -> Plan {
        let mut plan = self.clone();
        for hook in plan.hooks.pre.iter_mut().chain(plan.hooks.post.iter_mut()) {
            match &mut hook.action {
                HookAction::Postgres(h) => redact_password(&mut h.dump.password),
                HookAction::Mysql(h) => redact_password(&mut h.dump.password),
                HookAction::Rhai(h) => redact_map(&mut h.args),
                HookAction::Exec(_) => {}
            }
        }
        redact_map(&mut plan.vars);
        plan
    }
}

/// The marker written instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// True when the whole value is one container env reference (`${NAME}` or `$NAME`).
pub fn is_env_ref(value: &str) -> bool {
    let name = if let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        inner
    } else if let Some(inner) = value.strip_prefix('$') {
        inner
    } else {
        return false;
    };
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// True for keys that usually carry secrets.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "credential",
    ]
    .iter()
    .any(|s| k.contains(s))
}

fn redact_password(p: &mut String) {
    if !p.is_empty() && !is_env_ref(p) {
        *p = REDACTED.to_string();
    }
}

/// Redacts every value under a secret-looking key, at any depth (`vars: {db: {password: …}}` too).
fn redact_map(map: &mut BTreeMap<String, serde_json::Value>) {
    for (k, v) in map.iter_mut() {
        redact_entry(k, v);
    }
}

fn redact_entry(key: &str, value: &mut serde_json::Value) {
    if is_secret_key(key) {
        *value = serde_json::Value::String(REDACTED.to_string());
        return;
    }
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                redact_entry(k, v);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                redact_entry("", item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_secrets_in_vars_are_redacted_too() {
        let mut vars = BTreeMap::new();
        vars.insert(
            "db".to_string(),
            serde_json::json!({"password": "hunter2", "list": [{"api_token": "t0k"}], "host": "x"}),
        );
        redact_map(&mut vars);
        assert_eq!(
            vars["db"],
            serde_json::json!({"password": REDACTED, "list": [{"api_token": REDACTED}], "host": "x"})
        );
    }

    #[test]
    fn env_refs_are_recognised_and_literals_are_not() {
        assert!(is_env_ref("${POSTGRES_PASSWORD}"));
        assert!(is_env_ref("$MYSQL_ROOT_PASSWORD"));
        assert!(!is_env_ref("hunter2"));
        assert!(!is_env_ref("${}"));
        assert!(!is_env_ref("${A}x"));
    }

    #[test]
    fn retention_is_written_in_the_plan_file_form() {
        let json = |r: &Retention| serde_json::to_string(r).unwrap();
        assert_eq!(
            json(&Retention::default()),
            r#"{"daily":7,"weekly":4,"monthly":12}"#
        );
        let days = Retention {
            profile: Some("adhoc".into()),
            policy: RetentionPolicy::Days(30),
        };
        assert_eq!(json(&days), r#"{"profile":"adhoc","days":30}"#);
    }

    #[test]
    fn redacted_json_hides_literal_secrets_but_keeps_env_refs() {
        let mut plan = Plan::new("app", ["data"]);
        let dump = |password: &str| DbDump {
            workload: "deployment/db".parse().unwrap(),
            container: "db".into(),
            dump_file: "/var/lib/mysql/dump.sql.gz".into(),
            host: "127.0.0.1".into(),
            port: 3306,
            user: "root".into(),
            password: password.into(),
            database: "shop".into(),
            mode: DbMode::Dump,
            threshold: 90,
            compression: Compression::Gzip,
            extra_args: vec![],
        };
        for password in ["hunter2", "${MYSQL_ROOT_PASSWORD}"] {
            plan.hooks.pre.push(Hook {
                name: None,
                action: HookAction::Mysql(MysqlHook {
                    dump: dump(password),
                    default_character_set: "utf8".into(),
                    single_transaction: false,
                }),
                timeout: Duration::from_secs(60),
                on_error: OnError::Fail,
                when: None,
            });
        }
        plan.vars
            .insert("apiToken".into(), serde_json::json!("abc"));
        plan.vars
            .insert("channel".into(), serde_json::json!("#ops"));
        let json = plan.redacted_json();
        let text = json.to_string();
        assert!(!text.contains("hunter2") && !text.contains("abc"), "{text}");
        assert_eq!(json["hooks"]["pre"][0]["password"], REDACTED);
        assert_eq!(
            json["hooks"]["pre"][1]["password"],
            "${MYSQL_ROOT_PASSWORD}"
        );
        assert_eq!(json["vars"]["channel"], "#ops");
    }

    #[test]
    fn snapshot_names_render_from_the_template() {
        let mut snap = Snapshot::default();
        assert_eq!(
            snap.render_name("data", "2025-01-08-164308", "dcdkes", "app"),
            "data-2025-01-08-164308-dcdkes"
        );
        snap.rand = Some("fixed".into());
        snap.name_template = "{plan}-{pvc}-{rand}".into();
        assert_eq!(snap.render_name("data", "t", "r", "app"), "app-data-fixed");
    }

    #[test]
    fn hook_positions_print_and_parse_alike() {
        for text in ["pre[0]", "post[12]"] {
            let position: HookPosition = text.parse().unwrap();
            assert_eq!(position.to_string(), text);
        }
        assert_eq!(
            "post[1]".parse::<HookPosition>(),
            Ok(HookPosition {
                phase: Phase::Post,
                index: 1
            })
        );
        for bad in [
            "pre", "pre[]", "pre[x]", "pre[-1]", "pre[1", "mid[0]", "pre[0]x", "app-db",
        ] {
            assert!(bad.parse::<HookPosition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hooks_are_listed_pre_then_post_with_their_positions() {
        let mut plan = Plan::new("app", ["data"]);
        let exec = |word: &str| Hook {
            name: Some(word.into()),
            action: HookAction::Exec(ExecHook {
                workload: "deployment/app".parse().unwrap(),
                container: "app".into(),
                command: vec![word.into()],
            }),
            timeout: Duration::from_secs(60),
            on_error: OnError::Fail,
            when: None,
        };
        plan.hooks.post.push(exec("c"));
        plan.hooks.pre.extend([exec("a"), exec("b")]);
        let listed: Vec<String> = plan
            .hooks_with_positions()
            .map(|(p, h)| format!("{p}={}", h.name.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(listed, ["pre[0]=a", "pre[1]=b", "post[0]=c"]);
    }

    #[test]
    fn expectations_parse_print_and_compare() {
        let table = [
            (">= 1", 1, true),
            (">=1", 0, false),
            ("> 0", 0, false),
            ("== 42", 42, true),
            ("= 42", 41, false),
            ("42", 42, true),
            ("!= 0", 3, true),
            ("< 10", 10, false),
            ("<= 10", 10, true),
            ("> -1", 0, true),
        ];
        for (text, answer, holds) in table {
            let expect: Expect = text.parse().unwrap();
            assert_eq!(expect.holds(answer), holds, "{text} with {answer}");
            assert_eq!(expect.to_string().parse::<Expect>(), Ok(expect));
        }
        for bad in ["", ">=", "about 3", "=> 1", ">= 1.5", "1 or 2"] {
            assert!(bad.parse::<Expect>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lock_slots_default_to_at_least_one() {
        assert!(Lock::default().slots() >= 1);
        let fixed = Lock {
            slots: Some(3),
            ..Lock::default()
        };
        assert_eq!(fixed.slots(), 3);
    }
}
