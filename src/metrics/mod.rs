//! Backup-freshness metrics: the pure Prometheus exposition computed from VolumeSnapshot labels
//! ([`exposition`]), the exporter's HTTP server ([`server`]), and the Pushgateway client batch runs use to report
//! their outcome ([`push`], [`outcome`]). Both texts are encoded by `prometheus-client` ([`family`]).
//!
//! The exporter keeps no state of its own: everything is recomputed from the snapshots a watch mirrors
//! (`cluster::snapshot_mirror`), so a restarted exporter reports exactly what the cluster holds.

pub mod exposition;
pub mod family;
pub mod outcome;
pub mod push;
pub mod server;

pub use exposition::{SnapshotFacts, render};
pub use push::{PushError, Sample, push, render_samples, update};
