//! A live, in-memory mirror of VolumeSnapshots built from one watch (initial paged list, then events; the
//! watcher reconnects with backoff), for the long-running exporter. Nothing is polled.
//!
//! Each snapshot is projected to what the caller needs (`project`), so the mirror holds small facts instead of
//! whole objects. A relist (`Init` … `InitDone`, e.g. after a 410 Expired) builds a fresh map and swaps it in at
//! `InitDone`, so deletions missed while disconnected disappear too.

use super::client::Cluster;
use super::resources::VolumeSnapshot;
use crate::vocab::scope::Scope;
use futures::StreamExt;
use futures::future::BoxFuture;
use kube::runtime::watcher::Event;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

/// The mirrored state: projected snapshots by `namespace/name`, and whether the first full list has arrived.
#[derive(Debug)]
pub struct MirrorState<T> {
    pub synced: bool,
    pub items: BTreeMap<String, T>,
    /// Keys of the snapshots `project` left out: with `items`, every VolumeSnapshot in the scope.
    pub others: BTreeSet<String>,
    /// Bumped on every change; lets callers wait for "something happened".
    pub generation: u64,
}

/// A handle to the mirror, cheap to clone into request handlers.
#[derive(Debug)]
pub struct SnapshotMirror<T> {
    state: Arc<RwLock<MirrorState<T>>>,
}

impl<T> Clone for SnapshotMirror<T> {
    fn clone(&self) -> Self {
        SnapshotMirror {
            state: Arc::clone(&self.state),
        }
    }
}

impl<T> MirrorState<T> {
    /// Every VolumeSnapshot in the scope, projected or not.
    pub fn total(&self) -> usize {
        self.items.len() + self.others.len()
    }
}

impl<T> SnapshotMirror<T> {
    /// Runs `f` on the current state under a read lock.
    pub fn read<R>(&self, f: impl FnOnce(&MirrorState<T>) -> R) -> R {
        match self.state.read() {
            Ok(guard) => f(&guard),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write(&self, f: impl FnOnce(&mut MirrorState<T>)) {
        match self.state.write() {
            Ok(mut guard) => {
                f(&mut guard);
                guard.generation += 1;
            }
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                f(&mut guard);
                guard.generation += 1;
            }
        }
    }
}

fn key(vs: &VolumeSnapshot) -> String {
    format!(
        "{}/{}",
        vs.metadata.namespace.as_deref().unwrap_or_default(),
        vs.metadata.name.as_deref().unwrap_or_default()
    )
}

impl Cluster {
    /// Starts mirroring the VolumeSnapshots in `scope`. Returns the handle and the future that drives the watch
    /// (spawn it; it runs until dropped). Snapshots for which `project` returns `None` are left out.
    pub fn mirror_snapshots<T: Send + Sync + 'static>(
        &self,
        scope: &Scope,
        project: fn(&VolumeSnapshot) -> Option<T>,
    ) -> (SnapshotMirror<T>, BoxFuture<'static, ()>) {
        let mirror = SnapshotMirror {
            state: Arc::new(RwLock::new(MirrorState {
                synced: false,
                items: BTreeMap::new(),
                others: BTreeSet::new(),
                generation: 0,
            })),
        };
        let handle = mirror.clone();
        let mut stream = self.watch_snapshots(scope, None);
        let driver = Box::pin(async move {
            let mut relist: Option<(BTreeMap<String, T>, BTreeSet<String>)> = None;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Init) => {
                        relist = Some((BTreeMap::new(), BTreeSet::new()));
                        handle.write(|s| s.synced = false);
                    }
                    Ok(Event::InitApply(vs)) => {
                        if let Some((items, others)) = relist.as_mut() {
                            match project(&vs) {
                                Some(item) => {
                                    items.insert(key(&vs), item);
                                }
                                None => {
                                    others.insert(key(&vs));
                                }
                            }
                        }
                    }
                    Ok(Event::InitDone) => {
                        let (items, others) = relist.take().unwrap_or_default();
                        tracing::debug!(
                            snapshots = items.len() + others.len(),
                            "snapshot watch listed"
                        );
                        handle.write(|s| {
                            s.items = items;
                            s.others = others;
                            s.synced = true;
                        });
                    }
                    Ok(Event::Apply(vs)) => {
                        let k = key(&vs);
                        let item = project(&vs);
                        handle.write(|s| match item {
                            Some(item) => {
                                s.others.remove(&k);
                                s.items.insert(k, item);
                            }
                            None => {
                                s.items.remove(&k);
                                s.others.insert(k);
                            }
                        });
                    }
                    Ok(Event::Delete(vs)) => {
                        let k = key(&vs);
                        handle.write(|s| {
                            s.items.remove(&k);
                            s.others.remove(&k);
                        });
                    }
                    Err(err) => {
                        // The watcher backs off and re-establishes itself; the last known state stays served,
                        // flagged as not live (`backup_ns_exporter_synced 0`) until the next full list. A watch
                        // that keeps failing (a role without `watch`) thus never passes for a live one.
                        tracing::warn!(%err, "snapshot watch failed; re-establishing");
                        handle.write(|s| s.synced = false);
                    }
                }
            }
        });
        (mirror, driver)
    }
}
