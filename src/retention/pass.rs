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
use crate::labels::LabelChanges;
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

    // The label edits each patched snapshot carries now (its patch went through, or would on a dry run): its
    // content is to mirror its labels as listed with these applied.
    let mut edited: HashMap<(&str, &str), &LabelChanges> = HashMap::new();
    for (planned, outcome) in work.patches.iter().zip(&outcomes) {
        if matches!(outcome.status, Status::Applied | Status::DryRun) {
            edited.insert(
                (planned.vs.namespace(), planned.vs.name()),
                &planned.changes,
            );
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
        .map(|vs| (vs, edited.get(&(vs.namespace(), vs.name())).copied()))
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
    drop(edited);
    drop(deleted);

    outcomes.extend(write_deletions(cluster, &mut work, Some(contents), options).await);
    (sync, work.finish(outcomes, options))
}
