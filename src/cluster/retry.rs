//! The one retry policy for every request backup-ns sends to the Kubernetes API.
//!
//! Real apiservers fail transiently: 429 under API priority and fairness, 500/502/503/504 during upgrades and
//! etcd leader changes, refused or reset connections while a load balancer rotates, and requests that never get
//! an answer. This module decides, in pure and unit-tested functions, which requests may be sent again
//! ([`classify_request`]), which failures are worth another attempt ([`transient_status`], [`transient_error`]),
//! and how long to wait ([`Policy::decide`]: capped exponential backoff with jitter, `Retry-After` honoured,
//! bounded by a maximum number of attempts and by a deadline). [`RetryLayer`] applies it to every request of the
//! client that [`Cluster::connect`](super::Cluster::connect) builds, so call sites stay plain `Api` calls.
//!
//! What is sent again, and why it is safe:
//! - `GET` (get, list, watch restarts, log reads, and the exec upgrade before the remote command starts);
//! - `PATCH`/`PUT` guarded by a `test` op or a `metadata.resourceVersion`, and `DELETE` with preconditions: a
//!   second attempt after a lost answer either applies the same change or fails its guard with a 409, which is
//!   never retried (a concurrent writer needs a fresh read and a new decision, not another attempt). Such a 409
//!   may be the first attempt's own doing (a delete that marked an object with finalizers moved its
//!   resourceVersion); `Cluster::delete_listed_snapshot` tells the two apart when a retry happened.
//!
//! Creates (`POST`) are not retried blindly: the object may exist although the answer was lost.
//! [`create_once`] sends them again only for objects whose name is fixed for the run and which carry the run's
//! id ([`RUN_ID_ANNOTATION`]): an `AlreadyExists` answer then fetches the object and continues if it is ours.
//!
//! Every request also has a deadline: each attempt gets at most [`Policy::attempt_timeout`] to answer (headers
//! for a stream), and no retry starts past [`Policy::budget`] or the deadline of the step around it
//! ([`within_deadline`]). Each retry is logged with its attempt number and wait, and counted in [`RetryStats`].

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt};

/// The annotation that records which run created an object, so a retried create recognises its own object.
pub const RUN_ID_ANNOTATION: &str = crate::labels::ANNOTATION_RUN_ID;

/// The knobs of the policy. One value serves every request; the defaults suit a production apiserver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait before the first retry; doubled on each further retry.
    pub base: Duration,
    /// The longest computed wait (a server's `Retry-After` may ask for more, up to the deadline).
    pub cap: Duration,
    /// How long one attempt may take to answer before it counts as a timeout.
    pub attempt_timeout: Duration,
    /// No retry starts later than this after the first attempt.
    pub budget: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 6,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(30),
            budget: Duration::from_secs(60),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then send the request again.
    RetryAfter(Duration),
    /// Report the failure: it is not transient, or attempts or time are used up.
    GiveUp,
}

impl Policy {
    /// The computed wait before retry number `retry` (1 = the first retry): `base · 2^(retry-1)`, capped, then
    /// "equal jitter" — half of it fixed, half random (`jitter` in `[0, 1)`) — so that many clients failing at
    /// once do not come back at once, yet nobody retries immediately.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let full = exp.min(self.cap);
        let half = full / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// Decides after attempt number `attempt` (1-based) failed. `transient` says whether the failure may pass;
    /// `retry_after` is the server's `Retry-After`; `remaining` is the time left before the deadline.
    pub fn decide(
        &self,
        attempt: u32,
        transient: bool,
        retry_after: Option<Duration>,
        remaining: Duration,
        jitter: f64,
    ) -> Decision {
        if !transient || attempt >= self.max_attempts {
            return Decision::GiveUp;
        }
        let wait = retry_after.unwrap_or_else(|| self.backoff(attempt, jitter));
        // A wait that would end past the deadline only delays the failure: report it now.
        if wait >= remaining {
            return Decision::GiveUp;
        }
        Decision::RetryAfter(wait)
    }
}

/// Whether an HTTP status is worth another attempt: throttling and server-side failures. 409 (a precondition or
/// resourceVersion conflict) is not: the caller must re-read and decide again.
pub fn transient_status(code: u16) -> bool {
    matches!(code, 429 | 500 | 502 | 503 | 504)
}

