//! Runs a command with its stderr on a pseudo-terminal, as an operator's shell would, to see the
//! progress bars a terminal gets (and a pipe does not).

use std::io::Read;
use std::os::fd::FromRawFd;
use std::process::{Command, ExitStatus, Stdio};

/// What a command printed: stdout through a pipe, stderr as the terminal showed it.
pub struct PtyOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (a pipe).
    pub stdout: String,
    /// Everything written to the terminal (standard error), escape sequences included.
    pub terminal: String,
}

/// Runs `cmd` with stderr on a new 120x40 pseudo-terminal (stdin empty, stdout a pipe).
pub fn run_on_pty(cmd: &mut Command) -> PtyOutput {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors into the given integers; the other pointers
    // may be null (no name wanted) or point to a valid winsize.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned by nothing else.
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("spawn on the pty");
    // The Command holds its copy of the terminal's descriptor until told otherwise: replace it,
    // so the master sees the end once the child exits.
    cmd.stderr(Stdio::null());
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break, // EIO once the last writer is gone
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        seen
    });
    let out = child.wait_with_output().expect("wait");
    let terminal = reader.join().expect("pty reader");
    PtyOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        terminal: String::from_utf8_lossy(&terminal).into_owned(),
    }
}
