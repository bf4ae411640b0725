//! The shared vocabulary every layer speaks: workload and container references, the exec types, the port
//! traits through which the engine and hooks reach the cluster, containers and the node lock, the one hook type
//! that plan validates and hooks executes, and the retention policy from plan to deletion.
//!
//! This is the bottom layer. Nothing here does I/O, and nothing here imports another backup-ns module outside
//! `vocab`, so plan, engine, hooks, retention and cluster can all depend on it without depending on each other.
//! Each type has one path: `vocab::workload`, `vocab::exec`, `vocab::ports`, `vocab::lock`, `vocab::hook`,
//! `vocab::duration`, `vocab::retention`, `vocab::scope` or `vocab::suggest` (no re-exports here).
//!
//! - [`workload`]: `WorkloadRef` (`deployment/NAME`) and `ContainerRef`;
//! - [`exec`]: one command in a container, and the `ContainerExec` / `PodResolver` traits;
//! - [`ports`]: the `ClusterPort` trait and the values that cross it;
//! - [`lock`]: the `NodeLock` trait;
//! - [`hook`]: `Hook`, `HookAction`, `HookKind` and the hooks' parameters, with their defaults;
//! - [`duration`]: the printed form of plan durations (`1h30m`);
//! - [`retention`]: `RetentionPolicy`, its tiers and counts, and the one serde form of its annotation;
//! - [`scope`]: `Scope`, `-A` or one namespace;
//! - [`suggest`]: "did you mean" for a name that does not exist.

pub mod duration;
pub mod exec;
pub mod hook;
pub mod lock;
pub mod ports;
pub mod retention;
pub mod scope;
pub mod suggest;
pub mod workload;
