//! The property every plan-reading target checks: loading ends in a plan or in at least one error, and every
//! diagnostic renders (human and JSON) without a panic. Shared by the YAML and TOML targets.

use backup_ns::plan::diag::SourceFile;
use backup_ns::plan::node::Format;
use backup_ns::plan::profiles::Profiles;

pub fn check_plan(data: &[u8], format: Format, name: &str) {
    // Files are read as UTF-8 (invalid bytes are a diagnostic of their own, before parsing); the parser and
    // validator see text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = SourceFile::new(name, text);
    let (plan, diags) = backup_ns::plan::load_source(&source, format, None, &Profiles::builtin());
    assert!(
        plan.is_some() || diags.iter().any(|d| d.is_error()),
        "no plan and no error for {text:?}"
    );
    for diag in &diags {
        let _ = diag.render(100);
        let _ = serde_json::to_string(&diag.to_json());
    }
}
