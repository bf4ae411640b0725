//! The local side of `postgres|mysql download`: a [`DumpWriter`] takes the streamed dump frame by frame, writes it
//! into a file as fast as the page cache takes it, computes the SHA-256 of the bytes as written (and, only when the
//! container cannot test the dump itself, decodes a gzip dump) on a second thread as the bytes go by, and makes the
//! file durable at the end.
//!
//! Why it looks the way it does (each point was measured on the download benchmark, `cargo bench --bench
//! download`):
//! - The exec stream is read straight into a page-aligned stage buffer ([`DumpWriter::space`]), and each
//!   `write` goes out from there: no copy in user space, and the kernel's copy into the page cache runs several
//!   times faster from a source aligned like its destination than from one a frame header's length off.
//! - The check thread gets whole stage buffers from a fixed pool and hands them back when hashed (or decoded);
//!   when it falls behind, the download waits for a free buffer. Memory is therefore bounded by `POOL × STAGE`,
//!   and no thread is woken per frame.
//! - SHA-256 is ring's (SHA extensions where the CPU has them): it keeps up with the stream, where inflating a
//!   well-compressed dump locally ran at a quarter of the transfer's speed.
//! - `sync_file_range` starts writeback every [`WRITEBACK_STEP`] bytes, so the final `fsync` has little left.

use std::io::Write as _;
use tokio::sync::mpsc;

/// Size of one stage buffer: the unit of `write`, of the progress bar and of the check thread's work.
const STAGE: usize = 256 * 1024;

/// Stage buffers in circulation when the check thread runs: one being filled, the rest queued for or inside the
/// check.
const POOL: usize = 16;

/// Once this much has been written since the last hint, the kernel is asked to start writing it back.
const WRITEBACK_STEP: u64 = 16 * 1024 * 1024;

/// Writes a streamed dump into a local file; see the module docs.
pub struct DumpWriter {
    file: std::fs::File,
    stage: AlignedBuffer,
    written: u64,
    hinted: u64,
    bar: Option<indicatif::ProgressBar>,
    check: Option<CheckThread>,
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

/// The check thread and the two halves of its buffer pool.
struct CheckThread {
    full: Option<mpsc::Sender<AlignedBuffer>>,
    free: mpsc::Receiver<AlignedBuffer>,
    thread: std::thread::JoinHandle<Verdicts>,
}

impl DumpWriter {
    /// A writer into `file` (empty, freshly created) that also runs `checks` over the bytes.
    pub fn new(
        file: std::fs::File,
        checks: Checks,
        bar: Option<indicatif::ProgressBar>,
    ) -> DumpWriter {
        let check = checks.any().then(|| {
            let (full_tx, full_rx) = mpsc::channel(POOL);
            let (free_tx, free_rx) = mpsc::channel(POOL);
            for _ in 1..POOL {
                // Cannot fail: the channel has room for the whole pool and its receiver is alive.
                let _ = free_tx.try_send(AlignedBuffer::new(STAGE));
            }
            CheckThread {
                full: Some(full_tx),
                free: free_rx,
                thread: std::thread::spawn(move || run_checks(checks, full_rx, free_tx)),
            }
        });
        DumpWriter {
            file,
            stage: AlignedBuffer::new(STAGE),
            written: 0,
            hinted: 0,
            bar,
            check,
        }
    }

    /// Writes the staged bytes, then passes the buffer to the check thread (taking a free one in exchange).
    async fn write_stage(&mut self) -> std::io::Result<()> {
        if self.stage.filled().is_empty() {
            return Ok(());
        }
        self.file.write_all(self.stage.filled())?;
        let n = self.stage.filled().len() as u64;
        self.written += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        if self.written - self.hinted >= WRITEBACK_STEP {
            start_writeback(&self.file, self.hinted, self.written - self.hinted);
            self.hinted = self.written;
        }
        let next = match &mut self.check {
            Some(check) if check.full.is_some() => check.free.recv().await,
            _ => None,
        };
        let Some(mut next) = next else {
            self.stage.clear();
            return Ok(());
        };
        next.clear();
        let done = std::mem::replace(&mut self.stage, next);
        if let Some(check) = &mut self.check
            && let Some(full) = &check.full
            && full.send(done).await.is_err()
        {
            // The check's thread is gone; `finish` reports that. The download goes on.
            check.full = None;
        }
        Ok(())
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
            self.write_stage().await?;
        }
        Ok(())
    }

    /// Takes the next bytes of the dump from memory of the caller's, in order.
    pub async fn chunk(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let space = self.space();
            let n = data.len().min(space.len());
            space[..n].copy_from_slice(&data[..n]);
            data = &data[n..];
            self.filled(n).await?;
        }
        Ok(())
    }

    /// Writes what is left, ends the checks and, with `sync`, makes the file durable.
    pub async fn finish(mut self, sync: bool) -> Written {
        let mut bytes = self.write_stage().await.map(|()| self.written);
        let checked = match self.check.take() {
            Some(mut check) => {
                check.full = None; // end of input
                tokio::task::spawn_blocking(move || check.thread.join())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .ok_or_else(|| "the local check thread stopped".to_string())
            }
            None => Ok(Verdicts::default()),
        };
        if sync && bytes.is_ok() {
            let file = self.file;
            let synced = tokio::task::spawn_blocking(move || file.sync_all())
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
            if let Err(e) = synced {
                bytes = Err(e);
            }
        }
        Written { bytes, checked }
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

/// A fixed-capacity byte buffer whose start is page-aligned.
struct AlignedBuffer {
    memory: Vec<u8>,
    start: usize,
    capacity: usize,
    len: usize,
}

impl AlignedBuffer {
    const ALIGN: usize = 4096;

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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump");
        let mut writer = DumpWriter::new(std::fs::File::create(&path).unwrap(), checks, None);
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
}
