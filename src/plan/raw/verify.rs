//! The `verify` section as written: the checks `backup-ns verify` runs against a restored dump.

use super::{DurationString, FromNode, Spanned, raw_mapping, spanned};
use crate::plan::diag::Collector;
use crate::plan::node::{Node, NodeKind};

raw_mapping! {
    /// How `backup-ns verify` proves a backup: its own checks, run after the built-in ones (the dump decodes,
    /// loads with errors fatal, its tables are listed with row counts, and it is no older than the snapshot).
    #[schemars(deny_unknown_fields)]
    pub struct Verify in "verify" {
        /// The database hook whose dump is verified (its `name`, or `pre[N]`); absent: the plan's only database
        /// hook, or the one whose workload mounts the snapshot's PVC.
        "hook" => hook: String,
        /// How long the restore and the verification pod may take (default `30m`).
        #[schemars(with = "Option<DurationString>")]
        "timeout" => timeout: super::DurationText,
        /// The plan's checks: SQL answering one number that must meet its `expect`, or a rhai script.
        "checks" => checks: CheckList,
        /// For a `mode: hot` postgres hook: the `restore_command` with which the verification pod's server
        /// fetches the archived WAL its copy recovers with (`%f` and `%p` as PostgreSQL fills them in), e.g.
        /// `cp /archive/%f %p`; the archive must be reachable from a pod of the hook's image. Absent: hot
        /// PostgreSQL snapshots are not verified.
        "restoreCommand" => restore_command: String,
    }
}

/// A list of checks; items that are not mappings are reported and left out.
#[derive(Debug, Clone, Default, PartialEq, schemars::JsonSchema)]
#[schemars(transparent)]
pub struct CheckList(pub Vec<Spanned<Check>>);

impl FromNode for CheckList {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        match &node.kind {
            NodeKind::Seq(items) => Some(CheckList(
                items
                    .iter()
                    .filter_map(|n| spanned(n, "a check", cx))
                    .collect(),
            )),
            other => {
                cx.wrong_type(
                    node.span.clone(),
                    other.type_name(),
                    "a list of checks",
                    &format!("verify.{what}"),
                    "each check is a mapping with `name` and either `sql` and `expect` or `rhai`",
                );
                None
            }
        }
    }
}

raw_mapping! {
    /// One check: either SQL (the first column of the first row its query returns, compared with `expect`) or a
    /// rhai script over the answers to its `query("SQL")`/`scalar("SQL")` calls.
    #[schemars(deny_unknown_fields)]
    pub struct Check in "a check" {
        /// The check's name (unique within the plan), as the report shows it.
        "name" => name: String,
        /// The query, run in the restored database, e.g. `select count(*) from orders`.
        "sql" => sql: String,
        /// The comparison the answer must meet: `>= 1`, `> 0`, `== 42`, `!= 0`, `< 10`, `<= 10`, or a bare
        /// number (equal to it).
        #[schemars(with = "Option<ExpectString>")]
        "expect" => expect: String,
        /// Instead of `sql` and `expect`: a rhai script that reads the restored database with `query("SQL")` (the
        /// rows) and `scalar("SQL")` (the first value), SQL given as string literals; it fails the check by
        /// throwing, calling `fail(msg)` or ending with `false`.
        "rhai" => rhai: String,
    }
}

/// Schema stand-in for an `expect` comparison.
pub struct ExpectString;

impl schemars::JsonSchema for ExpectString {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Expect".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": r"^\s*(>=|<=|==|!=|>|<|=)?\s*-?[0-9]+\s*$",
            "description": "a comparison with a whole number, e.g. `>= 1`"
        })
    }
}
