//! Both databases end to end on the real cluster, behind app pods whose images run no process (the servers are
//! throwaway ones on this host, as in kube-sim's tests): `backup-ns run` dumps through exec via the apiserver into
//! the pod's hostpath volume, the real snapshot controller and driver cut it, and the driver's snapshot file holds
//! the very bytes of the dump. Then the on-call commands: `download` gets the same bytes, `restore` (from the pod
//! and `--from-local`) brings dropped rows back, a snapshot restored by the real provisioner into a new claim loads
//! into a fresh database with identical rows, and `verify --latest` proves the backup in a pod of the app's image
//! (mapped to this host's database tools on the shared cluster).

use crate::cluster::{RealCluster, text};
use crate::support::mariadb::Mariadb;
use crate::support::postgres::Postgres;
use serde_json::Value;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const PG_SEED: &str =
    "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));
INSERT INTO items SELECT g, 'item ' || g || ' ünïcødé', g * 1.25 FROM generate_series(1, 2000) g;";

const PG_CHECKSUM: &str = "SELECT count(*) || ':' || md5(string_agg(id || '|' || name || '|' || price, ',' ORDER BY id)) FROM items";

const MY_SEED: &str =
    "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL) ENGINE=InnoDB;
INSERT INTO items SELECT seq, CONCAT('item ', seq, ' ünïcødé') FROM seq_1_to_1500;";

const MY_CHECKSUM: &str = "SET SESSION group_concat_max_len = 67108864; SELECT CONCAT(COUNT(*), ':', MD5(GROUP_CONCAT(CONCAT_WS('|', id, name) ORDER BY id SEPARATOR ','))) FROM items";

/// An app in namespace `ns`: its database's pod `pod`, whose `image` runs no process here (it is mapped to `host`,
/// and the pod has no command), so exec into it runs this host's tools with the container's env and `claim` at
/// `mount`; and the plan that backs it up with a hook of type `engine` (also the name of its `db` command group)
/// into `mount`/dump.sql.gz, with a verify check that the table `items` has `rows` rows.
struct App<'a> {
    ns: &'a str,
    pod: &'a str,
    container: &'a str,
    image: &'a str,
    claim: &'a str,
    mount: &'a str,
    engine: &'a str,
    /// Hook settings beside the common ones (workload, container, host, port, dumpFile, timeout), each line ending
    /// in a newline.
    hook_extra: &'a str,
    port: u16,
    rows: u32,
}

impl App<'_> {
    /// The namespace with the claim, the pod with the database's `env`, once Running; and the plan, written into
    /// `dir`.
    fn deploy(&self, cluster: &RealCluster, env: &[(String, String)], dir: &Path) -> PathBuf {
        let App {
            ns,
            pod,
            container,
            image,
            claim,
            mount,
            engine,
            hook_extra,
            port,
            rows,
        } = self;
        cluster.namespace_with_claims(ns, &[claim]);
        let env: String = env
            .iter()
            .map(|(k, v)| format!("    - {{name: {k}, value: \"{v}\"}}\n"))
            .collect();
        cluster.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}}}\nspec:\n  \
             containers:\n  - name: {container}\n    image: {image}\n    env:\n{env}    \
             volumeMounts: [{{name: data, mountPath: {mount}}}]\n  \
             volumes: [{{name: data, persistentVolumeClaim: {{claimName: {claim}}}}}]\n"
        ));
        cluster.wait_for(ns, &format!("pod/{pod}"), "{.status.phase}", "Running");
        let plan = dir.join("shop.yaml");
        std::fs::write(
            &plan,
            format!(
                "name: shop\nnamespace: {ns}\ntargets: [{claim}]\nhooks:\n  pre:\n    - type: {engine}\n      \
                 workload: pod/{pod}\n      container: {container}\n      host: 127.0.0.1\n      port: {port}\n\
                 {hook_extra}      dumpFile: {mount}/dump.sql.gz\n      timeout: 2m\n\
                 snapshot:\n  type: cronjob\nretention: standard\nlock:\n  enabled: false\n\
                 verify:\n  checks:\n    - {{name: items, sql: 'select count(*) from items', expect: '== {rows}'}}\n"
            ),
        )
        .expect("writing the plan");
        plan
    }

    /// `run` of the plan: its stdout, the snapshot, and the dump it wrote through exec onto the pod's volume,
    /// whose very bytes the driver's snapshot file holds.
    fn back_up(&self, cluster: &RealCluster, plan: &Path) -> (String, String, Vec<u8>) {
        let out = ok(cluster, &["run", plan.to_str().expect("utf8 path")]);
        let dump = std::fs::read(cluster.volume_dir(self.ns, self.claim).join("dump.sql.gz"))
            .expect("the dump is on the volume");
        let (snapshot, snapshotted) = snapshotted(cluster, self.ns, "dump.sql.gz");
        assert!(snapshotted == dump, "the snapshot holds the dump's bytes");
        (out, snapshot, dump)
    }

    /// `ENGINE download` into a new dir in `dir`, through exec: the downloaded file, which holds `dump`'s bytes.
    fn download(&self, cluster: &RealCluster, plan: &Path, dir: &Path, dump: &[u8]) -> PathBuf {
        let downloads = dir.join("out");
        std::fs::create_dir(&downloads).expect("the download dir");
        ok(
            cluster,
            &[
                self.engine,
                "--plan",
                plan.to_str().expect("utf8 path"),
                "download",
                "--output-dir",
                downloads.to_str().expect("utf8 path"),
            ],
        );
        let local = downloaded(&downloads);
        assert!(
            std::fs::read(&local).expect("the downloaded dump") == dump,
            "{} holds the dump's bytes",
            local.display()
        );
        local
    }
}

