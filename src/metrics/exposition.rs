//! The exporter's metrics text (Prometheus text format 0.0.4, encoded by `prometheus-client`, see
//! [`super::family`]), computed purely from snapshot facts and a clock.
//!
//! Per namespace and PVC:
//! - `backup_ns_last_success_timestamp_seconds`: creation time of the newest ready snapshot (absent when none);
//! - `backup_ns_snapshots`: all backup-ns snapshots; `backup_ns_snapshots_by_tier{tier=...}`: those carrying a
//!   daily/weekly/monthly/yearly label, plus `adhoc` and `days` (retain=days) ones;
//! - `backup_ns_snapshots_marked_for_deletion`: snapshots with a `delete-after` label;
//! - `backup_ns_snapshots_not_ready` and `backup_ns_oldest_not_ready_age_seconds`;
//! - `backup_ns_plan_info{plan=...} 1`: the plan named by the newest snapshot's `plan` label;
//! - `backup_ns_last_verified_timestamp_seconds`: the newest `backup-ns.sh/verified-at` of a snapshot whose
//!   `backup-ns.sh/verify-result` says it passed (absent when none did).
//!
//! Only snapshots carrying at least one `backup-ns.sh/` label count: other VolumeSnapshots in the namespace are
//! not ours to judge. Output order is fixed (sorted), so the text can be compared byte for byte.

use super::family::{GaugeFamily, Value, encode};
use crate::cluster::VolumeSnapshot;
use crate::labels;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// What the exporter needs to know about one VolumeSnapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFacts {
    pub namespace: String,
    pub name: String,
    /// The `pvc` label, else the snapshot's source PVC, else empty.
    pub pvc: String,
    pub plan: Option<String>,
    /// `status.creationTime`, else `metadata.creationTimestamp`.
    pub created: Option<DateTime<Utc>>,
    /// `metadata.creationTimestamp`: when the request was made (the age of a snapshot that is not ready yet).
    pub requested: Option<DateTime<Utc>>,
    pub ready: bool,
    /// Tier names (`daily`, `weekly`, `monthly`, `yearly`, `adhoc`, `days`) this snapshot counts toward.
    pub tiers: Vec<&'static str>,
    pub marked: bool,
    /// When `backup-ns verify` last proved this snapshot (`verified-at` of a `passed` result).
    pub verified: Option<DateTime<Utc>>,
}

impl SnapshotFacts {
    /// The facts of `vs`, or `None` for a snapshot without any backup-ns label.
    pub fn from_snapshot(vs: &VolumeSnapshot) -> Option<SnapshotFacts> {
        let labels = vs.metadata.labels.clone().unwrap_or_default();
        if !labels.keys().any(|k| k.starts_with(labels::PREFIX)) {
            return None;
        }
        let status = vs.status.as_ref();
        let requested = vs.metadata.creation_timestamp.as_ref().and_then(|t| {
            DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        });
        let created = status
            .and_then(|s| s.creation_time.as_deref())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .or(requested);
        let mut tiers = Vec::new();
        for tier in crate::vocab::retention::Tier::ALL {
            if labels.contains_key(tier.key()) {
                tiers.push(tier.name());
            }
        }
        if labels.get(labels::TYPE).map(String::as_str) == Some(labels::TYPE_ADHOC) {
            tiers.push("adhoc");
        }
        if labels.get(labels::RETAIN).map(String::as_str) == Some(labels::RETAIN_DAYS_MODE) {
            tiers.push("days");
        }
        let pvc = labels
            .get(labels::PVC)
            .cloned()
            .or_else(|| vs.spec.source.persistent_volume_claim_name.clone())
            .unwrap_or_default();
        Some(SnapshotFacts {
            namespace: vs.metadata.namespace.clone().unwrap_or_default(),
            name: vs.metadata.name.clone().unwrap_or_default(),
            pvc,
            plan: labels.get(labels::PLAN).cloned(),
            created,
            requested,
            ready: status.and_then(|s| s.ready_to_use).unwrap_or(false),
            tiers,
            marked: labels.contains_key(labels::DELETE_AFTER),
            verified: verified_at(vs),
        })
    }
}

