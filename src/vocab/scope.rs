//! Which namespaces a cluster-wide operation covers: the scope of a snapshot list, shared by retention, the
//! operator commands and the cluster layer that lists.

/// Which namespaces a list covers: `-A` or one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Namespace(String),
}

impl Scope {
    /// The namespace of a one-namespace scope; `None` for `-A`.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Namespace(ns) => Some(ns),
        }
    }
}
