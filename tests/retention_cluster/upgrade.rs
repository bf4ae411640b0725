//! Upgrade safety: a namespace backed up for nine months by the original tool (its labels, year-less `wNN`
//! weekly values, `days` snapshots with `delete-after`, the `env-config` annotation) is taken over by backup-ns:
//! the same CronJob environment now runs `backup-ns run`, and `backup-ns controller` replaces the pruner. The
//! original's behaviour is modelled here from ../shared/reference/original-behaviour.md, independently of the
//! product's code, and replayed over the same nights: backup-ns never holds fewer snapshots than the original
//! would, ends with exactly the original's for the PVC the original labelled, and labels its own backups in the
//! new form without taking a tier period that a legacy label already holds.

use crate::cli::{backup_ns, backup_ns_with, text};
use crate::support::{Env, Seed, claims_bound, labels, namespace_doc, seed_docs, start};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const NS: &str = "legacy";
/// The original's defaults: `RETAIN_LAST_DAILY`, `_WEEKLY`, `_MONTHLY`.
const KEEP: [(&str, usize); 3] = [("daily", 7), ("weekly", 4), ("monthly", 12)];

/// One snapshot as the original's model holds it.
#[derive(Debug, Clone)]
struct Snap {
    name: String,
    pvc: &'static str,
    created: DateTime<Utc>,
    labels: BTreeMap<String, String>,
}

fn at(day: NaiveDate, hh: u32, mm: u32) -> DateTime<Utc> {
    day.and_time(NaiveTime::from_hms_opt(hh, mm, 0).unwrap())
        .and_utc()
}

/// The original's backup run (original-behaviour.md, "What a backup run does", step 6): `daily_weekly_monthly`
/// adds each tier label only if no snapshot in the namespace has that exact value (namespace-wide, and the weekly
/// value `wNN` has no year); `days` sets `retain-days` and `delete-after = today + N`.
fn original_backup(
    ns: &mut Vec<Snap>,
    pvc: &'static str,
    created: DateTime<Utc>,
    days: Option<i64>,
) {
    let day = created.date_naive();
    let mut l = labels(&[
        ("backup-ns.sh/pvc", pvc),
        (
            "backup-ns.sh/type",
            if days.is_some() { "adhoc" } else { "cronjob" },
        ),
    ]);
    match days {
        Some(n) => {
            l.insert("backup-ns.sh/retain".into(), "days".into());
            l.insert("backup-ns.sh/retain-days".into(), n.to_string());
            l.insert(
                "backup-ns.sh/delete-after".into(),
                (day + Duration::days(n)).to_string(),
            );
        }
        None => {
            l.insert("backup-ns.sh/retain".into(), "daily_weekly_monthly".into());
            for (tier, value) in [
                ("daily", day.to_string()),
                ("weekly", format!("w{:02}", day.iso_week().week())),
                ("monthly", format!("{:04}-{:02}", day.year(), day.month())),
            ] {
                let key = format!("backup-ns.sh/{tier}");
                if !ns.iter().any(|s| s.labels.get(&key) == Some(&value)) {
                    l.insert(key, value);
                }
            }
        }
    }
    ns.push(Snap {
        name: format!("{pvc}-{}-abcdef", created.format("%Y-%m-%d-%H%M%S")),
        pvc,
        created,
        labels: l,
    });
}

/// The original's pruner (original-behaviour.md, "Retention, marking, deletion"): per PVC and tier, the newest N
/// carrying the label keep it; then a `daily_weekly_monthly` snapshot with no tier label and no `delete-after`
/// is marked with today; then every managed snapshot whose `delete-after` is before today goes.
fn original_prune(ns: &mut Vec<Snap>, today: NaiveDate) {
    let pvcs: BTreeSet<&'static str> = ns.iter().map(|s| s.pvc).collect();
    for pvc in pvcs {
        for (tier, keep) in KEEP {
            let key = format!("backup-ns.sh/{tier}");
            let mut carrying: Vec<usize> = (0..ns.len())
                .filter(|&i| ns[i].pvc == pvc && ns[i].labels.contains_key(&key))
                .collect();
            carrying.sort_by_key(|&i| std::cmp::Reverse(ns[i].created));
            for &i in carrying.iter().skip(keep) {
                ns[i].labels.remove(&key);
            }
        }
    }
    for s in ns.iter_mut() {
        let l = &mut s.labels;
        if l.get("backup-ns.sh/retain").map(String::as_str) == Some("daily_weekly_monthly")
            && ["daily", "weekly", "monthly", "delete-after"]
                .iter()
                .all(|t| !l.contains_key(&format!("backup-ns.sh/{t}")))
        {
            l.insert("backup-ns.sh/delete-after".into(), today.to_string());
        }
    }
    ns.retain(|s| {
        !(s.labels.contains_key("backup-ns.sh/retain")
            && s.labels
                .get("backup-ns.sh/delete-after")
                .is_some_and(|d| d.as_str() < today.to_string().as_str()))
    });
}

