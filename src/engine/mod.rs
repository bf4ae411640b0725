//! The step engine: turns a validated plan into ordered steps and runs them against the port traits of
//! [`crate::vocab`].
//! It depends on traits, never on `kube::Client`, so it is tested without a cluster.
//!
//! - [`steps`]: pure building blocks (plan hooks → runnable hooks, snapshot names, labels, annotations);
//! - [`runner`]: the ordered run (lock → preflight → pre-hooks → snapshots → wait ready → post-hooks →
//!   retention → events → unlock) with cancellation on signals;
//! - [`report`]: the summary and the exit code.

pub mod report;
pub mod runner;
pub mod steps;

pub use report::{RunReport, Signal, StepOutcome};
pub use runner::{Cancel, Engine, RunOptions};
pub use steps::RunIdentity;

#[cfg(test)]
mod tests;
