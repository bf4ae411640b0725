//! Retention against a cluster, end to end on an in-process kube-sim: `retention::apply` (tiers, mark, sweep),
//! label sync, rebind, and the CLI commands built on them (`retention apply|plan`, `prune`, `sync-labels`,
//! `rebind`, `controller`). Every test starts its own simulator in its own temp dir.

mod cli;
mod concurrency;
mod converge;
mod faults;
mod groups;
mod guard;
mod hostile;
#[path = "../support/pushgateway.rs"]
mod pushgateway;
mod reports;
mod requests;
mod restores;
mod run_step;
mod support;
mod sync_rebind;
mod upgrade;
