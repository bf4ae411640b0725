//! The node-level concurrency lock: at most N backup runs at once on one node.
//!
//! The lock is a directory (a hostPath shared by every backup pod on the node) holding slot files `1.lock` ..
//! `N.lock`. A run holds one slot with an exclusive advisory lock (std `File::try_lock`, `flock(2)` on Linux).
//!
//! Unlike the original, which picked one random slot and blocked on it even while other slots were free, we try
//! every slot in random order (random so that concurrent waiters do not all hammer `1.lock`), take the first free
//! one, and only when all are busy wait with exponential backoff for *any* slot until the timeout.
//!
//! Release: the lock belongs to the open file description, so it is released when [`SlotGuard`] is dropped (the
//! file is closed) and, whatever happens, when the process dies: the kernel drops `flock` locks of a dead process,
//! so even `SIGKILL` cannot leave a slot stuck. For `SIGTERM`/`SIGINT` (a CronJob's `activeDeadlineSeconds` sends
//! SIGTERM) the engine races the whole run against the signal with `tokio::select!`; the losing branch is dropped,
//! which drops the guard and unlocks the slot before the process exits with 143/130.
//!
//! [`FileLock`] is this lock behind the engine's [`NodeLock`] port.

use crate::Exit;
use crate::vocab::lock::{HeldSlot, LockFailure, NodeLock};
use futures::future::BoxFuture;
use rand::seq::SliceRandom;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// First pause between rounds of attempts when every slot is busy; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between rounds, so a freed slot is noticed within a couple of seconds.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where the slots live, how many there are and how long to wait for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockConfig {
    pub dir: PathBuf,
    pub slots: u32,
    pub timeout: Duration,
}

/// Why a slot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock slots must be at least 1 (lock dir {dir})")]
    NoSlots { dir: PathBuf },
    #[error("could not create the lock directory {dir}: {source}")]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not open the lock slot file {path}: {source}")]
    OpenSlot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not lock the slot file {path}: {source}")]
    LockSlot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "all {slots} lock slot(s) in {dir} stayed busy for {}; other backups on this node are still running \
         (raise lock.timeout or lock.slots)",
        humantime::format_duration(*.waited)
    )]
    Timeout {
        dir: PathBuf,
        slots: u32,
        waited: Duration,
    },
}

impl LockError {
    /// The process exit code this error maps to: a timeout has its own code, anything else is a failure.
    pub fn exit(&self) -> Exit {
        match self {
            LockError::Timeout { .. } => Exit::LockTimeout,
            _ => Exit::Failure,
        }
    }
}

/// A held slot. Dropping it closes the file, which releases the lock.
#[derive(Debug)]
pub struct SlotGuard {
    // Held only for its lock; closing it (on drop) unlocks.
    _file: File,
    slot: u32,
    path: PathBuf,
}

impl SlotGuard {
    /// The slot number (1-based), as in the file name `N.lock`.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The slot file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        tracing::debug!(slot = self.slot, path = %self.path.display(), "released lock slot");
    }
}

/// The slot-file lock as the engine's [`NodeLock`]: each `acquire` takes one slot with [`acquire_async`].
#[derive(Debug)]
pub struct FileLock {
    config: LockConfig,
}

impl FileLock {
    pub fn new(config: LockConfig) -> FileLock {
        FileLock { config }
    }
}

impl HeldSlot for SlotGuard {
    fn describe(&self) -> String {
        format!("slot {} ({})", self.slot, self.path.display())
    }
}

impl NodeLock for FileLock {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn HeldSlot>, LockFailure>> {
        Box::pin(async move {
            match acquire_async(&self.config).await {
                Ok(guard) => Ok(Box::new(guard) as Box<dyn HeldSlot>),
                Err(e @ LockError::Timeout { .. }) => Err(LockFailure::Timeout(e.to_string())),
                Err(e) => Err(LockFailure::Other(e.to_string())),
            }
        })
    }
}

/// Takes a slot, blocking the thread while waiting. For async callers see [`acquire_async`].
pub fn acquire(config: &LockConfig) -> Result<SlotGuard, LockError> {
    let mut waiter = Waiter::new(config)?;
    loop {
        match waiter.round()? {
            Round::Taken(guard) => return Ok(guard),
            Round::Wait(pause) => std::thread::sleep(pause),
        }
    }
}

