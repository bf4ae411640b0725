//! The steps the conformance suite runs on both sides, in order, in the namespace `conformance`: the request
//! shapes of the product's test suite (tests/real_cluster/conformance/request_shapes.txt), the kubectl fidelity
//! cases of kube-sim's own tests (crates/kube-sim/tests/kubectl), and the controllers' behaviour (the snapshot
//! controller's finalizers and what they hold up, a claim restoring from a snapshot, Events across both APIs).
//! A later step names an earlier answer's field as `{at:STEP:/json/pointer}`; each side fills in its own.

use serde_json::{Value, json};
use std::time::Duration;

pub const NS: &str = "conformance";

/// What an Await step wants when any value will do.
pub const PRESENT: &str = "<present>";

/// One step of the suite.
pub enum Step {
    /// One request, compared; its answer is kept under its name.
    Send {
        name: String,
        method: &'static str,
        path: String,
        media: Option<&'static str>,
        body: Option<String>,
    },
    /// Polls a GET until the field at `pointer` equals `want` (`Value::Null`: until the object is gone). Compared:
    /// whether it got there, and the object as it was last seen.
    Await {
        name: String,
        path: String,
        pointer: &'static str,
        want: Value,
    },
    /// kubectl as cluster-admin, compared by exit code and stdout.
    Kubectl {
        name: String,
        args: Vec<String>,
        stdin: String,
    },
    /// Lets the controllers work before a step that checks that something has not happened.
    Pause(Duration),
}

impl Step {
    pub fn name(&self) -> &str {
        match self {
            Step::Send { name, .. } | Step::Await { name, .. } | Step::Kubectl { name, .. } => name,
            Step::Pause(_) => "pause",
        }
    }
}

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const SNAPS: &str = "/apis/snapshot.storage.k8s.io/v1/namespaces/conformance/volumesnapshots";
const CONTENTS: &str = "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents";
const GROUPS: &str =
    "/apis/groupsnapshot.storage.k8s.io/v1/namespaces/conformance/volumegroupsnapshots";
const CORE: &str = "/api/v1/namespaces/conformance";

fn send(name: &str, method: &'static str, path: &str, body: Option<Value>) -> Step {
    let media = body.as_ref().map(|_| match method {
        "PATCH" => MERGE,
        _ => JSON,
    });
    Step::Send {
        name: name.to_string(),
        method,
        path: path.to_string(),
        media,
        body: body.map(|b| b.to_string()),
    }
}

fn get(name: &str, path: &str) -> Step {
    send(name, "GET", path, None)
}

fn json_patch(name: &str, path: &str, ops: Value) -> Step {
    patch_as(name, path, JSON_PATCH, ops)
}

fn patch_as(name: &str, path: &str, media: &'static str, body: Value) -> Step {
    Step::Send {
        name: name.to_string(),
        method: "PATCH",
        path: path.to_string(),
        media: Some(media),
        body: Some(body.to_string()),
    }
}

/// A DELETE as the product sends it: DeleteOptions in the body, with `extra` fields.
fn delete(name: &str, path: &str, extra: Value) -> Step {
    let mut options = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
    if let (Some(o), Value::Object(e)) = (options.as_object_mut(), extra) {
        o.extend(e);
    }
    send(name, "DELETE", path, Some(options))
}

fn await_field(name: &str, path: &str, pointer: &'static str, want: Value) -> Step {
    Step::Await {
        name: name.to_string(),
        path: path.to_string(),
        pointer,
        want,
    }
}

fn await_gone(name: &str, path: &str) -> Step {
    await_field(name, path, "", Value::Null)
}

fn kubectl(name: &str, args: &[&str]) -> Step {
    Step::Kubectl {
        name: name.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        stdin: String::new(),
    }
}

fn kubectl_stdin(name: &str, args: &[&str], stdin: &str) -> Step {
    Step::Kubectl {
        name: name.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        stdin: stdin.to_string(),
    }
}

fn claim(name: &str, labels: Value, source: Option<&str>, class: Option<&str>) -> Value {
    let mut spec =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
    if let Some(snap) = source {
        spec["dataSource"] =
            json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snap});
    }
    if let Some(c) = class {
        spec["storageClassName"] = json!(c);
    }
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": name, "namespace": NS, "labels": labels}, "spec": spec})
}

fn snapshot(name: &str, pvc: &str, labels: Value) -> Value {
    json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
           "metadata": {"name": name, "namespace": NS, "labels": labels,
                        "annotations": {"backup-ns.sh/retention": "daily"}},
           "spec": {"volumeSnapshotClassName": "csi-hostpath-snapclass",
                    "source": {"persistentVolumeClaimName": pvc}}})
}

