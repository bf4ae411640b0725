//! `backup-ns delete`: refusals (no confirmation without a terminal, unlabelled snapshots, missing ones) leave
//! everything in place; `--dry-run` only shows; `--yes` switches the content to Delete and removes both.

use crate::support::{Env, eventually, start};

const SNAPSHOTS: &str = r#"
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: ours-1
  namespace: shop
  labels: {backup-ns.sh/type: adhoc, backup-ns.sh/retain: days, backup-ns.sh/pvc: data}
spec:
  source: {persistentVolumeClaimName: data}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: ours-2
  namespace: shop
  labels: {backup-ns.sh/type: cronjob}
spec:
  source: {persistentVolumeClaimName: data}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: foreign-1
  namespace: shop
  labels: {app: velero}
spec:
  source: {persistentVolumeClaimName: data}
"#;

const VS: &str = "snapshot.storage.k8s.io/v1";

async fn with_snapshots() -> Env {
    let env = start(SNAPSHOTS).await;
    for name in ["ours-1", "ours-2", "foreign-1"] {
        eventually(&format!("{name} is ready"), || {
            env.sim
                .get(VS, "volumesnapshots", Some("shop"), name)
                .is_some_and(|v| v["status"]["readyToUse"] == true)
        })
        .await;
    }
    env
}

fn exists(env: &Env, name: &str) -> bool {
    env.sim
        .get(VS, "volumesnapshots", Some("shop"), name)
        .is_some()
}

fn content_of(env: &Env, name: &str) -> String {
    env.sim
        .get(VS, "volumesnapshots", Some("shop"), name)
        .unwrap()["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_delete_refuses_unless_yes_is_given() {
    let env = with_snapshots().await;
    let run = env.run(&["delete", "ours-1", "-n", "shop"], &[]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stdout
            .contains("Will delete 1 snapshot(s) in namespace shop"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains(
            "refusing to delete without confirmation: stdin is not a terminal; pass --yes"
        ),
        "{run:?}"
    );
    assert!(exists(&env, "ours-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_without_backup_ns_labels_are_refused_and_nothing_is_deleted() {
    let env = with_snapshots().await;
    let run = env
        .run(
            &[
                "delete",
                "ours-1",
                "foreign-1",
                "gone-1",
                "-n",
                "shop",
                "--yes",
            ],
            &[],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "VolumeSnapshot shop/foreign-1 has no backup-ns.sh/ labels, so backup-ns did not create it; pass --force"
        ),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("VolumeSnapshot shop/gone-1 does not exist"),
        "{run:?}"
    );
    assert!(run.stderr.contains("nothing was deleted"), "{run:?}");
    assert!(exists(&env, "ours-1") && exists(&env, "foreign-1"));

    let run = env
        .run(
            &["delete", "foreign-1", "-n", "shop", "--yes", "--force"],
            &[],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!exists(&env, "foreign-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_the_snapshot_and_its_content_and_keeps_them() {
    let env = with_snapshots().await;
    let content = content_of(&env, "ours-1");
    let run = env
        .run(&["delete", "ours-1", "-n", "shop", "--dry-run"], &[])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .starts_with("Would delete 1 snapshot(s) in namespace shop"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("VolumeSnapshot shop/ours-1 (pvc data, created ")
            && run.stdout.contains(&format!(
                "VolumeSnapshotContent {content} (deletionPolicy set to Delete)"
            )),
        "{run:?}"
    );
    assert!(
        run.stdout.ends_with("dry run: nothing was deleted\n"),
        "{run:?}"
    );
    assert!(exists(&env, "ours-1"));
    let vsc = env
        .sim
        .get(VS, "volumesnapshotcontents", None, &content)
        .unwrap();
    assert_eq!(vsc["spec"]["deletionPolicy"], "Retain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yes_switches_retained_contents_to_delete_then_deletes_the_snapshots() {
    let env = with_snapshots().await;
    let c1 = content_of(&env, "ours-1");
    let c2 = content_of(&env, "ours-2");
    let run = env
        .run(
            &["delete", "ours-1", "ours-2", "ours-1", "-n", "shop", "-y"],
            &[],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with("Will delete 2 snapshot(s)"),
        "a repeated name counts once: {run:?}"
    );
    assert!(
        run.stdout.contains(&format!(
            "volumesnapshot/ours-1 deleted (VolumeSnapshotContent {c1} switched from Retain to Delete)"
        )),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("volumesnapshot/ours-2 deleted"),
        "{run:?}"
    );
    assert!(!exists(&env, "ours-1") && !exists(&env, "ours-2"));
    eventually(
        "the contents (and so the storage snapshots) are gone too",
        || {
            env.sim
                .get(VS, "volumesnapshotcontents", None, &c1)
                .is_none()
                && env
                    .sim
                    .get(VS, "volumesnapshotcontents", None, &c2)
                    .is_none()
        },
    )
    .await;
    assert!(exists(&env, "foreign-1"), "other snapshots stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_is_refused_even_with_force_and_nothing_is_deleted() {
    let env = start(&format!(
        "{SNAPSHOTS}---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: member-1
  namespace: shop
  labels: {{backup-ns.sh/type: cronjob, groupsnapshot.storage.k8s.io/volumeGroupSnapshotName: nightly}}
spec:
  source: {{persistentVolumeClaimName: data}}
"
    ))
    .await;
    eventually("member-1 exists", || exists(&env, "member-1")).await;
    let run = env
        .run(
            &[
                "delete", "ours-1", "member-1", "-n", "shop", "--yes", "--force",
            ],
            &[],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "VolumeSnapshot shop/member-1 is a member of VolumeGroupSnapshot nightly, and a group's members are \
             deleted only together, through their group (even with --force): \
             `kubectl -n shop delete volumegroupsnapshot nightly`"
        ),
        "{run:?}"
    );
    assert!(run.stderr.contains("nothing was deleted"), "{run:?}");
    assert!(exists(&env, "ours-1") && exists(&env, "member-1"));
}
