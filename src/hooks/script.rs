//! Building blocks shared by every generated hook script, and the parser for what the scripts print.
//!
//! Every script runs under POSIX `sh -s` (dash, busybox ash or bash) inside the target container: no `pipefail`,
//! no `local`, no arrays. Variables are prefixed `bns_` so they cannot clash with the container's environment.
//! Scripts report facts on stdout as `backup-ns: KEY=VALUE` lines, one fact per line with the value running to the
//! end of the line, so the runner can read sizes and tool versions without guessing at free-form output.

use super::quote::quote;
use std::fmt::Write as _;

/// Prefix of every machine-readable line a generated script prints.
pub const MARKER: &str = "backup-ns: ";

pub use crate::vocab::hook::Compression;

/// The shell side of each compression.
impl Compression {
    /// Shell lines that define `bns_compress` / `bns_decompress` / `bns_test` (the format's own test, reading
    /// all of stdin: `gzip -t`, or `cat` for no compression) and set `$bns_compression` to what is really used.
    /// zstd is used when configured and installed; without it the dump falls back to gzip with a warning
    /// (restores detect the format by its magic bytes). Fails with `missing_tool=` when neither is there, or
    /// when the container has no `tee`.
    pub fn select(self) -> String {
        const GZIP: &str = "bns_compress() { gzip -c; }\nbns_decompress() { gzip -dc; }\nbns_test() { gzip -t; }\nbns_compression=gzip\n";
        const ZSTD: &str = "bns_compress() { zstd -q -c; }\nbns_decompress() { zstd -q -dc; }\nbns_test() { zstd -q -t; }\nbns_compression=zstd\n";
        let missing = |tool: &str| format!("echo '{MARKER}missing_tool={tool}'; exit 1\n");
        // The compressed stream is tested as `tee` writes it ([`dump_body`]). Not under `nice`: the dump waits on
        // the test through `tee`, so a test starved by the database's own work would stall the dump with it.
        let tee = format!(
            "command -v tee >/dev/null 2>&1 || {{ echo '{MARKER}missing_tool=tee'; exit 1; }}\n"
        );
        let compression = match self {
            Compression::None => {
                "bns_compress() { cat; }\nbns_decompress() { cat; }\nbns_test() { cat; }\nbns_compression=none\n"
                    .to_string()
            }
            Compression::Gzip => format!(
                "if command -v gzip >/dev/null 2>&1; then\n{GZIP}else\n{}fi\n",
                missing("gzip")
            ),
            Compression::Zstd => format!(
                "if command -v zstd >/dev/null 2>&1; then\n{ZSTD}elif command -v gzip >/dev/null 2>&1; then\n{GZIP}echo '{MARKER}warning=zstd is not installed in the container; compressing with gzip'\nelse\n{}fi\n",
                missing("zstd or gzip")
            ),
        };
        tee + compression.as_str()
    }
}

/// The files one hook run uses in the container, named with a per-run random token so that a leftover from a
/// killed run can never be mistaken for the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    /// Holds `PID PGID` of the script's shell, for the kill exec on timeout.
    pub pid_file: String,
    /// The partial dump, in the dump's own directory so the final rename is atomic. `None` for exec hooks.
    pub partial: Option<String>,
}

impl RunFiles {
    /// Files for a dump into `dump_path` (absolute). The pid file sits beside the dump because the dump directory
    /// is known to be writable while `/tmp` may be on a read-only root filesystem.
    pub fn for_dump(dump_path: &str, token: &str) -> RunFiles {
        let (dir, base) = split_path(dump_path);
        RunFiles {
            pid_file: format!("{dir}/.{base}.backup-ns-{token}.pid"),
            partial: Some(format!("{dir}/.{base}.backup-ns-{token}.partial")),
        }
    }

    /// Files for a plain command: only the pid file, in `/tmp`.
    pub fn for_command(token: &str) -> RunFiles {
        RunFiles {
            pid_file: format!("/tmp/backup-ns-{token}.pid"),
            partial: None,
        }
    }
}

/// Splits an absolute path into its directory (`/` for top-level files) and file name.
pub fn split_path(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", base)) => ("/", base),
        Some((dir, base)) => (dir, base),
        None => (".", path),
    }
}

