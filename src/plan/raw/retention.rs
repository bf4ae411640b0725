//! The `retention` value as written: a profile name, or an inline policy (used by plans and profiles files).

use super::{FromNode, Spanned, raw_mapping};
use crate::plan::diag::Collector;
use crate::plan::node::{Node, NodeKind};

/// A retention policy as written: a profile's name, or the counts inline.
#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
#[schemars(untagged)]
pub enum Retention {
    /// A named retention profile: built-in `standard` (7/4/12), `adhoc` (30 days), `extended` (14/8/24/5), or one
    /// from retention-profiles.yaml.
    Profile(Spanned<String>),
    /// Inline counts: grandfather-father-son tiers (keep the newest N per tier) or `days` (delete N days after
    /// creation), not both. `profile` alone references a profile.
    Policy(Box<RetentionPolicy>),
}

impl FromNode for Retention {
    fn from_node(node: &Node, what: &str, cx: &mut Collector) -> Option<Self> {
        match &node.kind {
            NodeKind::Str(name) => Some(Retention::Profile(Spanned {
                span: node.span.clone(),
                value: name.clone(),
            })),
            _ => RetentionPolicy::from_node(node, what, cx).map(|p| Retention::Policy(Box::new(p))),
        }
    }
}

raw_mapping! {
    /// Inline retention counts.
    pub struct RetentionPolicy in "retention" {
        /// Daily snapshots to keep.
        #[schemars(with = "Option<u32>")]
        "daily" => daily: i128,
        /// Weekly snapshots to keep.
        #[schemars(with = "Option<u32>")]
        "weekly" => weekly: i128,
        /// Monthly snapshots to keep.
        #[schemars(with = "Option<u32>")]
        "monthly" => monthly: i128,
        /// Yearly snapshots to keep.
        #[schemars(with = "Option<u32>")]
        "yearly" => yearly: i128,
        /// Delete each snapshot this many days after creation (label `retain=days`).
        #[schemars(with = "Option<u32>")]
        "days" => days: i128,
        /// The profile these counts came from, or (alone) the profile to use.
        "profile" => profile: String,
    }
}
