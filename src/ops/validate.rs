//! `backup-ns validate`'s logic: every plan file under the given paths loaded and validated, with one shared
//! profiles file, and each diagnostic reported once. Printing is the CLI's.

use crate::plan::{self, Diag, Diagnostics, Profiles};
use std::collections::HashSet;
use std::path::PathBuf;

/// The outcome of validating a set of paths, independent of how it is printed.
pub struct Report {
    pub valid: Vec<PathBuf>,
    pub invalid: Vec<PathBuf>,
    pub diagnostics: Diagnostics,
}

/// Validates every plan under `paths`. `Err` is a usage problem (exit 2) with its message.
pub fn check(paths: &[PathBuf], profiles: Option<&PathBuf>) -> Result<Report, String> {
    let files = plan::plan_files(paths)?;
    if files.is_empty() {
        return Err(format!(
            "no plan files (*.yaml, *.yml, *.toml) found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let profiles = match profiles {
        Some(file) => match Profiles::with_file(file) {
            Ok(p) => Some(p),
            Err(diags) if diags.iter().all(|d| d.code == plan::Code::Io) => {
                return Err(diags
                    .iter()
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "));
            }
            Err(diags) => {
                return Ok(Report {
                    valid: Vec::new(),
                    invalid: vec![file.clone()],
                    diagnostics: Diagnostics(diags),
                });
            }
        },
        None => None,
    };
    let mut report = Report {
        valid: Vec::new(),
        invalid: Vec::new(),
        diagnostics: Diagnostics::default(),
    };
    let mut seen = HashSet::new();
    for file in files {
        // An unreadable file is a usage error (exit 2), unlike a readable file with bad content (exit 1).
        if let Err(e) = std::fs::File::open(&file) {
            return Err(format!("cannot read {}: {e}", file.display()));
        }
        let (plan, diags) = plan::load_file(&file, profiles.as_ref());
        if plan.is_some() {
            report.valid.push(file);
        } else {
            report.invalid.push(file);
        }
        for d in diags {
            // A shared profiles file is loaded once per plan; report each of its problems once. A set keeps
            // this linear in the number of diagnostics.
            if seen.insert(identity(&d)) {
                report.diagnostics.0.push(d);
            }
        }
    }
    report.diagnostics.sort();
    Ok(report)
}

/// What makes two diagnostics the same report: code, message, file and position.
fn identity(d: &Diag) -> (plan::Code, String, String, Option<usize>) {
    (
        d.code,
        d.message.clone(),
        d.source
            .as_ref()
            .map_or_else(String::new, |s| s.name.clone()),
        d.primary.as_ref().map(|l| l.span.start),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_plans_and_an_unreadable_profiles_file_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let paths = [dir.path().to_path_buf()];
        let err = check(&paths, None).err().unwrap();
        assert!(
            err.starts_with("no plan files (*.yaml, *.yml, *.toml) found in "),
            "{err}"
        );
        std::fs::write(dir.path().join("p.yaml"), "{}").unwrap();
        let missing = dir.path().join("missing-profiles.yaml");
        assert!(check(&paths, Some(&missing)).is_err());
    }

    #[test]
    fn an_invalid_plan_is_reported_with_its_diagnostics() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "unknownKey: 1\n").unwrap();
        let report = check(&[dir.path().to_path_buf()], None).unwrap();
        assert!(report.valid.is_empty());
        assert_eq!(report.invalid.len(), 1);
        assert!(report.diagnostics.0.iter().any(Diag::is_error));
    }
}
