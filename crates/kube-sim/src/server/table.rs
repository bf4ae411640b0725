//! Server-side printing: `meta.k8s.io/v1 Table` responses for `kubectl get`, with CRD additionalPrinterColumns,
//! a few built-in column sets, and row objects carrying metadata so `-L`, `-A` and `--show-labels` work.

use serde_json::{Value, json};

use crate::clock::SimClock;
use crate::resources::ResourceInfo;

/// Kubernetes' HumanDuration (`5s`, `3m2s`, `10h`, `4d5h`, `400d`).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rem = s % 60;
        return if rem == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rem}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rem = m % 60;
        return if rem == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rem}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if d < 8 {
        let rem = h % 24;
        return if rem == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rem}h")
        };
    }
    if d < 365 * 2 {
        return format!("{d}d");
    }
    let y = d / 365;
    if y < 8 {
        let rem = d % 365;
        return if rem == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{rem}d")
        };
    }
    format!("{y}y")
}

fn age(ts: Option<&Value>, clock: &SimClock) -> String {
    match ts
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        Some(t) => human_duration((clock.now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        None => "<unknown>".to_string(),
    }
}

/// Evaluate a simple JSONPath (`.status.readyToUse`).
fn jsonpath<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let p = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    let ptr: String = p
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect();
    obj.pointer(&ptr)
}

fn cell(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => json!("<none>"),
        Some(Value::String(s)) => json!(s),
        Some(other) => other.clone(),
    }
}

fn col(name: &str, ty: &str, format: &str, priority: i64) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": "", "priority": priority})
}

type Row = Box<dyn Fn(&Value) -> Vec<Value>>;

