//! Pod-side resolution of one container (regular or init): the environment it would see (values with `$(VAR)`
//! expansion, `valueFrom` secret/configMap/field refs, `envFrom`), its volume mounts mapped to host directories
//! (PVC backing dirs, hostPath, and per-pod dirs for emptyDir and for the files the kubelet projects: configMap
//! and secret with `items`, downwardAPI, and `projected` sources including `serviceAccountToken`; subPath,
//! readOnly), its command, args and working dir, and whether the pod is running. The exec route and the kubelet
//! consume this.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use crate::pods::words;
use crate::state_dir::{empty_dir, pvc_dir};
use crate::status::ApiError;
use crate::store::Store;

/// One volume mount, mapped to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Path inside the container (`/var/lib/postgresql/data`).
    pub container_path: PathBuf,
    /// Directory (or file, for subPath on a file) on the host that backs it.
    pub host_path: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
    /// Volume name in the pod spec.
    pub volume: String,
}

/// Everything exec needs about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerContext {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// Image (informational).
    pub image: String,
    /// Environment in definition order (envFrom first, then env, later wins like the kubelet).
    pub env: Vec<(String, String)>,
    /// Volume mounts, longest container path first so the most specific mount wins when mapping paths.
    pub mounts: Vec<Mount>,
    /// `workingDir` of the container, if set.
    pub working_dir: Option<String>,
    /// `command` (the image's entrypoint when empty).
    pub command: Vec<String>,
    /// `args`.
    pub args: Vec<String>,
    /// Whether the pod is Running with this container running.
    pub running: bool,
}

impl ContainerContext {
    /// Map a container path to the host through the mounts (None when no mount covers it).
    pub fn host_path_of(&self, container_path: &Path) -> Option<PathBuf> {
        self.mounts.iter().find_map(|m| {
            container_path
                .strip_prefix(&m.container_path)
                .ok()
                .map(|rest| {
                    if rest.as_os_str().is_empty() {
                        m.host_path.clone()
                    } else {
                        m.host_path.join(rest)
                    }
                })
        })
    }
}

/// Why a container could not be resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    /// No such pod.
    #[error("pods \"{pod}\" not found")]
    PodNotFound {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
    },
    /// No such container in the pod.
    #[error("container {container} is not valid for pod {pod}")]
    ContainerNotFound {
        /// Pod.
        pod: String,
        /// Requested container.
        container: String,
    },
    /// The pod or container is not running.
    #[error(
        "unable to upgrade connection: container not found (\"{container}\"): pod {pod} is {phase}"
    )]
    NotRunning {
        /// Pod.
        pod: String,
        /// Container.
        container: String,
        /// Phase / waiting reason.
        phase: String,
    },
    /// A referenced Secret/ConfigMap/key is missing and not optional.
    #[error("resolving environment of container {container} in pod {pod}: {message}")]
    Env {
        /// Pod.
        pod: String,
        /// Container.
        container: String,
        /// What is missing.
        message: String,
    },
    /// Preparing a volume directory failed.
    #[error("preparing volume {volume} of pod {pod}: {message}")]
    Volume {
        /// Pod.
        pod: String,
        /// Volume.
        volume: String,
        /// I/O error.
        message: String,
    },
}

impl ResolveError {
    /// As the metav1.Status error the apiserver would return.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            ResolveError::PodNotFound { pod, .. } => ApiError::not_found("", "pods", pod),
            ResolveError::Volume { .. } => ApiError::internal(self.to_string()),
            _ => ApiError::bad_request(self.to_string()),
        }
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn data_of(obj: &Value, secret: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(m) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in m {
            let raw = v.as_str().unwrap_or_default();
            let val = if secret {
                base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default()
            } else {
                raw.to_string()
            };
            out.push((k.clone(), val));
        }
    }
    if let Some(m) = obj.get("stringData").and_then(Value::as_object) {
        for (k, v) in m {
            out.push((k.clone(), v.as_str().unwrap_or_default().to_string()));
        }
    }
    if !secret && let Some(m) = obj.get("binaryData").and_then(Value::as_object) {
        for (k, v) in m {
            let b = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .unwrap_or_default();
            out.push((k.clone(), String::from_utf8_lossy(&b).into_owned()));
        }
    }
    out
}

