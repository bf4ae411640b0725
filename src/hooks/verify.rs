//! The verification pod's script for `backup-ns verify`, and the reading of what it printed.
//!
//! The script runs in a pod of the database hook's own image, with the restored claim mounted read-only where the
//! workload mounts it (so the hook's `dumpFile` path names the restored dump) and an emptyDir at [`WORK_DIR`]. It
//! starts a throwaway server on the emptyDir (`initdb` + `postgres`, or `mariadb-install-db` + `mariadbd`, as the
//! image's database user; no TCP listener, a socket in the emptyDir), loads the dump with errors fatal
//! (`ON_ERROR_STOP` in one transaction, `pg_restore --exit-on-error`, or the mysql client, which stops at the
//! first error unless `--force`), lists the tables with exact row counts and answers each check's query. Facts
//! come back as `backup-ns: KEY=VALUE` lines in the pod's log; judging them is the caller's business, so the
//! expectations never travel into the pod. The script is delivered as the container's `sh -c` argument: the
//! pod needs no ConfigMap and the image nothing but a POSIX shell.

use super::quote::quote;
use super::rhai_check::MAX_ROWS;
use super::script::MARKER;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Where the emptyDir is mounted in the verification pod: the throwaway server's data, socket and logs.
pub const WORK_DIR: &str = "/backup-ns-verify";

/// The database a verification pod starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Mysql,
}

/// What the throwaway server starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// The dump at this path in the pod, loaded into a fresh server.
    Dump(&'a str),
    /// A hot MySQL/MariaDB snapshot: the data directory on the restored claim mounted at this path (the directory
    /// holding `ibdata1`, at most three levels down) is copied onto the emptyDir, and the server recovers the copy
    /// as after a crash.
    MysqlDataDir(&'a str),
    /// A hot PostgreSQL snapshot: its data directory copied likewise, given its backup_label back, and recovered
    /// from the WAL archive up to the end of the backup.
    PostgresDataDir(HotPostgres<'a>),
}

/// What a hot PostgreSQL copy recovers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotPostgres<'a> {
    /// Where the restored claim is mounted: the data directory is the one holding `global/pg_control`, at most
    /// three levels down.
    pub mount: &'a str,
    /// What `pg_backup_stop()` returned.
    pub backup_label: &'a str,
    pub tablespace_map: Option<&'a str>,
    /// The archive's `restore_command`.
    pub restore_command: &'a str,
    /// The role the checks log in as (the hot session's; trust on the pod's socket).
    pub user: &'a str,
}

/// What the script needs: which server, which database to check, what it starts from, the checks' queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyScript<'a> {
    pub engine: Engine,
    pub database: &'a str,
    pub source: Source<'a>,
    pub queries: Vec<&'a str>,
    /// The queries of the rhai checks, each answered with all its rows (up to [`MAX_ROWS`]).
    pub row_queries: Vec<&'a str>,
}

/// The stage of the pod's work that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// No dump file in the snapshot.
    Dump,
    /// The dump does not decompress (or is not a readable archive).
    Decode,
    /// The throwaway server did not start.
    Server,
    /// The dump did not load.
    Load,
    /// The tables could not be counted.
    Tables,
    /// No data directory on the restored claim, or it could not be copied (a hot snapshot).
    Copy,
    /// The server did not recover the copied data directory (a hot snapshot).
    Recover,
}

impl Stage {
    fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "dump" => Stage::Dump,
            "decode" => Stage::Decode,
            "server" => Stage::Server,
            "load" => Stage::Load,
            "tables" => Stage::Tables,
            "copy" => Stage::Copy,
            "recover" => Stage::Recover,
            _ => return None,
        })
    }
}

/// What the pod reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOutput {
    pub dump_bytes: Option<u64>,
    /// The dump file's modification time, Unix seconds.
    pub dump_mtime: Option<i64>,
    pub decodes: bool,
    pub loaded: bool,
    /// A hot snapshot's data directory, relative to the claim's mount (`""` for its root), and its size in KiB.
    pub data_dir: Option<String>,
    pub copied_kib: Option<u64>,
    /// The server recovered the copied data directory and answers.
    pub recovered: bool,
    /// Each table (`schema.name` for PostgreSQL) with its exact row count, in name order.
    pub tables: Vec<(String, u64)>,
    /// Per check index: the first column of the first row, or the query's error.
    pub answers: BTreeMap<usize, Result<String, String>>,
    /// Per row query index: the rows (tab-separated columns split), or the query's error.
    pub rows: BTreeMap<usize, Result<Vec<Vec<String>>, String>>,
    /// The stage that failed and why.
    pub failure: Option<(Stage, String)>,
    /// The script ran to its end.
    pub finished: bool,
}

