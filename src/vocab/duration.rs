//! Durations as people write them in plans (`15m`, `1h30m`): the one printed form, shared by every layer that
//! shows a duration from a plan.

use serde::Serializer;
use std::time::Duration;

/// Serialises a duration in its compact humantime form.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format(*d))
}

/// Compact form without spaces (`1h30m`), so it reads like what users write.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_compactly() {
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(900)), "15m");
    }
}