/// Whether an error without an HTTP answer is worth another attempt: a refused, reset or aborted connection, a
/// connection closed before the answer was complete, or a timeout. Walks the error's `source` chain.
pub fn transient_error(err: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if e.is::<AttemptTimedOut>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | BrokenPipe
                    | TimedOut
                    | UnexpectedEof
            ) {
                return true;
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_timeout() || h.is_closed())
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Whether a `kube::Error` from a call is transient (status or connection), for callers that retry themselves.
pub fn transient_kube_error(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => transient_status(status.code),
        other => transient_error(other),
    }
}

/// Whether a request may be sent again as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Sending it twice has the effect of sending it once (reads, guarded writes).
    Idempotent,
    /// A create, or an unguarded write: only the caller can make it safe ([`create_once`]).
    NotRetryable,
}

/// Classifies a request by its method and body (see the module header for the rules).
pub fn classify_request(method: &Method, body: &[u8]) -> Idempotency {
    let guarded = || {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return false;
        };
        match &value {
            // RFC 6902 JSON patch: a `test` op makes the whole patch conditional.
            serde_json::Value::Array(ops) => ops.iter().any(|op| op["op"] == "test"),
            serde_json::Value::Object(map) => {
                let rv = &value["metadata"]["resourceVersion"];
                let preconditions = &map.get("preconditions");
                rv.as_str().is_some_and(|s| !s.is_empty())
                    || preconditions.is_some_and(|p| {
                        p.get("uid").is_some_and(|v| !v.is_null())
                            || p.get("resourceVersion").is_some_and(|v| !v.is_null())
                    })
            }
            _ => false,
        }
    };
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => Idempotency::Idempotent,
        Method::PATCH | Method::PUT | Method::DELETE if guarded() => Idempotency::Idempotent,
        _ => Idempotency::NotRetryable,
    }
}

/// `Retry-After` in seconds (the form apiservers send), if present and sane.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A random number in `[0, 1)` for the jitter.
fn jitter() -> f64 {
    rand::random::<f64>()
}

/// How many requests were sent again, shared by every clone of one client.
#[derive(Debug, Default)]
pub struct RetryStats {
    retries: AtomicU64,
}

impl RetryStats {
    /// Retries so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

tokio::task_local! {
    static STEP_DEADLINE: Instant;
}

/// Runs `fut` with `deadline` as the step's deadline: no retry inside it waits past that instant.
pub async fn within_deadline<F: Future>(deadline: Instant, fut: F) -> F::Output {
    STEP_DEADLINE.scope(deadline, fut).await
}

/// The deadline for retries of a request started at `started`: the policy's budget, or the step's deadline if
/// that comes first.
fn deadline_for(policy: &Policy, started: Instant) -> Instant {
    let own = started + policy.budget;
    STEP_DEADLINE
        .try_with(|step| (*step).min(own))
        .unwrap_or(own)
}

/// An attempt got no answer within [`Policy::attempt_timeout`].
#[derive(Debug, thiserror::Error)]
#[error("the apiserver did not answer within {}", humantime::format_duration(*.0))]
pub struct AttemptTimedOut(pub Duration);

/// Applies [`Policy`] to every request of a client (see [`Cluster::connect`](super::Cluster::connect)).
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: Policy,
    stats: Arc<RetryStats>,
}

impl RetryLayer {
    pub fn new(policy: Policy, stats: Arc<RetryStats>) -> Self {
        RetryLayer { policy, stats }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            policy: self.policy,
            stats: Arc::clone(&self.stats),
        }
    }
}

/// The service [`RetryLayer`] builds. The inner service sits behind a mutex held only while a request is handed
/// to it, never while its answer is awaited, so requests still run concurrently.
pub struct RetryService<S> {
    inner: Arc<tokio::sync::Mutex<S>>,
    policy: Policy,
    stats: Arc<RetryStats>,
}

impl<S> Clone for RetryService<S> {
    fn clone(&self) -> Self {
        RetryService {
            inner: Arc::clone(&self.inner),
            policy: self.policy,
            stats: Arc::clone(&self.stats),
        }
    }
}