/// One original night: `data`'s backup at 01:30, `logs`' at 01:40, a `days` adhoc backup of `data` at 12:00 on
/// the 15th, and the pruner at 04:30.
fn original_night(ns: &mut Vec<Snap>, day: NaiveDate) {
    original_backup(ns, "data", at(day, 1, 30), None);
    original_backup(ns, "logs", at(day, 1, 40), None);
    original_prune(ns, day);
    if day.day() == 15 {
        original_backup(ns, "data", at(day, 12, 0), Some(30));
    }
}

/// How a snapshot is compared across the two worlds (names differ): its PVC and the hour it was taken.
fn key(pvc: &str, created: DateTime<Utc>) -> String {
    format!("{pvc} {}", created.format("%Y-%m-%d %H"))
}

fn original_keys(ns: &[Snap]) -> BTreeSet<String> {
    ns.iter().map(|s| key(s.pvc, s.created)).collect()
}

fn cluster_snapshots(env: &Env) -> Vec<Value> {
    env.sim.list("volumesnapshots", Some(NS))
}

fn cluster_keys(env: &Env) -> BTreeSet<String> {
    cluster_snapshots(env)
        .iter()
        .map(|v| {
            let pvc = v["metadata"]["labels"]["backup-ns.sh/pvc"]
                .as_str()
                .unwrap_or("?");
            let created = v["status"]["creationTime"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default();
            key(pvc, created)
        })
        .collect()
}

/// The env-config annotation the original wrote (step 7): its `BAK_*` variables, one `KEY='value'` per line.
fn env_config(pvc: &str) -> String {
    format!(
        "BAK_DB_SKIP='true'\nBAK_NAMESPACE='{NS}'\nBAK_PVC_NAME='{pvc}'\nBAK_LABEL_VS_RETAIN='daily_weekly_monthly'\n"
    )
}

/// The original's state at the upgrade, loaded verbatim (with its ready contents, `Delete` as its class had).
fn seed_cluster(env: &Env, ns: &[Snap]) {
    let mut yaml = namespace_doc(NS);
    for pvc in ["data", "logs"] {
        yaml.push_str(&format!(
            "---\n{}\n",
            serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": pvc, "namespace": NS},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        ));
    }
    for s in ns {
        let docs = seed_docs(&Seed {
            namespace: NS,
            name: &s.name,
            pvc: s.pvc,
            labels: s.labels.clone(),
            retention: None,
            created: s.created,
            policy: "Delete",
        });
        let (content, vs) = docs.split_once("\n---\n").expect("two documents");
        let mut vs: Value = serde_json::from_str(vs.trim()).expect("vs json");
        vs["metadata"]["annotations"]["backup-ns.sh/env-config"] = env_config(s.pvc).into();
        yaml.push_str(&format!("---\n{content}\n---\n{vs}\n"));
    }
    env.sim
        .apply_yaml(&yaml)
        .expect("the original's snapshots load");
}

/// The same CronJob environment as before the upgrade, now running `backup-ns run` (no plan file).
async fn product_backup(env: &Env, pvc: &str, created: DateTime<Utc>) {
    env.sim.clock().set(created);
    let now = created.to_rfc3339();
    let out = backup_ns_with(
        env,
        &["run"],
        &now,
        &[
            ("BAK_NAMESPACE", NS),
            ("BAK_PVC_NAME", pvc),
            ("BAK_DB_SKIP", "true"),
            ("BAK_LABEL_VS_TYPE", "cronjob"),
            ("BAK_LABEL_VS_RETAIN", "daily_weekly_monthly"),
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "run {pvc} at {now}: {}",
        text(&out)
    );
}

async fn product_prune(env: &Env, day: NaiveDate) {
    let now = at(day, 4, 30);
    env.sim.clock().set(now);
    let out = backup_ns(
        env,
        &["controller", "-A", "--delete-pause", "0s"],
        &now.to_rfc3339(),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "controller on {day}: {}",
        text(&out)
    );
}

fn labels_of(env: &Env, pvc: &str, created: DateTime<Utc>) -> BTreeMap<String, String> {
    let want = key(pvc, created);
    let vs = cluster_snapshots(env)
        .into_iter()
        .find(|v| {
            v["metadata"]["labels"]["backup-ns.sh/pvc"] == pvc
                && v["status"]["creationTime"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| key(pvc, t.with_timezone(&Utc)) == want)
        })
        .unwrap_or_else(|| panic!("no snapshot {want}"));
    serde_json::from_value(vs["metadata"]["labels"].clone()).expect("labels")
}

fn tiers(l: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    ["daily", "weekly", "monthly", "delete-after"]
        .into_iter()
        .filter_map(|t| l.get(&format!("backup-ns.sh/{t}")).map(|v| (t, v.as_str())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_backed_up_by_the_original_is_listed_kept_and_pruned_as_the_original_would() {
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    // Nine months of the original, across a year end (2024-12-30 is in ISO week 1 of 2025: `w01`).
    let mut original = Vec::new();
    let mut d = day("2024-06-01");
    while d <= day("2025-02-27") {
        original_night(&mut original, d);
        d += Duration::days(1);
    }
    let legacy_weekly: Vec<&str> = original
        .iter()
        .filter_map(|s| s.labels.get("backup-ns.sh/weekly").map(String::as_str))
        .collect();
    assert!(
        legacy_weekly.contains(&"w09") && legacy_weekly.iter().all(|w| w.len() == 3),
        "{legacy_weekly:?}"
    );

    let env = start().await;
    seed_cluster(&env, &original);
    claims_bound(&env.sim, NS).await;
    assert_eq!(cluster_keys(&env), original_keys(&original));

    // Listed: every one of them is managed.
    let out = backup_ns(&env, &["list", "-n", NS], "2025-02-27T12:00:00Z").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for s in &original {
        assert!(
            stdout.contains(&s.name),
            "{} not listed: {}",
            s.name,
            text(&out)
        );
    }

    // Three weeks of nightly backups and pruning in both worlds, then four nights of pruning only.
    let mut d = day("2025-02-28");
    while d <= day("2025-03-24") {
        let backups = d <= day("2025-03-20");
        if backups {
            original_backup(&mut original, "data", at(d, 1, 30), None);
            original_backup(&mut original, "logs", at(d, 1, 40), None);
            product_backup(&env, "data", at(d, 1, 30)).await;
            product_backup(&env, "logs", at(d, 1, 40)).await;
        }
        if d == day("2025-02-28") {
            // The first backup after the upgrade, a Friday of ISO week 9: the legacy `w09` of Monday 02-24 and
            // the original's `2025-02` already hold the week and the month, so it gets its day only.
            let l = labels_of(&env, "data", at(d, 1, 30));
            assert_eq!(
                tiers(&l),
                BTreeMap::from([("daily", "2025-02-28")]),
                "{l:?}"
            );
        }
        original_prune(&mut original, d);
        product_prune(&env, d).await;
        let kept = cluster_keys(&env);
        let lost: Vec<_> = original_keys(&original)
            .difference(&kept)
            .cloned()
            .collect();
        assert!(
            lost.is_empty(),
            "on {d} backup-ns deleted what the original keeps: {lost:?}"
        );
        d += Duration::days(1);
    }

    // `data`, which the original labelled, ends exactly as the original leaves it: the newest 7 daily, 4 weekly
    // (`w09`, then the new form) and every monthly since June, the `days` snapshot of 2025-02-15 gone on 03-18.
    let only = |keys: &BTreeSet<String>, pvc: &str| -> BTreeSet<String> {
        keys.iter()
            .filter(|k| k.starts_with(pvc))
            .cloned()
            .collect()
    };
    assert_eq!(
        only(&cluster_keys(&env), "data "),
        only(&original_keys(&original), "data ")
    );
    // `logs` never got a tier label from the original (its check is namespace-wide and `data` goes first), so the
    // original keeps none of it. backup-ns labels per PVC: its own `logs` backups keep 7 daily (03-14 to 03-20),
    // 4 weekly (the first of weeks 9 to 12) and monthly (02-28, 03-01).
    assert!(only(&original_keys(&original), "logs ").is_empty());
    let logs: BTreeSet<String> = [
        "2025-02-28",
        "2025-03-01",
        "2025-03-03",
        "2025-03-10",
        "2025-03-14",
        "2025-03-15",
        "2025-03-16",
        "2025-03-17",
        "2025-03-18",
        "2025-03-19",
        "2025-03-20",
    ]
    .iter()
    .map(|d| key("logs", at(day(d), 1, 40)))
    .collect();
    assert_eq!(only(&cluster_keys(&env), "logs "), logs);

    // The new labels: 02-28 (Friday of ISO week 9) gets its day only, since the legacy `w09` of Monday 02-24 and
    // the original's `2025-02` already hold the week and the month; Saturday 03-01 opens March; Monday 03-03
    // opens week 10 in the new form, with its year.
    let first = labels_of(&env, "data", at(day("2025-02-24"), 1, 30));
    assert_eq!(tiers(&first).get("weekly"), Some(&"w09"), "{first:?}");
    for (d, want) in [
        ("2025-03-01", vec![("monthly", "2025-03")]),
        ("2025-03-03", vec![("weekly", "2025-w10")]),
        (
            "2025-03-17",
            vec![("daily", "2025-03-17"), ("weekly", "2025-w12")],
        ),
        ("2025-03-20", vec![("daily", "2025-03-20")]),
    ] {
        let l = labels_of(&env, "data", at(day(d), 1, 30));
        let got = tiers(&l);
        for (tier, value) in want {
            assert_eq!(got.get(tier), Some(&value), "{d}: {l:?}");
        }
        assert_eq!(
            l.get("backup-ns.sh/retain").map(String::as_str),
            Some("daily_weekly_monthly")
        );
    }
    let l = labels_of(&env, "data", at(day("2025-03-20"), 1, 30));
    assert!(
        !l.contains_key("backup-ns.sh/weekly") && !l.contains_key("backup-ns.sh/monthly"),
        "{l:?}"
    );
}
