//! The RBAC split of deploy/static/backup-ns.yaml (tenant) and deploy/static/backup-ns-controller.yaml (cluster-wide), applied
//! verbatim (the tenant namespace rewritten) to kube-sim in RBAC mode.

use super::rbac_model::{
    CONTROLLER_ALLOWED, CONTROLLER_FORBIDDEN, OTHER, TENANT, TENANT_ALLOWED, TENANT_FORBIDDEN,
    tenant_manifest,
};
use super::{backup_ns, doc, docs, kubectl, read, text};
use kube_sim::Sim;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Two namespaces with a Bound PVC each and a default Retain class, as a cluster admin would have them.
pub(super) fn cluster_yaml() -> String {
    let mut y = String::from(
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata:\n  name: csi-hostpath-snapclass\n  \
         annotations:\n    snapshot.storage.kubernetes.io/is-default-class: \"true\"\ndriver: hostpath.csi.k8s.io\n\
         deletionPolicy: Retain\n",
    );
    for ns in [TENANT, OTHER] {
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\napiVersion: v1\nkind: \
             PersistentVolumeClaim\nmetadata:\n  name: data\n  namespace: {ns}\nspec:\n  accessModes: \
             [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n"
        ));
    }
    y
}

/// Apply `manifests` with the real kubectl as the admin, exactly as an operator would.
pub(super) async fn apply_as_admin(sim: &Sim, home: &Path, manifests: &[String]) {
    for manifest in manifests {
        let out = kubectl(
            sim.kubeconfig_path(),
            home,
            None,
            &["apply", "-f", "-"],
            Some(manifest),
        )
        .await;
        assert!(out.status.success(), "kubectl apply: {}", text(&out));
    }
}

struct Env {
    sim: Sim,
    home: tempfile::TempDir,
    tenant: String,
    controller: String,
}