/// The `verified-at` annotation of a snapshot whose last verification passed.
fn verified_at(vs: &VolumeSnapshot) -> Option<DateTime<Utc>> {
    let annotations = vs.metadata.annotations.as_ref()?;
    let passed = annotations
        .get(labels::ANNOTATION_VERIFY_RESULT)
        .is_some_and(|r| r.starts_with("passed"));
    let at = annotations.get(labels::ANNOTATION_VERIFIED_AT)?;
    passed
        .then(|| DateTime::parse_from_rfc3339(at).ok())
        .flatten()
        .map(|t| t.with_timezone(&Utc))
}

/// The tiers reported for every PVC (zero when empty), in output order.
const TIERS: [&str; 6] = ["daily", "weekly", "monthly", "yearly", "adhoc", "days"];

#[derive(Default)]
struct PvcStats<'a> {
    total: u64,
    tiers: BTreeMap<&'static str, u64>,
    marked: u64,
    not_ready: u64,
    oldest_not_ready: Option<DateTime<Utc>>,
    /// Newest ready snapshot: its creation time and plan.
    last_success: Option<(DateTime<Utc>, Option<&'a str>)>,
    last_verified: Option<DateTime<Utc>>,
}

/// The cluster's VolumeSnapshot count beside the limit operators warn at (snapshot controllers degrade with
/// it: about 36,000 took one down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSnapshots {
    /// Every VolumeSnapshot in the exporter's scope, backup-ns or not.
    pub count: usize,
    /// `--snapshot-limit`.
    pub limit: u64,
}

/// The gauge both the exporter and the controller report.
pub const CLUSTER_SNAPSHOTS: &str = "backup_ns_cluster_snapshots";
pub const CLUSTER_SNAPSHOTS_HELP: &str =
    "VolumeSnapshots in the cluster (the exporter's or the pass's scope), backup-ns or not.";

/// Default of `--snapshot-limit`: the alert warns when the cluster nears it.
pub const DEFAULT_SNAPSHOT_LIMIT: u64 = 20_000;

