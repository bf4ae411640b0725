//! Does kube-sim stay flat as its store grows? (`cargo bench -p kube-sim --bench store_scale`)
//!
//! For 1,000, 10,000 and 100,000 stored VolumeSnapshots (100 per namespace, with backup-ns labels; override the
//! sizes with `KUBE_SIM_BENCH_SIZES=1000,10000`), a real kube client sends over HTTP:
//! - get: one snapshot;
//! - patch: a JSON patch with a `test` op adding a label (what backup-ns sends);
//! - list page: the second page (limit 500) of an all-namespace list with a label selector that matches all;
//! - selective list: `backup-ns.sh/pvc=data-1` in one namespace (a few matches out of the whole store);
//! - delete: with a uid precondition.
//!
//! Printed per size and request kind: p50 and p99 latency, and CPU per request of the simulator's threads and of
//! the client, apart (the simulator runs on its own named runtime, the client on the others; CPU is read from
//! /proc/self/task). The last table gives the largest size's p50 over the smallest's: a flat store stays near 1.
//! Prints figures only; it asserts the answers (counts, codes), never timings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;

const PER_NAMESPACE: usize = 100;
const SAMPLES: usize = 300;
const PAGE: u32 = 500;
const SIM_THREADS: &str = "kube-sim-bench";
const CLIENT_THREADS: &str = "bench-client";

fn sizes() -> Vec<usize> {
    std::env::var("KUBE_SIM_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000])
}

/// CPU time (user + system) of this process's threads: (the simulator's, everyone else's). The client's
/// futures run on the calling thread (`block_on`) and its runtime's threads, so "everyone else" is the client.
fn thread_cpu() -> (Duration, Duration) {
    let ticks = 100.0; // USER_HZ on Linux
    let (mut sim, mut client) = (0u64, 0u64);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (Duration::ZERO, Duration::ZERO);
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: the name sits in parentheses and may hold spaces.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after `state`.
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        // comm is cut at 15 bytes.
        if SIM_THREADS.starts_with(comm) || comm.starts_with(SIM_THREADS) {
            sim += utime + stime;
        } else {
            client += utime + stime;
        }
    }
    let secs = |t: u64| Duration::from_secs_f64(t as f64 / ticks);
    (secs(sim), secs(client))
}

fn snapshot(ns: &str, i: usize) -> serde_json::Value {
    let pvc = format!("data-{}", i % 10);
    let name = format!("{pvc}-{i:06}");
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": ns, "labels": {
            "backup-ns.sh/retain": "daily_weekly_monthly",
            "backup-ns.sh/pvc": pvc,
            "backup-ns.sh/type": "cronjob",
            "backup-ns.sh/daily": format!("2025-01-{:02}", i % 28 + 1),
        }},
        "spec": {"source": {"persistentVolumeClaimName": pvc}, "volumeSnapshotClassName": "csi-hostpath-snapclass"},
        "status": {"boundVolumeSnapshotContentName": format!("snapcontent-{ns}-{name}"),
                   "creationTime": "2025-01-01T00:00:00Z", "readyToUse": true, "restoreSize": "1Gi"}
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Figures {
    p50: Duration,
    p99: Duration,
    sim_cpu: Duration,
    client_cpu: Duration,
}

/// Times `SAMPLES` calls of `op` (given the sample's index) on the client runtime.
fn measure<F, Fut>(client_rt: &tokio::runtime::Runtime, mut op: F) -> Figures
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (sim0, client0) = thread_cpu();
    let mut times = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let fut = op(i);
        let t = Instant::now();
        client_rt.block_on(fut);
        times.push(t.elapsed());
    }
    times.sort();
    let (sim1, client1) = thread_cpu();
    let per = |d: Duration| d / SAMPLES as u32;
    Figures {
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
        sim_cpu: per(sim1.saturating_sub(sim0)),
        client_cpu: per(client1.saturating_sub(client0)),
    }
}

fn snapshots_api(client: kube::Client, ns: Option<&str>) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "snapshot.storage.k8s.io".into(),
        version: "v1".into(),
        api_version: "snapshot.storage.k8s.io/v1".into(),
        kind: "VolumeSnapshot".into(),
        plural: "volumesnapshots".into(),
    };
    match ns {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    }
}

