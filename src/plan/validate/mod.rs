//! Raw plan → validated [`Plan`]: every default applied and every check made, section by section ([`hooks`],
//! [`snapshot`], [`retention`], [`lock`], [`verify`]; the top-level fields here).
//!
//! Nothing stops at the first problem: reading the raw plan ([`super::raw`]) and validating it push every
//! diagnostic into one [`Collector`] (unknown keys with suggestions, wrong types, missing fields, bad values,
//! cross-field checks such as duplicate targets and the nameTemplate worst case). A plan is returned only when
//! no error was found; warnings never block it.

pub mod hooks;
pub mod lock;
pub mod retention;
pub mod snapshot;
pub mod verify;

pub use retention::ProfileLookup;

use super::diag::{Code, Collector, Diag, SourceFile};
use super::model::{Plan, Retention, Snapshot, is_env_ref, is_secret_key};
use super::node::Node;
use super::raw::{self, DurationText, JsonMap, Keys, Spanned};
use super::rules;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What validation needs besides the plan: where the plan lives (to find rhai scripts) and the profiles.
pub struct Context<'a> {
    /// Directory of the plan file; `None` for plans with no file (env), where rhai hooks cannot be resolved.
    pub base_dir: Option<&'a Path>,
    pub profiles: &'a dyn ProfileLookup,
}

/// Reads and validates a whole plan. Returns the plan when there is no error, and every diagnostic either way.
pub fn validate_plan(
    root: &Node,
    source: &Arc<SourceFile>,
    ctx: &Context<'_>,
) -> (Option<Plan>, Vec<Diag>) {
    let mut cx = Collector::new(source);
    let plan = raw::Plan::from_root(root, &mut cx).and_then(|raw| plan(&raw, root, ctx, &mut cx));
    let plan = if cx.has_errors() { None } else { plan };
    (plan, cx.diags)
}

/// The largest retention count or `days` accepted (about 270 years of dailies); more is surely a typo.
pub const MAX_COUNT: i128 = 100_000;

fn plan(raw: &raw::Plan, root: &Node, ctx: &Context<'_>, cx: &mut Collector) -> Option<Plan> {
    let keys = &raw.keys;
    let anchor = keys.first().unwrap_or(root.span.start..root.span.start);
    let name = match &raw.name {
        Some(n) => {
            name_check(
                cx,
                n,
                "plan name",
                rules::dns1123_label,
                "plan names are DNS-1123 labels: lowercase letters, digits and `-`, at most 63 characters",
            );
            Some(n.value.clone())
        }
        None => {
            missing(
                cx,
                keys,
                &anchor,
                "the plan",
                "name",
                "add `name: my-app` (a DNS-1123 label)",
            );
            None
        }
    };
    if let Some(ns) = &raw.namespace {
        name_check(
            cx,
            ns,
            "namespace",
            rules::dns1123_label,
            "namespaces are DNS-1123 labels",
        );
    }
    let targets = targets(raw, &anchor, cx);
    let hooks = raw
        .hooks
        .as_ref()
        .map(|h| hooks::validate(h, ctx, cx))
        .unwrap_or_default();
    // Invalid PVC names are reported once, as names; the template check only looks at the valid ones.
    let valid_targets: Vec<&Spanned<String>> = targets
        .iter()
        .filter(|t| rules::dns1123_subdomain(t).is_ok() && t.len() <= 63)
        .collect();
    let valid_names: Vec<String> = valid_targets.iter().map(|t| t.value.clone()).collect();
    let snapshot = match &raw.snapshot {
        Some(s) => {
            let anchor = keys.span_of("snapshot").unwrap_or(s.span.clone());
            snapshot::validate(s, anchor, &valid_names, name.as_deref(), cx)
        }
        // Written but unusable: reading it said why.
        None if keys.has_value("snapshot") => Snapshot::default(),
        None => {
            let snap = Snapshot::default();
            // The default template can still overflow with long PVC names.
            if let Err(why) = rules::check_template(
                &snap.name_template,
                &valid_names,
                name.as_deref().unwrap_or("plan"),
                None,
            ) && let Some(longest) = valid_targets.iter().max_by_key(|t| t.len())
            {
                cx.err(
                    Code::NameTemplate,
                    longest.span.clone(),
                    "the default snapshot name template `{pvc}-{timestamp}-{rand}` is too long for this PVC".into(),
                    &why,
                    "set `snapshot.nameTemplate` to something shorter, e.g. `{plan}-{timestamp}-{rand}`",
                );
            }
            snap
        }
    };
    hot_needs_ready_snapshots(raw, &hooks, &snapshot, cx);
    let retention = match &raw.retention {
        Some(r) => {
            retention::validate(r, keys.span_of("retention"), ctx.profiles, cx).unwrap_or_default()
        }
        None => Retention::default(),
    };
    let lock = raw
        .lock
        .as_ref()
        .map(|l| lock::validate(l, cx))
        .unwrap_or_default();
    let verify = raw
        .verify
        .as_ref()
        .map(|v| verify::validate(v, cx))
        .unwrap_or_default();
    let vars = raw
        .vars
        .as_ref()
        .map(|v| json_map(cx, v, "vars"))
        .unwrap_or_default();
    if let Some(tz) = &raw.time_zone
        && tz.value.parse::<chrono_tz::Tz>().is_err()
    {
        cx.err(
            Code::UnknownTimeZone,
            tz.span.clone(),
            format!("`{}` is not a known time zone", tz.value),
            "not an IANA time zone name",
            "write an IANA name such as `UTC`, `Europe/Vienna` or `America/New_York`",
        );
    }
    Some(Plan {
        name: name?,
        namespace: raw.namespace.as_ref().map(|n| n.value.clone()),
        targets: targets.iter().map(|t| t.value.clone()).collect(),
        hooks,
        snapshot,
        retention,
        lock,
        verify,
        dry_run: raw.dry_run.as_ref().is_some_and(|d| d.value),
        time_zone: raw.time_zone.as_ref().map(|t| t.value.clone()),
        vars,
    })
}

