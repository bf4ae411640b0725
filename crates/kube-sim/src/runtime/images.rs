//! `--run-image IMAGE=PROGRAM`: which container images run a host program, and the argv a container of such an
//! image gets. An image is matched without its tag or digest (`backup-ns:0.1.0` and `backup-ns@sha256:…` are
//! both `backup-ns`).
//!
//! - `IMAGE=PROGRAM`: PROGRAM stands in for the image's entrypoint. A container without `command` runs PROGRAM
//!   with its `args`. A `command` whose first word names PROGRAM (same file name) runs PROGRAM with the rest of
//!   the command and the args; any other `command` is a tool of the image and is looked up on the container's
//!   `PATH`, as on the host.
//! - `IMAGE=host`: the image's tools are installed on this machine (postgres, mariadb, busybox's `sh`): the
//!   container's `command` and `args` run as given, `command[0]` looked up on `PATH`. Without a `command` the
//!   image's entrypoint is unknown, so nothing runs.
//!
//! A container of an unmapped image runs nothing either: the pod reports Running with no process, as kube-sim
//! always did.

use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What a mapped image runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageTarget {
    /// The container's `command`, resolved on `PATH`.
    Host,
    /// This program as the image's entrypoint.
    Program(PathBuf),
}

/// One `IMAGE=PROGRAM` mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunImage {
    /// Image repository, without tag or digest.
    pub image: String,
    /// What it runs.
    pub target: ImageTarget,
}

/// Why a `--run-image` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunImageError {
    /// Not of the form `IMAGE=PROGRAM`.
    #[error(
        "--run-image {0:?}: expected IMAGE=PROGRAM (or IMAGE=host), e.g. backup-ns=target/debug/backup-ns"
    )]
    Syntax(String),
    /// PROGRAM names a path that is not an executable file.
    #[error("--run-image {image}={program}: no executable file at {program}")]
    NotExecutable {
        /// Image.
        image: String,
        /// Program as given.
        program: String,
    },
}

/// The repository part of an image reference: without `@digest` and without a `:tag` after the last `/` (a
/// registry port such as `localhost:5000/x` stays).
#[must_use]
pub fn image_repository(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(repo, _)| repo);
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].find(':') {
        Some(colon) => &image[..name_start + colon],
        None => image,
    }
}

impl FromStr for RunImage {
    type Err = RunImageError;

    /// `IMAGE=PROGRAM`. A PROGRAM with a `/` is a path, made absolute against the current directory (the
    /// process runs in its container's workingDir) and checked to be an executable file; a bare name is looked
    /// up on the container's `PATH` when it runs; `host` is [`ImageTarget::Host`].
    fn from_str(value: &str) -> Result<Self, RunImageError> {
        let (image, program) = value
            .split_once('=')
            .filter(|(i, p)| !i.is_empty() && !p.is_empty())
            .ok_or_else(|| RunImageError::Syntax(value.to_string()))?;
        let image = image_repository(image).to_string();
        let target = if program == "host" {
            ImageTarget::Host
        } else if program.contains('/') {
            let path = std::path::absolute(program).unwrap_or_else(|_| PathBuf::from(program));
            if !is_executable(&path) {
                return Err(RunImageError::NotExecutable {
                    image,
                    program: program.to_string(),
                });
            }
            ImageTarget::Program(path)
        } else {
            ImageTarget::Program(PathBuf::from(program))
        };
        Ok(RunImage { image, target })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Every `--run-image` mapping; the last one given for an image wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunImages(Vec<RunImage>);

impl RunImages {
    /// The mappings, in the order given.
    #[must_use]
    pub fn new(mappings: Vec<RunImage>) -> Self {
        RunImages(mappings)
    }

    /// No image is mapped: every pod keeps the process-less behaviour.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What `image` runs, if it is mapped.
    #[must_use]
    pub fn target(&self, image: &str) -> Option<&ImageTarget> {
        let repo = image_repository(image);
        self.0
            .iter()
            .rev()
            .find(|m| m.image == repo)
            .map(|m| &m.target)
    }

    /// The argv of a container of `image` with `command` and `args`; None when it runs no process (unmapped
    /// image, or a `host` image without a command).
    #[must_use]
    pub fn argv(&self, image: &str, command: &[String], args: &[String]) -> Option<Vec<String>> {
        let head: Vec<String> = match (self.target(image)?, command.split_first()) {
            (ImageTarget::Host, None) => return None,
            (ImageTarget::Host, Some(_)) => command.to_vec(),
            (ImageTarget::Program(program), None) => vec![program.display().to_string()],
            (ImageTarget::Program(program), Some((first, rest))) => {
                if Path::new(first).file_name() == program.file_name() {
                    std::iter::once(program.display().to_string())
                        .chain(rest.iter().cloned())
                        .collect()
                } else {
                    command.to_vec()
                }
            }
        };
        Some(head.into_iter().chain(args.iter().cloned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_string()).collect()
    }

    #[test]
    fn images_match_without_tag_or_digest() {
        for (image, repo) in [
            ("backup-ns", "backup-ns"),
            ("backup-ns:0.1.0", "backup-ns"),
            ("ghcr.io/x/backup-ns:1@sha256:abc", "ghcr.io/x/backup-ns"),
            ("localhost:5000/busybox", "localhost:5000/busybox"),
            ("localhost:5000/busybox:1.36.1", "localhost:5000/busybox"),
        ] {
            assert_eq!(image_repository(image), repo, "{image}");
        }
    }

    #[test]
    fn a_program_is_the_entrypoint_and_host_images_run_their_command() {
        let images = RunImages::new(vec![
            "backup-ns:0.1.0=backup-ns".parse().expect("mapping"),
            "busybox=host".parse().expect("mapping"),
        ]);
        let args = strings(&["run", "/etc/backup-ns/plan.yaml"]);
        assert_eq!(
            images.argv("backup-ns:9", &[], &args),
            Some(strings(&["backup-ns", "run", "/etc/backup-ns/plan.yaml"]))
        );
        assert_eq!(
            images.argv(
                "backup-ns",
                &strings(&["/usr/bin/backup-ns", "list"]),
                &strings(&["-A"])
            ),
            Some(strings(&["backup-ns", "list", "-A"]))
        );
        assert_eq!(
            images.argv("backup-ns", &strings(&["sh", "-c", "true"]), &[]),
            Some(strings(&["sh", "-c", "true"]))
        );
        assert_eq!(
            images.argv(
                "busybox:1.36.1",
                &strings(&["sh", "-c", "chmod 1777 /x"]),
                &[]
            ),
            Some(strings(&["sh", "-c", "chmod 1777 /x"]))
        );
        assert_eq!(images.argv("busybox", &[], &args), None);
        assert_eq!(
            images.argv("postgres:17", &strings(&["postgres"]), &[]),
            None
        );
    }

    #[test]
    fn bad_mappings_are_refused_with_the_expected_form() {
        assert!(matches!(
            "backup-ns".parse::<RunImage>(),
            Err(RunImageError::Syntax(_))
        ));
        assert!(matches!(
            "=x".parse::<RunImage>(),
            Err(RunImageError::Syntax(_))
        ));
        assert!(matches!(
            "x=./no/such/program".parse::<RunImage>(),
            Err(RunImageError::NotExecutable { .. })
        ));
        let sh: RunImage = "sh=/bin/sh".parse().expect("an executable");
        assert_eq!(sh.target, ImageTarget::Program(PathBuf::from("/bin/sh")));
    }
}