/// Takes a slot without blocking the runtime. Dropping the future (e.g. when a signal wins a `select!`) stops the
/// wait; nothing is held then.
pub async fn acquire_async(config: &LockConfig) -> Result<SlotGuard, LockError> {
    let mut waiter = Waiter::new(config)?;
    loop {
        match waiter.round()? {
            Round::Taken(guard) => return Ok(guard),
            Round::Wait(pause) => tokio::time::sleep(pause).await,
        }
    }
}

/// One attempt over all slots, then either a guard or how long to pause.
enum Round {
    Taken(SlotGuard),
    Wait(Duration),
}

/// The state of one acquisition: slot paths, deadline and current backoff.
struct Waiter<'a> {
    config: &'a LockConfig,
    order: Vec<u32>,
    started: Instant,
    backoff: Duration,
}

impl<'a> Waiter<'a> {
    fn new(config: &'a LockConfig) -> Result<Self, LockError> {
        if config.slots == 0 {
            return Err(LockError::NoSlots {
                dir: config.dir.clone(),
            });
        }
        std::fs::create_dir_all(&config.dir).map_err(|source| LockError::CreateDir {
            dir: config.dir.clone(),
            source,
        })?;
        Ok(Waiter {
            config,
            order: (1..=config.slots).collect(),
            started: Instant::now(),
            backoff: MIN_BACKOFF,
        })
    }

    fn round(&mut self) -> Result<Round, LockError> {
        self.order.shuffle(&mut rand::rng());
        for &slot in &self.order {
            if let Some(guard) = try_slot(&self.config.dir, slot)? {
                tracing::info!(slot, path = %guard.path.display(), waited = ?self.started.elapsed(), "took lock slot");
                return Ok(Round::Taken(guard));
            }
        }
        let waited = self.started.elapsed();
        let Some(left) = self
            .config
            .timeout
            .checked_sub(waited)
            .filter(|d| !d.is_zero())
        else {
            return Err(LockError::Timeout {
                dir: self.config.dir.clone(),
                slots: self.config.slots,
                waited,
            });
        };
        let pause = self.backoff.min(left);
        tracing::debug!(
            slots = self.config.slots,
            ?pause,
            "all lock slots busy; waiting"
        );
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Ok(Round::Wait(pause))
    }
}

/// The path of slot `n` in `dir`.
pub fn slot_path(dir: &Path, slot: u32) -> PathBuf {
    dir.join(format!("{slot}.lock"))
}

