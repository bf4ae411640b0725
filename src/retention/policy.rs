//! The retention policy engine, pure: snapshots + options + clock → decisions, each with a human reason.
//!
//! Three phases, in the original's order, evaluated per (namespace, PVC):
//! 1. **Tier labels**: each tier label stays on the newest N *ready* snapshots carrying it (newest by creation
//!    time); older ones lose it. Snapshots that are not ready, or whose creation time is unknown, neither count
//!    toward N nor lose their labels.
//! 2. **Mark**: a `retain=daily_weekly_monthly` snapshot with no tier label left and no `delete-after` gets
//!    `delete-after = today + grace days`.
//! 3. **Sweep**: a snapshot with a `retain` label whose `delete-after` is earlier than today is deleted.
//!
//! Then the **run rule** joins the snapshots one run took (the members of one VolumeGroupSnapshot, or one plan's
//! snapshots with one run id; see `decide_runs_together`): a group's members are deleted all together, through
//! their group, or not at all; a run keeps a tier when any of its ready snapshots keeps it; a run is marked only
//! when none of its ready snapshots has a tier left.
//!
//! Safety rules that hold over every input (see the property tests at the bottom):
//! - only snapshots carrying `backup-ns.sh/retain` are ever touched; removing that label by hand pins a snapshot;
//! - a missing or unparsable `delete-after` never leads to deletion (the latter is reported);
//! - the newest ready snapshot of each PVC is never marked or deleted;
//! - a member of a VolumeGroupSnapshot is deleted only when every member is, and then through its group;
//! - the mass-deletion guard withholds every deletion in a namespace whose deletions exceed a share of its managed
//!   snapshots or a per-run cap, unless forced.
//!
//! Grace period: marking writes `today + grace_days`, and the sweep deletes once that date is *before* today, so a
//! snapshot is deleted at the earliest on the local day `mark day + grace_days + 1`: more than `grace_days` full
//! days after it was marked. `grace_days = 0` is the original's behaviour (mark with today, delete from tomorrow);
//! the default of 1 guarantees at least one full day between mark and delete whenever the pruner runs.
//!
//! Policy per PVC: the `backup-ns.sh/retention` annotation ([`RetentionPolicy`]) on the PVC's newest
//! `daily_weekly_monthly` snapshot that carries one, tiers missing from it filled from [`Options::defaults`] (the
//! original's 7/4/12 for the controller, the plan's own counts for `run`).

use crate::clock::Clock;
use crate::labels::{self, DELETE_AFTER, RETAIN, RETAIN_DAYS_MODE, RETAIN_GFS};
use crate::vocab::retention::{RetentionPolicy, Tier, TierCounts};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fmt::Write as _;

/// One VolumeSnapshot as retention observed it in the cluster (not the plan's `snapshot` settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedSnapshot {
    pub namespace: String,
    pub name: String,
    /// The PVC it belongs to ([`labels::snapshot_pvc`]: `backup-ns.sh/pvc`, else the source PVC), else empty.
    pub pvc: String,
    pub labels: BTreeMap<String, String>,
    /// The raw `backup-ns.sh/retention` annotation, if any. Other annotations are not kept (memory).
    pub retention: Option<String>,
    /// `status.creationTime`, falling back to `metadata.creationTimestamp`.
    pub created: Option<DateTime<Utc>>,
    /// `status.readyToUse`.
    pub ready: bool,
    /// `status.boundVolumeSnapshotContentName`: the applier patches its deletionPolicy before deleting.
    pub content: Option<String>,
    /// `metadata.deletionTimestamp` is set: the object is already going away. Such snapshots are left out of
    /// planning entirely, so they neither hold a tier slot nor count as a PVC's newest backup.
    pub deleting: bool,
    /// The VolumeGroupSnapshot this snapshot is a member of ([`labels::GROUP_MEMBER`], else
    /// `status.volumeGroupSnapshotName`): deleted only through that group, together with every other member.
    pub group: Option<String>,
    /// The `backup-ns.sh/run-id` annotation: with the plan label, which run of `backup-ns` took it.
    pub run_id: Option<String>,
}

/// Why a VolumeSnapshot JSON object could not be read as an [`ObservedSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObservedSnapshotError {
    #[error("VolumeSnapshot has no {field}")]
    MissingField { field: &'static str },
    /// A field of the wrong JSON type: never read as absent (labels as a list must not look like "no labels").
    #[error("VolumeSnapshot {namespace}/{name}: {field} is {found}, not {wanted}")]
    WrongType {
        namespace: String,
        name: String,
        field: String,
        found: &'static str,
        wanted: &'static str,
    },
    #[error("VolumeSnapshot {namespace}/{name}: {field} `{value}` is not an RFC 3339 time")]
    BadTimestamp {
        namespace: String,
        name: String,
        field: &'static str,
        value: String,
    },
}

