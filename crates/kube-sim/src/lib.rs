//! kube-sim: a loopback Kubernetes API simulator for backup-ns tests and demos.
//!
//! [`Sim`] starts the simulated apiserver in-process (store, HTTP server, controllers, clock, faults, request
//! log); the `kube-sim serve` binary wraps the same thing for scripts.

pub mod cel;
pub mod clock;
pub mod container;
pub mod controllers;
pub mod cron;
pub mod demo;
pub mod events;
pub mod exec;
pub mod faults;
pub mod kubelet;
pub mod node_agent;
pub mod patch;
pub mod paths;
pub mod pod_logs;
pub mod pods;
pub mod protobuf;
pub mod rbac;
pub mod requests;
pub mod resources;
pub mod runtime;
pub mod selectors;
pub mod server;
pub mod sim;
pub mod state_dir;
pub mod status;
pub mod store;
pub mod tls;
pub mod validation;

pub use clock::SimClock;
pub use container::{
    ContainerContext, Mount, ResolveError, resolve_container, resolve_running_container,
};
pub use faults::{Fault, FaultAction, FaultKind, Faults};
pub use pods::PodPhase;
pub use rbac::{Attributes, UserInfo};
pub use requests::{RequestLog, RequestShape, SHAPES_ENV};
pub use server::{Shared, admit, authorize_request};
pub use sim::{Sim, SimBuilder, SimError, kubeconfig_yaml, load_yaml, write_kubeconfig};
pub use status::ApiError;
