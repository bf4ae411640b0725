//! Integration tests of the plan language: fixture corpus with golden diagnostics, the CLI (exit codes, JSON),
//! BAK_* round-trips, schema freshness, docs coverage, a bounded property test and hostile files (size, aliases,
//! long lines, many keys, encodings).

mod cli;
mod docs;
mod fixtures;
mod hostile;
pub mod hostile_inputs;
mod props;
mod roundtrip;