/// A pod of an image neither side runs: it is scheduled and Running, with no process.
fn idle_pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": NS, "labels": {"app": "idle"}},
           "spec": {"containers": [{"name": "main", "image": "conformance.invalid/idle:1"}],
                    "terminationGracePeriodSeconds": 0}})
}

/// Every step, in order.
pub fn steps() -> Vec<Step> {
    let mut s = Vec::new();
    namespace_and_claims(&mut s);
    snapshots(&mut s);
    labels_and_preconditions(&mut s);
    restore_holds_the_snapshot(&mut s);
    group_snapshots(&mut s);
    events(&mut s);
    workloads(&mut s);
    pod_logs(&mut s);
    applied_objects(&mut s);
    static_contents(&mut s);
    pages_and_watches(&mut s);
    kubectl_fidelity(&mut s);
    s
}

/// What kubectl apply and Helm send for each kind of the shipped manifests: a server-side dry run, a create with
/// strict field validation, a create again (AlreadyExists), a get, a strategic-merge patch, a delete.
fn crud(
    s: &mut Vec<Step>,
    collection: &str,
    name: &str,
    object: Value,
    patchable: bool,
    deletable: bool,
) {
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let one = format!("{collection}/{name}");
    s.extend([
        send(
            &format!("{kind}: a dry-run create"),
            "POST",
            &format!("{collection}?dryRun=All&fieldManager=kubectl-client-side-apply&fieldValidation=Strict"),
            Some(object.clone()),
        ),
        get(&format!("{kind}: nothing after the dry run"), &one),
        send(
            &format!("{kind}: a create with strict validation"),
            "POST",
            &format!("{collection}?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"),
            Some(object.clone()),
        ),
        send(
            &format!("{kind}: a create again"),
            "POST",
            &format!("{collection}?fieldManager=helm"),
            Some(object.clone()),
        ),
        get(&format!("{kind}: get"), &one),
    ]);
    let mut unknown = object;
    unknown["spec"]["conformanceUnknownField"] = json!(1);
    unknown["metadata"]["name"] = json!(format!("{name}-unknown"));
    s.push(send(
        &format!("{kind}: an unknown field under strict validation"),
        "POST",
        &format!("{collection}?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"),
        Some(unknown),
    ));
    if patchable {
        s.push(patch_as(
            &format!("{kind}: a strategic-merge patch"),
            &format!("{one}?fieldManager=kubectl-client-side-apply"),
            "application/strategic-merge-patch+json",
            json!({"metadata": {"labels": {"conformance": "patched"}}}),
        ));
    }
    if deletable {
        s.push(delete(
            &format!("{kind}: delete"),
            &one,
            json!({"propagationPolicy": "Background"}),
        ));
    }
}

fn applied_objects(s: &mut Vec<Step>) {
    let apps = "/apis/apps/v1/namespaces/conformance";
    let batch = "/apis/batch/v1/namespaces/conformance";
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    let container = json!([{"name": "main", "image": "conformance.invalid/idle:1"}]);
    let rules = json!([{"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots"], "verbs": ["get", "list"]}]);
    let subjects = json!([{"kind": "ServiceAccount", "name": "sa", "namespace": NS}]);
    let role_ref = |kind: &str, name: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name});
    // (collection, name, object, strategic-merge patched, deleted)
    let objects = [
        (
            format!("{CORE}/configmaps"),
            "cm",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}),
            true,
            true,
        ),
        (
            format!("{CORE}/serviceaccounts"),
            "sa",
            json!({"apiVersion": "v1", "kind": "ServiceAccount"}),
            false,
            true,
        ),
        (
            format!("{CORE}/services"),
            "svc",
            json!({"apiVersion": "v1", "kind": "Service", "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
            false,
            false,
        ),
        (
            format!("{apps}/deployments"),
            "web",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": container}}}}),
            false,
            false,
        ),
        (
            format!("{batch}/cronjobs"),
            "nightly",
            json!({"apiVersion": "batch/v1", "kind": "CronJob",
                   "spec": {"schedule": "0 3 * * *", "suspend": true, "jobTemplate": {"spec": {"template": {"spec": {
                            "restartPolicy": "Never", "containers": container}}}}}}),
            true,
            true,
        ),
        (
            format!("{rbac}/namespaces/conformance/roles"),
            "reader",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "rules": rules}),
            false,
            true,
        ),
        (
            format!("{rbac}/namespaces/conformance/rolebindings"),
            "reader",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "roleRef": role_ref("Role", "reader"), "subjects": subjects}),
            false,
            true,
        ),
        (
            format!("{rbac}/clusterroles"),
            "conformance-reader",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "rules": rules}),
            false,
            false,
        ),
        (
            format!("{rbac}/clusterrolebindings"),
            "conformance-reader",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "roleRef": role_ref("ClusterRole", "conformance-reader"), "subjects": subjects}),
            false,
            true,
        ),
        (
            "/api/v1/namespaces".to_string(),
            "conformance-applied",
            json!({"apiVersion": "v1", "kind": "Namespace"}),
            false,
            false,
        ),
    ];
    for (collection, name, mut object, patchable, deletable) in objects {
        object["metadata"] = json!({"name": name});
        crud(s, &collection, name, object, patchable, deletable);
    }
    s.extend([
        delete("ClusterRole: delete", &format!("{rbac}/clusterroles/conformance-reader"), json!({})),
        patch_as(
            "Namespace: a dry-run strategic-merge patch",
            "/api/v1/namespaces/conformance-applied?dryRun=All&fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
            "application/strategic-merge-patch+json",
            json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}),
        ),
        get("Namespace: unlabelled after the dry run", "/api/v1/namespaces/conformance-applied"),
        delete("Namespace: delete", "/api/v1/namespaces/conformance-applied", json!({})),
        await_gone("Namespace: gone", "/api/v1/namespaces/conformance-applied"),
    ]);
}