/// A fresh random token for [`RunFiles`]: 12 lowercase letters and digits.
pub fn new_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Shell helper: prints the process group of PID `$1` from /proc (0 when unknown).
const PGID_FN: &str = r#"bns_pgid() {
  bns_s=
  { read -r bns_s < "/proc/$1/stat"; } 2>/dev/null || { echo 0; return 0; }
  bns_s=${bns_s##*) }
  set -- $bns_s
  echo "${3:-0}"
}
"#;

/// The start of every script: strict mode, private files, and the pid file for the kill exec.
pub fn prelude(files: &RunFiles) -> String {
    let mut s = String::from("set -eu\numask 077\n");
    s.push_str(PGID_FN);
    let _ = writeln!(s, "bns_pidfile={}", quote(&files.pid_file));
    // Best effort: without the pid file a timeout still fails the hook, it just cannot kill the process.
    s.push_str("{ echo \"$$ $(bns_pgid $$)\" > \"$bns_pidfile\"; } 2>/dev/null || true\n");
    s
}

/// Traps that remove the run's files on every exit, including signals (the EXIT trap runs after `exit N`).
pub fn cleanup_traps(files: &RunFiles) -> String {
    let mut s = String::new();
    match &files.partial {
        Some(partial) => {
            let _ = writeln!(s, "bns_tmp={}", quote(partial));
            let _ = writeln!(s, "bns_rc={}", quote(&format!("{partial}.rc")));
            let _ = writeln!(s, "bns_rectmp={}", quote(&format!("{partial}.sha256")));
            s.push_str(
                "bns_cleanup() { rm -f \"$bns_tmp\" \"$bns_rc\" \"$bns_rc.test\" \"$bns_rectmp\" \"$bns_pidfile\"; }\n",
            );
        }
        None => s.push_str("bns_cleanup() { rm -f \"$bns_pidfile\"; }\n"),
    }
    s.push_str("trap 'bns_cleanup' EXIT\n");
    s.push_str("trap 'exit 129' HUP\ntrap 'exit 130' INT\ntrap 'exit 143' TERM\n");
    s
}

/// Reads `df -P -k` of the dump's directory into `$bns_df` (empty when `df` fails), for [`df_block`].
const READ_DF: &str = "bns_df=$(df -P -k \"$bns_dir\") || bns_df=\n";

/// Shell lines that print `$bns_df` ([`READ_DF`]) between the markers the runner reads it by.
fn df_block() -> String {
    format!(
        "echo '{MARKER}df-begin'\nif [ -n \"$bns_df\" ]; then printf '%s\\n' \"$bns_df\"; fi\necho '{MARKER}df-end'\n"
    )
}

/// The end of every dump hook's check: the dump directory `dir` exists, `df -P -k` of it is reported
/// ([`df_block`]), and the script stops before anything is written unless the filesystem's Capacity is at most
/// `threshold` percent: `space=over`, or `space=unreadable` when no Capacity could be read. The runner then
/// judges the reported `df` itself ([`parse_df`]), so the error is the one a separate check would have given.
/// The Capacity is read the way [`parse_df`] reads it: the first `NN%` word after the header line. Last comes
/// `checked=yes`: whatever fails after it failed in the dump, not in the check.
pub fn space_gate(dir: &str, threshold: u8) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "bns_dir={}", quote(dir));
    s.push_str(&format!(
        "if [ ! -d \"$bns_dir\" ]; then echo '{MARKER}error=dump dir does not exist'; exit 1; fi\n"
    ));
    s.push_str(READ_DF);
    s.push_str(&df_block());
    s.push_str(
        r#"bns_nl='
'
case $bns_df in *"$bns_nl"*) bns_df=${bns_df#*"$bns_nl"} ;; *) bns_df= ;; esac
bns_used=
set -f
for bns_w in $bns_df; do
  case $bns_w in
    *%) bns_n=${bns_w%\%}; case $bns_n in ''|*[!0-9]*) ;; *) bns_used=$bns_n; break ;; esac ;;
  esac