impl ObservedSnapshot {
    /// Reads the fields retention needs from a `snapshot.storage.k8s.io/v1` VolumeSnapshot as JSON. Pure and cheap:
    /// only labels and the retention annotation are copied.
    pub fn from_volume_snapshot(
        vs: &serde_json::Value,
    ) -> Result<ObservedSnapshot, ObservedSnapshotError> {
        let meta = &vs["metadata"];
        let name = meta["name"]
            .as_str()
            .ok_or(ObservedSnapshotError::MissingField {
                field: "metadata.name",
            })?
            .to_string();
        let namespace = meta["namespace"]
            .as_str()
            .ok_or(ObservedSnapshotError::MissingField {
                field: "metadata.namespace",
            })?
            .to_string();
        let wrong = |field: String, found: &serde_json::Value, wanted: &'static str| {
            ObservedSnapshotError::WrongType {
                namespace: namespace.clone(),
                name: name.clone(),
                field,
                found: json_type(found),
                wanted,
            }
        };
        let mut labels = BTreeMap::new();
        match &meta["labels"] {
            serde_json::Value::Null => {}
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let v = v
                        .as_str()
                        .ok_or_else(|| wrong(format!("metadata.labels.{k}"), v, "a string"))?;
                    labels.insert(k.clone(), v.to_string());
                }
            }
            other => return Err(wrong("metadata.labels".into(), other, "a map")),
        }
        let ready = match &vs["status"]["readyToUse"] {
            serde_json::Value::Null => false,
            serde_json::Value::Bool(b) => *b,
            other => return Err(wrong("status.readyToUse".into(), other, "a boolean")),
        };
        let retention = meta["annotations"][labels::ANNOTATION_RETENTION]
            .as_str()
            .map(str::to_string);
        let parse_time = |field: &'static str, value: &serde_json::Value| match value.as_str() {
            None => Ok(None),
            Some(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| ObservedSnapshotError::BadTimestamp {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    field,
                    value: s.to_string(),
                }),
        };
        let status = &vs["status"];
        let group = labels
            .get(labels::GROUP_MEMBER)
            .map(String::as_str)
            .or_else(|| status["volumeGroupSnapshotName"].as_str())
            .filter(|g| !g.is_empty())
            .map(str::to_string);
        let run_id = meta["annotations"][labels::ANNOTATION_RUN_ID]
            .as_str()
            .map(str::to_string);
        let created = match parse_time("status.creationTime", &status["creationTime"])? {
            Some(t) => Some(t),
            None => parse_time("metadata.creationTimestamp", &meta["creationTimestamp"])?,
        };
        let pvc = labels::snapshot_pvc(
            &labels,
            vs["spec"]["source"]["persistentVolumeClaimName"].as_str(),
        )
        .unwrap_or("")
        .to_string();
        Ok(ObservedSnapshot {
            pvc,
            labels,
            retention,
            created,
            ready,
            content: status["boundVolumeSnapshotContentName"]
                .as_str()
                .map(str::to_string),
            deleting: !meta["deletionTimestamp"].is_null(),
            group,
            run_id,
            namespace,
            name,
        })
    }

    /// True when retention manages this snapshot (it carries `backup-ns.sh/retain`).
    pub fn is_managed(&self) -> bool {
        self.labels.contains_key(RETAIN)
    }

    fn retain(&self) -> Option<&str> {
        self.labels.get(RETAIN).map(String::as_str)
    }

    /// The run this snapshot was taken in, for the rule that decides a run's snapshots together: its
    /// VolumeGroupSnapshot, else its plan and run id. `None` for a snapshot without either (taken by hand, or by a
    /// version that did not stamp run ids): it is a run of its own.
    fn run(&self) -> Option<RunKey<'_>> {
        if let Some(group) = &self.group {
            return Some(RunKey::Group(group));
        }
        let id = self.run_id.as_deref()?;
        let plan = self.labels.get(labels::PLAN).map_or("", String::as_str);
        Some(RunKey::Run { plan, id })
    }
}

/// One run's snapshots within a namespace: what the run rule groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RunKey<'a> {
    /// The members of one VolumeGroupSnapshot.
    Group(&'a str),
    /// The snapshots one `backup-ns run` took for one plan (same `backup-ns.sh/plan` label, same run id).
    Run { plan: &'a str, id: &'a str },
}

/// The JSON type of a value, in words.
fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a map",
    }
}

/// Which phases a run performs (`retention apply` = tiers only; `prune --mark-only` / `--sweep-only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    pub tiers: bool,
    pub mark: bool,
    pub sweep: bool,
}

impl Phases {
    pub const ALL: Phases = Phases {
        tiers: true,
        mark: true,
        sweep: true,
    };
}

/// The mass-deletion guard: a circuit breaker against a bad clock or corrupted labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guard {
    /// Trip when a namespace would lose more than this share of its managed snapshots (0.0–1.0).
    pub max_share: f64,
    /// Trip when a namespace would lose more than this many snapshots in one run.
    pub max_deletes: Option<u32>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            max_share: 0.5,
            max_deletes: Some(100),
        }
    }
}

/// Why a controller default from the environment is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}=`{value}` is not a whole number of snapshots (0 to 100000)")]
pub struct DefaultsError {
    pub var: &'static str,
    pub value: String,
}

/// Reads the original's `RETAIN_LAST_DAILY` / `RETAIN_LAST_WEEKLY` / `RETAIN_LAST_MONTHLY` (and our
/// `RETAIN_LAST_YEARLY`) through `get`, falling back to 7/4/12/0 for unset or empty variables. `get` is usually
/// `|k| std::env::var(k).ok()`; tests pass a map.
pub fn defaults_from_env(
    get: impl Fn(&str) -> Option<String>,
) -> Result<TierCounts, DefaultsError> {
    let base = TierCounts::ORIGINAL_DEFAULTS;
    let read = |var: &'static str, fallback: u32| -> Result<u32, DefaultsError> {
        match get(var).as_deref().map(str::trim) {
            None | Some("") => Ok(fallback),
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 100_000)
                .ok_or_else(|| DefaultsError {
                    var,
                    value: value.to_string(),
                }),
        }
    };
    Ok(TierCounts {
        daily: read("RETAIN_LAST_DAILY", base.daily)?,
        weekly: read("RETAIN_LAST_WEEKLY", base.weekly)?,
        monthly: read("RETAIN_LAST_MONTHLY", base.monthly)?,
        yearly: read("RETAIN_LAST_YEARLY", base.yearly)?,
    })
}