/// A pre-provisioned content (what `rebind` and the tests' seeds create): create, replace, patch, delete.
fn static_contents(s: &mut Vec<Step>) {
    let content = |name: &str| {
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
               "metadata": {"name": name, "labels": {"conformance": "static"}},
               "spec": {"deletionPolicy": "Retain", "driver": "hostpath.csi.backup-ns.local",
                        "source": {"snapshotHandle": format!("{name}-handle")},
                        "volumeSnapshotRef": {"name": name, "namespace": NS}}})
    };
    let one = format!("{CONTENTS}/conformance-static");
    s.extend([
        send("create a static content", "POST", CONTENTS, Some(content("conformance-static"))),
        send(
            "create a static content with strict validation",
            "POST",
            &format!("{CONTENTS}?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"),
            Some(content("conformance-static-2")),
        ),
        get("get the static content", &one),
        json_patch(
            "json patch the static content",
            &one,
            json!([{"op": "add", "path": "/metadata/labels/backup-ns.sh~1pvc", "value": "data"}]),
        ),
        patch_as("merge patch the static content as kubectl", &format!("{one}?fieldManager=kubectl-patch"), MERGE,
                 json!({"metadata": {"labels": {"backup-ns.sh/daily": "1"}}})),
        get("get the static content to replace it", &one),
        Step::Send {
            name: "replace the static content".into(),
            method: "PUT",
            path: format!("{one}?fieldManager=kubectl-replace&fieldValidation=Strict"),
            media: Some(JSON),
            body: Some(r#"{"apiVersion":"snapshot.storage.k8s.io/v1","kind":"VolumeSnapshotContent","metadata":{"name":"conformance-static","resourceVersion":"{at:get the static content to replace it:/metadata/resourceVersion}","labels":{"conformance":"replaced"}},"spec":{"deletionPolicy":"Retain","driver":"hostpath.csi.backup-ns.local","source":{"snapshotHandle":"conformance-static-handle"},"volumeSnapshotRef":{"name":"conformance-static","namespace":"conformance"}}}"#.into()),
        },
        get("list static contents by label", &format!("{CONTENTS}?labelSelector=conformance%3Dreplaced&limit=10")),
        delete("delete the static content", &one, json!({})),
        delete("delete the second static content", &format!("{CONTENTS}/conformance-static-2"), json!({})),
        await_gone("the static content goes", &one),
    ]);
}

/// A pod that prints and exits (busybox runs the host's shell on both sides): its log, read and followed.
fn pod_logs(s: &mut Vec<Step>) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "printer", "namespace": NS},
                     "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                              "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo conformance"]}]}});
    s.extend([
        send(
            "create a printing pod",
            "POST",
            &format!("{CORE}/pods"),
            Some(pod),
        ),
        await_field(
            "the printing pod succeeds",
            &format!("{CORE}/pods/printer"),
            "/status/phase",
            json!("Succeeded"),
        ),
        get("read its log", &format!("{CORE}/pods/printer/log")),
        get(
            "follow its log",
            &format!("{CORE}/pods/printer/log?container=main&follow=true"),
        ),
        get(
            "read a missing container's log",
            &format!("{CORE}/pods/printer/log?container=missing"),
        ),
        delete(
            "delete the printing pod",
            &format!("{CORE}/pods/printer"),
            json!({"gracePeriodSeconds": 0}),
        ),
    ]);
}

