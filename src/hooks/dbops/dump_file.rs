//! The local side of `postgres|mysql download`: a [`DumpWriter`] takes the streamed dump as it arrives, writes it
//! into a file on one thread, computes the SHA-256 of the bytes as written (and, only when the container cannot
//! test the dump itself, decodes a gzip dump) on another, and makes the file durable at the end.
//!
//! Why it looks the way it does (each point was measured on the download benchmark, `cargo bench --bench
//! download`):
//! - The exec stream is read straight into a page-aligned stage buffer ([`DumpWriter::space`]): no copy in user
//!   space.
//! - A write thread takes the full buffers. A file that is made durable at the end (the default) is written
//!   around the page cache (`O_DIRECT`, 1 MiB at a time): the disk reads the buffer itself, so there is no copy
//!   into the page cache, no writeback for this process to start, and a 10 GiB dump does not push everything
//!   else out of the cache. It cut the download's CPU by about a tenth. Where the filesystem takes no direct
//!   writes, and for the short last buffer, writes go through the page cache, whose copy runs several times
//!   faster from a page-aligned source.
//! - The check thread gets each buffer once it is written and hands it back to the pool when hashed (or
//!   decoded); when either thread falls behind, the download waits for a free buffer. Memory is therefore
//!   bounded by `POOL × STAGE`, and no thread is woken per frame.
//! - SHA-256 is ring's (SHA extensions where the CPU has them): it keeps up with the stream, where inflating a
//!   well-compressed dump locally ran at a quarter of the transfer's speed.
//! - Through the page cache, `sync_file_range` starts writeback every [`WRITEBACK_STEP`] bytes, so the final
//!   `fsync` has little left.

use std::io::Write as _;
use tokio::sync::mpsc;

/// Size of one stage buffer: the unit of `write`, of the progress bar and of the check thread's work. A multiple
/// of every block size, as writes around the page cache need.
const STAGE: usize = 1024 * 1024;

/// Stage buffers in circulation: one being filled, the rest queued for or inside the write and the check.
const POOL: usize = 8;

/// Once this much has been written through the page cache since the last hint, the kernel is asked to start
/// writing it back.
const WRITEBACK_STEP: u64 = 16 * 1024 * 1024;

/// Writes a streamed dump into a local file; see the module docs.
pub struct DumpWriter {
    stage: AlignedBuffer,
    /// Bytes handed to the write thread.
    handed: u64,
    bar: Option<indicatif::ProgressBar>,
    /// Full buffers to the write thread; `None` once the input ended.
    full: Option<mpsc::Sender<AlignedBuffer>>,
    /// Buffers back from the last thread in line, to fill again.
    free: mpsc::Receiver<AlignedBuffer>,
    writer: Worker<Wrote>,
    check: Option<Worker<Verdicts>>,
}

/// The write thread's result: the file back, and the bytes written or why writing stopped.
type Wrote = (std::fs::File, std::io::Result<u64>);

/// A thread of the pipeline; its result can be taken once.
enum Worker<T> {
    Running(std::thread::JoinHandle<T>),
    Joined,
}

impl<T: Send + 'static> Worker<T> {
    /// Waits for the thread (off the runtime) and takes its result; `None` if it panicked or was joined before.
    async fn join(&mut self) -> Option<T> {
        let Worker::Running(handle) = std::mem::replace(self, Worker::Joined) else {
            return None;
        };
        tokio::task::spawn_blocking(move || handle.join().ok())
            .await
            .ok()
            .flatten()
    }
}

/// What the check thread computes over the bytes as they are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checks {
    /// SHA-256 of the whole file.
    pub sha256: bool,
    /// Decode the bytes as (multi-member) gzip: the fallback when the container cannot run `gzip -t`.
    pub gzip: bool,
}

impl Checks {
    fn any(self) -> bool {
        self.sha256 || self.gzip
    }
}

/// What the check thread found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// The file's SHA-256, when asked for.
    pub sha256: Option<[u8; 32]>,
    /// For a gzip check: `Ok` when every member decoded and the stream ended cleanly, else the decoder's message.
    pub gzip: Option<Result<(), String>>,
}