/// Reads the `backup-ns: KEY=VALUE` lines of the pod's log; other lines (the tools' chatter) are ignored.
pub fn parse_output(log: &str) -> VerifyOutput {
    let mut out = VerifyOutput::default();
    let mut stage = None;
    let mut error = None;
    for line in log.lines() {
        let Some((key, value)) = line
            .strip_prefix(MARKER)
            .and_then(|rest| rest.split_once('='))
        else {
            continue;
        };
        match key {
            "dump_bytes" => out.dump_bytes = value.trim().parse().ok(),
            "dump_mtime" => out.dump_mtime = value.trim().parse().ok(),
            "decodes" => out.decodes = value == "yes",
            "loaded" => out.loaded = value == "yes",
            "data_dir" => out.data_dir = Some(value.trim().to_string()),
            "copied_kib" => out.copied_kib = value.trim().parse().ok(),
            "recovered" => out.recovered = value == "yes",
            "done" => out.finished = value == "yes",
            "table" => {
                if let Some((rows, name)) = value.split_once(' ')
                    && let Ok(rows) = rows.trim().parse()
                {
                    out.tables.push((name.to_string(), rows));
                }
            }
            "failed" => stage = Stage::parse(value.trim()),
            "error" => error = Some(value.trim().to_string()),
            _ => {
                let answer = |prefix: &str| {
                    key.strip_prefix(prefix)
                        .and_then(|i| i.parse::<usize>().ok())
                };
                if let Some(i) = answer("check.") {
                    out.answers.insert(i, Ok(value.trim().to_string()));
                } else if let Some(i) = answer("check_error.") {
                    out.answers.insert(i, Err(value.trim().to_string()));
                } else if let Some(i) = answer("rows_count.") {
                    let count = value.trim().parse::<usize>().unwrap_or(0);
                    out.rows.insert(
                        i,
                        if count > MAX_ROWS {
                            Err(format!(
                                "it returned {count} rows, more than the {MAX_ROWS} a check may read; aggregate in SQL"
                            ))
                        } else {
                            Ok(Vec::new())
                        },
                    );
                } else if let Some(i) = answer("rows.") {
                    if let Some(Ok(rows)) = out.rows.get_mut(&i) {
                        rows.push(value.split('\t').map(str::to_string).collect());
                    }
                } else if let Some(i) = answer("rows_error.") {
                    out.rows.insert(i, Err(value.trim().to_string()));
                }
            }
        }
    }
    if let Some(stage) = stage {
        out.failure = Some((stage, error.unwrap_or_default()));
    }
    out
}

/// The shell functions every script starts with: reporting and failing with a stage.
const PRELUDE: &str = r#"set -u
say() { printf 'backup-ns: %s\n' "$1"; }
fail() { say "failed=$1"; say "error=$(printf '%s' "$2" | tr '\n' ' ' | tail -c 2000)"; exit 1; }
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
stop_server() { :; }
trap 'stop_server' EXIT
"#;

