//! The pods bound to this node, carried between the real apiserver and the agent's own kube-sim store, where
//! kube-sim's kubelet runs them (one pod runtime for kube-sim and the agent).
//!
//! - In: a pod bound here (watched with `spec.nodeName=NAME`, as the Node authorizer allows) is copied into the
//!   local store once, after what its containers resolve against: the ConfigMaps and Secrets it names, and for
//!   each claim a link from kube-sim's volume directory to the hostpath driver's directory of its bound volume.
//!   Projected service-account tokens are requested through the TokenRequest API, bound to the pod, as a kubelet
//!   does. Owner references are left behind (their owners are not copied), and the status starts afresh: Running
//!   with no process for an unmapped image, Pending until the kubelet starts a mapped one.
//! - Out: every status the local store records for such a pod is written to the real pod's status.
//! - Delete: a pod that gets a deletionTimestamp is deleted locally with its grace period (the kubelet sends
//!   SIGTERM, then SIGKILL), and once its processes have ended the agent deletes it for good (grace 0, under its
//!   uid), as a kubelet does.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::api;
use crate::kubelet::Kubelet;
use crate::pods::{PodPhase, pod_status, runs_process};
use crate::runtime::RunImages;
use crate::state_dir::pvc_dir;
use crate::store::{EventType, Part, Store, Subscription};

/// Tokens requested for the pods, by namespace and ServiceAccount: what the kubelet projects.
pub type TokenCache = Arc<Mutex<HashMap<(String, String), String>>>;

/// How often, and how long apart, a read that the Node authorizer may not allow yet is tried (its graph learns
/// of a pod's references a moment after the pod is bound).
const ATTEMPTS: u32 = 20;
const ATTEMPT_EVERY: Duration = Duration::from_millis(500);

/// The carrier between the apiserver and the local store.
pub struct Mirror {
    /// The node's client.
    pub client: kube::Client,
    /// The Node's name.
    pub node: String,
    /// The local store that the kubelet follows.
    pub store: Arc<Store>,
    /// The local kubelet.
    pub kubelet: Arc<Kubelet>,
    /// The local kube-sim's state directory.
    pub state_dir: PathBuf,
    /// The hostpath driver's `volumes/` directory.
    pub csi_volumes: PathBuf,
    /// The tokens the kubelet hands to the pods.
    pub tokens: TokenCache,
    /// The `--run-image` mappings (which pods run a process).
    pub images: RunImages,
    /// The pods taken in, `ns/name` → the real pod's uid.
    pub taken: Mutex<HashMap<String, String>>,
    /// The pods being let go.
    pub releasing: Mutex<HashSet<String>>,
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn key(pod: &Value) -> String {
    format!(
        "{}/{}",
        s(pod, "/metadata/namespace"),
        s(pod, "/metadata/name")
    )
}

impl Mirror {
    fn taken(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn releasing(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.releasing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follow the pods bound to this node until the task is aborted.
    pub async fn follow_pods(self: Arc<Self>) {
        let pods: kube::Api<Pod> = kube::Api::all(self.client.clone());
        let config = watcher::Config::default().fields(&format!("spec.nodeName={}", self.node));
        let mut events = watcher(pods, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                    match serde_json::to_value(pod) {
                        Ok(pod) => self.on_pod(pod),
                        Err(error) => tracing::warn!(%error, "a pod could not be read as JSON"),
                    }
                }
                Ok(watcher::Event::Delete(pod)) => {
                    if let Ok(pod) = serde_json::to_value(pod) {
                        self.forget(&pod);
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "watching this node's pods"),
            }
        }
    }

    fn on_pod(self: &Arc<Self>, pod: Value) {
        let key = key(&pod);
        let uid = s(&pod, "/metadata/uid").to_string();
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            if self.releasing().insert(key.clone()) {
                let me = self.clone();
                tokio::spawn(async move { me.release(&pod, &key).await });
            }
            return;
        }
        let terminal = matches!(s(&pod, "/status/phase"), "Succeeded" | "Failed");
        {
            let mut taken = self.taken();
            if taken.get(&key) == Some(&uid) || terminal {
                return;
            }
            taken.insert(key.clone(), uid);
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(message) = me.take_in(&pod).await {
                tracing::warn!(pod = %key, %message, "the pod could not be prepared");
                let status = json!({"status": {"message": message, "reason": "NodeAgentError"}});
                let path = format!(
                    "/api/v1/namespaces/{}/pods/{}/status",
                    s(&pod, "/metadata/namespace"),
                    s(&pod, "/metadata/name")
                );
                let _ = api::merge_patch(&me.client, &path, &status).await;
            }
        });
    }