/// A `mode: hot` hook ends its session once the snapshots are cut, which the run only knows by waiting for them
/// to be ready: `snapshot.waitUntilReady: false` would end the backup before the cut.
fn hot_needs_ready_snapshots(
    raw: &raw::Plan,
    hooks: &super::model::Hooks,
    snapshot: &Snapshot,
    cx: &mut Collector,
) {
    if snapshot.wait_until_ready {
        return;
    }
    let Some(hot) = hooks.pre.iter().find(|h| h.action.is_hot()) else {
        return;
    };
    let Some(span) = raw
        .snapshot
        .as_ref()
        .and_then(|s| s.keys.span_of("waitUntilReady"))
    else {
        return;
    };
    cx.err(
        Code::HotModePlacement,
        span,
        format!(
            "the `mode: hot` {} hook needs the run to wait for its snapshots",
            hot.action.kind()
        ),
        "the hot session would end before the snapshots are cut",
        "remove `waitUntilReady: false`: a hot backup ends only once every snapshot is ready",
    );
}

/// The targets with their spans, each checked as a PVC name, none listed twice.
fn targets(raw: &raw::Plan, anchor: &Range<usize>, cx: &mut Collector) -> Vec<Spanned<String>> {
    let Some(list) = &raw.targets else {
        missing(
            cx,
            &raw.keys,
            anchor,
            "the plan",
            "targets",
            "list the PVCs to snapshot, e.g. `targets: [data]`",
        );
        return Vec::new();
    };
    if list.is_empty() {
        cx.err(
            Code::NoTargets,
            list.span.clone(),
            "the plan has no targets".into(),
            "empty list",
            "list at least one PVC, e.g. `targets: [data]`",
        );
    }
    let mut seen: Vec<Spanned<String>> = Vec::new();
    let mut index: HashMap<String, Range<usize>> = HashMap::new();
    for target in list.iter() {
        let name = &target.value;
        if let Err(why) = rules::dns1123_subdomain(name).and_then(|()| {
            if name.len() > 63 {
                Err(format!("is {} characters long; PVC names go into the `backup-ns.sh/pvc` label, which allows at most 63", name.len()))
            } else {
                Ok(())
            }
        }) {
            cx.err(Code::InvalidName, target.span.clone(), format!("target PVC `{name}` is not a valid name"), &why, "PVC names are DNS-1123 names: lowercase letters, digits, `-` and `.`");
        }
        if let Some(first) = first_seen(&mut seen, &mut index, target) {
            let d = Diag::error(
                Code::DuplicateTarget,
                format!("PVC `{name}` is listed twice"),
            )
            .at(&cx.src, target.span.clone(), "duplicate")
            .also(first, "first listed here")
            .help("remove the duplicate; each PVC is snapshotted once per run");
            cx.diags.push(d);
        }
    }
    seen
}

