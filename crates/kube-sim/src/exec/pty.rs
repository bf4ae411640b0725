//! Pseudo-terminals for `tty=true` sessions: the child gets the slave as stdin/stdout/stderr and
//! controlling terminal; the session reads and writes the master and applies resize messages.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A freshly opened master/slave pair.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

impl Pty {
    /// Open a pty pair with both ends close-on-exec (stdio duplication clears the flag on the
    /// child's 0/1/2).
    ///
    /// # Errors
    /// When the system has no free ptys or `/dev/ptmx` is unavailable.
    pub fn open() -> io::Result<Self> {
        let mut master: RawFd = -1;
        let mut slave: RawFd = -1;
        // SAFETY: openpty writes two new descriptors; null name/termios/winsize are allowed.
        let rc = unsafe {
            libc::openpty(
                &raw mut master,
                &raw mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors are new and owned by nobody else.
        let pty = unsafe {
            Pty {
                master: OwnedFd::from_raw_fd(master),
                slave: OwnedFd::from_raw_fd(slave),
            }
        };
        for fd in [pty.master.as_raw_fd(), pty.slave.as_raw_fd()] {
            // SAFETY: setting FD_CLOEXEC on descriptors we own.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        Ok(pty)
    }
}

/// Set the terminal size seen by the program on the slave side.
///
/// # Errors
/// When the ioctl fails (the master was closed).
pub fn resize(master: &OwnedFd, width: u16, height: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize struct from a valid pointer.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &raw const size) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