done
set +f
"#,
    );
    s.push_str(&format!(
        "if [ -z \"$bns_used\" ]; then echo '{MARKER}space=unreadable'; exit 1; fi\n\
         if [ \"$bns_used\" -gt {threshold} ]; then echo \"{MARKER}space=over\"; exit 1; fi\n\
         echo '{MARKER}checked=yes'\n"
    ));
    s
}

/// What the shared assembly ([`check_only`], [`check_then_dump`]) needs of a dump hook's engine.
pub struct DumpParts {
    /// Everything before the connection is tried: tools, compressor (with its `compression=` line), connection
    /// settings.
    pub setup: String,
    /// The client's `SELECT 1` (quoted shell; its stdout must be `1`).
    pub select_one: String,
    /// The dump tool's `--version` (quoted shell).
    pub version: String,
    /// The dump tool with its arguments (quoted shell).
    pub dump_command: String,
    pub dump_path: String,
    pub threshold: u8,
}

impl DumpParts {
    /// Setup, then the tool's version in the background (one short line, written at once, so it never tears
    /// another): it costs no wait, and the script waits for it before it reports.
    fn start(&self) -> String {
        format!(
            "{}echo \"{MARKER}tool_version=$({} 2>&1 | head -n 1)\" &\n",
            self.setup, self.version
        )
    }

    /// `SELECT 1`: `connected=yes`, or `error=` and exit 1.
    fn select_one(&self) -> String {
        format!(
            "bns_one=$({} </dev/null) || {{ echo '{MARKER}error=SELECT 1 failed (connection or credentials)'; exit 1; }}\n\
             if [ \"$bns_one\" != 1 ]; then echo '{MARKER}error=SELECT 1 returned something else'; exit 1; fi\n\
             echo '{MARKER}connected=yes'\n",
            self.select_one
        )
    }

    /// The previous dump and the space gate, which ends the check.
    fn previous_and_gate(&self) -> String {
        let (dir, _) = split_path(&self.dump_path);
        format!(
            "{}{}",
            previous_dump_report(&self.dump_path),
            space_gate(dir, self.threshold)
        )
    }
}

/// A database hook that dumps: its two scripts, built from its [`DumpParts`].
pub trait DumpScripts {
    /// The engine's parts of the scripts.
    fn parts(&self) -> DumpParts;

    /// Only the check (`--dry-run`, [`check_only`]): tools, `SELECT 1`, the tool's version, the previous dump
    /// and the space gate; nothing is written.
    fn check_script(&self, files: &RunFiles) -> String {
        check_only(files, &self.parts())
    }

    /// The check and then the dump, in one exec session ([`check_then_dump`]): the dump tool through the
    /// compressor into a partial file, renamed onto the dump path.
    fn run_script(&self, files: &RunFiles) -> String {
        check_then_dump(files, &self.parts())
    }
}

/// The dry run's script of a dump hook: the whole check, `SELECT 1` included; nothing is written.
pub fn check_only(files: &RunFiles, parts: &DumpParts) -> String {
    let mut s = prelude(files);
    s.push_str(&cleanup_traps(&RunFiles {
        partial: None,
        ..files.clone()
    }));
    s.push_str(&parts.start());
    s.push_str(&parts.select_one());
    s.push_str(&parts.previous_and_gate());
    s.push_str("wait\n");
    // Explicit: the exec's stdin may stay open after the script, and `sh -s` would wait for more.
    s.push_str("exit 0\n");
    s
}

/// A dump hook's script, in one exec session: the check, then the dump ([`dump_body`]). The dump's own
/// connection proves the connection, so `SELECT 1` runs only when the dump tool fails: the check is reopened
/// (`checked=no`), and a failed `SELECT 1` ends the script as the check's failure (a connection or credentials
/// problem, as a check before the dump would have said) while a passing one leaves the failure to the dump.
pub fn check_then_dump(files: &RunFiles, parts: &DumpParts) -> String {
    let mut s = prelude(files);
    s.push_str(&cleanup_traps(files));
    s.push_str(&parts.start());
    s.push_str(&parts.previous_and_gate());
    let diagnosis = format!(
        "echo '{MARKER}checked=no'\n{}echo '{MARKER}checked=yes'\n",
        parts.select_one()
    );
    s.push_str(&dump_body(
        &parts.dump_path,
        &parts.dump_command,
        &diagnosis,
    ));
    s
}