impl Env {
    async fn start() -> Env {
        let sim = Sim::builder()
            .rbac(true)
            .snapshot_delay(Duration::ZERO)
            .start()
            .await
            .expect("kube-sim starts");
        tokio::time::sleep(Duration::from_millis(50)).await;
        sim.apply_yaml(&cluster_yaml()).expect("cluster fixture");
        let home = tempfile::tempdir().expect("temp HOME");
        apply_as_admin(
            &sim,
            home.path(),
            &[
                read("deploy/static/backup-ns-controller.yaml"),
                tenant_manifest(TENANT),
            ],
        )
        .await;
        let tenant = sim.token_for(TENANT, "backup-ns");
        let controller = sim.token_for("backup-ns-system", "backup-ns-controller");
        for _ in 0..250 {
            if sim
                .list("persistentvolumeclaims", None)
                .iter()
                .all(|p| p["status"]["phase"] == "Bound")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Env {
            sim,
            home,
            tenant,
            controller,
        }
    }

    async fn can_i(&self, token: &str, args: &[&str]) -> bool {
        let mut a = vec!["auth", "can-i"];
        a.extend_from_slice(args);
        let out = kubectl(
            self.sim.kubeconfig_path(),
            self.home.path(),
            Some(token),
            &a,
            None,
        )
        .await;
        match String::from_utf8_lossy(&out.stdout).trim() {
            "yes" => true,
            "no" => false,
            _ => panic!("kubectl auth can-i {args:?}: {}", text(&out)),
        }
    }

    async fn kubectl_as(&self, token: &str, args: &[&str]) -> std::process::Output {
        kubectl(
            self.sim.kubeconfig_path(),
            self.home.path(),
            Some(token),
            args,
            None,
        )
        .await
    }

    /// A kubeconfig for a service account: the admin's (server + CA) with the token swapped.
    fn kubeconfig_as(&self, token: &str, name: &str) -> PathBuf {
        let admin = std::fs::read_to_string(self.sim.kubeconfig_path()).expect("admin kubeconfig");
        let (head, rest) = admin
            .split_once("    token: ")
            .expect("kubeconfig has a token");
        let tail = rest.split_once('\n').map(|(_, t)| t).unwrap_or("");
        let path = self.home.path().join(name);
        std::fs::write(&path, format!("{head}    token: {token}\n{tail}"))
            .expect("write kubeconfig");
        path
    }

    /// A ready snapshot of `ns/data` created by the admin; returns (snapshot, content) names.
    async fn snapshot(&self, ns: &str, name: &str) -> (String, String) {
        self.sim
            .apply_yaml(&format!(
                "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: {name}\n  \
                 namespace: {ns}\n  labels:\n    backup-ns.sh/retain: daily_weekly_monthly\nspec:\n  source:\n    \
                 persistentVolumeClaimName: data\n"
            ))
            .expect("snapshot fixture");
        for _ in 0..250 {
            let vs = self.sim.get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some(ns),
                name,
            );
            if let Some(c) = vs
                .as_ref()
                .and_then(|v| v["status"]["boundVolumeSnapshotContentName"].as_str())
            {
                return (name.to_owned(), c.to_owned());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("snapshot {ns}/{name} was never bound");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_service_account_can_snapshot_label_and_exec_in_its_namespace_only() {
    let env = Env::start().await;
    let t = env.tenant.clone();
    for allowed in TENANT_ALLOWED {
        assert!(
            env.can_i(&t, allowed).await,
            "tenant should be allowed: {allowed:?}"
        );
    }
    for forbidden in TENANT_FORBIDDEN {
        assert!(
            !env.can_i(&t, forbidden).await,
            "tenant must be forbidden: {forbidden:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_service_account_does_the_cluster_wide_work_and_nothing_tenant_private() {
    let env = Env::start().await;
    let c = env.controller.clone();
    for allowed in CONTROLLER_ALLOWED {
        assert!(
            env.can_i(&c, allowed).await,
            "controller should be allowed: {allowed:?}"
        );
    }
    for forbidden in CONTROLLER_FORBIDDEN {
        assert!(
            !env.can_i(&c, forbidden).await,
            "controller must be forbidden: {forbidden:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_requests_follow_the_split_tenant_labels_but_only_the_controller_deletes() {
    let env = Env::start().await;
    let (vs, vsc) = env.snapshot(TENANT, "nightly-1").await;
    let (other_vs, _) = env.snapshot(OTHER, "nightly-1").await;

    let label = env
        .kubectl_as(
            &env.tenant,
            &[
                "label",
                "vs",
                &vs,
                "-n",
                TENANT,
                "backup-ns.sh/delete-after=2025-01-02",
            ],
        )
        .await;
    assert!(
        label.status.success(),
        "tenant marks its snapshot: {}",
        super::text(&label)
    );

    let refused = [
        vec!["delete", "vs", vs.as_str(), "-n", TENANT],
        vec!["label", "vs", other_vs.as_str(), "-n", OTHER, "x=y"],
        vec![
            "patch",
            "vsc",
            vsc.as_str(),
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"deletionPolicy":"Delete"}}"#,
        ],
    ];
    for args in refused {
        let out = env.kubectl_as(&env.tenant, &args).await;
        assert!(!out.status.success(), "tenant must be refused {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Forbidden") || err.contains("forbidden"),
            "{args:?}: {err}"
        );
    }

    let patch = env
        .kubectl_as(
            &env.controller,
            &[
                "patch",
                "vsc",
                &vsc,
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"deletionPolicy":"Delete"}}"#,
            ],
        )
        .await;
    assert!(
        patch.status.success(),
        "controller patches the content: {}",
        super::text(&patch)
    );
    let delete = env
        .kubectl_as(&env.controller, &["delete", "vs", &vs, "-n", TENANT])
        .await;
    assert!(
        delete.status.success(),
        "controller deletes: {}",
        super::text(&delete)
    );
    assert!(
        env.sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some(TENANT),
                &vs
            )
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_ns_binary_runs_as_the_tenant_and_the_controller_with_their_manifests_settings() {
    let env = Env::start().await;
    let home = env.home.path();
    let tenant_kc = env.kubeconfig_as(&env.tenant, "tenant.kubeconfig");
    let controller_kc = env.kubeconfig_as(&env.controller, "controller.kubeconfig");
    let plan = home.join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "name: app\nnamespace: {TENANT}\ntargets: [data]\nsnapshot:\n  type: cronjob\nretention: standard\n\
             lock:\n  enabled: false\n"
        ),
    )
    .expect("plan");
    let now = [("BACKUP_NS_NOW", "2025-03-01T00:15:00Z")];
    fn with_kubeconfig<'a>(kc: &'a Path, now: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut e = vec![("KUBECONFIG", kc.to_str().expect("utf8"))];
        e.extend_from_slice(now);
        e
    }
    let tenant_env = |kc| with_kubeconfig(kc, &now);

    let run = backup_ns(
        &["run", plan.to_str().expect("utf8")],
        &tenant_env(&tenant_kc),
        home,
    );
    assert!(run.status.success(), "tenant runs its plan: {}", text(&run));
    assert_eq!(
        env.sim.list("volumesnapshots", Some(TENANT)).len(),
        1,
        "{}",
        text(&run)
    );

    // The tenant cannot do the controller's job: listing all namespaces is refused.
    let as_tenant = backup_ns(
        &["controller", "-A", "--delete-pause", "0s"],
        &tenant_env(&tenant_kc),
        home,
    );
    assert!(
        !as_tenant.status.success(),
        "tenant must not run the controller: {}",
        text(&as_tenant)
    );
    assert!(
        text(&as_tenant).to_lowercase().contains("forbidden"),
        "{}",
        text(&as_tenant)
    );

    // The controller with its ConfigMap's settings as env (envFrom), as the CronJob runs it.
    let manifest = docs(&read("deploy/static/backup-ns-controller.yaml"));
    let cm = doc(&manifest, "ConfigMap", "backup-ns-controller");
    let settings: Vec<(String, String)> = cm["data"]
        .as_object()
        .expect("ConfigMap data")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_owned()))
        .collect();
    let mut cenv: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    cenv.extend(tenant_env(&controller_kc));
    cenv.push(("BACKUP_NS_DELETE_PAUSE", "0s"));
    let cronjob = doc(&manifest, "CronJob", "backup-ns-controller");
    let args: Vec<&str> = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        [0]["args"]
        .as_array()
        .expect("controller args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect();
    let ctl = backup_ns(&args, &cenv, home);
    assert!(
        ctl.status.success(),
        "controller runs with the manifest's args and env: {}",
        text(&ctl)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_gets_403_on_other_namespaces_snapshots_and_on_every_content_write() {
    let env = Env::start().await;
    let (other_vs, _) = env.snapshot(OTHER, "nightly-1").await;
    let (_, vsc) = env.snapshot(TENANT, "nightly-1").await;
    let admin = kubectl(
        env.sim.kubeconfig_path(),
        env.home.path(),
        None,
        &["get", "vsc", &vsc, "-o", "json"],
        None,
    )
    .await;
    assert!(admin.status.success(), "{}", text(&admin));
    let content = String::from_utf8_lossy(&admin.stdout).into_owned();
    let new_vs = format!(
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: sneaky\n  namespace: \
         {OTHER}\nspec:\n  source:\n    persistentVolumeClaimName: data\n"
    );
    let new_vsc = "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotContent\nmetadata:\n  name: \
                   sneaky\nspec:\n  deletionPolicy: Delete\n  driver: hostpath.csi.k8s.io\n  source:\n    \
                   snapshotHandle: h\n  volumeSnapshotRef:\n    name: x\n    namespace: shop\n";
    let merge = r#"{"spec":{"deletionPolicy":"Delete"}}"#;
    // Every request the tenant might try: (what, kubectl args, stdin).
    let requests: Vec<(&str, Vec<&str>, Option<&str>)> = vec![
        ("get", vec!["get", "vs", &other_vs, "-n", OTHER], None),
        ("list", vec!["get", "vs", "-n", OTHER], None),
        (
            "watch",
            vec!["get", "vs", "-n", OTHER, "--watch", "--request-timeout=5s"],
            None,
        ),
        ("create", vec!["create", "-f", "-"], Some(&new_vs)),
        (
            "label",
            vec!["label", "vs", &other_vs, "-n", OTHER, "x=y"],
            None,
        ),
        ("delete", vec!["delete", "vs", &other_vs, "-n", OTHER], None),
        ("content create", vec!["create", "-f", "-"], Some(new_vsc)),
        (
            "content replace",
            vec!["replace", "-f", "-"],
            Some(&content),
        ),
        (
            "content patch",
            vec!["patch", "vsc", &vsc, "--type", "merge", "-p", merge],
            None,
        ),
        ("content label", vec!["label", "vsc", &vsc, "x=y"], None),
        ("content delete", vec!["delete", "vsc", &vsc], None),
        (
            "content deletecollection",
            vec!["delete", "vsc", "--all"],
            None,
        ),
    ];
    for (what, args, stdin) in requests {
        let out = kubectl(
            env.sim.kubeconfig_path(),
            env.home.path(),
            Some(&env.tenant),
            &args,
            stdin,
        )
        .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("(Forbidden)"),
            "tenant {what} must get 403: {}",
            text(&out)
        );
    }
    // Nothing changed: the other tenant's snapshot and the content are as the admin made them.
    assert!(
        env.sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some(OTHER),
                &other_vs
            )
            .is_some_and(|v| v["metadata"]["labels"]["x"].is_null())
    );
    let after = env
        .sim
        .get(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshotcontents",
            None,
            &vsc,
        )
        .expect("content kept");
    assert_eq!(after["spec"]["deletionPolicy"], "Retain");
    assert!(
        env.sim
            .get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshotcontents",
                None,
                "sneaky"
            )
            .is_none()
    );
}