/// Renders the metrics text for `facts` at `now`. `synced` is false until the watch has listed everything once
/// (Prometheus then sees `backup_ns_exporter_synced 0` and the alert rules hold off).
pub fn render<'a>(
    facts: impl IntoIterator<Item = &'a SnapshotFacts>,
    now: DateTime<Utc>,
    synced: bool,
    cluster: ClusterSnapshots,
) -> String {
    let mut by_pvc: BTreeMap<(&str, &str), PvcStats<'_>> = BTreeMap::new();
    let mut seen = 0u64;
    for f in facts {
        seen += 1;
        let stats = by_pvc.entry((&f.namespace, &f.pvc)).or_default();
        stats.total += 1;
        for tier in &f.tiers {
            *stats.tiers.entry(tier).or_default() += 1;
        }
        if f.marked {
            stats.marked += 1;
        }
        if let Some(at) = f.verified {
            stats.last_verified = Some(stats.last_verified.map_or(at, |t| t.max(at)));
        }
        if f.ready {
            if let Some(created) = f.created
                && stats.last_success.is_none_or(|(t, _)| created > t)
            {
                stats.last_success = Some((created, f.plan.as_deref()));
            }
        } else {
            stats.not_ready += 1;
            if let Some(at) = f.requested.or(f.created) {
                stats.oldest_not_ready = Some(stats.oldest_not_ready.map_or(at, |t| t.min(at)));
            }
        }
    }

    let pvc_labels = |(ns, pvc): &(&str, &str)| {
        vec![
            ("namespace".to_string(), (*ns).to_string()),
            ("pvc".to_string(), (*pvc).to_string()),
        ]
    };
    let with = |mut labels: Vec<(String, String)>, key: &str, value: &str| {
        labels.push((key.to_string(), value.to_string()));
        labels
    };
    let gauge =
        |name: &str,
         help: &str,
         samples: &mut dyn Iterator<Item = (Vec<(String, String)>, Value)>| {
            let mut family = GaugeFamily::new(name, help);
            family.samples.extend(samples);
            family
        };

    encode(vec![
        gauge(
            "backup_ns_exporter_synced",
            "1 once the snapshot watch has listed every VolumeSnapshot; 0 while it (re)lists.",
            &mut std::iter::once((Vec::new(), Value::Int(i64::from(synced)))),
        ),
        gauge(
            "backup_ns_exporter_snapshots_seen",
            "VolumeSnapshots with backup-ns labels currently known to the exporter.",
            &mut std::iter::once((Vec::new(), seen.into())),
        ),
        gauge(
            CLUSTER_SNAPSHOTS,
            CLUSTER_SNAPSHOTS_HELP,
            &mut std::iter::once((Vec::new(), (cluster.count as u64).into())),
        ),
        gauge(
            "backup_ns_cluster_snapshots_limit",
            "The snapshot count deploy/prometheus-rule.yaml warns near (--snapshot-limit).",
            &mut std::iter::once((Vec::new(), cluster.limit.into())),
        ),
        gauge(
            "backup_ns_last_success_timestamp_seconds",
            "Creation time (Unix seconds) of the newest ready backup-ns snapshot of the PVC.",
            &mut by_pvc.iter().filter_map(|(k, s)| {
                s.last_success
                    .map(|(t, _)| (pvc_labels(k), t.timestamp().into()))
            }),
        ),
        gauge(
            "backup_ns_last_verified_timestamp_seconds",
            "When `backup-ns verify` last proved a snapshot of the PVC by restoring it (Unix seconds).",
            &mut by_pvc.iter().filter_map(|(k, s)| {
                s.last_verified
                    .map(|t| (pvc_labels(k), t.timestamp().into()))
            }),
        ),
        gauge(
            "backup_ns_plan_info",
            "The plan named by the PVC's newest ready snapshot (always 1).",
            &mut by_pvc.iter().filter_map(|(k, s)| {
                s.last_success
                    .and_then(|(_, plan)| plan)
                    .map(|plan| (with(pvc_labels(k), "plan", plan), Value::Int(1)))
            }),
        ),
        gauge(
            "backup_ns_snapshots",
            "backup-ns VolumeSnapshots of the PVC.",
            &mut by_pvc.iter().map(|(k, s)| (pvc_labels(k), s.total.into())),
        ),
        gauge(
            "backup_ns_snapshots_by_tier",
            "backup-ns VolumeSnapshots of the PVC per retention tier label (daily, weekly, monthly, yearly), adhoc type and retain=days.",
            &mut by_pvc.iter().flat_map(|(k, s)| {
                TIERS.iter().map(move |tier| {
                    (
                        with(pvc_labels(k), "tier", tier),
                        s.tiers.get(tier).copied().unwrap_or(0).into(),
                    )
                })
            }),
        ),
        gauge(
            "backup_ns_snapshots_marked_for_deletion",
            "backup-ns VolumeSnapshots of the PVC carrying a delete-after label.",
            &mut by_pvc.iter().map(|(k, s)| (pvc_labels(k), s.marked.into())),
        ),
        gauge(
            "backup_ns_snapshots_not_ready",
            "backup-ns VolumeSnapshots of the PVC that are not readyToUse.",
            &mut by_pvc
                .iter()
                .map(|(k, s)| (pvc_labels(k), s.not_ready.into())),
        ),
        gauge(
            "backup_ns_oldest_not_ready_age_seconds",
            "Age in seconds of the PVC's oldest snapshot that is not ready (0 when all are ready).",
            &mut by_pvc.iter().map(|(k, s)| {
                let age = s
                    .oldest_not_ready
                    .map_or(0, |t| (now - t).num_seconds().max(0));
                (pvc_labels(k), age.into())
            }),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: ClusterSnapshots = ClusterSnapshots {
        count: 3,
        limit: 20_000,
    };

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn facts(pvc: &str, created: &str, ready: bool, tiers: &[&'static str]) -> SnapshotFacts {
        SnapshotFacts {
            namespace: "shop".into(),
            name: format!("{pvc}-{created}"),
            pvc: pvc.into(),
            plan: Some("nightly".into()),
            created: Some(at(created)),
            requested: Some(at(created)),
            ready,
            tiers: tiers.to_vec(),
            marked: false,
            verified: None,
        }
    }

    #[test]
    fn the_newest_passed_verification_is_the_last_verified_time() {
        let mut older = facts("data", "2026-01-01T01:00:00Z", true, &[]);
        older.verified = Some(at("2026-01-04T03:00:00Z"));
        let mut newer = facts("data", "2026-01-02T01:00:00Z", true, &[]);
        newer.verified = Some(at("2026-01-02T03:00:00Z"));
        let text = render(&[older, newer], at("2026-01-05T00:00:00Z"), true, CLUSTER);
        assert!(text.contains(
            "backup_ns_last_verified_timestamp_seconds{namespace=\"shop\",pvc=\"data\"} 1767495600\n"
        ));
        let unverified = facts("logs", "2026-01-01T01:00:00Z", true, &[]);
        let text = render(&[unverified], at("2026-01-05T00:00:00Z"), true, CLUSTER);
        assert!(!text.contains("backup_ns_last_verified_timestamp_seconds{"));
    }

    #[test]
    fn only_a_passed_result_counts_as_verified() {
        let vs = |result: &str| -> VolumeSnapshot {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "d", "namespace": "shop", "labels": {"backup-ns.sh/pvc": "data"},
                             "annotations": {"backup-ns.sh/verified-at": "2026-01-04T03:00:00Z",
                                             "backup-ns.sh/verify-result": result}},
                "spec": {"source": {"persistentVolumeClaimName": "data"}}
            }))
            .unwrap()
        };
        let passed =
            SnapshotFacts::from_snapshot(&vs("passed: 5 checks, 1 tables, 3 rows")).unwrap();
        assert_eq!(passed.verified, Some(at("2026-01-04T03:00:00Z")));
        let failed = SnapshotFacts::from_snapshot(&vs("failed: loads: syntax error")).unwrap();
        assert_eq!(failed.verified, None);
    }

    #[test]
    fn the_newest_ready_snapshot_sets_the_last_success_and_not_ready_ones_are_aged() {
        let all = [
            facts("data", "2026-01-01T01:00:00Z", true, &["daily"]),
            facts("data", "2026-01-02T01:00:00Z", true, &["daily", "weekly"]),
            facts("data", "2026-01-03T01:00:00Z", false, &[]),
        ];
        let text = render(&all, at("2026-01-03T02:00:00Z"), true, CLUSTER);
        assert!(text.contains("backup_ns_cluster_snapshots 3\n"), "{text}");
        assert!(
            text.contains("backup_ns_cluster_snapshots_limit 20000\n"),
            "{text}"
        );
        assert!(text.contains(
            "backup_ns_last_success_timestamp_seconds{namespace=\"shop\",pvc=\"data\"} 1767315600\n"
        ));
        assert!(text.contains(
            "backup_ns_snapshots_by_tier{namespace=\"shop\",pvc=\"data\",tier=\"daily\"} 2\n"
        ));
        assert!(
            text.contains("backup_ns_snapshots_not_ready{namespace=\"shop\",pvc=\"data\"} 1\n")
        );
        assert!(text.contains(
            "backup_ns_oldest_not_ready_age_seconds{namespace=\"shop\",pvc=\"data\"} 3600\n"
        ));
        assert!(text.contains("backup_ns_exporter_synced 1\n"));
    }

    #[test]
    fn a_pvc_without_a_ready_snapshot_has_no_last_success_sample() {
        let all = [facts("logs", "2026-01-01T01:00:00Z", false, &[])];
        let text = render(&all, at("2026-01-01T01:00:10Z"), false, CLUSTER);
        assert!(!text.contains("backup_ns_last_success_timestamp_seconds{"));
        assert!(text.contains("backup_ns_snapshots{namespace=\"shop\",pvc=\"logs\"} 1\n"));
        assert!(text.contains("backup_ns_exporter_synced 0\n"));
    }
}
