//! The only module that talks to the Kubernetes API.
//!
//! [`Cluster`] wraps a `kube::Client` plus the resolved default namespace and offers the operations backup-ns
//! needs, each returning a [`ClusterError`] that names the object and, where obvious, the fix:
//! - [`connect`](Cluster::connect): kubeconfig (`--kubeconfig` / `KUBECONFIG` / `~/.kube/config`) or in-cluster;
//! - snapshots ([`snapshots`]): create VS/VGS, get, paginated list, label patches with `test` ops, delete
//!   (VSC → `Delete`, then VS), wait until ready through a watch, default class lookup;
//! - core objects ([`core`]): PVC get/create, namespace get, Events;
//! - jobs ([`jobs`]): Job from a CronJob template, running jobs, wait, pod logs;
//! - the engine's ports: [`exec::KubeExec`] (pod exec over WebSocket) and [`resolve::KubeResolver`];
//! - retention's [`SnapshotStore`](crate::retention::port::SnapshotStore) ([`retention_port`]) and `rebind` of a
//!   dangling content ([`rebind`]).
//! - [`retry`]: the one retry policy and the deadline every request goes through.
//!
//! RBAC each operation needs (a 403 names the missing verb and resource in its message):
//!
//! | operation                                   | verbs and resources                                              |
//! |---------------------------------------------|------------------------------------------------------------------|
//! | create / get / list / wait snapshots        | create, get, list, watch `volumesnapshots` (namespaced)           |
//! | label patches on snapshots                  | patch `volumesnapshots`                                           |
//! | delete snapshot                             | get, patch `volumesnapshotcontents` (cluster) + delete `volumesnapshots` |
//! | label sync / rebind                         | get, list, patch, create, delete `volumesnapshotcontents` (cluster) |
//! | default class                               | list `volumesnapshotclasses` (cluster)                            |
//! | group snapshots                             | create, get, watch `volumegroupsnapshots`                         |
//! | preflight                                   | get `namespaces` (cluster), get `persistentvolumeclaims`          |
//! | restore                                     | create, get, watch `persistentvolumeclaims`                       |
//! | events                                      | create, list `events.events.k8s.io`                               |
//! | resolve workloads                           | get `deployments`/`statefulsets`, get, list `pods`                |
//! | exec                                        | create `pods/exec`                                                |
//! | adhoc                                       | get `cronjobs`; create, list, watch `jobs`; list, watch `pods`; get `pods/log` |

pub mod client;
pub mod core;
pub mod engine_port;
pub mod error;
pub mod exec;
pub mod exec_frames;
pub mod jobs;
pub mod label_patch;
pub mod label_pod;
pub mod listed;
pub mod rebind;
pub mod resolve;
pub mod resources;
pub mod retention_port;
pub mod retry;
pub mod snapshot_mirror;
pub mod snapshots;
pub mod stream_exec;
pub mod tty;
pub mod verify;

pub use client::{Cluster, ConnectOptions, NamespaceSource};
pub use error::{ApiFailure, ClusterError, ListRef, ObjectRef, Result};
pub use resources::{
    VolumeGroupSnapshot, VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent,
};
pub use snapshots::{DeleteOutcome, NewGroupSnapshot, NewSnapshot, PreProvisioned};
