//! Fault injection: make chosen API requests fail (500, 503, 429, 409, timeout, a connection reset), answer them
//! with a hostile body (oversized, truncated or non-JSON, wrongly typed or with unknown fields) or slowly, fail a
//! random share of all requests (seeded, for long simulations), keep snapshots from ever becoming ready or make
//! them slow, or make exec fail, its stream end early, or drop mid-session. Faults are plain data so the server,
//! controllers and the exec route can consult them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a matching request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultAction {
    /// 500 InternalError.
    InternalError,
    /// 503 ServiceUnavailable (an apiserver during an upgrade or an etcd leader change).
    ServiceUnavailable,
    /// The connection is dropped without an answer, as when a load balancer rotates.
    ConnectionReset,
    /// The request is carried out, then the connection is dropped before the answer: the client cannot know
    /// whether it took effect.
    LostAnswer,
    /// 429 TooManyRequests with Retry-After: 1.
    TooManyRequests,
    /// 409 Conflict.
    Conflict,
    /// The request hangs for this long, then gets 504 Timeout.
    Timeout {
        /// How long to hang.
        #[serde(with = "millis")]
        after: Duration,
    },
    /// The request hangs for this long, then is carried out and answered correctly: a slow apiserver.
    SlowAnswer {
        /// How long to hang.
        #[serde(with = "millis")]
        after: Duration,
    },
    /// The request is carried out and its answer (200) grows by about `mebibytes` MiB: every object in it (each
    /// item of a list) gets an annotation `kube-sim.io/padding` holding its share, as objects bloated by
    /// managedFields or last-applied annotations are. The answer stays valid.
    OversizedAnswer {
        /// Size added to the answer, in MiB.
        mebibytes: u32,
    },
    /// The request is carried out and its JSON answer is cut in half (status 200, a `Content-Length` that matches
    /// what is sent): a proxy or a buffer that lost the rest.
    TruncatedJson,
    /// The request is not carried out: the answer is a 200 with an HTML page instead of JSON, as a captive
    /// portal or a misrouted proxy sends.
    GarbageBody,
    /// The request is carried out and every object in its answer has `metadata.labels` as a list of `key=value`
    /// strings instead of a map.
    LabelsAsList,
    /// The request is carried out and every object in its answer has `status.readyToUse` as a string (`"true"`)
    /// instead of a boolean.
    ReadyAsString,
    /// The request is carried out and every object in its answer (and a list itself) carries fields no
    /// Kubernetes version defines, at the top, in `metadata` and in `status`. A client must ignore them.
    UnknownFields,
}

