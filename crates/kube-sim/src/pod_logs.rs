//! Pod logs: what the kubelet keeps of each container's output. One bounded buffer per container (past
//! [`MAX_BYTES`] the oldest bytes are dropped, as log rotation would), the simulated time each line started at
//! (for `timestamps`, `sinceTime`, `sinceSeconds`), and a change counter that wakes `follow` readers. Tests and the
//! demo write the output (`Sim::append_pod_log`, `POST /_sim/pods/NS/NAME/log`); the store drops a pod's buffers
//! when the pod is deleted, so a new pod of the same name starts empty.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;

use crate::container::log_container;
use crate::status::ApiError;
use crate::store::{Companion, Key, Store};

/// Bytes kept per container.
pub const MAX_BYTES: usize = 1024 * 1024;

/// One container's output.
#[derive(Debug, Default)]
struct ContainerLog {
    /// Bytes dropped from the front so far: `dropped + bytes.len()` is everything ever written.
    dropped: u64,
    bytes: VecDeque<u8>,
    /// Offset and time of every line start still in `bytes` (the first may be a line cut by rotation), oldest first.
    lines: VecDeque<(u64, DateTime<Utc>)>,
}

impl ContainerLog {
    fn end(&self) -> u64 {
        self.dropped + self.bytes.len() as u64
    }

    fn append(&mut self, data: &[u8], now: DateTime<Utc>, cap: usize) {
        let end = self.end();
        let mut line_open = self.bytes.back().is_some_and(|b| *b != b'\n');
        for (i, &b) in data.iter().enumerate() {
            if !line_open {
                self.lines.push_back((end + i as u64, now));
            }
            line_open = b != b'\n';
        }
        self.bytes.extend(data);
        let excess = self.bytes.len().saturating_sub(cap);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.dropped += excess as u64;
            while self.lines.get(1).is_some_and(|(o, _)| *o <= self.dropped) {
                self.lines.pop_front();
            }
            if let Some(first) = self.lines.front_mut() {
                first.0 = first.0.max(self.dropped);
            }
        }
    }

    /// Offset of the first line to send for `tail_lines` / `since`: the later of both.
    fn start(&self, tail_lines: Option<usize>, since: Option<DateTime<Utc>>) -> u64 {
        let by_tail = tail_lines.map(|n| {
            let skip = self.lines.len().saturating_sub(n);
            self.lines.get(skip).map_or(self.end(), |(o, _)| *o)
        });
        let by_time = since.map(|t| {
            self.lines
                .iter()
                .find(|(_, at)| *at >= t)
                .map_or(self.end(), |(o, _)| *o)
        });
        by_tail
            .into_iter()
            .chain(by_time)
            .max()
            .unwrap_or(self.dropped)
    }

    fn slice(&self, from: u64) -> Slice {
        let from = from.clamp(self.dropped, self.end());
        let skip = (from - self.dropped) as usize;
        let line_starts = self
            .lines
            .iter()
            .filter(|(o, _)| *o >= from)
            .map(|(o, t)| ((o - from) as usize, *t))
            .collect();
        Slice {
            bytes: self.bytes.range(skip..).copied().collect(),
            line_starts,
            end: self.end(),
        }
    }
}

/// Output of one container from some offset on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Index into `bytes` and time of each line that starts in them.
    pub line_starts: Vec<(usize, DateTime<Utc>)>,
    /// Offset just past `bytes`: where the next read continues.
    pub end: u64,
}

