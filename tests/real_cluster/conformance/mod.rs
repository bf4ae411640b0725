//! kube-sim measured against the real thing: the same steps (cases.rs) go to an in-process kube-sim and to the
//! shared real cluster, and each answer is compared on its status code, a Status's reason and details, and the
//! fields the product reads (compare.rs). Every difference must be fixed in kube-sim or listed in [`KNOWN`] with
//! its reason: a new difference fails the test, and so does a listed one that no longer occurs (remove it).
//!
//! The requests cover the shapes the product's own test suite sends to kube-sim (request_shapes.txt, written by
//! `scripts/request-shapes`): kube-sim records the shapes it serves here, and each shape of the fixture must be
//! among them or listed in [`NOT_REPLAYED`] with its reason.

mod cases;
mod compare;

use crate::cluster::{RealCluster, kubectl_with};
use cases::Step;
use compare::{Projection, Reply, Side, differences, project};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A difference between kube-sim and the real apiserver that is known and kept, with why: each of `fields` in
/// each of `steps` (a pattern matches exactly, or, starting with `*`, whatever ends with the rest), and only where
/// kube-sim's value is `kube_sim` (as JSON) when that is given.
struct Known {
    steps: &'static [&'static str],
    fields: &'static [&'static str],
    kube_sim: Option<&'static str>,
    /// The difference depends on timing (a controller of the real cluster may or may not have written yet when the
    /// step reads), so it is allowed to be absent from a run; it is still listed when it shows.
    racy: bool,
    reason: &'static str,
}

impl Known {
    fn matches(&self, step: &str, field: &str, sim: &Value) -> bool {
        fn like(pattern: &str, value: &str) -> bool {
            pattern
                .strip_prefix('*')
                .map_or(pattern == value, |end| value.ends_with(end))
        }
        self.steps.iter().any(|p| like(p, step))
            && self.fields.iter().any(|p| like(p, field))
            && self
                .kube_sim
                .is_none_or(|v| serde_json::from_str::<Value>(v).is_ok_and(|v| &v == sim))
    }
}

/// Steps that delete an object one of the real controllers' finalizers holds (see the first entry of [`KNOWN`]).
const HELD_DELETES: &[&str] = &[
    "delete the snapshot of a missing claim",
    "delete the snapshot being restored",
    "delete the retained content",
    "delete group snapshot",
    "delete a page snapshot",
    "delete another page snapshot",
];

