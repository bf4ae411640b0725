//! `backup-ns delete`, the pure part: which snapshots may be deleted (only those backup-ns made, unless
//! `--force`), and the summary shown before asking for confirmation.

use super::OpsError;
use crate::cluster::VolumeSnapshot;
use crate::cluster::snapshots::DeleteOutcome;
use crate::labels;

/// True when the snapshot carries at least one `backup-ns.sh/` label, i.e. backup-ns (or the original) made it.
pub fn is_managed(vs: &VolumeSnapshot) -> bool {
    vs.labels()
        .is_some_and(|l| l.keys().any(|k| k.starts_with(labels::PREFIX)))
}

/// Checks every snapshot before anything is deleted, so a refusal never leaves half the list deleted.
/// Returns every refusal, not only the first. A member of a VolumeGroupSnapshot is refused even with `--force`:
/// a group's members go together, through their group (as retention deletes them).
pub fn check_deletable(snapshots: &[VolumeSnapshot], force: bool) -> Vec<OpsError> {
    snapshots
        .iter()
        .filter_map(|vs| {
            let (namespace, name) = (vs.namespace().to_string(), vs.name().to_string());
            if let Some(group) = vs.group() {
                Some(OpsError::GroupMember {
                    namespace,
                    name,
                    group: group.to_string(),
                })
            } else if !force && !is_managed(vs) {
                Some(OpsError::Unmanaged { namespace, name })
            } else {
                None
            }
        })
        .collect()
}

/// One line per snapshot: what goes, and that the storage snapshot goes with it.
pub fn summary(snapshots: &[VolumeSnapshot]) -> String {
    let mut out = String::new();
    for vs in snapshots {
        let pvc = super::restore::source_claim(vs).unwrap_or("?");
        let created = vs
            .created()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| "unknown time".into());
        let content = match vs.bound_content() {
            Some(c) => format!("VolumeSnapshotContent {c} (deletionPolicy set to Delete)"),
            None => "no bound VolumeSnapshotContent".to_string(),
        };
        out.push_str(&format!(
            "  VolumeSnapshot {}/{} (pvc {pvc}, created {created}) and {content}\n",
            vs.namespace(),
            vs.name()
        ));
    }
    out
}

/// Whether a typed answer confirms: `y` or `yes`, any case.
pub fn confirms(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The line `delete` prints for one deleted snapshot: what happened to it and to its content.
pub fn deleted_line(name: &str, outcome: &DeleteOutcome) -> String {
    let content = match (&outcome.content, outcome.policy_patched) {
        (Some(c), true) => format!(" (VolumeSnapshotContent {c} switched from Retain to Delete)"),
        (Some(c), false) => format!(" (VolumeSnapshotContent {c} goes with it)"),
        (None, _) => String::new(),
    };
    let what = if outcome.already_gone {
        "was already gone"
    } else {
        "deleted"
    };
    format!("volumesnapshot/{name} {what}{content}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vs(name: &str, labels: serde_json::Value) -> VolumeSnapshot {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "spec": {"source": {"persistentVolumeClaimName": "data"}},
            "status": {"boundVolumeSnapshotContentName": "snapcontent-1", "creationTime": "2025-01-01T00:00:00Z"}
        }))
        .unwrap()
    }

    #[test]
    fn only_snapshots_with_backup_ns_labels_are_deletable_without_force() {
        let list = [
            vs("ours", json!({"backup-ns.sh/type": "adhoc"})),
            vs("foreign", json!({"app": "db"})),
            vs("bare", json!(null)),
        ];
        let refused: Vec<String> = check_deletable(&list, false)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(refused.len(), 2);
        assert!(refused[0].starts_with("VolumeSnapshot shop/foreign has no backup-ns.sh/ labels"));
        assert!(refused[1].contains("pass --force"));
        assert!(check_deletable(&list, true).is_empty());
    }

    #[test]
    fn a_group_member_is_refused_even_with_force() {
        let mut by_status = vs("member-b", json!({"backup-ns.sh/type": "cronjob"}));
        by_status
            .status
            .as_mut()
            .unwrap()
            .volume_group_snapshot_name = Some("nightly".into());
        let list = [
            vs(
                "member-a",
                json!({"backup-ns.sh/type": "cronjob", "groupsnapshot.storage.k8s.io/volumeGroupSnapshotName": "nightly"}),
            ),
            by_status,
            vs("alone", json!({"backup-ns.sh/type": "cronjob"})),
        ];
        for force in [false, true] {
            let refused: Vec<String> = check_deletable(&list, force)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(refused.len(), 2, "{refused:?}");
            assert!(
                refused[0].starts_with(
                    "VolumeSnapshot shop/member-a is a member of VolumeGroupSnapshot nightly"
                ),
                "{refused:?}"
            );
            assert!(refused[1].ends_with("`kubectl -n shop delete volumegroupsnapshot nightly`"));
        }
    }

    #[test]
    fn the_summary_names_snapshot_claim_and_content() {
        let text = summary(&[vs("ours", json!({}))]);
        assert_eq!(
            text,
            "  VolumeSnapshot shop/ours (pvc data, created 2025-01-01T00:00:00Z) and VolumeSnapshotContent \
             snapcontent-1 (deletionPolicy set to Delete)\n"
        );
    }

    #[test]
    fn only_yes_confirms() {
        for yes in ["y", "Y", "yes", " YES\n"] {
            assert!(confirms(yes), "{yes:?}");
        }
        for no in ["", "n", "no", "yess", "\n"] {
            assert!(!confirms(no), "{no:?}");
        }
    }

    #[test]
    fn a_deleted_line_says_what_happened_to_the_content() {
        let outcome = |content: Option<&str>, policy_patched, already_gone| DeleteOutcome {
            content: content.map(str::to_string),
            policy_patched,
            already_gone,
        };
        assert_eq!(
            deleted_line("s1", &outcome(Some("c1"), true, false)),
            "volumesnapshot/s1 deleted (VolumeSnapshotContent c1 switched from Retain to Delete)\n"
        );
        assert_eq!(
            deleted_line("s1", &outcome(Some("c1"), false, false)),
            "volumesnapshot/s1 deleted (VolumeSnapshotContent c1 goes with it)\n"
        );
        assert_eq!(
            deleted_line("s1", &outcome(None, false, true)),
            "volumesnapshot/s1 was already gone\n"
        );
    }
}