/// A copy of `req` for another attempt (the body of a request built by kube is always in memory).
fn copy_request(req: &Request<Body>) -> Option<Request<Body>> {
    let body = req.body().try_clone()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    Some(copy)
}

impl<S, B> Service<Request<Body>> for RetryService<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness of the inner service is awaited per attempt, under the mutex.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.send(req).await })
    }
}

impl<S, B> RetryService<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    async fn attempt(&self, req: Request<Body>) -> Result<Response<B>, BoxError> {
        let answer = {
            let mut inner = self.inner.lock().await;
            inner.ready().await.map_err(Into::into)?.call(req)
        };
        match tokio::time::timeout(self.policy.attempt_timeout, answer).await {
            Ok(result) => result.map_err(Into::into),
            Err(_) => Err(Box::new(AttemptTimedOut(self.policy.attempt_timeout))),
        }
    }

    async fn send(self, req: Request<Body>) -> Result<Response<B>, BoxError> {
        let started = Instant::now();
        // Only writes need their body read to be classified; a read's body is empty.
        let spare = match (req.method(), req.body().try_clone()) {
            (&Method::GET, Some(_)) => Some(bytes::Bytes::new()),
            (_, Some(body)) => body.collect().await.map(|b| b.to_bytes()).ok(),
            (_, None) => None,
        };
        let retryable = spare
            .as_ref()
            .is_some_and(|body| classify_request(req.method(), body) == Idempotency::Idempotent);
        if !retryable {
            return self.attempt(req).await;
        }
        let deadline = deadline_for(&self.policy, started);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut next = req;
        let mut attempt = 1u32;
        loop {
            let copy = copy_request(&next);
            let result = self.attempt(next).await;
            let (transient, server_wait, what) = match &result {
                Ok(response) => {
                    let code = response.status().as_u16();
                    (
                        transient_status(code),
                        retry_after(response.headers()),
                        format!("HTTP {code}"),
                    )
                }
                Err(e) => (transient_error(e.as_ref()), None, e.to_string()),
            };
            let failed = result.as_ref().map_or(true, |r| {
                r.status().is_client_error() || r.status().is_server_error()
            });
            if !failed {
                return result;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let decision = self
                .policy
                .decide(attempt, transient, server_wait, remaining, jitter());
            let (Decision::RetryAfter(wait), Some(again)) = (decision, copy) else {
                if transient && attempt > 1 {
                    tracing::warn!(%method, %path, attempts = attempt, "giving up on a transient failure: {what}");
                }
                return result;
            };
            self.stats.count();
            tracing::warn!(
                %method,
                %path,
                attempt = attempt + 1,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying after a transient failure: {what}"
            );
            tokio::time::sleep(wait).await;
            next = again;
            attempt += 1;
        }
    }
}

