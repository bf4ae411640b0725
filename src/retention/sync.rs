//! Label sync (the original's `sync-volume-snapshot-labels`): copy each VolumeSnapshot's `backup-ns.sh/*` labels
//! onto its bound VolumeSnapshotContent and drop stale ones, so a content that outlives its namespace still says
//! which PVC, tier and retention it belonged to (what `rebind` later restores from).
//!
//! One paginated list of snapshots (shared with retention in the controller) plus one paginated list of contents;
//! an unchanged content costs no request at all. Patches carry `test` ops like every label edit.

use crate::labels::{LabelChanges, LabelSet, PREFIX};
use crate::retention::in_order::InOrder;
use crate::retention::port::{ListedContent, ListedSnapshot, SnapshotStore};
use crate::vocab::scope::Scope;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// Why the sync could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("could not list for label sync: {0}")]
    List(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One content whose labels changed (or, dry-run, would), or whose patch failed. Its strings share one
/// allocation: at 100,000 contents the report is one of the controller's largest structures (it serializes as
/// `content`, `snapshot`, `set`, `removed`, `error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncChange {
    /// The content's name, `namespace/name` of the snapshot it is bound to, each label set as `key=value`, then
    /// each stale label removed.
    packed: Box<str>,
    /// Where each of those strings ends in `packed`.
    ends: Box<[u32]>,
    /// How many of them are labels set.
    sets: u32,
    /// `None`: done (or dry-run); `Some`: the error.
    pub error: Option<Box<str>>,
}

impl SyncChange {
    pub fn new<'a>(
        content: &str,
        snapshot: &str,
        set: impl IntoIterator<Item = (&'a str, &'a str)>,
        removed: impl IntoIterator<Item = &'a str>,
    ) -> SyncChange {
        let mut packed = String::new();
        let mut ends = Vec::new();
        let end = |packed: &String, ends: &mut Vec<u32>| {
            ends.push(u32::try_from(packed.len()).unwrap_or(u32::MAX));
        };
        packed.push_str(content);
        end(&packed, &mut ends);
        packed.push_str(snapshot);
        end(&packed, &mut ends);
        let mut sets = 0;
        for (k, v) in set {
            packed.push_str(k);
            packed.push('=');
            packed.push_str(v);
            end(&packed, &mut ends);
            sets += 1;
        }
        for k in removed {
            packed.push_str(k);
            end(&packed, &mut ends);
        }
        SyncChange {
            packed: packed.into_boxed_str(),
            ends: ends.into_boxed_slice(),
            sets,
            error: None,
        }
    }

    /// The `i`th of the packed strings.
    fn part(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |j| self.ends[j] as usize);
        self.packed
            .get(start..self.ends[i] as usize)
            .unwrap_or_default()
    }

    pub fn content(&self) -> &str {
        self.part(0)
    }

    /// `namespace/name` of the snapshot the content is bound to.
    pub fn snapshot(&self) -> &str {
        self.part(1)
    }

    /// The labels set, as `key=value`.
    pub fn set(&self) -> impl Iterator<Item = &str> {
        (2..2 + self.sets as usize).map(|i| self.part(i))
    }

    /// The stale labels removed.
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        (2 + self.sets as usize..self.ends.len()).map(|i| self.part(i))
    }
}

impl Serialize for SyncChange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct("SyncChange", 5)?;
        s.serialize_field("content", self.content())?;
        s.serialize_field("snapshot", self.snapshot())?;
        s.serialize_field("set", &self.set().collect::<Vec<_>>())?;
        s.serialize_field("removed", &self.removed().collect::<Vec<_>>())?;
        s.serialize_field("error", &self.error)?;
        s.end()
    }
}

/// The result of a label sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub dry_run: bool,
    /// Snapshots looked at.
    pub snapshots: usize,
    /// Contents patched (or would be).
    pub patched: usize,
    /// Contents already in sync: not patched, no request.
    pub unchanged: usize,
    /// Snapshots without a bound content, or whose content is gone.
    pub without_content: usize,
    /// Snapshots the same controller pass deletes: their contents get only the deletionPolicy switch.
    pub deleted_this_run: usize,
    pub failed: usize,
    pub changes: Vec<SyncChange>,
}

impl SyncReport {
    pub fn summary_line(&self) -> String {
        format!(
            "label sync: {} snapshot(s); {}{} content(s) patched, {} unchanged, {} without content, {} failed",
            self.snapshots,
            if self.dry_run { "would have " } else { "" },
            self.patched,
            self.unchanged,
            self.without_content,
            self.failed
        )
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let mut what = Vec::new();
            let set: Vec<&str> = c.set().collect();
            if !set.is_empty() {
                what.push(format!("set {}", set.join(",")));
            }
            let removed: Vec<&str> = c.removed().collect();
            if !removed.is_empty() {
                what.push(format!("remove {}", removed.join(",")));
            }
            let status = match &c.error {
                None if self.dry_run => "dry-run".to_string(),
                None => "ok".to_string(),
                Some(e) => format!("FAILED: {e}"),
            };
            let _ = writeln!(
                out,
                "{} (of {}) {}: {status}",
                c.content(),
                c.snapshot(),
                what.join("; ")
            );
        }
        let _ = writeln!(out, "{}", self.summary_line());
        out
    }
}

