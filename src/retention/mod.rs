//! Retention: which snapshots keep their tier labels, which are marked for deletion, which are deleted.
//!
//! `policy` is the pure planner (observed snapshots + per-PVC policy + clock → decisions); `simulate` replays
//! nightly backups through that same planner to show what survives. `apply` (retention against the cluster),
//! `sync` (VS labels onto VSCs) and `pass` (the controller's: both, each object written once) reach the cluster
//! only through the [`port::SnapshotStore`] trait, which `cluster/` implements, so this module never imports the
//! API layer. The policy itself is
//! [`crate::vocab::retention::RetentionPolicy`], the same type the plan resolves.

pub mod apply;
mod in_order;
pub mod pass;
pub mod policy;
pub mod port;
pub mod simulate;
pub mod sync;

pub use policy::{
    Action, Decision, DefaultsError, Guard, GuardVerdict, Kept, ObservedSnapshot,
    ObservedSnapshotError, Options, Phases, PolicySource, Problem, PvcPolicy, RetentionPlan,
    Withheld, apply_decisions, defaults_from_env, plan, plan_focused,
};