/// Sends a create whose object has a name fixed for the run and carries `run_id` in [`RUN_ID_ANNOTATION`].
/// A transient failure, or an answer that could not be read, is retried under `policy`; an `AlreadyExists`
/// answer on a retry (an earlier attempt's answer was lost or unreadable) fetches the object and returns it if it is ours, or [`CreateConflict::Foreign`] if another
/// run or someone else made it. On the first attempt `AlreadyExists` is reported as it is.
pub async fn create_once<T, C, CF, G, GF>(
    policy: &Policy,
    stats: &RetryStats,
    run_id: &str,
    mut create: C,
    mut get: G,
) -> Result<T, CreateConflict>
where
    T: kube::Resource,
    C: FnMut() -> CF,
    CF: Future<Output = Result<T, kube::Error>>,
    G: FnMut() -> GF,
    GF: Future<Output = Result<T, kube::Error>>,
{
    let deadline = deadline_for(policy, Instant::now());
    let mut attempt = 1u32;
    loop {
        let err = match create().await {
            Ok(created) => return Ok(created),
            Err(err) => err,
        };
        // Only a retry can meet the object of an earlier attempt whose answer was lost; on the first attempt an
        // existing object is a plain conflict, whoever made it.
        if let kube::Error::Api(status) = &err
            && status.code == 409
            && status.reason == "AlreadyExists"
            && attempt > 1
        {
            let found = get().await.map_err(CreateConflict::Api)?;
            let owner = found
                .meta()
                .annotations
                .as_ref()
                .and_then(|a| a.get(RUN_ID_ANNOTATION))
                .cloned();
            return if owner.as_deref() == Some(run_id) {
                tracing::info!(
                    attempt,
                    "the object already exists and carries this run's id: continuing"
                );
                Ok(found)
            } else {
                Err(CreateConflict::Foreign { owner, source: err })
            };
        }
        // A 409 that is not AlreadyExists ("the object has been modified; please apply your changes to the latest
        // version and try again") is the storage's optimistic-concurrency failure: nothing was created, and the
        // name is fixed for the run, so sending it again is safe (AlreadyExists on that retry is handled above).
        let storage_conflict = matches!(&err, kube::Error::Api(status)
            if status.code == 409 && status.reason != "AlreadyExists");
        let remaining = deadline.saturating_duration_since(Instant::now());
        // An answer that came but could not be read (cut short, a proxy's page) leaves the client as unsure as a
        // lost one whether the object was made: send it again, and an `AlreadyExists` then finds it as above.
        let unreadable = matches!(err, kube::Error::SerdeError(_) | kube::Error::FromUtf8(_));
        match policy.decide(
            attempt,
            storage_conflict || unreadable || transient_kube_error(&err),
            None,
            remaining,
            jitter(),
        ) {
            Decision::GiveUp => return Err(CreateConflict::Api(err)),
            Decision::RetryAfter(wait) => {
                stats.count();
                tracing::warn!(
                    attempt = attempt + 1,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "retrying a create after a transient failure: {err}"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// Why [`create_once`] failed.
#[derive(Debug)]
pub enum CreateConflict {
    /// The API refused or failed (after any retries).
    Api(kube::Error),
    /// An object with that name exists and was not created by this run (`owner` is its run id, if any).
    Foreign {
        owner: Option<String>,
        source: kube::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_attempts: 4,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(500),
            attempt_timeout: Duration::from_secs(1),
            budget: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_the_cap_and_keeps_half_of_it_fixed() {
        let p = policy();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(p.backoff(1, 0.0)), 50);
        assert_eq!(ms(p.backoff(1, 0.999_999)), 99);
        assert_eq!(ms(p.backoff(2, 0.0)), 100);
        assert_eq!(ms(p.backoff(3, 0.0)), 200);
        assert_eq!(ms(p.backoff(4, 0.0)), 250, "capped at 500 ms, half fixed");
        assert_eq!(ms(p.backoff(40, 1.0)), 500, "no overflow far out");
    }

    #[test]
    fn only_transient_failures_are_retried_and_only_while_attempts_and_time_remain() {
        let p = policy();
        let lots = Duration::from_secs(60);
        assert_eq!(
            p.decide(1, true, None, lots, 0.0),
            Decision::RetryAfter(Duration::from_millis(50))
        );
        assert_eq!(p.decide(1, false, None, lots, 0.0), Decision::GiveUp);
        assert_eq!(p.decide(4, true, None, lots, 0.0), Decision::GiveUp);
        assert_eq!(
            p.decide(1, true, None, Duration::from_millis(50), 0.0),
            Decision::GiveUp,
            "a wait that ends at the deadline is not started"
        );
    }

    #[test]
    fn retry_after_is_honoured_but_not_past_the_deadline() {
        let p = policy();
        assert_eq!(
            p.decide(
                1,
                true,
                Some(Duration::from_secs(2)),
                Duration::from_secs(60),
                0.5
            ),
            Decision::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(
            p.decide(
                1,
                true,
                Some(Duration::from_secs(2)),
                Duration::from_secs(1),
                0.5
            ),
            Decision::GiveUp
        );
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn throttling_and_server_failures_are_transient_but_conflicts_are_not() {
        for code in [429, 500, 502, 503, 504] {
            assert!(transient_status(code), "{code}");
        }
        for code in [200, 400, 401, 403, 404, 409, 410, 422, 501] {
            assert!(!transient_status(code), "{code}");
        }
    }

    #[test]
    fn broken_connections_and_timeouts_are_transient_wherever_they_sit_in_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("request failed")]
        struct Wrapper(#[source] std::io::Error);
        use std::io::{Error, ErrorKind};
        for kind in [
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectionReset,
            ErrorKind::TimedOut,
        ] {
            assert!(transient_error(&Wrapper(Error::from(kind))), "{kind:?}");
        }
        assert!(!transient_error(&Wrapper(Error::from(
            ErrorKind::PermissionDenied
        ))));
        assert!(transient_error(&AttemptTimedOut(Duration::from_secs(1))));
        let api = kube::Error::Api(Box::new(kube::core::Status {
            code: 409,
            reason: "Conflict".into(),
            ..Default::default()
        }));
        assert!(!transient_kube_error(&api));
    }

    #[test]
    fn reads_and_guarded_writes_are_idempotent_but_creates_and_blind_writes_are_not() {
        use Idempotency::*;
        let cases: [(Method, &str, Idempotency); 10] = [
            (Method::GET, "", Idempotent),
            (Method::POST, r#"{"metadata":{"name":"x"}}"#, NotRetryable),
            (
                Method::PATCH,
                r#"[{"op":"test","path":"/metadata/labels/a","value":"1"},{"op":"remove","path":"/metadata/labels/a"}]"#,
                Idempotent,
            ),
            (
                Method::PATCH,
                r#"[{"op":"add","path":"/metadata/labels/a","value":"1"}]"#,
                NotRetryable,
            ),
            (
                Method::PATCH,
                r#"{"metadata":{"resourceVersion":"42","labels":{"a":"1"}}}"#,
                Idempotent,
            ),
            (Method::PATCH, r#"{"spec":{"x":1}}"#, NotRetryable),
            (
                Method::DELETE,
                r#"{"preconditions":{"uid":"u-1","resourceVersion":null}}"#,
                Idempotent,
            ),
            (
                Method::DELETE,
                r#"{"propagationPolicy":"Background"}"#,
                NotRetryable,
            ),
            (Method::DELETE, "", NotRetryable),
            (
                Method::PUT,
                r#"{"metadata":{"name":"x","resourceVersion":"7"}}"#,
                Idempotent,
            ),
        ];
        for (method, body, want) in cases {
            assert_eq!(
                classify_request(&method, body.as_bytes()),
                want,
                "{method} {body}"
            );
        }
    }

    #[tokio::test]
    async fn a_create_refused_with_a_storage_conflict_is_sent_again_and_an_existing_name_is_not() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use std::sync::atomic::AtomicU32;
        let status = |reason: &str| {
            kube::Error::Api(Box::new(kube::core::Status {
                code: 409,
                reason: reason.into(),
                ..Default::default()
            }))
        };
        // "Conflict" first, then the create goes through: one retry.
        let stats = RetryStats::default();
        let calls = AtomicU32::new(0);
        let created = create_once(
            &policy(),
            &stats,
            "run-1",
            || {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                let answer = if n == 0 {
                    Err(status("Conflict"))
                } else {
                    Ok(ConfigMap::default())
                };
                async move { answer }
            },
            || async { Err(status("NotFound")) },
        )
        .await;
        assert!(created.is_ok());
        assert_eq!((calls.load(Ordering::Relaxed), stats.retries()), (2, 1));
        // AlreadyExists on the first attempt is someone else's object: reported at once, never retried.
        let stats = RetryStats::default();
        let calls = AtomicU32::new(0);
        let refused = create_once(
            &policy(),
            &stats,
            "run-1",
            || {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Err::<ConfigMap, _>(status("AlreadyExists")) }
            },
            || async { Ok(ConfigMap::default()) },
        )
        .await;
        assert!(matches!(refused, Err(CreateConflict::Api(_))));
        assert_eq!((calls.load(Ordering::Relaxed), stats.retries()), (1, 0));
    }

    #[tokio::test]
    async fn a_step_deadline_shortens_the_budget() {
        let p = policy();
        let now = Instant::now();
        assert_eq!(deadline_for(&p, now), now + p.budget);
        let soon = now + Duration::from_secs(1);
        let inside = within_deadline(soon, async { deadline_for(&p, now) }).await;
        assert_eq!(inside, soon);
    }
}
