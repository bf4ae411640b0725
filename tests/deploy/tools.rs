//! The real install tools the deploy tests drive: Helm (installed by scripts/install-helm.sh into a tools directory
//! outside the checkout) and `kubectl kustomize`. Each render comes back as parsed documents; a missing Helm fails
//! the test with the install line, never skips it.

use super::{docs, kubectl_bin, repo, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The chart under test.
pub const CHART: &str = "charts/backup-ns";

/// Helm: `$HELM`, else where scripts/install-helm.sh puts it (`$BACKUP_NS_TOOLS`, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/backup-ns/tools`).
pub fn helm_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HELM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "HELM={} does not exist; install Helm with scripts/install-helm.sh",
            p.display()
        );
        return p;
    }
    let tools = std::env::var_os("BACKUP_NS_TOOLS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache")
                });
            cache.join("backup-ns/tools")
        });
    let helm = tools.join("helm");
    assert!(
        helm.is_file(),
        "Helm is not installed at {}: the chart tests need the real helm. Install it with \
         `scripts/install-helm.sh` (or point HELM at a helm binary)",
        helm.display()
    );
    helm
}

/// A Helm command with its state (config, cache, data) in `home`, so no ambient Helm setup leaks in.
pub fn helm_cmd(home: &Path) -> Command {
    let mut cmd = Command::new(helm_bin());
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("HELM_CONFIG_HOME", home.join("helm-config"))
        .env("HELM_CACHE_HOME", home.join("helm-cache"))
        .env("HELM_DATA_HOME", home.join("helm-data"))
        .current_dir(repo());
    cmd
}

/// Runs helm with `args`; returns the output whatever the exit code.
pub fn helm(args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("temp HOME");
    helm_cmd(home.path())
        .args(args)
        .output()
        .expect("helm starts")
}

/// One entry of the values matrix: a name for messages and the extra `helm template` arguments.
pub struct Values {
    pub name: &'static str,
    pub args: &'static [&'static str],
}

/// Every values combination the chart is rendered with: defaults, the original chart's values file, the
/// controller part (with and without the namespace part), an existing plan ConfigMap, and the lock turned off.
pub const MATRIX: &[Values] = &[
    Values {
        name: "defaults",
        args: &[],
    },
    Values {
        name: "original-style values",
        args: &["-f", "tests/deploy/fixtures/original-values.yaml"],
    },
    Values {
        name: "controller.enabled",
        args: &["--set", "controller.enabled=true"],
    },
    Values {
        name: "controller only",
        args: &[
            "--set",
            "controller.enabled=true",
            "--set",
            "backup.enabled=false",
        ],
    },
    Values {
        name: "controller without exporter",
        args: &[
            "--set",
            "controller.enabled=true",
            "--set",
            "controller.exporter.enabled=false",
        ],
    },
    Values {
        name: "existing plan ConfigMap",
        args: &["--set", "existingPlanConfigMap=team-plan"],
    },
    Values {
        name: "lock off",
        args: &["--set", "lock.enabled=false"],
    },
];

/// `helm template RELEASE charts/backup-ns -n NS ARGS...`, which must succeed, as YAML (for piping into kubectl).
pub fn helm_template_text(release: &str, namespace: &str, args: &[&str]) -> String {
    let mut all = vec!["template", release, CHART, "--namespace", namespace];
    all.extend_from_slice(args);
    let out = helm(&all);
    assert!(
        out.status.success(),
        "helm template {args:?}: {}",
        text(&out)
    );
    String::from_utf8(out.stdout).expect("utf8 render")
}

/// `helm template`, parsed.
pub fn helm_template(release: &str, namespace: &str, args: &[&str]) -> Vec<Value> {
    docs(&helm_template_text(release, namespace, args))
}

/// `kubectl kustomize DIR` (repo-relative), which must succeed.
pub fn kustomize_text(dir: &str) -> String {
    let home = tempfile::tempdir().expect("temp HOME");
    let out = Command::new(kubectl_bin())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home.path())
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .expect("kubectl starts");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        text(&out)
    );
    String::from_utf8(out.stdout).expect("utf8 render")
}

pub fn kustomize(dir: &str) -> Vec<Value> {
    docs(&kustomize_text(dir))
}

/// The kustomize directories that ship: the two bases and the example overlay.
pub const KUSTOMIZE_DIRS: &[&str] = &[
    "deploy/kustomize/namespace",
    "deploy/kustomize/controller",
    "deploy/kustomize/example-tenant",
];

/// The static manifests that ship.
pub const STATIC_FILES: &[&str] = &[
    "deploy/static/backup-ns.yaml",
    "deploy/static/backup-ns-controller.yaml",
];