/// The dump part shared by PostgreSQL and MySQL, after the hook's check (which selected the compressor and
/// passed [`space_gate`], so `$bns_dir` is the dump's existing directory): `dump_command` (already quoted shell)
/// is piped through the compressor into the partial file; its own exit status is carried out of the pipeline
/// through a file because POSIX sh has no `pipefail`, and when it is not 0 `on_failure` runs first. The
/// compressed stream passes the format's own test (`gzip -t`) as `tee` writes it, and a short write or a failed
/// test fails the dump. Then, while the partial file is fsynced where the container's `sync` accepts a file: the
/// non-empty check on the *uncompressed* stream (a compressed empty stream is not zero bytes), the file's SHA-256
/// and its size. Last the atomic rename, the dump's record beside it ([`record_path`]), and, while the directory
/// is fsynced, `df` after the dump; then the result lines.
pub fn dump_body(dump_path: &str, dump_command: &str, on_failure: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "bns_dump={}", quote(dump_path));
    let _ = writeln!(s, "bns_record={}", quote(&record_path(dump_path)));
    // The compressed stream is tested as it is written (`tee` into the format's test), on the other core while
    // the dump runs; `tee`'s own status (a short write) comes out through a file, as the dump tool's does.
    let _ = writeln!(
        s,
        "{{ bns_status=0; {dump_command} </dev/null || bns_status=$?; echo \"$bns_status\" > \"$bns_rc\"; }} | bns_compress | {{ tee \"$bns_tmp\" || echo \"write $?\" >> \"$bns_rectmp\"; }} | {{ bns_test >/dev/null 2>\"$bns_rc.test\" || echo test >> \"$bns_rectmp\"; }}"
    );
    s.push_str("read -r bns_status < \"$bns_rc\"\n");
    s.push_str(&format!(
        "if [ \"$bns_status\" != 0 ]; then\n{on_failure}echo \"{MARKER}error=dump tool exited with status $bns_status\"; exit 1\nfi\n"
    ));
    s.push_str(&format!(
        "if [ -s \"$bns_rectmp\" ]; then\n\
         case $(cat \"$bns_rectmp\") in\n\
         *test*) echo \"{MARKER}error=the compressed dump failed its test as it was written ($bns_compression): $(tail -n 1 \"$bns_rc.test\")\" ;;\n\
         *) echo \"{MARKER}error=the dump could not be written whole (tee exited with status $(tail -n 1 \"$bns_rectmp\" | cut -d ' ' -f 2))\" ;;\n\
         esac\n\
         exit 1\n\
         fi\n"
    ));
    s.push_str("sync \"$bns_tmp\" 2>/dev/null &\n");
    // While the fsync runs: the hash, into the record's temporary file (empty after the checks above), the size,
    // into the status file (read above), and the first-byte check.
    s.push_str(SHA256_FN);
    s.push_str("bns_sha256 < \"$bns_tmp\" > \"$bns_rectmp\" 2>/dev/null &\nbns_hashing=$!\n");
    s.push_str("wc -c < \"$bns_tmp\" > \"$bns_rc\" 2>/dev/null &\n");
    s.push_str(
        "bns_first=$(bns_decompress < \"$bns_tmp\" 2>/dev/null | dd bs=1 count=1 2>/dev/null | wc -c)\n",
    );
    s.push_str(&format!(
        "if [ \"$bns_first\" -eq 0 ]; then wait; echo '{MARKER}error=empty dump'; exit 1; fi\n"
    ));
    // The new dump replaces the old one from here on. The old record goes before the rename (here, beside the
    // fsync): a record never names another dump than the one beside it.
    s.push_str("rm -f \"$bns_record\" &\n");
    s.push_str("bns_sum=\nif wait \"$bns_hashing\"; then read -r bns_sum < \"$bns_rectmp\" || bns_sum=; fi\n");
    // The fsync and the removal (and the version asked at the start) must be done before the rename.
    s.push_str("wait\n");
    s.push_str("bns_size=\nread -r bns_size < \"$bns_rc\" || bns_size=\n");
    s.push_str("mv -f \"$bns_tmp\" \"$bns_dump\"\n");
    s.push_str(&format!(
        "if [ -n \"$bns_sum\" ]; then printf '%s  %s\\n' \"${{bns_sum%% *}}\" \"${{bns_dump##*/}}\" > \"$bns_rectmp\" && mv -f \"$bns_rectmp\" \"$bns_record\" && echo \"{MARKER}sha256=${{bns_sum%% *}}\"; fi\n"
    ));
    // The renames are made durable while `df` reads what the dump left free.
    s.push_str("sync \"$bns_dir\" 2>/dev/null &\nbns_syncing=$!\n");
    s.push_str(READ_DF);
    s.push_str("wait \"$bns_syncing\" || true\n");
    s.push_str(&format!("echo \"{MARKER}size=$bns_size\"\n"));
    s.push_str(&format!("echo \"{MARKER}compression=$bns_compression\"\n"));
    s.push_str(&df_block());
    // Explicit: the exec's stdin may stay open after the script, and `sh -s` would wait for more.
    s.push_str("exit 0\n");
    s
}