/// The known differences.
const KNOWN: &[Known] = &[
    Known {
        steps: &["*"],
        fields: &["*metadata.finalizers"],
        racy: false,
        kube_sim: Some("null"),
        reason: "kube-sim's controllers put no finalizers on what they manage; the real ones do: the snapshot \
                 controller's volumesnapshot-as-source-protection, volumesnapshot-in-group-protection, \
                 volumesnapshotcontent-bound-protection and volumegroupsnapshot-bound-protection, \
                 kubernetes.io/pvc-protection and pv-protection, the provisioner's, and the Job controller's \
                 batch.kubernetes.io/job-tracking on its pods",
    },
    Known {
        steps: HELD_DELETES,
        fields: &["*"],
        racy: false,
        kube_sim: None,
        reason: "the snapshot controller's finalizer holds the real object: the apiserver answers it Terminating \
                 (with a deletionTimestamp) and the controller lets it go soon after; kube-sim removes it at once \
                 and answers a Success Status",
    },
    Known {
        steps: &["get the snapshot while its restore is pending"],
        fields: &["*"],
        racy: false,
        kube_sim: None,
        reason: "a snapshot that a Pending claim restores from stays Terminating on the real cluster (its \
                 as-source-protection finalizer is kept until the restore is done); kube-sim deletes it at once \
                 (404)",
    },
    Known {
        steps: &["get the restoring claim", "delete the restoring claim"],
        fields: &[
            "spec.volumeName",
            "status.phase",
            "status.capacity.storage",
            "metadata.deletionTimestamp",
        ],
        racy: false,
        kube_sim: None,
        reason: "kube-sim provisions a claim of any class name (restored from its snapshot, Bound); the real \
                 provisioner leaves a claim of a class that does not exist Pending, and pvc-protection holds its \
                 delete",
    },
    Known {
        steps: &["*"],
        fields: &["*status.restoreSize"],
        racy: false,
        kube_sim: None,
        reason: "the real cluster's CSI driver (tools/k8s/csi-driver) reports the size of its snapshot archive \
                 (1Ki for these empty volumes); kube-sim reports the claim's capacity, as drivers that snapshot \
                 whole volumes do",
    },
    Known {
        steps: &[
            "*member snapshot is ready",
            "list the group's member snapshots",
        ],
        fields: &[
            "*metadata.name",
            "*metadata.labels",
            "*spec.source.persistentVolumeClaimName",
            "*spec.source.volumeSnapshotContentName",
            "*status.boundVolumeSnapshotContentName",
        ],
        racy: false,
        kube_sim: None,
        reason: "kube-sim makes a group's members pre-provisioned snapshots (snapshot-<handle>-<claim>, labelled \
                 with the group, their source a content); the real group snapshot controller names them \
                 snapshot-<hash>, labels nothing, and names the claim as their source",
    },
    Known {
        steps: &["list contents"],
        fields: &[
            "items[0].metadata.name",
            "items[1].metadata.name",
            "items[0].spec.volumeSnapshotRef.name",
            "items[1].spec.volumeSnapshotRef.name",
            "items[0].spec.source.snapshotHandle",
            "items[1].spec.source.snapshotHandle",
            "items[0].spec.source.volumeHandle",
            "items[1].spec.source.volumeHandle",
        ],
        racy: false,
        kube_sim: None,
        reason: "the contents of the group's members (first in the list on both sides), named and sourced as \
                 kube-sim's members are: snapcontent-<handle>-<claim> with a snapshot handle, where the real \
                 ones are snapcontent-<hash> with their volume's handle",
    },
    Known {
        steps: &["*an unknown field under strict validation"],
        fields: &["*"],
        racy: false,
        kube_sim: None,
        reason: "kube-sim has schemas for custom resources only: the real apiserver refuses an unknown field of a \
                 built-in kind under fieldValidation=Strict (400 BadRequest), kube-sim creates the object",
    },
    Known {
        steps: &["Namespace: delete"],
        fields: &["metadata.deletionTimestamp", "status.phase"],
        racy: false,
        kube_sim: None,
        reason: "kube-sim removes a namespace and its contents at once; the real namespace controller empties it \
                 while it is Terminating",
    },
    Known {
        steps: &["create pod", "create a printing pod"],
        fields: &["status.phase"],
        racy: false,
        kube_sim: Some("null"),
        reason: "kube-sim's kubelet writes a pod's first status just after its create (a node agent writes its \
                 own Pending), so the create's answer has none; the real registry answers Pending",
    },
    Known {
        steps: &["delete pod at once", "delete the printing pod"],
        fields: &["metadata.deletionTimestamp", "metadata.resourceVersion"],
        racy: false,
        kube_sim: None,
        reason: "the real apiserver answers a pod deleted with grace 0 Terminating until its kubelet confirms \
                 (and a pod its kubelet never ran without a resourceVersion); kube-sim removes it at once",
    },
    Known {
        steps: &[
            "get the static content",
            "json patch the static content",
            "merge patch the static content as kubectl",
            "get the static content to replace it",
            "replace the static content",
            "list static contents by label",
        ],
        fields: &["*status.readyToUse"],
        racy: true,
        kube_sim: Some("null"),
        reason: "the real CSI snapshotter asks the driver about a pre-provisioned content's handle and, the \
                 handle unknown to it, writes readyToUse false (when it has got to the content before the step \
                 reads it: on a loaded machine it may not have); kube-sim writes no status on a content no \
                 snapshot binds",
    },
];

/// Shapes of the fixture this suite does not send, with why (their behaviour is compared elsewhere).
const NOT_REPLAYED: &[(&str, &str)] = &[
    (
        "create core/v1 pods/exec ns - -",
        "a WebSocket stream, not a request and answer: real_cluster::pods drives exec through the real apiserver \
         (kubectl and kube-rs: stdin, stdout, stderr, the exit code, the process killed with its client)",
    ),
    (
        "create core/v1 secrets ns - application/vnd.kubernetes.protobuf",
        "Helm's release storage speaks protobuf, which this suite's client does not; the same requests in JSON are \
         compared here, and Helm install/upgrade/uninstall run on the real cluster in real_cluster::manifests",
    ),
    (
        "update core/v1 secrets ns - application/vnd.kubernetes.protobuf",
        "Helm's release storage (protobuf), as above",
    ),
    (
        "delete core/v1 secrets ns - application/vnd.kubernetes.protobuf",
        "Helm's release storage (protobuf), as above",
    ),
];