/// Expand `$(VAR)` references to earlier variables; `$$(VAR)` escapes, unknown references stay literal.
fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("$(")
            && let Some(end) = t.find(')')
        {
            let name = &t[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&tail[..end + 3]),
            }
            rest = &t[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn field_ref(pod: &Value, path: &str) -> Option<String> {
    if let Some(key) = path
        .strip_prefix("metadata.labels['")
        .and_then(|p| p.strip_suffix("']"))
    {
        return pod
            .pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if let Some(key) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|p| p.strip_suffix("']"))
    {
        return pod
            .pointer("/metadata/annotations")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    let ptr = match path {
        "metadata.name"
        | "metadata.namespace"
        | "metadata.uid"
        | "spec.nodeName"
        | "spec.serviceAccountName"
        | "status.podIP"
        | "status.hostIP" => {
            format!("/{}", path.replace('.', "/"))
        }
        _ => return None,
    };
    Some(match path {
        "spec.serviceAccountName" if pod.pointer(&ptr).is_none() => "default".to_string(),
        _ => s(pod, &ptr).to_string(),
    })
}

/// Resolve `container` (None = the pod's default container) of `ns/pod` for exec. Projected
/// `serviceAccountToken` files are left as the kubelet wrote them.
pub fn resolve_container(
    store: &Store,
    state_dir: &Path,
    ns: &str,
    pod_name: &str,
    container: Option<&str>,
) -> Result<ContainerContext, ResolveError> {
    resolve_container_with(store, state_dir, ns, pod_name, container, None)
}

/// Mints a service-account token: `(namespace, serviceAccount) → token`.
pub type IssueToken<'a> = dyn Fn(&str, &str) -> String + 'a;

/// Like [`resolve_container`]; `issue_token(namespace, serviceAccount)` mints the token of projected
/// `serviceAccountToken` sources (the kubelet's TokenRequest), which are then (re)written.
pub fn resolve_container_with(
    store: &Store,
    state_dir: &Path,
    ns: &str,
    pod_name: &str,
    container: Option<&str>,
    issue_token: Option<&IssueToken<'_>>,
) -> Result<ContainerContext, ResolveError> {
    let pod = store
        .find("", "pods", ns, pod_name)
        .ok_or_else(|| ResolveError::PodNotFound {
            namespace: ns.into(),
            pod: pod_name.into(),
        })?;
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted = container
        .map(str::to_string)
        .or_else(|| {
            pod.pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| containers.first().map(|c| s(c, "/name").to_string()))
        .unwrap_or_default();
    let init_containers = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let c = containers
        .iter()
        .chain(&init_containers)
        .find(|c| s(c, "/name") == wanted)
        .ok_or_else(|| ResolveError::ContainerNotFound {
            pod: pod_name.into(),
            container: wanted.clone(),
        })?;
    let env_err = |message: String| ResolveError::Env {
        pod: pod_name.into(),
        container: wanted.clone(),
        message,
    };

    let lookup = |plural: &str, name: &str| store.find("", plural, ns, name);
    let mut env: Vec<(String, String)> = Vec::new();
    for from in c
        .get("envFrom")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let prefix = s(&from, "/prefix").to_string();
        for (key, plural, secret) in [
            ("configMapRef", "configmaps", false),
            ("secretRef", "secrets", true),
        ] {
            let Some(r) = from.get(key) else { continue };
            let name = s(r, "/name");
            let optional = r.get("optional").and_then(Value::as_bool) == Some(true);
            match lookup(plural, name) {
                Some(obj) => env.extend(
                    data_of(&obj, secret)
                        .into_iter()
                        .map(|(k, v)| (format!("{prefix}{k}"), v)),
                ),
                None if optional => {}
                None => return Err(env_err(format!("{plural} \"{name}\" not found"))),
            }
        }
    }
    for e in c
        .get("env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let name = s(&e, "/name").to_string();
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            Some(expand(v, &env))
        } else if let Some(vf) = e.get("valueFrom") {
            let keyed = [
                ("secretKeyRef", "secrets", true),
                ("configMapKeyRef", "configmaps", false),
            ];
            if let Some((r, plural, secret)) = keyed
                .iter()
                .find_map(|(k, p, sec)| vf.get(*k).map(|r| (r, *p, *sec)))
            {
                let (obj_name, key) = (s(r, "/name"), s(r, "/key"));
                let optional = r.get("optional").and_then(Value::as_bool) == Some(true);
                match lookup(plural, obj_name)
                    .map(|o| data_of(&o, secret))
                    .and_then(|d| d.into_iter().find(|(k, _)| k == key))
                {
                    Some((_, v)) => Some(v),
                    None if optional => None,
                    None => {
                        return Err(env_err(format!(
                            "key {key:?} of {plural} \"{obj_name}\" not found"
                        )));
                    }
                }
            } else if let Some(fr) = vf.get("fieldRef") {
                let path = s(fr, "/fieldPath");
                Some(
                    field_ref(&pod, path)
                        .ok_or_else(|| env_err(format!("unsupported fieldRef {path:?}")))?,
                )
            } else if vf.get("resourceFieldRef").is_some() {
                // The simulator sets no resource limits; the kubelet reports node allocatable, "0" is honest here.
                Some("0".to_string())
            } else {
                return Err(env_err(format!("unsupported valueFrom of {name}")));
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            env.retain(|(k, _)| *k != name);
            env.push((name, v));
        }
    }

    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut mounts = Vec::new();
    for vm in c
        .get("volumeMounts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let vol_name = s(&vm, "/name").to_string();
        let vol_err = |message: String| ResolveError::Volume {
            pod: pod_name.into(),
            volume: vol_name.clone(),
            message,
        };
        let Some(vol) = volumes.iter().find(|v| s(v, "/name") == vol_name) else {
            return Err(vol_err("volume not defined in the pod spec".into()));
        };
        let mut read_only = vm.get("readOnly").and_then(Value::as_bool) == Some(true);
        let base = if let Some(pvc) = vol.get("persistentVolumeClaim") {
            read_only |= pvc.get("readOnly").and_then(Value::as_bool) == Some(true);
            pvc_dir(state_dir, ns, s(pvc, "/claimName"))
        } else if let Some(hp) = vol.get("hostPath") {
            PathBuf::from(s(hp, "/path"))
        } else {
            let dir = empty_dir(state_dir, ns, pod_name, &vol_name);
            let projection = Projection {
                store,
                pod: &pod,
                dir: &dir,
                issue_token,
            };
            if projection
                .write_volume(vol)
                .map_err(|e| vol_err(e.to_string()))?
            {
                read_only = true;
            }
            dir
        };
        let sub = s(&vm, "/subPath");
        let host = if sub.is_empty() { base } else { base.join(sub) };
        if !host.exists() {
            std::fs::create_dir_all(&host).map_err(|e| vol_err(e.to_string()))?;
        }
        mounts.push(Mount {
            container_path: PathBuf::from(s(&vm, "/mountPath")),
            host_path: host,
            read_only,
            volume: vol_name.clone(),
        });
    }
    mounts.sort_by_key(|m| std::cmp::Reverse(m.container_path.as_os_str().len()));

    let phase = s(&pod, "/status/phase").to_string();
    let cstatus = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|st| s(st, "/name") == wanted).cloned());
    let container_running = cstatus
        .as_ref()
        .is_none_or(|st| st.pointer("/state/running").is_some());
    let running = phase == "Running" && container_running;
    Ok(ContainerContext {
        namespace: ns.into(),
        pod: pod_name.into(),
        container: wanted,
        image: s(c, "/image").to_string(),
        env,
        mounts,
        working_dir: c
            .get("workingDir")
            .and_then(Value::as_str)
            .map(str::to_string),
        command: words(c, "command"),
        args: words(c, "args"),
        running,
    })
}

