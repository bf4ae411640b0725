//! The `snapshot` section as written.

use super::{Choice, Choices, DurationString, StringMap, raw_mapping};
use crate::plan::model::{BackupType, Consistency};
use std::collections::BTreeMap;

impl Choices for Consistency {
    const NAME: &'static str = "Consistency";
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("individual", Consistency::Individual),
        ("group", Consistency::Group),
    ];
}

impl Choices for BackupType {
    const NAME: &'static str = "BackupType";
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("cronjob", BackupType::Cronjob),
        ("adhoc", BackupType::Adhoc),
    ];
}

raw_mapping! {
    /// How the VolumeSnapshots are made and named.
    #[schemars(deny_unknown_fields)]
    pub struct Snapshot in "snapshot" {
        /// VolumeSnapshotClass; absent = the cluster's default class.
        "class" => class: String,
        /// Fixed value for `{rand}` (`BAK_VS_RAND`); random per run when absent.
        "rand" => rand: String,
        /// Placeholders: `{pvc}`, `{timestamp}` (`2006-01-02-150405`, local time), `{rand}` (6 letters), `{plan}`.
        /// Default `{pvc}-{timestamp}-{rand}`.
        "nameTemplate" => name_template: String,
        /// Wait until every snapshot is ready to use (default true).
        "waitUntilReady" => wait_until_ready: bool,
        /// How long to wait for readiness (default `15m`).
        #[schemars(with = "Option<DurationString>")]
        "readyTimeout" => ready_timeout: super::DurationText,
        /// Extra labels on every VolumeSnapshot.
        #[schemars(with = "Option<BTreeMap<String, String>>")]
        "labels" => labels: StringMap,
        /// Extra annotations on every VolumeSnapshot.
        #[schemars(with = "Option<BTreeMap<String, String>>")]
        "annotations" => annotations: StringMap,
        /// `individual` snapshots per PVC (default), or one VolumeGroupSnapshot over all targets.
        "consistency" => consistency: Choice<Consistency>,
        /// Value of the `backup-ns.sh/type` label (`BAK_LABEL_VS_TYPE`); default `adhoc`.
        "type" => backup_type: Choice<BackupType>,
        /// Value of the `backup-ns.sh/pod` label (`BAK_LABEL_VS_POD`), e.g. the CronJob's pod name.
        "pod" => pod: String,
    }
}