    /// GET with retries while the Node authorizer does not know the reference yet; None for a 404.
    async fn read(&self, path: &str) -> Result<Option<Value>, String> {
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            match api::get(&self.client, path).await {
                Ok(v) => return Ok(Some(v)),
                Err(e) if api::code(&e) == Some(404) => return Ok(None),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(ATTEMPT_EVERY).await;
        }
        Err(format!("GET {path}: {last}"))
    }

    /// Copy `obj` into the local store as the cluster's own write.
    fn put_local(&self, plural: &str, mut obj: Value) -> Result<(), String> {
        let res = self
            .store
            .resource("", plural)
            .ok_or_else(|| format!("kube-sim has no {plural}"))?;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "resourceVersion",
                "managedFields",
                "ownerReferences",
                "generation",
            ] {
                meta.remove(field);
            }
        }
        let (ns, name) = (
            s(&obj, "/metadata/namespace").to_string(),
            s(&obj, "/metadata/name").to_string(),
        );
        let written = if self.store.find("", plural, &ns, &name).is_some() {
            self.store.modify(
                &res,
                "v1",
                &ns,
                &name,
                Part::Raw,
                false,
                |_| Ok(obj.clone()),
            )
        } else {
            self.store.create(&res, "v1", &ns, obj, Part::Raw, false)
        };
        written.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Everything the pod's containers resolve against, then the pod itself, into the local store.
    async fn take_in(&self, pod: &Value) -> Result<(), String> {
        let ns = s(pod, "/metadata/namespace").to_string();
        let refs = References::of(pod);
        for (plural, name) in refs.objects() {
            if let Some(obj) = self
                .read(&format!("/api/v1/namespaces/{ns}/{plural}/{name}"))
                .await?
            {
                self.put_local(plural, obj)?;
            }
        }
        for claim in &refs.claims {
            self.link_claim(&ns, claim).await?;
        }
        if let Some(audience) = &refs.token_audience {
            self.request_token(pod, audience.as_deref()).await?;
        }
        // The first status is written here rather than by the local controllers (which would race the kubelet):
        // Pending until the kubelet starts a process, Running at once for a container that runs none.
        let mut local = pod.clone();
        local["status"] = if runs_process(pod, &self.images) {
            json!({"phase": "Pending"})
        } else {
            pod_status(pod, PodPhase::Running, &self.store.clock().now_rfc3339())
        };
        self.put_local("pods", local)
    }

    /// kube-sim's directory for the claim becomes a link to the driver's directory of its bound volume.
    async fn link_claim(&self, ns: &str, claim: &str) -> Result<(), String> {
        let pvc = self
            .read(&format!(
                "/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}"
            ))
            .await?
            .ok_or_else(|| format!("persistentvolumeclaim {ns}/{claim} not found"))?;
        let volume = s(&pvc, "/spec/volumeName");
        if volume.is_empty() {
            return Err(format!("persistentvolumeclaim {ns}/{claim} is not bound"));
        }
        let pv = self
            .read(&format!("/api/v1/persistentvolumes/{volume}"))
            .await?
            .ok_or_else(|| format!("persistentvolume {volume} not found"))?;
        let handle = s(&pv, "/spec/csi/volumeHandle");
        if handle.is_empty() {
            return Err(format!(
                "persistentvolume {volume} is not a CSI volume of the hostpath driver"
            ));
        }
        let target = self.csi_volumes.join(handle);
        let link = pvc_dir(&self.state_dir, ns, claim);
        let io =
            |e: std::io::Error| format!("linking {} to {}: {e}", link.display(), target.display());
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        match std::fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        std::os::unix::fs::symlink(&target, &link).map_err(io)
    }

    /// A token of the pod's ServiceAccount, bound to the pod, through the TokenRequest API.
    async fn request_token(&self, pod: &Value, audience: Option<&str>) -> Result<(), String> {
        let ns = s(pod, "/metadata/namespace");
        let account = Some(s(pod, "/spec/serviceAccountName"))
            .filter(|a| !a.is_empty())
            .unwrap_or("default");
        let mut spec = json!({"expirationSeconds": 3607, "boundObjectRef": {
            "apiVersion": "v1", "kind": "Pod",
            "name": s(pod, "/metadata/name"), "uid": s(pod, "/metadata/uid")}});
        if let Some(audience) = audience {
            spec["audiences"] = json!([audience]);
        }
        let request =
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
        let path = format!("/api/v1/namespaces/{ns}/serviceaccounts/{account}/token");
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            match api::send(
                &self.client,
                Method::POST,
                &path,
                Some(&request),
                "application/json",
            )
            .await
            {
                Ok(answer) => {
                    self.tokens
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(
                            (ns.to_string(), account.to_string()),
                            s(&answer, "/status/token").to_string(),
                        );
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(ATTEMPT_EVERY).await;
        }
        Err(format!("requesting a token for {ns}/{account}: {last}"))
    }

    /// Stop a deleting pod's processes within its grace period, then delete it for good.
    async fn release(&self, pod: &Value, key: &str) {
        let (ns, name, uid) = (
            s(pod, "/metadata/namespace"),
            s(pod, "/metadata/name"),
            s(pod, "/metadata/uid"),
        );
        if let (Some(local), Some(res)) = (
            self.store.find("", "pods", ns, name),
            self.store.resource("", "pods"),
        ) && s(&local, "/metadata/uid") == uid
        {
            if let Some(grace) = pod
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
            {
                let _ = self
                    .store
                    .modify(&res, "v1", ns, name, Part::Raw, false, |p| {
                        let mut p = p.clone();
                        p["spec"]["terminationGracePeriodSeconds"] = json!(grace);
                        Ok(p)
                    });
            }
            let _ = self.store.delete(&res, ns, name, Some(uid), None, false);
            self.kubelet.wait_ended(uid).await;
        }
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
        let body = json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                          "preconditions": {"uid": uid}});
        match api::send(
            &self.client,
            Method::DELETE,
            &path,
            Some(&body),
            "application/json",
        )
        .await
        {
            Ok(_) => {}
            Err(e) if matches!(api::code(&e), Some(404 | 409)) => {}
            Err(error) => tracing::warn!(pod = %key, %error, "deleting the stopped pod"),
        }
        self.taken().remove(key);
        self.releasing().remove(key);
    }

    /// The pod is gone from the apiserver: its local copy goes too.
    fn forget(&self, pod: &Value) {
        let (ns, name, uid) = (
            s(pod, "/metadata/namespace"),
            s(pod, "/metadata/name"),
            s(pod, "/metadata/uid"),
        );
        if let Some(res) = self.store.resource("", "pods") {
            let _ = self.store.delete(&res, ns, name, Some(uid), None, false);
        }
        let key = key(pod);
        if self.taken().get(&key).map(String::as_str) == Some(uid) {
            self.taken().remove(&key);
        }
    }

    /// Write each status the local store records to the real pod, until the task is aborted.
    pub async fn push_status(self: Arc<Self>, mut events: Subscription) {
        loop {
            let pods: Vec<Value> = match events.recv().await {
                Ok(event) => {
                    if !event.group.is_empty()
                        || event.plural != "pods"
                        || event.etype == EventType::Deleted
                    {
                        continue;
                    }
                    vec![event.object.clone()]
                }
                Err(RecvError::Lagged(_)) => self.store.all_of("", "pods"),
                Err(RecvError::Closed) => return,
            };
            for pod in pods {
                self.push_one(&pod).await;
            }
        }
    }

    async fn push_one(&self, local: &Value) {
        let key = key(local);
        let uid = s(local, "/metadata/uid");
        if self.taken().get(&key).map(String::as_str) != Some(uid)
            || self.releasing().contains(&key)
        {
            return;
        }
        let Some(mut status) = local.get("status").cloned() else {
            return;
        };
        if let Some(obj) = status.as_object_mut() {
            // Computed by the apiserver and immutable there.
            obj.remove("qosClass");
        }
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}/status",
            s(local, "/metadata/namespace"),
            s(local, "/metadata/name")
        );
        if let Err(error) = api::merge_patch(&self.client, &path, &json!({"status": status})).await
        {
            tracing::warn!(pod = %key, %error, "writing the pod's status");
        }
    }
}