/// Lists whose items are not compared, only their status code and whether they continue: paged lists across
/// namespaces (their pages hold the other tests' objects on the shared real cluster), and the namespace's Events.
const ITEMS_NOT_COMPARED: &[&str] = &[
    "list all snapshots, one a page",
    "list all snapshots, the next page",
    "list contents, one a page",
    "list contents, the next page",
    // The real controllers (provisioner, scheduler, Job, snapshot) write Events about this suite's objects, as many
    // and as soon as they do; kube-sim's write none. The suite's own Events are compared by name elsewhere.
    "list events, paged",
];

/// The default storage, snapshot and group snapshot classes `scripts/cluster up` creates, for kube-sim: claims
/// without a class get `csi-hostpath` on both sides, and their volumes its provisioner.
fn classes() -> String {
    let storage = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: csi-hostpath\n  \
                   annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\n\
                   provisioner: hostpath.csi.backup-ns.local\nreclaimPolicy: Delete\nvolumeBindingMode: Immediate\n";
    let snapshots = [
        ("snapshot", "VolumeSnapshotClass", "snapclass"),
        ("groupsnapshot", "VolumeGroupSnapshotClass", "groupsnapclass"),
    ]
    .map(|(group, kind, name)| {
        format!(
            "apiVersion: {group}.storage.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: csi-hostpath-{name}\n  \
             annotations: {{{group}.storage.kubernetes.io/is-default-class: \"true\"}}\n\
             driver: hostpath.csi.backup-ns.local\ndeletionPolicy: Retain\n"
        )
    });
    std::iter::once(storage.to_string())
        .chain(snapshots)
        .collect::<Vec<_>>()
        .join("---\n")
}

/// How long an Await step polls.
const AWAIT: Duration = Duration::from_secs(60);

#[test]
fn kube_sim_answers_as_the_real_apiserver_does_or_the_difference_is_listed() {
    let real = RealCluster::shared();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let shapes = tempfile::NamedTempFile::new().expect("a temp file for the shapes");
    let sim = rt.block_on(async {
        kube_sim::Sim::builder()
            .snapshot_delay(Duration::from_millis(200))
            .request_shapes(Some(shapes.path().to_path_buf()))
            .run_image("busybox=host".parse().expect("a run-image mapping"))
            .seed_yaml("the real cluster's classes", classes())
            .start()
            .await
            .expect("kube-sim starts")
    });
    let mut sides = rt.block_on(async {
        [
            Side::connect("kube-sim", sim.kubeconfig_path()).await,
            Side::connect("real", &real.kubeconfig()).await,
        ]
    });

    let mut compared = 0;
    let mut agreed = 0;
    let mut found: Vec<(String, String, Value, Value)> = Vec::new();
    for step in cases::steps() {
        let name = step.name().to_string();
        let name = name.as_str();
        let [a, b] = &mut sides;
        let mut projections = [run(&rt, a, &step), run(&rt, b, &step)];
        if ITEMS_NOT_COMPARED.contains(&name) {
            for p in projections.iter_mut().flatten() {
                p.retain(|k, _| !k.starts_with("items"));
            }
        }
        let (Some(sim_p), Some(real_p)) = (&projections[0], &projections[1]) else {
            continue;
        };
        compared += 1;
        let diffs = differences(sim_p, real_p);
        if diffs.is_empty() {
            agreed += 1;
        }
        found.extend(
            diffs
                .into_iter()
                .map(|(f, s, r)| (name.to_string(), f, s, r)),
        );
    }

    let listed: Vec<&(String, String, Value, Value)> = found
        .iter()
        .filter(|(step, field, s, _)| KNOWN.iter().any(|k| k.matches(step, field, s)))
        .collect();
    let new: Vec<String> = found
        .iter()
        .filter(|(step, field, s, _)| !KNOWN.iter().any(|k| k.matches(step, field, s)))
        .map(|(step, field, s, r)| format!("  {step:?} {field}: kube-sim {s} / real {r}"))
        .collect();
    let stale: Vec<String> = KNOWN
        .iter()
        .filter(|k| {
            !k.racy
                && !found
                    .iter()
                    .any(|(step, field, s, _)| k.matches(step, field, s))
        })
        .map(|k| format!("  {:?} {:?} ({})", k.steps, k.fields, k.reason))
        .collect();
    let report = format!(
        "conformance: {agreed} of {compared} compared requests agree; {} listed differences in {} requests",
        listed.len(),
        listed
            .iter()
            .map(|(s, ..)| s)
            .collect::<BTreeSet<_>>()
            .len(),
    );
    eprintln!("{report}");
    for (step, field, s, r) in &listed {
        let reason = KNOWN
            .iter()
            .find(|k| k.matches(step, field, s))
            .map_or("", |k| k.reason);
        eprintln!("  listed: {step:?} {field}: kube-sim {s} / real {r} ({reason})");
    }

    let served: BTreeSet<String> = std::fs::read_to_string(shapes.path())
        .expect("reading the shapes kube-sim served")
        .lines()
        .map(str::to_owned)
        .collect();
    let fixture = include_str!("request_shapes.txt");
    let uncovered: Vec<&str> = fixture
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter(|l| !served.contains(*l) && !NOT_REPLAYED.iter().any(|(shape, _)| shape == l))
        .collect();
    let fixture_shapes = fixture
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    eprintln!(
        "conformance: {} of {fixture_shapes} request shapes of the test suite replayed, {} listed as not replayed",
        fixture_shapes - uncovered.len() - NOT_REPLAYED.len(),
        NOT_REPLAYED.len()
    );

    assert!(
        new.is_empty(),
        "{report}\nnew differences between kube-sim and the real apiserver (fix kube-sim or list them in KNOWN with the reason):\n{}",
        new.join("\n")
    );
    assert!(
        stale.is_empty(),
        "{report}\nlisted differences that no longer occur (remove them from KNOWN):\n{}",
        stale.join("\n")
    );
    assert!(
        uncovered.is_empty(),
        "request shapes of the test suite that the conformance suite does not send (add a step to cases.rs, or list \
         them in NOT_REPLAYED with the reason):\n  {}",
        uncovered.join("\n  ")
    );
}