impl Slice {
    /// The bytes as the kubelet sends them: with `timestamps`, every line prefixed by its RFC 3339 time (nine
    /// fractional digits) and a space.
    pub fn render(&self, timestamps: bool) -> Vec<u8> {
        if !timestamps {
            return self.bytes.clone();
        }
        let mut out = Vec::with_capacity(self.bytes.len() + self.line_starts.len() * 31);
        let mut copied = 0;
        for (at, time) in &self.line_starts {
            out.extend_from_slice(&self.bytes[copied..*at]);
            out.extend_from_slice(time.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
            out.push(b' ');
            copied = *at;
        }
        out.extend_from_slice(&self.bytes[copied..]);
        out
    }
}

type PodKey = (String, String);

/// Every container log of every pod; cheap to share behind the store.
#[derive(Debug)]
pub struct PodLogs {
    pods: Mutex<HashMap<PodKey, BTreeMap<String, ContainerLog>>>,
    cap: usize,
    /// Bumped on every append and removal, so followers re-read.
    changed: watch::Sender<u64>,
}

impl Default for PodLogs {
    fn default() -> Self {
        PodLogs::with_capacity(MAX_BYTES)
    }
}

impl PodLogs {
    /// Logs keeping `cap` bytes per container.
    pub fn with_capacity(cap: usize) -> Self {
        PodLogs {
            pods: Mutex::new(HashMap::new()),
            cap,
            changed: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PodKey, BTreeMap<String, ContainerLog>>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(ns: &str, pod: &str) -> PodKey {
        (ns.to_string(), pod.to_string())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Append to the log of `container` (None = the only container) of an existing pod, stamped with the
    /// store's clock. Checked under the store lock, so output never outlives the pod it was written for (the
    /// store drops a removed pod's logs under the same lock, see [`Companion`]). Returns the container.
    pub fn append_to_pod(
        &self,
        store: &Store,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        data: &[u8],
    ) -> Result<String, ApiError> {
        store.with_object("", "pods", ns, pod, |obj| {
            let obj = obj.ok_or_else(|| ApiError::not_found("", "pods", pod))?;
            let container = log_container(obj, container)?;
            self.append(ns, pod, &container, data, store.clock().now());
            Ok(container)
        })
    }

    /// Append `data` to a container's log, stamped `now`. Callers check that the pod and container exist
    /// ([`PodLogs::append_to_pod`]).
    pub fn append(&self, ns: &str, pod: &str, container: &str, data: &[u8], now: DateTime<Utc>) {
        if data.is_empty() {
            return;
        }
        self.lock()
            .entry(Self::key(ns, pod))
            .or_default()
            .entry(container.to_string())
            .or_default()
            .append(data, now, self.cap);
        self.bump();
    }

    /// Forget a pod's logs (it was deleted).
    pub fn remove_pod(&self, ns: &str, pod: &str) {
        if self.lock().remove(&Self::key(ns, pod)).is_some() {
            self.bump();
        }
    }

    /// Where a read honouring `tailLines` / `sinceTime` starts (everything kept when both are None).
    pub fn start(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        tail_lines: Option<usize>,
        since: Option<DateTime<Utc>>,
    ) -> u64 {
        self.lock()
            .get(&Self::key(ns, pod))
            .and_then(|p| p.get(container))
            .map_or(0, |c| c.start(tail_lines, since))
    }

    /// A container's output from `offset` on (from the oldest kept byte when `offset` was rotated away).
    pub fn read(&self, ns: &str, pod: &str, container: &str, offset: u64) -> Slice {
        self.lock()
            .get(&Self::key(ns, pod))
            .and_then(|p| p.get(container))
            .map_or_else(
                || Slice {
                    bytes: Vec::new(),
                    line_starts: Vec::new(),
                    end: offset,
                },
                |c| c.slice(offset),
            )
    }

    /// A receiver that sees a change whenever any log grows or a pod's logs are removed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

impl Companion for PodLogs {
    /// A deleted pod takes its logs with it, so a new pod of the same name starts empty.
    fn removed(&self, key: &Key) {
        if key.0.is_empty() && key.1 == "pods" {
            self.remove_pod(&key.2, &key.3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sec: u32) -> DateTime<Utc> {
        format!("2025-01-08T15:56:{sec:02}Z").parse().expect("time")
    }

    #[test]
    fn the_oldest_bytes_are_dropped_past_the_cap_and_readers_skip_ahead() {
        let logs = PodLogs::with_capacity(8);
        logs.append("ns", "p", "c", b"one\ntwo\n", at(1));
        logs.append("ns", "p", "c", b"three\n", at(2));
        let all = logs.read("ns", "p", "c", 0);
        assert_eq!(all.bytes, b"o\nthree\n");
        assert_eq!(all.end, 14);
        // The line cut by rotation keeps its time; the reader of offset 2 gets what is left.
        assert_eq!(all.line_starts, vec![(0, at(1)), (2, at(2))]);
        assert_eq!(logs.read("ns", "p", "c", 14).bytes, b"");
        assert_eq!(logs.read("ns", "p", "c", 9).bytes, b"hree\n");
    }

    #[test]
    fn tail_and_since_pick_whole_lines_and_partial_lines_count_as_lines() {
        let logs = PodLogs::default();
        logs.append("ns", "p", "c", b"a\nb", at(1));
        logs.append("ns", "p", "c", b"b\nc\nd", at(3));
        let from = |tail, since| {
            let start = logs.start("ns", "p", "c", tail, since);
            String::from_utf8(logs.read("ns", "p", "c", start).bytes).expect("utf8")
        };
        assert_eq!(from(None, None), "a\nbb\nc\nd");
        assert_eq!(from(Some(2), None), "c\nd");
        assert_eq!(from(Some(0), None), "");
        assert_eq!(from(Some(10), None), "a\nbb\nc\nd");
        assert_eq!(from(None, Some(at(2))), "c\nd");
        assert_eq!(from(Some(1), Some(at(2))), "d");
        assert_eq!(logs.start("ns", "other", "c", Some(1), None), 0);
    }

    #[test]
    fn timestamps_prefix_every_line_with_its_time_once() {
        let logs = PodLogs::default();
        logs.append("ns", "p", "c", b"first\nsec", at(1));
        let head = logs.read("ns", "p", "c", 0);
        logs.append("ns", "p", "c", b"ond\n", at(2));
        let rest = logs.read("ns", "p", "c", head.end);
        let text = |s: &Slice| String::from_utf8(s.render(true)).expect("utf8");
        assert_eq!(
            text(&head),
            "2025-01-08T15:56:01.000000000Z first\n2025-01-08T15:56:01.000000000Z sec"
        );
        assert_eq!(text(&rest), "ond\n");
        assert_eq!(rest.render(false), b"ond\n");
    }

    #[test]
    fn removing_a_pod_forgets_its_logs_and_wakes_followers() {
        let logs = PodLogs::default();
        let mut rx = logs.subscribe();
        logs.append("ns", "p", "c", b"x\n", at(1));
        assert!(rx.has_changed().expect("open"));
        rx.mark_unchanged();
        logs.remove_pod("ns", "p");
        assert!(rx.has_changed().expect("open"));
        assert_eq!(logs.read("ns", "p", "c", 0).bytes, b"");
    }
}