impl FaultAction {
    /// Whether the request is carried out and its answer altered (rather than replaced by a failure).
    pub fn alters_answer(self) -> bool {
        matches!(
            self,
            FaultAction::OversizedAnswer { .. }
                | FaultAction::TruncatedJson
                | FaultAction::LabelsAsList
                | FaultAction::ReadyAsString
                | FaultAction::UnknownFields
        )
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum FaultKind {
    /// Fail API requests that match `verb`/`resource` (None = any). `nth` = fail only the Nth match (1-based);
    /// `times` = how many matches fail (None = all, from the Nth on).
    Request {
        /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`), or any.
        verb: Option<String>,
        /// Resource plural, optionally with `/subresource` (`volumesnapshots`, `pods/exec`), or any.
        resource: Option<String>,
        /// Fail only from the Nth matching request on (1-based).
        nth: Option<u64>,
        /// How many matching requests fail.
        times: Option<u64>,
        /// How they fail.
        action: FaultAction,
    },
    /// Snapshots of this namespace (None = all) never become ready.
    SnapshotNeverReady {
        /// Namespace filter.
        namespace: Option<String>,
        /// Snapshot name filter.
        name: Option<String>,
    },
    /// The CSI driver reports a snapshot's `creationTime` (on the content and the snapshot) shifted by `seconds`
    /// from the instant it really cut it: a driver whose cut falls outside the backup's hook window.
    SnapshotCreationTimeSkew {
        /// Namespace filter.
        namespace: Option<String>,
        /// Snapshot name filter.
        name: Option<String>,
        /// Shift of the reported time (negative: earlier).
        seconds: i64,
    },
    /// Each API request fails with probability `per_mille`/1000, drawn from a generator seeded with `seed`, as
    /// `action`. A request that just failed this way is never failed again on its immediate retry, so every
    /// transient fault can be overcome. A `conflict` is drawn for writes only (a read never gets a 409).
    Random {
        /// Failures per thousand requests (50 = 5 %).
        per_mille: u32,
        /// Seed of the generator, so that a run can be replayed.
        seed: u64,
        /// How the chosen requests fail.
        action: FaultAction,
    },
    /// Exec into matching pods ends early without running anything: `stdout` is sent, then, if `status`, a
    /// Success status frame, then the socket is dropped without a WebSocket close handshake.
    ExecCut {
        /// Namespace filter.
        namespace: Option<String>,
        /// Pod filter.
        pod: Option<String>,
        /// Output sent before the cut.
        stdout: String,
        /// Whether a status frame precedes the cut.
        status: bool,
    },
    /// The `nth` exec into matching pods starts its process as usual, and `after` into the session the
    /// connection is dropped without a WebSocket close (a stream lost mid-dump). The process is killed with the
    /// session, as the simulated container's processes are. Fires once; later execs (the client's cleanup) pass.
    ExecDrop {
        /// Namespace filter.
        namespace: Option<String>,
        /// Pod filter.
        pod: Option<String>,
        /// Which matching exec is dropped (1-based).
        nth: u64,
        /// How long the session runs before the drop.
        #[serde(with = "millis")]
        after: Duration,
    },
    /// Snapshots of this namespace (None = all) become ready `delay` later than the simulator's snapshot delay:
    /// a slow CSI driver.
    SnapshotSlow {
        /// Namespace filter.
        namespace: Option<String>,
        /// Snapshot name filter.
        name: Option<String>,
        /// Extra time before ready.
        #[serde(with = "millis")]
        delay: Duration,
    },
    /// Exec into matching pods fails with this message (the exec route reports it as a failure Status).
    ExecFail {
        /// Namespace filter.
        namespace: Option<String>,
        /// Pod filter.
        pod: Option<String>,
        /// Message of the failure.
        message: String,
    },
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// What it does.
    #[serde(flatten)]
    pub kind: FaultKind,
}

impl Fault {
    /// Fail every request with `verb` on `resource` with `action`.
    pub fn request(verb: &str, resource: &str, action: FaultAction) -> Self {
        Fault {
            kind: FaultKind::Request {
                verb: Some(verb.to_string()),
                resource: Some(resource.to_string()),
                nth: None,
                times: None,
                action,
            },
        }
    }

    /// Fail only the Nth request with `verb` on `resource`.
    pub fn nth(verb: &str, resource: &str, nth: u64, action: FaultAction) -> Self {
        Fault {
            kind: FaultKind::Request {
                verb: Some(verb.to_string()),
                resource: Some(resource.to_string()),
                nth: Some(nth),
                times: Some(1),
                action,
            },
        }
    }

    /// Keep failing from the first match on (after [`Fault::nth`], which fails once).
    #[must_use]
    pub fn persisting(mut self) -> Self {
        if let FaultKind::Request { times, .. } = &mut self.kind {
            *times = None;
        }
        self
    }

    /// Fail `n` matches in a row (from the Nth on), e.g. every attempt a client's retry policy makes.
    #[must_use]
    pub fn times(mut self, n: u64) -> Self {
        if let FaultKind::Request { times, .. } = &mut self.kind {
            *times = Some(n);
        }
        self
    }

    /// Fail `per_mille`/1000 of all requests at random (seeded), each allowed to succeed on its retry.
    pub fn random(per_mille: u32, seed: u64, action: FaultAction) -> Self {
        Fault {
            kind: FaultKind::Random {
                per_mille,
                seed,
                action,
            },
        }
    }

    /// Every exec sends `stdout`, optionally a Success status, then drops the socket.
    pub fn exec_cut(stdout: &str, status: bool) -> Self {
        Fault {
            kind: FaultKind::ExecCut {
                namespace: None,
                pod: None,
                stdout: stdout.to_string(),
                status,
            },
        }
    }

    /// Snapshots never become ready (all namespaces).
    pub fn snapshot_never_ready() -> Self {
        Fault {
            kind: FaultKind::SnapshotNeverReady {
                namespace: None,
                name: None,
            },
        }
    }

    /// Every snapshot's reported `creationTime` is shifted by `seconds` (all namespaces).
    pub fn snapshot_creation_time_skew(seconds: i64) -> Self {
        Fault {
            kind: FaultKind::SnapshotCreationTimeSkew {
                namespace: None,
                name: None,
                seconds,
            },
        }
    }

    /// The `nth` exec into `namespace`'s pods (all namespaces: None) is dropped `after` into its session.
    pub fn exec_drop(namespace: Option<&str>, nth: u64, after: Duration) -> Self {
        Fault {
            kind: FaultKind::ExecDrop {
                namespace: namespace.map(str::to_string),
                pod: None,
                nth,
                after,
            },
        }
    }

    /// Snapshots of `namespace` (all namespaces: None) become ready `delay` late.
    pub fn snapshot_slow(namespace: Option<&str>, delay: Duration) -> Self {
        Fault {
            kind: FaultKind::SnapshotSlow {
                namespace: namespace.map(str::to_string),
                name: None,
                delay,
            },
        }
    }

    /// Snapshots of one namespace never become ready.
    pub fn snapshot_never_ready_in(namespace: &str) -> Self {
        Fault {
            kind: FaultKind::SnapshotNeverReady {
                namespace: Some(namespace.to_string()),
                name: None,
            },
        }
    }

    /// Every exec fails with `message`.
    pub fn exec_fail(message: &str) -> Self {
        Fault {
            kind: FaultKind::ExecFail {
                namespace: None,
                pod: None,
                message: message.to_string(),
            },
        }
    }
}

#[derive(Debug)]
struct Entry {
    fault: Fault,
    seen: u64,
    fired: u64,
    /// For [`FaultKind::Random`]: its generator, and the request it failed last (spared on its retry).
    rng: Option<rand::rngs::StdRng>,
    last: Option<(String, String)>,
}

/// The set of active faults; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Vec<Entry>>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a fault.
    pub fn add(&self, fault: Fault) {
        let rng = match &fault.kind {
            FaultKind::Random { seed, .. } => Some(rand::SeedableRng::seed_from_u64(*seed)),
            _ => None,
        };
        self.lock().push(Entry {
            fault,
            seen: 0,
            fired: 0,
            rng,
            last: None,
        });
    }

    /// How many times each fault fired so far, in the order they were added.
    pub fn fired(&self) -> Vec<u64> {
        self.lock().iter().map(|e| e.fired).collect()
    }

    /// Remove the faults equal to `fault` (others, and their generators' state, stay); returns how many times the
    /// removed ones fired.
    pub fn remove(&self, fault: &Fault) -> u64 {
        let mut fired = 0;
        self.lock().retain(|e| {
            let gone = e.fault == *fault;
            if gone {
                fired += e.fired;
            }
            !gone
        });
        fired
    }

    /// Remove every fault.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The active faults.
    pub fn list(&self) -> Vec<Fault> {
        self.lock().iter().map(|e| e.fault.clone()).collect()
    }

    /// Consult request faults for one request; counts the match and returns the action if it fires.
    pub fn on_request(&self, verb: &str, resource: &str) -> Option<FaultAction> {
        let mut entries = self.lock();
        for e in entries.iter_mut() {
            if let FaultKind::Random {
                per_mille, action, ..
            } = &e.fault.kind
            {
                let key = (verb.to_string(), resource.to_string());
                if e.last.take().is_some_and(|last| last == key) {
                    continue;
                }
                if *action == FaultAction::Conflict && !is_write(verb, resource) {
                    // An apiserver answers 409 only to a write; a read never conflicts.
                    continue;
                }
                let draw: u32 = e
                    .rng
                    .as_mut()
                    .map_or(u32::MAX, |r| rand::Rng::random_range(r, 0..1000));
                if draw < *per_mille {
                    e.fired += 1;
                    e.last = Some(key);
                    return Some(*action);
                }
                continue;
            }
            let FaultKind::Request {
                verb: v,
                resource: r,
                nth,
                times,
                action,
            } = &e.fault.kind
            else {
                continue;
            };
            let verb_ok = v.as_deref().is_none_or(|v| v == verb);
            let res_ok = r.as_deref().is_none_or(|r| r == resource);
            if !(verb_ok && res_ok) {
                continue;
            }
            e.seen += 1;
            if nth.is_some_and(|n| e.seen < n) {
                continue;
            }
            if times.is_some_and(|t| e.fired >= t) {
                continue;
            }
            e.fired += 1;
            return Some(*action);
        }
        None
    }

    /// Whether the snapshot `ns/name` must never become ready.
    pub fn snapshot_never_ready(&self, ns: &str, name: &str) -> bool {
        self.lock().iter().any(|e| match &e.fault.kind {
            FaultKind::SnapshotNeverReady { namespace, name: n } => {
                namespace.as_deref().is_none_or(|x| x == ns)
                    && n.as_deref().is_none_or(|x| x == name)
            }
            _ => false,
        })
    }

    /// How far the reported `creationTime` of snapshot `ns/name` is shifted, in seconds (0: not at all).
    pub fn creation_time_skew(&self, ns: &str, name: &str) -> i64 {
        self.lock()
            .iter()
            .filter_map(|e| match &e.fault.kind {
                FaultKind::SnapshotCreationTimeSkew {
                    namespace,
                    name: n,
                    seconds,
                } => (namespace.as_deref().is_none_or(|x| x == ns)
                    && n.as_deref().is_none_or(|x| x == name))
                .then_some(*seconds),
                _ => None,
            })
            .sum()
    }

    /// `(stdout, status)` if exec into `ns/pod` must be cut short (consulted by the exec route).
    pub fn exec_cut(&self, ns: &str, pod: &str) -> Option<(String, bool)> {
        self.lock().iter().find_map(|e| match &e.fault.kind {
            FaultKind::ExecCut {
                namespace,
                pod: p,
                stdout,
                status,
            } => (namespace.as_deref().is_none_or(|x| x == ns)
                && p.as_deref().is_none_or(|x| x == pod))
            .then(|| (stdout.clone(), *status)),
            _ => None,
        })
    }

    /// How long the session of an exec into `ns/pod` may run before its connection is dropped, if it is the
    /// chosen exec of an [`FaultKind::ExecDrop`] (consulted, and counted, by the exec route for every exec).
    pub fn exec_drop(&self, ns: &str, pod: &str) -> Option<Duration> {
        let mut drop = None;
        for e in self.lock().iter_mut() {
            let FaultKind::ExecDrop {
                namespace,
                pod: p,
                nth,
                after,
            } = &e.fault.kind
            else {
                continue;
            };
            if !(namespace.as_deref().is_none_or(|x| x == ns)
                && p.as_deref().is_none_or(|x| x == pod))
            {
                continue;
            }
            e.seen += 1;
            if e.seen == *nth && drop.is_none() {
                e.fired += 1;
                drop = Some(*after);
            }
        }
        drop
    }

    /// The extra time before snapshot `ns/name` becomes ready (zero: none).
    pub fn snapshot_slowness(&self, ns: &str, name: &str) -> Duration {
        self.lock()
            .iter()
            .filter_map(|e| match &e.fault.kind {
                FaultKind::SnapshotSlow {
                    namespace,
                    name: n,
                    delay,
                } => (namespace.as_deref().is_none_or(|x| x == ns)
                    && n.as_deref().is_none_or(|x| x == name))
                .then_some(*delay),
                _ => None,
            })
            .sum()
    }

    /// The failure message if exec into `ns/pod` must fail (consulted by the exec route).
    pub fn exec_failure(&self, ns: &str, pod: &str) -> Option<String> {
        self.lock().iter().find_map(|e| match &e.fault.kind {
            FaultKind::ExecFail {
                namespace,
                pod: p,
                message,
            } => (namespace.as_deref().is_none_or(|x| x == ns)
                && p.as_deref().is_none_or(|x| x == pod))
            .then(|| message.clone()),
            _ => None,
        })
    }
}

/// Whether a request writes an object: only those can meet a conflict. The exec upgrade counts as `create
/// pods/exec` but writes nothing.
fn is_write(verb: &str, resource: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    ) && !resource.ends_with("/exec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_matching_request_fails_once() {
        let f = Faults::default();
        f.add(Fault::nth(
            "create",
            "volumesnapshots",
            2,
            FaultAction::InternalError,
        ));
        assert_eq!(f.on_request("create", "volumesnapshots"), None);
        assert_eq!(f.on_request("get", "volumesnapshots"), None);
        assert_eq!(
            f.on_request("create", "volumesnapshots"),
            Some(FaultAction::InternalError)
        );
        assert_eq!(f.on_request("create", "volumesnapshots"), None);
    }

    #[test]
    fn a_persisting_fault_keeps_failing_from_the_nth_match_on() {
        let f = Faults::default();
        f.add(Fault::nth("list", "pods", 2, FaultAction::ServiceUnavailable).persisting());
        assert_eq!(f.on_request("list", "pods"), None);
        for _ in 0..5 {
            assert_eq!(
                f.on_request("list", "pods"),
                Some(FaultAction::ServiceUnavailable)
            );
        }
    }

    #[test]
    fn random_faults_are_reproducible_near_their_rate_and_spare_the_retry() {
        let run = || {
            let f = Faults::default();
            f.add(Fault::random(50, 7, FaultAction::InternalError));
            let mut fired = Vec::new();
            for i in 0..4000 {
                let resource = if i % 2 == 0 {
                    "pods"
                } else {
                    "volumesnapshots"
                };
                if f.on_request("get", resource).is_some() {
                    fired.push(i);
                    // The immediate retry of the request that failed always passes.
                    assert_eq!(f.on_request("get", resource), None);
                }
            }
            fired
        };
        let first = run();
        assert_eq!(first, run(), "same seed, same faults");
        assert!(
            (120..=280).contains(&first.len()),
            "{} of 4000",
            first.len()
        );
    }

    #[test]
    fn random_conflicts_answer_writes_only() {
        let f = Faults::default();
        f.add(Fault::random(1000, 3, FaultAction::Conflict));
        for (verb, resource) in [
            ("get", "pods"),
            ("list", "volumesnapshots"),
            ("watch", "volumesnapshots"),
            ("create", "pods/exec"),
        ] {
            assert_eq!(f.on_request(verb, resource), None, "{verb} {resource}");
        }
        assert_eq!(
            f.on_request("patch", "volumesnapshots"),
            Some(FaultAction::Conflict)
        );
    }

    #[test]
    fn an_exec_drop_fires_once_on_the_nth_exec_of_its_namespace() {
        let f = Faults::default();
        f.add(Fault::exec_drop(Some("shop"), 2, Duration::from_millis(30)));
        assert_eq!(f.exec_drop("blog", "db-0"), None);
        assert_eq!(f.exec_drop("shop", "db-0"), None);
        assert_eq!(f.exec_drop("shop", "db-0"), Some(Duration::from_millis(30)));
        assert_eq!(f.exec_drop("shop", "db-0"), None, "the cleanup exec passes");
        assert_eq!(f.fired(), [1]);
    }

    #[test]
    fn slow_snapshots_add_their_delays_in_their_namespace() {
        let f = Faults::default();
        f.add(Fault::snapshot_slow(
            Some("shop"),
            Duration::from_millis(300),
        ));
        f.add(Fault::snapshot_slow(None, Duration::from_millis(200)));
        assert_eq!(f.snapshot_slowness("shop", "a"), Duration::from_millis(500));
        assert_eq!(f.snapshot_slowness("blog", "a"), Duration::from_millis(200));
    }

    #[test]
    fn hostile_answer_actions_round_trip_through_json() {
        for (action, text) in [
            (FaultAction::TruncatedJson, r#""truncatedJson""#),
            (FaultAction::GarbageBody, r#""garbageBody""#),
            (FaultAction::LabelsAsList, r#""labelsAsList""#),
            (FaultAction::ReadyAsString, r#""readyAsString""#),
            (FaultAction::UnknownFields, r#""unknownFields""#),
            (
                FaultAction::OversizedAnswer { mebibytes: 8 },
                r#"{"oversizedAnswer":{"mebibytes":8}}"#,
            ),
            (
                FaultAction::SlowAnswer {
                    after: Duration::from_millis(1500),
                },
                r#"{"slowAnswer":{"after":1500}}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&action).expect("json"), text);
            assert_eq!(
                serde_json::from_str::<FaultAction>(text).expect("back"),
                action
            );
        }
        assert!(FaultAction::TruncatedJson.alters_answer());
        assert!(!FaultAction::GarbageBody.alters_answer(), "not carried out");
        assert!(
            !FaultAction::SlowAnswer {
                after: Duration::ZERO
            }
            .alters_answer()
        );
    }

    #[test]
    fn faults_round_trip_through_json_for_the_debug_endpoint() {
        let f = Fault::request(
            "patch",
            "volumesnapshotcontents",
            FaultAction::Timeout {
                after: Duration::from_millis(1500),
            },
        );
        let text = serde_json::to_string(&f).expect("json");
        assert_eq!(serde_json::from_str::<Fault>(&text).expect("back"), f);
        let exec: Fault = serde_json::from_str(
            r#"{"type":"execFail","namespace":null,"pod":"db-0","message":"boom"}"#,
        )
        .expect("exec");
        let faults = Faults::default();
        faults.add(exec);
        assert_eq!(faults.exec_failure("x", "db-0").as_deref(), Some("boom"));
        assert_eq!(faults.exec_failure("x", "db-1"), None);
    }
}