/// Writes the files of a configMap, secret, downwardAPI or projected volume into its per-pod directory, as the
/// kubelet projects them: every key, or only `items` (`key` → `path`, subdirectories allowed).
struct Projection<'a> {
    store: &'a Store,
    pod: &'a Value,
    dir: &'a Path,
    issue_token: Option<&'a IssueToken<'a>>,
}

impl Projection<'_> {
    /// Project `vol` if it is a projected kind; Ok(true) when it was (such volumes are read-only).
    fn write_volume(&self, vol: &Value) -> std::io::Result<bool> {
        let sources: Vec<Value> = if let Some(projected) = vol.get("projected") {
            projected
                .get("sources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        } else if ["configMap", "secret", "downwardAPI"]
            .iter()
            .any(|k| vol.get(*k).is_some())
        {
            vec![vol.clone()]
        } else {
            return Ok(false);
        };
        std::fs::create_dir_all(self.dir)?;
        for source in &sources {
            self.write_source(source)?;
        }
        Ok(true)
    }

    fn write_source(&self, source: &Value) -> std::io::Result<()> {
        let ns = s(self.pod, "/metadata/namespace");
        for (key, plural, secret, name_field) in [
            ("configMap", "configmaps", false, "/name"),
            ("secret", "secrets", true, "/secretName"),
        ] {
            let Some(src) = source.get(key) else { continue };
            // A projected secret names itself with `name`, a secret volume with `secretName`.
            let name = Some(s(src, name_field))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| s(src, "/name"));
            let Some(obj) = self.store.find("", plural, ns, name) else {
                continue;
            };
            let data = data_of(&obj, secret);
            match src.get("items").and_then(Value::as_array) {
                Some(items) => {
                    for item in items {
                        if let Some((_, v)) = data.iter().find(|(k, _)| k == s(item, "/key")) {
                            self.write_file(s(item, "/path"), v)?;
                        }
                    }
                }
                None => {
                    for (k, v) in &data {
                        self.write_file(k, v)?;
                    }
                }
            }
        }
        if let Some(items) = source
            .pointer("/downwardAPI/items")
            .and_then(Value::as_array)
        {
            for item in items {
                let value = if let Some(path) = item.pointer("/fieldRef/fieldPath") {
                    field_ref(self.pod, path.as_str().unwrap_or_default()).unwrap_or_default()
                } else {
                    // No resource limits are simulated (see the env's resourceFieldRef).
                    "0".to_string()
                };
                self.write_file(s(item, "/path"), &value)?;
            }
        }
        if let Some(token) = source.get("serviceAccountToken")
            && let Some(issue) = self.issue_token
        {
            let account = Some(s(self.pod, "/spec/serviceAccountName"))
                .filter(|n| !n.is_empty())
                .unwrap_or("default");
            let path = Some(s(token, "/path"))
                .filter(|p| !p.is_empty())
                .unwrap_or("token");
            self.write_file(path, &issue(ns, account))?;
        }
        Ok(())
    }

    /// Write one projected file; a path that would leave the volume is skipped (the apiserver refuses it).
    fn write_file(&self, relative: &str, value: &str) -> std::io::Result<()> {
        let rel = Path::new(relative);
        if relative.is_empty()
            || rel.is_absolute()
            || rel
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Ok(());
        }
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, value)
    }
}

