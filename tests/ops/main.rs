//! Operator commands (`list`, `restore`, `delete`, `adhoc`) run as the real binary against an in-process kube-sim.
//! Each test starts its own simulator and runs the binary with a cleared environment in its own temp dir.

mod adhoc;
mod delete;
mod help;
mod list;
mod restore;
mod support;
mod tty;