/// What a pod's containers resolve against.
#[derive(Debug, Default, PartialEq)]
struct References {
    config_maps: Vec<String>,
    secrets: Vec<String>,
    claims: Vec<String>,
    /// Some when a projected service-account token is mounted: its audience (None: the apiserver's).
    token_audience: Option<Option<String>>,
}

impl References {
    fn of(pod: &Value) -> Self {
        let mut refs = References::default();
        let add = |list: &mut Vec<String>, name: &str| {
            if !name.is_empty() && !list.iter().any(|n| n == name) {
                list.push(name.to_string());
            }
        };
        let empty = Vec::new();
        let array = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_array).cloned();
        for volume in array(pod, "/spec/volumes").unwrap_or_default() {
            add(&mut refs.config_maps, s(&volume, "/configMap/name"));
            add(&mut refs.secrets, s(&volume, "/secret/secretName"));
            add(
                &mut refs.claims,
                s(&volume, "/persistentVolumeClaim/claimName"),
            );
            for source in array(&volume, "/projected/sources").unwrap_or_default() {
                add(&mut refs.config_maps, s(&source, "/configMap/name"));
                add(&mut refs.secrets, s(&source, "/secret/name"));
                if let Some(token) = source.get("serviceAccountToken") {
                    let audience = Some(s(token, "/audience")).filter(|a| !a.is_empty());
                    refs.token_audience = Some(audience.map(str::to_string));
                }
            }
        }
        for kind in ["initContainers", "containers"] {
            for c in array(pod, &format!("/spec/{kind}")).unwrap_or_default() {
                for env in c.get("env").and_then(Value::as_array).unwrap_or(&empty) {
                    add(
                        &mut refs.config_maps,
                        s(env, "/valueFrom/configMapKeyRef/name"),
                    );
                    add(&mut refs.secrets, s(env, "/valueFrom/secretKeyRef/name"));
                }
                for from in c.get("envFrom").and_then(Value::as_array).unwrap_or(&empty) {
                    add(&mut refs.config_maps, s(from, "/configMapRef/name"));
                    add(&mut refs.secrets, s(from, "/secretRef/name"));
                }
            }
        }
        refs
    }

    /// The objects to copy: (plural, name).
    fn objects(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.config_maps
            .iter()
            .map(|n| ("configmaps", n.as_str()))
            .chain(self.secrets.iter().map(|n| ("secrets", n.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_references_are_collected_once_each() {
        let pod = json!({"spec": {
            "volumes": [
                {"name": "plan", "configMap": {"name": "plan"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "kube-api-access-x", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                    {"configMap": {"name": "kube-root-ca.crt"}}]}}],
            "containers": [{"name": "c", "env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "a"}}},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "plan", "key": "b"}}}],
                "envFrom": [{"secretRef": {"name": "creds"}}]}]}});
        let refs = References::of(&pod);
        assert_eq!(
            refs,
            References {
                config_maps: vec!["plan".into(), "kube-root-ca.crt".into()],
                secrets: vec!["creds".into()],
                claims: vec!["data".into()],
                token_audience: Some(None),
            }
        );
    }
}