/// Lists in pages and watches as kube-rs's lists and watchers send them.
fn pages_and_watches(s: &mut Vec<Step>) {
    let all_snaps = "/apis/snapshot.storage.k8s.io/v1/volumesnapshots";
    let groups_all = "/apis/groupsnapshot.storage.k8s.io/v1/volumegroupsnapshotcontents";
    let watch = "watch=true&allowWatchBookmarks=true&timeoutSeconds=1";
    s.extend([
        send("seed a snapshot for the pages", "POST", SNAPS, Some(snapshot("page-1", "data", json!({"page": "1"})))),
        send("seed another snapshot for the pages", "POST", SNAPS, Some(snapshot("page-2", "data", json!({"page": "1"})))),
        await_field("a page snapshot becomes ready", &format!("{SNAPS}/page-1"), "/status/readyToUse", json!(true)),
        await_field("another page snapshot becomes ready", &format!("{SNAPS}/page-2"), "/status/readyToUse", json!(true)),
        get("list snapshots, one a page", &format!("{SNAPS}?limit=1")),
        get("list the next page", &format!("{SNAPS}?limit=1&continue={{at:list snapshots, one a page:/metadata/continue}}")),
        get("list snapshots with a timeout", &format!("{SNAPS}?limit=500&timeout=10s")),
        get("list snapshots by name", &format!("{SNAPS}?fieldSelector=metadata.name%3Dpage-1&limit=500")),
        get("list all snapshots, one a page", &format!("{all_snaps}?limit=1")),
        get("list all snapshots, the next page", &format!("{all_snaps}?limit=1&continue={{at:list all snapshots, one a page:/metadata/continue}}")),
        get("list all snapshots", &format!("{all_snaps}?limit=500")),
        get("list contents", CONTENTS),
        get("list contents, one a page", &format!("{CONTENTS}?limit=1")),
        get("list contents, the next page", &format!("{CONTENTS}?limit=1&continue={{at:list contents, one a page:/metadata/continue}}")),
        get("list snapshot classes, paged", "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses?limit=500"),
        get("list claims, paged", &format!("{CORE}/persistentvolumeclaims?limit=500")),
        get("list claims by label, paged", &format!("{CORE}/persistentvolumeclaims?labelSelector=app%3Dcdb&limit=500")),
        get("list claims by name", &format!("{CORE}/persistentvolumeclaims?fieldSelector=metadata.name%3Ddata&limit=500")),
        get("list pods by label, paged", &format!("{CORE}/pods?labelSelector=app%3Didle&limit=500")),
        get("list pods by name", &format!("{CORE}/pods?fieldSelector=metadata.name%3Dprinter&limit=500")),
        get("list jobs, paged", "/apis/batch/v1/namespaces/conformance/jobs?limit=500"),
        get("list jobs by name", "/apis/batch/v1/namespaces/conformance/jobs?fieldSelector=metadata.name%3Didle-job&limit=500"),
        get("list group snapshots by name", &format!("{GROUPS}?fieldSelector=metadata.name%3Dgroup-a&limit=500")),
        get("get a missing group snapshot content", &format!("{groups_all}/missing")),
        get("list events, paged", "/apis/events.k8s.io/v1/namespaces/conformance/events?limit=500"),
        get("list for the watches", SNAPS),
        get("watch snapshots", &format!("{SNAPS}?{watch}&resourceVersion={{at:list for the watches:/metadata/resourceVersion}}")),
        get("watch one snapshot", &format!("{SNAPS}?{watch}&fieldSelector=metadata.name%3Dpage-1&resourceVersion={{at:list for the watches:/metadata/resourceVersion}}")),
        get("watch all snapshots", &format!("{all_snaps}?{watch}&resourceVersion={{at:list for the watches:/metadata/resourceVersion}}")),
        get("watch one claim", &format!("{CORE}/persistentvolumeclaims?{watch}&fieldSelector=metadata.name%3Ddata&resourceVersion={{at:list for the watches:/metadata/resourceVersion}}")),
        get("watch one pod", &format!("{CORE}/pods?{watch}&fieldSelector=metadata.name%3Dmissing&resourceVersion={{at:list for the watches:/metadata/resourceVersion}}")),
        get("watch one job", &format!("/apis/batch/v1/namespaces/conformance/jobs?{watch}&fieldSelector=metadata.name%3Dmissing&resourceVersion={{at:list for the watches:/metadata/resourceVersion}}")),
        get("watch one group snapshot", &format!("{GROUPS}?{watch}&fieldSelector=metadata.name%3Dmissing&resourceVersion={{at:list for the watches:/metadata/resourceVersion}}")),
        delete("delete a page snapshot", &format!("{SNAPS}/page-1"), json!({})),
        delete("delete another page snapshot", &format!("{SNAPS}/page-2"), json!({})),
    ]);
}

