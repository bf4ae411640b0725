//! Layered settings with figment: built-in defaults < plan file < environment (`BACKUP_NS_*`) < CLI flags.
//!
//! The defaults are the converter's (see `plan::model`); the plan file (or, without one, the original's
//! `BAK_*` variables) gives the base plan. `BACKUP_NS_*` variables and flags are merged over it by figment and
//! the merged document is validated again, so a bad override gets the same diagnostics as a bad plan file.

use crate::plan::diag::{Code, Diag, Diagnostics};
use crate::plan::env::{EnvMap, is_bak_env, plan_from_bak_env, plan_from_document};
use crate::plan::node::{Format, parse, to_json};
use crate::plan::{LoadedPlan, Origin, Profiles, SourceFile, load_file};
use figment::Figment;
use figment::providers::Serialized;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// `BACKUP_NS_*` variables that configure the program, not the plan; they are never merged into a plan.
/// Every flag's `env = "BACKUP_NS_…"` fallback must be listed (a test in `cli` walks the command line to check).
pub const NON_PLAN_VARS: &[&str] = &[
    "BACKUP_NS_LOG",
    "BACKUP_NS_LOG_FORMAT",
    "BACKUP_NS_NOW",
    "BACKUP_NS_POD",
    "BACKUP_NS_PLAN",
    "BACKUP_NS_HOOK",
    "BACKUP_NS_PROFILES",
    "BACKUP_NS_KUBECONFIG",
    "BACKUP_NS_PUSHGATEWAY",
    "BACKUP_NS_DELETE_PAUSE",
    "BACKUP_NS_GRACE_DAYS",
    "BACKUP_NS_GUARD_MAX_SHARE",
    "BACKUP_NS_GUARD_MAX_DELETES",
    "BACKUP_NS_CONCURRENCY",
    "BACKUP_NS_SNAPSHOT_LIMIT",
];

/// The top layer: values given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--dry-run`.
    pub dry_run: Option<bool>,
    /// `--profiles FILE` (else `retention-profiles.*` beside the plan, else the built-ins).
    pub profiles: Option<PathBuf>,
    /// `--set key.path=value` (camelCase keys, values parsed as YAML scalars/flow collections).
    pub sets: Vec<String>,
}

/// The process environment as an [`EnvMap`].
pub fn process_env() -> EnvMap {
    std::env::vars().collect()
}

