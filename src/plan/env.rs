//! Compatibility with the original's `BAK_*` environment variables.
//!
//! An existing `backup-env` ConfigMap keeps working with no plan file: the variables (with the original's
//! defaults) are mapped onto a plan document, which then goes through the same validation as a plan file.
//! Bad values point at the variable's line in a listing of the `BAK_*` environment.

use super::diag::{Code, Diag, SourceFile};
use super::model::Plan;
use super::node::{Format, parse};
use super::profiles::Profiles;
use super::rules;
use super::validate;
use crate::vocab::duration;
use crate::vocab::hook::{MYSQL, POSTGRES};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The environment as a sorted map (tests pass their own; the CLI passes the process environment).
pub type EnvMap = BTreeMap<String, String>;

/// Every variable this module reads, for `is_bak_env` and the docs.
pub const BAK_VARS: &[&str] = &[
    "BAK_DRY_RUN",
    "BAK_NAMESPACE",
    "BAK_PVC_NAME",
    "BAK_VS_RAND",
    "BAK_VS_NAME_TEMPLATE",
    "BAK_VS_CLASS_NAME",
    "BAK_VS_WAIT_UNTIL_READY",
    "BAK_VS_WAIT_UNTIL_READY_TIMEOUT",
    "BAK_THRESHOLD_SPACE_USED_PERCENTAGE",
    "BAK_DB_SKIP",
    "BAK_LABEL_VS_TYPE",
    "BAK_LABEL_VS_POD",
    "BAK_LABEL_VS_RETAIN",
    "BAK_LABEL_VS_RETAIN_DAYS",
    "BAK_DB_POSTGRES",
    "BAK_DB_POSTGRES_EXEC_RESOURCE",
    "BAK_DB_POSTGRES_EXEC_CONTAINER",
    "BAK_DB_POSTGRES_DUMP_FILE",
    "BAK_DB_POSTGRES_HOST",
    "BAK_DB_POSTGRES_PORT",
    "BAK_DB_POSTGRES_USER",
    "BAK_DB_POSTGRES_PASSWORD",
    "BAK_DB_POSTGRES_DB",
    "BAK_DB_MYSQL",
    "BAK_DB_MYSQL_EXEC_RESOURCE",
    "BAK_DB_MYSQL_EXEC_CONTAINER",
    "BAK_DB_MYSQL_DUMP_FILE",
    "BAK_DB_MYSQL_HOST",
    "BAK_DB_MYSQL_PORT",
    "BAK_DB_MYSQL_USER",
    "BAK_DB_MYSQL_PASSWORD",
    "BAK_DB_MYSQL_DB",
    "BAK_DB_MYSQL_DEFAULT_CHARACTER_SET",
    "BAK_FLOCK",
    "BAK_FLOCK_COUNT",
    "BAK_FLOCK_DIR",
    "BAK_FLOCK_TIMEOUT_SEC",
    "RETAIN_LAST_DAILY",
    "RETAIN_LAST_WEEKLY",
    "RETAIN_LAST_MONTHLY",
];

/// The plan name used for env-only configurations (the original's CronJob is called `backup`).
pub const ENV_PLAN_NAME: &str = "backup";

/// True when the environment carries any of the original's `BAK_*` variables.
pub fn is_bak_env(env: &EnvMap) -> bool {
    env.keys().any(|k| k.starts_with("BAK_"))
}

/// Maps `BAK_*` variables onto a plan document (the plan file format as JSON). Every bad value is reported.
pub fn bak_env_document(env: &EnvMap) -> Result<(Value, Vec<Diag>), Vec<Diag>> {
    let mut r = Reader::new(env);
    let doc = r.document();
    if r.diags.iter().any(Diag::is_error) {
        Err(r.diags)
    } else {
        Ok((doc, r.diags))
    }
}

