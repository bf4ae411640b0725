//! Table-driven tests replaying the original's documented history, and property tests for every invariant.

use super::*;
use crate::labels::{DAILY, MONTHLY, PVC, PriorSnapshot, TYPE, WEEKLY, YEARLY, creation_labels};
use chrono::{Duration, TimeZone};
use proptest::prelude::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn clock(s: &str) -> Clock {
    Clock::fixed(utc(s), chrono_tz::UTC)
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Test fixture builder: `snap("ns", "name").pvc("data").created(..).gfs().label(DAILY, "..")`.
fn snap(ns: &str, name: &str) -> ObservedSnapshot {
    ObservedSnapshot {
        namespace: ns.to_string(),
        name: name.to_string(),
        pvc: "data".to_string(),
        labels: BTreeMap::from([(PVC.to_string(), "data".to_string())]),
        retention: None,
        created: None,
        ready: true,
        content: None,
        deleting: false,
        group: None,
        run_id: None,
    }
}

impl ObservedSnapshot {
    fn created(mut self, t: &str) -> Self {
        self.created = Some(utc(t));
        self
    }
    fn pvc(mut self, pvc: &str) -> Self {
        self.pvc = pvc.to_string();
        self.labels.insert(PVC.to_string(), pvc.to_string());
        self
    }
    fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.to_string(), v.to_string());
        self
    }
    fn gfs(self) -> Self {
        self.label(RETAIN, RETAIN_GFS)
    }
    fn not_ready(mut self) -> Self {
        self.ready = false;
        self
    }
    fn annotated(mut self, json: &str) -> Self {
        self.retention = Some(json.to_string());
        self
    }
    /// A member of VolumeGroupSnapshot `group`, as the snapshot controller labels it.
    fn member_of(mut self, group: &str) -> Self {
        self.group = Some(group.to_string());
        self.label(labels::GROUP_MEMBER, group)
    }
    /// Taken by `backup-ns run` of plan `app` with run id `id`.
    fn in_run(mut self, id: &str) -> Self {
        self.run_id = Some(id.to_string());
        self.label(labels::PLAN, "app")
    }
}

/// The sample `backup-ns list` output from the original's README (namespace go-starter-dev), column by column:
/// name, type, retain, daily, weekly, monthly, delete-after. Creation times are read from the names (UTC).
const README_SAMPLE: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
    (
        "data-2024-04-17-001946-s6bah4",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "",
        "2024-04",
        "",
    ),
    (
        "data-2024-05-01-001827-atxtnf",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "",
        "2024-05",
        "",
    ),
    (
        "data-2024-06-01-001959-7osghz",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "",
        "2024-06",
        "",
    ),
    (
        "data-2024-07-01-001713-xm0gxn",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "",
        "2024-07",
        "",
    ),
    (
        "data-2024-08-01-001708-7l3q5d",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "",
        "2024-08",
        "",
    ),
    (
        "data-2024-09-01-001759-aw132j",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "",
        "2024-09",
        "",
    ),
    (
        "data-2024-10-01-001717-hi2hb6",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "",
        "2024-10",
        "",
    ),
    (
        "data-2024-11-01-003135-fppref",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "",
        "2024-11",
        "",
    ),
    (
        "data-2024-12-01-001746-kbxebe",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "",
        "2024-12",
        "",
    ),
    (
        "data-2024-12-17-144438-otsedc",
        "adhoc",
        "days",
        "",
        "",
        "",
        "2025-01-16",
    ),
    (
        "data-2024-12-23-001716-teefnb",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "w52",
        "",
        "",
    ),
    (
        "data-2024-12-30-002012-izgqoi",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "w53",
        "",
        "",
    ),
    (
        "data-2025-01-01-001709-sivtji",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "w01",
        "2025-01",
        "",
    ),
    (
        "data-2025-01-02-001754-ntwghm",
        "cronjob",
        "daily_weekly_monthly",
        "",
        "",
        "",
        "2025-01-09",
    ),
    (
        "data-2025-01-03-001757-vsgkkc",
        "cronjob",
        "daily_weekly_monthly",
        "2025-01-03",
        "",
        "",
        "",
    ),
    (
        "data-2025-01-04-001759-bfzceo",
        "cronjob",
        "daily_weekly_monthly",
        "2025-01-04",
        "",
        "",
        "",
    ),
    (
        "data-2025-01-05-002023-quvkyv",
        "cronjob",
        "daily_weekly_monthly",
        "2025-01-05",
        "",
        "",
        "",
    ),
    (
        "data-2025-01-06-003219-meaukv",
        "cronjob",
        "daily_weekly_monthly",
        "2025-01-06",
        "w02",
        "",
        "",
    ),
    (
        "data-2025-01-07-003037-wmkylm",
        "cronjob",
        "daily_weekly_monthly",
        "2025-01-07",
        "",
        "",
        "",
    ),
    (
        "data-2025-01-07-182742-fgztxg",
        "adhoc",
        "days",
        "",
        "",
        "",
        "2025-02-06",
    ),
    (
        "data-2025-01-08-001706-crlfxa",
        "cronjob",
        "daily_weekly_monthly",
        "2025-01-08",
        "",
        "",
        "",
    ),
    (
        "data-2025-01-08-180009-yjculw",
        "adhoc",
        "days",
        "",
        "",
        "",
        "2025-02-07",
    ),
    (
        "data-2025-01-09-001749-vfyfeu",
        "cronjob",
        "daily_weekly_monthly",
        "2025-01-09",
        "",
        "",
        "",
    ),
];

