//! The run rule: the snapshots of one run keep their tiers and are marked together, and the members of a
//! VolumeGroupSnapshot are deleted only together, through their group.

use super::*;

/// A due member of group `g` for PVC `pvc`, with a newer ready snapshot of its PVC so it is not protected.
fn due_member(pvc: &str, group: &str) -> Vec<ObservedSnapshot> {
    vec![
        snap("ns", &format!("{pvc}-{group}"))
            .pvc(pvc)
            .gfs()
            .member_of(group)
            .label(DELETE_AFTER, "2025-01-05")
            .created("2025-01-01T00:00:00Z"),
        snap("ns", &format!("{pvc}-newest"))
            .pvc(pvc)
            .gfs()
            .label(DAILY, "2025-01-09")
            .created("2025-01-09T00:00:00Z"),
    ]
}

fn group_of_two() -> Vec<ObservedSnapshot> {
    let mut all = due_member("data", "g1");
    all.extend(due_member("logs", "g1"));
    all
}

fn at_jan_10() -> Clock {
    clock("2025-01-10T12:00:00Z")
}

fn decisions_on<'a>(p: &'a RetentionPlan, name: &str) -> Vec<&'a Decision> {
    p.decisions.iter().filter(|d| d.name == name).collect()
}

#[test]
fn the_members_of_a_group_that_are_all_due_are_deleted_together_through_their_group() {
    let p = plan(&group_of_two(), &Options::default(), &at_jan_10());
    for name in ["data-g1", "logs-g1"] {
        let ds = decisions_on(&p, name);
        assert_eq!(ds.len(), 1, "{ds:?}");
        assert_eq!(ds[0].action, Action::Delete);
        assert_eq!(ds[0].group.as_deref(), Some("g1"));
        assert!(
            ds[0].reason.contains(
                "deleted through VolumeGroupSnapshot g1 with all 2 member(s): data-g1, logs-g1"
            ),
            "{}",
            ds[0].reason
        );
    }
    let json = serde_json::to_value(&p.decisions).unwrap();
    assert!(json.as_array().unwrap().iter().any(|d| d["group"] == "g1"));
    assert!(
        p.render_text()
            .contains("deleted through VolumeGroupSnapshot g1")
    );
}

type Change = Box<dyn Fn(ObservedSnapshot) -> ObservedSnapshot>;

/// Table: one member of the group is kept for a reason of its own; the other, due, member is not deleted alone.
#[test]
fn a_member_is_never_deleted_alone_whatever_keeps_the_other_one() {
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "not due yet",
            Box::new(|s| {
                let mut s = s;
                s.labels.remove(DELETE_AFTER);
                s.label(WEEKLY, "2025-w01")
            }),
            "not due for deletion",
        ),
        (
            "pinned by hand",
            Box::new(|s| {
                let mut s = s;
                s.labels.remove(RETAIN);
                s
            }),
            "pinned: no backup-ns.sh/retain label",
        ),
        (
            "unparsable delete-after",
            Box::new(|s| s.label(DELETE_AFTER, "soon")),
            "is not YYYY-MM-DD",
        ),
        (
            "delete-after in the future",
            Box::new(|s| s.label(DELETE_AFTER, "2025-02-01")),
            "not due for deletion",
        ),
    ];
    for (case, change, why) in cases {
        let mut snapshots = group_of_two();
        let logs = snapshots.iter().position(|s| s.name == "logs-g1").unwrap();
        snapshots[logs] = change(snapshots[logs].clone());
        let p = plan(&snapshots, &Options::default(), &at_jan_10());
        assert!(
            p.decisions
                .iter()
                .all(|d| !(d.group.is_some() && d.action == Action::Delete)),
            "{case}: a member is deleted alone: {:?}",
            p.decisions
        );
        let data = decisions_on(&p, "data-g1");
        let Action::Report {
            problem:
                Problem::GroupMemberKept {
                    group,
                    member,
                    why: got,
                },
        } = &data[0].action
        else {
            panic!("{case}: {data:?}");
        };
        assert_eq!(
            (group.as_str(), member.as_str()),
            ("g1", "logs-g1"),
            "{case}"
        );
        assert!(got.contains(why), "{case}: {got}");
        assert!(
            data[0].reason.contains("members are deleted only together"),
            "{case}"
        );
    }
}

