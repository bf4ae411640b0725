//! kube-rs against kube-sim: the client library backup-ns uses must list, patch, watch and wait unchanged.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use kube_sim::Sim;
use serde_json::json;

async fn client(sim: &Sim) -> Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(sim.kubeconfig_path()).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kubeconfig valid");
    Client::try_from(config).expect("client")
}

fn vs_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"),
        "volumesnapshots",
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

const SEED: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: app}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-hostpath-snapclass
  annotations: {snapshot.storage.kubernetes.io/is-default-class: "true"}
driver: hostpath.csi.k8s.io
deletionPolicy: Retain
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_condition_sees_a_snapshot_become_ready() {
    let sim = Sim::builder()
        .snapshot_delay(Duration::from_millis(300))
        .start()
        .await
        .expect("sim");
    sim.apply_yaml(SEED).expect("seed");
    let client = client(&sim).await;
    let api = vs_api(&client, "app");
    let mut vs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "s1", "labels": {"backup-ns.sh/retain": "days"}},
        "spec": {"source": {"persistentVolumeClaimName": "data"}}
    }))
    .expect("object");
    // The PVC binds asynchronously; wait for it the way a client would.
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client.clone(), "app");
    tokio::time::timeout(
        Duration::from_secs(20),
        await_condition(
            pvcs,
            "data",
            |p: Option<&k8s_openapi::api::core::v1::PersistentVolumeClaim>| {
                p.and_then(|p| p.status.as_ref())
                    .and_then(|s| s.phase.as_deref())
                    == Some("Bound")
            },
        ),
    )
    .await
    .expect("pvc bound in time")
    .expect("watch ok");
    vs.metadata.namespace = Some("app".into());
    api.create(&PostParams::default(), &vs)
        .await
        .expect("created");
    let ready = tokio::time::timeout(
        Duration::from_secs(20),
        await_condition(api.clone(), "s1", |o: Option<&DynamicObject>| {
            o.and_then(|o| o.data.pointer("/status/readyToUse"))
                .and_then(|v| v.as_bool())
                == Some(true)
        }),
    )
    .await
    .expect("ready in time")
    .expect("watch ok")
    .expect("object exists");
    assert!(
        ready
            .data
            .pointer("/status/boundVolumeSnapshotContentName")
            .is_some()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_streams_initial_objects_and_later_changes_with_a_label_selector() {
    let sim = Sim::builder().start().await.expect("sim");
    sim.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default, labels: {w: \"1\"}}\n").expect("seed");
    let client = client(&sim).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let cfg = watcher::Config::default().labels("w=1").page_size(1);
    let mut stream = watcher(api.clone(), cfg).applied_objects().boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("object");
    assert_eq!(first.metadata.name.as_deref(), Some("a"));
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("b".into());
    cm.metadata.labels = Some([("w".to_string(), "1".to_string())].into());
    api.create(&PostParams::default(), &cm)
        .await
        .expect("created");
    let mut other = ConfigMap::default();
    other.metadata.name = Some("unrelated".into());
    api.create(&PostParams::default(), &other)
        .await
        .expect("created");
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .expect("patched");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let o = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("in time")
            .expect("ok")
            .expect("object");
        seen.push((o.metadata.name.clone().unwrap_or_default(), o.data.clone()));
    }
    assert_eq!(seen[0].0, "b");
    assert_eq!(
        seen[1]
            .1
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("v")
    );
    assert!(seen.iter().all(|(n, _)| n != "unrelated"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_types_and_pagination_work_through_kube() {
    let sim = Sim::builder().start().await.expect("sim");
    let client = client(&sim).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..5 {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(format!("c{i}"));
        api.create(&PostParams::default(), &cm)
            .await
            .expect("created");
    }
    let page = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("page 1");
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().expect("continue token");
    let page2 = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(page2.items.len(), 3);
    let ssa = PatchParams::apply("backup-ns").force();
    api.patch("c0", &ssa, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c0"}, "data": {"a": "1"}})))
        .await
        .expect("server-side apply");
    let json_patch: json_patch::Patch = serde_json::from_value(json!([{"op": "test", "path": "/data/a", "value": "1"}, {"op": "add", "path": "/data/b", "value": "2"}])).expect("patch");
    let cm = api
        .patch(
            "c0",
            &PatchParams::default(),
            &Patch::<()>::Json(json_patch),
        )
        .await
        .expect("json patch");
    assert_eq!(
        cm.data
            .as_ref()
            .and_then(|d| d.get("b"))
            .map(String::as_str),
        Some("2")
    );
    let stale = api.get("c1").await.expect("get");
    let mut first = stale.clone();
    first.data = Some([("first".to_string(), "1".to_string())].into());
    api.replace("c1", &PostParams::default(), &first)
        .await
        .expect("first replace");
    let mut changed = stale.clone();
    changed.data = Some([("x".to_string(), "y".to_string())].into());
    let err = api
        .replace("c1", &PostParams::default(), &changed)
        .await
        .expect_err("stale resourceVersion");
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("unexpected error {other}"),
    }
    let missing = api.get("nope").await.expect_err("missing");
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"),
        "{missing}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_mode_serves_tls_and_refuses_service_accounts_without_a_binding() {
    let sim = Sim::builder().rbac(true).start().await.expect("sim");
    assert!(sim.url().starts_with("https://"));
    let admin = client(&sim).await;
    let api: Api<ConfigMap> = Api::namespaced(admin, "default");
    api.list(&ListParams::default())
        .await
        .expect("admin may list");
    let token = sim.token_for("default", "backup");
    let kubeconfig =
        kube::config::Kubeconfig::read_from(sim.kubeconfig_path()).expect("kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    config.auth_info.token = Some(token.into());
    let sa: Api<ConfigMap> = Api::namespaced(Client::try_from(config).expect("client"), "default");
    let err = sa
        .list(&ListParams::default())
        .await
        .expect_err("forbidden");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403 && s.reason == "Forbidden"),
        "{err}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_works_with_streaming_lists() {
    let sim = Sim::builder().start().await.expect("sim");
    sim.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first, namespace: default}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: second, namespace: default}\n")
        .expect("seed");
    let client = client(&sim).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("in time")
            .expect("ok")
            .expect("event");
        match ev {
            watcher::Event::Init => {}
            watcher::Event::InitApply(o) => initial.push(o.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected event before InitDone: {other:?}"),
        }
    }
    initial.sort();
    assert_eq!(initial, vec!["first".to_string(), "second".to_string()]);
    api.delete("first", &Default::default())
        .await
        .expect("deleted");
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("event");
    assert!(
        matches!(ev, watcher::Event::Delete(ref o) if o.metadata.name.as_deref() == Some("first")),
        "{ev:?}"
    );
    sim.shutdown().await;
}
