//! Benchmark: `backup-ns postgres download` (verification on) out of a kube-sim pod against `kubectl cp` of the
//! same file from the same simulator, side by side in one run, on the three kinds of dump (`cargo bench --bench
//! download`):
//! - `stored`: gzip of incompressible bytes (stored deflate blocks, quick to make);
//! - `plain`: the same bytes without gzip (SHA-256 is all there is to check);
//! - `sql`: SQL-like text compressed for real (level 1), so `gzip -t` in the container inflates ~5× the file.
//!
//! Setup: an in-process kube-sim with pod `db-0` mounting PVC `data` at /var/lib/postgresql/data (exec runs on the
//! host, so the container has the host's sha256sum and gzip and the download verifies in place). Each tool runs
//! as a child process; wall time, CPU time and peak RSS (`wait4` rusage) are printed per round, then per kind the
//! median of the rounds and its ratio, and finally one download of a 1 GiB dump for its peak RSS. Targets: with
//! verification on, at least 1.5× kubectl cp on every kind, peak RSS under 64 MiB at 1 GiB. Prints figures;
//! asserts only that both copies are complete. The CPU of the check in the "container" (sha256sum, gzip -t) runs
//! on the same machine, so it competes with both tools for the cores here.
//!
//! Each dump gets its record beside it (`dump.sql.gz.sha256`) as `backup-ns` dumps write it: after `gzip -t`
//! passed on the file, its SHA-256 (made here with the host's `gzip` and `sha256sum`; the time is printed, as
//! it is a cost of the dump, not of the download). So the default download checks its bytes against the record
//! and runs nothing in the container; `BENCH_ARGS=--check-in-place` measures the check in the container instead.
//!
//! Knobs: `BENCH_KINDS` (comma-separated, default `stored,plain,sql`), `BENCH_MIB` (size of the dump in the timed
//! rounds, default 256), `BENCH_ROUNDS` (timed rounds per kind, default 5; which tool goes first alternates),
//! `BENCH_WARMUP` (untimed rounds first, default 1), `BENCH_RSS_MIB` (size of the one peak-RSS download, default
//! 1024; 0 skips it), `BENCH_ARGS` (extra download flags, e.g. `--no-verify`), `BENCH_WRAP` (prefix for the
//! backup-ns command, e.g. a profiler).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const FIXTURE: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: shop
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 2Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: shop
spec:
  containers:
    - name: postgres
      image: postgres
      volumeMounts:
        - name: data
          mountPath: /var/lib/postgresql/data
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: data
"#;

/// Wall time and peak RSS of one child process, and the CPU the simulator and the container spent meanwhile.
struct Run {
    wall: Duration,
    /// User plus system CPU time of the tool; less sensitive than wall time to other load on the machine.
    cpu: Duration,
    /// CPU of this process meanwhile: the in-process kube-sim serving the tool (the bench itself idles).
    server_cpu: Duration,
    /// CPU of the processes kube-sim ran in the "container" for the tool (`tar`, `cat`, the checks): every child
    /// reaped meanwhile, less the tool itself.
    container_cpu: Duration,
    max_rss_kib: i64,
    ok: bool,
}

fn tv(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000)
}

