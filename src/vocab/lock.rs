//! The node-level lock as the engine sees it: take a slot, hold it, drop it. `crate::lock` implements it with
//! slot files; tests use in-memory fakes.

use futures::future::BoxFuture;

/// Why the node-level lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockFailure {
    /// Every slot stayed busy until the timeout (exit code 3).
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Other(String),
}

/// A held lock slot; dropping it releases the slot.
pub trait HeldSlot: Send {
    fn describe(&self) -> String;
}

/// The node-level lock (`lock.rs` with slot files in the real binary).
pub trait NodeLock: Send + Sync {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn HeldSlot>, LockFailure>>;
}
