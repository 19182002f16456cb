//! Progress bars on stderr for every step that can take more than a second: drawn only when
//! stderr is a terminal, never under `--json` (a script reading the JSON gets nothing else).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// No progress output from now on (`--json`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

fn shown() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

fn styled(pb: ProgressBar, template: &str) -> ProgressBar {
    pb.set_style(
        ProgressStyle::with_template(template)
            .expect("progress template")
            .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A spinner with a message, for a step whose size is not known (listing).
pub fn spinner(message: &str) -> ProgressBar {
    if !shown() {
        return ProgressBar::hidden();
    }
    let pb = styled(ProgressBar::new_spinner(), "{spinner} {msg} [{elapsed}]");
    pb.set_message(message.to_string());
    pb
}

/// A bar over `len` objects with the bytes so far in its message (writing, reading).
pub fn objects(len: u64, message: &str) -> ProgressBar {
    if !shown() {
        return ProgressBar::hidden();
    }
    let pb = styled(
        ProgressBar::new(len),
        "{msg} [{bar:30}] {pos}/{len} objects, {elapsed}",
    );
    pb.set_message(message.to_string());
    pb
}

/// A bar over a job's tasks; its length is set once the job knows it.
pub fn tasks() -> ProgressBar {
    if !shown() {
        return ProgressBar::hidden();
    }
    styled(
        ProgressBar::new(0),
        "{msg} [{bar:40}] {pos}/{len} tasks, {elapsed}",
    )
}
