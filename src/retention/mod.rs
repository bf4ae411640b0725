//! Retention: which snapshots keep their tier labels, which are marked for deletion, which are deleted.
//!
//! `policy` is the pure planner (snapshots + per-PVC policy + clock → decisions with reasons); `simulate` replays
//! nightly backups through that same planner to show what survives. The cluster layer lists VolumeSnapshots, turns
//! them into [`policy::Snapshot`]s, calls [`policy::plan`] and applies the decisions. `apply` (retention against
//! the cluster), `sync` (VS labels onto VSCs) and `rebind` orchestrate calls into `crate::cluster`; `policy` and
//! `simulate` stay pure.

pub mod apply;
pub mod policy;
pub mod rebind;
pub mod simulate;
pub mod sync;

pub use policy::{
    Action, Decision, DefaultsError, Guard, GuardVerdict, Options, Phases, PolicySource, Problem,
    PvcPolicy, RetentionPlan, Snapshot, SnapshotError, apply_decisions, defaults_from_env, plan,
};