/// `backup-ns ARGS` against the cluster, which must exit 0; returns its stdout.
fn ok(cluster: &RealCluster, args: &[&str]) -> String {
    let out = cluster.backup_ns(args, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "backup-ns {args:?}: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one snapshot in `ns`, once ready, and the bytes of `entry` in the driver's snapshot file of it.
fn snapshotted(cluster: &RealCluster, ns: &str, entry: &str) -> (String, Vec<u8>) {
    let names = cluster.snapshot_names(ns);
    assert_eq!(names.len(), 1, "one snapshot in {ns}: {names:?}");
    let name = names[0].clone();
    cluster.wait_for(
        ns,
        &format!("volumesnapshot/{name}"),
        "{.status.readyToUse}",
        "true",
    );
    let (_, handle) = cluster.content_of(ns, &name);
    let tar = cluster.snapshot_file(&handle);
    let member = cluster
        .snapshot_entries(&handle)
        .into_iter()
        .find(|e| e.trim_start_matches("./") == entry)
        .unwrap_or_else(|| panic!("{entry} in the driver's snapshot file {}", tar.display()));
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg(&member)
        .output()
        .expect("running tar -xOf");
    assert!(out.status.success(), "tar -xOf {}", tar.display());
    (name, out.stdout)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut sql = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut sql)
        .expect("a gzip dump");
    sql
}

/// The only file `download` wrote into `dir`.
fn downloaded(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the download dir")
        .map(|e| e.expect("a dir entry").path())
        .collect();
    assert_eq!(files.len(), 1, "one downloaded file: {files:?}");
    files.into_iter().next().expect("checked")
}

/// `verify --latest` of `claim`: passed, with the plan's check named `check` as `detail`.
fn verified(cluster: &RealCluster, ns: &str, plan: &Path, claim: &str, check: &str, detail: &str) {
    let plan = plan.to_str().expect("utf8 path");
    let report: Value = serde_json::from_str(&ok(
        cluster,
        &[
            "verify", "-n", ns, "--plan", plan, "--latest", "--pvc", claim, "-o", "json",
        ],
    ))
    .expect("verify -o json");
    assert_eq!(report["passed"], true, "{report:#}");
    let found = report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == check))
        .unwrap_or_else(|| panic!("check {check} in {report:#}"));
    assert_eq!(found["detail"], detail, "{report:#}");
    // Nothing of the run is left behind: its pod and claim carry the verify-run label.
    for kind in ["pods", "pvc"] {
        let left = cluster.get_json(&["-n", ns, kind, "-l", "backup-ns.sh/verify-run"]);
        assert_eq!(
            left["items"],
            serde_json::json!([]),
            "{kind} left: {left:#}"
        );
    }
}

