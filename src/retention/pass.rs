//! The controller's pass: label sync and retention over ONE list, with each object written at most once.
//!
//! The old order (sync, then retention) wrote a content's labels and then, a moment later, changed its
//! snapshot's labels (or deleted it), so the next run wrote the content again. Here the plan comes first and every
//! object's final state is worked out before anything is sent:
//! - a snapshot gets one patch with its tier removals and mark (or, if it is deleted, no patch at all);
//! - its content gets one label patch mirroring the snapshot's labels as they are after that patch, sent only
//!   once the snapshot's own patch is through (a refused snapshot patch leaves the content mirroring the
//!   snapshot as listed);
//! - the content of a snapshot deleted in this pass gets only its deletionPolicy switch, never a sync first.
//!
//! Writes go in that order: snapshot patches, content patches, then the paced deletions.

use crate::clock::Clock;
use crate::labels::LabelSet;
use crate::retention::apply::{
    ApplyOptions, ApplyReport, Status, prepare, write_deletions, write_patches,
};
use crate::retention::port::{ListedSnapshot, SnapshotStore};
use crate::retention::sync::{SyncReport, sync_to};
use std::collections::{HashMap, HashSet};

/// Label sync and retention of `listed` (with `contents` as listed), each object written at most once. See the
/// module docs.
pub async fn sync_and_apply<C: SnapshotStore>(
    cluster: &C,
    listed: &[C::Vs],
    contents: &[C::Vsc],
    options: &ApplyOptions,
    clock: &Clock,
) -> (SyncReport, ApplyReport) {
    let mut work = prepare(listed, options, clock);
    let mut outcomes = write_patches(cluster, &mut work, options).await;

    // The labels each patched snapshot carries now (its patch went through, or would on a dry run); the unchanged
    // ones share their strings with the list.
    let mut after: HashMap<(&str, &str), LabelSet> = HashMap::new();
    for (planned, outcome) in work.patches.iter().zip(&outcomes) {
        if matches!(outcome.status, Status::Applied | Status::DryRun) {
            let labels = planned
                .vs
                .labels()
                .unwrap_or(&LabelSet::default())
                .with_changes(&planned.changes);
            after.insert((planned.vs.namespace(), planned.vs.name()), labels);
        }
    }
    let deleted: HashSet<(&str, &str)> = work
        .deletions
        .iter()
        .map(|d| (d.vs.namespace(), d.vs.name()))
        .collect();
    let targets = listed
        .iter()
        .filter(|vs| !deleted.contains(&(vs.namespace(), vs.name())))
        .map(|vs| {
            let labels = after
                .get(&(vs.namespace(), vs.name()))
                .or_else(|| vs.labels());
            (vs, labels)
        })
        .collect();
    let mut sync = sync_to(
        cluster,
        targets,
        contents,
        options.dry_run,
        options.concurrency,
    )
    .await;
    sync.snapshots = listed.len();
    sync.deleted_this_run = deleted.len();
    drop(after);
    drop(deleted);

    outcomes.extend(write_deletions(cluster, &mut work, Some(contents), options).await);
    (sync, work.finish(outcomes, options))
}