/// What [`DumpWriter::finish`] found.
pub struct Written {
    /// Bytes written to the file, or why writing (or the fsync) failed.
    pub bytes: std::io::Result<u64>,
    /// The checks' results, or why the check thread stopped.
    pub checked: Result<Verdicts, String>,
}

impl DumpWriter {
    /// A writer into `file` (empty, freshly created) that also runs `checks` over the bytes. `direct` writes
    /// around the page cache where the filesystem allows it (for a file that is made durable at the end anyway).
    pub fn new(
        file: std::fs::File,
        checks: Checks,
        direct: bool,
        bar: Option<indicatif::ProgressBar>,
    ) -> DumpWriter {
        let (full_tx, full_rx) = mpsc::channel(POOL);
        let (free_tx, free_rx) = mpsc::channel(POOL);
        for _ in 1..POOL {
            // Cannot fail: the channel has room for the whole pool and its receiver is alive.
            let _ = free_tx.try_send(AlignedBuffer::new(STAGE));
        }
        // The write thread passes each written buffer on to the check thread, or straight back to the pool.
        let (after_write, check) = if checks.any() {
            let (checked_tx, checked_rx) = mpsc::channel(POOL);
            let thread = std::thread::spawn(move || run_checks(checks, checked_rx, free_tx));
            (checked_tx, Some(Worker::Running(thread)))
        } else {
            (free_tx, None)
        };
        let writer = std::thread::spawn(move || run_writes(file, direct, full_rx, after_write));
        DumpWriter {
            stage: AlignedBuffer::new(STAGE),
            handed: 0,
            bar,
            full: Some(full_tx),
            free: free_rx,
            writer: Worker::Running(writer),
            check,
        }
    }

    /// Room for the next bytes of the dump: the free end of the stage buffer (never empty).
    pub fn space(&mut self) -> &mut [u8] {
        self.stage.spare()
    }

    /// The first `n` bytes of [`space`](Self::space) hold the next bytes of the dump; an error (the file could not
    /// be written) ends the download.
    pub async fn filled(&mut self, n: usize) -> std::io::Result<()> {
        self.stage.advance(n);
        if self.stage.is_full() {
            self.hand_over().await?;
        }
        Ok(())
    }

    /// Takes the next bytes of the dump from memory of the caller's, in order (tests feed it so; the exec
    /// stream fills [`space`](Self::space) instead).
    #[cfg(test)]
    pub(crate) async fn chunk(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let space = self.space();
            let n = data.len().min(space.len());
            space[..n].copy_from_slice(&data[..n]);
            data = &data[n..];
            self.filled(n).await?;
        }
        Ok(())
    }

    /// Passes the staged bytes to the write thread and takes a free buffer to fill next. Fails with the write
    /// thread's error once it has stopped.
    async fn hand_over(&mut self) -> std::io::Result<()> {
        let n = self.stage.filled().len();
        if n == 0 {
            return Ok(());
        }
        let next = match &self.full {
            Some(full) if full.send(std::mem::take(&mut self.stage)).await.is_ok() => {
                self.free.recv().await
            }
            _ => None,
        };
        let Some(mut next) = next else {
            return Err(self.write_error().await);
        };
        next.clear();
        self.stage = next;
        self.handed += n as u64;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(())
    }

    /// Why the pipeline stopped taking buffers: the write thread's error (it only stops early on one), or else
    /// the check thread is gone.
    async fn write_error(&mut self) -> std::io::Error {
        self.full = None;
        match self.writer.join().await {
            Some((_, Err(e))) => e,
            Some((_, Ok(_))) => std::io::Error::other("the local check thread stopped"),
            None => std::io::Error::other("the local write thread stopped"),
        }
    }

    /// Writes what is left, ends the checks and, with `sync`, makes the file durable.
    pub async fn finish(mut self, sync: bool) -> Written {
        let handed = self.hand_over().await;
        self.full = None; // end of input
        let wrote = self.writer.join().await;
        let checked = match &mut self.check {
            Some(check) => check
                .join()
                .await
                .ok_or_else(|| "the local check thread stopped".to_string()),
            None => Ok(Verdicts::default()),
        };
        let bytes = match (handed, wrote) {
            (Err(e), _) | (Ok(()), Some((_, Err(e)))) => Err(e),
            (Ok(()), None) => Err(std::io::Error::other("the local write thread stopped")),
            (Ok(()), Some((file, Ok(n)))) => {
                debug_assert_eq!(n, self.handed);
                if sync {
                    tokio::task::spawn_blocking(move || file.sync_all())
                        .await
                        .map_err(std::io::Error::other)
                        .and_then(|r| r)
                        .map(|()| n)
                } else {
                    Ok(n)
                }
            }
        };
        Written { bytes, checked }
    }
}

