//! Database commands and the exporter, end to end: the real `backup-ns` binary against an in-process kube-sim
//! (whose exec runs real processes) and throwaway PostgreSQL / MariaDB servers from tests/support.

#[path = "../support/mod.rs"]
mod support;

mod env;
mod exporter;
mod files;
mod mariadb;
mod postgres;
mod push;