impl VerifyScript<'_> {
    /// The whole script, for `sh -c`.
    pub fn render(&self) -> String {
        let mut s = String::from(PRELUDE);
        let _ = writeln!(s, "W={}", quote(WORK_DIR));
        let _ = writeln!(s, "DB={}", quote(self.database));
        let engine = match self.source {
            Source::Dump(file) => {
                let _ = writeln!(s, "dump={}", quote(file));
                s.push_str(DUMP_FACTS);
                match self.engine {
                    Engine::Postgres => {
                        s.push_str(POSTGRES_TOOLS);
                        s.push_str(POSTGRES_SERVER);
                    }
                    Engine::Mysql => {
                        s.push_str(MYSQL_TOOLS);
                        s.push_str(MYSQL_LOAD);
                    }
                }
                s.push_str("say loaded=yes\n");
                self.engine
            }
            Source::PostgresDataDir(hot) => {
                let _ = writeln!(s, "M={}", quote(hot.mount));
                let _ = writeln!(s, "PGU={}", quote(hot.user));
                let _ = writeln!(s, "RC={}", quote(hot.restore_command));
                s.push_str(POSTGRES_TOOLS);
                s.push_str(POSTGRES_COPY);
                let mut files = vec![("backup_label", hot.backup_label)];
                files.extend(hot.tablespace_map.map(|m| ("tablespace_map", m)));
                for (file, text) in files {
                    let _ = writeln!(s, "printf '%s' {} > \"$W/db/{file}\"", quote(text));
                }
                s.push_str(POSTGRES_RECOVER);
                s.push_str("say recovered=yes\n");
                Engine::Postgres
            }
            Source::MysqlDataDir(mount) => {
                let _ = writeln!(s, "M={}", quote(mount));
                s.push_str(MYSQL_TOOLS);
                s.push_str(MYSQL_RECOVER);
                s.push_str("say recovered=yes\n");
                Engine::Mysql
            }
        };
        match engine {
            Engine::Postgres => s.push_str(POSTGRES_TABLES),
            Engine::Mysql => s.push_str(MYSQL_TABLES),
        }
        s.push_str("while IFS= read -r line; do say \"table=$line\"; done < \"$W/tables.out\"\n");
        for (i, query) in self.queries.iter().enumerate() {
            let _ = writeln!(
                s,
                "if out=$(printf '%s\\n' {} | query 2>&1); then say \"check.{i}=$(printf '%s\\n' \"$out\" | head -n 1 | {})\"; \
                 else say \"check_error.{i}=$(printf '%s' \"$out\" | tr '\\n' ' ' | tail -c 500)\"; fi",
                quote(&format!("{};", query.trim().trim_end_matches(';'))),
                match engine {
                    Engine::Postgres => "cut -d '|' -f 1",
                    Engine::Mysql => "cut -f 1",
                }
            );
        }
        if !self.row_queries.is_empty() {
            // psql's unaligned output separates columns with a tab here, as mysql's batch output does.
            s.push_str(match engine {
                Engine::Postgres => "rows() { query -F \"$(printf '\\t')\"; }\n",
                Engine::Mysql => "rows() { query; }\n",
            });
        }
        for (j, query) in self.row_queries.iter().enumerate() {
            let _ = writeln!(
                s,
                "if out=$(printf '%s\\n' {} | rows 2>\"$W/rows.err\"); then \
                 n=0; [ -z \"$out\" ] || n=$(printf '%s\\n' \"$out\" | wc -l | tr -d ' '); say \"rows_count.{j}=$n\"; \
                 [ \"$n\" = 0 ] || printf '%s\\n' \"$out\" | head -n {MAX_ROWS} | cut -c 1-4096 | while IFS= read -r r; do say \"rows.{j}=$r\"; done; \
                 else say \"rows_error.{j}=$(tr '\\n' ' ' < \"$W/rows.err\" | tail -c 500)\"; fi",
                quote(&format!("{};", query.trim().trim_end_matches(';'))),
            );
        }
        s.push_str("say done=yes\nexit 0\n");
        s
    }
}

/// The dump's facts and its decoding: `cat_dump` writes the SQL (or `custom=1` marks a pg_dump archive).
const DUMP_FACTS: &str = r#"[ -f "$dump" ] || fail dump "no dump file at $dump in the snapshot: the database hook wrote none there before the snapshot was cut"
say "dump_bytes=$(wc -c < "$dump" | tr -d ' ')"
say "dump_mtime=$(stat -c %Y "$dump")"
custom=0
magic=$(od -An -tx1 -N5 "$dump" | tr -d ' \n')
case "$magic" in
  1f8b*) cat_dump() { gzip -dc "$dump"; }
         gzip -t "$dump" 2>"$W/decode.err" || fail decode "the dump is not a complete gzip stream: $(cat "$W/decode.err")" ;;
  28b52ffd*) cat_dump() { zstd -q -dc "$dump"; }
         zstd -q -t "$dump" 2>"$W/decode.err" || fail decode "the dump is not a complete zstd stream: $(cat "$W/decode.err")" ;;
  50474d5044*) custom=1; cat_dump() { cat "$dump"; } ;;
  *) cat_dump() { cat "$dump"; } ;;
