//! A password as a plan gives it: either a `${VAR}` reference that the container's own environment resolves, or
//! a literal value. Either way it only ever enters a script body (which travels on stdin) and never a log line,
//! an error, a `Debug` print or argv.

use super::quote::{is_env_ref, quote_with_env};
use crate::vocab::hook::DbDump;
use std::fmt;

/// A secret value. `Debug` and `Display` print `***`; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The raw value, for placing into a script body.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the container's environment provides the value (`${POSTGRES_PASSWORD}`), so backup-ns never
    /// sees it.
    pub fn is_env_ref(&self) -> bool {
        is_env_ref(&self.0)
    }

    /// A shell line that sets and exports `var` to this secret. Placed before anything that could trace.
    pub fn export_line(&self, var: &str) -> String {
        format!("{var}={}; export {var}\n", quote_with_env(&self.0))
    }

    /// Replaces every occurrence of a literal secret in `text` with `***`. Env references are not known to
    /// backup-ns, so the scripts never print them in the first place.
    pub fn redact(&self, text: &str) -> String {
        if self.is_env_ref() || self.0.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.0, "***")
        }
    }
}

impl DbDump {
    /// The dump's password as a [`Secret`]; `None` when it is empty (the container's own auth applies).
    pub fn secret(&self) -> Option<Secret> {
        (!self.password.is_empty()).then(|| Secret::new(self.password.clone()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_env_ref() {
            write!(f, "Secret({})", self.0)
        } else {
            f.write_str("Secret(***)")
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.redact("pw hunter2 used"), "pw *** used");
    }

    #[test]
    fn env_ref_secrets_export_unexpanded() {
        let s = Secret::new("${POSTGRES_PASSWORD}");
        assert_eq!(
            s.export_line("PGPASSWORD"),
            "PGPASSWORD=\"${POSTGRES_PASSWORD}\"; export PGPASSWORD\n"
        );
    }
}