fn namespace_and_claims(s: &mut Vec<Step>) {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    s.extend([
        send("create namespace", "POST", "/api/v1/namespaces", Some(ns.clone())),
        send("create namespace again", "POST", "/api/v1/namespaces", Some(ns)),
        get("get namespace", "/api/v1/namespaces/conformance"),
        get("get missing namespace", "/api/v1/namespaces/conformance-missing"),
        get("get snapshot class", "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses/csi-hostpath-snapclass"),
        get("list snapshot classes", "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses"),
        send(
            "create claim",
            "POST",
            &format!("{CORE}/persistentvolumeclaims"),
            Some(claim("data", json!({"app": "cdb"}), None, None)),
        ),
        send(
            "create claim with a bad size",
            "POST",
            &format!("{CORE}/persistentvolumeclaims"),
            Some(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "bad"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "lots"}}}})),
        ),
        await_field("claim binds", &format!("{CORE}/persistentvolumeclaims/data"), "/status/phase", json!("Bound")),
        get("get claim", &format!("{CORE}/persistentvolumeclaims/data")),
        get("get missing claim", &format!("{CORE}/persistentvolumeclaims/missing")),
        get("list claims", &format!("{CORE}/persistentvolumeclaims")),
        get("list claims by label", &format!("{CORE}/persistentvolumeclaims?labelSelector=app%3Dcdb")),
        get("get the claim's volume", "/api/v1/persistentvolumes/{at:get claim:/spec/volumeName}"),
        send(
            "label claim",
            "PATCH",
            &format!("{CORE}/persistentvolumeclaims/data"),
            Some(json!({"metadata": {"labels": {"backup-ns.sh/verify": "conformance"}}})),
        ),
    ]);
}

fn snapshots(s: &mut Vec<Step>) {
    s.extend([
        send(
            "create snapshot",
            "POST",
            SNAPS,
            Some(snapshot("snap-a", "data", json!({"app": "cdb", "backup-ns.sh/daily": "1"}))),
        ),
        send("create snapshot again", "POST", SNAPS, Some(snapshot("snap-a", "data", json!({})))),
        send(
            "create snapshot without a source",
            "POST",
            SNAPS,
            Some(json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                        "metadata": {"name": "no-source"}, "spec": {"source": {}}})),
        ),
        send(
            "create snapshot of a missing claim",
            "POST",
            SNAPS,
            Some(snapshot("snap-missing", "missing", json!({"app": "cdb"}))),
        ),
        await_field(
            "the snapshot of a missing claim gets an error",
            &format!("{SNAPS}/snap-missing"),
            "/status/error/message",
            json!(PRESENT),
        ),
        await_field("snapshot becomes ready", &format!("{SNAPS}/snap-a"), "/status/readyToUse", json!(true)),
        get("get ready snapshot", &format!("{SNAPS}/snap-a")),
        get(
            "get its content",
            &format!("{CONTENTS}/{{at:get ready snapshot:/status/boundVolumeSnapshotContentName}}"),
        ),
        get("get missing snapshot", &format!("{SNAPS}/missing")),
        get("get missing content", &format!("{CONTENTS}/snapcontent-missing")),
        get("list snapshots", SNAPS),
        get("list snapshots by label, one a page", &format!("{SNAPS}?labelSelector=app%3Dcdb&limit=1")),
        get(
            "list snapshots by a set selector",
            &format!("{SNAPS}?labelSelector=app%20in%20%28cdb%2Cweb%29%2C%21backup-ns.sh%2Fweekly"),
        ),
        get("list snapshots with a bad selector", &format!("{SNAPS}?labelSelector=app%3D%3D%3D")),
        get(
            "list snapshots in all namespaces",
            "/apis/snapshot.storage.k8s.io/v1/volumesnapshots?labelSelector=app%3Dcdb&limit=500",
        ),
        get(
            "list contents of the snapshot's name",
            &format!("{CONTENTS}?fieldSelector=metadata.name%3D{{at:get ready snapshot:/status/boundVolumeSnapshotContentName}}"),
        ),
        // The snapshot controller retries it (and writes it) with backoff: gone before the watches.
        delete("delete the snapshot of a missing claim", &format!("{SNAPS}/snap-missing"), json!({})),
        await_gone("the snapshot of a missing claim goes", &format!("{SNAPS}/snap-missing")),
        get("list snapshots for a watch", SNAPS),
        get(
            "watch snapshots from a list",
            &format!("{SNAPS}?watch=true&timeoutSeconds=1&resourceVersion={{at:list snapshots for a watch:/metadata/resourceVersion}}"),
        ),
        get(
            "watch one snapshot from the start",
            &format!("{SNAPS}?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dsnap-a"),
        ),
    ]);
}

