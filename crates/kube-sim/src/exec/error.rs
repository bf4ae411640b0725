//! Errors of the exec subsystem, named after the operation that failed.

use std::path::PathBuf;

/// Why an exec request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The query string is not a valid exec request (HTTP 400).
    #[error("{0}")]
    InvalidRequest(String),
    /// The client offered no subprotocol kube-sim speaks (HTTP 400).
    #[error(
        "unsupported streaming protocol {offered:?}: kube-sim serves exec over WebSocket with v5.channel.k8s.io or v4.channel.k8s.io"
    )]
    UnsupportedProtocol { offered: String },
    /// A mount's container path is not absolute or contains `..`.
    #[error("container path {path:?} of a volume mount must be absolute and free of `..`")]
    InvalidContainerPath { path: PathBuf },
    /// A mount's host side (PVC backing directory) does not exist.
    #[error("host path {path:?} of the volume mounted at {container:?} does not exist")]
    HostPathMissing { path: PathBuf, container: PathBuf },
    /// Creating the mountpoint would write into a real host filesystem other than `/`.
    #[error(
        "container path {container:?} lies inside host mount {host_mount:?} and does not exist there; kube-sim will not create it on the host"
    )]
    MountpointInsideHostMount {
        container: PathBuf,
        host_mount: PathBuf,
    },
    /// The host's mount table could not be read.
    #[error("cannot read /proc/self/mountinfo")]
    ReadMountTable(#[source] std::io::Error),
    /// The per-session staging directory could not be created.
    #[error("cannot create staging directory {path:?}")]
    CreateStaging {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A step of the mount-namespace setup failed in the child (needs root / CAP_SYS_ADMIN).
    #[error(
        "mount namespace setup failed at `{step}` (kube-sim exec needs root or CAP_SYS_ADMIN and overlayfs/tmpfs support; it never runs a command with unmapped volumes)"
    )]
    MountNamespace {
        step: String,
        #[source]
        source: std::io::Error,
    },
    /// The command could not be executed (not found, not executable, ...).
    #[error("failed to exec in container: exec: {program:?}: {reason}")]
    Spawn {
        program: String,
        reason: String,
        #[source]
        source: std::io::Error,
    },
    /// A pseudo-terminal could not be allocated.
    #[error("cannot allocate a pseudo-terminal")]
    Pty(#[source] std::io::Error),
}
