//! `backup-ns list`, the pure part: filter flags → label selector, snapshots → rows (sorted by creation time),
//! rows → a kubectl-style table, `-o name|json|yaml`, and the equivalent `kubectl get` command.

use super::age::human_age;
use super::style::Style;
use crate::cluster::VolumeSnapshot;
use crate::labels;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The filters of `backup-ns list`. Every snapshot listed carries `backup-ns.sh/retain` (as in the original).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub daily: bool,
    pub weekly: bool,
    pub monthly: bool,
    pub adhoc: bool,
    pub cronjob: bool,
    pub pvc: Option<String>,
    pub marked: bool,
    pub plan: Option<String>,
}

impl Filters {
    /// The label selector the API evaluates, e.g. `backup-ns.sh/retain,backup-ns.sh/type=adhoc`.
    pub fn selector(&self) -> String {
        let mut parts = vec![labels::RETAIN.to_string()];
        if self.daily {
            parts.push(labels::DAILY.to_string());
        }
        if self.weekly {
            parts.push(labels::WEEKLY.to_string());
        }
        if self.monthly {
            parts.push(labels::MONTHLY.to_string());
        }
        if self.adhoc {
            parts.push(format!("{}={}", labels::TYPE, labels::TYPE_ADHOC));
        }
        if self.cronjob {
            parts.push(format!("{}={}", labels::TYPE, labels::TYPE_CRONJOB));
        }
        if let Some(pvc) = &self.pvc {
            parts.push(format!("{}={pvc}", labels::PVC));
        }
        if self.marked {
            parts.push(labels::DELETE_AFTER.to_string());
        }
        if let Some(plan) = &self.plan {
            parts.push(format!("{}={plan}", labels::PLAN));
        }
        parts.join(",")
    }
}

/// One line of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub pvc: String,
    pub ready: bool,
    pub size: String,
    pub created: Option<DateTime<Utc>>,
    pub content: String,
    pub class: String,
    pub backup_type: String,
    pub retain: String,
    pub daily: String,
    pub weekly: String,
    pub monthly: String,
    pub delete_after: String,
}

impl Row {
    pub fn from_snapshot(vs: &VolumeSnapshot) -> Row {
        let label = |key: &str| vs.label(key).unwrap_or_default().to_string();
        Row {
            namespace: vs.namespace().to_string(),
            name: vs.name().to_string(),
            pvc: vs
                .source_pvc()
                .or_else(|| vs.label(labels::PVC))
                .unwrap_or_default()
                .to_string(),
            ready: vs.ready(),
            size: vs
                .status
                .as_ref()
                .and_then(|s| s.restore_size.as_ref())
                .map(|q| q.0.clone())
                .unwrap_or_default(),
            created: vs.created(),
            content: vs.bound_content().unwrap_or_default().to_string(),
            class: vs
                .spec
                .volume_snapshot_class_name
                .clone()
                .unwrap_or_default(),
            backup_type: label(labels::TYPE),
            retain: label(labels::RETAIN),
            daily: label(labels::DAILY),
            weekly: label(labels::WEEKLY),
            monthly: label(labels::MONTHLY),
            delete_after: label(labels::DELETE_AFTER),
        }
    }
}

/// Sorts snapshots oldest first by creation time (`status.creationTime`, else `metadata.creationTimestamp`), then
/// by namespace and name so that equal times list in a stable order. Snapshots without a time come last.
pub fn sort_by_creation(snapshots: &mut [VolumeSnapshot]) {
    snapshots.sort_by(|a, b| {
        let key = |v: &VolumeSnapshot| (v.created().is_none(), v.created());
        key(a)
            .cmp(&key(b))
            .then_with(|| a.namespace().cmp(b.namespace()))
            .then_with(|| a.name().cmp(b.name()))
    });
}