esac
"#;

/// PostgreSQL: the newest server binaries (Debian keeps them out of PATH), and `as_db` running a command as the
/// `postgres` user.
const POSTGRES_TOOLS: &str = r#"for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do pgbin=$d; done
[ -n "${pgbin:-}" ] && PATH="$pgbin:$PATH"
as_db() {
  if [ "$(id -u)" != 0 ]; then "$@"
  elif command -v gosu >/dev/null 2>&1; then gosu postgres "$@"
  elif command -v setpriv >/dev/null 2>&1; then setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else runuser -u postgres -- "$@"; fi
}
"#;

/// PostgreSQL hot snapshot: the data directory found on the claim (read-only) copied onto the emptyDir, the live
/// server's pid file and any recovery signal dropped (the backup_label is written next).
const POSTGRES_COPY: &str = r#"found=
for f in "$M"/global/pg_control "$M"/*/global/pg_control "$M"/*/*/global/pg_control "$M"/*/*/*/global/pg_control; do
  if [ -f "$f" ]; then found=${f%/global/pg_control}; break; fi
done
[ -n "$found" ] || fail copy "no PostgreSQL data directory (global/pg_control) on the restored volume at $M"
say "data_dir=${found#"$M"}"
mkdir -p "$W/db" "$W/run"
cp -R "$found/." "$W/db/" 2>"$W/copy.err" || fail copy "cannot copy the data directory: $(tail -n 5 "$W/copy.err")"
rm -f "$W/db/postmaster.pid" "$W/db/recovery.signal" "$W/db/standby.signal"
say "copied_kib=$(du -sk "$W/db" | cut -f 1)"
"#;

