//! A hostile apiserver: answers that are oversized, cut short, not JSON, wrongly typed, full of unknown fields, or
//! slow. `list`, `prune` and `controller` (the real binary) either do their job exactly as against a sane
//! apiserver, or stop with exit 1 and a message naming the resource and what was wrong with the answer. Never a
//! panic, never a hang past the retry budget, and never a deletion a sane answer would not have led to: the
//! snapshots left afterwards are compared with a set written down from the seed, not computed by the product.

use crate::cli::{backup_ns_with, text};
use crate::faults::{NOW, NS, seed};
use crate::support::{claims_bound, names, start};
use kube_sim::faults::{Fault, FaultAction};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What a command must end in under one fault.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exit 0, and the command did its whole job.
    Done,
    /// Exit 1 naming the problem (every fragment in stderr); nothing deleted.
    Refused(&'static [&'static str]),
}

struct Row {
    action: FaultAction,
    verb: &'static str,
    resource: &'static str,
    expect: Expect,
}

const NOT_JSON: &[&str] = &[
    "not valid JSON for volumesnapshots",
    "is not JSON",
    "nothing in that answer was used",
];
const CUT_SHORT: &[&str] = &["not valid JSON for volumesnapshots", "ends early"];
const WRONG_TYPE: &[&str] = &["not valid JSON for volumesnapshots", "wrong type"];

fn rows() -> Vec<Row> {
    let list = |action, expect| Row {
        action,
        verb: "list",
        resource: "volumesnapshots",
        expect,
    };
    vec![
        list(FaultAction::TruncatedJson, Expect::Refused(CUT_SHORT)),
        list(FaultAction::GarbageBody, Expect::Refused(NOT_JSON)),
        list(FaultAction::LabelsAsList, Expect::Refused(WRONG_TYPE)),
        list(FaultAction::ReadyAsString, Expect::Refused(WRONG_TYPE)),
        list(FaultAction::UnknownFields, Expect::Done),
        list(FaultAction::OversizedAnswer { mebibytes: 48 }, Expect::Done),
        list(
            FaultAction::SlowAnswer {
                after: Duration::from_secs(2),
            },
            Expect::Done,
        ),
        Row {
            action: FaultAction::TruncatedJson,
            verb: "list",
            resource: "volumesnapshotcontents",
            expect: Expect::Refused(&["not valid JSON for volumesnapshotcontents", "ends early"]),
        },
        Row {
            action: FaultAction::GarbageBody,
            verb: "list",
            resource: "persistentvolumeclaims",
            expect: Expect::Refused(&["not valid JSON for persistentvolumeclaims", "is not JSON"]),
        },
    ]
}

/// What `run` meets on its own requests: its preflight read of the claim, its list of the PVC's snapshots (tier
/// labels), its create, and its wait for readiness.
fn run_rows() -> Vec<Row> {
    let row = |verb, resource, action, expect| Row {
        action,
        verb,
        resource,
        expect,
    };
    vec![
        row(
            "get",
            "persistentvolumeclaims",
            FaultAction::TruncatedJson,
            Expect::Refused(&["not valid JSON for persistentvolumeclaims", "ends early"]),
        ),
        row(
            "get",
            "persistentvolumeclaims",
            FaultAction::SlowAnswer {
                after: Duration::from_secs(2),
            },
            Expect::Done,
        ),
        row(
            "list",
            "volumesnapshots",
            FaultAction::GarbageBody,
            Expect::Refused(NOT_JSON),
        ),
        row(
            "list",
            "volumesnapshots",
            FaultAction::LabelsAsList,
            Expect::Refused(WRONG_TYPE),
        ),
        row(
            "list",
            "volumesnapshots",
            FaultAction::UnknownFields,
            Expect::Done,
        ),
        row(
            "list",
            "volumesnapshots",
            FaultAction::OversizedAnswer { mebibytes: 24 },
            Expect::Done,
        ),
        // Carried out, its answer cut: the retry meets AlreadyExists and finds the run's own snapshot.
        row(
            "create",
            "volumesnapshots",
            FaultAction::TruncatedJson,
            Expect::Done,
        ),
        row(
            "create",
            "volumesnapshots",
            FaultAction::GarbageBody,
            Expect::Refused(&["not valid JSON for volumesnapshots"]),
        ),
        row(
            "watch",
            "volumesnapshots",
            FaultAction::GarbageBody,
            Expect::Done,
        ),
        // No `get volumesnapshots` row: a run reads its snapshot by name only to find its own after a create
        // whose answer was lost (the TruncatedJson create row above); readiness comes from the wait's list and
        // watch, and the hook-window patch is built on the object the wait returned.
    ]
}

/// The seed's ten snapshots past their `delete-after` (2025-02-10; created 2025-02-13 back to 2025-02-04): the
/// only ones a sane prune at NOW deletes. Everything else stays, the two unmanaged ones included.
fn after_a_sane_prune(before: &BTreeSet<String>) -> BTreeSet<String> {
    let doomed: BTreeSet<String> = (15..25)
        .map(|i| {
            let day =
                chrono::NaiveDate::from_ymd_opt(2025, 2, 28).unwrap() - chrono::Duration::days(i);
            format!("data-{day}")
        })
        .collect();
    assert!(doomed.is_subset(before), "the seed changed: {before:?}");
    before.difference(&doomed).cloned().collect()
}