/// What the table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableOptions {
    /// `-A`: a NAMESPACE column first.
    pub all_namespaces: bool,
    /// `-o wide`: SNAPSHOTCONTENT and CLASS too.
    pub wide: bool,
}

/// Renders rows as a kubectl-style table: upper-case headers, columns padded to their widest cell and three
/// spaces apart, no trailing blanks. CREATED is local time in `tz`; AGE is relative to `now`.
pub fn render_table(
    rows: &[Row],
    options: TableOptions,
    now: DateTime<Utc>,
    tz: Tz,
    style: Style,
) -> String {
    // (header, cell text, painter)
    type Paint = fn(Style, &str) -> String;
    let plain: Paint = |_, t| t.to_string();
    let mut columns: Vec<(&str, Vec<String>, Vec<Paint>)> = Vec::new();
    let mut col = |header: &'static str, cells: Vec<(String, Paint)>| {
        let (text, paint): (Vec<String>, Vec<Paint>) = cells.into_iter().unzip();
        columns.push((header, text, paint));
    };
    if options.all_namespaces {
        col(
            "NAMESPACE",
            rows.iter().map(|r| (r.namespace.clone(), plain)).collect(),
        );
    }
    col(
        "NAME",
        rows.iter().map(|r| (r.name.clone(), plain)).collect(),
    );
    col("PVC", rows.iter().map(|r| (r.pvc.clone(), plain)).collect());
    col(
        "READY",
        rows.iter()
            .map(|r| {
                if r.ready {
                    ("true".to_string(), Style::green as Paint)
                } else {
                    ("false".to_string(), Style::red as Paint)
                }
            })
            .collect(),
    );
    col(
        "SIZE",
        rows.iter().map(|r| (r.size.clone(), plain)).collect(),
    );
    col(
        "CREATED",
        rows.iter()
            .map(|r| {
                let text = r
                    .created
                    .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                (text, plain)
            })
            .collect(),
    );
    col(
        "AGE",
        rows.iter()
            .map(|r| {
                let text = r
                    .created
                    .map(|t| human_age(now - t))
                    .unwrap_or_else(|| "<unknown>".to_string());
                (text, plain)
            })
            .collect(),
    );
    col(
        "TYPE",
        rows.iter()
            .map(|r| (r.backup_type.clone(), plain))
            .collect(),
    );
    col(
        "RETAIN",
        rows.iter().map(|r| (r.retain.clone(), plain)).collect(),
    );
    col(
        "DAILY",
        rows.iter().map(|r| (r.daily.clone(), plain)).collect(),
    );
    col(
        "WEEKLY",
        rows.iter().map(|r| (r.weekly.clone(), plain)).collect(),
    );
    col(
        "MONTHLY",
        rows.iter().map(|r| (r.monthly.clone(), plain)).collect(),
    );
    col(
        "DELETE-AFTER",
        rows.iter()
            .map(|r| (r.delete_after.clone(), Style::yellow as Paint))
            .collect(),
    );
    if options.wide {
        col(
            "SNAPSHOTCONTENT",
            rows.iter().map(|r| (r.content.clone(), plain)).collect(),
        );
        col(
            "CLASS",
            rows.iter().map(|r| (r.class.clone(), plain)).collect(),
        );
    }

    let widths: Vec<usize> = columns
        .iter()
        .map(|(h, cells, _)| {
            cells
                .iter()
                .map(|c| c.chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<(String, usize)>| -> String {
        let mut text = String::new();
        for (i, (cell, visible)) in cells.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i] - visible + 3;
                text.push_str(&" ".repeat(pad));
            }
        }
        text.trim_end().to_string()
    };
    out.push_str(&line(
        columns
            .iter()
            .map(|(h, _, _)| (style.bold(h), h.len()))
            .collect(),
    ));
    out.push('\n');
    for i in 0..rows.len() {
        out.push_str(&line(
            columns
                .iter()
                .map(|(_, cells, paints)| (paints[i](style, &cells[i]), cells[i].chars().count()))
                .collect(),
        ));
        out.push('\n');
    }
    out
}

