//! The step engine: turns a validated plan into ordered steps and runs them against the ports in [`ports`].
//! It depends on traits, never on `kube::Client`, so it is tested without a cluster.

pub mod ports;
