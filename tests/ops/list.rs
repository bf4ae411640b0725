//! `backup-ns list`: golden tables of the README's sample history (ages from BACKUP_NS_NOW), filters, formats,
//! the empty result and `--show-kubectl`.

use crate::support::{Env, README_NOW, readme_history, snapshot_yaml, start};

async fn history() -> Env {
    let mut yaml = readme_history("shop", "app");
    // A second namespace for -A, and a snapshot without backup-ns labels that list must never show.
    yaml.push_str(&snapshot_yaml(
        "blog",
        "wp-2025-01-09-020000-abcdef",
        "2025-01-09T02:00:00Z",
        "snapcontent-b10g",
        false,
        &[
            ("backup-ns.sh/pvc", "wp"),
            ("backup-ns.sh/plan", "blog"),
            ("backup-ns.sh/type", "cronjob"),
            ("backup-ns.sh/retain", "daily_weekly_monthly"),
            ("backup-ns.sh/daily", "2025-01-09"),
            ("backup-ns.sh/weekly", "2025-w02"),
            ("backup-ns.sh/monthly", "2025-01"),
        ],
    ));
    yaml.push_str(&snapshot_yaml(
        "shop",
        "manual-by-hand",
        "2025-01-09T10:00:00Z",
        "snapcontent-manual",
        true,
        &[],
    ));
    start(&yaml).await
}

