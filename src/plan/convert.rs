//! The one converter from the spanned node tree to a validated [`Plan`].
//!
//! It walks the tree once, applies defaults, and pushes a diagnostic for every problem it meets (unknown keys
//! with suggestions, wrong types, missing fields, bad values, cross-field checks such as duplicate targets and
//! the nameTemplate worst case) instead of stopping at the first. A plan is returned only when no error was
//! found; warnings never block it.

use super::diag::{Code, Diag, SourceFile};
use super::model::*;
use super::node::{Key, Node, NodeKind};
use super::profiles::Profiles;
use super::rules;
use crate::engine::ports::WorkloadRef;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What the converter needs besides the tree: where the plan lives (to find rhai scripts) and the profiles.
pub struct Context<'a> {
    /// Directory of the plan file; `None` for plans with no file (env), where rhai hooks cannot be resolved.
    pub base_dir: Option<&'a Path>,
    pub profiles: &'a Profiles,
}

/// Converts and validates a whole plan. `Ok` carries the warnings found along the way.
pub fn convert_plan(
    root: &Node,
    source: &Arc<SourceFile>,
    ctx: &Context<'_>,
) -> (Option<Plan>, Vec<Diag>) {
    let mut cx = Cx {
        src: Arc::clone(source),
        diags: Vec::new(),
        ctx,
    };
    let plan = cx.plan(root);
    let has_errors = cx.diags.iter().any(Diag::is_error);
    (if has_errors { None } else { plan }, cx.diags)
}

/// Converts a retention value (profile name or inline policy); used for plans and the profiles file.
pub fn convert_retention(
    node: &Node,
    source: &Arc<SourceFile>,
    profiles: &Profiles,
    diags: &mut Vec<Diag>,
) -> Option<Retention> {
    let ctx = Context {
        base_dir: None,
        profiles,
    };
    let mut cx = Cx {
        src: Arc::clone(source),
        diags: Vec::new(),
        ctx: &ctx,
    };
    let r = cx.retention(node, None);
    diags.append(&mut cx.diags);
    r
}

/// The best "did you mean" candidate for an unknown name.
pub fn suggest<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let n = norm(name);
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = if norm(c) == n {
            2.0
        } else {
            strsim::jaro_winkler(&n, &norm(c))
        };
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

struct Cx<'a> {
    src: Arc<SourceFile>,
    diags: Vec<Diag>,
    ctx: &'a Context<'a>,
}

/// Reads the keys of one mapping and remembers which were expected, so leftovers become unknown-key errors.
struct Fields<'n> {
    entries: &'n [(Key, Node)],
    expected: Vec<&'static str>,
    /// What this mapping is, for messages ("plan", "snapshot", "postgres hook").
    what: String,
    /// Where to point when a required field is missing.
    anchor: Range<usize>,
}

impl<'n> Fields<'n> {
    /// The value of `key`, if present and not null.
    fn get(&mut self, key: &'static str) -> Option<&'n Node> {
        self.expected.push(key);
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
            .filter(|v| v.kind != NodeKind::Null)
    }

    fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, _)| k.span.clone())
    }
}

