//! The plan file as written: one type per section, every key of the format, a span on every value, `None` for
//! an absent (or `null`) key, no defaults applied.
//!
//! These types are the single description of the file format: [`FromNode`] fills them from the spanned
//! [`Node`] tree (reporting wrong types and unknown keys, with did-you-mean, from the field lists the types
//! declare), the JSON Schema (`backup-ns schema`) is derived from them with their doc comments as
//! descriptions, and `plan::validate` turns them into the validated model.

pub mod hooks;
pub mod lock;
pub mod retention;
pub mod snapshot;
pub mod verify;

pub use hooks::{
    DbDump, ExecHook, Hook, HookAction, HookList, Hooks, MysqlHook, PostgresHook, RhaiHook,
};
pub use lock::Lock;
pub use retention::{Retention, RetentionPolicy};
pub use snapshot::Snapshot;
pub use verify::Verify;

use super::diag::{Code, Collector};
use super::node::{Key, Node, NodeKind};
use crate::vocab::suggest::suggest;
use schemars::JsonSchema;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

/// A value with the byte span it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub span: Range<usize>,
    pub value: T,
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// The schema of a spanned value is the schema of the value: spans exist only in memory.
impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// Where a mapping is and which keys it has, in source order: what "missing field" and "not allowed here"
/// diagnostics point at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keys {
    /// The mapping's own span.
    pub span: Range<usize>,
    pub keys: Vec<Key>,
    /// The keys written with a value other than `null`: when such a key's field is `None`, reading it already
    /// reported why, so validation says nothing more (in particular not "missing").
    pub valued: Vec<String>,
}

impl Keys {
    /// The span of `key` when it is written (even without a value).
    pub fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.keys
            .iter()
            .find(|k| k.name == key)
            .map(|k| k.span.clone())
    }

    /// True when `key` is written with a value other than `null`.
    pub fn has_value(&self, key: &str) -> bool {
        self.valued.iter().any(|k| k == key)
    }

    /// The first key of the mapping, where a problem with the mapping as a whole is shown.
    pub fn first(&self) -> Option<Range<usize>> {
        self.keys.first().map(|k| k.span.clone())
    }
}

/// Reads one raw value from a node, reporting what does not fit the format. `what` names the value in
/// messages (usually its key). `None` means the value was unusable and a diagnostic says why.
pub trait FromNode: Sized {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self>;
}

impl FromNode for String {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        match &node.kind {
            NodeKind::Str(s) => Some(s.clone()),
            other => {
                cx.wrong_type(
                    node.span.clone(),
                    other.type_name(),
                    "a string",
                    what,
                    "quote the value to make it a string",
                );
                None
            }
        }
    }
}

impl FromNode for bool {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        match node.kind {
            NodeKind::Bool(b) => Some(b),
            ref other => {
                cx.wrong_type(
                    node.span.clone(),
                    other.type_name(),
                    "true or false",
                    what,
                    "",
                );
                None
            }
        }
    }
}

impl FromNode for i128 {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        match node.kind {
            NodeKind::Int(i) => Some(i),
            ref other => {
                cx.wrong_type(node.span.clone(), other.type_name(), "an integer", what, "");
                None
            }
        }
    }
}

/// A list of strings; items that are not strings are reported and left out.
impl FromNode for Vec<Spanned<String>> {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        match &node.kind {
            NodeKind::Seq(items) => {
                Some(items.iter().filter_map(|n| spanned(n, what, cx)).collect())
            }
            other => {
                cx.wrong_type(
                    node.span.clone(),
                    other.type_name(),
                    "a list of strings",
                    what,
                    "",
                );
                None
            }
        }
    }
}

/// A mapping of strings (labels, annotations): keys keep their spans; values that are not strings are
/// reported and left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StringMap(pub Vec<(Spanned<String>, Spanned<String>)>);

impl FromNode for StringMap {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        match &node.kind {
            NodeKind::Map(entries) => Some(StringMap(
                entries
                    .iter()
                    .filter_map(|(k, v)| {
                        let NodeKind::Str(value) = &v.kind else {
                            cx.wrong_type(
                                v.span.clone(),
                                v.kind.type_name(),
                                "a string",
                                &format!("{what}.{}", k.name),
                                "quote the value",
                            );
                            return None;
                        };
                        Some((
                            key_spanned(k),
                            Spanned {
                                span: v.span.clone(),
                                value: value.clone(),
                            },
                        ))
                    })
                    .collect(),
            )),
            other => {
                cx.wrong_type(
                    node.span.clone(),
                    other.type_name(),
                    "a mapping of strings",
                    what,
                    "",
                );
                None
            }
        }
    }
}

