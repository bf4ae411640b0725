//! Integration tests of the plan language: fixture corpus with golden diagnostics, the CLI (exit codes, JSON),
//! BAK_* round-trips, schema freshness, docs coverage and a bounded property test.

mod cli;
mod docs;
mod fixtures;
mod props;
mod roundtrip;
