//! BAK_* environments from the reference README round-trip: env → `plan from-env` → plan file → load → same plan.

use assert_cmd::Command;
use backup_ns::cli::plan::{PlanFormat, render};
use backup_ns::plan::env::{EnvMap, plan_from_bak_env};
use backup_ns::plan::{HookAction, Plan, Retention, load_file};
use backup_ns::vocab::retention::{RetentionPolicy, TierCounts};

/// `kubectl envx cronjob/backup` in the reference README.
const ENVX_CRONJOB: &[(&str, &str)] = &[
    ("BAK_DB_POSTGRES", "true"),
    ("BAK_FLOCK", "true"),
    ("BAK_LABEL_VS_RETAIN", "daily_weekly_monthly"),
    ("BAK_LABEL_VS_TYPE", "cronjob"),
    ("BAK_NAMESPACE", "go-starter-dev"),
    ("BAK_LABEL_VS_POD", "backup"),
    ("TZ", "Europe/Vienna"),
];

/// The adhoc variant: `kubectl envx cronjob/backup BAK_LABEL_VS_TYPE=adhoc BAK_FLOCK=false BAK_LABEL_VS_RETAIN=days`.
fn envx_adhoc() -> EnvMap {
    let mut env = env(ENVX_CRONJOB);
    env.insert("BAK_LABEL_VS_TYPE".into(), "adhoc".into());
    env.insert("BAK_FLOCK".into(), "false".into());
    env.insert("BAK_LABEL_VS_RETAIN".into(), "days".into());
    env
}

fn env(pairs: &[(&str, &str)]) -> EnvMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn reload(text: &str, ext: &str) -> Plan {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("from-env.{ext}"));
    std::fs::write(&path, text).unwrap();
    let (plan, diags) = load_file(&path, None);
    plan.unwrap_or_else(|| panic!("generated {ext} does not load:\n{text}\n{diags:?}"))
}

#[test]
fn the_readme_cronjob_env_maps_to_the_expected_plan() {
    let (plan, warnings) = plan_from_bak_env(&env(ENVX_CRONJOB)).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(plan.namespace.as_deref(), Some("go-starter-dev"));
    assert_eq!(plan.targets, ["data"]);
    assert_eq!(plan.snapshot.backup_type.as_str(), "cronjob");
    assert_eq!(plan.snapshot.pod.as_deref(), Some("backup"));
    assert!(plan.lock.enabled);
    assert_eq!(
        plan.retention,
        Retention {
            profile: None,
            policy: RetentionPolicy::Tiers(TierCounts {
                daily: 7,
                weekly: 4,
                monthly: 12,
                yearly: 0
            }),
        }
    );
    assert!(matches!(plan.hooks.pre[0].action, HookAction::Postgres(_)));
}

#[test]
fn bak_envs_round_trip_through_yaml_and_toml_plan_files() {
    for env in [env(ENVX_CRONJOB), envx_adhoc()] {
        let (plan, _) = plan_from_bak_env(&env).unwrap();
        for (format, ext) in [(PlanFormat::Yaml, "yaml"), (PlanFormat::Toml, "toml")] {
            let text = render(&plan, format).unwrap();
            assert_eq!(
                reload(&text, ext),
                plan,
                "{ext} round-trip changed the plan:\n{text}"
            );
        }
    }
}

#[test]
fn the_binary_prints_a_plan_that_loads_back_to_the_same_plan() {
    for format in ["yaml", "toml"] {
        let mut cmd = Command::cargo_bin("backup-ns").unwrap();
        cmd.env_clear()
            .args(["plan", "from-env", "--format", format]);
        for (k, v) in envx_adhoc() {
            cmd.env(k, v);
        }
        let out = cmd.assert().code(0).get_output().stdout.clone();
        let text = String::from_utf8(out).unwrap();
        let (expected, _) = plan_from_bak_env(&envx_adhoc()).unwrap();
        assert_eq!(reload(&text, format), expected);
        assert_eq!(
            expected.retention,
            Retention {
                profile: None,
                policy: RetentionPolicy::Days(30),
            }
        );
        assert!(!expected.lock.enabled);
    }
}

#[test]
fn every_example_plan_round_trips_through_its_printed_form() {
    for entry in std::fs::read_dir("plans").unwrap() {
        let path = entry.unwrap().path();
        if !backup_ns::plan::is_plan_file(&path) {
            continue;
        }
        let (plan, diags) = load_file(&path, None);
        let plan = plan.unwrap_or_else(|| panic!("{}: {diags:?}", path.display()));
        let text = render(&plan, PlanFormat::Yaml).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // The rhai script path is already resolved; keep it reachable from the temp dir.
        let printed = dir.path().join("plan.yaml");
        std::fs::write(
            &printed,
            text.replace(
                "script: plans/",
                &format!("script: {}/plans/", env!("CARGO_MANIFEST_DIR")),
            ),
        )
        .unwrap();
        let (again, diags) = load_file(&printed, None);
        let mut again = again
            .unwrap_or_else(|| panic!("{}: printed form does not load: {diags:?}", path.display()));
        // Restore the script paths for the comparison.
        for hook in again
            .hooks
            .pre
            .iter_mut()
            .chain(again.hooks.post.iter_mut())
        {
            if let HookAction::Rhai(r) = &mut hook.action {
                let rel = r
                    .script
                    .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .unwrap()
                    .to_path_buf();
                r.script = rel.strip_prefix("/").unwrap_or(&rel).to_path_buf();
            }
        }
        assert_eq!(again, plan, "{}", path.display());
    }
}