fn columns_for(res: &ResourceInfo, version: &str, clock: SimClock) -> (Vec<Value>, Row) {
    if let Some(v) = res
        .version(version)
        .filter(|v| !v.printer_columns.is_empty())
    {
        let pcs = v.printer_columns.clone();
        let mut defs = vec![col("Name", "string", "name", 0)];
        for pc in &pcs {
            defs.push(col(
                pc.get("name").and_then(Value::as_str).unwrap_or_default(),
                match pc.get("type").and_then(Value::as_str).unwrap_or("string") {
                    "date" => "string",
                    t => t,
                },
                "",
                pc.get("priority").and_then(Value::as_i64).unwrap_or(0),
            ));
        }
        let row: Row = Box::new(move |o: &Value| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            for pc in &pcs {
                let path = pc
                    .get("jsonPath")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let v = jsonpath(o, path);
                if pc.get("type").and_then(Value::as_str) == Some("date") {
                    cells.push(match v {
                        Some(Value::String(_)) => json!(age(v, &clock)),
                        _ => json!("<none>"),
                    });
                } else {
                    cells.push(cell(v));
                }
            }
            cells
        });
        return (defs, row);
    }
    let c2 = clock.clone();
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "pods") => (
            vec![
                col("Name", "string", "name", 0),
                col("Ready", "string", "", 0),
                col("Status", "string", "", 0),
                col("Restarts", "string", "", 0),
                col("Age", "string", "", 0),
            ],
            Box::new(move |o: &Value| {
                let statuses = o
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let total = o
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map(Vec::len)
                    .unwrap_or(0);
                let ready = statuses
                    .iter()
                    .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
                    .count();
                let restarts: i64 = statuses
                    .iter()
                    .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
                    .sum();
                let waiting = statuses
                    .iter()
                    .find_map(|s| s.pointer("/state/waiting/reason").and_then(Value::as_str));
                let phase = o
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("Pending");
                let status = waiting.unwrap_or(phase);
                vec![
                    o["metadata"]["name"].clone(),
                    json!(format!("{ready}/{total}")),
                    json!(status),
                    json!(restarts.to_string()),
                    json!(age(o.pointer("/metadata/creationTimestamp"), &c2)),
                ]
            }),
        ),
        ("apps", "deployments" | "statefulsets") => (
            vec![
                col("Name", "string", "name", 0),
                col("Ready", "string", "", 0),
                col("Age", "string", "", 0),
            ],
            Box::new(move |o: &Value| {
                let want = o
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                let ready = o
                    .pointer("/status/readyReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                vec![
                    o["metadata"]["name"].clone(),
                    json!(format!("{ready}/{want}")),
                    json!(age(o.pointer("/metadata/creationTimestamp"), &c2)),
                ]
            }),
        ),
        ("batch", "cronjobs") => (
            vec![
                col("Name", "string", "name", 0),
                col("Schedule", "string", "", 0),
                col("Timezone", "string", "", 0),
                col("Suspend", "boolean", "", 0),
                col("Active", "integer", "", 0),
                col("Last Schedule", "string", "", 0),
                col("Age", "string", "", 0),
            ],
            Box::new(move |o: &Value| {
                let active = o
                    .pointer("/status/active")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let last = o.pointer("/status/lastScheduleTime");
                vec![
                    o["metadata"]["name"].clone(),
                    cell(o.pointer("/spec/schedule")),
                    cell(o.pointer("/spec/timeZone")),
                    // The apiserver prints the pointer as a word, as Go's `printBoolPtr` does.
                    json!(
                        if o.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
                            "True"
                        } else {
                            "False"
                        }
                    ),
                    json!(active),
                    json!(if last.is_some() {
                        age(last, &c2)
                    } else {
                        "<none>".to_string()
                    }),
                    json!(age(o.pointer("/metadata/creationTimestamp"), &c2)),
                ]
            }),
        ),
        ("", "events") => (
            vec![
                col("Last Seen", "string", "", 0),
                col("Type", "string", "", 0),
                col("Reason", "string", "", 0),
                col("Object", "string", "", 0),
                col("Message", "string", "", 0),
            ],
            Box::new(move |o: &Value| {
                // As the apiserver's printer: the last timestamp, else the event time, else the creation.
                let seen = [
                    "/lastTimestamp",
                    "/eventTime",
                    "/metadata/creationTimestamp",
                ]
                .iter()
                .find_map(|p| o.pointer(p).filter(|v| v.is_string()));
                let object = format!(
                    "{}/{}",
                    o.pointer("/involvedObject/kind")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_lowercase(),
                    o.pointer("/involvedObject/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                );
                vec![
                    json!(age(seen, &c2)),
                    cell(o.get("type")),
                    cell(o.get("reason")),
                    json!(object),
                    cell(o.get("message")),
                ]
            }),
        ),
        ("", "persistentvolumeclaims") => (
            vec![
                col("Name", "string", "name", 0),
                col("Status", "string", "", 0),
                col("Volume", "string", "", 0),
                col("Capacity", "string", "", 0),
                col("Age", "string", "", 0),
            ],
            Box::new(move |o: &Value| {
                vec![
                    o["metadata"]["name"].clone(),
                    cell(o.pointer("/status/phase")),
                    cell(o.pointer("/spec/volumeName")),
                    cell(o.pointer("/status/capacity/storage")),
                    json!(age(o.pointer("/metadata/creationTimestamp"), &c2)),
                ]
            }),
        ),
        ("", "namespaces") => (
            vec![
                col("Name", "string", "name", 0),
                col("Status", "string", "", 0),
                col("Age", "string", "", 0),
            ],
            Box::new(move |o: &Value| {
                vec![
                    o["metadata"]["name"].clone(),
                    cell(o.pointer("/status/phase")),
                    json!(age(o.pointer("/metadata/creationTimestamp"), &c2)),
                ]
            }),
        ),
        _ => (
            vec![
                col("Name", "string", "name", 0),
                col("Age", "string", "", 0),
            ],
            Box::new(move |o: &Value| {
                vec![
                    o["metadata"]["name"].clone(),
                    json!(age(o.pointer("/metadata/creationTimestamp"), &c2)),
                ]
            }),
        ),
    }
}

/// Render objects as a Table.
pub fn table(
    res: &ResourceInfo,
    version: &str,
    items: &[Value],
    rv: Option<u64>,
    cont: Option<&str>,
    clock: &SimClock,
) -> Value {
    let (defs, row) = columns_for(res, version, clock.clone());
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            json!({"cells": row(o), "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))}})
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv.to_string());
    }
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(3600 * 5 + 60 * 3), "5h3m");
        assert_eq!(human_duration(86_400 * 3 + 3600 * 2), "3d2h");
        assert_eq!(human_duration(86_400 * 400), "400d");
    }
}