/// Settings of one retention run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Counts for tiers a PVC's annotation does not set, and for PVCs without a usable annotation: the controller
    /// defaults (`RETAIN_LAST_*`), or in `run` the plan's own counts.
    pub defaults: TierCounts,
    /// Whole days between marking and the earliest deletion day (see the module docs).
    pub grace_days: u32,
    pub guard: Guard,
    /// Delete even where the guard trips (the verdict still says it tripped).
    pub force: bool,
    pub phases: Phases,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            defaults: TierCounts::ORIGINAL_DEFAULTS,
            grace_days: 1,
            guard: Guard::default(),
            force: false,
            phases: Phases::ALL,
        }
    }
}

/// Something the run noticed and deliberately did not act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// `delete-after` is present but not `YYYY-MM-DD`; the snapshot is not deleted.
    DeleteAfterUnparsable { value: String },
    /// Neither `status.creationTime` nor `metadata.creationTimestamp`; the snapshot is not ranked, not marked.
    MissingCreationTime,
    /// The snapshot would be marked or deleted but is the newest ready backup of its PVC.
    NewestReadyProtected { would: Withheld },
    /// The deletion was withheld because the namespace's guard tripped.
    GuardWithheld,
    /// The retention annotation could not be read; controller defaults were used.
    RetentionAnnotationInvalid { value: String, error: String },
    /// `backup-ns.sh/retain` has a value other than `daily_weekly_monthly` or `days`; it is never marked.
    UnknownRetainValue { value: String },
    /// The snapshot would be marked, or lose a tier label, but another snapshot of its run (`member`) keeps a
    /// tier: a run's snapshots keep their tiers together.
    KeptWithRun { would: Kept, member: String },
    /// The snapshot is due, but it is a member of a VolumeGroupSnapshot whose member `member` is kept (`why`):
    /// members are deleted only together, through their group.
    GroupMemberKept {
        group: String,
        member: String,
        why: String,
    },
}

/// What the run rule kept a snapshot from: losing one tier label, or being marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kept {
    /// It keeps this tier label.
    Tier(Tier),
    /// It is not marked for deletion.
    Mark,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::DeleteAfterUnparsable { value } => {
                write!(f, "delete-after `{value}` is not YYYY-MM-DD; not deleting")
            }
            Problem::MissingCreationTime => f.write_str("no creation time; not ranked or marked"),
            Problem::NewestReadyProtected { would } => {
                write!(
                    f,
                    "would {would}, but it is the newest ready backup of its PVC; kept"
                )
            }
            Problem::GuardWithheld => f.write_str("deletion withheld: mass-deletion guard tripped"),
            Problem::RetentionAnnotationInvalid { value, error } => {
                write!(
                    f,
                    "retention annotation `{value}` is invalid ({error}); using defaults"
                )
            }
            Problem::UnknownRetainValue { value } => {
                write!(
                    f,
                    "retain=`{value}` is not daily_weekly_monthly or days; never marked"
                )
            }
            Problem::KeptWithRun {
                would: Kept::Tier(tier),
                member,
            } => write!(
                f,
                "keeps {tier}: {member} of the same run keeps it (a run's snapshots keep their tiers together)"
            ),
            Problem::KeptWithRun {
                would: Kept::Mark,
                member,
            } => write!(
                f,
                "not marked: {member} of the same run keeps a tier (a run's snapshots are marked together)"
            ),
            Problem::GroupMemberKept { group, member, why } => write!(
                f,
                "not deleted: member of VolumeGroupSnapshot {group}, whose member {member} is kept ({why}); \
                 members are deleted only together, through their group"
            ),
        }
    }
}

/// What the planner would have done to a protected snapshot.
impl Problem {
    /// The command that resolves this problem of snapshot `namespace/name`, for the text report; `None` when
    /// nothing is wrong with the snapshot itself (the newest ready backup is kept by design).
    pub fn fix(&self, namespace: &str, name: &str) -> Option<String> {
        let object = format!("volumesnapshot -n {namespace} {name}");
        match self {
            Problem::DeleteAfterUnparsable { .. } => Some(format!(
                "kubectl label {object} {DELETE_AFTER}-   (the next pass marks it again)"
            )),
            Problem::MissingCreationTime => Some(format!(
                "kubectl describe {object}   (never ready? `backup-ns delete -n {namespace} {name}`)"
            )),
            Problem::NewestReadyProtected { .. } => None,
            Problem::GuardWithheld => Some(format!(
                "backup-ns prune -n {namespace} --dry-run, then backup-ns prune -n {namespace} --force"
            )),
            Problem::RetentionAnnotationInvalid { .. } => Some(format!(
                "kubectl annotate {object} {}='{{\"daily\":7,\"weekly\":4,\"monthly\":12}}' --overwrite",
                labels::ANNOTATION_RETENTION
            )),
            Problem::UnknownRetainValue { .. } => Some(format!(
                "kubectl label {object} {RETAIN}={RETAIN_GFS} --overwrite   (or {RETAIN}={RETAIN_DAYS_MODE})"
            )),
            Problem::KeptWithRun { .. } => None,
            Problem::GroupMemberKept { group, .. } => Some(format!(
                "kubectl get volumesnapshot -n {namespace} -l {}={group} --show-labels   (the group goes once \
                 every member is due)",
                labels::GROUP_MEMBER
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Withheld {
    #[serde(rename = "mark for deletion")]
    Mark,
    #[serde(rename = "delete")]
    Delete,
}

impl fmt::Display for Withheld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Withheld::Mark => "mark for deletion",
            Withheld::Delete => "delete",
        })
    }
}

/// What to do with one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    RemoveLabel { tier: Tier },
    Mark { delete_after: NaiveDate },
    Delete,
    Report { problem: Problem },
}