/// Tries one slot without blocking: `Ok(None)` when another holder has it.
fn try_slot(dir: &Path, slot: u32) -> Result<Option<SlotGuard>, LockError> {
    let path = slot_path(dir, slot);
    // No truncate on open: truncating a file someone else holds would wipe their holder note.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| LockError::OpenSlot {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(source)) => return Err(LockError::LockSlot { path, source }),
    }
    // A note for whoever inspects the hostPath dir. Best effort: the lock itself is what matters.
    let note = format!("pid {}\n", std::process::id());
    if let Err(err) = file
        .set_len(0)
        .and_then(|()| file.write_all(note.as_bytes()))
    {
        tracing::debug!(path = %path.display(), %err, "could not write the holder note into the slot file");
    }
    Ok(Some(SlotGuard {
        _file: file,
        slot,
        path,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Barrier};

    fn config(dir: &Path, slots: u32, timeout: Duration) -> LockConfig {
        LockConfig {
            dir: dir.to_path_buf(),
            slots,
            timeout,
        }
    }

    #[test]
    fn parallel_holders_in_threads_take_distinct_slots_until_all_are_busy() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path(), 3, Duration::from_millis(200));
        let barrier = Arc::new(Barrier::new(3));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let cfg = cfg.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let guard = acquire(&cfg);
                    // All three hold their slot at this point, at the same time.
                    barrier.wait();
                    guard.map(|g| g.slot())
                })
            })
            .collect();
        let mut slots: Vec<u32> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        slots.sort_unstable();
        assert_eq!(slots, vec![1, 2, 3], "concurrent holders shared a slot");

        // Hold all three in this thread and show a fourth times out.
        let held: Vec<SlotGuard> = (0..3).map(|_| acquire(&cfg).unwrap()).collect();
        let mut numbers: Vec<u32> = held.iter().map(SlotGuard::slot).collect();
        numbers.sort_unstable();
        assert_eq!(
            numbers,
            vec![1, 2, 3],
            "a free slot must be taken before anything waits"
        );
        let err = acquire(&cfg).unwrap_err();
        assert!(matches!(err, LockError::Timeout { slots: 3, .. }), "{err}");
        assert_eq!(err.exit(), Exit::LockTimeout);
    }

    #[test]
    fn a_timeout_waits_about_the_configured_time_and_says_what_to_change() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path(), 1, Duration::from_millis(300));
        let _held = acquire(&cfg).unwrap();
        let started = Instant::now();
        let err = acquire(&cfg).unwrap_err();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300),
            "gave up early after {waited:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("lock.timeout") && text.contains("1 lock slot(s)"),
            "{text}"
        );
    }

    #[test]
    fn with_one_slot_the_second_waiter_proceeds_after_the_first_releases() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path(), 1, Duration::from_secs(10));
        let first = acquire(&cfg).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let cfg2 = cfg.clone();
        let waiter = std::thread::spawn(move || {
            let guard = acquire(&cfg2);
            tx.send(()).unwrap();
            guard.map(|g| g.slot())
        });
        // The second run must still be waiting while the first holds the only slot.
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "second waiter got the slot while it was held"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("second waiter did not proceed after release");
        assert_eq!(waiter.join().unwrap().unwrap(), 1);
    }

    #[tokio::test]
    async fn the_async_wait_proceeds_after_release_without_blocking_the_runtime() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path(), 1, Duration::from_secs(10));
        let first = acquire_async(&cfg).await.unwrap();
        let cfg2 = cfg.clone();
        let second = tokio::spawn(async move { acquire_async(&cfg2).await.map(|g| g.slot()) });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "second waiter got a held slot");
        drop(first);
        let slot = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("second waiter did not proceed")
            .unwrap()
            .unwrap();
        assert_eq!(slot, 1);
    }

    /// Holds `path` from another process with util-linux `flock(1)` (same `flock(2)` lock as std uses).
    fn hold_in_other_process(path: &Path, seconds: u32) -> Child {
        // `-o`: the command does not inherit the locked fd, so killing flock(1) itself releases the lock.
        Command::new("flock")
            .arg("-x")
            .arg("-o")
            .arg(path)
            .arg("-c")
            .arg(format!("echo held; sleep {seconds}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test needs flock(1) from util-linux (apt-get install util-linux): {e}")
            })
    }

    fn wait_until_held(child: &mut Child) {
        use std::io::Read;
        let mut buf = [0u8; 5];
        let stdout = child.stdout.as_mut().expect("piped stdout");
        stdout
            .read_exact(&mut buf)
            .expect("flock(1) did not report holding the slot");
        assert_eq!(&buf, b"held\n");
    }

    #[test]
    fn slots_held_by_other_processes_are_skipped_and_released_when_they_exit() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path(), 2, Duration::from_secs(10));
        let mut long = hold_in_other_process(&slot_path(tmp.path(), 1), 10);
        wait_until_held(&mut long);
        let mut short = hold_in_other_process(&slot_path(tmp.path(), 2), 1);
        wait_until_held(&mut short);

        let started = Instant::now();
        let guard = acquire(&cfg).unwrap();
        // Slot 1 stays held by the long process, so slot 2 must be the one freed by the short one's exit.
        assert_eq!(guard.slot(), 2);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "took a slot while both were held"
        );
        long.kill().unwrap();
        long.wait().unwrap();
        short.wait().unwrap();
        // The killed process's lock died with it.
        let other = acquire(&config(tmp.path(), 2, Duration::ZERO)).unwrap();
        assert_eq!(other.slot(), 1);
    }

    #[test]
    fn zero_slots_is_an_error_not_an_endless_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let err = acquire(&config(tmp.path(), 0, Duration::from_secs(1))).unwrap_err();
        assert!(matches!(err, LockError::NoSlots { .. }));
        assert_eq!(err.exit(), Exit::Failure);
    }

    #[test]
    fn an_unusable_lock_dir_is_reported_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = acquire(&config(&file.join("sub"), 1, Duration::ZERO)).unwrap_err();
        assert!(matches!(err, LockError::CreateDir { .. }), "{err}");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}
