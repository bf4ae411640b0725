//! Validates `snapshot`: class and label values as Kubernetes names, the nameTemplate against every target
//! (worst case, 63 characters), the ready timeout, and the extra labels and annotations.

use super::{duration, name_check};
use crate::plan::diag::{Code, Collector};
use crate::plan::model::Snapshot;
use crate::plan::raw::{self, Spanned, StringMap};
use crate::plan::rules;
use std::collections::BTreeMap;
use std::ops::Range;

/// `anchor` is where a problem of the section as a whole is shown (its key); `targets` are the valid PVC names.
pub fn validate(
    raw: &Spanned<raw::Snapshot>,
    anchor: Range<usize>,
    targets: &[String],
    plan_name: Option<&str>,
    cx: &mut Collector,
) -> Snapshot {
    let def = Snapshot::default();
    let class = raw.class.as_ref().filter(|c| !c.is_empty()).map(|c| {
        name_check(
            cx,
            c,
            "VolumeSnapshotClass",
            rules::dns1123_subdomain,
            "leave `class` empty to use the cluster's default class",
        );
        c.value.clone()
    });
    let rand = raw
        .rand
        .as_ref()
        .and_then(|r| match rules::dns1123_label(r) {
            Ok(()) => Some(r.value.clone()),
            Err(why) => {
                cx.err(
                    Code::InvalidName,
                    r.span.clone(),
                    format!(
                        "`rand` value `{}` cannot be part of a snapshot name",
                        r.value
                    ),
                    &why,
                    "use lowercase letters and digits",
                );
                None
            }
        });
    let plan_name = plan_name.unwrap_or("plan");
    let name_template = match &raw.name_template {
        Some(t) => {
            if let Err(why) = rules::check_template(t, targets, plan_name, rand.as_deref()) {
                cx.err(Code::NameTemplate, t.span.clone(), "nameTemplate can produce an invalid VolumeSnapshot name".into(), &why, "snapshot names must be DNS-1123 names of at most 63 characters; shorten the template or the PVC names");
            } else if !t.contains("{timestamp}") && !t.contains("{rand}") {
                cx.warn(
                    Code::NameTemplateNotUnique,
                    t.span.clone(),
                    "nameTemplate has neither {timestamp} nor {rand}".into(),
                    "every run renders the same name",
                    "add `{timestamp}` or `{rand}` so runs do not collide",
                );
            }
            t.value.clone()
        }
        None => {
            if !raw.keys.has_value("nameTemplate")
                && let Err(why) =
                    rules::check_template(&def.name_template, targets, plan_name, rand.as_deref())
            {
                cx.err(Code::NameTemplate, anchor, "the default nameTemplate `{pvc}-{timestamp}-{rand}` is too long for these targets".into(), &why, "set `nameTemplate` to something shorter, e.g. `{plan}-{timestamp}-{rand}`");
            }
            def.name_template.clone()
        }
    };
    let pod = raw.pod.as_ref().and_then(|p| {
        if let Err(why) = rules::label_value(p) {
            cx.err(
                Code::InvalidLabel,
                p.span.clone(),
                format!("`pod` value `{}` is not a valid label value", p.value),
                &why,
                "it becomes the `backup-ns.sh/pod` label",
            );
        }
        (!p.is_empty()).then(|| p.value.clone())
    });
    Snapshot {
        class,
        name_template,
        wait_until_ready: raw
            .wait_until_ready
            .as_ref()
            .map_or(def.wait_until_ready, |w| w.value),
        ready_timeout: duration(cx, &raw.ready_timeout, "readyTimeout", def.ready_timeout),
        labels: labels(cx, &raw.labels, "label", true),
        annotations: labels(cx, &raw.annotations, "annotation", false),
        consistency: raw
            .consistency
            .as_ref()
            .map_or(def.consistency, |c| c.value.0),
        backup_type: raw
            .backup_type
            .as_ref()
            .map_or(def.backup_type, |t| t.value.0),
        pod,
        rand,
    }
}

/// Extra labels or annotations (`what`): keys are qualified names outside `backup-ns.sh/`; label values follow
/// the label value rules.
fn labels(
    cx: &mut Collector,
    map: &Option<Spanned<StringMap>>,
    what: &str,
    values_are_labels: bool,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(map) = map else {
        return out;
    };
    for (key, value) in &map.0 {
        if let Err(why) = rules::qualified_name(key) {
            cx.err(Code::InvalidLabel, key.span.clone(), format!("`{}` is not a valid {what} key", key.value), &why, "keys are `[prefix/]name`: prefix a DNS subdomain, name at most 63 of letters, digits, `-`, `_`, `.`");
        } else if key.starts_with("backup-ns.sh/") {
            cx.err(
                Code::InvalidLabel,
                key.span.clone(),
                format!("`{}` is managed by backup-ns", key.value),
                "reserved prefix",
                "keys under `backup-ns.sh/` are set by backup-ns itself; pick another prefix",
            );
        }
        if values_are_labels && let Err(why) = rules::label_value(value) {
            cx.err(Code::InvalidLabel, value.span.clone(), format!("`{}` is not a valid label value", value.value), &why, "label values are at most 63 letters, digits, `-`, `_` or `.`, starting and ending alphanumeric");
        }
        out.insert(key.value.clone(), value.value.clone());
    }
    out
}