#[test]
fn the_newest_ready_member_of_one_pvc_keeps_the_whole_group() {
    // logs has no newer snapshot: its member is the newest ready backup of logs and is protected.
    let mut snapshots = due_member("data", "g1");
    snapshots.push(
        snap("ns", "logs-g1")
            .pvc("logs")
            .gfs()
            .member_of("g1")
            .label(DELETE_AFTER, "2025-01-05")
            .created("2025-01-01T00:00:00Z"),
    );
    let p = plan(&snapshots, &Options::default(), &at_jan_10());
    assert!(
        p.changes().all(|d| d.action != Action::Delete),
        "{:?}",
        p.decisions
    );
    let data = decisions_on(&p, "data-g1");
    assert!(
        matches!(&data[0].action, Action::Report { problem: Problem::GroupMemberKept { member, why, .. } }
            if member == "logs-g1" && why.contains("newest ready backup")),
        "{data:?}"
    );
}

#[test]
fn the_guard_withholds_a_group_whole() {
    let opts = Options {
        guard: Guard {
            max_share: 1.0,
            max_deletes: Some(1),
        },
        ..Options::default()
    };
    let p = plan(&group_of_two(), &opts, &at_jan_10());
    assert!(p.guard_refused());
    assert!(p.changes().all(|d| d.action != Action::Delete));
}

#[test]
fn a_focused_plan_decides_a_group_with_the_other_pvcs_members_in_view() {
    let mut snapshots = group_of_two();
    let logs = snapshots.iter().position(|s| s.name == "logs-g1").unwrap();
    snapshots[logs].labels.remove(RETAIN);
    let p = plan_focused(&snapshots, Some("data"), &Options::default(), &at_jan_10());
    assert!(
        p.decisions.iter().all(|d| d.pvc == "data"),
        "{:?}",
        p.decisions
    );
    assert!(p.policies.iter().all(|x| x.pvc == "data"));
    assert!(matches!(&decisions_on(&p, "data-g1")[0].action,
            Action::Report { problem: Problem::GroupMemberKept { member, .. } } if member == "logs-g1"));
    // With every member due, the focused plan deletes its member through the group.
    let p = plan_focused(
        &group_of_two(),
        Some("data"),
        &Options::default(),
        &at_jan_10(),
    );
    let data = decisions_on(&p, "data-g1");
    assert_eq!(
        (data[0].action.clone(), data[0].group.as_deref()),
        (Action::Delete, Some("g1"))
    );
}

/// Two PVCs of one plan with histories that differ: `logs` was added in week 2 and missed the run of week 3.
/// Weekly keeps 1. Per PVC, data's run-2 snapshot would lose its weekly label (data has a newer one from run 3)
/// and be marked, while logs' run-2 snapshot keeps weekly (logs' newest weekly): run 2 would be split.
fn diverging_histories() -> Vec<ObservedSnapshot> {
    vec![
        // Run 1, week 2025-w01, data only.
        snap("ns", "data-r1")
            .in_run("r1")
            .gfs()
            .label(WEEKLY, "2025-w01")
            .created("2025-01-01T00:00:00Z"),
        // Run 2, week 2025-w02: both PVCs, both weekly (the first of the week for each).
        snap("ns", "data-r2")
            .in_run("r2")
            .gfs()
            .label(WEEKLY, "2025-w02")
            .created("2025-01-08T00:00:00Z"),
        snap("ns", "logs-r2")
            .pvc("logs")
            .in_run("r2")
            .gfs()
            .label(WEEKLY, "2025-w02")
            .created("2025-01-08T00:00:00Z"),
        // Run 3, week 2025-w03: logs missed it.
        snap("ns", "data-r3")
            .in_run("r3")
            .gfs()
            .label(WEEKLY, "2025-w03")
            .created("2025-01-15T00:00:00Z"),
    ]
}

fn weekly_one() -> Options {
    Options {
        defaults: TierCounts {
            daily: 0,
            weekly: 1,
            monthly: 0,
            yearly: 0,
        },
        ..Options::default()
    }
}

