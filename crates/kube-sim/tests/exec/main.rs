//! Exec tests: the remote-command WebSocket protocol served by `kube_sim::exec`, driven by a
//! tokio-tungstenite client against an in-test axum server (phase A), and later by kubectl and
//! kube-rs against the whole simulator.

mod cluster;
mod support;

mod channels;
mod kube_rs;
mod kubectl;
mod lifecycle;
mod sandbox;
mod stdin;
mod streaming;
mod tty;