/// Defines `bns_sha256`: `HEX ...` of stdin, with `openssl` (which uses the CPU's SHA extensions where Debian's
/// `sha256sum` does not) or else `sha256sum`; status 127 when the container has neither.
pub const SHA256_FN: &str = "bns_sha256() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r; \
     elif command -v sha256sum >/dev/null 2>&1; then sha256sum; else return 127; fi; }\n";

/// The dump's record: `SHA256  NAME` (what `sha256sum -c` reads), written beside the dump only after its
/// compressed stream passed the format's test as it was written. A download whose bytes hash to it needs no test
/// of its own (`dbops::download`).
pub fn record_path(dump_path: &str) -> String {
    format!("{dump_path}.sha256")
}

/// Lines that fail the script with a clear message when a `${NAME}` reference in `values` names a variable the
/// container does not have (instead of the shell's terse "parameter not set").
pub fn env_guard<'v>(values: impl IntoIterator<Item = &'v str>) -> String {
    let mut names: Vec<&str> = values
        .into_iter()
        .flat_map(super::quote::env_refs)
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut s = String::new();
    for name in names {
        let _ = writeln!(
            s,
            "[ -n \"${{{name}+set}}\" ] || {{ echo '{MARKER}error=environment variable {name} is not set in the container'; exit 1; }}"
        );
    }
    s
}

/// Lines that print the previous dump (if any) as `previous_dump=SIZE MTIME`, in the background (one short line,
/// written at once, like the tool's version): the script waits for it before the new dump replaces the old one.
pub fn previous_dump_report(dump_path: &str) -> String {
    format!(
        "bns_dump={}\nif [ -f \"$bns_dump\" ]; then echo \"{MARKER}previous_dump=$(wc -c < \"$bns_dump\") bytes, modified $(date -r \"$bns_dump\" '+%Y-%m-%dT%H:%M:%S%z' 2>/dev/null || echo unknown)\" & else echo '{MARKER}previous_dump=none'; fi\n",
        quote(dump_path)
    )
}

