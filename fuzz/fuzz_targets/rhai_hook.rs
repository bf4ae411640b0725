//! Any text as a rhai hook script: compiling in the hooks sandbox ends in a script or a diagnostic, never a
//! panic or a hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(diagnostic) = backup_ns::hooks::rhai::compile_source("fuzz.rhai", source) {
        let _ = diagnostic.to_string();
    }
});
