//! Runs an exec'd command "inside the container" on the host: a fresh mount namespace whose root is
//! an overlay of the host root, with the container's volumes bind-mounted at their container paths.
//!
//! Why an overlay: container paths such as `/var/lib/postgresql/data` usually do not exist on the
//! host, and creating mountpoints there would litter the host. Inside the child's own mount
//! namespace kube-sim mounts a private tmpfs on a per-session staging directory, builds
//! `overlay(lower=/, upper=tmpfs)` in it, re-binds every host submount (`/proc`, `/dev`, `/sys`, ...)
//! into the overlay, creates mountpoints there (they land in the tmpfs), bind-mounts each volume's
//! host directory (read-only when asked), and finally `chroot`s into the overlay. Writes to volume
//! paths therefore land in the PVC directories, writes anywhere else vanish with the session — as
//! in a real container — except under the host's `/run` (and a real `/var/run`), which is shared
//! so that database Unix sockets such as `/run/postgresql/.s.PGSQL.5432` accept connections
//! (sockets do not work through an overlay). The network namespace is the host's, so
//! `127.0.0.1:5432` reaches the local server too. The host only ever sees one empty staging
//! directory per session (under `$TMPDIR/kube-sim-exec/`), removed when the session ends.
//! Mountpoints that would have to be created inside a real host submount (say `/dev/shm/x`) are
//! refused instead of created; in the shared runtime dirs an empty host mountpoint is created (the
//! service-account token goes to `/var/run/secrets/kubernetes.io/serviceaccount`). Everything runs between fork and
//! exec, so it only uses pre-built C strings and raw syscalls. If any step fails (no root, no
//! overlayfs) the command is not run at all: running with unmapped volumes would silently write to
//! the wrong place.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use tokio::process::{Child, Command};

use super::error::ExecError;
use super::spec::Mount;

/// A prepared mount-namespace recipe for one exec session. Dropping it removes the host staging dir.
#[derive(Debug)]
pub struct Sandbox {
    staging: PathBuf,
    ops: Arc<Vec<Op>>,
    steps: Vec<String>,
}

/// One setup step, executed in the child between fork and exec.
#[derive(Debug)]
enum Op {
    UnshareMountNamespace,
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    Mkdir(CString),
    Touch(CString),
    Chroot(CString),
    Chdir(CString),
    /// New session with the pty slave (stdin) as controlling terminal; TTY sessions only.
    TakeTerminal,
}

