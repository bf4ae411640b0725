//! Where the simulated volumes live on disk, under the state directory: each PVC's backing directory, the
//! snapshot store (one directory per snapshot handle, plus its `.json` metadata), and per-pod emptyDir volumes.
//! The controllers fill these directories; exec mounts them into the container's view.

use std::path::{Path, PathBuf};

/// Backing directory of a PVC.
pub fn pvc_dir(state_dir: &Path, ns: &str, name: &str) -> PathBuf {
    state_dir.join("pvcs").join(ns).join(name)
}

/// Snapshot store directory of a snapshot handle.
pub fn snapshot_dir(state_dir: &Path, handle: &str) -> PathBuf {
    state_dir.join("snapshots").join(handle)
}

/// Per-pod directory of an emptyDir volume.
pub fn empty_dir(state_dir: &Path, ns: &str, pod: &str, volume: &str) -> PathBuf {
    state_dir.join("pods").join(ns).join(pod).join(volume)
}