/// The retry budget of one request (60 s) plus the work itself: a command that takes longer hangs.
const WITHIN: Duration = Duration::from_secs(90);

/// `run` as the original's CronJob environment drives it: a snapshot of `data` in NS, no database.
const RUN_VARS: &[(&str, &str)] = &[
    ("BAK_NAMESPACE", NS),
    ("BAK_PVC_NAME", "data"),
    ("BAK_DB_SKIP", "true"),
];

async fn one(command: &[&str], row: &Row) {
    let env = start().await;
    seed(&env);
    let running = command[0] == "run";
    if running {
        env.sim
            .apply_yaml(&format!(
                "{}",
                serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "data", "namespace": NS},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
            ))
            .expect("pvc");
        claims_bound(&env.sim, NS).await;
    }
    let before: BTreeSet<String> = names(&env.sim, NS).into_iter().collect();
    env.sim
        .faults()
        .add(Fault::request(row.verb, row.resource, row.action));
    let started = Instant::now();
    let vars = if running { RUN_VARS } else { &[] };
    let out = backup_ns_with(&env, command, NOW, vars).await;
    let took = started.elapsed();
    let fired = env.sim.faults().fired();
    env.sim.faults().clear();
    let case = format!(
        "{command:?} under {:?} on {} {} (took {took:?}, fired {fired:?})\n{}",
        row.action,
        row.verb,
        row.resource,
        text(&out)
    );
    assert!(fired[0] > 0, "the fault never fired: {case}");
    assert_ne!(out.status.code(), Some(101), "a panic: {case}");
    assert!(took < WITHIN, "past the timeouts: {case}");
    let after: BTreeSet<String> = names(&env.sim, NS).into_iter().collect();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Failed deletions are reported on stdout, a failed command on stderr.
    let said = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(
        stderr.len() < 64 * 1024,
        "no answer is dumped into the log: {} bytes of stderr",
        stderr.len()
    );
    let deletes = command[0] != "list";
    let new: Vec<&String> = after.difference(&before).collect();
    match row.expect {
        Expect::Done if running => {
            // A fault-free `run` here adds its snapshot and its retention pass deletes none of the seed.
            assert_eq!(out.status.code(), Some(0), "{case}");
            assert!(before.is_subset(&after), "nothing deleted: {case}");
            assert_eq!(new.len(), 1, "one new snapshot: {case}");
        }
        Expect::Refused(_) if running => {
            assert!(before.is_subset(&after), "nothing deleted: {case}");
            assert!(new.is_empty(), "no snapshot left behind: {new:?} {case}");
        }
        _ => {}
    }
    match row.expect {
        Expect::Done if running => {}
        Expect::Done => {
            assert_eq!(out.status.code(), Some(0), "{case}");
            let want = if deletes {
                after_a_sane_prune(&before)
            } else {
                before.clone()
            };
            assert_eq!(after, want, "{case}");
            if !deletes {
                let stdout = String::from_utf8_lossy(&out.stdout);
                let managed = before
                    .iter()
                    .filter(|n| n.starts_with("data-"))
                    .filter(|n| stdout.contains(n.as_str()))
                    .count();
                assert_eq!(managed, 25, "every managed snapshot listed: {case}");
            }
        }
        Expect::Refused(says) => {
            assert_eq!(out.status.code(), Some(1), "{case}");
            for s in says {
                assert!(said.contains(s), "the output lacks `{s}`: {case}");
            }
            assert!(
                !said.contains("could not talk to the apiserver"),
                "an answer that came is not a connection problem: {case}"
            );
            if !running {
                assert_eq!(after, before, "nothing deleted: {case}");
            }
        }
    }
}

/// Runs every row against `command`; rows whose resource the command never requests are left out by `uses`.
async fn table(command: &[&str], uses: &[&str]) {
    for row in rows().iter().filter(|r| uses.contains(&r.resource)) {
        one(command, row).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_under_hostile_answers_backs_up_or_says_what_was_wrong() {
    for row in run_rows() {
        one(&["run"], &row).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_under_hostile_answers_lists_everything_or_says_what_was_wrong() {
    table(&["list", "-n", NS], &["volumesnapshots"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_under_hostile_answers_deletes_exactly_what_a_sane_answer_allows_or_nothing() {
    table(
        &["prune", "-n", NS],
        &[
            "volumesnapshots",
            "volumesnapshotcontents",
            "persistentvolumeclaims",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_under_hostile_answers_deletes_exactly_what_a_sane_answer_allows_or_nothing()
{
    table(
        &["controller", "-A"],
        &[
            "volumesnapshots",
            "volumesnapshotcontents",
            "persistentvolumeclaims",
        ],
    )
    .await;
}