/// The plan equivalent to a `BAK_*` environment, validated like a plan file.
pub fn plan_from_bak_env(env: &EnvMap) -> Result<(Plan, Vec<Diag>), Vec<Diag>> {
    let (doc, mut diags) = bak_env_document(env)?;
    let (plan, mut more) = plan_from_document(
        &doc,
        "plan generated from BAK_* environment",
        &Profiles::builtin(),
    );
    diags.append(&mut more);
    match plan {
        Some(p) => Ok((p, diags)),
        None => Err(diags),
    }
}

/// Validates a plan document that has no file of its own (env, merged layers). It is rendered as YAML so
/// diagnostics can still show a snippet with the offending line.
pub fn plan_from_document(
    doc: &Value,
    name: &str,
    profiles: &Profiles,
) -> (Option<Plan>, Vec<Diag>) {
    let text = serde_saphyr::to_string(doc).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
    let source = SourceFile::new(name, text);
    let mut diags = Vec::new();
    let Some(root) = parse(&source, Format::Yaml, &mut diags) else {
        return (None, diags);
    };
    let ctx = validate::Context {
        base_dir: None,
        profiles,
    };
    let (plan, mut more) = validate::validate_plan(&root, &source, &ctx);
    diags.append(&mut more);
    (plan, diags)
}

/// The original's `backup-ns.sh/env-config` annotation: every `BAK_*` variable except passwords, one
/// `KEY='value'` per line, sorted (single quotes inside values are escaped shell-style).
pub fn env_config_annotation(env: &EnvMap) -> String {
    env.iter()
        .filter(|(k, _)| k.starts_with("BAK_") && !k.contains("PASSWORD"))
        .map(|(k, v)| format!("{k}='{}'\n", v.replace('\'', "'\\''")))
        .collect()
}

struct Reader<'e> {
    env: &'e EnvMap,
    /// A listing of the relevant variables, one `KEY=value` per line, that diagnostics point into.
    source: Arc<SourceFile>,
    diags: Vec<Diag>,
}

impl<'e> Reader<'e> {
    fn new(env: &'e EnvMap) -> Self {
        let listing: String = env
            .iter()
            .filter(|(k, _)| k.starts_with("BAK_") || k.starts_with("RETAIN_LAST_"))
            .map(|(k, v)| {
                if k.contains("PASSWORD") {
                    format!("{k}=<redacted>\n")
                } else {
                    format!("{k}={v}\n")
                }
            })
            .collect();
        Reader {
            env,
            source: SourceFile::new("BAK_* environment", listing),
            diags: Vec::new(),
        }
    }