fn created_from_name(name: &str) -> DateTime<Utc> {
    let stamp = &name["data-".len().."data-2024-04-17-001946".len()];
    Utc.from_utc_datetime(&chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d-%H%M%S").unwrap())
}

fn readme_sample() -> Vec<ObservedSnapshot> {
    README_SAMPLE
        .iter()
        .map(
            |&(name, ty, retain, daily, weekly, monthly, delete_after)| {
                let mut s = snap("go-starter-dev", name)
                    .label(TYPE, ty)
                    .label(RETAIN, retain);
                s.created = Some(created_from_name(name));
                for (k, v) in [
                    (DAILY, daily),
                    (WEEKLY, weekly),
                    (MONTHLY, monthly),
                    (DELETE_AFTER, delete_after),
                ] {
                    if !v.is_empty() {
                        s = s.label(k, v);
                    }
                }
                s
            },
        )
        .collect()
}

/// The original's behaviour: 7/4/12, marked with today (grace 0).
fn original_options() -> Options {
    Options {
        grace_days: 0,
        ..Options::default()
    }
}

fn changes(plan: &RetentionPlan) -> Vec<(String, Action)> {
    plan.changes()
        .map(|d| (d.name.clone(), d.action.clone()))
        .collect()
}

/// One nightly cronjob backup, labelled at creation exactly as `run` will label it.
fn nightly(history: &mut Vec<ObservedSnapshot>, at: DateTime<Utc>) {
    let c = Clock::fixed(at, chrono_tz::UTC);
    let prior: Vec<PriorSnapshot<'_>> = history
        .iter()
        .map(|s| PriorSnapshot {
            labels: &s.labels,
            source_pvc: Some(&s.pvc),
            created: s.created,
            ready: s.ready,
        })
        .collect();
    let labels = creation_labels(
        "data",
        &RetentionPolicy::Tiers(TierCounts::default()),
        &prior,
        &c,
    );
    let mut s = snap(
        "go-starter-dev",
        &format!("data-{}", at.format("%Y-%m-%d-%H%M%S")),
    )
    .label(TYPE, "cronjob");
    s.labels.extend(labels);
    s.created = Some(at);
    history.push(s);
}

#[test]
fn readme_sample_is_a_fixed_point_at_its_listing_time() {
    let snapshots = readme_sample();
    let plan = plan(
        &snapshots,
        &original_options(),
        &clock("2025-01-09T17:17:00Z"),
    );
    assert_eq!(changes(&plan), vec![]);
    assert!(plan.guards.is_empty());
}

#[test]
fn readme_sample_next_night_drops_the_oldest_daily_and_sweeps_yesterdays_mark() {
    let mut snapshots = readme_sample();
    nightly(&mut snapshots, utc("2025-01-10T00:17:11Z"));
    let new = snapshots.last().unwrap();
    // Only the daily slot is free: w02 and 2025-01 are already held by this PVC.
    assert_eq!(
        new.labels.get(DAILY).map(String::as_str),
        Some("2025-01-10")
    );
    assert!(!new.labels.contains_key(WEEKLY) && !new.labels.contains_key(MONTHLY));

    let plan = plan(
        &snapshots,
        &original_options(),
        &clock("2025-01-10T00:20:00Z"),
    );
    assert_eq!(
        changes(&plan),
        vec![
            (
                "data-2025-01-03-001757-vsgkkc".to_string(),
                Action::RemoveLabel { tier: Tier::Daily }
            ),
            (
                "data-2025-01-03-001757-vsgkkc".to_string(),
                Action::Mark {
                    delete_after: d("2025-01-10")
                }
            ),
            ("data-2025-01-02-001754-ntwghm".to_string(), Action::Delete),
        ]
    );
    let removal = &plan.decisions[0];
    assert_eq!(
        removal.reason,
        "daily=2025-01-03 is the 8th newest ready daily snapshot of pvc data; policy keeps 7 (controller defaults)"
    );
    assert_eq!(plan.guards.len(), 1);
    assert!(!plan.guards[0].tripped);
}

#[test]
fn default_grace_marks_for_tomorrow_so_a_full_day_passes() {
    let mut snapshots = readme_sample();
    nightly(&mut snapshots, utc("2025-01-10T00:17:11Z"));
    let plan = plan(
        &snapshots,
        &Options::default(),
        &clock("2025-01-10T00:20:00Z"),
    );
    assert!(changes(&plan).contains(&(
        "data-2025-01-03-001757-vsgkkc".to_string(),
        Action::Mark {
            delete_after: d("2025-01-11")
        }
    )));
}

#[test]
fn replaying_the_readme_history_for_three_months_keeps_exactly_seven_four_twelve() {
    let mut snapshots = readme_sample();
    let opts = original_options();
    let mut deleted = Vec::new();
    let mut t = utc("2025-01-10T00:17:11Z");
    while t < utc("2025-04-03T00:00:00Z") {
        nightly(&mut snapshots, t);
        let now = clock(&(t + Duration::minutes(5)).to_rfc3339());
        let p = plan(&snapshots, &opts, &now);
        assert!(!p.guard_refused(), "guard tripped on {t}: {:?}", p.guards);
        deleted.extend(
            p.changes()
                .filter(|d| d.action == Action::Delete)
                .map(|d| (t.date_naive(), d.name.clone())),
        );
        apply_decisions(&mut snapshots, &p.decisions);
        t += Duration::days(1);
    }
    let with = |key: &str| -> Vec<String> {
        snapshots
            .iter()
            .filter_map(|s| s.labels.get(key).cloned())
            .collect()
    };
    assert_eq!(
        with(DAILY),
        [
            "2025-03-27",
            "2025-03-28",
            "2025-03-29",
            "2025-03-30",
            "2025-03-31",
            "2025-04-01",
            "2025-04-02"
        ]
    );
    assert_eq!(
        with(WEEKLY),
        ["2025-w11", "2025-w12", "2025-w13", "2025-w14"]
    );
    assert_eq!(
        with(MONTHLY),
        [
            "2024-05", "2024-06", "2024-07", "2024-08", "2024-09", "2024-10", "2024-11", "2024-12",
            "2025-01", "2025-02", "2025-03", "2025-04"
        ]
    );
    // The adhoc `days` snapshots go the day after their delete-after date.
    assert!(deleted.contains(&(d("2025-01-17"), "data-2024-12-17-144438-otsedc".to_string())));
    assert!(deleted.contains(&(d("2025-02-07"), "data-2025-01-07-182742-fgztxg".to_string())));
    assert!(deleted.contains(&(d("2025-02-08"), "data-2025-01-08-180009-yjculw".to_string())));
    // 2024-04 lost its monthly label on 2025-04-01 (13th monthly), was marked that day and swept the next.
    assert!(deleted.contains(&(d("2025-04-02"), "data-2024-04-17-001946-s6bah4".to_string())));
    // The legacy w52/w53/w01 snapshots lost their weekly slots and are gone.
    assert!(
        !snapshots
            .iter()
            .any(|s| s.name.starts_with("data-2024-12-23"))
    );
    // Survivors: 7 daily + 4 weekly + 12 monthly, minus overlaps, plus the two snapshots marked today.
    let unmarked = snapshots
        .iter()
        .filter(|s| !s.labels.contains_key(DELETE_AFTER))
        .count();
    let marked = snapshots.len() - unmarked;
    assert_eq!(
        marked,
        1,
        "{:#?}",
        snapshots
            .iter()
            .filter(|s| s.labels.contains_key(DELETE_AFTER))
            .collect::<Vec<_>>()
    );
    // 03-31 holds daily+weekly and 04-01 daily+monthly.
    assert_eq!(unmarked, 7 + 4 + 12 - 2);
}

#[test]
fn a_snapshot_that_is_not_ready_keeps_its_labels_and_does_not_count() {
    let mut snapshots = Vec::new();
    for day in 1..=3 {
        snapshots.push(
            snap("ns", &format!("d{day}"))
                .gfs()
                .label(DAILY, &format!("2025-01-0{day}"))
                .created(&format!("2025-01-0{day}T00:00:00Z")),
        );
    }
    snapshots[2] = snapshots[2].clone().not_ready();
    let opts = Options {
        defaults: TierCounts {
            daily: 1,
            ..TierCounts::default()
        },
        ..Options::default()
    };
    let p = plan(&snapshots, &opts, &clock("2025-01-03T12:00:00Z"));
    // d3 is not ready: it keeps its label and d2 (newest ready) keeps the single slot; d1 loses it.
    assert_eq!(
        changes(&p),
        vec![
            ("d1".to_string(), Action::RemoveLabel { tier: Tier::Daily }),
            (
                "d1".to_string(),
                Action::Mark {
                    delete_after: d("2025-01-04")
                }
            ),
        ]
    );
}

#[test]
fn the_newest_ready_snapshot_is_never_deleted_even_when_expired() {
    let snapshots = vec![
        snap("ns", "old")
            .label(RETAIN, "days")
            .label(DELETE_AFTER, "2025-01-01")
            .created("2024-12-01T00:00:00Z"),
        snap("ns", "newest")
            .label(RETAIN, "days")
            .label(DELETE_AFTER, "2025-01-02")
            .created("2024-12-02T00:00:00Z"),
    ];
    let opts = Options {
        guard: Guard {
            max_share: 1.0,
            max_deletes: None,
        },
        ..Options::default()
    };
    let p = plan(&snapshots, &opts, &clock("2025-02-01T00:00:00Z"));
    assert_eq!(changes(&p), vec![("old".to_string(), Action::Delete)]);
    assert!(p.decisions.iter().any(|d| d.name == "newest"
        && d.action
            == Action::Report {
                problem: Problem::NewestReadyProtected {
                    would: Withheld::Delete
                }
            }));
}

#[test]
fn unparsable_or_missing_delete_after_is_never_deleted() {
    let snapshots = vec![
        snap("ns", "garbage")
            .label(RETAIN, "days")
            .label(DELETE_AFTER, "2025-13-01")
            .created("2024-12-01T00:00:00Z"),
        snap("ns", "pinned-days")
            .label(RETAIN, "days")
            .created("2024-12-01T00:00:00Z"),
        snap("ns", "newest")
            .gfs()
            .label(DAILY, "2025-01-02")
            .created("2025-01-02T00:00:00Z"),
    ];
    let p = plan(
        &snapshots,
        &Options::default(),
        &clock("2025-02-01T00:00:00Z"),
    );
    assert_eq!(changes(&p), vec![]);
    assert!(p.decisions.iter().any(|d| d.name == "garbage"
        && matches!(&d.action, Action::Report { problem: Problem::DeleteAfterUnparsable { value } } if value == "2025-13-01")));
}

#[test]
fn a_snapshot_without_the_retain_label_is_never_touched() {
    let snapshots = vec![
        // `retain` removed by hand: pinned forever, even with an old daily label and a past delete-after.
        snap("ns", "pinned")
            .label(DAILY, "2024-01-01")
            .label(DELETE_AFTER, "2024-01-02")
            .created("2024-01-01T00:00:00Z"),
        snap("ns", "a")
            .gfs()
            .label(DAILY, "2025-01-01")
            .created("2025-01-01T00:00:00Z"),
        snap("ns", "b")
            .gfs()
            .label(DAILY, "2025-01-02")
            .created("2025-01-02T00:00:00Z"),
    ];
    let opts = Options {
        defaults: TierCounts {
            daily: 1,
            ..TierCounts::default()
        },
        ..Options::default()
    };
    let p = plan(&snapshots, &opts, &clock("2025-02-01T00:00:00Z"));
    assert!(p.decisions.iter().all(|d| d.name != "pinned"));
    assert_eq!(changes(&p).len(), 2, "{:?}", changes(&p));
}

#[test]
fn tiers_are_ranked_per_pvc() {
    let snapshots = vec![
        snap("ns", "data-1")
            .gfs()
            .label(DAILY, "2025-01-01")
            .created("2025-01-01T00:00:00Z"),
        snap("ns", "logs-1")
            .pvc("logs")
            .gfs()
            .label(DAILY, "2025-01-02")
            .created("2025-01-02T00:00:00Z"),
    ];
    let opts = Options {
        defaults: TierCounts {
            daily: 1,
            ..TierCounts::default()
        },
        ..Options::default()
    };
    let p = plan(&snapshots, &opts, &clock("2025-01-02T12:00:00Z"));
    assert_eq!(changes(&p), vec![]);
    assert_eq!(p.policies.len(), 2);
}

#[test]
fn policy_comes_from_the_newest_annotated_gfs_snapshot_with_defaults_filling_gaps() {
    let snapshots = vec![
        snap("ns", "old")
            .gfs()
            .annotated(r#"{"daily":1}"#)
            .label(DAILY, "2025-01-01")
            .created("2025-01-01T00:00:00Z"),
        snap("ns", "new")
            .gfs()
            .annotated(r#"{"daily":2,"yearly":3}"#)
            .label(DAILY, "2025-01-02")
            .created("2025-01-02T00:00:00Z"),
        // An adhoc days snapshot is newer, but its annotation says nothing about tiers.
        snap("ns", "adhoc")
            .label(RETAIN, "days")
            .annotated(r#"{"days":30}"#)
            .label(DELETE_AFTER, "2025-02-01")
            .created("2025-01-02T10:00:00Z"),
    ];
    let p = plan(
        &snapshots,
        &Options::default(),
        &clock("2025-01-02T12:00:00Z"),
    );
    assert_eq!(
        p.policies,
        vec![PvcPolicy {
            namespace: "ns".to_string(),
            pvc: "data".to_string(),
            counts: TierCounts {
                daily: 2,
                weekly: 4,
                monthly: 12,
                yearly: 3
            },
            source: PolicySource::Annotation {
                snapshot: "new".to_string()
            },
        }]
    );
    assert_eq!(changes(&p), vec![]);
}

#[test]
fn an_invalid_annotation_is_reported_and_defaults_apply() {
    let snapshots = vec![
        snap("ns", "s")
            .gfs()
            .annotated("{daily: seven}")
            .label(DAILY, "2025-01-02")
            .created("2025-01-02T00:00:00Z"),
    ];
    let p = plan(
        &snapshots,
        &Options::default(),
        &clock("2025-01-02T12:00:00Z"),
    );
    assert_eq!(p.policies[0].source, PolicySource::Defaults);
    assert!(matches!(
        p.decisions[0].action,
        Action::Report {
            problem: Problem::RetentionAnnotationInvalid { .. }
        }
    ));
}

fn expired_days(ns: &str, n: usize) -> Vec<ObservedSnapshot> {
    (0..n)
        .map(|i| {
            snap(ns, &format!("s{i:02}"))
                .label(RETAIN, "days")
                .label(DELETE_AFTER, "2025-02-01")
                .created(&format!("2025-01-01T00:{i:02}:00Z"))
        })
        .collect()
}

#[test]
fn the_guard_trips_when_a_bad_clock_would_delete_most_of_a_namespace() {
    let mut snapshots = expired_days("victim", 10);
    snapshots.extend(expired_days("fine", 1));
    // A clock years ahead makes every days snapshot expire at once.
    let p = plan(
        &snapshots,
        &Options::default(),
        &clock("2031-01-01T00:00:00Z"),
    );
    assert!(p.guard_refused());
    assert_eq!(p.changes().count(), 0);
    let verdict = &p.guards[0];
    assert_eq!(
        (verdict.namespace.as_str(), verdict.managed, verdict.deletes),
        ("victim", 10, 9)
    );
    assert!(verdict.tripped && !verdict.forced);
    assert_eq!(
        verdict.reason,
        "9 of 10 managed snapshots (90%) exceed the 50% share; refusing to delete in this namespace (use --force to override)"
    );
    assert_eq!(
        p.decisions
            .iter()
            .filter(|d| d.action
                == Action::Report {
                    problem: Problem::GuardWithheld
                })
            .count(),
        9
    );
}

#[test]
fn the_guard_cap_limits_deletions_per_namespace_and_force_overrides() {
    let mut snapshots = expired_days("ns", 10);
    for s in &mut snapshots[4..] {
        s.labels
            .insert(DELETE_AFTER.to_string(), "2099-01-01".to_string());
    }
    let mut opts = Options {
        guard: Guard {
            max_share: 0.5,
            max_deletes: Some(3),
        },
        ..Options::default()
    };
    let now = clock("2025-03-01T00:00:00Z");
    let p = plan(&snapshots, &opts, &now);
    assert!(p.guard_refused());
    assert!(
        p.guards[0]
            .reason
            .starts_with("4 deletions exceed the cap of 3")
    );
    opts.force = true;
    let p = plan(&snapshots, &opts, &now);
    assert!(!p.guard_refused());
    assert!(p.guards[0].tripped && p.guards[0].forced);
    assert_eq!(p.changes().count(), 4);
}

#[test]
fn deleted_snapshots_get_no_label_patches_first() {
    let snapshots = vec![
        snap("ns", "old")
            .gfs()
            .label(DAILY, "2025-01-01")
            .label(DELETE_AFTER, "2025-01-05")
            .created("2025-01-01T00:00:00Z"),
        snap("ns", "a")
            .gfs()
            .label(DAILY, "2025-01-02")
            .created("2025-01-02T00:00:00Z"),
        snap("ns", "b")
            .gfs()
            .label(DAILY, "2025-01-03")
            .created("2025-01-03T00:00:00Z"),
    ];
    let opts = Options {
        defaults: TierCounts {
            daily: 2,
            ..TierCounts::default()
        },
        ..Options::default()
    };
    let p = plan(&snapshots, &opts, &clock("2025-01-10T00:00:00Z"));
    assert_eq!(changes(&p), vec![("old".to_string(), Action::Delete)]);
}

#[test]
fn phases_can_be_run_alone() {
    let mut snapshots = readme_sample();
    nightly(&mut snapshots, utc("2025-01-10T00:17:11Z"));
    let now = clock("2025-01-10T00:20:00Z");
    let only = |tiers, mark, sweep| Options {
        grace_days: 0,
        phases: Phases { tiers, mark, sweep },
        ..Options::default()
    };
    let kinds = |o: Options| -> Vec<&'static str> {
        plan(&snapshots, &o, &now)
            .changes()
            .map(|d| match d.action {
                Action::RemoveLabel { .. } => "remove",
                Action::Mark { .. } => "mark",
                Action::Delete => "delete",
                Action::Report { .. } => "report",
            })
            .collect()
    };
    assert_eq!(kinds(only(true, false, false)), ["remove"]);
    // Without the tier phase, 2025-01-03 still holds its daily label, so nothing is marked.
    assert_eq!(kinds(only(false, true, false)), Vec::<&str>::new());
    assert_eq!(kinds(only(false, false, true)), ["delete"]);
}

#[test]
fn volume_snapshot_json_is_read_with_creation_time_fallback() {
    let vs = serde_json::json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": "data-1", "namespace": "app",
            "creationTimestamp": "2025-01-09T00:17:49Z",
            "labels": {"backup-ns.sh/retain": "daily_weekly_monthly", "backup-ns.sh/daily": "2025-01-09"},
            "annotations": {"backup-ns.sh/retention": "{\"daily\":7}", "other": "x"}
        },
        "spec": {"source": {"persistentVolumeClaimName": "data"}},
        "status": {"readyToUse": true, "boundVolumeSnapshotContentName": "snapcontent-1"}
    });
    let s = ObservedSnapshot::from_volume_snapshot(&vs).unwrap();
    assert_eq!(s.pvc, "data");
    assert_eq!(s.created, Some(utc("2025-01-09T00:17:49Z")));
    assert!(s.ready && s.is_managed());
    assert_eq!(s.retention.as_deref(), Some("{\"daily\":7}"));
    assert_eq!(s.content.as_deref(), Some("snapcontent-1"));

    let mut rebound = vs.clone();
    rebound["status"]["creationTime"] = "2024-06-01T00:00:00Z".into();
    rebound["metadata"]["labels"]["backup-ns.sh/pvc"] = "db".into();
    let s = ObservedSnapshot::from_volume_snapshot(&rebound).unwrap();
    assert_eq!(
        s.created,
        Some(utc("2024-06-01T00:00:00Z")),
        "status.creationTime wins"
    );
    assert_eq!(s.pvc, "db", "the pvc label wins over spec.source");

    let mut bad = vs.clone();
    bad["status"]["creationTime"] = "yesterday".into();
    assert!(matches!(
        ObservedSnapshot::from_volume_snapshot(&bad),
        Err(ObservedSnapshotError::BadTimestamp {
            field: "status.creationTime",
            ..
        })
    ));
    assert_eq!(
        ObservedSnapshot::from_volume_snapshot(&serde_json::json!({"metadata": {"name": "x"}})),
        Err(ObservedSnapshotError::MissingField {
            field: "metadata.namespace"
        })
    );
}