/// A script that kills the process tree recorded in the pid file, then its process group (only when that group
/// is neither the container's init group nor our own), waits up to 5 s, SIGKILLs survivors, and removes the
/// run's partial file and pid file.
pub fn kill_script(files: &RunFiles) -> String {
    let mut s = String::from("set -u\n");
    s.push_str(PGID_FN);
    let _ = writeln!(s, "bns_pidfile={}", quote(&files.pid_file));
    s.push_str(
        r#"bns_children() {
  bns_parent=$1
  for bns_stat in /proc/[0-9]*/stat; do
    bns_line=
    { read -r bns_line < "$bns_stat"; } 2>/dev/null || continue
    bns_rest=${bns_line##*) }
    set -- $bns_rest
    if [ "${2:-}" = "$bns_parent" ]; then bns_p=${bns_stat#/proc/}; echo "${bns_p%/stat}"; fi
  done
}
bns_tree() { echo "$1"; for bns_c in $(bns_children "$1"); do bns_tree "$bns_c"; done; }
bns_victims=
if { read -r bns_pid bns_group < "$bns_pidfile"; } 2>/dev/null; then
  bns_victims=$(bns_tree "$bns_pid")
  kill -TERM $bns_victims 2>/dev/null || true
  bns_self=$(bns_pgid $$)
  bns_init=$(bns_pgid 1)
  if [ "${bns_group:-0}" -gt 1 ] && [ "$bns_group" != "$bns_self" ] && [ "$bns_group" != "$bns_init" ]; then
    kill -TERM -"$bns_group" 2>/dev/null || true
  fi
  for bns_i in 1 2 3 4 5; do
    bns_alive=
    for bns_v in $bns_victims; do kill -0 "$bns_v" 2>/dev/null && bns_alive="$bns_alive $bns_v"; done
    [ -z "$bns_alive" ] && break
    sleep 1
  done
  [ -n "${bns_alive:-}" ] && kill -KILL $bns_alive 2>/dev/null
else
  echo 'backup-ns: pidfile=missing'
fi
"#,
    );
    if let Some(partial) = &files.partial {
        let _ = writeln!(
            s,
            "rm -f {} {} {} {}",
            quote(partial),
            quote(&format!("{partial}.rc")),
            quote(&format!("{partial}.rc.test")),
            quote(&format!("{partial}.sha256"))
        );
    }
    s.push_str("rm -f \"$bns_pidfile\"\n");
    s.push_str(&format!(
        "echo \"{MARKER}killed=$(echo $bns_victims)\"\nexit 0\n"
    ));
    s
}

/// What a generated script reported: its `KEY=VALUE` facts and its `df` blocks, in order (a dump hook's
/// script reports one before the dump, in its check, and one after).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptOutput {
    pub facts: Vec<(String, String)>,
    pub df: Vec<String>,
}

impl ScriptOutput {
    /// Reads the marker lines out of a script's stdout; every other line is ignored.
    pub fn parse(stdout: &str) -> ScriptOutput {
        let mut out = ScriptOutput::default();
        let mut df: Option<String> = None;
        for line in stdout.lines() {
            if let Some(rest) = line.strip_prefix(MARKER) {
                match rest {
                    "df-begin" => df = Some(String::new()),
                    "df-end" => out.df.extend(df.take()),
                    _ => {
                        if let Some((key, value)) = rest.split_once('=') {
                            out.facts.push((key.to_string(), value.trim().to_string()));
                        }
                    }
                }
            } else if let Some(block) = df.as_mut() {
                block.push_str(line);
                block.push('\n');
            }
        }
        out
    }