fn labels_and_preconditions(s: &mut Vec<Step>) {
    let snap = format!("{SNAPS}/snap-a");
    s.extend([
        json_patch(
            "guarded label patch",
            &snap,
            json!([{"op": "test", "path": "/metadata/labels/app", "value": "cdb"},
                   {"op": "add", "path": "/metadata/labels/backup-ns.sh~1weekly", "value": "1"}]),
        ),
        json_patch(
            "label patch whose guard fails",
            &snap,
            json!([{"op": "test", "path": "/metadata/labels/app", "value": "web"},
                   {"op": "remove", "path": "/metadata/labels/app"}]),
        ),
        json_patch(
            "label patch guarded by resourceVersion",
            &snap,
            json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
                   {"op": "remove", "path": "/metadata/labels/app"}]),
        ),
        json_patch(
            "remove a label that is not there",
            &snap,
            json!([{"op": "remove", "path": "/metadata/labels/absent"}]),
        ),
        send(
            "merge patch an annotation",
            "PATCH",
            &snap,
            Some(json!({"metadata": {"annotations": {"backup-ns.sh/retention": "weekly"}}})),
        ),
        send(
            "merge patch the content's labels",
            "PATCH",
            &format!("{CONTENTS}/{{at:get ready snapshot:/status/boundVolumeSnapshotContentName}}"),
            Some(json!({"metadata": {"labels": {"backup-ns.sh/daily": "1"}}})),
        ),
        send(
            "update with a stale resourceVersion",
            "PUT",
            &snap,
            Some(json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                        "metadata": {"name": "snap-a", "namespace": NS, "resourceVersion": "1"},
                        "spec": {"source": {"persistentVolumeClaimName": "data"}}})),
        ),
        send(
            "delete with another uid",
            "DELETE",
            &snap,
            Some(json!({"kind": "DeleteOptions", "apiVersion": "v1",
                        "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})),
        ),
        send(
            "delete with a stale resourceVersion",
            "DELETE",
            &snap,
            Some(json!({"kind": "DeleteOptions", "apiVersion": "v1",
                        "preconditions": {"uid": "{at:get ready snapshot:/metadata/uid}", "resourceVersion": "1"}})),
        ),
        delete("delete a missing snapshot", &format!("{SNAPS}/missing"), json!({})),
        get("get snapshot after the patches", &snap),
    ]);
}

/// A claim restoring from a snapshot holds it: the snapshot controller keeps its as-source finalizer while a
/// Pending claim names it, so a delete leaves it Terminating until the claim is gone. The claim's class does not
/// exist, so its restore never finishes by itself.
fn restore_holds_the_snapshot(s: &mut Vec<Step>) {
    let snap = format!("{SNAPS}/snap-a");
    s.extend([
        send(
            "create a restoring claim",
            "POST",
            &format!("{CORE}/persistentvolumeclaims"),
            Some(claim("restoring", json!({}), Some("snap-a"), Some("conformance-held"))),
        ),
        Step::Pause(Duration::from_secs(2)),
        get("get the snapshot being restored", &snap),
        send(
            "delete the snapshot being restored",
            "DELETE",
            &snap,
            Some(json!({"kind": "DeleteOptions", "apiVersion": "v1",
                        "preconditions": {"uid": "{at:get the snapshot being restored:/metadata/uid}",
                                          "resourceVersion": "{at:get the snapshot being restored:/metadata/resourceVersion}"}})),
        ),
        Step::Pause(Duration::from_secs(2)),
        get("get the snapshot while its restore is pending", &snap),
        get("get the restoring claim", &format!("{CORE}/persistentvolumeclaims/restoring")),
        delete("delete the restoring claim", &format!("{CORE}/persistentvolumeclaims/restoring"), json!({})),
        await_gone("the snapshot goes after the claim", &snap),
        get(
            "get the retained content",
            &format!("{CONTENTS}/{{at:get ready snapshot:/status/boundVolumeSnapshotContentName}}"),
        ),
        delete(
            "delete the retained content",
            &format!("{CONTENTS}/{{at:get ready snapshot:/status/boundVolumeSnapshotContentName}}"),
            json!({}),
        ),
        await_gone(
            "the content goes",
            &format!("{CONTENTS}/{{at:get ready snapshot:/status/boundVolumeSnapshotContentName}}"),
        ),
    ]);
}

