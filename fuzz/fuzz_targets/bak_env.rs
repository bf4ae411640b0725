//! The original's `BAK_*` environment, any values for any of its variables: a plan without errors, or a refusal
//! with at least one error, never a panic.
#![no_main]

use arbitrary::Arbitrary;
use backup_ns::plan::env::{BAK_VARS, EnvMap, plan_from_bak_env};

#[derive(Arbitrary, Debug)]
struct Input {
    vars: Vec<(u8, String)>,
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let mut env = EnvMap::new();
    for (index, value) in input.vars {
        let name = BAK_VARS[index as usize % BAK_VARS.len()];
        env.insert(name.to_string(), value);
    }
    match plan_from_bak_env(&env) {
        Ok((_plan, diags)) => assert!(!diags.iter().any(|d| d.is_error())),
        Err(diags) => assert!(
            diags.iter().any(|d| d.is_error()),
            "refused without an error for {env:?}"
        ),
    }
});