/// A mapping of free-form values (`vars`, rhai `args`), as JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonMap(pub Vec<(Spanned<String>, Spanned<serde_json::Value>)>);

impl JsonMap {
    pub fn to_map(&self) -> BTreeMap<String, serde_json::Value> {
        self.0
            .iter()
            .map(|(k, v)| (k.value.clone(), v.value.clone()))
            .collect()
    }
}

impl FromNode for JsonMap {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        match &node.kind {
            NodeKind::Map(entries) => Some(JsonMap(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let value = Spanned {
                            span: v.span.clone(),
                            value: super::node::to_json(v),
                        };
                        (key_spanned(k), value)
                    })
                    .collect(),
            )),
            other => {
                cx.wrong_type(node.span.clone(), other.type_name(), "a mapping", what, "");
                None
            }
        }
    }
}

/// A duration as written (`15m`); a bare number has no unit and is refused here.
#[derive(Debug, Clone, PartialEq)]
pub struct DurationText(pub String);

impl FromNode for DurationText {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        match &node.kind {
            NodeKind::Str(s) => Some(DurationText(s.clone())),
            NodeKind::Int(_) | NodeKind::Float(_) => {
                cx.err(
                    Code::BadDuration,
                    node.span.clone(),
                    format!("`{what}` needs a unit"),
                    "a bare number is ambiguous",
                    "write a duration with a unit, e.g. `30s`, `15m` or `1h30m`",
                );
                None
            }
            other => {
                cx.wrong_type(
                    node.span.clone(),
                    other.type_name(),
                    "a duration such as `15m`",
                    what,
                    "",
                );
                None
            }
        }
    }
}

/// A keyword from a fixed set (`onError: fail`): the set is declared once, by [`Choices`], for both reading
/// and the schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice<T>(pub T);

/// The words a keyword value may take, in the order messages list them.
pub trait Choices: Copy + 'static {
    /// The schema's name for the set.
    const NAME: &'static str;
    const CHOICES: &'static [(&'static str, Self)];
}

impl<T: Choices> FromNode for Choice<T> {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        let text = String::from_node(node, what, cx)?;
        if let Some((_, v)) = T::CHOICES.iter().find(|(name, _)| *name == text) {
            return Some(Choice(*v));
        }
        let names: Vec<&str> = T::CHOICES.iter().map(|(n, _)| *n).collect();
        let help = match suggest(&text, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? allowed: {}", names.join(", ")),
            None => format!("allowed: {}", names.join(", ")),
        };
        cx.err(
            Code::UnknownVariant,
            node.span.clone(),
            format!("`{text}` is not a valid `{what}`"),
            "unknown value",
            &help,
        );
        None
    }
}

impl<T: Choices> JsonSchema for Choice<T> {
    fn schema_name() -> Cow<'static, str> {
        T::NAME.into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = T::CHOICES.iter().map(|(n, _)| *n).collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

/// Reads `node` as a `T` and keeps its span.
pub fn spanned<T: FromNode>(node: &Node, what: &str, cx: &mut Collector) -> Option<Spanned<T>> {
    T::from_node(node, what, cx).map(|value| Spanned {
        span: node.span.clone(),
        value,
    })
}

fn key_spanned(key: &Key) -> Spanned<String> {
    Spanned {
        span: key.span.clone(),
        value: key.name.clone(),
    }
}

/// The entries of a mapping; `null` reads as an empty mapping, anything else is a wrong type.
pub fn mapping<'n>(
    node: &'n Node,
    what: &str,
    cx: &mut Collector,
) -> Option<(&'n [(Key, Node)], Keys)> {
    let entries: &[(Key, Node)] = match &node.kind {
        NodeKind::Map(entries) => entries,
        NodeKind::Null => &[],
        other => {
            cx.wrong_type(node.span.clone(), other.type_name(), "a mapping", what, "");
            return None;
        }
    };
    let keys = Keys {
        span: node.span.clone(),
        keys: entries.iter().map(|(k, _)| k.clone()).collect(),
        valued: entries
            .iter()
            .filter(|(_, v)| v.kind != NodeKind::Null)
            .map(|(k, _)| k.name.clone())
            .collect(),
    };
    Some((entries, keys))
}

/// The value of `key` in `entries` read as a `T`; absent and `null` are `None`.
pub fn field<T: FromNode>(
    entries: &[(Key, Node)],
    key: &str,
    cx: &mut Collector,
) -> Option<Spanned<T>> {
    let node = entries
        .iter()
        .find(|(k, _)| k.name == key)
        .map(|(_, v)| v)
        .filter(|v| v.kind != NodeKind::Null)?;
    spanned(node, key, cx)
}

