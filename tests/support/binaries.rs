//! Finding server binaries: on PATH, then in the versioned directories Debian uses. A missing binary fails the
//! test with the package to install; it is never a silent skip.

use std::path::{Path, PathBuf};

/// The first of `names` found on PATH or in `extra_dirs` (searched in order).
pub fn find(names: &[&str], extra_dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(extra_dirs.iter().cloned())
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .collect();
    names
        .iter()
        .find_map(|name| dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p)))
}

/// Like [`find`], but fails the test with the install hint.
pub fn require(names: &[&str], extra_dirs: &[PathBuf], install: &str) -> PathBuf {
    find(names, extra_dirs).unwrap_or_else(|| {
        panic!(
            "required binary {} not found on PATH or in {:?}; install it with `{install}`",
            names.join(" / "),
            extra_dirs
        )
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `/usr/lib/postgresql/*/bin`, newest major version first.
pub fn postgres_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    Some((version, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs.into_iter().map(|(_, d)| d).collect()
}