fn run_size(n: usize) -> BTreeMap<&'static str, Figures> {
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SIM_THREADS)
        .enable_all()
        .build()
        .expect("simulator runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()
        .expect("client runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let sim = sim_rt
        .block_on(
            kube_sim::Sim::builder()
                .state_dir(tmp.path().join("sim"))
                .start(),
        )
        .expect("kube-sim starts");
    let store = sim.shared().store.clone();
    let namespaces = n.div_ceil(PER_NAMESPACE);
    let t = Instant::now();
    for i in 0..n {
        let ns = format!("tenant-{:05}", i / PER_NAMESPACE);
        store
            .load(
                "snapshot.storage.k8s.io",
                "volumesnapshots",
                snapshot(&ns, i),
            )
            .expect("seed loads");
    }
    // Let the simulator's controllers see the seeded objects before anything is timed.
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "\n{n} VolumeSnapshots in {namespaces} namespaces seeded in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let config = client_rt
        .block_on(kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(sim.kubeconfig_path()).expect("kubeconfig"),
            &kube::config::KubeConfigOptions::default(),
        ))
        .expect("client config");
    let client = {
        let _guard = client_rt.enter();
        kube::Client::try_from(config).expect("client")
    };
    // Spread the samples over the whole store: sample `i` touches snapshot number `i * stride`.
    let stride = (n / SAMPLES).max(1);
    let name_of = |i: usize| {
        let k = (i * stride) % n;
        (
            format!("tenant-{:05}", k / PER_NAMESPACE),
            format!("data-{}-{k:06}", k % 10),
        )
    };
    let mut out = BTreeMap::new();

    out.insert(
        "1 get",
        measure(&client_rt, |i| {
            let (ns, name) = name_of(i);
            let api = snapshots_api(client.clone(), Some(&ns));
            async move {
                api.get(&name).await.expect("get");
            }
        }),
    );
    out.insert(
        "2 patch",
        measure(&client_rt, |i| {
            let (ns, name) = name_of(i);
            let api = snapshots_api(client.clone(), Some(&ns));
            async move {
                let patch: json_patch::Patch = serde_json::from_value(json!([
                    {"op": "test", "path": "/metadata/labels/backup-ns.sh~1retain", "value": "daily_weekly_monthly"},
                    {"op": "add", "path": "/metadata/labels/bench", "value": i.to_string()},
                ]))
                .expect("patch");
                api.patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
                    .await
                    .expect("patch");
            }
        }),
    );
    let all = snapshots_api(client.clone(), None);
    let first = client_rt
        .block_on(
            all.list(
                &ListParams::default()
                    .labels("backup-ns.sh/retain")
                    .limit(PAGE),
            ),
        )
        .expect("first page");
    let token = first.metadata.continue_.clone().filter(|t| !t.is_empty());
    out.insert(
        "3 list page",
        measure(&client_rt, |_| {
            let all = all.clone();
            let mut params = ListParams::default()
                .labels("backup-ns.sh/retain")
                .limit(PAGE);
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            async move {
                let page = all.list(&params).await.expect("list page");
                assert_eq!(
                    page.items.len(),
                    (n.saturating_sub(PAGE as usize)).min(PAGE as usize)
                );
            }
        }),
    );
    out.insert(
        "4 selective list",
        measure(&client_rt, |i| {
            let (ns, _) = name_of(i);
            let api = snapshots_api(client.clone(), Some(&ns));
            async move {
                let page = api
                    .list(
                        &ListParams::default()
                            .labels("backup-ns.sh/pvc=data-1")
                            .limit(PAGE),
                    )
                    .await
                    .expect("selective list");
                assert_eq!(page.items.len(), PER_NAMESPACE.min(n) / 10);
            }
        }),
    );
    let uids: Vec<(String, String, String)> = (0..SAMPLES)
        .map(|i| {
            let (ns, name) = name_of(i);
            let obj = client_rt
                .block_on(snapshots_api(client.clone(), Some(&ns)).get(&name))
                .expect("get before delete");
            (ns, name, obj.metadata.uid.unwrap_or_default())
        })
        .collect();
    out.insert(
        "5 delete",
        measure(&client_rt, |i| {
            let (ns, name, uid) = uids[i].clone();
            let api = snapshots_api(client.clone(), Some(&ns));
            async move {
                let params = DeleteParams {
                    preconditions: Some(kube::api::Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                // Samples may repeat an object on small stores: already gone is an answer too.
                match api.delete(&name, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => panic!("delete: {e}"),
                }
            }
        }),
    );
    drop(client);
    sim_rt.block_on(sim.shutdown());
    out
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let sizes = sizes();
    let mut all = Vec::new();
    for &n in &sizes {
        let figures = run_size(n);
        println!(
            "    {:<18} {:>9} {:>9} {:>14} {:>14}",
            "request", "p50 ms", "p99 ms", "sim CPU ms/req", "client CPU ms/req"
        );
        for (op, f) in &figures {
            println!(
                "    {:<18} {:>9} {:>9} {:>14} {:>14}",
                &op[2..],
                ms(f.p50),
                ms(f.p99),
                ms(f.sim_cpu),
                ms(f.client_cpu)
            );
        }
        all.push((n, figures));
    }
    if let (Some((small, s)), Some((large, l))) = (all.first(), all.last())
        && small != large
    {
        println!("\np50 at {large} over p50 at {small} (flat: near 1, goal: at most 2):");
        for (op, f) in l {
            let base = s[op].p50.as_secs_f64().max(1e-9);
            println!("    {:<18} {:.2}x", &op[2..], f.p50.as_secs_f64() / base);
        }
    }
}