fn group_snapshots(s: &mut Vec<Step>) {
    let labels = json!({"backup-ns.sh/group": "g"});
    s.extend([
        send("create group claim a", "POST", &format!("{CORE}/persistentvolumeclaims"), Some(claim("ga", labels.clone(), None, None))),
        send("create group claim b", "POST", &format!("{CORE}/persistentvolumeclaims"), Some(claim("gb", labels, None, None))),
        await_field("group claim a binds", &format!("{CORE}/persistentvolumeclaims/ga"), "/status/phase", json!("Bound")),
        await_field("group claim b binds", &format!("{CORE}/persistentvolumeclaims/gb"), "/status/phase", json!("Bound")),
        send(
            "create group snapshot",
            "POST",
            GROUPS,
            Some(json!({"apiVersion": "groupsnapshot.storage.k8s.io/v1", "kind": "VolumeGroupSnapshot",
                        "metadata": {"name": "group-a", "namespace": NS},
                        "spec": {"volumeGroupSnapshotClassName": "csi-hostpath-groupsnapclass",
                                 "source": {"selector": {"matchLabels": {"backup-ns.sh/group": "g"}}}}})),
        ),
        await_field("group snapshot becomes ready", &format!("{GROUPS}/group-a"), "/status/readyToUse", json!(true)),
        get("get group snapshot", &format!("{GROUPS}/group-a")),
        get("get missing group snapshot", &format!("{GROUPS}/missing")),
        // Every member at once: a member ready while the other is not yet is a moment, not a difference.
        await_field("every member snapshot is ready", &format!("{SNAPS}?labelSelector=!app,!page"), "/items/*/status/readyToUse", json!(true)),
        get("list the group's member snapshots", &format!("{SNAPS}?labelSelector=!app,!page")),
        send(
            "delete group snapshot with another uid",
            "DELETE",
            &format!("{GROUPS}/group-a"),
            Some(json!({"kind": "DeleteOptions", "apiVersion": "v1",
                        "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})),
        ),
        send(
            "delete group snapshot",
            "DELETE",
            &format!("{GROUPS}/group-a"),
            Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background",
                        "preconditions": {"uid": "{at:get group snapshot:/metadata/uid}"}})),
        ),
        await_gone("the group snapshot goes", &format!("{GROUPS}/group-a")),
    ]);
}

