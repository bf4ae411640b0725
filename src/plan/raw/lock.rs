//! The `lock` section as written.

use super::{DurationString, raw_mapping};

raw_mapping! {
    /// Node-level lock slots so that few backups run at once on one node.
    #[schemars(deny_unknown_fields)]
    pub struct Lock in "lock" {
        /// Take a slot before the backup (default false).
        "enabled" => enabled: bool,
        /// The hostPath-mounted directory of the slot files (absolute; default `/mnt/host-backup-locks`).
        "dir" => dir: String,
        /// Number of slot files `1.lock … N.lock`; absent = number of CPUs / 2, at least 1.
        #[schemars(with = "Option<u32>")]
        "slots" => slots: i128,
        /// How long to wait for a free slot (default `1h`).
        #[schemars(with = "Option<DurationString>")]
        "timeout" => timeout: super::DurationText,
    }
}