/// Reports every key of `entries` that is not in `accepted`, with a did-you-mean from `accepted`.
pub fn unknown_keys(entries: &[(Key, Node)], accepted: &[&str], what: &str, cx: &mut Collector) {
    for (key, _) in entries {
        if accepted.contains(&key.name.as_str()) {
            continue;
        }
        let help = match suggest(&key.name, accepted.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("{what} accepts: {}", accepted.join(", ")),
        };
        cx.err(
            Code::UnknownKey,
            key.span.clone(),
            format!("unknown key `{}` in {what}", key.name),
            "unknown key",
            &help,
        );
    }
}

/// Declares a raw mapping type: its fields (each `Option<Spanned<T>>`, in the order messages list the keys),
/// the file key of each, its [`FromNode`] reading with unknown-key checks, and (through the attributes given)
/// its schema. `KEYS` is the accepted key list, so the type's own fields decide what is unknown.
macro_rules! raw_mapping {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $what:literal {
            $( $(#[$fmeta:meta])* $key:literal => $field:ident : $ty:ty, )*
        }
    ) => {
        #[derive(Debug, Clone, Default, PartialEq, schemars::JsonSchema)]
        $(#[$meta])*
        pub struct $name {
            /// The mapping's span and keys as written.
            #[schemars(skip)]
            pub keys: $crate::plan::raw::Keys,
            $( $(#[$fmeta])* #[schemars(rename = $key)] pub $field: Option<$crate::plan::raw::Spanned<$ty>>, )*
        }

        impl $name {
            /// Every key of this mapping, in the order messages list them.
            pub const KEYS: &'static [&'static str] = &[$($key),*];

            /// Reads the fields from a mapping's entries (no unknown-key check: callers that accept more
            /// keys around this type check those themselves).
            pub fn read(
                entries: &[($crate::plan::node::Key, $crate::plan::node::Node)],
                keys: $crate::plan::raw::Keys,
                cx: &mut $crate::plan::diag::Collector,
            ) -> Self {
                $name {
                    keys,
                    $( $field: $crate::plan::raw::field(entries, $key, cx), )*
                }
            }
        }

        impl $crate::plan::raw::FromNode for $name {
            fn from_node(
                node: &$crate::plan::node::Node,
                what: &str,
                cx: &mut $crate::plan::diag::Collector,
            ) -> Option<Self> {
                let (entries, keys) = $crate::plan::raw::mapping(node, what, cx)?;
                let out = $name::read(entries, keys, cx);
                $crate::plan::raw::unknown_keys(entries, $name::KEYS, $what, cx);
                Some(out)
            }
        }
    };
}
pub(crate) use raw_mapping;

raw_mapping! {
    /// A backup plan: which PVCs of which namespace to snapshot, what to run before and after, how long to keep.
    #[schemars(title = "backup-ns plan", deny_unknown_fields)]
    pub struct Plan in "the plan" {
        /// Plan name (DNS-1123 label). Written into the `backup-ns.sh/plan` label.
        #[schemars(with = "String")]
        "name" => name: String,
        /// Namespace to back up. When absent: `--namespace`, then the in-cluster service-account namespace, then
        /// the kubeconfig context.
        "namespace" => namespace: String,
        /// PVC names to snapshot (at least one, no duplicates).
        #[schemars(with = "Vec<String>")]
        "targets" => targets: Vec<Spanned<String>>,
        /// Hooks run in order before (`pre`) and after (`post`) the snapshots.
        "hooks" => hooks: Hooks,
        /// How the VolumeSnapshots are made and named.
        "snapshot" => snapshot: Snapshot,
        /// A named profile (`standard`, `adhoc` or one from the profiles file) or an inline policy; absent:
        /// 7 daily, 4 weekly, 12 monthly.
        "retention" => retention: Retention,
        /// Node-level lock slots so that few backups run at once on one node.
        "lock" => lock: Lock,
        /// How `backup-ns verify` proves this plan's backups (its SQL checks).
        "verify" => verify: Verify,
        /// Run every check and print what would be created, but write nothing.
        "dryRun" => dry_run: bool,
        /// IANA time zone of the plan's calendar (snapshot names, tier labels, `retention simulate --plan`), e.g.
        /// `Europe/Vienna`; absent: `TZ`, else UTC. A `TZ` set in the environment wins.
        "timeZone" => time_zone: String,
        /// Variables handed to rhai hooks as `vars`.
        #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
        "vars" => vars: JsonMap,
    }
}

impl Plan {
    /// Reads a whole plan document. `None` when the document is not a mapping at all.
    pub fn from_root(root: &Node, cx: &mut Collector) -> Option<Plan> {
        Plan::from_node(root, "the plan", cx)
    }
}

/// Schema stand-in: a human-friendly duration string.
pub struct DurationString;

impl JsonSchema for DurationString {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A human-friendly duration such as `30s`, `15m` or `1h30m`.",
            "pattern": r"^\s*([0-9]+\s*(ns|us|µs|ms|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks)\s*)+$"
        })
    }
}

