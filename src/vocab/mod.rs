//! The shared vocabulary every layer speaks: workload and container references, the exec types, and the port
//! traits through which the engine and hooks reach the cluster, containers and the node lock.
//!
//! This is the bottom layer. Nothing here does I/O, and nothing here imports another backup-ns module, so plan,
//! engine, hooks and cluster can all depend on it without depending on each other. Each type has one path:
//! `vocab::workload`, `vocab::exec`, `vocab::ports` or `vocab::lock` (no re-exports here).
//!
//! - [`workload`]: `WorkloadRef` (`deployment/NAME`) and `ContainerRef`;
//! - [`exec`]: one command in a container, and the `ContainerExec` / `PodResolver` traits;
//! - [`ports`]: the `ClusterPort` trait and the values that cross it;
//! - [`lock`]: the `NodeLock` trait.

pub mod exec;
pub mod lock;
pub mod ports;
pub mod workload;
