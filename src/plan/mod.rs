//! The plan language: model, loading (YAML/TOML), validation with diagnostics, BAK_* compatibility, schema.
//!
//! Pipeline: file text → [`node`] (one spanned tree for both formats) → [`raw`] (the file format as written,
//! spans on every value) → [`validate`] (defaults, every check, all diagnostics collected, section by section)
//! → [`model::Plan`] (what the engine consumes). [`crate::settings`] layers the
//! environment and flags on top and exposes [`crate::settings::load_effective`] for `run`. [`hook_selector`] picks
//! the hook a database command (`--hook NAME`) works with.

pub mod diag;
pub mod env;
pub mod hook_selector;
pub mod model;
pub mod node;
pub mod profiles;
pub mod raw;
pub mod read;
pub mod rules;
pub mod schema;
pub mod snippet;
pub mod validate;

pub use diag::{Code, Diag, Diagnostics, Severity, SourceFile};
pub use hook_selector::{HookSelector, SelectError, SelectedHook, select_hook};
pub use model::*;
pub use node::Format;
pub use profiles::Profiles;

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a plan came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A plan file.
    File(PathBuf),
    /// The original's `BAK_*` environment variables (no plan file).
    BakEnv,
}

/// A plan ready for the engine, with the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub plan: Plan,
    pub origin: Origin,
    /// Warnings only; errors make loading fail.
    pub warnings: Vec<Diag>,
}

/// Loads one plan from text. `base_dir` is where rhai scripts are resolved (the plan file's directory).
/// Returns the plan when there is no error, and every diagnostic (errors and warnings) either way.
pub fn load_source(
    source: &Arc<SourceFile>,
    format: Format,
    base_dir: Option<&Path>,
    profiles: &Profiles,
) -> (Option<Plan>, Vec<Diag>) {
    let mut diags = Vec::new();
    let Some(root) = node::parse(source, format, &mut diags) else {
        return (None, diags);
    };
    let ctx = validate::Context { base_dir, profiles };
    let (plan, mut more) = validate::validate_plan(&root, source, &ctx);
    diags.append(&mut more);
    let plan = if diags.iter().any(Diag::is_error) {
        None
    } else {
        plan
    };
    (plan, diags)
}

/// Loads a plan file. Profiles: `profiles` when given, else a `retention-profiles.*` beside the plan, else
/// the built-ins. The format follows the extension (`.toml` → TOML, anything else → YAML).
pub fn load_file(path: &Path, profiles: Option<&Profiles>) -> (Option<Plan>, Vec<Diag>) {
    let source = match read::read_source(path, "plan") {
        Ok(source) => source,
        Err(diag) => return (None, vec![*diag]),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let discovered;
    let profiles = match profiles {
        Some(p) => p,
        None => match Profiles::discover(dir) {
            Some(file) => match Profiles::with_file(&file) {
                Ok(p) => {
                    discovered = p;
                    &discovered
                }
                Err(diags) => return (None, diags),
            },
            None => {
                discovered = Profiles::builtin();
                &discovered
            }
        },
    };
    let format = Format::from_path(path).unwrap_or(Format::Yaml);
    load_source(&source, format, Some(dir), profiles)
}

/// True for files `validate` treats as plans when walking a directory.
pub fn is_plan_file(path: &Path) -> bool {
    let is_profiles = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| profiles::PROFILE_FILE_NAMES.contains(&n));
    Format::from_path(path).is_some() && !is_profiles
}

/// Expands files and directories (recursively, `*.yaml|*.yml|*.toml`, sorted) into plan files.
/// An unreadable path is an error: the caller turns it into exit code 2.
pub fn plan_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for path in paths {
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut out)?;
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_plan_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}