/// An Event written through either API is one object, listed by both (the product writes events.k8s.io/v1;
/// `kubectl get events` reads core/v1). They regard an object no controller writes events about.
fn events(s: &mut Vec<Step>) {
    let events_v1 = "/apis/events.k8s.io/v1/namespaces/conformance/events";
    s.extend([
        send(
            "create an events.k8s.io/v1 Event",
            "POST",
            events_v1,
            Some(json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                        "metadata": {"name": "data.backup", "namespace": NS},
                        "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "SnapshotCreated", "type": "Normal",
                        "note": "snapshot snap-a of data", "action": "Snapshot",
                        "reportingController": "backup-ns.sh/backup-ns", "reportingInstance": "conformance",
                        "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "name": "events-target", "namespace": NS}})),
        ),
        send(
            "create a core/v1 Event",
            "POST",
            &format!("{CORE}/events"),
            Some(json!({"apiVersion": "v1", "kind": "Event",
                        "metadata": {"name": "data.core", "namespace": NS},
                        "reason": "Checked", "type": "Normal", "message": "checked by conformance",
                        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1,
                        "source": {"component": "conformance"},
                        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": "events-target", "namespace": NS}})),
        ),
        get("list events through events.k8s.io/v1", &format!("{events_v1}?fieldSelector=regarding.name%3Devents-target")),
        get("list events through core/v1", &format!("{CORE}/events?fieldSelector=involvedObject.name%3Devents-target")),
        get("get the events.k8s.io Event through core/v1", &format!("{CORE}/events/data.backup")),
    ]);
}

fn workloads(s: &mut Vec<Step>) {
    let job = json!({"apiVersion": "batch/v1", "kind": "Job",
                     "metadata": {"name": "idle-job", "namespace": NS},
                     "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                              "containers": [{"name": "main", "image": "conformance.invalid/idle:1"}]}}}});
    let jobs = "/apis/batch/v1/namespaces/conformance/jobs";
    s.extend([
        send("create pod", "POST", &format!("{CORE}/pods"), Some(idle_pod("idle"))),
        await_field("pod runs", &format!("{CORE}/pods/idle"), "/status/phase", json!("Running")),
        get("get pod", &format!("{CORE}/pods/idle")),
        get("list pods by label", &format!("{CORE}/pods?labelSelector=app%3Didle")),
        get("get missing pod", &format!("{CORE}/pods/missing")),
        get("get deployment", "/apis/apps/v1/namespaces/conformance/deployments/missing"),
        get("get statefulset", "/apis/apps/v1/namespaces/conformance/statefulsets/missing"),
        delete("delete pod at once", &format!("{CORE}/pods/idle"), json!({"gracePeriodSeconds": 0})),
        await_gone("the pod goes", &format!("{CORE}/pods/idle")),
        send("create job", "POST", jobs, Some(job)),
        await_field("job starts its pod", &format!("{jobs}/idle-job"), "/status/active", json!(1)),
        get("get job", &format!("{jobs}/idle-job")),
        // The Job is active once its pod exists; a busy node starts it later, so wait for Running on both sides.
        await_field(
            "the job's pod runs",
            &format!("{CORE}/pods?labelSelector=job-name%3Didle-job"),
            "/items/0/status/phase",
            json!("Running"),
        ),
        get("list the job's pods", &format!("{CORE}/pods?labelSelector=job-name%3Didle-job")),
        delete("delete job with its pods", &format!("{jobs}/idle-job"), json!({"propagationPolicy": "Background"})),
        await_gone("the job goes", &format!("{jobs}/idle-job")),
        send(
            "ask whether I may delete snapshots",
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            Some(json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                        "spec": {"resourceAttributes": {"namespace": NS, "verb": "delete",
                                 "group": "snapshot.storage.k8s.io", "resource": "volumesnapshots"}}})),
        ),
        send(
            "create a config map",
            "POST",
            &format!("{CORE}/configmaps"),
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plan"}, "data": {"plan.yaml": "name: x"}})),
        ),
        get("get the config map", &format!("{CORE}/configmaps/plan")),
        send(
            "create a secret",
            "POST",
            &format!("{CORE}/secrets"),
            Some(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "labels": {"owner": "conformance"}},
                        "stringData": {"password": "x"}})),
        ),
        get("get the secret", &format!("{CORE}/secrets/creds")),
        get("list secrets by label", &format!("{CORE}/secrets?labelSelector=owner%3Dconformance")),
        delete("delete the secret", &format!("{CORE}/secrets/creds"), json!({})),
    ]);
}

/// The kubectl fidelity cases of kube-sim's own tests (crates/kube-sim/tests/kubectl), on both sides.
fn kubectl_fidelity(s: &mut Vec<Step>) {
    let snap = |name: &str, labels: &str| {
        format!(
            "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: {name}\n  namespace: {NS}\n  labels: {{{labels}}}\nspec:\n  source: {{persistentVolumeClaimName: data}}\n"
        )
    };
    let two = format!(
        "{}---\n{}",
        snap("k-daily", "app: cdb, backup-ns.sh/daily: \"1\""),
        snap("k-weekly", "app: cdb, backup-ns.sh/weekly: \"1\"")
    );
    s.extend([
        kubectl_stdin("kubectl apply two snapshots", &["apply", "-f", "-"], &two),
        kubectl(
            "kubectl wait for ready",
            &["-n", NS, "wait", "--for=jsonpath={.status.readyToUse}=true", "volumesnapshot/k-daily", "volumesnapshot/k-weekly", "--timeout=60s"],
        ),
        kubectl("kubectl get by label", &["-n", NS, "get", "volumesnapshots", "-l", "app=cdb,backup-ns.sh/daily", "-o", "name"]),
        kubectl("kubectl get with a set selector", &["-n", NS, "get", "volumesnapshots", "-l", "app in (cdb),!backup-ns.sh/daily", "-o", "name"]),
        kubectl(
            "kubectl get label columns",
            &["-n", NS, "get", "volumesnapshots", "-l", "app=cdb", "-L", "backup-ns.sh/daily", "-o", "custom-columns=NAME:.metadata.name,READY:.status.readyToUse,DAILY:.metadata.labels.backup-ns\\.sh/daily"],
        ),
        kubectl("kubectl label", &["-n", NS, "label", "volumesnapshot", "k-daily", "backup-ns.sh/monthly=1"]),
        kubectl("kubectl label without overwrite", &["-n", NS, "label", "volumesnapshot", "k-daily", "backup-ns.sh/monthly=2"]),
        kubectl("kubectl remove a label", &["-n", NS, "label", "volumesnapshot", "k-daily", "backup-ns.sh/monthly-"]),
        kubectl(
            "kubectl json patch",
            &["-n", NS, "patch", "volumesnapshot", "k-weekly", "--type=json", "-p", r#"[{"op":"add","path":"/metadata/labels/x","value":"y"}]"#],
        ),
        kubectl(
            "kubectl json patch whose test fails",
            &["-n", NS, "patch", "volumesnapshot", "k-weekly", "--type=json", "-p", r#"[{"op":"test","path":"/metadata/labels/x","value":"z"}]"#],
        ),
        kubectl(
            "kubectl merge patch",
            &["-n", NS, "patch", "volumesnapshot", "k-weekly", "--type=merge", "-p", r#"{"metadata":{"labels":{"x":null}}}"#],
        ),
        kubectl("kubectl get a missing snapshot", &["-n", NS, "get", "volumesnapshot", "missing", "-o", "name"]),
        kubectl("kubectl auth can-i", &["-n", NS, "auth", "can-i", "delete", "volumesnapshots.snapshot.storage.k8s.io"]),
        kubectl_stdin(
            "kubectl raw delete with another uid",
            &["delete", "--raw", &format!("{SNAPS}/k-weekly"), "-f", "-"],
            r#"{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"00000000-0000-0000-0000-000000000000"}}"#,
        ),
        kubectl("kubectl delete", &["-n", NS, "delete", "volumesnapshot", "k-daily", "k-weekly", "--wait=true"]),
        kubectl("kubectl get events", &["-n", NS, "get", "events", "--field-selector", "involvedObject.name=events-target", "-o", "custom-columns=REASON:.reason,TYPE:.type", "--sort-by=.reason"]),
    ]);
}