    /// Every value reported for `key`, in order (e.g. all `warning`s).
    pub fn all(&self, key: &str) -> Vec<String> {
        self.facts
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The last value reported for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.facts
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Usage of the filesystem holding a directory, as `df -P -k` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DfUsage {
    pub total_kib: u64,
    pub used_kib: u64,
    pub available_kib: u64,
    /// df's own "Capacity" column: used / (used + available), rounded up.
    pub used_percent: u8,
}

/// Why `df -P` output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected `df -P` output: {0}")]
pub struct DfParseError(pub String);

/// Parses `df -P -k DIR` output. The data line is read from the right of the filesystem name: the first
/// `NN%` field is Capacity and the three numbers before it are size, used and available, so filesystem names
/// and mount points with spaces do not confuse it. Long names that POSIX mode still wraps are joined.
pub fn parse_df(output: &str) -> Result<DfUsage, DfParseError> {
    let mut lines = output.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .ok_or_else(|| DfParseError("no output".into()))?;
    if !header.contains('%') && !header.to_ascii_lowercase().contains("capacity") {
        return Err(DfParseError(format!("no header line, got `{header}`")));
    }
    let data: Vec<&str> = lines.flat_map(str::split_whitespace).collect();
    let pct_index = data
        .iter()
        .position(|f| {
            f.strip_suffix('%')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .ok_or_else(|| DfParseError("no capacity column".into()))?;
    if pct_index < 3 {
        return Err(DfParseError("too few columns before capacity".into()));
    }
    let number = |i: usize| {
        data[i]
            .parse::<u64>()
            .map_err(|_| DfParseError(format!("`{}` is not a number", data[i])))
    };
    let used_percent = data[pct_index]
        .trim_end_matches('%')
        .parse::<u8>()
        .map_err(|_| DfParseError(format!("`{}` is not a percentage", data[pct_index])))?;
    Ok(DfUsage {
        total_kib: number(pct_index - 3)?,
        used_kib: number(pct_index - 2)?,
        available_kib: number(pct_index - 1)?,
        used_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_posix_output_parses() {
        let out = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n\
                   /dev/sda1        102400000  50000000  52400000      49% /var/lib/postgresql\n";
        assert_eq!(
            parse_df(out),
            Ok(DfUsage {
                total_kib: 102_400_000,
                used_kib: 50_000_000,
                available_kib: 52_400_000,
                used_percent: 49
            })
        );
    }

    #[test]
    fn df_with_spaces_in_names_and_wrapped_lines_parses() {
        let out = "Filesystem 1024-blocks Used Available Capacity Mounted on\n\
                   my volume:/exports/a very long name\n   100 91 9 91% /mnt/my data\n";
        let usage = parse_df(out).expect("parses");
        assert_eq!(usage.used_percent, 91);
        assert_eq!(usage.available_kib, 9);
    }

    #[test]
    fn df_garbage_is_an_error_not_a_guess() {
        assert!(parse_df("").is_err());
        assert!(parse_df("df: /nope: No such file or directory\n").is_err());
        assert!(
            parse_df("Filesystem 1024-blocks Used Available Capacity Mounted on\nx 1 2 %\n")
                .is_err()
        );
    }

    #[test]
    fn script_output_reads_facts_and_df_block() {
        let out = "noise\nbackup-ns: size=  42\nbackup-ns: tool_version=pg_dump (PostgreSQL) 15.2\n\
                   backup-ns: df-begin\nFilesystem 1024-blocks Used Available Capacity Mounted on\n\
                   /dev/x 10 5 5 50% /\nbackup-ns: df-end\n";
        let parsed = ScriptOutput::parse(out);
        assert_eq!(parsed.get("size"), Some("42"));
        assert_eq!(
            parsed.get("tool_version"),
            Some("pg_dump (PostgreSQL) 15.2")
        );
        assert_eq!(parse_df(&parsed.df[0]).unwrap().used_percent, 50);
    }

    #[test]
    fn a_run_script_gates_then_dumps_and_asks_select_1_only_when_the_dump_fails() {
        use crate::vocab::hook::{MysqlHook, PostgresHook};
        let workload = || "statefulset/db".parse().expect("a workload");
        let files = RunFiles::for_dump("/d/x.gz", "t");
        let engines: [(&dyn DumpScripts, &str, &str); 2] = [
            (
                &PostgresHook::new(workload()),
                "pg_dump --format",
                "-c 'SELECT 1'",
            ),
            (
                &MysqlHook::new(workload()),
                "--single-transaction",
                "--execute='SELECT 1'",
            ),
        ];
        for (hook, dump, select_one) in engines {
            let run = hook.run_script(&files);
            let at = |needle: &str| {
                run.find(needle)
                    .unwrap_or_else(|| panic!("{needle}: {run}"))
            };
            let (gate, dumps) = (at("checked=yes"), at(dump));
            let (failed, select) = (at("if [ \"$bns_status\" != 0 ]"), at(select_one));
            assert!(gate < dumps && dumps < failed && failed < select, "{run}");
            assert_eq!(run.matches(select_one).count(), 1, "{run}");
            let compressors = |script: &str| script.matches("bns_compress() {").count();
            let check = hook.check_script(&files);
            assert_eq!(compressors(&run), compressors(&check), "{run}");
            let select = check
                .find(select_one)
                .expect("the dry run tries the connection");
            assert!(select < check.find("checked=yes").expect("gate"), "{check}");
            assert!(
                !check.contains(dump) && !check.contains(".partial"),
                "{check}"
            );
        }
    }

    #[test]
    fn run_files_live_beside_the_dump() {
        let files = RunFiles::for_dump("/var/lib/postgresql/data/dump.sql.gz", "abc");
        assert_eq!(
            files.partial.as_deref(),
            Some("/var/lib/postgresql/data/.dump.sql.gz.backup-ns-abc.partial")
        );
        assert_eq!(split_path("/dump.gz"), ("/", "dump.gz"));
    }
}