#[test]
fn a_run_keeps_a_tier_on_every_member_when_any_member_keeps_it() {
    let snapshots = diverging_histories();
    let at = clock("2025-01-15T12:00:00Z");
    let p = plan(&snapshots, &weekly_one(), &at);
    // Run 1 is data's alone: it loses weekly and is marked, as before.
    assert_eq!(
        changes(&p),
        vec![
            (
                "data-r1".to_string(),
                Action::RemoveLabel { tier: Tier::Weekly }
            ),
            (
                "data-r1".to_string(),
                Action::Mark {
                    delete_after: d("2025-01-16")
                }
            ),
        ]
    );
    // Run 2: logs-r2 keeps weekly, so data-r2 keeps it too and is not marked.
    let data_r2 = decisions_on(&p, "data-r2");
    assert_eq!(data_r2.len(), 1, "{data_r2:?}");
    assert_eq!(
        data_r2[0].action,
        Action::Report {
            problem: Problem::KeptWithRun {
                would: Kept::Tier(Tier::Weekly),
                member: "logs-r2".to_string()
            }
        }
    );
    // Without run ids (older snapshots, or per-PVC thinking) run 2 would be split: the rule is what keeps it whole.
    let mut anonymous = snapshots.clone();
    for s in &mut anonymous {
        s.run_id = None;
    }
    let split = plan(&anonymous, &weekly_one(), &at);
    assert!(changes(&split).contains(&(
        "data-r2".to_string(),
        Action::RemoveLabel { tier: Tier::Weekly }
    )));
    // Applying and replanning converges: nothing left to change.
    let mut after = snapshots.clone();
    apply_decisions(&mut after, &p.decisions);
    assert_eq!(changes(&plan(&after, &weekly_one(), &at)), vec![]);
    let both: Vec<_> = after
        .iter()
        .filter(|s| s.run_id.as_deref() == Some("r2"))
        .collect();
    assert!(
        both.iter()
            .all(|s| s.labels.contains_key(WEEKLY) && !s.labels.contains_key(DELETE_AFTER))
    );
}

