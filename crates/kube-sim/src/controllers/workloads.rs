//! Workloads and their pods: Deployment → ReplicaSet `NAME-HASH` → pods (a template change rolls to a new
//! ReplicaSet at once), StatefulSet → pods `NAME-i` plus PVCs from volumeClaimTemplates, deleted pods replaced,
//! new pods scheduled and Running, and each owner's replica counts and conditions kept up to date.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Controllers, owned_by, owner_ref, s};
use crate::pods::{PodPhase, pod_status, runs_process};
use crate::store::{EventType, random_suffix};

impl Controllers {
    /// A pod was created without a status: schedule it on the one node and run it.
    pub(super) fn start_pod(&self, pod: &Value) {
        let now = self.store.clock().now_rfc3339();
        self.mutate(
            "",
            "pods",
            s(pod, "/metadata/namespace"),
            s(pod, "/metadata/name"),
            |p| {
                p["spec"]["nodeName"] = json!("kube-sim");
                let st = pod_status(p, self.first_phase(p), &now);
                p["status"] = st;
            },
        );
    }

    /// A pod changed or went: its Job may be done, its owners' status changes, and a deleted pod is replaced.
    pub(super) fn on_pod_changed(self: &Arc<Self>, obj: &Value, etype: EventType) {
        if etype != EventType::Deleted && PodPhase::is_terminal(s(obj, "/status/phase")) {
            self.finish_job_of(obj);
        }
        for sts in self.store.all_of("apps", "statefulsets") {
            if owned_by(obj, s(&sts, "/metadata/uid")) {
                if etype == EventType::Deleted {
                    // Like the StatefulSet controller: a deleted pod is replaced.
                    self.reconcile_workload("statefulsets", &sts);
                } else {
                    self.update_workload_status("apps", "statefulsets", &sts);
                }
            }
        }
        for rs in self.store.all_of("apps", "replicasets") {
            if !owned_by(obj, s(&rs, "/metadata/uid")) {
                continue;
            }
            self.update_workload_status("apps", "replicasets", &rs);
            for d in self.store.all_of("apps", "deployments") {
                if owned_by(&rs, s(&d, "/metadata/uid")) {
                    if etype == EventType::Deleted {
                        // Like the ReplicaSet controller: a deleted pod is replaced.
                        self.reconcile_workload("deployments", &d);
                    } else {
                        self.update_workload_status("apps", "deployments", &d);
                    }
                }
            }
        }
    }

    /// A ReplicaSet went: its Deployment makes a new one.
    pub(super) fn on_replicaset_deleted(&self, rs: &Value) {
        for d in self.store.all_of("apps", "deployments") {
            if owned_by(rs, s(&d, "/metadata/uid")) {
                self.reconcile_workload("deployments", &d);
            }
        }
    }

