//! Every invalid fixture states the diagnostic it must produce (`# expect: CODE [FILE:]LINE:COL` on its first
//! lines); the rendered diagnostics are golden-tested with insta (no colour, width 80).

use backup_ns::plan::{Diag, Diagnostics, load_file};
use std::path::{Path, PathBuf};

pub const INVALID_DIR: &str = "tests/fixtures/plans/invalid";

pub fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(INVALID_DIR)
        .unwrap_or_else(|e| panic!("cannot read {INVALID_DIR}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| backup_ns::plan::is_plan_file(p))
        .collect();
    files.sort();
    files
}

struct Expectation {
    code: String,
    file: PathBuf,
    line: usize,
    column: usize,
}

fn expectations(path: &Path) -> Vec<Expectation> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let Some(rest) = line.strip_prefix("# expect: ") else {
            continue;
        };
        let (code, loc) = rest
            .split_once(' ')
            .unwrap_or_else(|| panic!("{}: malformed expectation `{line}`", path.display()));
        let mut parts: Vec<&str> = loc.rsplitn(3, ':').collect();
        parts.reverse();
        let (file, line_no, col) = match parts.as_slice() {
            [file, l, c] => (path.parent().unwrap().join(file), *l, *c),
            [l, c] => (path.to_path_buf(), *l, *c),
            _ => panic!(
                "{}: expectation location `{loc}` is not [FILE:]LINE:COL",
                path.display()
            ),
        };
        out.push(Expectation {
            code: code.to_string(),
            file,
            line: line_no
                .parse()
                .unwrap_or_else(|_| panic!("{}: bad line in `{loc}`", path.display())),
            column: col
                .parse()
                .unwrap_or_else(|_| panic!("{}: bad column in `{loc}`", path.display())),
        });
    }
    assert!(
        !out.is_empty(),
        "{} has no `# expect:` line",
        path.display()
    );
    out
}

fn diagnostics_of(path: &Path) -> (bool, Vec<Diag>) {
    let (plan, diags) = load_file(path, None);
    (plan.is_some(), diags)
}

#[test]
fn the_corpus_covers_at_least_thirty_failure_classes_in_both_formats() {
    let files = fixtures();
    let stems = |ext: &str| -> std::collections::BTreeSet<String> {
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let (yaml, toml) = (stems("yaml"), stems("toml"));
    assert_eq!(yaml, toml, "every fixture must exist as .yaml and .toml");
    assert!(yaml.len() >= 30, "only {} fixture classes", yaml.len());
}

#[test]
fn each_fixture_reports_its_diagnostic_at_the_stated_line_and_column() {
    let mut failures = Vec::new();
    for path in fixtures() {
        let (valid, diags) = diagnostics_of(&path);
        let is_warning_fixture = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("warning-");
        if is_warning_fixture {
            if !valid {
                failures.push(format!(
                    "{}: a warning-only fixture must still load",
                    path.display()
                ));
            }
        } else if valid {
            failures.push(format!("{}: loaded without errors", path.display()));
        }
        for exp in expectations(&path) {
            let found = diags.iter().any(|d| {
                let (file, line, column) = d.location();
                d.code.as_str() == exp.code
                    && Path::new(&file) == exp.file
                    && line == exp.line
                    && column == exp.column
            });
            if !found {
                let got: Vec<String> = diags
                    .iter()
                    .map(|d| {
                        let (f, l, c) = d.location();
                        format!("{} {f}:{l}:{c}", d.code.as_str())
                    })
                    .collect();
                failures.push(format!(
                    "{}: expected {} at {}:{}:{}, got {got:?}",
                    path.display(),
                    exp.code,
                    exp.file.display(),
                    exp.line,
                    exp.column
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_diagnostic_has_a_label_on_a_span_and_help() {
    for path in fixtures() {
        let (_, diags) = diagnostics_of(&path);
        for d in diags {
            assert!(
                d.primary.is_some(),
                "{}: {} has no label",
                path.display(),
                d.code.as_str()
            );
            assert!(
                d.help.is_some(),
                "{}: {} has no help",
                path.display(),
                d.code.as_str()
            );
        }
    }
}

#[test]
fn rendered_diagnostics_match_the_golden_files() {
    for path in fixtures() {
        let (_, diags) = diagnostics_of(&path);
        let mut diags = Diagnostics(diags);
        diags.sort();
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('.', "_");
        insta::with_settings!({
            snapshot_path => "snapshots",
            prepend_module_to_snapshot => false,
            omit_expression => true,
            description => path.display().to_string(),
        }, {
            insta::assert_snapshot!(name, diags.render(80));
        });
    }
}
