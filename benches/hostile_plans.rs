//! Hostile plan files against the real binary (`cargo bench --bench hostile_plans`): every input class of
//! `tests/plan/hostile_inputs.rs` near the 10 MiB limit (and one directory of many plans), each checked by
//! `backup-ns validate` in human and JSON form. Prints wall time, CPU time, peak RSS (`wait4` rusage) and the exit
//! code per class and form, the worst of `BENCH_ROUNDS` rounds (default 3). Target: every input ends within 2 s and
//! 256 MiB. Prints figures; asserts only that nothing panicked (exit 101) or was killed.
//!
//! Linux carries a process's peak RSS across `execve` from the address space it replaced, and a child spawned with
//! vfork starts in its parent's. This process holds every generated input in memory, so its children would all
//! report its own peak. Each measurement is therefore made by a fresh copy of this binary (`MEASURE_ENV` set),
//! whose small address space is the one backup-ns inherits; it prints the figures on one line.

#[path = "../tests/plan/hostile_inputs.rs"]
mod hostile_inputs;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TARGET_WALL: Duration = Duration::from_secs(2);
const TARGET_RSS_MIB: f64 = 256.0;

/// One child process's cost and how it ended.
struct Cost {
    wall: Duration,
    cpu: Duration,
    rss_mib: f64,
    exit: Option<i32>,
}

fn cost_of(cmd: &mut Command) -> Cost {
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("backup-ns starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 writes into the status and rusage values owned here, for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    std::mem::forget(child); // reaped by wait4 already
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Cost {
        wall,
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        rss_mib: usage.ru_maxrss as f64 / 1024.0,
        exit: (reaped == pid && libc::WIFEXITED(status)).then(|| libc::WEXITSTATUS(status)),
    }
}

/// Set on the fresh copy of this binary that measures one run.
const MEASURE_ENV: &str = "HOSTILE_PLANS_MEASURE";

/// Measure mode: runs `backup-ns validate ARGS...` once and prints `wall_ns cpu_ns rss_kib exit`.
fn measure_one(args: &[String]) {
    let cost = cost_of(
        Command::new(env!("CARGO_BIN_EXE_backup-ns"))
            .env_clear()
            .env("COLUMNS", "100")
            .arg("validate")
            .args(args),
    );
    println!(
        "{} {} {} {}",
        cost.wall.as_nanos(),
        cost.cpu.as_nanos(),
        (cost.rss_mib * 1024.0) as u64,
        cost.exit.map_or(-1, |c| c)
    );
}

/// One run, measured by a fresh copy of this binary (see the module docs).
fn measured(path: &Path, args: &[&str]) -> Cost {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env(MEASURE_ENV, "1")
        .args(args)
        .arg(path)
        .stderr(Stdio::inherit())
        .output()
        .expect("the measuring copy starts");
    assert!(out.status.success(), "the measuring copy failed: {out:?}");
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<i128> = line
        .split_whitespace()
        .map(|v| v.parse().expect("a figure"))
        .collect();
    Cost {
        wall: Duration::from_nanos(f[0] as u64),
        cpu: Duration::from_nanos(f[1] as u64),
        rss_mib: f[2] as f64 / 1024.0,
        exit: (f[3] >= 0).then_some(f[3] as i32),
    }
}

/// The worst of `rounds` runs of `backup-ns validate [ARGS] PATH`.
fn worst(path: &Path, args: &[&str], rounds: usize) -> Cost {
    let mut worst: Option<Cost> = None;
    for _ in 0..rounds {
        let cost = measured(path, args);
        assert!(
            !matches!(cost.exit, Some(101) | None),
            "backup-ns validate {args:?} {} panicked or was killed",
            path.display()
        );
        worst = Some(match worst {
            Some(w) if w.wall >= cost.wall && w.rss_mib >= cost.rss_mib => w,
            Some(w) => Cost {
                wall: w.wall.max(cost.wall),
                cpu: w.cpu.max(cost.cpu),
                rss_mib: w.rss_mib.max(cost.rss_mib),
                exit: cost.exit,
            },
            None => cost,
        });
    }
    worst.expect("at least one round")
}

fn report(class: &str, size: u64, form: &str, cost: &Cost) -> bool {
    let within = cost.wall <= TARGET_WALL && cost.rss_mib <= TARGET_RSS_MIB;
    println!(
        "{class:<24} {:>9.2} MiB  {form:<5}  wall {:>7.3} s  cpu {:>7.3} s  peak RSS {:>7.1} MiB  exit {}  {}",
        size as f64 / (1024.0 * 1024.0),
        cost.wall.as_secs_f64(),
        cost.cpu.as_secs_f64(),
        cost.rss_mib,
        cost.exit.map_or_else(|| "-".to_string(), |c| c.to_string()),
        if within { "ok" } else { "OVER TARGET" }
    );
    within
}

fn main() {
    if std::env::var_os(MEASURE_ENV).is_some() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        return measure_one(&args);
    }
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "hostile plan files: worst of {rounds} round(s) per class and form; target <= {} s and <= {TARGET_RSS_MIB} MiB",
        TARGET_WALL.as_secs()
    );
    let mut all_within = true;
    for input in hostile_inputs::bench_inputs() {
        let path = dir.path().join(input.file);
        std::fs::write(&path, &input.bytes).expect("write input");
        for (form, args) in [("human", &[][..]), ("json", &["--format", "json"][..])] {
            let cost = worst(&path, args, rounds);
            all_within &= report(input.class, input.bytes.len() as u64, form, &cost);
        }
        std::fs::remove_file(&path).expect("remove input");
    }

    // Many files in one directory: 10,000 small plans, one of them invalid.
    let many = dir.path().join("many");
    std::fs::create_dir(&many).expect("mkdir");
    let mut size = 0;
    for i in 0..10_000 {
        let text = if i == 5_000 {
            "name: app\n".to_string()
        } else {
            hostile_inputs::HEADER.to_string()
        };
        size += text.len() as u64;
        std::fs::write(many.join(format!("p{i:05}.yaml")), text).expect("write plan");
    }
    for (form, args) in [("human", &[][..]), ("json", &["--format", "json"][..])] {
        let cost = worst(&many, args, rounds);
        all_within &= report("many-files (10,000)", size, form, &cost);
    }
    println!(
        "{}",
        if all_within {
            "every class within target"
        } else {
            "some classes OVER TARGET"
        }
    );
}