/// Wrongly typed labels or readiness make a snapshot unreadable (left alone), never "unlabelled" or "not ready":
/// a tier label read as absent would get its snapshot marked and then deleted.
#[test]
fn a_snapshot_with_wrongly_typed_labels_or_readiness_is_unreadable_not_unlabelled() {
    let vs = serde_json::json!({
        "metadata": {"name": "data-1", "namespace": "app",
                     "labels": {"backup-ns.sh/retain": "daily_weekly_monthly", "backup-ns.sh/daily": "2025-01-09"}},
        "status": {"readyToUse": true, "creationTime": "2025-01-09T00:17:49Z"}
    });
    assert!(ObservedSnapshot::from_volume_snapshot(&vs).is_ok());
    for (field, value, said) in [
        (
            "labels",
            serde_json::json!(["backup-ns.sh/retain=daily_weekly_monthly"]),
            "metadata.labels is a list, not a map",
        ),
        (
            "daily",
            serde_json::json!(20250109),
            "metadata.labels.backup-ns.sh/daily is a number, not a string",
        ),
        (
            "ready",
            serde_json::json!("true"),
            "status.readyToUse is a string, not a boolean",
        ),
    ] {
        let mut bad = vs.clone();
        match field {
            "labels" => bad["metadata"]["labels"] = value,
            "daily" => bad["metadata"]["labels"]["backup-ns.sh/daily"] = value,
            _ => bad["status"]["readyToUse"] = value,
        }
        let err = ObservedSnapshot::from_volume_snapshot(&bad).expect_err(field);
        assert_eq!(
            err.to_string(),
            format!("VolumeSnapshot app/data-1: {said}")
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Property tests over random histories, policies and clocks.

const BASE: &str = "2024-01-01T00:00:00Z";

#[derive(Debug, Clone)]
struct RawSnap {
    ns: usize,
    pvc: usize,
    created_min: Option<i64>,
    ready: bool,
    retain: u8,
    tiers: [bool; 4],
    delete_after: Option<Result<i64, &'static str>>,
    annotation: u8,
}

fn raw_snap() -> impl Strategy<Value = RawSnap> {
    (
        0..2usize,
        0..3usize,
        prop::option::weighted(0.95, 0..(420 * 24 * 60i64)),
        prop::bool::weighted(0.85),
        0..6u8,
        [
            prop::bool::weighted(0.5),
            prop::bool::weighted(0.4),
            prop::bool::weighted(0.3),
            prop::bool::weighted(0.1),
        ],
        prop::option::weighted(
            0.35,
            prop_oneof![
                8 => (0..440i64).prop_map(Ok),
                1 => prop::sample::select(vec!["garbage", "2025-02-30", "", "w05"]).prop_map(Err),
            ],
        ),
        0..6u8,
    )
        .prop_map(
            |(ns, pvc, created_min, ready, retain, tiers, delete_after, annotation)| RawSnap {
                ns,
                pvc,
                created_min,
                ready,
                retain,
                tiers,
                delete_after,
                annotation,
            },
        )
}

fn build(raws: &[RawSnap]) -> Vec<ObservedSnapshot> {
    let base = utc(BASE);
    raws.iter()
        .enumerate()
        .map(|(i, r)| {
            let ns = ["alpha", "beta"][r.ns];
            let pvc = ["data", "logs", "db"][r.pvc];
            let mut s = snap(ns, &format!("{pvc}-{i:03}")).pvc(pvc);
            s.created = r.created_min.map(|m| base + Duration::minutes(m));
            s.ready = r.ready;
            match r.retain {
                0..=2 => s = s.gfs(),
                3 => s = s.label(RETAIN, "days"),
                4 => s = s.label(RETAIN, "weird"),
                _ => {} // pinned / unmanaged
            }
            let day = s.created.unwrap_or(base).date_naive();
            for (on, tier) in r.tiers.iter().zip(Tier::ALL) {
                if *on {
                    s = s.label(tier.key(), &tier.value_for(day));
                }
            }
            match &r.delete_after {
                None => {}
                Some(Ok(days)) => {
                    s = s.label(
                        DELETE_AFTER,
                        &labels::format_date(base.date_naive() + Duration::days(*days)),
                    )
                }
                Some(Err(garbage)) => s = s.label(DELETE_AFTER, garbage),
            }
            s.retention = match r.annotation {
                0 => Some(r#"{"daily":2,"weekly":1,"monthly":2,"yearly":1}"#.to_string()),
                1 => Some(r#"{"daily":0}"#.to_string()),
                2 => Some(r#"{"days":5}"#.to_string()),
                3 => Some("not json".to_string()),
                _ => None,
            };
            s
        })
        .collect()
}

fn arb_options() -> impl Strategy<Value = Options> {
    (
        0..4u32,
        prop::sample::select(vec![0.2, 0.5, 1.0]),
        prop::option::of(1..6u32),
        any::<bool>(),
        (1..4u32, 0..3u32, 0..4u32, 0..2u32),
    )
        .prop_map(
            |(grace_days, max_share, max_deletes, force, (daily, weekly, monthly, yearly))| {
                Options {
                    defaults: TierCounts {
                        daily,
                        weekly,
                        monthly,
                        yearly,
                    },
                    grace_days,
                    guard: Guard {
                        max_share,
                        max_deletes,
                    },
                    force,
                    phases: Phases::ALL,
                }
            },
        )
}

fn arb_clock() -> impl Strategy<Value = Clock> {
    (
        0..(460 * 24 * 60i64),
        prop::sample::select(vec![
            chrono_tz::UTC,
            chrono_tz::Europe::Vienna,
            chrono_tz::America::Los_Angeles,
        ]),
    )
        .prop_map(|(m, tz)| Clock::fixed(utc(BASE) + Duration::minutes(m), tz))
}

fn newest_ready(snapshots: &[ObservedSnapshot]) -> HashMap<(String, String), String> {
    let mut best: HashMap<(String, String), &ObservedSnapshot> = HashMap::new();
    for s in snapshots
        .iter()
        .filter(|s| s.is_managed() && s.ready && s.created.is_some())
    {
        let key = (s.namespace.clone(), s.pvc.clone());
        let replace = best
            .get(&key)
            .is_none_or(|b| newest_first(s, b) == Ordering::Less);
        if replace {
            best.insert(key, s);
        }
    }
    best.into_iter().map(|(k, s)| (k, s.name.clone())).collect()
}

fn by_name(snapshots: &[ObservedSnapshot]) -> HashMap<&str, &ObservedSnapshot> {
    snapshots.iter().map(|s| (s.name.as_str(), s)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn only_managed_snapshots_with_a_past_parsable_delete_after_are_deleted(
        raws in prop::collection::vec(raw_snap(), 0..40), opts in arb_options(), clock in arb_clock()
    ) {
        let snapshots = build(&raws);
        let p = plan(&snapshots, &opts, &clock);
        let names = by_name(&snapshots);
        for d in &p.decisions {
            let s = names[d.name.as_str()];
            prop_assert!(s.is_managed(), "decision on unmanaged {}: {:?}", d.name, d.action);
            match &d.action {
                Action::Delete => {
                    let date = s.labels.get(DELETE_AFTER).and_then(|v| labels::parse_date(v));
                    prop_assert!(date.is_some_and(|x| x < clock.today()), "{}", d.name);
                }
                Action::Mark { delete_after } => {
                    prop_assert_eq!(s.retain(), Some(RETAIN_GFS));
                    prop_assert!(!s.labels.contains_key(DELETE_AFTER));
                    prop_assert!(*delete_after >= clock.today());
                }
                Action::RemoveLabel { tier } => {
                    prop_assert!(s.ready, "label removed from a snapshot that is not ready");
                    prop_assert!(s.labels.contains_key(tier.key()));
                }
                Action::Report { .. } => {}
            }
        }
        // Unparsable dates are reported, never acted on.
        for s in &snapshots {
            if s.is_managed() && s.labels.get(DELETE_AFTER).is_some_and(|v| labels::parse_date(v).is_none()) {
                prop_assert!(p.decisions.iter().any(|d| d.name == s.name
                    && matches!(d.action, Action::Report { problem: Problem::DeleteAfterUnparsable { .. } })), "unreported: {}", s.name);
            }
        }
    }

    #[test]
    fn the_newest_ready_snapshot_of_every_pvc_survives(
        raws in prop::collection::vec(raw_snap(), 0..40), opts in arb_options(), clock in arb_clock()
    ) {
        let mut snapshots = build(&raws);
        let newest = newest_ready(&snapshots);
        let p = plan(&snapshots, &opts, &clock);
        for d in p.changes() {
            if matches!(d.action, Action::Mark { .. } | Action::Delete) {
                prop_assert!(newest.get(&(d.namespace.clone(), d.pvc.clone())) != Some(&d.name));
            }
        }
        apply_decisions(&mut snapshots, &p.decisions);
        let after = newest_ready(&snapshots);
        prop_assert_eq!(newest, after);
    }

    #[test]
    fn applying_decisions_twice_equals_applying_them_once_and_replanning_changes_nothing(
        raws in prop::collection::vec(raw_snap(), 0..40), opts in arb_options(), clock in arb_clock()
    ) {
        let mut once = build(&raws);
        let p = plan(&once, &opts, &clock);
        apply_decisions(&mut once, &p.decisions);
        let mut twice = once.clone();
        apply_decisions(&mut twice, &p.decisions);
        prop_assert_eq!(&once, &twice);
        // A second run at the same instant has nothing left to do, except deletions the guard keeps refusing.
        let again = plan(&once, &opts, &clock);
        let leftovers: Vec<_> = again.changes().collect();
        prop_assert!(leftovers.is_empty(), "{:?}", leftovers);
    }

    #[test]
    fn after_apply_at_most_n_ready_snapshots_carry_each_tier_label(
        raws in prop::collection::vec(raw_snap(), 0..40), opts in arb_options(), clock in arb_clock()
    ) {
        let mut snapshots = build(&raws);
        let before = snapshots.clone();
        let p = plan(&snapshots, &opts, &clock);
        apply_decisions(&mut snapshots, &p.decisions);
        for policy in &p.policies {
            for tier in Tier::ALL {
                let carrying = snapshots.iter().filter(|s| {
                    s.namespace == policy.namespace && s.pvc == policy.pvc && s.is_managed()
                        && s.ready && s.created.is_some() && s.labels.contains_key(tier.key())
                }).count();
                prop_assert!(carrying <= policy.counts.get(tier) as usize,
                    "{}/{} {tier}: {carrying} > {}", policy.namespace, policy.pvc, policy.counts.get(tier));
            }
        }
        // Snapshots that are not ready keep every tier label they had.
        let after = by_name(&snapshots);
        for s in before.iter().filter(|s| !s.ready) {
            if let Some(a) = after.get(s.name.as_str()) {
                for tier in Tier::ALL {
                    prop_assert_eq!(s.labels.get(tier.key()), a.labels.get(tier.key()));
                }
            }
        }
    }

    #[test]
    fn pinned_and_undated_days_snapshots_are_left_alone(
        raws in prop::collection::vec(raw_snap(), 0..40), opts in arb_options(), clock in arb_clock()
    ) {
        let snapshots = build(&raws);
        let p = plan(&snapshots, &opts, &clock);
        let names = by_name(&snapshots);
        for d in p.changes() {
            let s = names[d.name.as_str()];
            let undated_days = s.retain() == Some(RETAIN_DAYS_MODE) && !s.labels.contains_key(DELETE_AFTER);
            prop_assert!(!(undated_days && matches!(d.action, Action::Mark { .. } | Action::Delete)), "{:?}", d);
        }
    }

    #[test]
    fn the_guard_bounds_deletions_per_namespace_unless_forced(
        raws in prop::collection::vec(raw_snap(), 0..40), opts in arb_options(), clock in arb_clock()
    ) {
        let snapshots = build(&raws);
        let p = plan(&snapshots, &opts, &clock);
        for ns in ["alpha", "beta"] {
            let managed = snapshots.iter().filter(|s| s.namespace == ns && s.is_managed()).count();
            let deletes = p.changes().filter(|d| d.namespace == ns && d.action == Action::Delete).count();
            if !opts.force && deletes > 0 {
                prop_assert!(deletes as f64 <= opts.guard.max_share * managed as f64);
                prop_assert!(opts.guard.max_deletes.is_none_or(|cap| deletes <= cap as usize));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_snapshot_is_deleted_no_earlier_than_one_grace_period_after_it_was_marked(
        raws in prop::collection::vec(raw_snap(), 0..30),
        opts in arb_options(),
        start in arb_clock(),
        steps in prop::collection::vec(1..(60 * 60i64), 1..12),
    ) {
        let mut snapshots = build(&raws);
        let mut marked_at: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut now = start.now_utc();
        for step_minutes in steps {
            let clock = start.at(now);
            let p = plan(&snapshots, &opts, &clock);
            for d in p.changes() {
                match d.action {
                    Action::Mark { .. } => {
                        marked_at.insert(d.name.clone(), now);
                    }
                    Action::Delete => {
                        if let Some(&m) = marked_at.get(&d.name) {
                            let tz = clock.tz();
                            let days = (now.with_timezone(&tz).date_naive() - m.with_timezone(&tz).date_naive()).num_days();
                            prop_assert!(days > i64::from(opts.grace_days),
                                "{} marked {m} deleted {now}: {days} local days, grace {}", d.name, opts.grace_days);
                            if tz == chrono_tz::UTC {
                                prop_assert!(now - m >= Duration::days(i64::from(opts.grace_days)));
                            }
                        }
                    }
                    _ => {}
                }
            }
            apply_decisions(&mut snapshots, &p.decisions);
            now += Duration::minutes(step_minutes);
        }
    }
}

#[test]
fn yearly_tier_is_kept_like_the_others() {
    let snapshots = vec![
        snap("ns", "y1")
            .gfs()
            .label(YEARLY, "2023")
            .created("2023-01-01T00:00:00Z"),
        snap("ns", "y2")
            .gfs()
            .label(YEARLY, "2024")
            .created("2024-01-01T00:00:00Z"),
    ];
    let opts = Options {
        defaults: TierCounts {
            yearly: 1,
            ..TierCounts::default()
        },
        ..Options::default()
    };
    let p = plan(&snapshots, &opts, &clock("2024-06-01T00:00:00Z"));
    assert_eq!(
        changes(&p),
        vec![
            ("y1".to_string(), Action::RemoveLabel { tier: Tier::Yearly }),
            (
                "y1".to_string(),
                Action::Mark {
                    delete_after: d("2024-06-02")
                }
            ),
        ]
    );
}

#[test]
fn a_snapshot_being_deleted_is_not_the_newest_backup_and_holds_no_slot() {
    let mut going = snap("ns", "going")
        .gfs()
        .label(DAILY, "2025-01-03")
        .created("2025-01-03T00:00:00Z");
    going.deleting = true;
    let snapshots = vec![
        snap("ns", "a")
            .gfs()
            .label(DAILY, "2025-01-01")
            .created("2025-01-01T00:00:00Z"),
        snap("ns", "b")
            .gfs()
            .label(DAILY, "2025-01-02")
            .created("2025-01-02T00:00:00Z"),
        going,
    ];
    let opts = Options {
        defaults: TierCounts {
            daily: 2,
            ..TierCounts::default()
        },
        ..Options::default()
    };
    let p = plan(&snapshots, &opts, &clock("2025-01-03T12:00:00Z"));
    assert_eq!(changes(&p), vec![]);
    assert!(p.decisions.iter().all(|d| d.name != "going"));

    let vs = serde_json::json!({
        "metadata": {"name": "x", "namespace": "ns", "deletionTimestamp": "2025-01-03T00:00:00Z"},
    });
    assert!(
        ObservedSnapshot::from_volume_snapshot(&vs)
            .unwrap()
            .deleting
    );
}

#[test]
fn the_plan_renders_as_a_table_with_reasons_guards_and_a_summary() {
    let mut snapshots = readme_sample();
    nightly(&mut snapshots, utc("2025-01-10T00:17:11Z"));
    snapshots.push(
        snap("go-starter-dev", "data-broken")
            .label(RETAIN, "days")
            .label(DELETE_AFTER, "someday")
            .created("2024-06-01T00:00:00Z"),
    );
    let p = plan(
        &snapshots,
        &original_options(),
        &clock("2025-01-10T00:20:00Z"),
    );
    insta::assert_snapshot!("plan_table", p.render_text());
    insta::assert_json_snapshot!("plan_decisions_json", p.decisions);
}

#[test]
fn controller_defaults_come_from_the_originals_retain_last_variables() {
    let env: HashMap<&str, &str> =
        HashMap::from([("RETAIN_LAST_DAILY", "14"), ("RETAIN_LAST_MONTHLY", "")]);
    let get = |k: &str| env.get(k).map(|v| v.to_string());
    assert_eq!(
        defaults_from_env(get).unwrap(),
        TierCounts {
            daily: 14,
            weekly: 4,
            monthly: 12,
            yearly: 0
        }
    );
    let bad = |k: &str| (k == "RETAIN_LAST_WEEKLY").then(|| "four".to_string());
    assert_eq!(
        defaults_from_env(bad).unwrap_err().to_string(),
        "RETAIN_LAST_WEEKLY=`four` is not a whole number of snapshots (0 to 100000)"
    );
}

#[path = "tests_runs.rs"]
mod runs;