#[test]
fn a_run_is_marked_only_when_no_member_keeps_a_tier() {
    // data-r2 holds no tier of its own any more; logs-r2 still holds weekly.
    let mut snapshots = diverging_histories();
    let data_r2 = snapshots.iter().position(|s| s.name == "data-r2").unwrap();
    snapshots[data_r2].labels.remove(WEEKLY);
    let p = plan(&snapshots, &weekly_one(), &clock("2025-01-15T12:00:00Z"));
    assert_eq!(
        decisions_on(&p, "data-r2")[0].action,
        Action::Report {
            problem: Problem::KeptWithRun {
                would: Kept::Mark,
                member: "logs-r2".to_string()
            }
        }
    );
    // Once logs' weekly moves on (a newer weekly for logs), the whole run loses it and is marked together.
    snapshots.push(
        snap("ns", "logs-r4")
            .pvc("logs")
            .in_run("r4")
            .gfs()
            .label(WEEKLY, "2025-w04")
            .created("2025-01-22T00:00:00Z"),
    );
    snapshots.push(
        snap("ns", "data-r4")
            .in_run("r4")
            .gfs()
            .label(WEEKLY, "2025-w04")
            .created("2025-01-22T00:00:00Z"),
    );
    let p = plan(&snapshots, &weekly_one(), &clock("2025-01-22T12:00:00Z"));
    let marked: Vec<String> = p
        .changes()
        .filter(|d| matches!(d.action, Action::Mark { .. }))
        .map(|d| d.name.clone())
        .collect();
    assert!(
        marked.contains(&"data-r2".to_string()) && marked.contains(&"logs-r2".to_string()),
        "{marked:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Properties over random histories where snapshots belong to runs and groups.

/// Puts the snapshots into runs: `None` alone, `Some((false, k))` run `rk`, `Some((true, k))` group `gk`.
fn assign(snapshots: &mut [ObservedSnapshot], runs: &[Option<(bool, u8)>]) {
    for (s, run) in snapshots.iter_mut().zip(runs) {
        match run {
            None => {}
            Some((false, k)) => *s = s.clone().in_run(&format!("r{k}")),
            Some((true, k)) => *s = s.clone().member_of(&format!("g{k}")),
        }
    }
}

fn arb_runs() -> impl Strategy<Value = Vec<Option<(bool, u8)>>> {
    prop::collection::vec(prop::option::weighted(0.7, (any::<bool>(), 0..4u8)), 40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_member_of_a_group_is_ever_deleted_alone(
        raws in prop::collection::vec(raw_snap(), 0..40), runs in arb_runs(), opts in arb_options(), clock in arb_clock()
    ) {
        let mut snapshots = build(&raws);
        assign(&mut snapshots, &runs);
        let p = plan(&snapshots, &opts, &clock);
        let deleted: HashSet<&str> = p.changes().filter(|d| d.action == Action::Delete).map(|d| d.name.as_str()).collect();
        for s in snapshots.iter().filter(|s| deleted.contains(s.name.as_str())) {
            let Some(group) = &s.group else { continue };
            for m in snapshots.iter().filter(|m| m.namespace == s.namespace && m.group.as_ref() == Some(group) && !m.deleting) {
                prop_assert!(deleted.contains(m.name.as_str()), "{} deleted without {} of group {group}", s.name, m.name);
            }
            let d = p.decisions.iter().find(|d| d.name == s.name && d.action == Action::Delete).unwrap();
            prop_assert_eq!(d.group.as_ref(), Some(group));
        }
    }

    #[test]
    fn with_runs_applying_then_replanning_changes_nothing(
        raws in prop::collection::vec(raw_snap(), 0..40), runs in arb_runs(), opts in arb_options(), clock in arb_clock()
    ) {
        let mut once = build(&raws);
        assign(&mut once, &runs);
        let p = plan(&once, &opts, &clock);
        apply_decisions(&mut once, &p.decisions);
        let again = plan(&once, &opts, &clock);
        let leftovers: Vec<_> = again.changes().collect();
        prop_assert!(leftovers.is_empty(), "{:?}", leftovers);
    }

    #[test]
    fn a_runs_ready_snapshots_keep_their_tiers_together(
        raws in prop::collection::vec(raw_snap(), 0..40), runs in arb_runs(), opts in arb_options(), clock in arb_clock()
    ) {
        let mut snapshots = build(&raws);
        assign(&mut snapshots, &runs);
        let before = snapshots.clone();
        let p = plan(&snapshots, &opts, &clock);
        // Deleted, or due and only withheld by the guard: such a snapshot holds no tier for its run.
        let deleted: HashSet<&str> = p.decisions.iter()
            .filter(|d| matches!(d.action, Action::Delete | Action::Report { problem: Problem::GuardWithheld }))
            .map(|d| d.name.as_str())
            .collect();
        apply_decisions(&mut snapshots, &p.decisions);
        let after = by_name(&snapshots);
        let key = |s: &ObservedSnapshot| (s.namespace.clone(), s.group.clone(), s.run_id.clone());
        for s in before.iter().filter(|s| s.is_managed() && s.ready && s.created.is_some() && (s.group.is_some() || s.run_id.is_some())) {
            let Some(a) = after.get(s.name.as_str()) else { continue };
            if deleted.contains(s.name.as_str()) {
                continue;
            }
            for tier in Tier::ALL {
                // A member that kept a tier label: every ready member of its run that had it, and survives, keeps it.
                if !a.labels.contains_key(tier.key()) || !s.labels.contains_key(tier.key()) {
                    continue;
                }
                for m in before.iter().filter(|m| key(m) == key(s) && m.is_managed() && m.ready && m.labels.contains_key(tier.key())) {
                    if deleted.contains(m.name.as_str()) {
                        continue;
                    }
                    prop_assert!(after[m.name.as_str()].labels.contains_key(tier.key()),
                        "{} kept {tier} but {} of its run lost it", s.name, m.name);
                }
            }
        }
        // A member marked now: no ready member of its run keeps a tier label.
        for d in p.changes().filter(|d| matches!(d.action, Action::Mark { .. })) {
            let s = before.iter().find(|s| s.name == d.name).unwrap();
            if s.group.is_none() && s.run_id.is_none() {
                continue;
            }
            for m in before.iter().filter(|m| key(m) == key(s) && m.retain() == Some(RETAIN_GFS) && m.ready && m.created.is_some()) {
                if let Some(a) = after.get(m.name.as_str()).filter(|_| !deleted.contains(m.name.as_str())) {
                    let tiers = Tier::ALL.into_iter().filter(|t| a.labels.contains_key(t.key())).count();
                    prop_assert_eq!(tiers, 0, "{} marked while {} of its run keeps a tier", d.name, m.name);
                }
            }
        }
    }
}

#[test]
fn a_member_that_never_became_ready_holds_no_tier_for_its_run() {
    // logs-r2 carries weekly but is not ready: data-r2 loses weekly and is marked as if alone.
    let mut snapshots = diverging_histories();
    let logs_r2 = snapshots.iter().position(|s| s.name == "logs-r2").unwrap();
    snapshots[logs_r2].ready = false;
    let p = plan(&snapshots, &weekly_one(), &clock("2025-01-15T12:00:00Z"));
    let data_r2: Vec<Action> = decisions_on(&p, "data-r2")
        .into_iter()
        .map(|d| d.action.clone())
        .collect();
    assert_eq!(
        data_r2,
        [
            Action::RemoveLabel { tier: Tier::Weekly },
            Action::Mark {
                delete_after: d("2025-01-16")
            }
        ]
    );
}