/// One decision about one snapshot, with the reason a human reads in `retention plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub namespace: String,
    pub name: String,
    pub pvc: String,
    /// The VolumeGroupSnapshot the snapshot is a member of: a deletion goes through it, with every member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(flatten)]
    pub action: Action,
    pub reason: String,
}

/// Where a PVC's counts came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum PolicySource {
    /// The retention annotation on this snapshot.
    Annotation { snapshot: String },
    /// No usable annotation: controller defaults.
    Defaults,
}

/// The resolved policy of one PVC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PvcPolicy {
    pub namespace: String,
    pub pvc: String,
    pub counts: TierCounts,
    pub source: PolicySource,
}

/// The guard's verdict for one namespace that had deletions planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardVerdict {
    pub namespace: String,
    /// Snapshots in the namespace carrying `backup-ns.sh/retain`.
    pub managed: usize,
    /// Deletions the sweep wanted.
    pub deletes: usize,
    pub tripped: bool,
    /// Tripped, but `force` let the deletions through.
    pub forced: bool,
    pub reason: String,
}

/// The planner's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct RetentionPlan {
    /// Grouped by namespace and PVC, newest snapshot first.
    pub decisions: Vec<Decision>,
    /// One per namespace with at least one planned deletion.
    pub guards: Vec<GuardVerdict>,
    /// One per (namespace, PVC) with managed snapshots.
    pub policies: Vec<PvcPolicy>,
}

impl RetentionPlan {
    /// True when a guard tripped and was not forced: the run must exit with `Exit::GuardTripped`.
    pub fn guard_refused(&self) -> bool {
        self.guards.iter().any(|g| g.tripped && !g.forced)
    }

    /// Decisions that change something (everything but reports).
    pub fn changes(&self) -> impl Iterator<Item = &Decision> {
        self.decisions
            .iter()
            .filter(|d| !matches!(d.action, Action::Report { .. }))
    }
}

impl Action {
    /// Short text for the ACTION column of `retention plan`.
    pub fn label(&self) -> String {
        match self {
            Action::RemoveLabel { tier } => format!("remove {tier}"),
            Action::Mark { delete_after } => format!("mark {delete_after}"),
            Action::Delete => "delete".to_string(),
            Action::Report { .. } => "report".to_string(),
        }
    }
}

