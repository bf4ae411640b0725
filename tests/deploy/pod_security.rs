//! Every pod template that ships or renders (static manifests, kustomize bases and overlay, the Helm values
//! matrix) meets the Pod Security Standard "restricted", plus a read-only root filesystem. The one documented
//! exception is the node-level lock: the `host-backup-locks` hostPath volume and the `lock-permission-fixer` init
//! container that makes it writable (root, every capability dropped). Turning the lock off removes both.

use super::tools::{KUSTOMIZE_DIRS, MATRIX, STATIC_FILES, helm_template, kustomize};
use super::{docs, read};
use serde_json::Value;

const LOCK_VOLUME: &str = "host-backup-locks";
const LOCK_FIXER: &str = "lock-permission-fixer";

/// Volume types "restricted" allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// (object, pod spec) for every pod template in `docs`.
fn pod_specs(docs: &[Value]) -> Vec<(String, &Value)> {
    docs.iter()
        .filter_map(|d| {
            let pointer = match d["kind"].as_str()? {
                "CronJob" => "/spec/jobTemplate/spec/template/spec",
                "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" => {
                    "/spec/template/spec"
                }
                "Pod" => "/spec",
                _ => return None,
            };
            let name = format!("{}/{}", d["kind"], d["metadata"]["name"]);
            Some((name, d.pointer(pointer).expect("pod template has a spec")))
        })
        .collect()
}

/// The violations of one pod spec; `lock_exception` reports whether the lock exception was used.
fn violations(pod: &Value) -> (Vec<String>, bool) {
    let mut v = Vec::new();
    let mut lock_exception = false;
    let psc = &pod["securityContext"];
    for vol in pod["volumes"].as_array().into_iter().flatten() {
        let name = vol["name"].as_str().unwrap_or_default();
        let kind = vol
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "name").cloned())
            .unwrap_or_default();
        if kind == "hostPath" && name == LOCK_VOLUME {
            lock_exception = true;
        } else if !RESTRICTED_VOLUMES.contains(&kind.as_str()) {
            v.push(format!("volume {name} is a {kind}"));
        }
    }
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[field] == true {
            v.push(format!("pod sets {field}"));
        }
    }
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod[*k].as_array().into_iter().flatten());
    let mut count = 0;
    for c in containers {
        count += 1;
        let name = c["name"].as_str().unwrap_or_default();
        let sc = &c["securityContext"];
        let fixer = name == LOCK_FIXER;
        if fixer {
            // The exception exists only together with the lock volume it serves.
            if !lock_exception {
                v.push(format!("{name} without the {LOCK_VOLUME} hostPath volume"));
            }
        } else {
            let non_root = sc["runAsNonRoot"] == true
                || (psc["runAsNonRoot"] == true && sc["runAsNonRoot"] != false);
            if !non_root {
                v.push(format!("{name}: runAsNonRoot is not true"));
            }
            if sc["runAsUser"] == 0 || (psc["runAsUser"] == 0 && sc["runAsUser"].is_null()) {
                v.push(format!("{name}: runs as uid 0"));
            }
        }
        let seccomp = if sc["seccompProfile"]["type"].is_null() {
            &psc["seccompProfile"]["type"]
        } else {
            &sc["seccompProfile"]["type"]
        };
        if seccomp != "RuntimeDefault" && seccomp != "Localhost" {
            v.push(format!(
                "{name}: seccompProfile is {seccomp}, not RuntimeDefault"
            ));
        }
        if sc["allowPrivilegeEscalation"] != false {
            v.push(format!("{name}: allowPrivilegeEscalation is not false"));
        }
        if sc["privileged"] == true {
            v.push(format!("{name}: privileged"));
        }
        if sc["readOnlyRootFilesystem"] != true {
            v.push(format!("{name}: readOnlyRootFilesystem is not true"));
        }
        let drops_all = sc["capabilities"]["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|c| c == "ALL"));
        if !drops_all {
            v.push(format!("{name}: capabilities do not drop ALL"));
        }
        let adds: Vec<&Value> = sc["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| *c != "NET_BIND_SERVICE")
            .collect();
        if !adds.is_empty() {
            v.push(format!("{name}: adds capabilities {adds:?}"));
        }
        for port in c["ports"].as_array().into_iter().flatten() {
            if !port["hostPort"].is_null() {
                v.push(format!("{name}: hostPort"));
            }
        }
    }
    if count == 0 {
        v.push("no containers".to_owned());
    }
    (v, lock_exception)
}

/// Checks every pod template of a render; returns how many used the lock exception and how many were checked.
fn check(source: &str, docs: &[Value]) -> (usize, usize) {
    let pods = pod_specs(docs);
    let mut with_lock = 0;
    for (name, spec) in &pods {
        let (v, lock) = violations(spec);
        assert!(
            v.is_empty(),
            "{source}: {name} breaks Pod Security \"restricted\": {v:#?}"
        );
        with_lock += usize::from(lock);
    }
    (with_lock, pods.len())
}

#[test]
fn every_shipped_and_rendered_pod_template_is_restricted_except_the_documented_lock() {
    let mut checked = 0;
    for file in STATIC_FILES {
        checked += check(file, &docs(&read(file))).1;
    }
    for dir in KUSTOMIZE_DIRS {
        checked += check(dir, &kustomize(dir)).1;
    }
    for values in MATRIX {
        let (with_lock, pods) = check(
            values.name,
            &helm_template("backup-ns", "my-app", values.args),
        );
        checked += pods;
        if values.name == "lock off" {
            assert_eq!(with_lock, 0, "lock off still renders the hostPath lock");
        }
    }
    // static: tenant CronJob + controller CronJob + exporter; kustomize the same + overlay; helm matrix.
    assert!(checked >= 15, "only {checked} pod templates were checked");
}

#[test]
fn the_check_catches_what_restricted_forbids() {
    // A mutant for every rule: the shipped tenant pod with one field changed must fail.
    let tenant = docs(&read("deploy/static/backup-ns.yaml"));
    let pod = pod_specs(&tenant)[0].1.clone();
    assert!(violations(&pod).0.is_empty());
    assert!(
        violations(&pod).1,
        "the static tenant pod uses the lock exception"
    );
    let mutants: &[(&str, Value)] = &[
        ("/securityContext/runAsNonRoot", Value::Bool(false)),
        ("/securityContext/seccompProfile/type", "Unconfined".into()),
        (
            "/containers/0/securityContext/allowPrivilegeEscalation",
            Value::Bool(true),
        ),
        (
            "/containers/0/securityContext/readOnlyRootFilesystem",
            Value::Bool(false),
        ),
        (
            "/containers/0/securityContext/capabilities/drop",
            serde_json::json!([]),
        ),
        ("/volumes/1/name", "other-host-dir".into()),
    ];
    for (pointer, value) in mutants {
        let mut m = pod.clone();
        *m.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer} exists in the shipped pod")) = value.clone();
        assert!(
            !violations(&m).0.is_empty(),
            "setting {pointer} to {value} was not caught"
        );
    }
}
