//! Workload resolution over the wire: deployment/statefulset selectors to Running+Ready pods.

use crate::support::start;
use backup_ns::vocab::exec::{PodResolver, ResolveError};
use backup_ns::vocab::workload::WorkloadRef;
use kube_sim::PodPhase;

const WORKLOADS: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels:
      app: api
  template:
    metadata:
      labels:
        app: api
    spec:
      containers:
      - name: app
        image: api
      - name: db
        image: postgres
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: pg
  namespace: shop
spec:
  replicas: 1
  serviceName: pg
  selector:
    matchLabels:
      app: pg
  template:
    metadata:
      labels:
        app: pg
    spec:
      containers:
      - name: postgres
        image: postgres
"#;

fn w(s: &str) -> WorkloadRef {
    s.parse().unwrap()
}

#[tokio::test]
async fn workloads_resolve_to_a_ready_pod_with_the_container() {
    let env = start(WORKLOADS).await;
    let resolver = env.cluster.pod_resolver();
    crate::support::eventually("the controllers created pods", || {
        env.sim.list("pods", Some("shop")).len() >= 2
    })
    .await;
    let target = resolver
        .resolve("shop", &w("deployment/api"), "db")
        .await
        .unwrap();
    assert_eq!(target.container, "db");
    assert!(target.pod.starts_with("api-"), "{}", target.pod);

    let target = resolver
        .resolve("shop", &w("sts/pg"), "postgres")
        .await
        .unwrap();
    assert_eq!(target.pod, "pg-0");
    let direct = resolver
        .resolve("shop", &w("pod/pg-0"), "postgres")
        .await
        .unwrap();
    assert_eq!(direct, target);
}

#[tokio::test]
async fn resolution_errors_name_the_workload_and_what_is_wrong() {
    let env = start(WORKLOADS).await;
    let resolver = env.cluster.pod_resolver();
    crate::support::eventually("the controllers created pods", || {
        env.sim.list("pods", Some("shop")).len() >= 2
    })
    .await;
    let err = resolver
        .resolve("shop", &w("deployment/nope"), "db")
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "deployment/nope not found in namespace shop"
    );
    // A near name of the same kind is suggested; a Deployment named like the StatefulSet is not.
    let err = resolver
        .resolve("shop", &w("deployment/apii"), "db")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "deployment/apii not found in namespace shop; did you mean `deployment/api`?"
    );
    let err = resolver
        .resolve("shop", &w("sts/pgg"), "postgres")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("; did you mean `statefulset/pg`?"),
        "{err}"
    );
    let err = resolver
        .resolve("shop", &w("deployment/pg"), "postgres")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "deployment/pg not found in namespace shop");
    let err = resolver
        .resolve("shop", &w("sts/pg"), "postgress")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("(it has: postgres); did you mean `postgres`?"),
        "{err}"
    );

    let err = resolver
        .resolve("shop", &w("sts/pg"), "mysql")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("has no container `mysql` (it has: postgres)"),
        "{err}"
    );

    env.sim
        .set_pod_phase("shop", "pg-0", PodPhase::NotReady)
        .unwrap();
    let err = resolver
        .resolve("shop", &w("sts/pg"), "postgres")
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::NoReadyPod { .. }), "{err}");
    assert!(
        err.to_string().contains("pg-0 (Running, not Ready)"),
        "{err}"
    );
}