/// Runs one step on one side; `None` for a step that is not compared (a pause).
fn run(rt: &tokio::runtime::Runtime, side: &mut Side, step: &Step) -> Option<Projection> {
    match step {
        Step::Send {
            name,
            method,
            path,
            media,
            body,
        } => {
            let path = side.fill(path);
            let body = body.as_deref().map(|b| side.fill(b));
            let reply = rt.block_on(side.send(method, &path, *media, body.as_deref()));
            side.save(name, reply.body.clone());
            Some(project(&reply))
        }
        Step::Await {
            name,
            path,
            pointer,
            want,
        } => {
            let path = side.fill(path);
            let started = Instant::now();
            let (reply, reached) = loop {
                let reply = rt.block_on(side.send("GET", &path, None, None));
                let reached = if want.is_null() {
                    reply.code == 404
                } else if want == cases::PRESENT {
                    holds(&reply.body, pointer, &|v| !v.is_null())
                } else {
                    holds(&reply.body, pointer, &|v| v == want)
                };
                if reached || started.elapsed() > AWAIT {
                    break (reply, reached);
                }
                std::thread::sleep(Duration::from_millis(250));
            };
            side.save(name, reply.body.clone());
            let mut p = project(&reply);
            p.insert("reached".into(), reached.into());
            Some(p)
        }
        Step::Kubectl { args, stdin, .. } => {
            let args: Vec<String> = args.iter().map(|a| side.fill(a)).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = kubectl_with(&side.kubeconfig, &args, stdin);
            let reply = Reply {
                code: u16::try_from(out.status.code().unwrap_or(-1)).unwrap_or(u16::MAX),
                body: Value::String(String::from_utf8_lossy(&out.stdout).into_owned()),
            };
            let mut p = Projection::new();
            p.insert("exit".into(), reply.code.into());
            p.insert("stdout".into(), reply.body);
            Some(p)
        }
        Step::Pause(d) => {
            // Each side pauses on its turn: half each, so each side's next request comes `d` after its last.
            std::thread::sleep(*d / 2);
            None
        }
    }
}

/// Whether the value at `pointer` in `body` satisfies `check`. A `/*/` segment stands for every element of the array
/// there, which must have at least one: `/items/*/status/readyToUse` holds when every item is ready.
fn holds(body: &Value, pointer: &str, check: &dyn Fn(&Value) -> bool) -> bool {
    match pointer.split_once("/*/") {
        None => body.pointer(pointer).is_some_and(check),
        Some((array, rest)) => body
            .pointer(array)
            .and_then(Value::as_array)
            .is_some_and(|items| {
                !items.is_empty()
                    && items
                        .iter()
                        .all(|item| holds(item, &format!("/{rest}"), check))
            }),
    }
}