fn names(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .map(|l| l.trim_start_matches("volumesnapshot.snapshot.storage.k8s.io/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_the_readme_history_oldest_first_with_kubectl_ages() {
    let env = history().await;
    let run = env
        .run(&["list", "-n", "shop"], &[("BACKUP_NS_NOW", README_NOW)])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    insta::assert_snapshot!("readme_history", run.stdout);
    // Spot checks against the README's own AGE column.
    for (name, age) in [
        ("data-2024-04-17-001946-s6bah4", " 267d "),
        ("data-2025-01-02-001754-ntwghm", " 7d17h "),
        ("data-2025-01-07-182742-fgztxg", " 46h "),
        ("data-2025-01-09-001749-vfyfeu", " 17h "),
    ] {
        let line = run.stdout.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(line.contains(age), "{name}: {line}");
    }
    assert!(
        !run.stdout.contains("manual-by-hand"),
        "unlabelled snapshots are not listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_all_namespaces_wide_adds_namespace_content_and_class_columns() {
    let env = history().await;
    let run = env
        .run(
            &["list", "-A", "-o", "wide", "--daily"],
            &[("BACKUP_NS_NOW", README_NOW), ("TZ", "Europe/Vienna")],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    insta::assert_snapshot!("all_namespaces_wide_daily", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_narrows_the_list_by_its_label() {
    let env = history().await;
    let now = [("BACKUP_NS_NOW", README_NOW)];
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--adhoc"],
            &[
                "data-2024-12-17-144438-otsedc",
                "data-2025-01-07-182742-fgztxg",
                "data-2025-01-08-180009-yjculw",
            ],
        ),
        (
            &["--weekly"],
            &[
                "data-2024-12-23-001716-teefnb",
                "data-2024-12-30-002012-izgqoi",
                "data-2025-01-01-001709-sivtji",
                "data-2025-01-06-003219-meaukv",
            ],
        ),
        (
            &["--monthly", "--weekly"],
            &["data-2025-01-01-001709-sivtji"],
        ),
        (
            &["--marked", "--cronjob"],
            &["data-2025-01-02-001754-ntwghm"],
        ),
        (&["--pvc", "other"], &[]),
        (&["--plan", "blog"], &[]),
        (
            &["--daily", "--pvc", "data", "--plan", "app"],
            &[
                "data-2025-01-03-001757-vsgkkc",
                "data-2025-01-04-001759-bfzceo",
                "data-2025-01-05-002023-quvkyv",
                "data-2025-01-06-003219-meaukv",
                "data-2025-01-07-003037-wmkylm",
                "data-2025-01-08-001706-crlfxa",
                "data-2025-01-09-001749-vfyfeu",
            ],
        ),
    ];
    for (filters, want) in cases {
        let mut args = vec!["list", "-n", "shop", "-o", "name"];
        args.extend_from_slice(filters);
        let run = env.run(&args, &now).await;
        assert_eq!(run.code, 0, "{filters:?}: {run:?}");
        assert_eq!(names(&run.stdout), *want, "{filters:?}");
    }
    let run = env
        .run(&["list", "-A", "--plan", "blog", "-o", "name"], &now)
        .await;
    assert_eq!(names(&run.stdout), ["wp-2025-01-09-020000-abcdef"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_result_says_so_and_names_the_selector() {
    let env = history().await;
    let run = env.run(&["list", "-n", "empty", "--weekly"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr.trim(),
        "No backup-ns snapshots found in namespace empty matching label selector \
         `backup-ns.sh/retain,backup-ns.sh/weekly`."
    );
    // The kubeconfig's context namespace (`default`) applies without -n.
    let run = env.run(&["list"], &[]).await;
    assert!(run.stderr.contains("in namespace default"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_kubectl_prints_the_equivalent_kubectl_command_on_stderr() {
    let env = history().await;
    let run = env
        .run(
            &[
                "list",
                "-n",
                "shop",
                "--marked",
                "--show-kubectl",
                "-o",
                "name",
            ],
            &[],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stderr.trim(),
        "kubectl get volumesnapshots -n shop -l backup-ns.sh/retain,backup-ns.sh/delete-after \
         -L backup-ns.sh/pvc,backup-ns.sh/type,backup-ns.sh/retain,backup-ns.sh/daily,backup-ns.sh/weekly,\
         backup-ns.sh/monthly,backup-ns.sh/delete-after --sort-by=.status.creationTime"
    );
    assert_eq!(run.stdout.lines().count(), 4, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_yaml_output_are_kubectl_style_lists_sorted_by_creation() {
    let env = history().await;
    let run = env.run(&["list", "-n", "shop", "-o", "json"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("valid JSON");
    assert_eq!(doc["kind"], "List");
    let items = doc["items"].as_array().unwrap();
    assert_eq!(items.len(), 23);
    assert_eq!(items[0]["kind"], "VolumeSnapshot");
    assert_eq!(
        items[0]["metadata"]["name"],
        "data-2024-04-17-001946-s6bah4"
    );
    assert_eq!(
        items[22]["metadata"]["name"],
        "data-2025-01-09-001749-vfyfeu"
    );

    let run = env
        .run(&["list", "-n", "shop", "-o", "yaml", "--adhoc"], &[])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc: serde_json::Value = serde_saphyr::from_str(&run.stdout).expect("valid YAML");
    assert_eq!(doc["items"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_and_a_bad_clock_are_usage_errors() {
    let env = history().await;
    let run = env.run(&["list", "-A", "-n", "shop"], &[]).await;
    assert_eq!(run.code, 2, "{run:?}");
    let run = env.run(&["list", "--adhoc", "--cronjob"], &[]).await;
    assert_eq!(run.code, 2, "{run:?}");
    let run = env.run(&["list"], &[("BACKUP_NS_NOW", "yesterday")]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("BACKUP_NS_NOW=`yesterday`"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_apiserver_is_reported_with_what_was_listed_and_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    // Port 1 on loopback: nothing listens there.
    std::fs::write(
        &kubeconfig,
        kube_sim::kubeconfig_yaml("http://127.0.0.1:1", "t", None),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_backup-ns"))
        .env_clear()
        .current_dir(dir.path())
        .args(["list", "-n", "shop", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not list volumesnapshots.snapshot.storage.k8s.io in namespace shop"),
        "{stderr}"
    );
    assert!(
        stderr.contains("check the server URL in the kubeconfig"),
        "{stderr}"
    );
}
