//! DeleteOptions preconditions through the real kubectl: `kubectl delete --raw PATH -f options.json` sends the
//! file as the DELETE body, as a client library does. A stale uid or resourceVersion is 409 Conflict and the
//! object stays; matching ones delete it.

use super::{Kubectl, sim, vs_yaml};

const NS: &str = "shop";

fn options_file(dir: &std::path::Path, name: &str, uid: &str, rv: &str) -> String {
    let path = dir.join(name);
    let body = serde_json::json!({
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "preconditions": {"uid": uid, "resourceVersion": rv},
    });
    std::fs::write(&path, body.to_string()).expect("write DeleteOptions");
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_raw_deletes_honour_uid_and_resource_version_preconditions_like_the_apiserver() {
    let sim = sim().await;
    let k = Kubectl::new(&sim);
    let dir = tempfile::tempdir().expect("temp dir");
    sim.apply_yaml(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n---\n{}",
        vs_yaml(NS, "snap", "data", &[("backup-ns.sh/retain", "daily")])
    ))
    .expect("seed");
    let seen = k.json(&["get", "volumesnapshot", "snap", "-n", NS]).await;
    let uid = seen["metadata"]["uid"].as_str().expect("uid").to_string();
    let rv = seen["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();
    let path = format!("/apis/snapshot.storage.k8s.io/v1/namespaces/{NS}/volumesnapshots/snap");

    // Someone pins the snapshot after it was read: its resourceVersion moves on.
    k.ok(&[
        "label",
        "volumesnapshot",
        "snap",
        "-n",
        NS,
        "backup-ns.sh/retain-",
    ])
    .await;
    let current =
        k.json(&["get", "volumesnapshot", "snap", "-n", NS]).await["metadata"]["resourceVersion"]
            .as_str()
            .expect("resourceVersion")
            .to_string();

    let stale = options_file(dir.path(), "stale-rv.json", &uid, &rv);
    let out = k.run(&["delete", "--raw", &path, "-f", &stale]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a stale resourceVersion must not delete"
    );
    assert!(
        stderr.contains(&format!(
            "Operation cannot be fulfilled on VolumeSnapshot.snapshot.storage.k8s.io \"snap\": the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({current}). The object might have been modified"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("Conflict") || stderr.contains("409"),
        "{stderr}"
    );

    let foreign = options_file(dir.path(), "foreign-uid.json", "not-this-one", &current);
    let out = k.run(&["delete", "--raw", &path, "-f", &foreign]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "another object's uid must not delete"
    );
    assert!(
        stderr.contains(&format!(
            "the UID in the precondition (not-this-one) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
        )),
        "{stderr}"
    );
    k.ok(&["get", "volumesnapshot", "snap", "-n", NS]).await;
    assert_eq!(
        sim.requests().count("delete", "volumesnapshots"),
        2,
        "both refusals were DELETE requests: {:?}",
        sim.requests().snapshot()
    );

    let fresh = options_file(dir.path(), "fresh.json", &uid, &current);
    // Removed at once (no finalizer), a custom resource is answered with a Success Status naming it.
    let deleted: serde_json::Value =
        serde_json::from_str(&k.ok(&["delete", "--raw", &path, "-f", &fresh]).await)
            .expect("the delete's Status as JSON");
    assert_eq!(deleted["status"], "Success", "{deleted}");
    assert_eq!(deleted["details"]["uid"], uid.as_str(), "{deleted}");
    assert_eq!(deleted["details"]["kind"], "volumesnapshots", "{deleted}");
    let out = k.run(&["get", "volumesnapshot", "snap", "-n", NS]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "matching preconditions delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