/// The write thread: writes every buffer in order, then passes it on. Around the page cache (`O_DIRECT`) when
/// `direct` and the filesystem allows it: no copy into the page cache and no writeback to start, the disk reads
/// the buffer itself. Otherwise buffered, with writeback started every [`WRITEBACK_STEP`]. Stops at the first
/// error, which `DumpWriter` then reports.
fn run_writes(
    mut file: std::fs::File,
    direct: bool,
    mut full: mpsc::Receiver<AlignedBuffer>,
    next: mpsc::Sender<AlignedBuffer>,
) -> Wrote {
    let mut direct = direct && set_direct(&file, true);
    let mut written = 0u64;
    let mut hinted = 0u64;
    while let Some(buffer) = full.blocking_recv() {
        let data = buffer.filled();
        // A short last buffer is not a whole number of blocks: it goes through the page cache.
        if direct && data.len() % AlignedBuffer::ALIGN != 0 {
            direct = !set_direct(&file, false);
        }
        if let Err(e) = write_whole(&mut file, data, &mut direct) {
            return (file, Err(e));
        }
        written += data.len() as u64;
        if !direct && written - hinted >= WRITEBACK_STEP {
            start_writeback(&file, hinted, written - hinted);
            hinted = written;
        }
        // The receiver may have finished already; the buffer is then simply dropped.
        let _ = next.try_send(buffer);
    }
    (file, Ok(written))
}