#[test]
fn mariadb_is_dumped_through_exec_snapshotted_downloaded_restored_from_local_and_verified() {
    let cluster = RealCluster::shared();
    let ns = "db-mariadb";
    let db = Mariadb::start();
    db.create_database("shop");
    db.load("shop", MY_SEED.as_bytes());
    let original = db.sql("shop", MY_CHECKSUM);
    assert!(original.starts_with("1500:"), "{original}");
    let app = App {
        ns,
        pod: "maria-0",
        container: "mariadb",
        image: "mariadb:11",
        claim: "mydata",
        mount: "/var/lib/mysql",
        engine: "mysql",
        hook_extra: "      user: ${MYSQL_USER}\n      password: ${MYSQL_PASSWORD}\n      singleTransaction: true\n",
        port: db.port,
        rows: 1500,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = app.deploy(cluster, &db.container_env("shop"), dir.path());
    let plan_arg = plan.to_str().expect("utf8 path");

    let (out, _, dump) = app.back_up(cluster, &plan);
    assert!(!out.contains(&db.password), "{out}");
    let sql = String::from_utf8_lossy(&gunzip(&dump)).into_owned();
    assert!(
        sql.contains("CREATE TABLE `items`"),
        "{}",
        &sql[..sql.len().min(400)]
    );
    let local = app.download(cluster, &plan, dir.path(), &dump);

    // restore --from-local brings a dropped table back, row for row.
    db.sql("shop", "DROP TABLE items");
    ok(
        cluster,
        &[
            "mysql",
            "--plan",
            plan_arg,
            "restore",
            "--from-local",
            local.to_str().expect("utf8 path"),
            "--yes",
        ],
    );
    assert_eq!(db.sql("shop", MY_CHECKSUM), original);

    verified(cluster, ns, &plan, "mydata", "items", "1500 == 1500");
    drop(db);
    cluster.kubectl(&["delete", "namespace", ns, "--wait=false"]);
}

#[test]
fn postgres_is_restored_from_the_pod_and_from_a_new_claim_with_identical_rows_and_verified() {
    let cluster = RealCluster::shared();
    let ns = "db-postgres";
    let pg = Postgres::start();
    pg.create_database("shop");
    pg.load("shop", PG_SEED.as_bytes());
    let original = pg.psql("shop", PG_CHECKSUM);
    assert!(original.starts_with("2000:"), "{original}");
    let app = App {
        ns,
        pod: "db-0",
        container: "postgres",
        image: "postgres:17",
        claim: "pgdata",
        mount: "/var/lib/postgresql/data",
        engine: "postgres",
        hook_extra: "",
        port: pg.port,
        rows: 2000,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = app.deploy(cluster, &pg.container_env("shop"), dir.path());
    let plan_arg = plan.to_str().expect("utf8 path");

    let (_, snapshot, dump) = app.back_up(cluster, &plan);

    // The real provisioner restores the driver's snapshot into a new claim; its dump loads into a fresh database
    // with identical rows.
    ok(
        cluster,
        &[
            "restore",
            &snapshot,
            "--pvc",
            "restored",
            "-n",
            ns,
            "--wait",
            "--timeout",
            "90s",
        ],
    );
    let restored = std::fs::read(cluster.volume_dir(ns, "restored").join("dump.sql.gz"))
        .expect("the restored claim holds the dump");
    assert!(
        restored == dump,
        "the restored claim holds the dump's bytes"
    );
    pg.create_database("fresh");
    pg.load("fresh", &gunzip(&restored));
    assert_eq!(pg.psql("fresh", PG_CHECKSUM), original);

    // download gets the same bytes; restore (from the dump in the pod) undoes a damaging change.
    app.download(cluster, &plan, dir.path(), &dump);
    pg.psql(
        "shop",
        "DELETE FROM items WHERE id <= 10; UPDATE items SET name = 'x'",
    );
    ok(
        cluster,
        &["postgres", "--plan", plan_arg, "restore", "--yes"],
    );
    assert_eq!(pg.psql("shop", PG_CHECKSUM), original);

    verified(cluster, ns, &plan, "pgdata", "items", "2000 == 2000");
    drop(pg);
    cluster.kubectl(&["delete", "namespace", ns, "--wait=false"]);
}