impl Sandbox {
    /// Plan the namespace for `mounts`, with `workdir` as the starting directory.
    ///
    /// # Errors
    /// Invalid or missing mount paths, an unreadable mount table, or an uncreatable staging dir.
    pub fn prepare(mounts: &[Mount], workdir: Option<&Path>) -> Result<Self, ExecError> {
        let host_mounts = host_submounts()?;
        // One shared parent keeps the host tidy even if a killed process leaves its dir behind.
        let staging = std::env::temp_dir()
            .join("kube-sim-exec")
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&staging).map_err(|source| ExecError::CreateStaging {
            path: staging.clone(),
            source,
        })?;
        // From here on the staging dir exists; `Sandbox`'s Drop removes it on every path.
        let mut sandbox = Sandbox {
            staging,
            ops: Arc::new(Vec::new()),
            steps: Vec::new(),
        };
        let ops = sandbox.plan(&host_mounts, mounts, workdir)?;
        sandbox.steps = ops.iter().map(|(_, step)| step.clone()).collect();
        sandbox.ops = Arc::new(ops.into_iter().map(|(op, _)| op).collect());
        Ok(sandbox)
    }

    fn plan(
        &self,
        host_mounts: &[PathBuf],
        mounts: &[Mount],
        workdir: Option<&Path>,
    ) -> Result<Vec<(Op, String)>, ExecError> {
        let staging = &self.staging;
        let upper = staging.join("upper");
        let work = staging.join("work");
        let root = staging.join("root");
        let mut ops = vec![
            (Op::UnshareMountNamespace, "unshare(CLONE_NEWNS)".to_owned()),
            (
                Op::Mount {
                    source: None,
                    target: cstr(Path::new("/")),
                    fstype: None,
                    flags: libc::MS_REC | libc::MS_PRIVATE,
                    data: None,
                },
                "mount --make-rprivate /".to_owned(),
            ),
            (
                Op::Mount {
                    source: Some(cstr(Path::new("tmpfs"))),
                    target: cstr(staging),
                    fstype: Some(cstr(Path::new("tmpfs"))),
                    flags: 0,
                    data: Some(cstr(Path::new("mode=0700"))),
                },
                format!("mount -t tmpfs tmpfs {}", staging.display()),
            ),
        ];
        for dir in [&upper, &work, &root] {
            ops.push((Op::Mkdir(cstr(dir)), format!("mkdir {}", dir.display())));
        }
        let options = format!(
            "lowerdir=/,upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        ops.push((
            Op::Mount {
                source: Some(cstr(Path::new("overlay"))),
                target: cstr(&root),
                fstype: Some(cstr(Path::new("overlay"))),
                flags: 0,
                data: Some(cstr(Path::new(&options))),
            },
            format!("mount -t overlay -o {options} overlay {}", root.display()),
        ));
        for host_mount in host_mounts {
            let target = inside(&root, host_mount);
            ops.push((
                bind(host_mount, &target),
                format!(
                    "mount --rbind {} {}",
                    host_mount.display(),
                    target.display()
                ),
            ));
        }

        let mut sorted: Vec<&Mount> = mounts.iter().collect();
        // Parents before children, so `/data/sub` is mounted on top of `/data`.
        sorted.sort_by(|a, b| a.container.cmp(&b.container));
        for mount in sorted {
            ops.extend(plan_volume(&root, host_mounts, mount)?);
        }

        let workdir = workdir.unwrap_or(Path::new("/"));
        ops.extend(plan_workdir(&root, host_mounts, workdir));
        ops.push((
            Op::Chroot(cstr(&root)),
            format!("chroot {}", root.display()),
        ));
        ops.push((
            Op::Chdir(cstr(workdir)),
            format!("chdir {} (container workingDir)", workdir.display()),
        ));
        Ok(ops)
    }

    /// Spawn `command` inside the namespace. With `tty`, the child also becomes a session leader
    /// with its stdin (the pty slave) as controlling terminal; otherwise it leads a new process
    /// group. Either way the child's pid is also its process-group id.
    ///
    /// # Errors
    /// [`ExecError::MountNamespace`] naming the failed step, or [`ExecError::Spawn`].
    pub fn spawn(
        &self,
        command: &mut Command,
        program: &str,
        tty: bool,
    ) -> Result<Child, ExecError> {
        let (report_read, report_write) =
            cloexec_pipe().map_err(|source| ExecError::MountNamespace {
                step: "pipe2".into(),
                source,
            })?;
        let report_fd = report_write.as_raw_fd();
        let ops = Arc::clone(&self.ops);
        if !tty {
            command.process_group(0);
        }
        // SAFETY: the closure runs between fork and exec. It only reads pre-built data and makes
        // async-signal-safe syscalls (unshare, mount, mkdir, open, close, chroot, chdir, setsid,
        // ioctl, write); it allocates nothing.
        unsafe {
            command.pre_exec(move || run_ops(&ops, tty, report_fd));
        }
        let spawned = command.spawn();
        drop(report_write);
        let mut report = [0u8; 8];
        let reported = File::from(report_read).read(&mut report).unwrap_or(0);
        if reported == report.len() {
            let index = u32::from_le_bytes([report[0], report[1], report[2], report[3]]) as usize;
            let errno = i32::from_le_bytes([report[4], report[5], report[6], report[7]]);
            let step = self
                .steps
                .get(index)
                .cloned()
                .unwrap_or_else(|| "take controlling terminal".to_owned());
            return Err(ExecError::MountNamespace {
                step,
                source: io::Error::from_raw_os_error(errno),
            });
        }
        spawned.map_err(|source| ExecError::Spawn {
            program: program.to_owned(),
            reason: match source.kind() {
                io::ErrorKind::NotFound => "executable file not found in $PATH".to_owned(),
                io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => source.to_string(),
            },
            source,
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Only the empty host-side directory remains; the tmpfs lived in the child's namespace.
        if let Err(error) = std::fs::remove_dir(&self.staging) {
            tracing::warn!(path = %self.staging.display(), %error, "cannot remove exec staging dir");
        }
    }
}

fn plan_volume(
    root: &Path,
    host_mounts: &[PathBuf],
    mount: &Mount,
) -> Result<Vec<(Op, String)>, ExecError> {
    let container = &mount.container;
    let valid = container.is_absolute()
        && container.components().count() > 1
        && !container.components().any(|c| c == Component::ParentDir);
    if !valid {
        return Err(ExecError::InvalidContainerPath {
            path: container.clone(),
        });
    }
    let metadata = std::fs::metadata(&mount.host).map_err(|_| ExecError::HostPathMissing {
        path: mount.host.clone(),
        container: container.clone(),
    })?;
    // Resolve host symlinks on the existing prefix (e.g. /var/run -> /run): inside the overlay the
    // same symlinks exist, and the mount syscall would otherwise follow them out of the overlay.
    let resolved = resolve_existing_prefix(container);
    if !resolved.exists()
        && let Some(host_mount) = host_mounts.iter().find(|m| resolved.starts_with(m))
    {
        // The shared runtime dirs are plain host directories, and `/var/run/secrets/...` (the service-account
        // token) lands in one: an empty mountpoint there is created on the host, as a node's image would have
        // it. Kernel filesystems (`/proc`, `/dev`, ...) are never written to.
        let shared = PASSTHROUGH.iter().any(|dir| host_mount == Path::new(dir));
        let created = shared
            && if metadata.is_dir() {
                std::fs::create_dir_all(&resolved).is_ok()
            } else {
                resolved
                    .parent()
                    .is_some_and(|p| std::fs::create_dir_all(p).is_ok())
                    && File::create(&resolved).is_ok()
            };
        if !created {
            return Err(ExecError::MountpointInsideHostMount {
                container: container.clone(),
                host_mount: host_mount.clone(),
            });
        }
    }
    let target = inside(root, &resolved);
    let mut ops = Vec::new();
    let mut ancestors: Vec<&Path> = resolved
        .ancestors()
        .skip(1)
        .filter(|a| a.parent().is_some())
        .collect();
    ancestors.reverse();
    for ancestor in ancestors {
        let dir = inside(root, ancestor);
        ops.push((Op::Mkdir(cstr(&dir)), format!("mkdir {}", dir.display())));
    }
    if metadata.is_dir() {
        ops.push((
            Op::Mkdir(cstr(&target)),
            format!("mkdir {}", target.display()),
        ));
    } else {
        ops.push((
            Op::Touch(cstr(&target)),
            format!("touch {}", target.display()),
        ));
    }
    ops.push((
        bind(&mount.host, &target),
        format!(
            "mount --rbind {} {} (volume at {})",
            mount.host.display(),
            target.display(),
            container.display()
        ),
    ));
    if mount.read_only {
        ops.push((
            Op::Mount {
                source: None,
                target: cstr(&target),
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                data: None,
            },
            format!("mount -o remount,bind,ro {}", target.display()),
        ));
    }
    Ok(ops)
}

/// Like runc, create a missing `workingDir` before starting the process: inside the overlay (or in
/// a volume, if it lies in one), never inside a real host mount.
fn plan_workdir(root: &Path, host_mounts: &[PathBuf], workdir: &Path) -> Vec<(Op, String)> {
    if !workdir.is_absolute() || workdir.components().any(|c| c == Component::ParentDir) {
        return Vec::new();
    }
    let resolved = resolve_existing_prefix(workdir);
    if resolved.exists() || host_mounts.iter().any(|m| resolved.starts_with(m)) {
        return Vec::new();
    }
    let mut dirs: Vec<&Path> = resolved
        .ancestors()
        .filter(|a| a.parent().is_some())
        .collect();
    dirs.reverse();
    dirs.into_iter()
        .map(|dir| {
            let dir = inside(root, dir);
            let step = format!("mkdir {} (workingDir)", dir.display());
            (Op::Mkdir(cstr(&dir)), step)
        })
        .collect()
}

fn bind(source: &Path, target: &Path) -> Op {
    Op::Mount {
        source: Some(cstr(source)),
        target: cstr(target),
        fstype: None,
        flags: libc::MS_BIND | libc::MS_REC,
        data: None,
    }
}

/// `root` joined with absolute `path`.
fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Canonicalise the longest existing ancestor of `path` and append the rest unchanged.
fn resolve_existing_prefix(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            return rest
                .iter()
                .rev()
                .fold(canonical, |acc: PathBuf, part: &&OsStr| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Top-level mount points of the host other than `/` (nested ones come along via `--rbind`).
///
/// The host's runtime directories ([`PASSTHROUGH`]) come along too: Unix sockets are bound to the
/// inode of the real filesystem, and an overlay exposes different inodes, so `psql`/`mysql` in the
/// "container" could not reach the local database server through `/run/postgresql` otherwise.
fn host_submounts() -> Result<Vec<PathBuf>, ExecError> {
    let table =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(ExecError::ReadMountTable)?;
    let passthrough = PASSTHROUGH
        .iter()
        .map(PathBuf::from)
        .filter(|dir| std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()));
    Ok(top_level_mounts(&table, passthrough))
}

/// Host directories shared with every exec session (database sockets live there).
pub const PASSTHROUGH: [&str; 2] = ["/run", "/var/run"];

fn top_level_mounts(mountinfo: &str, extra: impl Iterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .chain(extra)
        .filter(|point| point.as_os_str() != "/")
        .collect();
    points.sort();
    points.dedup();
    let mut top: Vec<PathBuf> = Vec::new();
    for point in points {
        if !top.iter().any(|kept| point.starts_with(kept)) {
            top.push(point);
        }
    }
    top
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = field.get(i + 1..i + 4)
            && let Ok(value) = u8::from_str_radix(octal, 8)
        {
            out.push(value);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cstr(path: &Path) -> CString {
    // Paths from Rust strings and the mount table never hold NUL; replace defensively.
    let bytes: Vec<u8> = path
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|&b| if b == 0 { b'?' } else { b })
        .collect();
    CString::new(bytes).unwrap_or_default()
}

fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: pipe2 writes two fresh descriptors into the array, which we then own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Runs in the forked child: every step, or report `(step index, errno)` on the pipe and fail.
fn run_ops(ops: &[Op], tty: bool, report_fd: RawFd) -> io::Result<()> {
    let failed = |index: usize, errno: i32| {
        let mut message = [0u8; 8];
        message[..4].copy_from_slice(&u32::try_from(index).unwrap_or(u32::MAX).to_le_bytes());
        message[4..].copy_from_slice(&errno.to_le_bytes());
        // SAFETY: writing a stack buffer to a descriptor we own; async-signal-safe.
        unsafe { libc::write(report_fd, message.as_ptr().cast(), message.len()) };
        Err(io::Error::from_raw_os_error(errno))
    };
    if tty && let Err(errno) = Op::TakeTerminal.apply() {
        return failed(ops.len(), errno);
    }
    for (index, op) in ops.iter().enumerate() {
        if let Err(errno) = op.apply() {
            return failed(index, errno);
        }
    }
    Ok(())
}

impl Op {
    fn apply(&self) -> Result<(), i32> {
        fn opt(value: Option<&CString>) -> *const libc::c_char {
            value.map_or(std::ptr::null(), |v| v.as_ptr())
        }
        // SAFETY: every pointer comes from a live CString (or is null where the syscall allows it).
        let rc = unsafe {
            match self {
                Op::UnshareMountNamespace => libc::unshare(libc::CLONE_NEWNS),
                Op::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => libc::mount(
                    opt(source.as_ref()),
                    target.as_ptr(),
                    opt(fstype.as_ref()),
                    *flags,
                    opt(data.as_ref()).cast(),
                ),
                Op::Mkdir(path) => {
                    let rc = libc::mkdir(path.as_ptr(), 0o755);
                    if rc != 0 && errno() == libc::EEXIST {
                        0
                    } else {
                        rc
                    }
                }
                Op::Touch(path) => {
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOCTTY,
                        0o644,
                    );
                    if fd < 0 { fd } else { libc::close(fd) }
                }
                Op::Chroot(path) => libc::chroot(path.as_ptr()),
                Op::Chdir(path) => libc::chdir(path.as_ptr()),
                Op::TakeTerminal => {
                    if libc::setsid() < 0 {
                        -1
                    } else {
                        libc::ioctl(0, libc::TIOCSCTTY, 0)
                    }
                }
            }
        };
        if rc < 0 { Err(errno()) } else { Ok(()) }
    }
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_top_level_mount_points_are_rebound() {
        let table = "\
22 27 0:21 / /proc rw - proc proc rw
24 27 0:6 / /dev rw - devtmpfs devtmpfs rw
25 24 0:23 / /dev/shm rw - tmpfs tmpfs rw
27 1 254:0 / / rw - ext4 /dev/vda rw
28 27 0:25 / /mnt/with\\040space ro - tmpfs x ro
";
        assert_eq!(
            top_level_mounts(
                table,
                [PathBuf::from("/run"), PathBuf::from("/dev/pts")].into_iter()
            ),
            [
                PathBuf::from("/dev"),
                PathBuf::from("/mnt/with space"),
                PathBuf::from("/proc"),
                PathBuf::from("/run")
            ]
        );
    }

    #[test]
    fn relative_or_escaping_container_paths_are_refused() {
        let root = Path::new("/staging/root");
        for bad in ["data", "/", "/data/../etc"] {
            let mount = Mount {
                host: PathBuf::from("/"),
                container: PathBuf::from(bad),
                read_only: false,
            };
            assert!(
                matches!(
                    plan_volume(root, &[], &mount),
                    Err(ExecError::InvalidContainerPath { .. })
                ),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn missing_host_dirs_are_refused_before_anything_runs() {
        let mount = Mount {
            host: PathBuf::from("/nonexistent/kube-sim/pvc"),
            container: PathBuf::from("/data"),
            read_only: false,
        };
        assert!(matches!(
            plan_volume(Path::new("/r"), &[], &mount),
            Err(ExecError::HostPathMissing { .. })
        ));
    }

    #[test]
    fn new_mountpoints_inside_host_submounts_are_refused() {
        let mount = Mount {
            host: PathBuf::from("/"),
            container: PathBuf::from("/proc/kube-sim-not-there/data"),
            read_only: false,
        };
        assert!(matches!(
            plan_volume(Path::new("/r"), &[PathBuf::from("/proc")], &mount),
            Err(ExecError::MountpointInsideHostMount { .. })
        ));
    }
}
