//! The retention policy, one type from the plan to the deletion: how many snapshots per GFS tier are kept, or for
//! how many days; and its one wire format, the `backup-ns.sh/retention` annotation every snapshot carries.
//!
//! The plan resolves its `retention` (inline or a named profile) into a [`RetentionPolicy`]; `run` labels new
//! snapshots by it and writes it into the annotation; the retention planner reads the annotation back into the
//! same type, filling tiers an older writer left out from the controller defaults.
//!
//! # The annotation
//! `{"daily":7,"monthly":12,"weekly":4}` (plus `"yearly":N` when N > 0) or `{"days":30}`. Keys are written in
//! alphabetical order, byte for byte as every earlier version wrote them, since existing snapshots carry the
//! annotation. Reading accepts any subset of the tiers (the original and older versions wrote subsets); a
//! missing tier takes the caller's default. Unknown keys, negative counts and `days` mixed with tiers are errors.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One GFS tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Tier {
    /// Every tier, shortest period first.
    pub const ALL: [Tier; 4] = [Tier::Daily, Tier::Weekly, Tier::Monthly, Tier::Yearly];

    /// The lowercase name (`daily`, ...), as used in `--policy` and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Daily => "daily",
            Tier::Weekly => "weekly",
            Tier::Monthly => "monthly",
            Tier::Yearly => "yearly",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// GFS counts: how many ready snapshots per PVC keep each tier label. 0 disables a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierCounts {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

impl TierCounts {
    /// The original's defaults: `RETAIN_LAST_DAILY=7`, `RETAIN_LAST_WEEKLY=4`, `RETAIN_LAST_MONTHLY=12`; no
    /// yearly tier.
    pub const ORIGINAL_DEFAULTS: TierCounts = TierCounts {
        daily: 7,
        weekly: 4,
        monthly: 12,
        yearly: 0,
    };

    /// The count of one tier.
    pub fn get(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Daily => self.daily,
            Tier::Weekly => self.weekly,
            Tier::Monthly => self.monthly,
            Tier::Yearly => self.yearly,
        }
    }
}

impl Default for TierCounts {
    fn default() -> Self {
        TierCounts::ORIGINAL_DEFAULTS
    }
}

/// How a PVC's snapshots are retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionPolicy {
    /// Grandfather-father-son: the newest N ready snapshots keep each tier label (label
    /// `retain=daily_weekly_monthly`); a snapshot left without a tier label is marked, then deleted.
    Tiers(TierCounts),
    /// Time to live: each snapshot is deleted N days after it was taken (label `retain=days`).
    Days(u32),
}

impl Default for RetentionPolicy {
    /// 7 daily, 4 weekly, 12 monthly, as in the original.
    fn default() -> Self {
        RetentionPolicy::Tiers(TierCounts::ORIGINAL_DEFAULTS)
    }
}

impl RetentionPolicy {
    /// The tier counts of a GFS policy; `defaults` for a `days` policy (which has none).
    pub fn tiers_or(&self, defaults: TierCounts) -> TierCounts {
        match *self {
            RetentionPolicy::Tiers(counts) => counts,
            RetentionPolicy::Days(_) => defaults,
        }
    }

    /// The `backup-ns.sh/retention` annotation value (see the module docs for its exact bytes).
    pub fn to_annotation(&self) -> String {
        // Through `serde_json::Value`, whose object keeps its keys sorted: the alphabetical order the annotation
        // has always had. Serialising plain integers cannot fail.
        serde_json::to_value(self)
            .map(|v| v.to_string())
            .unwrap_or_default()
    }

    /// Reads an annotation value; tiers it leaves out take their count from `defaults`.
    pub fn from_annotation(
        value: &str,
        defaults: TierCounts,
    ) -> Result<RetentionPolicy, serde_json::Error> {
        let fields: Fields = serde_json::from_str(value)?;
        fields
            .resolve(defaults)
            .map_err(<serde_json::Error as serde::de::Error>::custom)
    }
}

/// The one wire shape of a policy: a flat object, so that `{"days":30}` and `{"daily":7}` read naturally. Both
/// directions of the annotation (and the policy in `retention simulate -o json`) go through it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    yearly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    days: Option<u32>,
}