impl Cx<'_> {
    fn err(&mut self, code: Code, span: Range<usize>, message: String, label: &str, help: &str) {
        let d = Diag::error(code, message).at(&self.src, span, label);
        self.diags
            .push(if help.is_empty() { d } else { d.help(help) });
    }

    fn warn(&mut self, code: Code, span: Range<usize>, message: String, label: &str, help: &str) {
        let d = Diag::warning(code, message)
            .at(&self.src, span, label)
            .help(help);
        self.diags.push(d);
    }

    fn wrong_type(&mut self, node: &Node, expected: &str, what: &str, help: &str) {
        let help = if help.is_empty() {
            format!(
                "`{what}` takes {expected}; see the plan reference in the README or `backup-ns schema`"
            )
        } else {
            help.to_string()
        };
        self.err(
            Code::WrongType,
            node.span.clone(),
            format!(
                "`{what}` must be {expected}, found {}",
                node.kind.type_name()
            ),
            &format!("expected {expected}"),
            &help,
        );
    }

    fn fields<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        anchor: Range<usize>,
    ) -> Option<Fields<'n>> {
        match &node.kind {
            NodeKind::Map(entries) => Some(Fields {
                entries,
                expected: Vec::new(),
                what: what.to_string(),
                anchor,
            }),
            NodeKind::Null => Some(Fields {
                entries: &[],
                expected: Vec::new(),
                what: what.to_string(),
                anchor,
            }),
            _ => {
                self.wrong_type(node, "a mapping", what, "");
                None
            }
        }
    }

    /// Reports every key that was not asked for, with a suggestion from the expected ones.
    fn finish(&mut self, f: Fields<'_>) {
        for (key, _) in f.entries {
            if f.expected.contains(&key.name.as_str()) {
                continue;
            }
            let suggestion = suggest(&key.name, f.expected.iter().copied());
            let help = match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("{} accepts: {}", f.what, f.expected.join(", ")),
            };
            self.err(
                Code::UnknownKey,
                key.span.clone(),
                format!("unknown key `{}` in {}", key.name, f.what),
                "unknown key",
                &help,
            );
        }
    }

    fn missing(&mut self, f: &Fields<'_>, key: &str, help: &str) {
        // `targets:` with no value is present but empty: point at the key itself.
        if let Some(span) = f.key_span(key) {
            self.err(
                Code::MissingField,
                span,
                format!("the required field `{key}` of {} has no value", f.what),
                "no value",
                help,
            );
            return;
        }
        self.err(
            Code::MissingField,
            f.anchor.clone(),
            format!("{} is missing the required field `{key}`", f.what),
            &format!("`{key}` is required here"),
            help,
        );
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(
                    node,
                    "a string",
                    what,
                    "quote the value to make it a string",
                );
                None
            }
        }
    }

    fn opt_string(&mut self, f: &mut Fields<'_>, key: &'static str) -> Option<String> {
        let node = f.get(key)?;
        self.string(node, key)
    }

    fn bool(&mut self, f: &mut Fields<'_>, key: &'static str, default: bool) -> bool {
        match f.get(key) {
            None => default,
            Some(Node {
                kind: NodeKind::Bool(b),
                ..
            }) => *b,
            Some(node) => {
                self.wrong_type(node, "true or false", key, "");
                default
            }
        }
    }

    /// An integer in `min..=max`; `code` (`NegativeCount` or `OutOfRange`) is used below `min`.
    fn int(
        &mut self,
        f: &mut Fields<'_>,
        key: &'static str,
        min: i128,
        max: i128,
        code: Code,
    ) -> Option<i128> {
        let node = f.get(key)?;
        match node.kind {
            NodeKind::Int(i) if (min..=max).contains(&i) => Some(i),
            NodeKind::Int(i) => {
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
                self.err(
                    code,
                    node.span.clone(),
                    msg,
                    label,
                    &format!("use a value from {min} to {max}"),
                );
                None
            }
            _ => {
                self.wrong_type(node, "an integer", key, "");
                None
            }
        }
    }

    fn duration(&mut self, f: &mut Fields<'_>, key: &'static str, default: Duration) -> Duration {
        let Some(node) = f.get(key) else {
            return default;
        };
        let text = match &node.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Int(_) | NodeKind::Float(_) => {
                self.err(
                    Code::BadDuration,
                    node.span.clone(),
                    format!("`{key}` needs a unit"),
                    "a bare number is ambiguous",
                    "write a duration with a unit, e.g. `30s`, `15m` or `1h30m`",
                );
                return default;
            }
            _ => {
                self.wrong_type(node, "a duration such as `15m`", key, "");
                return default;
            }
        };
        match humantime::parse_duration(&text) {
            Ok(d) if d.is_zero() => {
                self.err(
                    Code::BadDuration,
                    node.span.clone(),
                    format!("`{key}` is zero"),
                    "zero duration",
                    "use a positive duration such as `30s`",
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.err(
                    Code::BadDuration,
                    node.span.clone(),
                    format!("`{key}` is not a valid duration: `{text}`"),
                    &format!("not a duration ({e})"),
                    "write a duration with a unit, e.g. `30s`, `15m` or `1h30m`",
                );
                default
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        f: &mut Fields<'_>,
        key: &'static str,
        choices: &[(&'static str, T)],
        default: T,
    ) -> T {
        let Some(node) = f.get(key) else {
            return default;
        };
        let Some(text) = self.string(node, key) else {
            return default;
        };
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == text) {
            return *v;
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let help = match suggest(&text, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? allowed: {}", names.join(", ")),
            None => format!("allowed: {}", names.join(", ")),
        };
        self.err(
            Code::UnknownVariant,
            node.span.clone(),
            format!("`{text}` is not a valid `{key}`"),
            "unknown value",
            &help,
        );
        default
    }

    fn string_list(&mut self, node: &Node, what: &str) -> Vec<(String, Range<usize>)> {
        match &node.kind {
            NodeKind::Seq(items) => items
                .iter()
                .filter_map(|n| self.string(n, what).map(|s| (s, n.span.clone())))
                .collect(),
            _ => {
                self.wrong_type(node, "a list of strings", what, "");
                Vec::new()
            }
        }
    }

    fn string_map(
        &mut self,
        node: &Node,
        what: &str,
    ) -> Vec<(String, Range<usize>, String, Range<usize>)> {
        match &node.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .filter_map(|(k, v)| {
                    let value = match &v.kind {
                        NodeKind::Str(s) => s.clone(),
                        _ => {
                            self.wrong_type(
                                v,
                                "a string",
                                &format!("{what}.{}", k.name),
                                "quote the value",
                            );
                            return None;
                        }
                    };
                    Some((k.name.clone(), k.span.clone(), value, v.span.clone()))
                })
                .collect(),
            _ => {
                self.wrong_type(node, "a mapping of strings", what, "");
                Vec::new()
            }
        }
    }

    fn json_map(&mut self, node: &Node, what: &str) -> BTreeMap<String, serde_json::Value> {
        match &node.kind {
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    if is_secret_key(&k.name)
                        && let NodeKind::Str(value) = &v.kind
                        && !value.is_empty()
                        && !is_env_ref(value)
                    {
                        self.warn(
                            Code::LiteralSecret,
                            v.span.clone(),
                            format!("literal secret in `{what}.{}`", k.name),
                            "this secret ends up in Git (it is redacted in the plan annotation)",
                            "read it inside the container instead, e.g. from an env reference such as `${API_TOKEN}`",
                        );
                    }
                }
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), super::node::to_json(v)))
                    .collect()
            }
            _ => {
                self.wrong_type(node, "a mapping", what, "");
                BTreeMap::new()
            }
        }
    }

    fn name_check(
        &mut self,
        value: &str,
        span: Range<usize>,
        what: &str,
        rule: fn(&str) -> Result<(), String>,
        help: &str,
    ) {
        if let Err(why) = rule(value) {
            self.err(
                Code::InvalidName,
                span,
                format!("{what} `{value}` is not a valid Kubernetes name"),
                &why,
                help,
            );
        }
    }

    // -----------------------------------------------------------------------------------------------------

    fn plan(&mut self, root: &Node) -> Option<Plan> {
        let top_anchor = match &root.kind {
            NodeKind::Map(entries) if !entries.is_empty() => entries[0].0.span.clone(),
            _ => root.span.start..root.span.start,
        };
        let mut f = self.fields(root, "the plan", top_anchor)?;

        let name = match f.get("name") {
            Some(n) => self.string(n, "name").inspect(|s| {
                self.name_check(s, n.span.clone(), "plan name", rules::dns1123_label, "plan names are DNS-1123 labels: lowercase letters, digits and `-`, at most 63 characters");
            }),
            None => {
                self.missing(&f, "name", "add `name: my-app` (a DNS-1123 label)");
                None
            }
        };
        let namespace = f.get("namespace").and_then(|n| {
            let s = self.string(n, "namespace")?;
            self.name_check(
                &s,
                n.span.clone(),
                "namespace",
                rules::dns1123_label,
                "namespaces are DNS-1123 labels",
            );
            Some(s)
        });

        let targets = self.targets(&mut f);
        let hooks = match f.get("hooks") {
            Some(n) => self.hooks(n, f.key_span("hooks").unwrap_or(n.span.clone())),
            None => Hooks::default(),
        };
        let target_names: Vec<String> = targets.iter().map(|(t, _)| t.clone()).collect();
        // Invalid PVC names are reported once, as names; the template check only looks at the valid ones.
        let valid_targets: Vec<String> = target_names
            .iter()
            .filter(|t| rules::dns1123_subdomain(t).is_ok() && t.len() <= 63)
            .cloned()
            .collect();
        let snapshot = match f.get("snapshot") {
            Some(n) => self.snapshot(
                n,
                f.key_span("snapshot").unwrap_or(n.span.clone()),
                &valid_targets,
                name.as_deref(),
            ),
            None => {
                let snap = Snapshot::default();
                // The default template can still overflow with long PVC names.
                if let Err(why) = rules::check_template(
                    &snap.name_template,
                    &valid_targets,
                    name.as_deref().unwrap_or("plan"),
                    None,
                ) && let Some((_, span)) = targets
                    .iter()
                    .filter(|(t, _)| valid_targets.contains(t))
                    .max_by_key(|(t, _)| t.len())
                {
                    self.err(
                        Code::NameTemplate,
                        span.clone(),
                        "the default snapshot name template `{pvc}-{timestamp}-{rand}` is too long for this PVC".into(),
                        &why,
                        "set `snapshot.nameTemplate` to something shorter, e.g. `{plan}-{timestamp}-{rand}`",
                    );
                }
                snap
            }
        };
        let retention = match f.get("retention") {
            Some(n) => self
                .retention(n, f.key_span("retention"))
                .unwrap_or_default(),
            None => Retention::default(),
        };
        let lock = match f.get("lock") {
            Some(n) => self.lock(n, f.key_span("lock").unwrap_or(n.span.clone())),
            None => Lock::default(),
        };
        let dry_run = self.bool(&mut f, "dryRun", false);
        let vars = match f.get("vars") {
            Some(n) => self.json_map(n, "vars"),
            None => BTreeMap::new(),
        };
        self.finish(f);

        Some(Plan {
            name: name?,
            namespace,
            targets: target_names,
            hooks,
            snapshot,
            retention,
            lock,
            dry_run,
            vars,
        })
    }

    fn targets(&mut self, f: &mut Fields<'_>) -> Vec<(String, Range<usize>)> {
        let Some(node) = f.get("targets") else {
            self.missing(
                f,
                "targets",
                "list the PVCs to snapshot, e.g. `targets: [data]`",
            );
            return Vec::new();
        };
        let list = self.string_list(node, "targets");
        if list.is_empty() && matches!(node.kind, NodeKind::Seq(_)) {
            self.err(
                Code::NoTargets,
                node.span.clone(),
                "the plan has no targets".into(),
                "empty list",
                "list at least one PVC, e.g. `targets: [data]`",
            );
        }
        let mut seen: Vec<(String, Range<usize>)> = Vec::new();
        for (name, span) in &list {
            if let Err(why) = rules::dns1123_subdomain(name).and_then(|()| {
                if name.len() > 63 {
                    Err(format!("is {} characters long; PVC names go into the `backup-ns.sh/pvc` label, which allows at most 63", name.len()))
                } else {
                    Ok(())
                }
            }) {
                self.err(Code::InvalidName, span.clone(), format!("target PVC `{name}` is not a valid name"), &why, "PVC names are DNS-1123 names: lowercase letters, digits, `-` and `.`");
            }
            if let Some(first) = first_seen(&mut seen, name, span) {
                let d = Diag::error(
                    Code::DuplicateTarget,
                    format!("PVC `{name}` is listed twice"),
                )
                .at(&self.src, span.clone(), "duplicate")
                .also(first, "first listed here")
                .help("remove the duplicate; each PVC is snapshotted once per run");
                self.diags.push(d);
            }
        }
        seen
    }

    fn hooks(&mut self, node: &Node, anchor: Range<usize>) -> Hooks {
        let Some(mut f) = self.fields(node, "hooks", anchor) else {
            return Hooks::default();
        };
        // Hook names are unique across both lists: `--hook NAME` must pick exactly one.
        let mut names = Vec::new();
        let pre = match f.get("pre") {
            Some(n) => self.hook_list(n, false, &mut names),
            None => Vec::new(),
        };
        let post = match f.get("post") {
            Some(n) => self.hook_list(n, true, &mut names),
            None => Vec::new(),
        };
        self.finish(f);
        Hooks { pre, post }
    }

    fn hook_list(
        &mut self,
        node: &Node,
        post: bool,
        names: &mut Vec<(String, Range<usize>)>,
    ) -> Vec<Hook> {
        let what = if post { "hooks.post" } else { "hooks.pre" };
        match &node.kind {
            NodeKind::Seq(items) => items
                .iter()
                .filter_map(|n| self.hook(n, post, names))
                .collect(),
            _ => {
                self.wrong_type(
                    node,
                    "a list of hooks",
                    what,
                    "each hook is a mapping with a `type`",
                );
                Vec::new()
            }
        }
    }

    fn hook(
        &mut self,
        node: &Node,
        post: bool,
        names: &mut Vec<(String, Range<usize>)>,
    ) -> Option<Hook> {
        let anchor = match &node.kind {
            NodeKind::Map(e) if !e.is_empty() => e[0].0.span.clone(),
            _ => node.span.clone(),
        };
        let mut f = self.fields(node, "a hook", anchor)?;
        // Before `type`, so a duplicate name is reported even when the hook has other problems.
        let name = self.hook_name(&mut f, names);
        let Some(type_node) = f.get("type") else {
            self.missing(
                &f,
                "type",
                "set `type` to one of postgres, mysql, rhai, exec",
            );
            return None;
        };
        let type_name = self.string(type_node, "type")?;
        let Some(kind) = HookKind::parse(&type_name) else {
            let help = match suggest(&type_name, HookKind::ALL) {
                Some(s) => format!("did you mean `{s}`? hook types: postgres, mysql, rhai, exec"),
                None => "hook types: postgres, mysql, rhai, exec".to_string(),
            };
            self.err(
                Code::UnknownHookType,
                type_node.span.clone(),
                format!("unknown hook type `{type_name}`"),
                "unknown hook type",
                &help,
            );
            return None;
        };
        f.what = format!("{type_name} hook");
        let timeout = self.duration(&mut f, "timeout", Hook::default_timeout(kind));
        let on_error = self.choice(
            &mut f,
            "onError",
            &[("fail", OnError::Fail), ("continue", OnError::Continue)],
            OnError::Fail,
        );
        let when = if post {
            if f.get("when").is_some() {
                Some(self.choice(
                    &mut f,
                    "when",
                    &[("success", When::Success), ("always", When::Always)],
                    When::Success,
                ))
            } else {
                None
            }
        } else {
            if let Some(n) = f.get("when") {
                let span = f.key_span("when").unwrap_or(n.span.clone());
                self.err(
                    Code::WhenOnPreHook,
                    span,
                    "`when` is only allowed on post-hooks".into(),
                    "pre-hooks always run",
                    "remove `when`, or move this hook to `hooks.post`",
                );
            }
            None
        };
        let action = match kind {
            HookKind::Postgres => self.postgres(&mut f).map(HookAction::Postgres),
            HookKind::Mysql => self.mysql(&mut f).map(HookAction::Mysql),
            HookKind::Rhai => self.rhai(&mut f).map(HookAction::Rhai),
            HookKind::Exec => self.exec(&mut f).map(HookAction::Exec),
        };
        self.finish(f);
        Some(Hook {
            name,
            action: action?,
            timeout,
            on_error,
            when,
        })
    }

    /// A hook's optional `name`: a DNS-1123 label, not used by an earlier hook of the plan (`names`).
    fn hook_name(
        &mut self,
        f: &mut Fields<'_>,
        names: &mut Vec<(String, Range<usize>)>,
    ) -> Option<String> {
        let node = f.get("name")?;
        let name = self.string(node, "name")?;
        self.name_check(
            &name,
            node.span.clone(),
            "hook name",
            rules::dns1123_label,
            "hook names are DNS-1123 labels: lowercase letters, digits and `-`, at most 63 characters",
        );
        if let Some(first) = first_seen(names, &name, &node.span) {
            let (line, _) = self.src.line_col(first.start);
            let d = Diag::error(
                Code::DuplicateHookName,
                format!("hook name `{name}` is used twice (first on line {line})"),
            )
            .at(&self.src, node.span.clone(), "duplicate")
            .also(first, "first used here")
            .help("hook names are unique within a plan, across `pre` and `post`, so `--hook NAME` picks exactly one; rename one of them");
            self.diags.push(d);
        }
        Some(name)
    }

    fn workload(&mut self, f: &mut Fields<'_>, required: bool) -> Option<WorkloadRef> {
        let Some(node) = f.get("workload") else {
            if required {
                self.missing(
                    f,
                    "workload",
                    "set `workload: deployment/NAME` (or statefulset/NAME, pod/NAME)",
                );
            }
            return None;
        };
        let text = self.string(node, "workload")?;
        match text.parse::<WorkloadRef>() {
            Ok(w) => {
                self.name_check(
                    &w.name,
                    node.span.clone(),
                    "workload name",
                    rules::dns1123_subdomain,
                    "workload names are DNS-1123 names",
                );
                Some(w)
            }
            Err(e) => {
                self.err(
                    Code::BadWorkload,
                    node.span.clone(),
                    format!("malformed workload reference `{text}`"),
                    &e.to_string(),
                    "write `deployment/NAME`, `statefulset/NAME` or `pod/NAME`",
                );
                None
            }
        }
    }

    fn container(&mut self, f: &mut Fields<'_>, default: Option<&str>) -> Option<String> {
        match f.get("container") {
            Some(node) => {
                let s = self.string(node, "container")?;
                self.name_check(
                    &s,
                    node.span.clone(),
                    "container name",
                    rules::dns1123_label,
                    "container names are DNS-1123 labels",
                );
                Some(s)
            }
            None => match default {
                Some(d) => Some(d.to_string()),
                None => {
                    self.missing(f, "container", "name the container to exec into");
                    None
                }
            },
        }
    }

    fn db_dump(&mut self, f: &mut Fields<'_>, d: &DbDefaults) -> Option<DbDump> {
        let workload = self.workload(f, true);
        let container = self.container(f, Some(d.container));
        let compression = self.choice(
            f,
            "compression",
            &[
                ("gzip", Compression::Gzip),
                ("zstd", Compression::Zstd),
                ("none", Compression::None),
            ],
            Compression::Gzip,
        );
        let dump_file = match f.get("dumpFile") {
            Some(node) => {
                let s = self.string(node, "dumpFile");
                if let Some(s) = &s {
                    self.dump_path_check(s, node.span.clone(), d);
                }
                s
            }
            None => Some(format!("{}/dump.sql{}", d.data_dir, compression.suffix())),
        };
        let host = self
            .opt_string(f, "host")
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = self
            .int(f, "port", 1, 65535, Code::OutOfRange)
            .map_or(d.port, |p| p as u16);
        let user = self
            .opt_string(f, "user")
            .unwrap_or_else(|| d.user.to_string());
        let password = match f.get("password") {
            Some(node) => {
                let p = self.string(node, "password");
                if let Some(p) = &p
                    && !p.is_empty()
                    && !is_env_ref(p)
                {
                    self.warn(
                        Code::LiteralSecret,
                        node.span.clone(),
                        "literal password in the plan".into(),
                        "this secret ends up in Git and in the plan annotation (redacted)",
                        &format!(
                            "reference the container's env instead, e.g. `password: \"{}\"`",
                            d.password
                        ),
                    );
                }
                p
            }
            None => Some(d.password.to_string()),
        };
        let database = self
            .opt_string(f, "database")
            .unwrap_or_else(|| d.database.to_string());
        let threshold = match f.get("threshold") {
            Some(node) => match node.kind {
                NodeKind::Int(t) if (1..=100).contains(&t) => t as u8,
                NodeKind::Int(t) => {
                    self.err(Code::ThresholdRange, node.span.clone(), format!("threshold {t} % is out of range"), "must be 1..=100", "the threshold is the disk usage in percent above which the dump is refused; the default is 90");
                    DEFAULT_THRESHOLD
                }
                _ => {
                    self.wrong_type(node, "a percentage (integer 1..=100)", "threshold", "");
                    DEFAULT_THRESHOLD
                }
            },
            None => DEFAULT_THRESHOLD,
        };
        let extra_args = match f.get("extraArgs") {
            Some(n) => self
                .string_list(n, "extraArgs")
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            None => Vec::new(),
        };
        Some(DbDump {
            workload: workload?,
            container: container?,
            dump_file: dump_file?,
            host,
            port,
            user,
            password: password?,
            database,
            threshold,
            compression,
            extra_args,
        })
    }

    fn dump_path_check(&mut self, path: &str, span: Range<usize>, d: &DbDefaults) {
        if !path.starts_with('/') {
            self.err(
                Code::BadPath,
                span,
                format!("dump path `{path}` is not absolute"),
                "relative path",
                &format!(
                    "use an absolute path inside the container, e.g. `{}/dump.sql.gz`",
                    d.data_dir
                ),
            );
            return;
        }
        if path.ends_with('/') {
            self.err(
                Code::BadPath,
                span,
                format!("dump path `{path}` is a directory"),
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
            self.warn(
                Code::DumpPathUnusual,
                span,
                format!("dump path `{path}` is outside the usual data mounts"),
                "may not be on a snapshotted PVC",
                &format!("the dump is only in the backup if this path is on a target PVC; the usual place is under `{}`", d.data_dir),
            );
        }
    }

    fn postgres(&mut self, f: &mut Fields<'_>) -> Option<PostgresHook> {
        let format = self.choice(
            f,
            "format",
            &[("plain", PgFormat::Plain), ("custom", PgFormat::Custom)],
            PgFormat::Plain,
        );
        let dump = self.db_dump(f, &POSTGRES)?;
        Some(PostgresHook { dump, format })
    }

    fn mysql(&mut self, f: &mut Fields<'_>) -> Option<MysqlHook> {
        let default_character_set = self
            .opt_string(f, "defaultCharacterSet")
            .unwrap_or_else(|| "utf8mb4".into());
        // Consistent InnoDB dumps without blocking writers are the safe default; the BAK_* compat layer sets
        // `singleTransaction: false` explicitly to keep the original's `--lock-tables` behaviour.
        let single_transaction = self.bool(f, "singleTransaction", true);
        let dump = self.db_dump(f, &MYSQL)?;
        Some(MysqlHook {
            dump,
            default_character_set,
            single_transaction,
        })
    }

    fn rhai(&mut self, f: &mut Fields<'_>) -> Option<RhaiHook> {
        let workload = self.workload(f, false);
        let container = match f.get("container") {
            Some(_) => self.container(f, None),
            None => None,
        };
        let args = match f.get("args") {
            Some(n) => self.json_map(n, "args"),
            None => BTreeMap::new(),
        };
        let Some(node) = f.get("script") else {
            self.missing(f, "script", "set `script: hooks/NAME.rhai`");
            return None;
        };
        let script = self.string(node, "script")?;
        let (path, source) = self.resolve_script(&script, node.span.clone())?;
        Some(RhaiHook {
            script: path,
            source,
            workload,
            container,
            args,
        })
    }

    /// Finds the script next to the plan, in its `hooks/` dir, in its parent (the repository root when plans live
    /// in `plans/`), or in `../hooks/`, and compiles it.
    fn resolve_script(&mut self, script: &str, span: Range<usize>) -> Option<(PathBuf, String)> {
        let given = Path::new(script);
        let candidates: Vec<PathBuf> = match self.ctx.base_dir {
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
            self.err(
                Code::HookScriptMissing,
                span,
                format!("rhai script `{script}` not found"),
                "no such file",
                &format!("looked for {}", tried.join(", ")),
            );
            return None;
        };
        let text = match std::fs::read_to_string(found) {
            Ok(t) => t,
            Err(e) => {
                self.err(
                    Code::Io,
                    span,
                    format!("cannot read rhai script `{}`: {e}", found.display()),
                    "unreadable",
                    "check the file's permissions",
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
            let (pline, pcol) = self.src.line_col(span.start);
            let message = err.message.clone();
            self.diags.push(
                Diag::error(
                    Code::HookScriptSyntax,
                    format!("rhai script `{script}` does not compile: {message}"),
                )
                .at(&script_src, offset..offset, message)
                .help(format!(
                    "referenced from {}:{pline}:{pcol}; fix the script's syntax",
                    self.src.name
                )),
            );
            return None;
        }
        Some((found.clone(), text))
    }

    fn exec(&mut self, f: &mut Fields<'_>) -> Option<ExecHook> {
        let workload = self.workload(f, true);
        let container = self.container(f, None);
        let command = match f.get("command") {
            Some(node) => {
                let list = self.string_list(node, "command");
                if matches!(node.kind, NodeKind::Seq(_))
                    && list.first().is_none_or(|(s, _)| s.trim().is_empty())
                {
                    self.err(
                        Code::EmptyCommand,
                        node.span.clone(),
                        "exec hook has an empty command".into(),
                        "nothing to run",
                        "give the program and its arguments, e.g. `command: [sh, -c, \"sync\"]`",
                    );
                    None
                } else if matches!(node.kind, NodeKind::Seq(_)) {
                    Some(list.into_iter().map(|(s, _)| s).collect::<Vec<_>>())
                } else {
                    None
                }
            }
            None => {
                self.missing(
                    f,
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

    fn snapshot(
        &mut self,
        node: &Node,
        anchor: Range<usize>,
        targets: &[String],
        plan_name: Option<&str>,
    ) -> Snapshot {
        let def = Snapshot::default();
        let Some(mut f) = self.fields(node, "snapshot", anchor) else {
            return def;
        };
        let class = f.get("class").and_then(|n| {
            let s = self.string(n, "class")?;
            if s.is_empty() {
                return None;
            }
            self.name_check(
                &s,
                n.span.clone(),
                "VolumeSnapshotClass",
                rules::dns1123_subdomain,
                "leave `class` empty to use the cluster's default class",
            );
            Some(s)
        });
        let rand = f.get("rand").and_then(|n| {
            let s = self.string(n, "rand")?;
            if let Err(why) = rules::dns1123_label(&s) {
                self.err(
                    Code::InvalidName,
                    n.span.clone(),
                    format!("`rand` value `{s}` cannot be part of a snapshot name"),
                    &why,
                    "use lowercase letters and digits",
                );
                return None;
            }
            Some(s)
        });
        let name_template = match f.get("nameTemplate") {
            Some(n) => match self.string(n, "nameTemplate") {
                Some(t) => {
                    if let Err(why) = rules::check_template(
                        &t,
                        targets,
                        plan_name.unwrap_or("plan"),
                        rand.as_deref(),
                    ) {
                        self.err(Code::NameTemplate, n.span.clone(), "nameTemplate can produce an invalid VolumeSnapshot name".into(), &why, "snapshot names must be DNS-1123 names of at most 63 characters; shorten the template or the PVC names");
                    } else if !t.contains("{timestamp}") && !t.contains("{rand}") {
                        self.warn(
                            Code::NameTemplateNotUnique,
                            n.span.clone(),
                            "nameTemplate has neither {timestamp} nor {rand}".into(),
                            "every run renders the same name",
                            "add `{timestamp}` or `{rand}` so runs do not collide",
                        );
                    }
                    t
                }
                None => def.name_template.clone(),
            },
            None => {
                if let Err(why) = rules::check_template(
                    &def.name_template,
                    targets,
                    plan_name.unwrap_or("plan"),
                    rand.as_deref(),
                ) {
                    let span = f.anchor.clone();
                    self.err(Code::NameTemplate, span, "the default nameTemplate `{pvc}-{timestamp}-{rand}` is too long for these targets".into(), &why, "set `nameTemplate` to something shorter, e.g. `{plan}-{timestamp}-{rand}`");
                }
                def.name_template.clone()
            }
        };
        let wait_until_ready = self.bool(&mut f, "waitUntilReady", def.wait_until_ready);
        let ready_timeout = self.duration(&mut f, "readyTimeout", def.ready_timeout);
        let labels = match f.get("labels") {
            Some(n) => self.labels(n, "labels", true),
            None => BTreeMap::new(),
        };
        let annotations = match f.get("annotations") {
            Some(n) => self.labels(n, "annotations", false),
            None => BTreeMap::new(),
        };
        let consistency = self.choice(
            &mut f,
            "consistency",
            &[
                ("individual", Consistency::Individual),
                ("group", Consistency::Group),
            ],
            Consistency::Individual,
        );
        let backup_type = self.choice(
            &mut f,
            "type",
            &[
                ("cronjob", BackupType::Cronjob),
                ("adhoc", BackupType::Adhoc),
            ],
            BackupType::Adhoc,
        );
        let pod = f.get("pod").and_then(|n| {
            let s = self.string(n, "pod")?;
            if let Err(why) = rules::label_value(&s) {
                self.err(
                    Code::InvalidLabel,
                    n.span.clone(),
                    format!("`pod` value `{s}` is not a valid label value"),
                    &why,
                    "it becomes the `backup-ns.sh/pod` label",
                );
            }
            if s.is_empty() { None } else { Some(s) }
        });
        self.finish(f);
        Snapshot {
            class,
            name_template,
            wait_until_ready,
            ready_timeout,
            labels,
            annotations,
            consistency,
            backup_type,
            pod,
            rand,
        }
    }

    fn labels(
        &mut self,
        node: &Node,
        what: &str,
        values_are_labels: bool,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, key_span, value, value_span) in self.string_map(node, what) {
            if let Err(why) = rules::qualified_name(&key) {
                self.err(Code::InvalidLabel, key_span.clone(), format!("`{key}` is not a valid {} key", &what[..what.len() - 1]), &why, "keys are `[prefix/]name`: prefix a DNS subdomain, name at most 63 of letters, digits, `-`, `_`, `.`");
            } else if key.starts_with("backup-ns.sh/") {
                self.err(
                    Code::InvalidLabel,
                    key_span.clone(),
                    format!("`{key}` is managed by backup-ns"),
                    "reserved prefix",
                    "keys under `backup-ns.sh/` are set by backup-ns itself; pick another prefix",
                );
            }
            if values_are_labels && let Err(why) = rules::label_value(&value) {
                self.err(Code::InvalidLabel, value_span, format!("`{value}` is not a valid label value"), &why, "label values are at most 63 letters, digits, `-`, `_` or `.`, starting and ending alphanumeric");
            }
            out.insert(key, value);
        }
        out
    }

    fn profile(&mut self, name: &str, node: &Node) -> Option<Retention> {
        match self.ctx.profiles.get(name) {
            Some(r) => Some(r),
            None => {
                let names = self.ctx.profiles.names();
                let help = match suggest(name, names.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`? known profiles: {}", names.join(", ")),
                    None => format!(
                        "known profiles: {} (add more in retention-profiles.yaml beside the plan, or pass --profiles FILE)",
                        names.join(", ")
                    ),
                };
                self.err(
                    Code::UnknownProfile,
                    node.span.clone(),
                    format!("unknown retention profile `{name}`"),
                    "no such profile",
                    &help,
                );
                None
            }
        }
    }

    fn retention(&mut self, node: &Node, key_span: Option<Range<usize>>) -> Option<Retention> {
        if let NodeKind::Str(name) = &node.kind {
            return self.profile(name, node);
        }
        let anchor = key_span.unwrap_or(node.span.clone());
        let mut f = self.fields(node, "retention", anchor.clone())?;
        let count = |cx: &mut Self, f: &mut Fields<'_>, key: &'static str| -> (Option<u32>, bool) {
            let present = f.get(key).is_some();
            (
                cx.int(f, key, 0, MAX_COUNT, Code::NegativeCount)
                    .map(|v| v as u32),
                present,
            )
        };
        let (daily, d_p) = count(self, &mut f, "daily");
        let (weekly, w_p) = count(self, &mut f, "weekly");
        let (monthly, m_p) = count(self, &mut f, "monthly");
        let (yearly, y_p) = count(self, &mut f, "yearly");
        let (days, days_p) = count(self, &mut f, "days");
        let any_tier = d_p || w_p || m_p || y_p;
        // `{profile: NAME}` alone references a profile; with counts it is a resolved policy that remembers
        // its profile's name (the form plans serialise to).
        let profile = f
            .get("profile")
            .and_then(|n| self.string(n, "profile").map(|s| (s, n)));
        if let Some((name, pnode)) = &profile
            && !any_tier
            && !days_p
        {
            self.finish(f);
            return self.profile(name, pnode);
        }
        let profile = profile.map(|(s, _)| s);
        let span = match &node.kind {
            NodeKind::Map(e) if !e.is_empty() => e[0].0.span.clone(),
            _ => anchor,
        };
        self.finish(f);
        if days_p && any_tier {
            self.err(
                Code::RetentionMixed,
                span,
                "retention mixes `days` with daily/weekly/monthly/yearly".into(),
                "pick one kind of policy",
                "use either `days: N` (delete after N days) or tier counts, not both",
            );
            return None;
        }
        if days_p {
            let days = days?;
            if days == 0 {
                self.err(
                    Code::RetentionEmpty,
                    span,
                    "retention `days: 0` keeps nothing".into(),
                    "keeps nothing",
                    "use at least `days: 1`",
                );
                return None;
            }
            return Some(Retention::Days { profile, days });
        }
        // A count that was given but rejected has its own diagnostic; no policy, and no "keeps nothing" on top.
        let rejected = [(d_p, daily), (w_p, weekly), (m_p, monthly), (y_p, yearly)]
            .iter()
            .any(|(present, value)| *present && value.is_none());
        if rejected {
            return None;
        }
        let (daily, weekly, monthly, yearly) = (
            daily.unwrap_or(0),
            weekly.unwrap_or(0),
            monthly.unwrap_or(0),
            yearly.unwrap_or(0),
        );
        if [daily, weekly, monthly, yearly].iter().all(|c| *c == 0) {
            {
                self.err(Code::RetentionEmpty, span, "retention keeps no tier".into(), "no tier with a count above 0", "set at least one of daily, weekly, monthly, yearly (defaults are 7/4/12), or `days: N`");
            }
            return None;
        }
        Some(Retention::Tiers {
            profile,
            daily,
            weekly,
            monthly,
            yearly,
        })
    }

    fn lock(&mut self, node: &Node, anchor: Range<usize>) -> Lock {
        let def = Lock::default();
        let Some(mut f) = self.fields(node, "lock", anchor) else {
            return def;
        };
        let enabled = self.bool(&mut f, "enabled", def.enabled);
        let dir = match f.get("dir") {
            Some(n) => match self.string(n, "dir") {
                Some(d) if d.starts_with('/') => d,
                Some(d) => {
                    self.err(
                        Code::BadPath,
                        n.span.clone(),
                        format!("lock dir `{d}` is not absolute"),
                        "relative path",
                        "use the absolute hostPath mount, e.g. `/mnt/host-backup-locks`",
                    );
                    def.dir.clone()
                }
                None => def.dir.clone(),
            },
            None => def.dir.clone(),
        };
        let slots = self
            .int(&mut f, "slots", 1, 1024, Code::OutOfRange)
            .map(|s| s as u32);
        let timeout = self.duration(&mut f, "timeout", def.timeout);
        self.finish(f);
        Lock {
            enabled,
            dir,
            slots,
            timeout,
        }
    }
}

/// The largest retention count or `days` accepted (about 270 years of dailies); more is surely a typo.
const MAX_COUNT: i128 = 100_000;

pub use crate::vocab::hook::{DbDefaults, MYSQL, POSTGRES};

/// Remembers `name` at `span` in `seen`; when it was there already, returns where it was first seen instead.
fn first_seen(
    seen: &mut Vec<(String, Range<usize>)>,
    name: &str,
    span: &Range<usize>,
) -> Option<Range<usize>> {
    match seen.iter().find(|(n, _)| n == name) {
        Some((_, first)) => Some(first.clone()),
        None => {
            seen.push((name.to_string(), span.clone()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan::node::{Format, parse};

    fn load(yaml: &str) -> (Option<Plan>, Vec<Diag>) {
        let src = SourceFile::new("t.yaml", yaml);
        let mut diags = Vec::new();
        let root = parse(&src, Format::Yaml, &mut diags).expect("test YAML parses");
        let profiles = Profiles::builtin();
        let ctx = Context {
            base_dir: None,
            profiles: &profiles,
        };
        let (plan, mut more) = convert_plan(&root, &src, &ctx);
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
            Retention::Days {
                profile: Some("adhoc".into()),
                days: 30
            }
        );
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