/// PostgreSQL hot snapshot: archive recovery of the copy (`recovery.signal`, the archive's `restore_command`) to
/// the end of the backup only (`recovery_target=immediate`), then promoted; archiving off, trust on the pod's
/// own socket (the copy's pg_hba.conf is replaced), no TCP listener. Waits until the copy is promoted.
const POSTGRES_RECOVER: &str = r#": > "$W/db/recovery.signal"
printf 'local all all trust\n' > "$W/hba.conf"
[ "$(id -u)" = 0 ] && chown -R postgres: "$W"
chmod 700 "$W/db"
as_db postgres -D "$W/db" -k "$W/run" -c listen_addresses= -c hba_file="$W/hba.conf" -c archive_mode=off -c "restore_command=$RC" -c recovery_target=immediate -c recovery_target_action=promote -c fsync=off >"$W/server.log" 2>&1 &
spid=$!
stop_server() { as_db pg_ctl -D "$W/db" -m fast -w stop >/dev/null 2>&1; }
sql() { as_db psql -X -q -h "$W/run" -U "$PGU" "$@"; }
query() { sql -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
until [ "$(sql -At -d "$DB" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
  kill -0 "$spid" 2>/dev/null || fail recover "postgres did not recover the copy: $(tail -n 5 "$W/server.log")"; sleep 0.5
done
"#;

/// PostgreSQL: `initdb` and `postgres` as the `postgres` user on the emptyDir, the roles the dump names created
/// empty, then the load.
const POSTGRES_SERVER: &str = r#"mkdir -p "$W/db" "$W/run"
[ "$(id -u)" = 0 ] && chown -R postgres: "$W"
as_db initdb -D "$W/db" -U postgres --auth=trust -E UTF8 --no-locale --no-sync >"$W/initdb.log" 2>&1 || fail server "initdb failed: $(tail -n 5 "$W/initdb.log")"
as_db postgres -D "$W/db" -k "$W/run" -c listen_addresses= -c fsync=off >"$W/server.log" 2>&1 &
stop_server() { as_db pg_ctl -D "$W/db" -m fast -w stop >/dev/null 2>&1; }
i=0
until as_db pg_isready -q -h "$W/run" -U postgres; do
  i=$((i + 1)); [ "$i" -gt 120 ] && fail server "postgres did not start: $(tail -n 5 "$W/server.log")"; sleep 0.5
done
sql() { as_db psql -X -q -h "$W/run" -U postgres "$@"; }
query() { sql -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
printf 'CREATE DATABASE :"db";\n' | sql -v ON_ERROR_STOP=1 -v db="$DB" -d postgres >/dev/null 2>"$W/create.err" || fail server "cannot create database $DB: $(cat "$W/create.err")"
if [ "$custom" = 1 ]; then
  as_db pg_restore -l "$dump" >/dev/null 2>"$W/decode.err" || { stop_server; fail decode "the pg_dump archive does not read: $(tail -n 5 "$W/decode.err")"; }
  say decodes=yes
  as_db pg_restore --exit-on-error --single-transaction --no-owner --no-privileges -h "$W/run" -U postgres -d "$DB" "$dump" >/dev/null 2>"$W/load.err" || { stop_server; fail load "the dump does not load: $(tail -n 5 "$W/load.err")"; }
else
  say decodes=yes
  cat_dump | sed -n -e 's/^ALTER .* OWNER TO \(.*\);$/\1/p' -e 's/^GRANT .* TO \(.*\);$/\1/p' | sort -u |
    while IFS= read -r role; do printf 'CREATE ROLE %s;\n' "$role"; done | sql -d postgres >/dev/null 2>&1
  cat_dump | sql -v ON_ERROR_STOP=1 --single-transaction -d "$DB" >/dev/null 2>"$W/load.err" || { stop_server; fail load "the dump does not load: $(tail -n 5 "$W/load.err")"; }
fi
"#;

/// PostgreSQL: every ordinary and partitioned table outside the system schemas, with `count(*)`.
const POSTGRES_TABLES: &str = r#"printf '%s\n' "SELECT format('SELECT count(*) || '' '' || %L FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1" '\gexec' | query >"$W/tables.out" 2>"$W/tables.err" || { stop_server; fail tables "cannot count the tables: $(tail -n 5 "$W/tables.err")"; }
"#;

/// MariaDB/MySQL: the server's tools (MariaDB's names first), and `start_server OPTIONS…`: the server on the
/// emptyDir's `db` as the `mysql` user, socket only, waited for (while it lives, up to the pod's deadline: a
/// recovery may take long), with `sql` and `query` defined.
const MYSQL_TOOLS: &str = r#"srv=$(command -v mariadbd || command -v mysqld) || fail server "neither mariadbd nor mysqld is in the image"
cli=$(command -v mariadb || command -v mysql) || fail server "neither mariadb nor mysql is in the image"
adm=$(command -v mariadb-admin || command -v mysqladmin) || fail server "neither mariadb-admin nor mysqladmin is in the image"
u=""
[ "$(id -u)" = 0 ] && u="--user=mysql"
start_server() {
  stage=$1; shift
  "$srv" --no-defaults $u --datadir="$W/db" --socket="$W/mysql.sock" --skip-networking --pid-file="$W/mysqld.pid" --log-error="$W/server.log" "$@" >/dev/null 2>&1 &
  spid=$!
  stop_server() { "$adm" --no-defaults --socket="$W/mysql.sock" -uroot shutdown >/dev/null 2>&1; }
  until "$adm" --no-defaults --socket="$W/mysql.sock" -uroot ping >/dev/null 2>&1; do
    kill -0 "$spid" 2>/dev/null || fail "$stage" "$srv did not start: $(tail -n 5 "$W/server.log")"; sleep 0.5
  done
}
sql() { "$cli" --no-defaults --socket="$W/mysql.sock" -uroot "$@"; }
query() { sql -N -B "$DB"; }
"#;

/// MariaDB/MySQL dump: `mariadb-install-db` on the emptyDir, the server, then the load (the client stops at the
/// first error).
const MYSQL_LOAD: &str = r#"say decodes=yes
inst=$(command -v mariadb-install-db || command -v mysql_install_db) || fail server "neither mariadb-install-db nor mysql_install_db is in the image"
mkdir -p "$W/db"
[ -n "$u" ] && chown -R mysql: "$W"
"$inst" $u --datadir="$W/db" --auth-root-authentication-method=normal --skip-test-db >"$W/initdb.log" 2>&1 || fail server "$inst failed: $(tail -n 5 "$W/initdb.log")"
start_server server --innodb-flush-log-at-trx-commit=0
printf 'CREATE DATABASE `%s`;\n' "$(printf '%s' "$DB" | sed 's/`/``/g')" | sql 2>"$W/create.err" || fail server "cannot create database $DB: $(cat "$W/create.err")"
cat_dump | sql --batch "$DB" >/dev/null 2>"$W/load.err" || { stop_server; fail load "the dump does not load: $(tail -n 5 "$W/load.err")"; }
"#;

/// MariaDB/MySQL hot snapshot: the data directory found on the claim (read-only) copied onto the emptyDir, its
/// pid file and sockets dropped, and the server started on the copy: InnoDB recovers it from its redo log. The
/// copy's own accounts are bypassed (`--skip-grant-tables`, no network) and replication is not started.
const MYSQL_RECOVER: &str = r#"found=
for f in "$M"/ibdata1 "$M"/*/ibdata1 "$M"/*/*/ibdata1 "$M"/*/*/*/ibdata1; do
  if [ -f "$f" ]; then found=${f%/ibdata1}; break; fi
done
[ -n "$found" ] || fail copy "no MySQL/MariaDB data directory (ibdata1) on the restored volume at $M"
say "data_dir=${found#"$M"}"
mkdir -p "$W/db"
cp -R "$found/." "$W/db/" 2>"$W/copy.err" || fail copy "cannot copy the data directory: $(tail -n 5 "$W/copy.err")"
rm -f "$W/db"/*.pid "$W/db"/*.sock "$W/db"/*.sock.lock
say "copied_kib=$(du -sk "$W/db" | cut -f 1)"
[ -n "$u" ] && chown -R mysql: "$W"
case "$("$srv" --version 2>/dev/null)" in
  *MariaDB*) no_replica=--skip-slave-start ;;
  *) no_replica=--skip-replica-start ;;
esac
start_server recover --skip-grant-tables "$no_replica"
"#;

/// MariaDB/MySQL: every base table of the database, with `COUNT(*)`.
const MYSQL_TABLES: &str = r#"printf '%s\n' "SELECT CONCAT('SELECT CONCAT(COUNT(*), '' '', ', QUOTE(table_name), ') FROM \`', REPLACE(table_name, '\`', '\`\`'), '\`;') FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name;" | query >"$W/tables.sql" 2>"$W/tables.err" && query <"$W/tables.sql" >"$W/tables.out" 2>>"$W/tables.err" || { stop_server; fail tables "cannot count the tables: $(tail -n 5 "$W/tables.err")"; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_read_into_facts_tables_answers_and_the_failed_stage() {
        let log = "initdb chatter\nbackup-ns: dump_bytes=120\nbackup-ns: dump_mtime=1736381702\n\
                   backup-ns: decodes=yes\nbackup-ns: loaded=yes\nbackup-ns: table=3000 public.items\n\
                   backup-ns: table=3 public.my notes\nbackup-ns: check.0=3000\n\
                   backup-ns: check_error.1=ERROR: relation \"nope\" does not exist\nbackup-ns: done=yes\n";
        let out = parse_output(log);
        assert_eq!(out.dump_bytes, Some(120));
        assert_eq!(out.dump_mtime, Some(1_736_381_702));
        assert!(out.decodes && out.loaded && out.finished);
        assert_eq!(
            out.tables,
            [
                ("public.items".to_string(), 3000),
                ("public.my notes".to_string(), 3)
            ]
        );
        assert_eq!(out.answers[&0], Ok("3000".to_string()));
        assert!(out.answers[&1].as_ref().is_err_and(|e| e.contains("nope")));
        assert_eq!(out.failure, None);
        let rows = parse_output(
            "backup-ns: rows_count.0=2\nbackup-ns: rows.0=1\ta b\nbackup-ns: rows.0=2\t\n\
             backup-ns: rows_count.1=0\nbackup-ns: rows_count.2=5000\nbackup-ns: rows.2=1\n\
             backup-ns: rows_error.3=ERROR: syntax error\n",
        );
        assert_eq!(
            rows.rows[&0],
            Ok(vec![
                vec!["1".to_string(), "a b".into()],
                vec!["2".into(), String::new()]
            ])
        );
        assert_eq!(rows.rows[&1], Ok(vec![]));
        assert!(
            rows.rows[&2]
                .as_ref()
                .is_err_and(|e| e.contains("5000 rows"))
        );
        assert_eq!(rows.rows[&3], Err("ERROR: syntax error".to_string()));

        let hot = parse_output(
            "backup-ns: data_dir=/mysql\nbackup-ns: copied_kib=128100\nbackup-ns: recovered=yes\n\
             backup-ns: failed=recover\nbackup-ns: error=InnoDB: corrupt\n",
        );
        assert_eq!(hot.data_dir.as_deref(), Some("/mysql"));
        assert_eq!(hot.copied_kib, Some(128_100));
        assert!(hot.recovered && !hot.loaded);
        assert_eq!(
            hot.failure,
            Some((Stage::Recover, "InnoDB: corrupt".into()))
        );
        let failed = parse_output(
            "backup-ns: decodes=yes\nbackup-ns: failed=load\nbackup-ns: error=ERROR: syntax error at end of input\n",
        );
        assert_eq!(
            failed.failure,
            Some((Stage::Load, "ERROR: syntax error at end of input".into()))
        );
        assert!(!failed.loaded && !failed.finished);
    }

    #[test]
    fn queries_travel_quoted_and_the_database_name_is_a_variable() {
        let script = VerifyScript {
            engine: Engine::Postgres,
            database: "shop'; drop",
            source: Source::Dump("/var/lib/postgresql/data/dump.sql.gz"),
            queries: vec!["select count(*) from orders where note = 'x'"],
            row_queries: vec![],
        }
        .render();
        assert!(script.contains("DB='shop'\\''; drop'"), "{script}");
        assert!(
            script.contains(
                "printf '%s\\n' 'select count(*) from orders where note = '\\''x'\\'';' | query"
            ),
            "{script}"
        );
        assert!(script.contains("ON_ERROR_STOP=1 --single-transaction"));
        let mysql = VerifyScript {
            engine: Engine::Mysql,
            database: "shop",
            source: Source::Dump("/var/lib/mysql/dump.sql.gz"),
            queries: vec![],
            row_queries: vec!["select id, name from items"],
        }
        .render();
        assert!(mysql.contains("--skip-networking") && !mysql.contains("--force"));
        assert!(!mysql.contains("--skip-grant-tables") && mysql.contains("cat_dump | sql"));
        let hot = VerifyScript {
            engine: Engine::Mysql,
            database: "shop",
            source: Source::MysqlDataDir("/var/lib/my sql"),
            queries: vec!["select count(*) from items"],
            row_queries: vec![],
        }
        .render();
        assert!(hot.contains("M='/var/lib/my sql'\n"), "{hot}");
        assert!(hot.contains("fail copy \"no MySQL/MariaDB data directory"));
        assert!(hot.contains("start_server recover --skip-grant-tables"));
        assert!(!hot.contains("cat_dump") && !hot.contains("$inst\" $u"));
        assert!(hot.contains("say recovered=yes\n") && hot.contains("| query 2>&1"));
        let pg = VerifyScript {
            engine: Engine::Postgres,
            database: "shop",
            source: Source::PostgresDataDir(HotPostgres {
                mount: "/var/lib/postgresql/data",
                backup_label: "START WAL LOCATION: 0/2000028\nLABEL: it's\n",
                tablespace_map: None,
                restore_command: "cp /archive/%f %p",
                user: "app",
            }),
            queries: vec![],
            row_queries: vec![],
        }
        .render();
        assert!(
            pg.contains("RC='cp /archive/%f %p'\nPGU='app'\n")
                || pg.contains("PGU='app'\nRC='cp /archive/%f %p'\n"),
            "{pg}"
        );
        assert!(pg.contains("printf '%s' 'START WAL LOCATION: 0/2000028\nLABEL: it'\\''s\n' > \"$W/db/backup_label\""), "{pg}");
        assert!(!pg.contains("tablespace_map") && !pg.contains("initdb"));
        // The copy recovers to the end of the backup only, never archives, and is read over trust on its socket.
        assert!(pg.contains("-c \"restore_command=$RC\" -c recovery_target=immediate -c recovery_target_action=promote"));
        assert!(
            pg.contains("-c archive_mode=off") && pg.contains("printf 'local all all trust\\n'")
        );
        let label = pg.find("$W/db/backup_label").unwrap();
        assert!(pg.find("cp -R").unwrap() < label && label < pg.find("as_db postgres -D").unwrap());
        assert!(
            mysql.contains("printf '%s\\n' 'select id, name from items;' | rows")
                && mysql.contains("head -n 1000"),
            "{mysql}"
        );
    }
}
