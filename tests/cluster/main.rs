//! Integration tests of the cluster layer over the real wire: an in-process kube-sim, a real kube-rs client.
//!
//! Every operation of `backup_ns::cluster` is exercised here: snapshot create/get/list (paginated), guarded label
//! patches, delete ordering (content first), wait-ready (success, timeout, controller error), default class, PVC
//! preflight and restore, Events, Jobs for adhoc, workload resolution, RBAC-denied calls and pod exec.

mod exec;
mod jobs;
mod pvcs;
mod rbac;
mod resolve;
mod snapshots;
mod support;
