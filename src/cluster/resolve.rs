//! [`KubeResolver`]: the engine's [`PodResolver`] port. `deployment/NAME` and `statefulset/NAME` go through the
//! workload's own selector to its pods; `pod/NAME` is taken directly. The pick is the first pod (by name, so it is
//! stable) that is Running, Ready and not terminating and that has the named container.

use super::client::Cluster;
use crate::vocab::exec::{PodResolver, ResolveError};
use crate::vocab::suggest::suggest;
use crate::vocab::workload::{ContainerRef, WorkloadKind, WorkloadRef};
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};

/// Resolves workloads to Running and Ready pods through the API.
#[derive(Clone)]
pub struct KubeResolver {
    client: kube::Client,
}

impl KubeResolver {
    pub fn new(client: kube::Client) -> Self {
        KubeResolver { client }
    }
}

impl Cluster {
    /// The [`PodResolver`] port backed by this client.
    pub fn pod_resolver(&self) -> KubeResolver {
        KubeResolver::new(self.client().clone())
    }
}

/// A `LabelSelector` in the `?labelSelector=` query syntax (`a=b,c in (d,e),!f`).
pub fn selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.clone().unwrap_or_default().join(",");
        parts.push(match expr.operator.as_str() {
            "In" => format!("{} in ({values})", expr.key),
            "NotIn" => format!("{} notin ({values})", expr.key),
            "Exists" => expr.key.clone(),
            "DoesNotExist" => format!("!{}", expr.key),
            other => format!("{} {other} ({values})", expr.key),
        });
    }
    parts.join(",")
}

fn is_running_and_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// One pod's state in a "why not" message: `api-1 (Pending)`, `api-2 (Running, not Ready)`.
fn describe(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Unknown");
    if pod.metadata.deletion_timestamp.is_some() {
        format!("{name} (terminating)")
    } else if phase == "Running" {
        format!("{name} (Running, not Ready)")
    } else {
        format!("{name} ({phase})")
    }
}

fn container_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .collect()
}

/// Picks the container to exec into from the workload's pods (pure; `selector` only feeds the message).
// The error type is the engine port's `ResolveError`, whose size is fixed there.
#[allow(clippy::result_large_err)]
pub fn pick_container(
    namespace: &str,
    workload: &WorkloadRef,
    container: &str,
    selector: Option<&str>,
    mut pods: Vec<Pod>,
) -> Result<ContainerRef, ResolveError> {
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let (ready, not_ready): (Vec<&Pod>, Vec<&Pod>) =
        pods.iter().partition(|p| is_running_and_ready(p));
    if ready.is_empty() {
        let detail = if not_ready.is_empty() {
            match selector {
                Some(sel) => format!("no pod matches its selector `{sel}`"),
                None => "no pods".to_string(),
            }
        } else {
            not_ready
                .iter()
                .map(|p| describe(p))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(ResolveError::NoReadyPod {
            namespace: namespace.into(),
            workload: workload.clone(),
            detail,
        });
    }
    if let Some(pod) = ready
        .iter()
        .find(|p| container_names(p).iter().any(|c| c == container))
    {
        return Ok(ContainerRef {
            namespace: namespace.into(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            container: container.into(),
        });
    }
    let first = ready[0];
    let available = container_names(first);
    Err(ResolveError::NoSuchContainer {
        namespace: namespace.into(),
        workload: workload.clone(),
        pod: first.metadata.name.clone().unwrap_or_default(),
        container: container.into(),
        near: suggest(container, available.iter().map(String::as_str)).map(str::to_string),
        available: available.join(", "),
    })
}

impl KubeResolver {
    /// [`ResolveError::NotFound`], with the nearest workload of the same kind that does exist. A failed list (no
    /// `list` right) only costs the suggestion.
    async fn not_found<K>(
        &self,
        api: &Api<K>,
        namespace: &str,
        workload: &WorkloadRef,
    ) -> ResolveError
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let plural = match workload.kind {
            WorkloadKind::Pod => "pods",
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
        };
        let names = super::core::names_of(api, plural, Some(namespace))
            .await
            .unwrap_or_default();
        ResolveError::NotFound {
            namespace: namespace.into(),
            workload: workload.clone(),
            near: suggest(&workload.name, names.iter().map(String::as_str))
                .map(|n| format!("{}/{n}", workload.kind.as_str())),
        }
    }

    async fn resolve_inner(
        &self,
        namespace: &str,
        workload: &WorkloadRef,
        container: &str,
    ) -> Result<ContainerRef, ResolveError> {
        let api_error = |err: kube::Error| ResolveError::Api {
            namespace: namespace.into(),
            workload: workload.clone(),
            message: match &err {
                kube::Error::Api(s) if s.code == 403 => format!(
                    "{err}; the service account needs RBAC verbs `get` and `list` on {} and pods",
                    workload.kind.as_str()
                ),
                _ => err.to_string(),
            },
        };
        let selector: LabelSelector = match workload.kind {
            WorkloadKind::Pod => {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
                let Some(pod) = pods.get_opt(&workload.name).await.map_err(api_error)? else {
                    return Err(self.not_found(&pods, namespace, workload).await);
                };
                return pick_container(namespace, workload, container, None, vec![pod]);
            }
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
                let Some(d) = api.get_opt(&workload.name).await.map_err(api_error)? else {
                    return Err(self.not_found(&api, namespace, workload).await);
                };
                d.spec.selector
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace);
                let Some(s) = api.get_opt(&workload.name).await.map_err(api_error)? else {
                    return Err(self.not_found(&api, namespace, workload).await);
                };
                s.spec.selector
            }
        };
        let selector = selector_string(&selector);
        if selector.is_empty() {
            return Err(ResolveError::NoReadyPod {
                namespace: namespace.into(),
                workload: workload.clone(),
                detail: "it has an empty selector".into(),
            });
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(api_error)?;
        pick_container(namespace, workload, container, Some(&selector), list.items)
    }
}