/// The label edits that make `content_labels` carry exactly the `backup-ns.sh/*` labels of `snapshot_labels`
/// (other labels untouched). Pure; empty when in sync.
pub fn desired_changes(
    snapshot_labels: Option<&LabelSet>,
    content_labels: Option<&LabelSet>,
) -> LabelChanges {
    desired_changes_after(snapshot_labels, None, content_labels)
}

/// [`desired_changes`] for a snapshot whose labels get `edits` in the same run: the content mirrors them as they
/// are after the edits.
pub fn desired_changes_after<'a>(
    snapshot_labels: Option<&'a LabelSet>,
    edits: Option<&'a LabelChanges>,
    content_labels: Option<&LabelSet>,
) -> LabelChanges {
    let mut changes = LabelChanges::new();
    fn ours(l: Option<&LabelSet>) -> BTreeMap<&str, &str> {
        l.into_iter()
            .flat_map(LabelSet::iter)
            .filter(|(k, _)| k.starts_with(PREFIX))
            .collect()
    }
    let mut want = ours(snapshot_labels);
    for (k, v) in edits.into_iter().flat_map(LabelChanges::iter) {
        match v {
            Some(v) if k.starts_with(PREFIX) => want.insert(k, v),
            _ => want.remove(k),
        };
    }
    let have = ours(content_labels);
    for (&k, &v) in &want {
        if have.get(k) != Some(&v) {
            changes = changes.set(k, v);
        }
    }
    for &k in have.keys() {
        if !want.contains_key(k) {
            changes = changes.remove(k);
        }
    }
    changes
}

/// Lists the scope's snapshots and all contents, then syncs. `page_size` and `concurrency` as for retention.
pub async fn sync_labels<C: SnapshotStore>(
    cluster: &C,
    scope: &Scope,
    selector: Option<&str>,
    page_size: u32,
    dry_run: bool,
    concurrency: usize,
) -> Result<SyncReport, SyncError> {
    let snapshots = cluster
        .list_snapshots(scope, selector, page_size)
        .await
        .map_err(|e| SyncError::List(Box::new(e)))?;
    let contents = cluster
        .list_contents(page_size)
        .await
        .map_err(|e| SyncError::List(Box::new(e)))?;
    Ok(sync_listed(cluster, &snapshots, &contents, dry_run, concurrency).await)
}

/// [`sync_labels`] on already listed snapshots and contents: each content made to mirror its snapshot's labels
/// as listed.
pub async fn sync_listed<C: SnapshotStore>(
    cluster: &C,
    snapshots: &[C::Vs],
    contents: &[C::Vsc],
    dry_run: bool,
    concurrency: usize,
) -> SyncReport {
    let targets = snapshots.iter().map(|vs| (vs, None)).collect();
    sync_to(cluster, targets, contents, dry_run, concurrency).await
}

/// A snapshot and the label edits it gets in this run, if any: its content is to mirror its labels with them.
pub(crate) type SyncTarget<'a, V> = (&'a V, Option<&'a LabelChanges>);

/// Makes each target snapshot's content carry the `backup-ns.sh/*` labels of the snapshot as they are after
/// this run (its labels as listed with the edits given with it: the controller passes retention's outcome, so a
/// content is written once, with its final labels). One guarded patch per content that differs, `concurrency` in flight.
pub(crate) async fn sync_to<'a, C: SnapshotStore>(
    cluster: &C,
    targets: Vec<SyncTarget<'a, C::Vs>>,
    contents: &[C::Vsc],
    dry_run: bool,
    concurrency: usize,
) -> SyncReport {
    let by_name: HashMap<&str, _> = contents.iter().map(|c| (c.name(), c)).collect();
    let mut report = SyncReport {
        dry_run,
        snapshots: targets.len(),
        ..SyncReport::default()
    };
    // Only references are kept per planned patch; its label edits are worked out again when it is reported and
    // when it is sent (the same pure function of the same labels), so 100,000 planned patches never hold their
    // edits all at once, and the report's list is sized once.
    let mut planned = Vec::new();
    for (vs, edits) in targets {
        let Some(content) = vs.bound_content().and_then(|n| by_name.get(n).copied()) else {
            report.without_content += 1;
            continue;
        };
        if desired_changes_after(vs.labels(), edits, content.labels()).is_empty() {
            report.unchanged += 1;
            continue;
        }
        planned.push((vs, content, edits));
    }
    planned.shrink_to_fit();
    report.changes.reserve_exact(planned.len());
    for &(vs, content, edits) in &planned {
        let changes = desired_changes_after(vs.labels(), edits, content.labels());
        report.changes.push(SyncChange::new(
            content.name(),
            &format!("{}/{}", vs.namespace(), vs.name()),
            changes.iter().filter_map(|(k, v)| Some((k, v?))),
            changes.iter().filter_map(|(k, v)| v.is_none().then_some(k)),
        ));
    }
    let mut writes = InOrder::new(concurrency, planned.len());
    for (vs, content, edits) in planned {
        let changes = desired_changes_after(vs.labels(), edits, content.labels());
        writes
            .push(patch_content(cluster, content, changes, dry_run))
            .await;
    }
    for (change, error) in report.changes.iter_mut().zip(writes.finish().await) {
        change.error = error.map(String::into_boxed_str);
        if change.error.is_some() {
            report.failed += 1;
        } else {
            report.patched += 1;
        }
    }
    report
}