/// Remembers `item` in `seen`; when its value was there already, returns where it was first seen instead.
/// `index` finds earlier values in constant time, so a long list stays linear.
fn first_seen(
    seen: &mut Vec<Spanned<String>>,
    index: &mut HashMap<String, Range<usize>>,
    item: &Spanned<String>,
) -> Option<Range<usize>> {
    if let Some(first) = index.get(&item.value) {
        return Some(first.clone());
    }
    index.insert(item.value.clone(), item.span.clone());
    seen.push(item.clone());
    None
}

/// A required key that has no usable value. A key written with a value that could not be read was reported
/// by reading; one written as `null` is pointed at; an absent one is reported at `anchor`.
fn missing(
    cx: &mut Collector,
    keys: &Keys,
    anchor: &Range<usize>,
    what: &str,
    key: &str,
    help: &str,
) {
    if keys.has_value(key) {
        return;
    }
    if let Some(span) = keys.span_of(key) {
        cx.err(
            Code::MissingField,
            span,
            format!("the required field `{key}` of {what} has no value"),
            "no value",
            help,
        );
        return;
    }
    cx.err(
        Code::MissingField,
        anchor.clone(),
        format!("{what} is missing the required field `{key}`"),
        &format!("`{key}` is required here"),
        help,
    );
}

fn name_check(
    cx: &mut Collector,
    value: &Spanned<String>,
    what: &str,
    rule: fn(&str) -> Result<(), String>,
    help: &str,
) {
    if let Err(why) = rule(value) {
        cx.err(
            Code::InvalidName,
            value.span.clone(),
            format!("{what} `{}` is not a valid Kubernetes name", value.value),
            &why,
            help,
        );
    }
}

/// An integer in `min..=max`; `code` (`NegativeCount` or `OutOfRange`) is used below `min`.
fn int(
    cx: &mut Collector,
    value: &Option<Spanned<i128>>,
    key: &str,
    min: i128,
    max: i128,
    code: Code,
) -> Option<i128> {
    let v = value.as_ref()?;
    let i = v.value;
    if (min..=max).contains(&i) {
        return Some(i);
    }
    let (code, msg, label) = if i < 0 && code == Code::NegativeCount {
        (
            code,
            format!("`{key}` is {i}; counts cannot be negative"),
            "negative count",
        )
    } else {
        (
            Code::OutOfRange,
            format!("`{key}` is {i}; it must be between {min} and {max}"),
            "out of range",
        )
    };
    cx.err(
        code,
        v.span.clone(),
        msg,
        label,
        &format!("use a value from {min} to {max}"),
    );
    None
}

fn duration(
    cx: &mut Collector,
    value: &Option<Spanned<DurationText>>,
    key: &str,
    default: Duration,
) -> Duration {
    let Some(v) = value else {
        return default;
    };
    let text = &v.value.0;
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => {
            cx.err(
                Code::BadDuration,
                v.span.clone(),
                format!("`{key}` is zero"),
                "zero duration",
                "use a positive duration such as `30s`",
            );
            default
        }
        Ok(d) => d,
        Err(e) => {
            cx.err(
                Code::BadDuration,
                v.span.clone(),
                format!("`{key}` is not a valid duration: `{text}`"),
                &format!("not a duration ({e})"),
                "write a duration with a unit, e.g. `30s`, `15m` or `1h30m`",
            );
            default
        }
    }
}

