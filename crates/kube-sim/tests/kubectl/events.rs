//! Events are one store behind both APIs: an `events.k8s.io/v1` Event (what backup-ns writes) is listed by
//! `kubectl get events` (core/v1), a core Event is seen through `events.k8s.io/v1` (get, list, watch, patch),
//! and field selectors of the view select the stored fields.

use super::{Follower, Kubectl, sim};

const NEW_STYLE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: data.backup, namespace: app}
eventTime: "2025-01-01T00:15:00.000000Z"
reportingController: backup-ns.sh/backup-ns
reportingInstance: backup-1-abc
action: Backup
reason: BackupSucceeded
type: Normal
note: snapshot data-20250101 is ready
regarding: {apiVersion: v1, kind: PersistentVolumeClaim, name: data, namespace: app}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_written_through_either_api_is_listed_by_both() {
    let sim = sim().await;
    let k = Kubectl::new(&sim);
    let out = k.run_stdin(&["apply", "-f", "-"], Some(NEW_STYLE)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let table = k.ok(&["get", "events", "-n", "app"]).await;
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.contains("LAST SEEN") && header.contains("OBJECT") && header.contains("MESSAGE"),
        "{table}"
    );
    assert!(
        table.contains("BackupSucceeded")
            && table.contains("persistentvolumeclaim/data")
            && table.contains("snapshot data-20250101 is ready"),
        "{table}"
    );
    let core = k.json(&["get", "events", "-n", "app", "data.backup"]).await;
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["name"], "data");
    assert_eq!(core["message"], "snapshot data-20250101 is ready");
    assert_eq!(core["reportingComponent"], "backup-ns.sh/backup-ns");

    // A core Event shows through the view, in a watch too.
    let mut watch = Follower::start(
        &k,
        &[
            "get",
            "events.v1.events.k8s.io",
            "-n",
            "app",
            "--watch-only",
            "-o",
            "jsonpath={.note}{\"\\n\"}",
        ],
    );
    let old_style = r#"
apiVersion: v1
kind: Event
metadata: {name: data.old, namespace: app}
involvedObject: {apiVersion: v1, kind: PersistentVolumeClaim, name: data, namespace: app}
reason: Resized
type: Normal
message: grown to 2Gi
source: {component: resizer}
"#;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let out = k.run_stdin(&["apply", "-f", "-"], Some(old_style)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(watch.next().await.as_deref(), Some("grown to 2Gi"));

    let view = k
        .json(&[
            "get",
            "events.v1.events.k8s.io",
            "-n",
            "app",
            "--field-selector",
            "regarding.name=data",
        ])
        .await;
    let items = view["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{view:#}");
    let old = items
        .iter()
        .find(|e| e["metadata"]["name"] == "data.old")
        .expect("the core event");
    assert_eq!(old["apiVersion"], "events.k8s.io/v1");
    assert_eq!(old["note"], "grown to 2Gi");
    assert_eq!(old["deprecatedSource"]["component"], "resizer");

    // A patch through the view changes the one stored Event.
    k.ok(&[
        "patch",
        "events.v1.events.k8s.io",
        "-n",
        "app",
        "data.old",
        "--type",
        "merge",
        "-p",
        r#"{"note":"grown to 3Gi"}"#,
    ])
    .await;
    let core = k.json(&["get", "events", "-n", "app", "data.old"]).await;
    assert_eq!(core["message"], "grown to 3Gi");
    assert!(core.get("note").is_none(), "{core:#}");
}