/// One content's guarded label patch (nothing on a dry run); its error, if any.
async fn patch_content<C: SnapshotStore>(
    cluster: &C,
    content: &C::Vsc,
    changes: LabelChanges,
    dry_run: bool,
) -> Option<String> {
    if dry_run {
        return None;
    }
    cluster
        .patch_content_labels(content, &changes)
        .await
        .err()
        .map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_change_gives_back_its_strings_and_serializes_as_before() {
        let change = SyncChange::new(
            "snapcontent-1",
            "shop/data-1",
            [("backup-ns.sh/pvc", "data"), ("backup-ns.sh/daily", "")],
            ["backup-ns.sh/weekly"],
        );
        assert_eq!(change.content(), "snapcontent-1");
        assert_eq!(change.snapshot(), "shop/data-1");
        assert_eq!(
            change.set().collect::<Vec<_>>(),
            ["backup-ns.sh/pvc=data", "backup-ns.sh/daily="]
        );
        assert_eq!(
            change.removed().collect::<Vec<_>>(),
            ["backup-ns.sh/weekly"]
        );
        assert_eq!(
            serde_json::to_value(&change).unwrap(),
            serde_json::json!({
                "content": "snapcontent-1",
                "snapshot": "shop/data-1",
                "set": ["backup-ns.sh/pvc=data", "backup-ns.sh/daily="],
                "removed": ["backup-ns.sh/weekly"],
                "error": null,
            })
        );
        let bare = SyncChange::new("c", "ns/s", [], []);
        assert_eq!(bare.set().count() + bare.removed().count(), 0);
    }

    fn map(pairs: &[(&str, &str)]) -> LabelSet {
        LabelSet::from_pairs(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())))
    }

    #[test]
    fn only_backup_ns_labels_are_copied_and_stale_ones_dropped() {
        let vs = map(&[
            ("backup-ns.sh/pvc", "data"),
            ("backup-ns.sh/daily", "2025-01-02"),
            ("app", "shop"),
        ]);
        let vsc = map(&[
            ("backup-ns.sh/pvc", "data"),
            ("backup-ns.sh/weekly", "2025-w01"),
            ("owner", "storage-team"),
        ]);
        let changes = desired_changes(Some(&vs), Some(&vsc));
        assert_eq!(
            changes,
            LabelChanges::new()
                .set("backup-ns.sh/daily", "2025-01-02")
                .remove("backup-ns.sh/weekly")
        );
    }

    #[test]
    fn a_content_mirrors_its_snapshot_after_the_runs_edits() {
        let vs = map(&[
            ("backup-ns.sh/pvc", "data"),
            ("backup-ns.sh/daily", "2025-01-02"),
        ]);
        let vsc = map(&[
            ("backup-ns.sh/pvc", "data"),
            ("backup-ns.sh/daily", "2025-01-02"),
        ]);
        let edits = LabelChanges::new()
            .remove("backup-ns.sh/daily")
            .set("backup-ns.sh/delete-after", "2025-01-09")
            .set("app", "ignored");
        assert_eq!(
            desired_changes_after(Some(&vs), Some(&edits), Some(&vsc)),
            LabelChanges::new()
                .remove("backup-ns.sh/daily")
                .set("backup-ns.sh/delete-after", "2025-01-09")
        );
        assert!(
            desired_changes_after(Some(&vs), Some(&LabelChanges::new()), Some(&vsc)).is_empty()
        );
        assert_eq!(
            desired_changes_after(None, Some(&edits), None),
            LabelChanges::new().set("backup-ns.sh/delete-after", "2025-01-09")
        );
    }

    #[test]
    fn a_content_in_sync_needs_no_change() {
        let vs = map(&[("backup-ns.sh/pvc", "data"), ("app", "x")]);
        let vsc = map(&[("backup-ns.sh/pvc", "data")]);
        assert!(desired_changes(Some(&vs), Some(&vsc)).is_empty());
        assert!(desired_changes(None, None).is_empty());
    }
}
