//! Benchmark: `backup-ns postgres download` of a 1 GiB dump out of a kube-sim pod against `kubectl cp` of the same
//! file from the same simulator, side by side in one run (`cargo bench --bench download`).
//!
//! Setup: an in-process kube-sim with pod `db-0` mounting PVC `data` at /var/lib/postgresql/data, and a 1 GiB
//! gzip dump there (pseudo-random payload in stored deflate blocks, so making it is quick and the integrity check
//! really decodes 1 GiB). Each tool runs as a child process; wall time and peak RSS (`wait4` rusage) are printed,
//! plus the ratio. Targets: backup-ns faster than kubectl cp, peak RSS < 64 MiB. `BENCH_MIB` changes the size,
//! `BENCH_ROUNDS` the number of alternating rounds (best time is reported too), `BENCH_FORMAT=plain` writes raw
//! bytes instead of gzip (no integrity check on the backup-ns side). Prints figures; asserts only that
//! both copies are complete.

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
    Run {
        wall,
        max_rss_kib: usage.ru_maxrss,
        ok: waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// Writes `mib` MiB of xorshift bytes as a gzip file with stored blocks (or raw bytes when `plain`, to show what
/// the streamed gzip check costs).
fn make_dump(path: &Path, mib: usize, plain: bool) {
    let file = std::fs::File::create(path).expect("create dump");
    let mut gz: Box<dyn Write> = if plain {
        Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
    } else {
        Box::new(flate2::write::GzEncoder::new(
            std::io::BufWriter::with_capacity(1 << 20, file),
            flate2::Compression::none(),
        ))
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        gz.write_all(&block).expect("write dump");
    }
    gz.flush().expect("flush");
    drop(gz); // finishes the gzip trailer
}

fn main() {
    let mib: usize = std::env::var("BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let plain = std::env::var("BENCH_FORMAT").is_ok_and(|v| v == "plain");
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
    make_dump(&dump, mib, plain);
    let size = std::fs::metadata(&dump).expect("dump").len();
    println!(
        "dump: {mib} MiB payload, {size} bytes {}, made in {:.1}s",
        if plain {
            "plain"
        } else {
            "gzip (verified by backup-ns)"
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

    let mut bns_runs = Vec::new();
    let mut kubectl_runs = Vec::new();
    for round in 0..rounds {
        let out = tmp.path().join(format!("out-{round}"));
        std::fs::create_dir(&out).expect("out dir");
        let kubectl_file = out.join("kubectl-copy.sql.gz");
        let k = measure(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["-n", "shop", "cp", "-c", "postgres"])
                .arg("db-0:/var/lib/postgresql/data/dump.sql.gz")
                .arg(&kubectl_file)
                .stdout(std::process::Stdio::null()),
        );
        let k_size = std::fs::metadata(&kubectl_file)
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(
            k.ok && k_size == size,
            "kubectl cp failed or was incomplete ({k_size} of {size} bytes)"
        );
        std::fs::remove_file(&kubectl_file).ok();

        let b = measure(
            Command::new(env!("CARGO_BIN_EXE_backup-ns"))
                .args(["postgres", "--plan"])
                .arg(&plan)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["download", "--no-progress", "--output-dir"])
                .arg(&out)
                .env_remove("KUBECONFIG")
                .stdout(std::process::Stdio::null()),
        );
        let downloaded: Vec<_> = std::fs::read_dir(&out).expect("out").flatten().collect();
        let b_size = downloaded
            .first()
            .and_then(|e| e.metadata().ok())
            .map_or(0, |m| m.len());
        assert!(
            b.ok && downloaded.len() == 1 && b_size == size,
            "backup-ns download failed or was incomplete ({b_size} of {size} bytes)"
        );
        std::fs::remove_dir_all(&out).ok();
        println!(
            "round {}: kubectl cp {:.2}s ({:.0} MiB/s, peak RSS {:.1} MiB) | backup-ns download {:.2}s ({:.0} MiB/s, peak RSS {:.1} MiB) | ratio kubectl/backup-ns {:.2}x",
            round + 1,
            k.wall.as_secs_f64(),
            size as f64 / 1048576.0 / k.wall.as_secs_f64(),
            k.max_rss_kib as f64 / 1024.0,
            b.wall.as_secs_f64(),
            size as f64 / 1048576.0 / b.wall.as_secs_f64(),
            b.max_rss_kib as f64 / 1024.0,
            k.wall.as_secs_f64() / b.wall.as_secs_f64()
        );
        kubectl_runs.push(k);
        bns_runs.push(b);
    }
    let best = |runs: &[Run]| runs.iter().map(|r| r.wall).min().unwrap_or_default();
    let peak = bns_runs.iter().map(|r| r.max_rss_kib).max().unwrap_or(0);
    let (k, b) = (best(&kubectl_runs), best(&bns_runs));
    println!(
        "best of {rounds}: kubectl cp {:.2}s, backup-ns download {:.2}s, ratio {:.2}x ({}); backup-ns peak RSS {:.1} MiB (target < 64 MiB: {})",
        k.as_secs_f64(),
        b.as_secs_f64(),
        k.as_secs_f64() / b.as_secs_f64(),
        if b < k {
            "backup-ns faster"
        } else {
            "backup-ns NOT faster"
        },
        peak as f64 / 1024.0,
        if peak < 64 * 1024 { "met" } else { "MISSED" }
    );
    runtime.block_on(sim.shutdown());
}