/// `-o name`: one `volumesnapshot.snapshot.storage.k8s.io/NAME` per line, as kubectl prints it.
pub fn render_names(snapshots: &[VolumeSnapshot]) -> String {
    snapshots
        .iter()
        .map(|vs| format!("volumesnapshot.snapshot.storage.k8s.io/{}\n", vs.name()))
        .collect()
}

/// `-o json|yaml`: a `v1` `List` of the snapshots, as `kubectl get -o json` prints it.
pub fn list_document(snapshots: &[VolumeSnapshot]) -> serde_json::Value {
    let items: Vec<serde_json::Value> = snapshots
        .iter()
        .map(|vs| {
            let mut v = serde_json::to_value(vs).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert("apiVersion".into(), VolumeSnapshot::api_version().into());
                obj.insert("kind".into(), VolumeSnapshot::KIND.into());
            }
            v
        })
        .collect();
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
}

/// The `kubectl get` command that shows the same snapshots (`--show-kubectl`).
pub fn kubectl_command(namespace: Option<&str>, selector: &str, wide: bool) -> String {
    let scope = match namespace {
        Some(ns) => format!("-n {}", shell_word(ns)),
        None => "--all-namespaces".to_string(),
    };
    let columns = [
        labels::PVC,
        labels::TYPE,
        labels::RETAIN,
        labels::DAILY,
        labels::WEEKLY,
        labels::MONTHLY,
        labels::DELETE_AFTER,
    ]
    .join(",");
    format!(
        "kubectl get volumesnapshots {scope} -l {} -L {columns} --sort-by=.status.creationTime{}",
        shell_word(selector),
        if wide { " -o wide" } else { "" }
    )
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./,=:".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The sentence printed when nothing matched, naming where we looked and the selector.
pub fn empty_message(namespace: Option<&str>, selector: &str) -> String {
    let scope = match namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "in any namespace".to_string(),
    };
    format!("No backup-ns snapshots found {scope} matching label selector `{selector}`.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vs(name: &str, created: &str, labels: serde_json::Value) -> VolumeSnapshot {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "spec": {"source": {"persistentVolumeClaimName": "data"}, "volumeSnapshotClassName": "csi"},
            "status": {"readyToUse": true, "creationTime": created, "restoreSize": "1Gi",
                       "boundVolumeSnapshotContentName": format!("snapcontent-{name}")}
        }))
        .unwrap()
    }

    #[test]
    fn every_filter_becomes_one_selector_term() {
        assert_eq!(Filters::default().selector(), "backup-ns.sh/retain");
        let all = Filters {
            daily: true,
            weekly: true,
            monthly: true,
            adhoc: true,
            cronjob: false,
            pvc: Some("data".into()),
            marked: true,
            plan: Some("app".into()),
        };
        assert_eq!(
            all.selector(),
            "backup-ns.sh/retain,backup-ns.sh/daily,backup-ns.sh/weekly,backup-ns.sh/monthly,\
             backup-ns.sh/type=adhoc,backup-ns.sh/pvc=data,backup-ns.sh/delete-after,backup-ns.sh/plan=app"
        );
    }

    #[test]
    fn snapshots_sort_by_creation_time_then_name_with_unknown_times_last() {
        let mut list = vec![
            vs("c", "2025-01-03T00:00:00Z", json!({})),
            serde_json::from_value(json!({"metadata": {"name": "untimed", "namespace": "shop"}}))
                .unwrap(),
            vs("b", "2025-01-01T00:00:00Z", json!({})),
            vs("a", "2025-01-01T00:00:00Z", json!({})),
        ];
        sort_by_creation(&mut list);
        let names: Vec<&str> = list.iter().map(VolumeSnapshot::name).collect();
        assert_eq!(names, ["a", "b", "c", "untimed"]);
    }

    #[test]
    fn the_table_aligns_columns_and_adds_wide_and_namespace_columns() {
        let rows = vec![Row::from_snapshot(&vs(
            "data-1",
            "2025-01-08T00:17:06Z",
            json!({"backup-ns.sh/type": "cronjob", "backup-ns.sh/retain": "daily_weekly_monthly",
                   "backup-ns.sh/daily": "2025-01-08"}),
        ))];
        let now: DateTime<Utc> = "2025-01-09T17:20:00Z".parse().unwrap();
        let text = render_table(
            &rows,
            TableOptions::default(),
            now,
            Tz::UTC,
            Style::default(),
        );
        assert_eq!(
            text,
            "NAME     PVC    READY   SIZE   CREATED            AGE   TYPE      RETAIN                 DAILY        WEEKLY   MONTHLY   DELETE-AFTER\n\
             data-1   data   true    1Gi    2025-01-08 00:17   41h   cronjob   daily_weekly_monthly   2025-01-08\n"
        );
        let wide = render_table(
            &rows,
            TableOptions {
                all_namespaces: true,
                wide: true,
            },
            now,
            Tz::UTC,
            Style::default(),
        );
        let header = wide.lines().next().unwrap();
        assert!(header.starts_with("NAMESPACE   NAME"), "{header}");
        assert!(header.ends_with("SNAPSHOTCONTENT      CLASS"), "{header}");
        assert!(
            wide.lines()
                .nth(1)
                .unwrap()
                .ends_with("snapcontent-data-1   csi")
        );
    }

    #[test]
    fn colour_does_not_change_the_alignment() {
        let rows = vec![Row::from_snapshot(&vs(
            "x",
            "2025-01-08T00:00:00Z",
            json!({}),
        ))];
        let now: DateTime<Utc> = "2025-01-09T00:00:00Z".parse().unwrap();
        let plain = render_table(
            &rows,
            TableOptions::default(),
            now,
            Tz::UTC,
            Style::default(),
        );
        let coloured = render_table(
            &rows,
            TableOptions::default(),
            now,
            Tz::UTC,
            Style { color: true },
        );
        let strip = |s: &str| {
            let mut out = String::new();
            let mut in_escape = false;
            for c in s.chars() {
                match (in_escape, c) {
                    (false, '\x1b') => in_escape = true,
                    (true, 'm') => in_escape = false,
                    (true, _) => {}
                    (false, c) => out.push(c),
                }
            }
            out
        };
        assert_ne!(plain, coloured);
        assert_eq!(plain, strip(&coloured));
    }

    #[test]
    fn the_kubectl_command_quotes_only_what_needs_quoting() {
        assert_eq!(
            kubectl_command(Some("shop"), "backup-ns.sh/retain", false),
            "kubectl get volumesnapshots -n shop -l backup-ns.sh/retain -L backup-ns.sh/pvc,backup-ns.sh/type,\
             backup-ns.sh/retain,backup-ns.sh/daily,backup-ns.sh/weekly,backup-ns.sh/monthly,backup-ns.sh/delete-after \
             --sort-by=.status.creationTime"
        );
        assert!(kubectl_command(None, "a b", true).contains("--all-namespaces -l 'a b' "));
        assert!(kubectl_command(None, "x", true).ends_with(" -o wide"));
    }

    #[test]
    fn names_and_lists_look_like_kubectl_output() {
        let list = [vs("a", "2025-01-01T00:00:00Z", json!({}))];
        assert_eq!(
            render_names(&list),
            "volumesnapshot.snapshot.storage.k8s.io/a\n"
        );
        let doc = list_document(&list);
        assert_eq!(doc["kind"], "List");
        assert_eq!(doc["items"][0]["kind"], "VolumeSnapshot");
        assert_eq!(doc["items"][0]["apiVersion"], "snapshot.storage.k8s.io/v1");
    }
}
