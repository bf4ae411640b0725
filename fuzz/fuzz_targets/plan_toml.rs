//! Any bytes as a TOML plan: a plan or an error, never a panic, a hang or unbounded memory.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::check_plan(data, backup_ns::plan::node::Format::Toml, "fuzz.toml");
});
