//! kube-sim: a loopback Kubernetes API simulator.

pub mod exec;