impl Fields {
    fn resolve(self, defaults: TierCounts) -> Result<RetentionPolicy, &'static str> {
        let tiers = [self.daily, self.weekly, self.monthly, self.yearly];
        match self.days {
            Some(_) if tiers.iter().any(Option::is_some) => {
                Err("`days` cannot be combined with daily/weekly/monthly/yearly")
            }
            Some(days) => Ok(RetentionPolicy::Days(days)),
            None => Ok(RetentionPolicy::Tiers(TierCounts {
                daily: self.daily.unwrap_or(defaults.daily),
                weekly: self.weekly.unwrap_or(defaults.weekly),
                monthly: self.monthly.unwrap_or(defaults.monthly),
                yearly: self.yearly.unwrap_or(defaults.yearly),
            })),
        }
    }
}

impl Serialize for RetentionPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = match *self {
            // A yearly count of 0 is left out, as the first versions wrote it.
            RetentionPolicy::Tiers(c) => Fields {
                daily: Some(c.daily),
                weekly: Some(c.weekly),
                monthly: Some(c.monthly),
                yearly: (c.yearly > 0).then_some(c.yearly),
                days: None,
            },
            RetentionPolicy::Days(days) => Fields {
                daily: None,
                weekly: None,
                monthly: None,
                yearly: None,
                days: Some(days),
            },
        };
        fields.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: TierCounts = TierCounts::ORIGINAL_DEFAULTS;

    #[test]
    fn the_annotation_keeps_the_bytes_every_version_wrote() {
        assert_eq!(
            RetentionPolicy::default().to_annotation(),
            r#"{"daily":7,"monthly":12,"weekly":4}"#
        );
        let with_yearly = RetentionPolicy::Tiers(TierCounts {
            daily: 14,
            weekly: 8,
            monthly: 24,
            yearly: 5,
        });
        assert_eq!(
            with_yearly.to_annotation(),
            r#"{"daily":14,"monthly":24,"weekly":8,"yearly":5}"#
        );
        assert_eq!(RetentionPolicy::Days(30).to_annotation(), r#"{"days":30}"#);
    }

    #[test]
    fn annotations_round_trip_both_shapes() {
        for policy in [
            RetentionPolicy::default(),
            RetentionPolicy::Tiers(TierCounts {
                yearly: 2,
                ..DEFAULTS
            }),
            RetentionPolicy::Days(30),
        ] {
            assert_eq!(
                RetentionPolicy::from_annotation(&policy.to_annotation(), DEFAULTS).unwrap(),
                policy
            );
        }
    }

    #[test]
    fn annotations_in_the_originals_order_and_subsets_are_read() {
        assert_eq!(
            RetentionPolicy::from_annotation(r#"{"daily":7,"weekly":4,"monthly":12}"#, DEFAULTS)
                .unwrap(),
            RetentionPolicy::Tiers(DEFAULTS)
        );
        // Tiers left out take the caller's defaults, tier by tier.
        assert_eq!(
            RetentionPolicy::from_annotation(r#"{"daily":3,"yearly":2}"#, DEFAULTS).unwrap(),
            RetentionPolicy::Tiers(TierCounts {
                daily: 3,
                weekly: 4,
                monthly: 12,
                yearly: 2
            })
        );
        assert_eq!(
            RetentionPolicy::from_annotation("{}", DEFAULTS).unwrap(),
            RetentionPolicy::Tiers(DEFAULTS)
        );
        assert_eq!(
            RetentionPolicy::from_annotation(r#"{"days":30}"#, DEFAULTS).unwrap(),
            RetentionPolicy::Days(30)
        );
    }

    #[test]
    fn annotations_with_mixed_unknown_or_negative_fields_are_rejected() {
        for bad in [
            r#"{"days":30,"daily":7}"#,
            r#"{"hourly":3}"#,
            r#"{"daily":-1}"#,
            "not json",
        ] {
            assert!(
                RetentionPolicy::from_annotation(bad, DEFAULTS).is_err(),
                "{bad}"
            );
        }
        let mixed = RetentionPolicy::from_annotation(r#"{"days":30,"daily":7}"#, DEFAULTS)
            .unwrap_err()
            .to_string();
        assert!(mixed.contains("cannot be combined"), "{mixed}");
    }

    #[test]
    fn a_days_policy_has_no_tier_counts_of_its_own() {
        assert_eq!(RetentionPolicy::Days(3).tiers_or(DEFAULTS), DEFAULTS);
        let gfs = TierCounts {
            daily: 1,
            ..DEFAULTS
        };
        assert_eq!(RetentionPolicy::Tiers(gfs).tiers_or(DEFAULTS), gfs);
    }
}