/// User plus system CPU of `who` (`RUSAGE_SELF` or `RUSAGE_CHILDREN`) so far.
fn cpu_of(who: libc::c_int) -> Duration {
    // SAFETY: getrusage fills the struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn measure(cmd: &mut Command) -> Run {
    let (server_before, children_before) =
        (cpu_of(libc::RUSAGE_SELF), cpu_of(libc::RUSAGE_CHILDREN));
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 fills the status and rusage structs we own, for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    std::mem::forget(child); // already reaped by wait4
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    Run {
        wall,
        cpu,
        server_cpu: cpu_of(libc::RUSAGE_SELF).saturating_sub(server_before),
        container_cpu: cpu_of(libc::RUSAGE_CHILDREN)
            .saturating_sub(children_before)
            .saturating_sub(cpu),
        max_rss_kib: usage.ru_maxrss,
        ok: waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// What the dump in the pod holds (`BENCH_FORMAT`).
#[derive(Clone, Copy, PartialEq)]
enum Format {
    /// xorshift bytes in stored deflate blocks: quick to make, and the check still decodes every byte.
    Stored,
    /// The same bytes without gzip: SHA-256 is the whole check.
    Plain,
    /// SQL-like text compressed for real (level 1, to make it quickly): `gzip -t` inflates about five times the
    /// file's size, as it would for a real pg_dump.
    Sql,
}

/// Writes a dump of `mib` MiB (the file's size, compressed where it is compressed).
fn make_dump(path: &Path, mib: usize, format: Format) {
    let target = (mib as u64) << 20;
    let file = std::fs::File::create(path).expect("create dump");
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut block = vec![0u8; 1 << 20];
    match format {
        Format::Stored | Format::Plain => {
            let mut w: Box<dyn Write> = if format == Format::Plain {
                Box::new(out)
            } else {
                Box::new(flate2::write::GzEncoder::new(
                    out,
                    flate2::Compression::none(),
                ))
            };
            for _ in 0..mib {
                for chunk in block.chunks_mut(8) {
                    chunk.copy_from_slice(&next().to_le_bytes());
                }
                w.write_all(&block).expect("write dump");
            }
            w.flush().expect("flush");
            drop(w); // finishes the gzip trailer
        }
        Format::Sql => {
            let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            let mut line = String::new();
            let mut id = 0u64;
            let made = |gz: &flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>| {
                gz.get_ref().get_ref().metadata().map_or(0, |m| m.len())
                    + gz.get_ref().buffer().len() as u64
            };
            while made(&gz) < target {
                line.clear();
                for _ in 0..4096 {
                    id += 1;
                    let r = next();
                    line.push_str(&format!(
                        "INSERT INTO orders VALUES ({id}, 'customer-{}', {}.{:02}, '2026-{:02}-{:02}', 'shipped');\n",
                        r % 100_000,
                        (r >> 17) % 10_000,
                        (r >> 31) % 100,
                        (r >> 40) % 12 + 1,
                        (r >> 48) % 28 + 1
                    ));
                }
                gz.write_all(line.as_bytes()).expect("write dump");
            }
            gz.finish().expect("finish gzip");
        }
    }
}

/// Writes `dump`'s record as a backup-ns dump does: its format's test first (`gzip -t`), then `HEX  NAME`.
fn write_record(dump: &Path, format: Format) {
    if format != Format::Plain {
        let tested = Command::new("gzip")
            .arg("-t")
            .stdin(std::fs::File::open(dump).expect("dump"))
            .status()
            .expect("gzip -t");
        assert!(tested.success(), "gzip -t failed on the bench's dump");
    }
    let sum = Command::new("sha256sum")
        .stdin(std::fs::File::open(dump).expect("dump"))
        .output()
        .expect("sha256sum");
    let hex = String::from_utf8(sum.stdout).expect("hex");
    let name = dump.file_name().expect("name").to_string_lossy();
    let record = dump.with_file_name(format!("{name}.sha256"));
    std::fs::write(record, format!("{}  {name}\n", &hex[..64])).expect("record");
}

/// The backup-ns command, prefixed by `BENCH_WRAP` when set (e.g. `BENCH_WRAP="perf record -g -o /tmp/bns.data --"`
/// to profile just the download; peak RSS then includes the wrapper).
fn wrapped(program: &str) -> Command {
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    match words.next() {
        Some(first) => {
            let mut cmd = Command::new(first);
            cmd.args(words).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Format {
    fn parse(name: &str) -> Format {
        match name {
            "stored" => Format::Stored,
            "plain" => Format::Plain,
            "sql" => Format::Sql,
            other => panic!("BENCH_KINDS: {other}: expected stored, plain or sql"),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Format::Stored => "gzip of incompressible data",
            Format::Plain => "plain file",
            Format::Sql => "gzip-compressed SQL text",
        }
    }
}

/// Both tools against one simulator and one dump path.
struct Bench {
    kubeconfig: std::path::PathBuf,
    plan: std::path::PathBuf,
    dump: std::path::PathBuf,
    out: std::path::PathBuf,
    extra_args: String,
}

impl Bench {
    fn kubectl_cp(&self, size: u64) -> Run {
        let file = self.out.join("kubectl-copy.sql.gz");
        let run = measure(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["-n", "shop", "cp", "-c", "postgres"])
                .arg("db-0:/var/lib/postgresql/data/dump.sql.gz")
                .arg(&file)
                .stdout(std::process::Stdio::null()),
        );
        let copied = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(
            run.ok && copied == size,
            "kubectl cp failed or was incomplete ({copied} of {size} bytes)"
        );
        std::fs::remove_file(&file).ok();
        run
    }

    /// One download; returns its run and the summary line it printed (how it was verified).
    fn download(&self, size: u64) -> (Run, String) {
        let log = self.out.with_extension("stderr");
        let run = measure(
            wrapped(env!("CARGO_BIN_EXE_backup-ns"))
                .args(["postgres", "--plan"])
                .arg(&self.plan)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["download", "--no-progress"])
                .args(self.extra_args.split_whitespace())
                .arg("--output-dir")
                .arg(&self.out)
                .env_remove("KUBECONFIG")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&log).expect("stderr log")),
        );
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let downloaded: Vec<_> = std::fs::read_dir(&self.out)
            .expect("out")
            .flatten()
            .collect();
        let copied = downloaded
            .first()
            .and_then(|e| e.metadata().ok())
            .map_or(0, |m| m.len());
        assert!(
            run.ok && downloaded.len() == 1 && copied == size,
            "backup-ns download failed or was incomplete ({copied} of {size} bytes): {said}"
        );
        for entry in downloaded {
            std::fs::remove_file(entry.path()).ok();
        }
        let summary = said
            .lines()
            .find(|l| l.starts_with("downloaded "))
            .unwrap_or("")
            .to_string();
        (run, summary)
    }
}

/// The medians of one kind, for the closing table.
struct KindResult {
    format: Format,
    size: u64,
    kubectl: Duration,
    backup_ns: Duration,
    peak_rss_kib: i64,
    verified: String,
}

fn main() {
    let mib = env_usize("BENCH_MIB", 256);
    let rss_mib = env_usize("BENCH_RSS_MIB", 1024);
    let rounds = env_usize("BENCH_ROUNDS", 5);
    let warmup = env_usize("BENCH_WARMUP", 1);
    let kinds: Vec<Format> = std::env::var("BENCH_KINDS")
        .unwrap_or_else(|_| "stored,plain,sql".into())
        .split(',')
        .map(|k| Format::parse(k.trim()))
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::Builder::new()
        .prefix("bns-bench-download-")
        .tempdir()
        .expect("temp dir");
    let sim = runtime.block_on(async {
        let sim = kube_sim::Sim::builder().start().await.expect("kube-sim");
        tokio::time::sleep(Duration::from_millis(50)).await;
        sim.apply_yaml(FIXTURE).expect("fixture");
        for _ in 0..250 {
            if sim
                .get("v1", "pods", Some("shop"), "db-0")
                .is_some_and(|p| p["status"]["phase"] == "Running")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sim
    });
    // The sim keeps serving on the runtime's worker threads while the children run.
    let plan = tmp.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "name: shop\nnamespace: shop\ntargets: [data]\nhooks:\n  pre:\n    - type: postgres\n      workload: pod/db-0\n      container: postgres\n      dumpFile: /var/lib/postgresql/data/dump.sql.gz\n",
    )
    .expect("plan");
    let bench = Bench {
        kubeconfig: sim.kubeconfig_path().to_path_buf(),
        plan,
        dump: sim.pvc_dir("shop", "data").join("dump.sql.gz"),
        out: tmp.path().join("out"),
        extra_args: std::env::var("BENCH_ARGS").unwrap_or_default(),
    };
    std::fs::create_dir(&bench.out).expect("out dir");
    let mut results = Vec::new();
    for format in kinds {
        let made = Instant::now();
        make_dump(&bench.dump, mib, format);
        let size = std::fs::metadata(&bench.dump).expect("dump").len();
        let made_in = made.elapsed();
        let recorded = Instant::now();
        write_record(&bench.dump, format);
        println!(
            "== {}: {size} bytes, made in {:.1}s, its record in {:.2}s",
            format.describe(),
            made_in.as_secs_f64(),
            recorded.elapsed().as_secs_f64()
        );
        // Warm-up: on a VM the first writes into never-used memory cost several times more than later ones,
        // which would penalise whichever tool runs first.
        for _ in 0..warmup {
            bench.kubectl_cp(size);
            bench.download(size);
        }
        let mut bns_runs = Vec::new();
        let mut kubectl_runs = Vec::new();
        let mut verified = String::new();
        for round in 0..rounds {
            // Alternate which tool goes first, so neither always inherits the other's page cache state.
            let (k, (b, said)) = if round % 2 == 0 {
                let k = bench.kubectl_cp(size);
                (k, bench.download(size))
            } else {
                let b = bench.download(size);
                (bench.kubectl_cp(size), b)
            };
            if verified.is_empty() {
                verified = said
                    .split_once("), ")
                    .map_or(said.clone(), |(_, v)| v.to_string());
                println!("backup-ns says: {said}");
            }
            println!(
                "round {}: kubectl cp {:.2}s ({:.0} MiB/s, cpu {:.2}s + kube-sim {:.2}s + container {:.2}s, peak RSS {:.1} MiB) | backup-ns download {:.2}s ({:.0} MiB/s, cpu {:.2}s + kube-sim {:.2}s + container {:.2}s, peak RSS {:.1} MiB) | ratio {:.2}x",
                round + 1,
                k.wall.as_secs_f64(),
                size as f64 / 1048576.0 / k.wall.as_secs_f64(),
                k.cpu.as_secs_f64(),
                k.server_cpu.as_secs_f64(),
                k.container_cpu.as_secs_f64(),
                k.max_rss_kib as f64 / 1024.0,
                b.wall.as_secs_f64(),
                size as f64 / 1048576.0 / b.wall.as_secs_f64(),
                b.cpu.as_secs_f64(),
                b.server_cpu.as_secs_f64(),
                b.container_cpu.as_secs_f64(),
                b.max_rss_kib as f64 / 1024.0,
                k.wall.as_secs_f64() / b.wall.as_secs_f64()
            );
            kubectl_runs.push(k);
            bns_runs.push(b);
        }
        let (k, b) = (median(&kubectl_runs), median(&bns_runs));
        println!(
            "median of {rounds}: kubectl cp {:.2}s, backup-ns download {:.2}s, ratio {:.2}x (best of {rounds}: {:.2}x)",
            k.as_secs_f64(),
            b.as_secs_f64(),
            k.as_secs_f64() / b.as_secs_f64(),
            best(&kubectl_runs).as_secs_f64() / best(&bns_runs).as_secs_f64(),
        );
        results.push(KindResult {
            format,
            size,
            kubectl: k,
            backup_ns: b,
            peak_rss_kib: bns_runs.iter().map(|r| r.max_rss_kib).max().unwrap_or(0),
            verified,
        });
    }
    println!();
    println!(
        "| dump | size | kubectl cp (median) | backup-ns download (median) | ratio | goal ≥ 1.5× | peak RSS | verification |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &results {
        let ratio = r.kubectl.as_secs_f64() / r.backup_ns.as_secs_f64();
        println!(
            "| {} | {:.0} MiB | {:.2} s | {:.2} s | {ratio:.2}× | {} | {:.1} MiB | {} |",
            r.format.describe(),
            r.size as f64 / 1048576.0,
            r.kubectl.as_secs_f64(),
            r.backup_ns.as_secs_f64(),
            if ratio >= 1.5 { "met" } else { "MISSED" },
            r.peak_rss_kib as f64 / 1024.0,
            r.verified
        );
    }
    if rss_mib > 0 {
        make_dump(&bench.dump, rss_mib, Format::Stored);
        write_record(&bench.dump, Format::Stored);
        let size = std::fs::metadata(&bench.dump).expect("dump").len();
        let (b, said) = bench.download(size);
        println!(
            "peak RSS at {} MiB ({}, once): backup-ns {:.1} MiB (target < 64 MiB: {}), {:.2}s; {said}",
            size >> 20,
            Format::Stored.describe(),
            b.max_rss_kib as f64 / 1024.0,
            if b.max_rss_kib < 64 * 1024 {
                "met"
            } else {
                "MISSED"
            },
            b.wall.as_secs_f64()
        );
    }
    runtime.block_on(sim.shutdown());
}

fn best(runs: &[Run]) -> Duration {
    runs.iter().map(|r| r.wall).min().unwrap_or_default()
}

fn median(runs: &[Run]) -> Duration {
    let mut walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    walls.sort();
    walls.get(walls.len() / 2).copied().unwrap_or_default()
}