/// Like [`resolve_container`], but refuses a pod that is not running (what the exec route wants).
pub fn resolve_running_container(
    store: &Store,
    state_dir: &Path,
    ns: &str,
    pod: &str,
    container: Option<&str>,
) -> Result<ContainerContext, ResolveError> {
    let ctx = resolve_container(store, state_dir, ns, pod, container)?;
    if !ctx.running {
        let p = store.find("", "pods", ns, pod).unwrap_or_default();
        let phase = p
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter().find_map(|st| {
                    st.pointer("/state/waiting/reason")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
            })
            .unwrap_or_else(|| s(&p, "/status/phase").to_string());
        return Err(ResolveError::NotRunning {
            pod: pod.into(),
            container: ctx.container,
            phase,
        });
    }
    Ok(ctx)
}

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The container a log request means, with the apiserver's rules and wording: none given is fine for a pod with
/// exactly one container; a given name must be one of the pod's init, regular or ephemeral containers.
pub fn log_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let all: Vec<String> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| names(pod, list))
        .collect();
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if all.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ResolveError::ContainerNotFound {
            pod: pod_name.into(),
            container: c.into(),
        }
        .to_api_error()),
        None => match names(pod, "containers").as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}"
            ))),
            _ => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                all.join(" ")
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::pods::{PodPhase, set_pod_phase};
    use serde_json::json;

    fn seeded() -> (Store, tempfile::TempDir) {
        let store = Store::new(SimClock::new(None));
        let dir = tempfile::tempdir().expect("tempdir");
        store.load("", "secrets", json!({"metadata": {"name": "db", "namespace": "app"}, "data": {"password": "czNjcjN0"}})).expect("secret");
        store.load("", "configmaps", json!({"metadata": {"name": "cfg", "namespace": "app"}, "data": {"DB": "shop", "MODE": "fast"}})).expect("cm");
        store
            .load("", "pods", json!({"metadata": {"name": "db-0", "namespace": "app", "labels": {"tier": "db"}},
                "spec": {"containers": [{"name": "postgres", "image": "postgres:17", "workingDir": "/work",
                    "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                    "env": [{"name": "POSTGRES_USER", "value": "app"},
                            {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                            {"name": "POSTGRES_DB", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "DB"}}},
                            {"name": "URL", "value": "postgres://$(POSTGRES_USER)@localhost/$(POSTGRES_DB)"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
                            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": true}}}],
                    "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"},
                                     {"name": "data", "mountPath": "/backup", "subPath": "dumps", "readOnly": true},
                                     {"name": "scratch", "mountPath": "/tmp/scratch"}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "scratch", "emptyDir": {}}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "postgres", "state": {"running": {}}}]}}))
            .expect("pod");
        (store, dir)
    }

    #[test]
    fn environment_resolves_values_refs_and_expansions() {
        let (store, dir) = seeded();
        let ctx = resolve_container(&store, dir.path(), "app", "db-0", Some("postgres"))
            .expect("resolved");
        let get = |k: &str| {
            ctx.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("POSTGRES_PASSWORD"), Some("s3cr3t"));
        assert_eq!(get("POSTGRES_DB"), Some("shop"));
        assert_eq!(get("URL"), Some("postgres://app@localhost/shop"));
        assert_eq!(get("POD"), Some("db-0"));
        assert_eq!(get("TIER"), Some("db"));
        assert_eq!(get("CFG_MODE"), Some("fast"));
        assert_eq!(get("OPT"), None);
        assert_eq!(ctx.working_dir.as_deref(), Some("/work"));
        assert!(ctx.running);
    }

    #[test]
    fn mounts_map_container_paths_to_pvc_and_pod_directories() {
        let (store, dir) = seeded();
        let ctx = resolve_container(&store, dir.path(), "app", "db-0", None).expect("resolved");
        assert_eq!(ctx.container, "postgres");
        let pvc = pvc_dir(dir.path(), "app", "data");
        assert_eq!(
            ctx.host_path_of(Path::new("/var/lib/postgresql/data/dump.sql.gz")),
            Some(pvc.join("dump.sql.gz"))
        );
        let backup = ctx
            .mounts
            .iter()
            .find(|m| m.container_path == Path::new("/backup"))
            .expect("backup mount");
        assert!(backup.read_only);
        assert_eq!(backup.host_path, pvc.join("dumps"));
        assert!(
            ctx.host_path_of(Path::new("/tmp/scratch"))
                .is_some_and(|p| p.is_dir())
        );
        assert_eq!(ctx.host_path_of(Path::new("/etc/passwd")), None);
    }

    #[test]
    fn missing_pods_containers_and_stopped_pods_are_api_errors() {
        let (store, dir) = seeded();
        let e = resolve_container(&store, dir.path(), "app", "nope", None).expect_err("no pod");
        assert_eq!(e.to_api_error().code, 404);
        let e = resolve_container(&store, dir.path(), "app", "db-0", Some("mysql"))
            .expect_err("no container");
        assert_eq!(e.to_api_error().code, 400);
        set_pod_phase(&store, "app", "db-0", PodPhase::Pending).expect("phase");
        let e = resolve_running_container(&store, dir.path(), "app", "db-0", None)
            .expect_err("pending");
        assert!(matches!(e, ResolveError::NotRunning { .. }), "{e}");
    }

    #[test]
    fn projected_volumes_write_items_downward_fields_and_a_minted_token() {
        let (store, dir) = seeded();
        store
            .load("", "pods", json!({"metadata": {"name": "job-1", "namespace": "app", "labels": {"tier": "batch"}},
                "spec": {"serviceAccountName": "runner",
                    "initContainers": [{"name": "init", "image": "busybox",
                        "volumeMounts": [{"name": "creds", "mountPath": "/creds"}]}],
                    "containers": [{"name": "main", "image": "x"}],
                    "volumes": [
                        {"name": "creds", "projected": {"sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                            {"configMap": {"name": "cfg", "items": [{"key": "DB", "path": "conf/db"}]}},
                            {"secret": {"name": "db", "items": [{"key": "password", "path": "pw"}]}},
                            {"downwardAPI": {"items": [{"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}}]}}]}}]}}))
            .expect("pod");
        let issue = |ns: &str, sa: &str| format!("token-of-{ns}-{sa}");
        let ctx = resolve_container_with(
            &store,
            dir.path(),
            "app",
            "job-1",
            Some("init"),
            Some(&issue),
        )
        .expect("the init container resolves");
        let creds = ctx.host_path_of(Path::new("/creds")).expect("mounted");
        let read = |file: &str| std::fs::read_to_string(creds.join(file)).expect(file);
        assert_eq!(read("token"), "token-of-app-runner");
        assert_eq!(read("conf/db"), "shop");
        assert_eq!(read("pw"), "s3cr3t");
        assert_eq!(read("tier"), "batch");
        assert!(!creds.join("MODE").exists(), "only the listed items");
        assert!(ctx.mounts[0].read_only);
    }

    #[test]
    fn the_container_is_chosen_like_the_apiserver_does() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(log_container(&one, None).expect("default"), "a");
        let two = json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "init"}],
                         "containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            log_container(&two, None).expect_err("ambiguous").message,
            "a container name must be specified for pod p, choose one of: [init a b]"
        );
        assert_eq!(log_container(&two, Some("init")).expect("init"), "init");
        let unknown = log_container(&two, Some("c")).expect_err("unknown");
        assert_eq!(
            (unknown.code, unknown.message.as_str()),
            (400, "container c is not valid for pod p")
        );
    }
}