/// Loads the plan the `run` command executes.
///
/// `path`: a plan file; without one the `BAK_*` variables must be present. Warnings are returned in the
/// [`LoadedPlan`]; any error returns every diagnostic found.
pub fn load_effective(
    path: Option<&Path>,
    env: &EnvMap,
    overrides: &Overrides,
) -> Result<LoadedPlan, Diagnostics> {
    let profiles = match &overrides.profiles {
        Some(file) => Some(Profiles::with_file(file).map_err(Diagnostics)?),
        None => None,
    };
    let (base, origin, mut warnings) = match path {
        Some(path) => {
            let (plan, diags) = load_file(path, profiles.as_ref());
            match plan {
                Some(plan) => (plan, Origin::File(path.to_path_buf()), diags),
                None => return Err(Diagnostics(diags)),
            }
        }
        None if is_bak_env(env) => {
            let (plan, diags) = plan_from_bak_env(env).map_err(Diagnostics)?;
            (plan, Origin::BakEnv, diags)
        }
        None => {
            return Err(Diagnostics(vec![
                Diag::error(Code::Io, "no plan: give a plan file, or set the original's BAK_* variables")
                    .help("e.g. `backup-ns run plans/app.yaml`; `backup-ns plan from-env` shows what BAK_* variables map to"),
            ]));
        }
    };
    if path.is_some() && is_bak_env(env) {
        warnings.push(
            Diag::warning(
                Code::EnvCompat,
                "BAK_* variables are ignored because a plan file is given",
            )
            .help("remove the BAK_* variables, or drop the plan file to use them"),
        );
    }

    let env_layer = env_layer(env)?;
    let flag_layer = flag_layer(overrides)?;
    if env_layer.is_empty() && flag_layer.is_empty() {
        return Ok(LoadedPlan {
            plan: base,
            origin,
            warnings,
        });
    }
    let base_json = serde_json::to_value(&base).map_err(|e| {
        Diagnostics(vec![Diag::error(
            Code::Io,
            format!("cannot merge settings: {e}"),
        )])
    })?;
    let mut base_json = base_json;
    // A retention policy is one value: an override replaces it instead of merging tier by tier.
    if (env_layer.contains_key("retention") || flag_layer.contains_key("retention"))
        && let Value::Object(map) = &mut base_json
    {
        map.remove("retention");
    }
    let merged: Value = Figment::from(Serialized::defaults(base_json))
        .merge(Serialized::defaults(Value::Object(env_layer)))
        .merge(Serialized::defaults(Value::Object(flag_layer)))
        .extract()
        .map_err(|e| {
            Diagnostics(vec![Diag::error(
                Code::EnvCompat,
                format!("cannot merge settings: {e}"),
            )])
        })?;
    let profiles = profiles.unwrap_or_default();
    let (plan, diags) = plan_from_document(
        &merged,
        "effective plan (plan + BACKUP_NS_* environment + flags)",
        &profiles,
    );
    match plan {
        Some(plan) => {
            // The merged document repeats the base plan's warnings; keep the base ones (they point at the file).
            let fresh: Vec<Diag> = diags
                .into_iter()
                .filter(|d| {
                    !warnings
                        .iter()
                        .any(|w| w.code == d.code && w.message == d.message)
                })
                .collect();
            warnings.extend(fresh);
            Ok(LoadedPlan {
                plan,
                origin,
                warnings,
            })
        }
        None => Err(Diagnostics(diags)),
    }
}

