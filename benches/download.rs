//! Benchmark: `backup-ns postgres download` of a 1 GiB dump out of a kube-sim pod against `kubectl cp` of the same
//! file from the same simulator, side by side in one run (`cargo bench --bench download`).
//!
//! Setup: an in-process kube-sim with pod `db-0` mounting PVC `data` at /var/lib/postgresql/data, and a 1 GiB
//! gzip dump there (pseudo-random payload in stored deflate blocks, so making it is quick and the integrity check
//! really decodes 1 GiB). Each tool runs as a child process; wall time, CPU time and peak RSS (`wait4` rusage)
//! are printed per round, then the median and best ratios. Targets: backup-ns faster than kubectl cp, peak RSS
//! under 64 MiB. Prints figures; asserts only that both copies are complete.
//!
//! Knobs: `BENCH_MIB` (size), `BENCH_ROUNDS` (measured rounds, default 5; which tool goes first alternates),
//! `BENCH_WARMUP` (untimed rounds first, default 1), `BENCH_ARGS` (extra download flags, e.g. `--no-sync`),
//! `BENCH_FORMAT=plain` (raw bytes instead of gzip, so no integrity check) or `BENCH_FORMAT=sql` (compressed SQL
//! text, so the check inflates ~4× the file; takes a minute to make at 1 GiB), `BENCH_WRAP` (prefix for the backup-ns
//! command, e.g. a profiler).

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

/// Wall time and peak RSS of one child process.
struct Run {
    wall: Duration,
    /// User plus system CPU time; less sensitive than wall time to other load on the machine.
    cpu: Duration,
    max_rss_kib: i64,
    ok: bool,
}

fn measure(cmd: &mut Command) -> Run {
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 fills the status and rusage structs we own, for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    std::mem::forget(child); // already reaped by wait4
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Run {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
        ok: waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// What the dump in the pod holds (`BENCH_FORMAT`).
#[derive(Clone, Copy, PartialEq)]
enum Format {
    /// xorshift bytes in stored deflate blocks: quick to make, and the check still decodes every byte.
    Stored,
    /// The same bytes without gzip: shows what the streamed check costs.
    Plain,
    /// SQL-like text compressed for real (level 1, to make it quickly): the check inflates about four times the
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

fn main() {
    let mib: usize = std::env::var("BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let warmup: usize = std::env::var("BENCH_WARMUP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let format = match std::env::var("BENCH_FORMAT").as_deref() {
        Ok("plain") => Format::Plain,
        Ok("sql") => Format::Sql,
        Ok("stored") | Err(_) => Format::Stored,
        Ok(other) => panic!("BENCH_FORMAT={other}: expected stored, plain or sql"),
    };
    let extra_args = std::env::var("BENCH_ARGS").unwrap_or_default();
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
    let dump = sim.pvc_dir("shop", "data").join("dump.sql.gz");
    let made = Instant::now();
    make_dump(&dump, mib, format);
    let size = std::fs::metadata(&dump).expect("dump").len();
    println!(
        "dump: {size} bytes, {}, made in {:.1}s",
        match format {
            Format::Plain => "plain (no gzip check)",
            Format::Stored => "gzip with stored blocks",
            Format::Sql => "gzip-compressed SQL text",
        },
        made.elapsed().as_secs_f64()
    );
    let plan = tmp.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "name: shop\nnamespace: shop\ntargets: [data]\nhooks:\n  pre:\n    - type: postgres\n      workload: pod/db-0\n      container: postgres\n      dumpFile: /var/lib/postgresql/data/dump.sql.gz\n",
    )
    .expect("plan");
    let kubeconfig = sim.kubeconfig_path().to_path_buf();

    let kubectl_cp = |out: &Path| {
        let file = out.join("kubectl-copy.sql.gz");
        let run = measure(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
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
    };
    let download = |out: &Path| {
        let run = measure(
            wrapped(env!("CARGO_BIN_EXE_backup-ns"))
                .args(["postgres", "--plan"])
                .arg(&plan)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["download", "--no-progress"])
                .args(extra_args.split_whitespace())
                .arg("--output-dir")
                .arg(out)
                .env_remove("KUBECONFIG")
                .stdout(std::process::Stdio::null()),
        );
        let downloaded: Vec<_> = std::fs::read_dir(out).expect("out").flatten().collect();
        let copied = downloaded
            .first()
            .and_then(|e| e.metadata().ok())
            .map_or(0, |m| m.len());
        assert!(
            run.ok && downloaded.len() == 1 && copied == size,
            "backup-ns download failed or was incomplete ({copied} of {size} bytes)"
        );
        for entry in downloaded {
            std::fs::remove_file(entry.path()).ok();
        }
        run
    };
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).expect("out dir");
    // Warm-up: on a VM the first writes into never-used memory cost several times more than later ones, which
    // would penalise whichever tool runs first.
    for _ in 0..warmup {
        kubectl_cp(&out);
        download(&out);
    }
    let mut bns_runs = Vec::new();
    let mut kubectl_runs = Vec::new();
    for round in 0..rounds {
        // Alternate which tool goes first, so neither always inherits the other's page cache state.
        let (k, b) = if round % 2 == 0 {
            let k = kubectl_cp(&out);
            (k, download(&out))
        } else {
            let b = download(&out);
            (kubectl_cp(&out), b)
        };
        println!(
            "round {}: kubectl cp {:.2}s ({:.0} MiB/s, cpu {:.2}s, peak RSS {:.1} MiB) | backup-ns download {:.2}s ({:.0} MiB/s, cpu {:.2}s, peak RSS {:.1} MiB) | ratio kubectl/backup-ns {:.2}x",
            round + 1,
            k.wall.as_secs_f64(),
            size as f64 / 1048576.0 / k.wall.as_secs_f64(),
            k.cpu.as_secs_f64(),
            k.max_rss_kib as f64 / 1024.0,
            b.wall.as_secs_f64(),
            size as f64 / 1048576.0 / b.wall.as_secs_f64(),
            b.cpu.as_secs_f64(),
            b.max_rss_kib as f64 / 1024.0,
            k.wall.as_secs_f64() / b.wall.as_secs_f64()
        );
        kubectl_runs.push(k);
        bns_runs.push(b);
    }
    let peak = bns_runs.iter().map(|r| r.max_rss_kib).max().unwrap_or(0);
    for (label, pick) in [("median", median as fn(&[Run]) -> Duration), ("best", best)] {
        let (k, b) = (pick(&kubectl_runs), pick(&bns_runs));
        println!(
            "{label} of {rounds}: kubectl cp {:.2}s, backup-ns download {:.2}s, ratio {:.2}x ({})",
            k.as_secs_f64(),
            b.as_secs_f64(),
            k.as_secs_f64() / b.as_secs_f64(),
            if b < k {
                "backup-ns faster"
            } else {
                "backup-ns NOT faster"
            },
        );
    }
    println!(
        "backup-ns peak RSS {:.1} MiB (target < 64 MiB: {})",
        peak as f64 / 1024.0,
        if peak < 64 * 1024 { "met" } else { "MISSED" }
    );
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