    fn raw(&self, key: &str) -> Option<&'e str> {
        self.env.get(key).map(String::as_str)
    }

    /// The value, or the default when unset or empty (the original treats empty as unset).
    fn str(&self, key: &str, default: &str) -> String {
        match self.raw(key) {
            Some(v) if !v.is_empty() => v.to_string(),
            _ => default.to_string(),
        }
    }

    fn span_of(&self, key: &str) -> std::ops::Range<usize> {
        let needle = format!("{key}=");
        let text = &self.source.text;
        let start = text
            .match_indices(&needle)
            .find(|(i, _)| *i == 0 || text.as_bytes()[i - 1] == b'\n')
            .map_or(0, |(i, _)| i);
        let end = text[start..].find('\n').map_or(text.len(), |e| start + e);
        start..end
    }

    fn bad(&mut self, key: &str, message: String, help: &str) {
        let span = self.span_of(key);
        self.diags.push(
            Diag::error(Code::EnvCompat, message)
                .at(&self.source, span, "bad value")
                .help(help),
        );
    }

    /// Go's strconv.ParseBool spellings, as the original accepts.
    fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.raw(key) {
            None | Some("") => default,
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
            Some(other) => {
                self.bad(
                    key,
                    format!("{key}={other} is not a boolean"),
                    "use `true` or `false`",
                );
                default
            }
        }
    }

    fn int(&mut self, key: &str, default: i64) -> i64 {
        match self.raw(key) {
            None | Some("") => default,
            Some(v) => match v.trim().parse::<i64>() {
                Ok(i) => i,
                Err(_) => {
                    self.bad(
                        key,
                        format!("{key}={v} is not a whole number"),
                        "use digits only, e.g. `30`",
                    );
                    default
                }
            },
        }
    }

    fn document(&mut self) -> Value {
        let mut plan = Map::new();
        plan.insert("name".into(), json!(ENV_PLAN_NAME));
        if let Some(ns) = self.raw("BAK_NAMESPACE").filter(|s| !s.is_empty()) {
            plan.insert("namespace".into(), json!(ns));
        }
        plan.insert("targets".into(), json!([self.str("BAK_PVC_NAME", "data")]));

        let threshold = self.int("BAK_THRESHOLD_SPACE_USED_PERCENTAGE", 90);
        let skip = self.bool("BAK_DB_SKIP", false);
        let pg = self.bool("BAK_DB_POSTGRES", false);
        let my = self.bool("BAK_DB_MYSQL", false);
        let mut pre = Vec::new();
        if !skip && pg {
            pre.push(self.db_hook("postgres", "BAK_DB_POSTGRES", threshold));
        }
        if !skip && my {
            pre.push(self.db_hook("mysql", "BAK_DB_MYSQL", threshold));
        }
        if !skip && !pg && !my {
            let span = 0..0;
            self.diags.push(
                Diag::error(
                    Code::EnvCompat,
                    "none of BAK_DB_SKIP, BAK_DB_POSTGRES or BAK_DB_MYSQL is true",
                )
                .at(&self.source, span, "set one of them")
                .help("the original requires one: `BAK_DB_SKIP=true` (snapshot only), `BAK_DB_POSTGRES=true` or `BAK_DB_MYSQL=true`"),
            );
        }
        if skip && (pg || my) {
            let span = self.span_of("BAK_DB_SKIP");
            self.diags.push(
                Diag::warning(
                    Code::EnvCompat,
                    "BAK_DB_SKIP=true wins over BAK_DB_POSTGRES/BAK_DB_MYSQL",
                )
                .at(&self.source, span, "no database dump will run")
                .help("unset BAK_DB_SKIP to dump the database before the snapshot"),
            );
        }
        if !pre.is_empty() {
            plan.insert("hooks".into(), json!({ "pre": pre }));
        }

        let mut snapshot = Map::new();
        let template = self.str("BAK_VS_NAME_TEMPLATE", "");
        snapshot.insert(
            "nameTemplate".into(),
            json!(if template.is_empty() {
                super::model::DEFAULT_NAME_TEMPLATE.to_string()
            } else {
                rules::go_template_to_ours(&template)
            }),
        );
        if let Some(class) = self.raw("BAK_VS_CLASS_NAME").filter(|s| !s.is_empty()) {
            snapshot.insert("class".into(), json!(class));
        }
        snapshot.insert(
            "waitUntilReady".into(),
            json!(self.bool("BAK_VS_WAIT_UNTIL_READY", true)),
        );
        let timeout = self.str("BAK_VS_WAIT_UNTIL_READY_TIMEOUT", "15m");
        snapshot.insert("readyTimeout".into(), json!(timeout));
        snapshot.insert("type".into(), json!(self.str("BAK_LABEL_VS_TYPE", "adhoc")));
        if let Some(pod) = self.raw("BAK_LABEL_VS_POD").filter(|s| !s.is_empty()) {
            snapshot.insert("pod".into(), json!(pod));
        }
        if let Some(rand) = self.raw("BAK_VS_RAND").filter(|s| !s.is_empty()) {
            snapshot.insert("rand".into(), json!(rand));
        }
        plan.insert("snapshot".into(), Value::Object(snapshot));

        let retention = match self.str("BAK_LABEL_VS_RETAIN", "days").as_str() {
            "days" => json!({ "days": self.int("BAK_LABEL_VS_RETAIN_DAYS", 30) }),
            "daily_weekly_monthly" => json!({
                "daily": self.int("RETAIN_LAST_DAILY", 7),
                "weekly": self.int("RETAIN_LAST_WEEKLY", 4),
                "monthly": self.int("RETAIN_LAST_MONTHLY", 12),
            }),
            other => {
                self.bad(
                    "BAK_LABEL_VS_RETAIN",
                    format!("BAK_LABEL_VS_RETAIN={other} is not a retention mode"),
                    "use `days` or `daily_weekly_monthly`",
                );
                json!({ "days": 30 })
            }
        };
        plan.insert("retention".into(), retention);

        let mut lock = Map::new();
        lock.insert("enabled".into(), json!(self.bool("BAK_FLOCK", false)));
        lock.insert(
            "dir".into(),
            json!(self.str("BAK_FLOCK_DIR", super::model::DEFAULT_LOCK_DIR)),
        );
        if self.raw("BAK_FLOCK_COUNT").is_some_and(|s| !s.is_empty()) {
            lock.insert("slots".into(), json!(self.int("BAK_FLOCK_COUNT", 1)));
        }
        let secs = self.int("BAK_FLOCK_TIMEOUT_SEC", 3600);
        let timeout = if secs > 0 {
            duration::format(Duration::from_secs(secs.unsigned_abs()))
        } else {
            // Let the converter report the zero/negative duration at the generated line.
            format!("{secs}s")
        };
        lock.insert("timeout".into(), json!(timeout));
        plan.insert("lock".into(), Value::Object(lock));

        plan.insert("dryRun".into(), json!(self.bool("BAK_DRY_RUN", false)));
        Value::Object(plan)
    }

    fn db_hook(&mut self, kind: &str, prefix: &str, threshold: i64) -> Value {
        let d = if kind == "postgres" {
            &POSTGRES
        } else {
            &MYSQL
        };
        let key = |suffix: &str| format!("{prefix}_{suffix}");
        let mut hook = Map::new();
        hook.insert("type".into(), json!(kind));
        hook.insert(
            "workload".into(),
            json!(self.str(&key("EXEC_RESOURCE"), "deployment/app-base")),
        );
        hook.insert(
            "container".into(),
            json!(self.str(&key("EXEC_CONTAINER"), d.container)),
        );
        hook.insert(
            "dumpFile".into(),
            json!(self.str(&key("DUMP_FILE"), &format!("{}/dump.sql.gz", d.data_dir))),
        );
        hook.insert("host".into(), json!(self.str(&key("HOST"), "127.0.0.1")));
        hook.insert(
            "port".into(),
            json!(self.int(&key("PORT"), i64::from(d.port))),
        );
        hook.insert("user".into(), json!(self.str(&key("USER"), d.user)));
        hook.insert(
            "password".into(),
            json!(self.str(&key("PASSWORD"), d.password)),
        );
        hook.insert("database".into(), json!(self.str(&key("DB"), d.database)));
        hook.insert("threshold".into(), json!(threshold));
        if kind == "mysql" {
            hook.insert(
                "defaultCharacterSet".into(),
                json!(self.str("BAK_DB_MYSQL_DEFAULT_CHARACTER_SET", "utf8")),
            );
            // The original dumped with `--lock-tables`; keep that for env-configured namespaces.
            hook.insert("singleTransaction".into(), json!(false));
        }
        Value::Object(hook)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{HookAction, Retention};
    use crate::vocab::retention::{RetentionPolicy, TierCounts};

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_original_defaults_apply_when_only_the_db_switch_is_set() {
        let (plan, warnings) = plan_from_bak_env(&env(&[("BAK_DB_POSTGRES", "true")])).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(plan.targets, vec!["data"]);
        assert_eq!(
            plan.retention,
            Retention {
                profile: None,
                policy: RetentionPolicy::Days(30),
            }
        );
        assert_eq!(plan.snapshot.ready_timeout, Duration::from_secs(900));
        assert!(!plan.lock.enabled);
        assert_eq!(plan.lock.timeout, Duration::from_secs(3600));
        let HookAction::Postgres(pg) = &plan.hooks.pre[0].action else {
            panic!("expected a postgres hook");
        };
        assert_eq!(pg.dump.workload.to_string(), "deployment/app-base");
        assert_eq!(pg.dump.dump_file, "/var/lib/postgresql/data/dump.sql.gz");
        assert_eq!(pg.dump.user, "${POSTGRES_USER}");
        assert_eq!(pg.dump.threshold, 90);
    }

    #[test]
    fn mysql_variables_map_onto_a_mysql_hook() {
        let (plan, _) = plan_from_bak_env(&env(&[
            ("BAK_DB_MYSQL", "true"),
            ("BAK_DB_MYSQL_DEFAULT_CHARACTER_SET", "utf8mb4"),
            ("BAK_DB_MYSQL_EXEC_RESOURCE", "statefulset/db"),
        ]))
        .unwrap();
        let HookAction::Mysql(my) = &plan.hooks.pre[0].action else {
            panic!("expected a mysql hook");
        };
        assert_eq!(my.default_character_set, "utf8mb4");
        assert_eq!(my.dump.user, "root");
        assert_eq!(my.dump.password, "${MYSQL_ROOT_PASSWORD}");
        assert_eq!(my.dump.workload.to_string(), "statefulset/db");
    }

    #[test]
    fn bad_env_values_point_at_their_variable() {
        let errs = plan_from_bak_env(&env(&[
            ("BAK_DB_SKIP", "yes please"),
            ("BAK_FLOCK_COUNT", "many"),
        ]))
        .unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|d| d.location().1).collect();
        // The listing is sorted: BAK_DB_SKIP is line 1, BAK_FLOCK_COUNT line 2.
        assert!(lines.contains(&1) && lines.contains(&2), "{lines:?}");
        assert!(
            errs.iter()
                .all(|d| d.code == Code::EnvCompat || d.is_error())
        );
    }

    #[test]
    fn the_env_config_annotation_lists_bak_vars_without_passwords() {
        let text = env_config_annotation(&env(&[
            ("BAK_DB_POSTGRES", "true"),
            ("BAK_DB_POSTGRES_PASSWORD", "hunter2"),
            ("BAK_LABEL_VS_POD", "it's"),
            ("HOME", "/root"),
        ]));
        assert_eq!(
            text,
            "BAK_DB_POSTGRES='true'\nBAK_LABEL_VS_POD='it'\\''s'\n"
        );
    }

    #[test]
    fn a_db_mode_is_required_like_in_the_original() {
        let errs = plan_from_bak_env(&env(&[("BAK_PVC_NAME", "data")])).unwrap_err();
        assert!(errs.iter().any(|d| d.code == Code::EnvCompat));
    }

    #[test]
    fn go_name_templates_and_tier_retention_are_translated() {
        let (plan, _) = plan_from_bak_env(&env(&[
            ("BAK_DB_SKIP", "true"),
            (
                "BAK_VS_NAME_TEMPLATE",
                "{{ .pvcName }}-{{ .rand }}-{{ .timestamp }}",
            ),
            ("BAK_LABEL_VS_RETAIN", "daily_weekly_monthly"),
            ("RETAIN_LAST_DAILY", "3"),
        ]))
        .unwrap();
        assert_eq!(plan.snapshot.name_template, "{pvc}-{rand}-{timestamp}");
        assert_eq!(
            plan.retention,
            Retention {
                profile: None,
                policy: RetentionPolicy::Tiers(TierCounts {
                    daily: 3,
                    weekly: 4,
                    monthly: 12,
                    yearly: 0
                }),
            }
        );
    }

    #[test]
    fn invalid_values_that_only_the_converter_knows_are_still_reported() {
        let errs = plan_from_bak_env(&env(&[
            ("BAK_DB_POSTGRES", "true"),
            ("BAK_DB_POSTGRES_EXEC_RESOURCE", "app-base"),
        ]))
        .unwrap_err();
        assert!(errs.iter().any(|d| d.code == Code::BadWorkload), "{errs:?}");
    }
}