/// `BACKUP_NS_SNAPSHOT__READY_TIMEOUT=30m` → `{"snapshot": {"readyTimeout": "30m"}}`.
/// `__` separates levels; single `_` words become camelCase.
pub fn env_layer(env: &EnvMap) -> Result<Map<String, Value>, Diagnostics> {
    let mut out = Map::new();
    let mut diags = Vec::new();
    for (key, value) in env {
        let Some(rest) = key.strip_prefix("BACKUP_NS_") else {
            continue;
        };
        if NON_PLAN_VARS.contains(&key.as_str()) || rest.is_empty() {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(camel_case).collect();
        match parse_value(key, value) {
            Ok(v) => insert_path(&mut out, &path, v),
            Err(d) => diags.push(*d),
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(Diagnostics(diags))
    }
}

fn flag_layer(overrides: &Overrides) -> Result<Map<String, Value>, Diagnostics> {
    let mut out = Map::new();
    let mut diags = Vec::new();
    for set in &overrides.sets {
        let Some((key, value)) = set.split_once('=') else {
            diags.push(
                Diag::error(Code::EnvCompat, format!("`--set {set}` needs KEY=VALUE"))
                    .help("e.g. `--set snapshot.readyTimeout=30m`"),
            );
            continue;
        };
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        match parse_value(&format!("--set {key}"), value) {
            Ok(v) => insert_path(&mut out, &path, v),
            Err(d) => diags.push(*d),
        }
    }
    if let Some(ns) = &overrides.namespace {
        out.insert("namespace".into(), Value::String(ns.clone()));
    }
    if let Some(dry) = overrides.dry_run {
        out.insert("dryRun".into(), Value::Bool(dry));
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(Diagnostics(diags))
    }
}

/// `READY_TIMEOUT` → `readyTimeout`.
fn camel_case(word: &str) -> String {
    let mut out = String::new();
    for (i, part) in word.split('_').filter(|p| !p.is_empty()).enumerate() {
        let lower = part.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut chars = lower.chars();
            if let Some(c) = chars.next() {
                out.push(c.to_ascii_uppercase());
                out.extend(chars);
            }
        }
    }
    out
}

/// A value parsed like a YAML scalar or flow collection (`true`, `5`, `[a, b]`, `{daily: 3}`), else a string.
fn parse_value(name: &str, value: &str) -> Result<Value, Box<Diag>> {
    let source = SourceFile::new(name, value);
    let mut diags = Vec::new();
    match parse(&source, Format::Yaml, &mut diags) {
        Some(node) if diags.is_empty() => Ok(to_json(&node)),
        _ if value.starts_with(['[', '{']) => {
            Err(Box::new(diags.into_iter().next().unwrap_or_else(|| {
                Diag::error(Code::EnvCompat, format!("{name} is not a valid value"))
            })))
        }
        _ => Ok(Value::String(value.to_string())),
    }
}

fn insert_path(map: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = map;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else {
            return;
        };
        cur = next;
    }
    cur.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn plan_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn env_keys_map_to_camel_case_paths() {
        let layer = env_layer(&env(&[
            ("BACKUP_NS_SNAPSHOT__READY_TIMEOUT", "30m"),
            ("BACKUP_NS_DRY_RUN", "true"),
            ("BACKUP_NS_LOG", "debug"),
            ("OTHER", "x"),
        ]))
        .unwrap();
        assert_eq!(
            Value::Object(layer),
            serde_json::json!({"snapshot": {"readyTimeout": "30m"}, "dryRun": true})
        );
    }

    #[test]
    fn flags_beat_env_which_beats_the_plan_file() {
        let (_dir, path) = plan_file(
            "name: app\ntargets: [data]\nnamespace: from-file\ndryRun: false\nsnapshot:\n  readyTimeout: 5m\n",
        );
        let e = env(&[
            ("BACKUP_NS_NAMESPACE", "from-env"),
            ("BACKUP_NS_SNAPSHOT__READY_TIMEOUT", "7m"),
        ]);
        let flags = Overrides {
            namespace: Some("from-flag".into()),
            dry_run: Some(true),
            ..Overrides::default()
        };
        let loaded = load_effective(Some(&path), &e, &flags).unwrap();
        assert_eq!(loaded.plan.namespace.as_deref(), Some("from-flag"));
        assert!(loaded.plan.dry_run);
        assert_eq!(loaded.plan.snapshot.ready_timeout, Duration::from_secs(420));
        let only_file = load_effective(Some(&path), &EnvMap::new(), &Overrides::default()).unwrap();
        assert_eq!(only_file.plan.namespace.as_deref(), Some("from-file"));
        assert_eq!(
            only_file.plan.snapshot.ready_timeout,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn a_bad_override_is_diagnosed_like_a_bad_plan() {
        let (_dir, path) = plan_file("name: app\ntargets: [data]\n");
        let e = env(&[("BACKUP_NS_SNAPSHOT__READY_TIMEOUT", "soon")]);
        let err = load_effective(Some(&path), &e, &Overrides::default()).unwrap_err();
        assert!(err.0.iter().any(|d| d.code == Code::BadDuration), "{err:?}");
    }

    #[test]
    fn set_flags_reach_nested_keys() {
        let (_dir, path) = plan_file("name: app\ntargets: [data]\n");
        let flags = Overrides {
            sets: vec!["retention={days: 3}".into(), "lock.enabled=true".into()],
            ..Overrides::default()
        };
        let loaded = load_effective(Some(&path), &EnvMap::new(), &flags).unwrap();
        assert_eq!(
            loaded.plan.retention.policy,
            crate::vocab::retention::RetentionPolicy::Days(3)
        );
        assert!(loaded.plan.lock.enabled);
    }

    #[test]
    fn without_a_plan_file_the_bak_env_is_used() {
        let loaded = load_effective(
            None,
            &env(&[("BAK_DB_SKIP", "true")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(loaded.origin, Origin::BakEnv);
        assert!(loaded.plan.hooks.pre.is_empty());
        let err = load_effective(None, &EnvMap::new(), &Overrides::default()).unwrap_err();
        assert!(err.has_errors());
    }
}