/// Writes all of `data`. A direct write the filesystem refuses (`EINVAL`: it takes none, or a short write left
/// the rest unaligned) is retried through the page cache, from where it stopped, and `direct` turns off.
fn write_whole(file: &mut std::fs::File, data: &[u8], direct: &mut bool) -> std::io::Result<()> {
    let mut at = 0;
    while at < data.len() {
        match file.write(&data[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if *direct && e.raw_os_error() == Some(libc::EINVAL) => {
                if !set_direct(file, false) {
                    return Err(e);
                }
                *direct = false;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Turns `O_DIRECT` on or off for `file`; whether that took effect (always false off Linux).
fn set_direct(file: &std::fs::File, on: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        let fd = file.as_raw_fd();
        // SAFETY: plain fcntl calls on a file descriptor we own; they read no memory of ours.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                return false;
            }
            let flags = if on {
                flags | libc::O_DIRECT
            } else {
                flags & !libc::O_DIRECT
            };
            libc::fcntl(fd, libc::F_SETFL, flags) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, on);
        false
    }
}

/// The check thread: hashes every buffer and, when asked, decodes it as gzip to nowhere, then returns it to the
/// pool. Keeps draining after a decoding failure so that the download is never held up by it.
fn run_checks(
    checks: Checks,
    mut full: mpsc::Receiver<AlignedBuffer>,
    free: mpsc::Sender<AlignedBuffer>,
) -> Verdicts {
    let mut hash = checks
        .sha256
        .then(|| ring::digest::Context::new(&ring::digest::SHA256));
    let mut decoder = checks
        .gzip
        .then(|| flate2::write::MultiGzDecoder::new(std::io::sink()));
    let mut failed = None;
    while let Some(buffer) = full.blocking_recv() {
        if let Some(hash) = &mut hash {
            hash.update(buffer.filled());
        }
        if let Some(decoder) = &mut decoder
            && failed.is_none()
            && let Err(e) = decoder.write_all(buffer.filled())
        {
            failed = Some(e.to_string());
        }
        // The writer may have finished already; the buffer is then simply dropped.
        let _ = free.try_send(buffer);
    }
    Verdicts {
        sha256: hash.map(|h| {
            let mut sum = [0u8; 32];
            sum.copy_from_slice(h.finish().as_ref());
            sum
        }),
        gzip: decoder.map(|mut d| match failed {
            Some(e) => Err(e),
            None => d.try_finish().map_err(|e| e.to_string()),
        }),
    }
}

/// Asks Linux to start writing back `len` bytes at `offset` without waiting; elsewhere (and on error) the
/// final `fsync` simply does all of the work.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        // SAFETY: a plain syscall on a file descriptor we own; it reads no memory of ours.
        let _ = unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// A fixed-capacity byte buffer whose start is page-aligned; the default one holds nothing.
#[derive(Default)]
struct AlignedBuffer {
    memory: Vec<u8>,
    start: usize,
    capacity: usize,
    len: usize,
}

impl AlignedBuffer {
    const ALIGN: usize = 4096;

    /// Memory for `capacity` bytes from a page boundary on (zeroed once, here).
    fn new(capacity: usize) -> AlignedBuffer {
        let memory = vec![0u8; capacity + Self::ALIGN];
        let start = memory.as_ptr().align_offset(Self::ALIGN).min(Self::ALIGN);
        AlignedBuffer {
            memory,
            start,
            capacity,
            len: 0,
        }
    }

    /// The unfilled rest of the buffer.
    fn spare(&mut self) -> &mut [u8] {
        &mut self.memory[self.start + self.len..self.start + self.capacity]
    }

    /// Counts the first `n` bytes of [`spare`](Self::spare) as filled.
    fn advance(&mut self, n: usize) {
        assert!(n <= self.capacity - self.len, "filled beyond the buffer");
        self.len += n;
    }

    fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    fn filled(&self) -> &[u8] {
        &self.memory[self.start..self.start + self.len]
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn aligned_buffers_start_on_a_page_and_fill_to_capacity() {
        let mut buffer = AlignedBuffer::new(10);
        assert_eq!(buffer.filled().as_ptr() as usize % AlignedBuffer::ALIGN, 0);
        buffer.spare()[..7].copy_from_slice(b"0123456");
        buffer.advance(7);
        assert_eq!(buffer.spare().len(), 3);
        buffer.spare().copy_from_slice(b"789");
        buffer.advance(3);
        assert!(buffer.is_full() && buffer.spare().is_empty());
        assert_eq!(buffer.filled(), b"0123456789");
        buffer.clear();
        assert_eq!(buffer.filled(), b"");
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    const GZIP: Checks = Checks {
        sha256: false,
        gzip: true,
    };

    /// Feeds `data` in odd-sized chunks (so that chunks straddle stage buffers) and returns the file and verdicts.
    async fn write_through(data: &[u8], checks: Checks) -> (Vec<u8>, Written) {
        write_with(data, checks, true).await
    }

    async fn write_with(data: &[u8], checks: Checks, direct: bool) -> (Vec<u8>, Written) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump");
        let mut writer =
            DumpWriter::new(std::fs::File::create(&path).unwrap(), checks, direct, None);
        for chunk in data.chunks(65_537) {
            writer.chunk(chunk).await.unwrap();
        }
        let written = writer.finish(true).await;
        let mut file = Vec::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_end(&mut file)
            .unwrap();
        (file, written)
    }

    fn pseudo_random(len: usize) -> Vec<u8> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[tokio::test]
    async fn a_valid_multi_member_gzip_is_written_byte_for_byte_and_passes() {
        // Far more than the pool holds, so buffers must come back from the check to be reused.
        let mut data = gzip(&pseudo_random(3 * POOL * STAGE));
        data.extend(gzip(b"second member"));
        let (file, written) = write_through(&data, GZIP).await;
        assert_eq!(file, data);
        assert_eq!(written.bytes.unwrap(), data.len() as u64);
        assert_eq!(written.checked.unwrap().gzip, Some(Ok(())));
    }

    #[tokio::test]
    async fn the_sha256_is_that_of_the_bytes_written() {
        let data = pseudo_random(3 * POOL * STAGE + 7);
        let (file, written) = write_through(
            &data,
            Checks {
                sha256: true,
                gzip: false,
            },
        )
        .await;
        assert_eq!(file, data);
        let verdicts = written.checked.unwrap();
        let expected = ring::digest::digest(&ring::digest::SHA256, &data);
        assert_eq!(verdicts.sha256.unwrap().as_slice(), expected.as_ref());
        assert_eq!(verdicts.gzip, None);
        // The well-known digest of the empty input, so the hash is SHA-256 and not merely self-consistent.
        let (_, empty) = write_through(
            b"",
            Checks {
                sha256: true,
                gzip: false,
            },
        )
        .await;
        assert_eq!(
            hex(&empty.checked.unwrap().sha256.unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[tokio::test]
    async fn corrupt_and_truncated_gzip_fail_the_check_but_the_file_is_complete() {
        let mut corrupt = gzip(&pseudo_random(2 * STAGE));
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 0xFF;
        let (file, written) = write_through(&corrupt, GZIP).await;
        assert_eq!(file, corrupt);
        let verdict = written.checked.unwrap().gzip;
        assert!(matches!(verdict, Some(Err(_))), "corruption not found");

        let whole = gzip(&pseudo_random(STAGE));
        let truncated = &whole[..whole.len() - 5];
        let (file, written) = write_through(truncated, GZIP).await;
        assert_eq!(file, truncated);
        let verdict = written.checked.unwrap().gzip;
        assert!(matches!(verdict, Some(Err(_))), "truncation not found");
    }

    #[tokio::test]
    async fn without_a_check_the_bytes_are_written_unchanged() {
        let data = pseudo_random(STAGE * 2 + 12_345);
        let (file, written) = write_through(&data, Checks::default()).await;
        assert_eq!(file, data);
        assert_eq!(written.bytes.unwrap(), data.len() as u64);
        assert_eq!(written.checked.unwrap(), Verdicts::default());
    }

    #[tokio::test]
    async fn the_file_is_the_same_through_the_page_cache_and_around_it() {
        let data = pseudo_random(2 * POOL * STAGE + 4097);
        let sha = Checks {
            sha256: true,
            gzip: false,
        };
        let (direct, around) = write_with(&data, sha, true).await;
        let (buffered, through) = write_with(&data, sha, false).await;
        assert!(
            direct == data && buffered == data,
            "a file differs from the stream"
        );
        assert_eq!(around.checked.unwrap(), through.checked.unwrap());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn direct_writes_are_switched_on_and_off_on_the_open_file() {
        use std::os::fd::AsRawFd as _;
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("dump")).unwrap();
        // SAFETY: F_GETFL on a file descriptor we own.
        let flags = || unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        if set_direct(&file, true) {
            assert_ne!(flags() & libc::O_DIRECT, 0);
        }
        assert!(set_direct(&file, false));
        assert_eq!(flags() & libc::O_DIRECT, 0);
    }

    #[tokio::test]
    async fn a_failing_write_ends_the_download_with_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump");
        std::fs::write(&path, b"").unwrap();
        // Opened for reading only: every write fails with EBADF, as a full disk fails with ENOSPC.
        let file = std::fs::File::open(&path).unwrap();
        let checks = Checks {
            sha256: true,
            gzip: false,
        };
        for direct in [true, false] {
            let file = file.try_clone().unwrap();
            let mut writer = DumpWriter::new(file, checks, direct, None);
            let data = pseudo_random((POOL + 2) * STAGE);
            let err = writer.chunk(&data).await.unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
            let written = writer.finish(true).await;
            assert!(written.bytes.is_err(), "finish must not report success");
        }
    }
}
