//! Validates a retention policy (a plan's `retention`, or one policy of a profiles file): a known profile
//! name, or inline counts that keep something and do not mix `days` with tiers.
//!
//! Profile names are resolved through [`ProfileLookup`], so the profiles file can validate its own policies
//! with this module without validation depending on it.

use super::{MAX_COUNT, int};
use crate::plan::diag::{Code, Collector};
use crate::plan::model::Retention;
use crate::plan::raw::{self, Spanned};
use crate::vocab::retention::{RetentionPolicy, TierCounts};
use crate::vocab::suggest::suggest;
use std::ops::Range;

/// Where named profiles come from (built-ins and the profiles file).
pub trait ProfileLookup {
    /// The policy of a profile, tagged with its name.
    fn profile(&self, name: &str) -> Option<Retention>;
    /// Every profile name, for suggestions.
    fn profile_names(&self) -> Vec<String>;
}

/// `key_span` is the `retention` key when there is one (a plan), for problems of the policy as a whole.
pub fn validate(
    raw: &Spanned<raw::Retention>,
    key_span: Option<Range<usize>>,
    profiles: &dyn ProfileLookup,
    cx: &mut Collector,
) -> Option<Retention> {
    let policy = match &raw.value {
        raw::Retention::Profile(name) => return profile(name, profiles, cx),
        raw::Retention::Policy(policy) => policy,
    };
    let count = |cx: &mut Collector, value: &Option<Spanned<i128>>, key: &str| {
        (
            int(cx, value, key, 0, MAX_COUNT, Code::NegativeCount).map(|v| v as u32),
            policy.keys.has_value(key),
        )
    };
    let (daily, d_p) = count(cx, &policy.daily, "daily");
    let (weekly, w_p) = count(cx, &policy.weekly, "weekly");
    let (monthly, m_p) = count(cx, &policy.monthly, "monthly");
    let (yearly, y_p) = count(cx, &policy.yearly, "yearly");
    let (days, days_p) = count(cx, &policy.days, "days");
    let any_tier = d_p || w_p || m_p || y_p;
    // `{profile: NAME}` alone references a profile; with counts it is a resolved policy that remembers
    // its profile's name (the form plans serialise to).
    if let Some(name) = &policy.profile
        && !any_tier
        && !days_p
    {
        return profile(name, profiles, cx);
    }
    let profile = policy.profile.as_ref().map(|p| p.value.clone());
    let span = policy
        .keys
        .first()
        .unwrap_or_else(|| key_span.unwrap_or(raw.span.clone()));
    if days_p && any_tier {
        cx.err(
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
            cx.err(
                Code::RetentionEmpty,
                span,
                "retention `days: 0` keeps nothing".into(),
                "keeps nothing",
                "use at least `days: 1`",
            );
            return None;
        }
        return Some(Retention {
            profile,
            policy: RetentionPolicy::Days(days),
        });
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
        cx.err(Code::RetentionEmpty, span, "retention keeps no tier".into(), "no tier with a count above 0", "set at least one of daily, weekly, monthly, yearly (defaults are 7/4/12), or `days: N`");
        return None;
    }
    Some(Retention {
        profile,
        policy: RetentionPolicy::Tiers(TierCounts {
            daily,
            weekly,
            monthly,
            yearly,
        }),
    })
}

fn profile(
    name: &Spanned<String>,
    profiles: &dyn ProfileLookup,
    cx: &mut Collector,
) -> Option<Retention> {
    if let Some(r) = profiles.profile(name) {
        return Some(r);
    }
    let names = profiles.profile_names();
    let help = match suggest(name, names.iter().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`? known profiles: {}", names.join(", ")),
        None => format!(
            "known profiles: {} (add more in retention-profiles.yaml beside the plan, or pass --profiles FILE)",
            names.join(", ")
        ),
    };
    cx.err(
        Code::UnknownProfile,
        name.span.clone(),
        format!("unknown retention profile `{}`", name.value),
        "no such profile",
        &help,
    );
    None
}