/// Schema stand-in: a DNS-1123 label such as a hook name.
pub struct HookNameString;

impl JsonSchema for HookNameString {
    fn schema_name() -> Cow<'static, str> {
        "HookName".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A DNS-1123 label: lowercase letters, digits and `-`, at most 63 characters.",
            "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
            "maxLength": 63
        })
    }
}

/// Schema stand-in: a workload reference.
pub struct WorkloadString;

impl JsonSchema for WorkloadString {
    fn schema_name() -> Cow<'static, str> {
        "Workload".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`deployment/NAME`, `statefulset/NAME` or `pod/NAME` (short forms deploy/, sts/, po/ also work).",
            "pattern": "^(deployment|deployments|deploy|statefulset|statefulsets|sts|pod|pods|po)/.+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::diag::SourceFile;
    use crate::plan::node::{Format, parse};

    fn read(yaml: &str) -> (Option<Plan>, Vec<crate::plan::Diag>) {
        let src = SourceFile::new("t.yaml", yaml);
        let mut diags = Vec::new();
        let root = parse(&src, Format::Yaml, &mut diags).expect("test YAML parses");
        let mut cx = Collector::new(&src);
        let plan = Plan::from_root(&root, &mut cx);
        (plan, cx.diags)
    }

    fn schema_keys<T: JsonSchema>() -> Vec<String> {
        let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
        let mut keys: Vec<String> = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    fn sorted(keys: &[&str]) -> Vec<String> {
        let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn the_keys_a_mapping_accepts_are_the_keys_its_schema_lists() {
        assert_eq!(schema_keys::<Plan>(), sorted(Plan::KEYS));
        assert_eq!(schema_keys::<Snapshot>(), sorted(Snapshot::KEYS));
        assert_eq!(schema_keys::<Lock>(), sorted(Lock::KEYS));
        assert_eq!(schema_keys::<Hooks>(), sorted(Hooks::KEYS));
        assert_eq!(
            schema_keys::<RetentionPolicy>(),
            sorted(RetentionPolicy::KEYS)
        );
        assert_eq!(schema_keys::<RhaiHook>(), sorted(RhaiHook::KEYS));
        assert_eq!(schema_keys::<ExecHook>(), sorted(ExecHook::KEYS));
        assert_eq!(
            schema_keys::<PostgresHook>(),
            sorted(&[PostgresHook::KEYS, DbDump::KEYS].concat())
        );
        assert_eq!(
            schema_keys::<MysqlHook>(),
            sorted(&[MysqlHook::KEYS, DbDump::KEYS].concat())
        );
    }

    #[test]
    fn values_keep_their_spans_and_null_reads_as_absent() {
        let text = "name: app\ntargets: [data]\nnamespace: ~\nlock: {slots: 3}\n";
        let (plan, diags) = read(text);
        assert!(diags.is_empty(), "{diags:?}");
        let plan = plan.unwrap();
        let name = plan.name.unwrap();
        assert_eq!(&text[name.span.clone()], "app");
        assert_eq!(plan.namespace, None);
        assert!(plan.keys.span_of("namespace").is_some());
        assert!(!plan.keys.has_value("namespace"));
        let slots = plan.lock.unwrap().value.slots.clone().unwrap();
        assert_eq!((slots.value, &text[slots.span]), (3, "3"));
    }

    #[test]
    fn reading_reports_wrong_types_and_unknown_keys_but_keeps_going() {
        let (plan, diags) =
            read("name: 5\ntargets: [a, 7]\ntaregts: x\nsnapshot: {consistency: crash}\n");
        let plan = plan.unwrap();
        assert!(plan.name.is_none());
        assert_eq!(plan.targets.unwrap().len(), 1);
        let codes: Vec<Code> = diags.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            [
                Code::WrongType,
                Code::WrongType,
                Code::UnknownVariant,
                Code::UnknownKey
            ]
        );
        assert_eq!(diags[3].help.as_deref(), Some("did you mean `targets`?"));
    }

    #[test]
    fn a_hooks_keys_are_judged_by_its_type() {
        let (plan, diags) = read(
            "name: a\ntargets: [a]\nhooks:\n  pre:\n    - {type: exec, workload: deployment/a, container: a, command: [x], format: plain}\n",
        );
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].message, "unknown key `format` in exec hook");
        let hooks = plan.unwrap().hooks.unwrap().value.pre.unwrap().value;
        assert!(matches!(hooks.0[0].action, Some(HookAction::Exec(_))));
    }
}