/// `vars`/`args` as JSON, with a warning for each literal secret.
fn json_map(cx: &mut Collector, map: &JsonMap, what: &str) -> BTreeMap<String, serde_json::Value> {
    for (k, v) in &map.0 {
        if is_secret_key(k)
            && let serde_json::Value::String(value) = &v.value
            && !value.is_empty()
            && !is_env_ref(value)
        {
            cx.warn(
                Code::LiteralSecret,
                v.span.clone(),
                format!("literal secret in `{what}.{}`", k.value),
                "this secret ends up in Git (it is redacted in the plan annotation)",
                "read it inside the container instead, e.g. from an env reference such as `${API_TOKEN}`",
            );
        }
    }
    map.to_map()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{DEFAULT_NAME_TEMPLATE, HookAction};
    use crate::plan::node::{Format, parse};
    use crate::plan::profiles::Profiles;
    use crate::vocab::suggest::suggest;

    fn load(yaml: &str) -> (Option<Plan>, Vec<Diag>) {
        let src = SourceFile::new("t.yaml", yaml);
        let mut diags = Vec::new();
        let root = parse(&src, Format::Yaml, &mut diags).expect("test YAML parses");
        let profiles = Profiles::builtin();
        let ctx = Context {
            base_dir: None,
            profiles: &profiles,
        };
        let (plan, mut more) = validate_plan(&root, &src, &ctx);
        diags.append(&mut more);
        (plan, diags)
    }

    fn codes(yaml: &str) -> Vec<Code> {
        load(yaml).1.iter().map(|d| d.code).collect()
    }

    const BASE: &str = "name: app\ntargets: [data]\n";

    #[test]
    fn a_minimal_plan_gets_every_default() {
        let (plan, diags) = load(BASE);
        assert!(diags.is_empty(), "{diags:?}");
        let plan = plan.unwrap();
        assert_eq!(plan, Plan::new("app", ["data"]));
        assert_eq!(plan.snapshot.name_template, DEFAULT_NAME_TEMPLATE);
        assert_eq!(plan.retention, Retention::default());
        assert!(plan.snapshot.wait_until_ready);
        assert!(!plan.lock.enabled);
    }

    #[test]
    fn each_check_reports_its_own_code() {
        let hook = |body: &str| format!("{BASE}hooks:\n  pre:\n    - {body}\n");
        let post = |body: &str| format!("{BASE}hooks:\n  post:\n    - {body}\n");
        let cases: Vec<(String, Code)> = vec![
            (format!("{BASE}colour: red\n"), Code::UnknownKey),
            ("targets: [data]\n".into(), Code::MissingField),
            ("name: app\ntargets: data\n".into(), Code::WrongType),
            ("name: app\ntargets: []\n".into(), Code::NoTargets),
            ("name: app\ntargets: [a, a]\n".into(), Code::DuplicateTarget),
            ("name: App\ntargets: [a]\n".into(), Code::InvalidName),
            (
                format!("{BASE}snapshot:\n  readyTimeout: 5 parsecs\n"),
                Code::BadDuration,
            ),
            (
                format!("{BASE}snapshot:\n  readyTimeout: 0s\n"),
                Code::BadDuration,
            ),
            (
                format!("{BASE}snapshot:\n  consistency: crash\n"),
                Code::UnknownVariant,
            ),
            (
                format!("{BASE}snapshot:\n  nameTemplate: \"{{pvc}}-{{when}}\"\n"),
                Code::NameTemplate,
            ),
            (
                format!("{BASE}snapshot:\n  nameTemplate: \"{{pvc}}\"\n"),
                Code::NameTemplateNotUnique,
            ),
            (
                format!("{BASE}snapshot:\n  labels: {{\"a b\": x}}\n"),
                Code::InvalidLabel,
            ),
            (
                format!("{BASE}snapshot:\n  labels: {{team: \"-x\"}}\n"),
                Code::InvalidLabel,
            ),
            (format!("{BASE}retention: {{}}\n"), Code::RetentionEmpty),
            (
                format!("{BASE}retention: {{days: 0}}\n"),
                Code::RetentionEmpty,
            ),
            (
                format!("{BASE}retention: {{days: 3, weekly: 1}}\n"),
                Code::RetentionMixed,
            ),
            (
                format!("{BASE}retention: {{monthly: -2}}\n"),
                Code::NegativeCount,
            ),
            (
                format!("{BASE}retention: {{daily: 99999999999}}\n"),
                Code::OutOfRange,
            ),
            (
                format!("{BASE}retention: {{daily: 4294967295, weekly: 4294967295}}\n"),
                Code::OutOfRange,
            ),
            (format!("{BASE}retention: gold\n"), Code::UnknownProfile),
            (format!("{BASE}lock: {{slots: 0}}\n"), Code::OutOfRange),
            (format!("{BASE}lock: {{dir: locks}}\n"), Code::BadPath),
            (hook("{type: postgres, workload: app}"), Code::BadWorkload),
            (
                hook("{type: postgres, workload: deployment/db, threshold: 0}"),
                Code::ThresholdRange,
            ),
            (
                hook("{type: mysql, workload: deployment/db, port: 0}"),
                Code::OutOfRange,
            ),
            (
                hook("{type: postgres, workload: deployment/db, dumpFile: /tmp/x.gz}"),
                Code::DumpPathUnusual,
            ),
            (
                hook("{type: postgres, workload: deployment/db, dumpFile: x.gz}"),
                Code::BadPath,
            ),
            (
                hook("{type: mysql, workload: deployment/db, password: secret}"),
                Code::LiteralSecret,
            ),
            (
                hook("{type: exec, workload: deployment/a, container: a, command: [\"\"]}"),
                Code::EmptyCommand,
            ),
            (
                hook(
                    "{type: exec, workload: deployment/a, container: a, command: [x], when: always}",
                ),
                Code::WhenOnPreHook,
            ),
            (
                hook("{name: Orders_DB, type: postgres, workload: deployment/db}"),
                Code::InvalidName,
            ),
            (hook("{type: backup}"), Code::UnknownHookType),
            (hook("{workload: deployment/a}"), Code::MissingField),
            (
                hook("{type: rhai, script: /nonexistent/x.rhai}"),
                Code::HookScriptMissing,
            ),
            (
                post(
                    "{type: exec, workload: deployment/a, container: a, command: [x], when: later}",
                ),
                Code::UnknownVariant,
            ),
            (
                format!("{BASE}vars: {{apiToken: abc123}}\n"),
                Code::LiteralSecret,
            ),
        ];
        for (yaml, code) in cases {
            let found = codes(&yaml);
            assert!(
                found.contains(&code),
                "expected {} for:\n{yaml}\ngot {found:?}",
                code.as_str()
            );
        }
    }

    #[test]
    fn a_required_key_without_value_is_reported_at_the_key() {
        let (_, diags) = load("name: app\ntargets:\n");
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].code, Code::MissingField);
        assert_eq!((diags[0].location().1, diags[0].location().2), (2, 1));
    }

    #[test]
    fn warnings_do_not_block_the_plan_but_errors_do() {
        let (plan, diags) = load(&format!("{BASE}snapshot:\n  nameTemplate: \"{{pvc}}\"\n"));
        assert!(plan.is_some());
        assert!(diags.iter().all(|d| !d.is_error()));
        let (plan, _) = load("name: app\ntargets: [a, a]\n");
        assert!(plan.is_none());
    }

    #[test]
    fn all_problems_are_collected_not_just_the_first() {
        let found = codes("name: App\ntargets: [a, a]\nlock: {slots: 0}\ncolour: red\n");
        for code in [
            Code::InvalidName,
            Code::DuplicateTarget,
            Code::OutOfRange,
            Code::UnknownKey,
        ] {
            assert!(found.contains(&code), "{found:?}");
        }
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let (_, diags) = load("# café ☕\nname: app\ntargets: [dätä, Éx]\n");
        let locs: Vec<(usize, usize)> = diags
            .iter()
            .map(|d| (d.location().1, d.location().2))
            .collect();
        assert_eq!(locs, [(3, 11), (3, 17)], "{diags:?}");
    }

    #[test]
    fn a_profile_reference_resolves_with_its_name() {
        let (plan, _) = load(&format!("{BASE}retention: {{profile: adhoc}}\n"));
        assert_eq!(
            plan.unwrap().retention,
            Retention {
                profile: Some("adhoc".into()),
                policy: crate::vocab::retention::RetentionPolicy::Days(30),
            }
        );
    }

    #[test]
    fn a_hot_hook_validates_and_its_printed_plan_loads_back_as_the_same_plan() {
        let (plan, diags) = load(&format!(
            "{BASE}hooks:\n  pre:\n    - {{type: postgres, workload: sts/db, mode: hot}}\n    - {{type: mysql, workload: sts/my, mode: hot}}\n"
        ));
        assert!(diags.is_empty(), "{diags:?}");
        let plan = plan.unwrap();
        assert!(plan.hooks.pre.iter().all(|h| h.action.is_hot()));
        let printed = plan.redacted_json().to_string();
        assert!(!printed.contains("dumpFile"), "{printed}");
        let (again, diags) = load(&printed);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(again.unwrap(), plan);
    }

    #[test]
    fn db_hooks_default_to_the_original_container_env_credentials() {
        let (plan, diags) = load(&format!(
            "{BASE}hooks:\n  pre:\n    - {{type: postgres, workload: sts/db, compression: zstd}}\n"
        ));
        assert!(diags.is_empty(), "{diags:?}");
        let plan = plan.unwrap();
        let HookAction::Postgres(pg) = &plan.hooks.pre[0].action else {
            panic!("expected postgres");
        };
        assert_eq!(pg.dump.user, "${POSTGRES_USER}");
        assert_eq!(pg.dump.password, "${POSTGRES_PASSWORD}");
        assert_eq!(pg.dump.database, "${POSTGRES_DB}");
        assert_eq!(pg.dump.dump_file, "/var/lib/postgresql/data/dump.sql.zst");
        assert_eq!(pg.dump.threshold, 90);
        assert_eq!(plan.hooks.pre[0].timeout, Duration::from_secs(3600));
    }

    #[test]
    fn hooks_keep_their_names_and_a_name_used_twice_points_at_the_second_use() {
        let exec = |name: &str| {
            format!(
                "    - name: {name}\n      type: exec\n      workload: deployment/a\n      container: a\n      command: [x]\n"
            )
        };
        let yaml = format!(
            "{BASE}hooks:\n  pre:\n{}{}  post:\n{}",
            exec("orders"),
            exec("flush"),
            exec("orders")
        );
        let (plan, diags) = load(&yaml);
        assert!(plan.is_none());
        assert_eq!(diags.len(), 1, "{diags:?}");
        let d = &diags[0];
        assert_eq!(d.code, Code::DuplicateHookName);
        assert_eq!((d.location().1, d.location().2), (16, 13));
        assert_eq!(
            d.message,
            "hook name `orders` is used twice (first on line 5)"
        );
        assert_eq!(d.secondary.len(), 1);

        let unique = yaml.replacen("name: orders", "name: dump", 1);
        let (plan, diags) = load(&unique);
        assert!(diags.is_empty(), "{diags:?}");
        let plan = plan.unwrap();
        let names: Vec<Option<&str>> = plan
            .hooks_with_positions()
            .map(|(_, h)| h.name.as_deref())
            .collect();
        assert_eq!(names, [Some("dump"), Some("flush"), Some("orders")]);
    }

    #[test]
    fn suggestions_tolerate_case_and_separators() {
        let keys = ["name", "targets", "dryRun", "nameTemplate"];
        assert_eq!(suggest("dry_run", keys), Some("dryRun"));
        assert_eq!(suggest("taregts", keys), Some("targets"));
        assert_eq!(suggest("name_template", keys), Some("nameTemplate"));
        assert_eq!(suggest("zzz", keys), None);
    }
}