impl PodResolver for KubeResolver {
    fn resolve<'a>(
        &'a self,
        namespace: &'a str,
        workload: &'a WorkloadRef,
        container: &'a str,
    ) -> BoxFuture<'a, Result<ContainerRef, ResolveError>> {
        Box::pin(self.resolve_inner(namespace, workload, container))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use serde_json::json;

    fn pod(name: &str, phase: &str, ready: bool, containers: &[&str]) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"containers": containers.iter().map(|c| json!({"name": c})).collect::<Vec<_>>()},
            "status": {
                "phase": phase,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
            }
        }))
        .unwrap()
    }

    fn deploy() -> WorkloadRef {
        "deployment/api".parse().unwrap()
    }

    #[test]
    fn selectors_render_in_query_syntax() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "api".to_string())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(selector_string(&sel), "app=api,tier in (a,b),!canary");
    }

    #[test]
    fn the_first_ready_pod_with_the_container_is_picked() {
        let pods = vec![
            pod("api-c", "Running", true, &["app", "db"]),
            pod("api-a", "Pending", false, &["app", "db"]),
            pod("api-b", "Running", true, &["app", "db"]),
        ];
        let picked = pick_container("shop", &deploy(), "db", Some("app=api"), pods).unwrap();
        assert_eq!(picked.pod, "api-b");
        assert_eq!(picked.container, "db");
    }

    #[test]
    fn no_ready_pod_lists_each_pod_and_why() {
        let pods = vec![
            pod("api-a", "Pending", false, &["db"]),
            pod("api-b", "Running", false, &["db"]),
        ];
        let err = pick_container("shop", &deploy(), "db", Some("app=api"), pods).unwrap_err();
        assert_eq!(
            err.to_string(),
            "deployment/api in namespace shop has no Running and Ready pod (api-a (Pending), api-b (Running, \
             not Ready))"
        );
    }

    #[test]
    fn no_matching_pod_names_the_selector() {
        let err = pick_container("shop", &deploy(), "db", Some("app=api"), vec![]).unwrap_err();
        assert!(
            err.to_string()
                .contains("no pod matches its selector `app=api`"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_container_lists_the_ones_that_exist() {
        let pods = vec![pod("api-a", "Running", true, &["app", "sidecar"])];
        let err = pick_container("shop", &deploy(), "db", None, pods).unwrap_err();
        assert!(matches!(err, ResolveError::NoSuchContainer { .. }));
        assert!(err.to_string().contains("(it has: app, sidecar)"), "{err}");
    }
}
