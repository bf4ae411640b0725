//! Which namespaces a cluster-wide operation covers: the scope of a snapshot list, shared by retention, the
//! operator commands and the cluster layer that lists.

/// Default page size of paginated lists (the apiserver's own default chunk size is 500): retention's `--page-size`
/// default and the cluster layer's own lists.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

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
