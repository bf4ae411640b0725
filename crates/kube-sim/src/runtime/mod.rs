//! The pod runtime: a container's process on this host, from a resolved container to its exit code. One
//! implementation for every user: kube-sim's kubelet (and a node agent for a real control plane) resolve a pod's
//! container into a [`ContainerProcess`] (argv, environment, volumes as host directories, workingDir), and this
//! runs it in exec's sandbox (a mount namespace that shows each volume at its mountPath), hands its stdout and
//! stderr to a sink as they arrive, stops it as a kubelet does (SIGTERM to its process group, SIGKILL after the
//! grace period) and reaps it. [`RunImages`] says which images run which host program (`--run-image`).
//! Nothing here knows API objects, the store or the clock.

mod images;
mod process;

pub use images::{ImageTarget, RunImage, RunImageError, RunImages, image_repository};
pub use process::{ContainerProcess, Exit, Stream, run};
