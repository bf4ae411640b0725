//! Hooks: the work done inside the application's own container around a snapshot.
//!
//! - [`postgres`], [`mysql`], [`exec`]: pure script generation; every value is shell-quoted ([`quote`]), and
//!   secrets ([`Secret`]) only ever travel inside the script on stdin.
//! - [`runner`]: runs those scripts through [`crate::vocab::exec::ContainerExec`] (`sh -s`), reads what they
//!   report, enforces timeouts and kills the remote process on expiry.
//! - [`kill`]: the second exec that stops a remote process on timeout or cancel.
//! - [`rhai`]: user hooks in a sandboxed script language with a small documented API; [`diagnostic`] points
//!   at a script's line and column.
//! - [`verify`]: the verification pod's script and the reading of its log; [`rhai_check`]: a verify check written
//!   in rhai, judged on the pod's answers in the same sandbox.
//!
//! The hooks themselves are the shared [`crate::vocab::hook`] types; the script generators are their methods.
//! `onError` and post-hook `when` are the engine's decisions: it gets a [`HookReport`] or a [`HookError`].

pub mod dbops;
pub mod diagnostic;
pub mod error;
pub mod exec;
pub mod hot;
pub mod kill;
pub mod mysql;
pub mod postgres;
pub mod quote;
pub mod report;
pub mod rhai;
pub mod rhai_check;
pub mod runner;
pub mod script;
pub mod secret;
pub mod verify;

pub use error::HookError;
pub use exec::ExecCommand;
pub use report::HookReport;
pub use runner::{check, run, run_command_until, run_until};
pub use script::DfUsage;
pub use secret::Secret;