impl RetentionPlan {
    /// The terminal table of `retention plan` / `prune --dry-run`: one row per decision with its reason, then the
    /// guard verdicts and a one-line summary.
    pub fn render_text(&self) -> String {
        let rows: Vec<[String; 5]> = self
            .decisions
            .iter()
            .map(|d| {
                [
                    d.namespace.clone(),
                    display_pvc(&d.pvc).to_string(),
                    d.name.clone(),
                    d.action.label(),
                    d.reason.clone(),
                ]
            })
            .collect();
        let header = ["NAMESPACE", "PVC", "SNAPSHOT", "ACTION", "REASON"].map(str::to_string);
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        if rows.is_empty() {
            out.push_str("Nothing to do.\n");
        } else {
            for row in std::iter::once(&header).chain(&rows) {
                let mut line = String::new();
                for (k, cell) in row.iter().enumerate() {
                    if k + 1 == row.len() {
                        line.push_str(cell);
                    } else {
                        let _ = write!(line, "{cell:<w$}  ", w = widths[k]);
                    }
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        for g in &self.guards {
            let verdict = match (g.tripped, g.forced) {
                (false, _) => "ok",
                (true, true) => "TRIPPED (forced)",
                (true, false) => "TRIPPED",
            };
            let _ = writeln!(out, "guard {}: {verdict}: {}", g.namespace, g.reason);
        }
        let count = |f: fn(&Action) -> bool| self.decisions.iter().filter(|d| f(&d.action)).count();
        let refused = self
            .guards
            .iter()
            .filter(|g| g.tripped && !g.forced)
            .count();
        let _ = writeln!(
            out,
            "{} label removal(s), {} mark(s), {} deletion(s), {} report(s); guard refused in {refused} namespace(s)",
            count(|a| matches!(a, Action::RemoveLabel { .. })),
            count(|a| matches!(a, Action::Mark { .. })),
            count(|a| matches!(a, Action::Delete)),
            count(|a| matches!(a, Action::Report { .. })),
        );
        out
    }
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Newest first; unknown creation times last; name breaks ties so the order is total and deterministic.
fn newest_first(a: &ObservedSnapshot, b: &ObservedSnapshot) -> Ordering {
    match (a.created, b.created) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| a.name.cmp(&b.name))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Retain {
    #[default]
    Unmanaged,
    Gfs,
    Days,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum DeleteAfter {
    #[default]
    Absent,
    Date(NaiveDate),
    Unparsable,
}

/// What the phases need from a snapshot's labels, read in one pass over them so the phases do no map lookups.
#[derive(Debug, Clone, Copy, Default)]
struct Facts {
    retain: Retain,
    /// Bit `n` set: carries the label of `Tier::ALL[n]`.
    tiers: u8,
    delete_after: DeleteAfter,
}

fn facts_of(s: &ObservedSnapshot) -> Facts {
    let mut f = Facts::default();
    for (key, value) in &s.labels {
        match key.as_str() {
            RETAIN => {
                f.retain = match value.as_str() {
                    RETAIN_GFS => Retain::Gfs,
                    RETAIN_DAYS_MODE => Retain::Days,
                    _ => Retain::Other,
                }
            }
            labels::DAILY => f.tiers |= 1,
            labels::WEEKLY => f.tiers |= 2,
            labels::MONTHLY => f.tiers |= 4,
            labels::YEARLY => f.tiers |= 8,
            DELETE_AFTER => {
                f.delete_after =
                    labels::parse_date(value).map_or(DeleteAfter::Unparsable, DeleteAfter::Date)
            }
            _ => {}
        }
    }
    f
}

/// Plans retention for `snapshots` (any mix of namespaces and PVCs, managed or not) at `clock`'s now.
pub fn plan(snapshots: &[ObservedSnapshot], options: &Options, clock: &Clock) -> RetentionPlan {
    plan_focused(snapshots, None, options, clock)
}

/// [`plan`], keeping only the decisions, policies and guard of the snapshots of PVC `focus` (when given). Every
/// snapshot still takes part in the planning, so the run rule sees the other PVCs' snapshots of a run (their
/// tiers, whether they are due, pinned or protected) exactly as a plan of the whole scope would.
pub fn plan_focused(
    snapshots: &[ObservedSnapshot],
    focus: Option<&str>,
    options: &Options,
    clock: &Clock,
) -> RetentionPlan {
    let today = clock.today();
    // The runs of each namespace, pinned members included (a pin on one member keeps a group).
    let mut runs: HashMap<&str, BTreeMap<RunKey<'_>, Vec<usize>>> = HashMap::new();
    for (i, s) in snapshots.iter().enumerate() {
        if let Some(key) = s.run()
            && !s.deleting
        {
            runs.entry(s.namespace.as_str())
                .or_default()
                .entry(key)
                .or_default()
                .push(i);
        }
    }
    let no_runs = BTreeMap::new();
    let facts: Vec<Facts> = snapshots.iter().map(facts_of).collect();
    let mut order: Vec<usize> = (0..snapshots.len())
        .filter(|&i| facts[i].retain != Retain::Unmanaged && !snapshots[i].deleting)
        .collect();
    order.sort_unstable_by(|&a, &b| {
        let (x, y) = (&snapshots[a], &snapshots[b]);
        x.namespace
            .cmp(&y.namespace)
            .then_with(|| x.pvc.cmp(&y.pvc))
            .then_with(|| newest_first(x, y))
    });

    let mut out = RetentionPlan::default();
    let mut start = 0;
    while start < order.len() {
        let ns = &snapshots[order[start]].namespace;
        let mut end = start;
        while end < order.len() && snapshots[order[end]].namespace == *ns {
            end += 1;
        }
        let namespace = Namespace {
            managed: &order[start..end],
            runs: runs.get(ns.as_str()).unwrap_or(&no_runs),
        };
        plan_namespace(
            snapshots, &facts, &namespace, focus, options, today, &mut out,
        );
        start = end;
    }
    out
}

/// The snapshots of one namespace as the planner groups them.
struct Namespace<'s, 'k> {
    /// Managed snapshots not being deleted, by PVC, newest first.
    managed: &'s [usize],
    /// Its runs ([`ObservedSnapshot::run`]), every member not being deleted, managed or not.
    runs: &'s BTreeMap<RunKey<'k>, Vec<usize>>,
}

fn plan_namespace(
    snapshots: &[ObservedSnapshot],
    facts: &[Facts],
    namespace: &Namespace<'_, '_>,
    focus: Option<&str>,
    options: &Options,
    today: NaiveDate,
    out: &mut RetentionPlan,
) {
    let group = namespace.managed;
    let first_decision = out.decisions.len();
    let first_policy = out.policies.len();
    let mut start = 0;
    while start < group.len() {
        let pvc = &snapshots[group[start]].pvc;
        let mut end = start;
        while end < group.len() && snapshots[group[end]].pvc == *pvc {
            end += 1;
        }
        plan_pvc(snapshots, facts, &group[start..end], options, today, out);
        start = end;
    }
    decide_runs_together(snapshots, facts, namespace.runs, first_decision, out);
    let Some(focus) = focus else {
        guard_namespace(snapshots, group, options, first_decision, out);
        return;
    };
    let tail: Vec<Decision> = out.decisions.drain(first_decision..).collect();
    out.decisions
        .extend(tail.into_iter().filter(|d| d.pvc == focus));
    let tail: Vec<PvcPolicy> = out.policies.drain(first_policy..).collect();
    out.policies
        .extend(tail.into_iter().filter(|p| p.pvc == focus));
    let focused: Vec<usize> = group
        .iter()
        .copied()
        .filter(|&i| snapshots[i].pvc == focus)
        .collect();
    guard_namespace(snapshots, &focused, options, first_decision, out);
}

/// The run rule, over one namespace's decisions (those from `first_decision` on), after every PVC was planned
/// on its own and before the guard:
/// 1. **Groups deleted whole**: the members of a VolumeGroupSnapshot are deleted only when every member (pinned
///    ones included) is to be deleted, and then through their group; otherwise none is, each reported with the
///    member that keeps the group.
/// 2. **Tiers together**: when a ready snapshot of a run keeps a tier label (and stays), no snapshot of that run
///    loses it.
/// 3. **Marked together**: while a ready snapshot of a run that stays has a tier label left, none of the run is
///    marked.
fn decide_runs_together(
    snapshots: &[ObservedSnapshot],
    facts: &[Facts],
    runs: &BTreeMap<RunKey<'_>, Vec<usize>>,
    first_decision: usize,
    out: &mut RetentionPlan,
) {
    if runs.is_empty() {
        return;
    }
    // The decisions on each run member, by the member's name (names are unique within a namespace).
    let mut by_name: HashMap<&str, Vec<usize>> = runs
        .values()
        .flatten()
        .map(|&i| (snapshots[i].name.as_str(), Vec::new()))
        .collect();
    for (k, d) in out.decisions.iter().enumerate().skip(first_decision) {
        if let Some(ks) = by_name.get_mut(d.name.as_str()) {
            ks.push(k);
        }
    }
    let decided = MemberDecisions { by_name };
    let deleted = |out: &RetentionPlan, i: usize| {
        !decided
            .of(out, snapshots, i, |a: &Action| *a == Action::Delete)
            .is_empty()
    };
    // Marks of snapshots that keep a tier after all: not marked, and nothing to report.
    let mut dropped: HashSet<usize> = HashSet::new();
    for (key, members) in runs {
        // A run of one snapshot (a single-PVC plan) is decided as it was planned.
        if members.len() < 2 && !matches!(key, RunKey::Group(_)) {
            continue;
        }
        // 1. Groups deleted whole (first: a member kept here holds its run's tiers and marks below).
        if let RunKey::Group(group) = *key {
            decide_group(snapshots, facts, group, members, &decided, out);
        }
        // 2. Tiers together.
        for (bit, tier) in Tier::ALL.into_iter().enumerate() {
            let removes_tier = |a: &Action| *a == Action::RemoveLabel { tier };
            let carriers: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&i| {
                    facts[i].retain != Retain::Unmanaged && facts[i].tiers & (1 << bit) != 0
                })
                .collect();
            let keeper = carriers.iter().copied().find(|&i| {
                snapshots[i].ready
                    && snapshots[i].created.is_some()
                    && decided.of(out, snapshots, i, removes_tier).is_empty()
                    && !deleted(out, i)
            });
            let Some(keeper) = keeper else { continue };
            for &i in &carriers {
                for k in decided.of(out, snapshots, i, removes_tier) {
                    let problem = Problem::KeptWithRun {
                        would: Kept::Tier(tier),
                        member: snapshots[keeper].name.clone(),
                    };
                    out.decisions[k] = report(&snapshots[i], problem);
                }
            }
        }
        // 3. Marked together.
        let tiers_left = |out: &RetentionPlan, i: usize| {
            let removed = Tier::ALL
                .into_iter()
                .enumerate()
                .filter(|&(_, tier)| {
                    !decided
                        .of(out, snapshots, i, |a: &Action| {
                            *a == Action::RemoveLabel { tier }
                        })
                        .is_empty()
                })
                .fold(0u8, |acc, (bit, _)| acc | 1 << bit);
            facts[i].tiers & !removed != 0
        };
        // Only a ready snapshot holds its run: one that never became ready keeps its labels but is no backup.
        let holder = members.iter().copied().find(|&i| {
            facts[i].retain == Retain::Gfs
                && snapshots[i].ready
                && snapshots[i].created.is_some()
                && !deleted(out, i)
                && tiers_left(out, i)
        });
        let Some(holder) = holder else { continue };
        for &i in members {
            for k in decided.of(out, snapshots, i, |a: &Action| {
                matches!(a, Action::Mark { .. })
            }) {
                if tiers_left(out, i) {
                    dropped.insert(k);
                    continue;
                }
                let problem = Problem::KeptWithRun {
                    would: Kept::Mark,
                    member: snapshots[holder].name.clone(),
                };
                out.decisions[k] = report(&snapshots[i], problem);
            }
        }
    }
    if !dropped.is_empty() {
        let tail: Vec<Decision> = out.decisions.drain(first_decision..).collect();
        out.decisions.extend(
            tail.into_iter()
                .enumerate()
                .filter(|(k, _)| !dropped.contains(&(first_decision + k)))
                .map(|(_, d)| d),
        );
    }
}

/// The decisions on each run member of one namespace, by the member's name (names are unique in a namespace).
struct MemberDecisions<'a> {
    by_name: HashMap<&'a str, Vec<usize>>,
}

impl MemberDecisions<'_> {
    /// The indices of the decisions on `snapshots[i]` whose action is `wanted`.
    fn of(
        &self,
        out: &RetentionPlan,
        snapshots: &[ObservedSnapshot],
        i: usize,
        wanted: impl Fn(&Action) -> bool,
    ) -> Vec<usize> {
        self.by_name
            .get(snapshots[i].name.as_str())
            .map(|ks| {
                ks.iter()
                    .copied()
                    .filter(|&k| wanted(&out.decisions[k].action))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Step 1 of [`decide_runs_together`] for the members of VolumeGroupSnapshot `group`.
fn decide_group(
    snapshots: &[ObservedSnapshot],
    facts: &[Facts],
    group: &str,
    members: &[usize],
    decided: &MemberDecisions<'_>,
    out: &mut RetentionPlan,
) {
    let is_delete = |a: &Action| *a == Action::Delete;
    let deletes: Vec<(usize, usize)> = members
        .iter()
        .flat_map(|&i| {
            decided
                .of(out, snapshots, i, is_delete)
                .into_iter()
                .map(move |k| (i, k))
        })
        .collect();
    if deletes.is_empty() {
        return;
    }
    let kept = members
        .iter()
        .copied()
        .find(|&i| decided.of(out, snapshots, i, is_delete).is_empty());
    let Some(h) = kept else {
        let names: Vec<&str> = members
            .iter()
            .map(|&i| snapshots[i].name.as_str())
            .collect();
        for (_, k) in deletes {
            let _ = write!(
                out.decisions[k].reason,
                "; deleted through VolumeGroupSnapshot {group} with all {} member(s): {}",
                names.len(),
                names.join(", ")
            );
        }
        return;
    };
    let why = if facts[h].retain == Retain::Unmanaged {
        format!("pinned: no {RETAIN} label")
    } else if let Some(&k) = decided
        .of(out, snapshots, h, |a: &Action| {
            matches!(a, Action::Report { .. })
        })
        .first()
    {
        out.decisions[k].reason.clone()
    } else {
        "not due for deletion".to_string()
    };
    for (i, k) in deletes {
        let problem = Problem::GroupMemberKept {
            group: group.to_string(),
            member: snapshots[h].name.clone(),
            why: why.clone(),
        };
        out.decisions[k] = report(&snapshots[i], problem);
    }
}

fn decision(s: &ObservedSnapshot, action: Action, reason: String) -> Decision {
    Decision {
        namespace: s.namespace.clone(),
        name: s.name.clone(),
        pvc: s.pvc.clone(),
        group: s.group.clone(),
        action,
        reason,
    }
}

fn report(s: &ObservedSnapshot, problem: Problem) -> Decision {
    let reason = problem.to_string();
    decision(s, Action::Report { problem }, reason)
}

/// Plans one PVC. `group` holds its managed snapshots, newest first.
fn plan_pvc(
    snapshots: &[ObservedSnapshot],
    facts: &[Facts],
    group: &[usize],
    options: &Options,
    today: NaiveDate,
    out: &mut RetentionPlan,
) {
    let first = &snapshots[group[0]];
    let protected = group
        .iter()
        .copied()
        .find(|&i| snapshots[i].ready && snapshots[i].created.is_some());

    // Snapshots the sweep will delete: a past, parsable delete-after, and not the protected newest. Known before
    // the tier phase because marks written now always lie in the future.
    let due = |i: usize| {
        Some(i) != protected
            && matches!(facts[i].delete_after, DeleteAfter::Date(date) if date < today)
    };

    // Policy: the newest GFS snapshot that carries an annotation and is not about to be swept decides. Skipping
    // the doomed ones keeps the policy stable across the deletion, so a re-run converges instead of switching
    // policy.
    let mut counts = options.defaults;
    let mut source = PolicySource::Defaults;
    if let Some(i) = group
        .iter()
        .copied()
        .find(|&i| facts[i].retain == Retain::Gfs && snapshots[i].retention.is_some() && !due(i))
    {
        let s = &snapshots[i];
        let value = s.retention.as_deref().unwrap_or_default();
        match RetentionPolicy::from_annotation(value, options.defaults) {
            Ok(parsed) => {
                counts = parsed.tiers_or(options.defaults);
                source = PolicySource::Annotation {
                    snapshot: s.name.clone(),
                };
            }
            Err(e) => out.decisions.push(report(
                s,
                Problem::RetentionAnnotationInvalid {
                    value: value.to_string(),
                    error: e.to_string(),
                },
            )),
        }
    }
    let source_text = match &source {
        PolicySource::Annotation { snapshot } => format!("annotation on {snapshot}"),
        PolicySource::Defaults => "controller defaults".to_string(),
    };

    // Tier phase. `removed[k]` collects the tiers removed from group[k].
    let mut removed: Vec<u8> = vec![0; group.len()];
    for &i in group {
        let s = &snapshots[i];
        if s.created.is_none() {
            out.decisions.push(report(s, Problem::MissingCreationTime));
        }
        if facts[i].retain == Retain::Other {
            let value = s.retain().unwrap_or_default().to_string();
            out.decisions
                .push(report(s, Problem::UnknownRetainValue { value }));
        }
    }
    if options.phases.tiers {
        for (bit, tier) in Tier::ALL.into_iter().enumerate() {
            let keep = counts.get(tier) as usize;
            let mut rank = 0usize;
            for (k, &i) in group.iter().enumerate() {
                let s = &snapshots[i];
                if facts[i].tiers & (1 << bit) == 0 || !s.ready || s.created.is_none() {
                    continue;
                }
                rank += 1;
                if rank > keep {
                    removed[k] |= 1 << bit;
                    let value = s.labels.get(tier.key()).map_or("", String::as_str);
                    out.decisions.push(decision(
                        s,
                        Action::RemoveLabel { tier },
                        format!(
                            "{tier}={value} is the {} newest ready {tier} snapshot of pvc {}; policy keeps {keep} ({source_text})",
                            ordinal(rank),
                            display_pvc(&s.pvc),
                        ),
                    ));
                }
            }
        }
    }

    // Mark phase.
    if options.phases.mark {
        for (k, &i) in group.iter().enumerate() {
            let s = &snapshots[i];
            if facts[i].retain != Retain::Gfs || facts[i].delete_after != DeleteAfter::Absent {
                continue;
            }
            let has_tier = facts[i].tiers & !removed[k] != 0;
            if has_tier || s.created.is_none() {
                continue;
            }
            if Some(i) == protected {
                out.decisions.push(report(
                    s,
                    Problem::NewestReadyProtected {
                        would: Withheld::Mark,
                    },
                ));
                continue;
            }
            let delete_after = today
                .checked_add_days(chrono::Days::new(u64::from(options.grace_days)))
                .unwrap_or(NaiveDate::MAX);
            out.decisions.push(decision(
                s,
                Action::Mark { delete_after },
                format!(
                    "no tier label left; delete after {delete_after} (grace {} day{})",
                    options.grace_days,
                    if options.grace_days == 1 { "" } else { "s" }
                ),
            ));
        }
    }

    // Sweep phase.
    if options.phases.sweep {
        for &i in group {
            let s = &snapshots[i];
            let date = match facts[i].delete_after {
                DeleteAfter::Absent => continue,
                DeleteAfter::Date(date) => date,
                DeleteAfter::Unparsable => {
                    let value = s.labels.get(DELETE_AFTER).cloned().unwrap_or_default();
                    out.decisions
                        .push(report(s, Problem::DeleteAfterUnparsable { value }));
                    continue;
                }
            };
            if date >= today {
                continue;
            }
            if Some(i) == protected {
                out.decisions.push(report(
                    s,
                    Problem::NewestReadyProtected {
                        would: Withheld::Delete,
                    },
                ));
                continue;
            }
            out.decisions.push(decision(
                s,
                Action::Delete,
                format!("delete-after {date} is before today {today}"),
            ));
        }
    }

    out.policies.push(PvcPolicy {
        namespace: first.namespace.clone(),
        pvc: first.pvc.clone(),
        counts,
        source,
    });
}

fn display_pvc(pvc: &str) -> &str {
    if pvc.is_empty() { "(unknown)" } else { pvc }
}

/// Applies the guard to the namespace whose decisions start at `first_decision`, then drops label removals on
/// snapshots that are deleted anyway (one patch fewer each).
fn guard_namespace(
    snapshots: &[ObservedSnapshot],
    group: &[usize],
    options: &Options,
    first_decision: usize,
    out: &mut RetentionPlan,
) {
    let decisions = &mut out.decisions[first_decision..];
    let deletes = decisions
        .iter()
        .filter(|d| d.action == Action::Delete)
        .count();
    if deletes == 0 {
        return;
    }
    let managed = group.len();
    let namespace = snapshots[group[0]].namespace.clone();
    let share = deletes as f64 / managed as f64;
    let over_share = share > options.guard.max_share;
    let over_cap = options
        .guard
        .max_deletes
        .is_some_and(|cap| deletes > cap as usize);
    let tripped = over_share || over_cap;
    let forced = tripped && options.force;
    let reason = if !tripped {
        format!(
            "{deletes} of {managed} managed snapshots ({:.0}%) within the guard",
            share * 100.0
        )
    } else {
        let why = if over_cap {
            format!(
                "{deletes} deletions exceed the cap of {}",
                options.guard.max_deletes.unwrap_or_default()
            )
        } else {
            format!(
                "{deletes} of {managed} managed snapshots ({:.0}%) exceed the {:.0}% share",
                share * 100.0,
                options.guard.max_share * 100.0
            )
        };
        if forced {
            format!("{why}; forced")
        } else {
            format!("{why}; refusing to delete in this namespace (use --force to override)")
        }
    };
    if tripped && !forced {
        for d in decisions.iter_mut() {
            if d.action == Action::Delete {
                d.action = Action::Report {
                    problem: Problem::GuardWithheld,
                };
                d.reason = format!("{}; {}", Problem::GuardWithheld, d.reason);
            }
        }
    } else {
        let deleted: HashSet<String> = decisions
            .iter()
            .filter(|d| d.action == Action::Delete)
            .map(|d| d.name.clone())
            .collect();
        let tail: Vec<Decision> = out.decisions.drain(first_decision..).collect();
        out.decisions.extend(tail.into_iter().filter(|d| {
            !(matches!(d.action, Action::RemoveLabel { .. }) && deleted.contains(&d.name))
        }));
    }
    out.guards.push(GuardVerdict {
        namespace,
        managed,
        deletes,
        tripped,
        forced,
        reason,
    });
}

/// Applies decisions to an in-memory list, as the cluster applier does to the API: removes tier labels, writes
/// `delete-after` where none is set, drops deleted snapshots. Reports change nothing. Idempotent.
pub fn apply_decisions(snapshots: &mut Vec<ObservedSnapshot>, decisions: &[Decision]) {
    let index: HashMap<(&str, &str), usize> = snapshots
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.namespace.as_str(), s.name.as_str()), i))
        .collect();
    let mut edits: Vec<(usize, &Action)> = Vec::with_capacity(decisions.len());
    for d in decisions {
        if let Some(&i) = index.get(&(d.namespace.as_str(), d.name.as_str())) {
            edits.push((i, &d.action));
        }
    }
    drop(index);
    let mut doomed = vec![false; snapshots.len()];
    for (i, action) in edits {
        let s = &mut snapshots[i];
        match action {
            Action::RemoveLabel { tier } => {
                s.labels.remove(tier.key());
            }
            Action::Mark { delete_after } => {
                s.labels
                    .entry(DELETE_AFTER.to_string())
                    .or_insert_with(|| labels::format_date(*delete_after));
            }
            Action::Delete => doomed[i] = true,
            Action::Report { .. } => {}
        }
    }
    let mut k = 0;
    snapshots.retain(|_| {
        let keep = !doomed[k];
        k += 1;
        keep
    });
}

#[cfg(test)]
mod tests;