    /// A Running pod named `name` from an owner's pod template, owned by `owner` and carrying the controller's
    /// labels (`extra_labels`) on top of the template's.
    pub(super) fn pod_from_template(
        &self,
        owner: &Value,
        name: &str,
        extra_labels: &[(&str, String)],
        template: &Value,
    ) -> Value {
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        for (k, v) in extra_labels {
            labels[*k] = json!(v);
        }
        let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
        spec["nodeName"] = json!("kube-sim");
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": owner["metadata"]["namespace"], "labels": labels,
                         "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
                         "ownerReferences": [owner_ref(owner)]},
            "spec": spec});
        let now = self.store.clock().now_rfc3339();
        pod["status"] = pod_status(&pod, self.first_phase(&pod), &now);
        pod
    }

    /// A new pod is Running at once, unless the kubelet runs its processes: then it waits for the kubelet.
    fn first_phase(&self, pod: &Value) -> PodPhase {
        if runs_process(pod, &self.run_images) {
            PodPhase::Pending
        } else {
            PodPhase::Running
        }
    }

    /// Bring a Deployment (`plural` "deployments", through its ReplicaSet) or StatefulSet to its replicas and
    /// template, then update the status of everything it owns.
    pub(super) fn reconcile_workload(&self, plural: &str, w: &Value) {
        if w.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let ns = s(w, "/metadata/namespace").to_string();
        let name = s(w, "/metadata/name").to_string();
        let uid = s(w, "/metadata/uid").to_string();
        let replicas = w
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        let template = w.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let pods: Vec<Value> = self
            .store
            .all_of("", "pods")
            .into_iter()
            .filter(|p| s(p, "/metadata/namespace") == ns && owned_by(p, &uid))
            .collect();
        if plural == "statefulsets" {
            for claim in w
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                for i in 0..replicas {
                    let pvc_name = format!("{}-{name}-{i}", s(&claim, "/metadata/name"));
                    if self
                        .store
                        .find("", "persistentvolumeclaims", &ns, &pvc_name)
                        .is_none()
                    {
                        let mut pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": pvc_name, "namespace": ns,
                            "labels": claim.pointer("/metadata/labels").cloned().unwrap_or(json!({}))}, "spec": claim.get("spec").cloned().unwrap_or(json!({}))});
                        pvc["metadata"]["labels"]["app.kubernetes.io/managed-by-statefulset"] =
                            json!(name);
                        let _ = self.create("", "persistentvolumeclaims", pvc);
                    }
                }
            }
            for i in 0..replicas {
                let pod_name = format!("{name}-{i}");
                let existing = pods.iter().find(|p| s(p, "/metadata/name") == pod_name);
                if existing.is_some_and(|p| {
                    s(p, "/metadata/labels/controller-revision-hash") == format!("{name}-{hash}")
                }) {
                    continue;
                }
                if existing.is_some() {
                    self.delete("", "pods", &ns, &pod_name);
                }
                let mut t = template.clone();
                for claim in w
                    .pointer("/spec/volumeClaimTemplates")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    let cname = s(&claim, "/metadata/name").to_string();
                    let vols = t["spec"]["volumes"].as_array().cloned().unwrap_or_default();
                    if !vols.iter().any(|v| s(v, "/name") == cname) {
                        let mut vols = vols;
                        vols.push(json!({"name": cname, "persistentVolumeClaim": {"claimName": format!("{cname}-{name}-{i}")}}));
                        t["spec"]["volumes"] = json!(vols);
                    }
                }
                let pod = self.pod_from_template(
                    w,
                    &pod_name,
                    &[
                        ("controller-revision-hash", format!("{name}-{hash}")),
                        ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                        ("apps.kubernetes.io/pod-index", i.to_string()),
                    ],
                    &t,
                );
                let _ = self.create("", "pods", pod);
            }
            for p in &pods {
                let pn = s(p, "/metadata/name");
                let idx = pn.rsplit('-').next().and_then(|i| i.parse::<usize>().ok());
                if idx.is_none_or(|i| i >= replicas) {
                    self.delete("", "pods", &ns, pn);
                }
            }
        } else {
            // Deployment → ReplicaSet `NAME-HASH` → pods, with owner references as a real cluster has them.
            let rs_name = format!("{name}-{hash}");
            for rs in self.store.all_of("apps", "replicasets") {
                if s(&rs, "/metadata/namespace") == ns
                    && owned_by(&rs, &uid)
                    && s(&rs, "/metadata/name") != rs_name
                {
                    self.delete("apps", "replicasets", &ns, s(&rs, "/metadata/name"));
                }
            }
            let rs = match self.store.find("apps", "replicasets", &ns, &rs_name) {
                Some(rs)
                    if rs.pointer("/spec/replicas").and_then(Value::as_i64)
                        == Some(replicas as i64) =>
                {
                    Some(rs)
                }
                Some(_) => self.mutate("apps", "replicasets", &ns, &rs_name, |r| {
                    r["spec"]["replicas"] = json!(replicas)
                }),
                None => {
                    let mut rs_template = template.clone();
                    rs_template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                    let mut selector = w.pointer("/spec/selector").cloned().unwrap_or(json!({}));
                    selector["matchLabels"]["pod-template-hash"] = json!(hash);
                    let revision = w
                        .pointer("/metadata/generation")
                        .cloned()
                        .unwrap_or(json!(1))
                        .to_string();
                    self.create(
                            "apps",
                            "replicasets",
                            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                   "metadata": {"name": rs_name, "namespace": ns, "labels": rs_template["metadata"]["labels"].clone(),
                                                "annotations": {"deployment.kubernetes.io/revision": revision},
                                                "ownerReferences": [owner_ref(w)]},
                                   "spec": {"replicas": replicas, "selector": selector, "template": rs_template}}),
                        )
                        .ok()
                }
            };
            let Some(rs) = rs else { return };
            let rs_uid = s(&rs, "/metadata/uid").to_string();
            let current: Vec<Value> = self
                .store
                .all_of("", "pods")
                .into_iter()
                .filter(|p| s(p, "/metadata/namespace") == ns && owned_by(p, &rs_uid))
                .collect();
            for p in current.iter().skip(replicas) {
                self.delete("", "pods", &ns, s(p, "/metadata/name"));
            }
            for _ in current.len()..replicas {
                let pod_name = format!("{rs_name}-{}", random_suffix(5));
                let pod = self.pod_from_template(
                    &rs,
                    &pod_name,
                    &[("pod-template-hash", hash.clone())],
                    &template,
                );
                let _ = self.create("", "pods", pod);
            }
            if let Some(fresh) = self.store.find("apps", "replicasets", &ns, &rs_name) {
                self.update_workload_status("apps", "replicasets", &fresh);
            }
        }
        if let Some(fresh) = self.store.find("apps", plural, &ns, &name) {
            self.update_workload_status("apps", plural, &fresh);
        }
    }

    /// Count the ready pods of a workload (a Deployment's through its ReplicaSets) into its status.
    fn update_workload_status(&self, group: &str, plural: &str, w: &Value) {
        let ns = s(w, "/metadata/namespace").to_string();
        let name = s(w, "/metadata/name").to_string();
        let uid = s(w, "/metadata/uid").to_string();
        // A Deployment's pods belong to its ReplicaSets.
        let owners: Vec<String> = if plural == "deployments" {
            self.store
                .all_of("apps", "replicasets")
                .iter()
                .filter(|r| s(r, "/metadata/namespace") == ns && owned_by(r, &uid))
                .map(|r| s(r, "/metadata/uid").to_string())
                .collect()
        } else {
            vec![uid.clone()]
        };
        let pods: Vec<Value> = self
            .store
            .all_of("", "pods")
            .into_iter()
            .filter(|p| s(p, "/metadata/namespace") == ns && owners.iter().any(|o| owned_by(p, o)))
            .collect();
        let ready = pods
            .iter()
            .filter(|p| {
                p.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
                    })
            })
            .count();
        let total = pods.len();
        let generation = w
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let want = w
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let now = self.store.clock().now_rfc3339();
        self.mutate(group, plural, &ns, &name, |o| {
            let available = if ready as i64 >= want { "True" } else { "False" };
            let prev_time = o.pointer("/status/conditions/0/lastTransitionTime").cloned();
            let mut st = json!({"observedGeneration": generation, "replicas": total, "readyReplicas": ready, "availableReplicas": ready});
            match plural {
                "replicasets" => st["fullyLabeledReplicas"] = json!(total),
                "statefulsets" => {
                    st["updatedReplicas"] = json!(total);
                    st["currentReplicas"] = json!(total);
                }
                _ => st["updatedReplicas"] = json!(total),
            }
            if plural == "deployments" {
                let same = o.pointer("/status/conditions/0/status").and_then(Value::as_str) == Some(available);
                let t = if same { prev_time.unwrap_or(json!(now)) } else { json!(now) };
                st["conditions"] = json!([{"type": "Available", "status": available, "reason": "MinimumReplicasAvailable", "lastTransitionTime": t, "lastUpdateTime": t}]);
                if ready < total {
                    st["unavailableReplicas"] = json!(total - ready);
                }
            }
            o["status"] = st;
        });
    }
}

fn template_hash(t: &Value) -> String {
    // FNV-1a over the template JSON, rendered with the apiserver's "safe" alphabet.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in t.to_string().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}
