//! The engine's job store on disk, so that jobs survive a restart: one folder per job with its
//! record (`job.json`, replaced atomically on every status change), its task list (`tasks.jsonl`,
//! written as the manifest is read and committed by a rename) and its results (`results.jsonl`,
//! one line appended per finished task, so a resumed job skips what is done). Task lists and
//! results are streamed from disk, never held whole: the engine's memory does not grow with the
//! number of tasks but for one bit per task (which are done).

use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use batch_contract::job::CreateJob;

/// A job as the engine keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// UUID.
    pub id: String,
    /// The account from `x-amz-account-id`.
    pub account: String,
    /// The request as received (token included).
    pub request: CreateJob,
    /// The request without its token, to tell a retry from a reuse.
    pub fingerprint: String,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// Priority (UpdateJobPriority changes it).
    pub priority: i64,
    /// Why the status last changed.
    pub status_update_reason: Option<String>,
    /// `(FailureCode, FailureReason)`.
    pub failure_reasons: Vec<(String, String)>,
    /// RFC 3339.
    pub created: String,
    /// When it reached a terminal state.
    pub terminated: Option<String>,
    /// When it was suspended for confirmation.
    pub suspended: Option<String>,
    /// When it became Active (for the active timer).
    pub active_since: Option<String>,
    /// Tasks, once the manifest is read.
    pub total: Option<u64>,
    /// `(object ARN, ETag)` of the generated manifest.
    pub generated_manifest: Option<(String, String)>,
    /// Set while the completion report could not be written: the status the job gets once it
    /// is (a job is never Complete without its report; a restarted engine tries again).
    #[serde(default)]
    pub report_pending: Option<JobStatus>,
    /// Job tags (`Tags` on CreateJob, PutJobTagging), in order.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// The statuses of a Batch Operations job, spelled as the API spells them (and as the store
/// keeps them on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    /// Created, not yet looked at.
    New,
    /// Reading the manifest.
    Preparing,
    /// Waiting for confirmation.
    Suspended,
    /// About to run.
    Ready,
    /// Running tasks.
    Active,
    /// Cancel requested; in-flight tasks finishing.
    Cancelling,
    /// Cancelled.
    Cancelled,
    /// The failure rule tripped; in-flight tasks finishing.
    Failing,
    /// Failed.
    Failed,
    /// Every task ran.
    Complete,
}

impl JobStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::New => "New",
            JobStatus::Preparing => "Preparing",
            JobStatus::Suspended => "Suspended",
            JobStatus::Ready => "Ready",
            JobStatus::Active => "Active",
            JobStatus::Cancelling => "Cancelling",
            JobStatus::Cancelled => "Cancelled",
            JobStatus::Failing => "Failing",
            JobStatus::Failed => "Failed",
            JobStatus::Complete => "Complete",
        }
    }

    /// Complete, Failed or Cancelled: nothing more happens.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Complete | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object of a job, as the manifest names it (key still URL-encoded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Bucket name.
    pub bucket: String,
    /// Key exactly as in the manifest.
    pub key: String,
    /// Version, when the manifest gives one.
    pub version: Option<String>,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutcome {
    /// Position in the task list.
    pub index: usize,
    /// The task it ended (so the report is written from the results alone).
    pub task: Task,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// HTTP status of the report row.
    pub http: u16,
    /// Error code of the report row (empty when succeeded).
    pub code: String,
    /// The handler's result string, or why the invocation failed.
    pub message: String,
    /// Invocations it took.
    pub attempts: u32,
}

/// The folder that holds every job.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

fn io_context(e: std::io::Error, what: &str, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

impl Store {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> std::io::Result<Store> {
        std::fs::create_dir_all(root.join("jobs")).map_err(|e| io_context(e, "creating", root))?;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join("jobs").join(id)
    }

    /// Every job in the store.
    pub fn load_all(&self) -> std::io::Result<Vec<JobRecord>> {
        let mut jobs = Vec::new();
        let jobs_dir = self.root.join("jobs");
        for entry in
            std::fs::read_dir(&jobs_dir).map_err(|e| io_context(e, "reading", &jobs_dir))?
        {
            let path = entry?.path().join("job.json");
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let job: JobRecord = serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            jobs.push(job);
        }
        jobs.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(jobs)
    }

    /// Writes a job's record atomically.
    pub fn save(&self, job: &JobRecord) -> std::io::Result<()> {
        let dir = self.dir(&job.id);
        std::fs::create_dir_all(&dir).map_err(|e| io_context(e, "creating", &dir))?;
        let tmp = dir.join("job.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(job).map_err(std::io::Error::other)?,
        )
        .map_err(|e| io_context(e, "writing", &tmp))?;
        std::fs::rename(&tmp, dir.join("job.json")).map_err(|e| io_context(e, "renaming", &tmp))
    }

    /// Starts a job's task list, written as the manifest is read; [`TaskWriter::commit`] makes
    /// it the job's.
    pub fn task_writer(&self, id: &str) -> std::io::Result<TaskWriter> {
        let dir = self.dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| io_context(e, "creating", &dir))?;
        let tmp = dir.join("tasks.jsonl.tmp");
        let file = std::fs::File::create(&tmp).map_err(|e| io_context(e, "creating", &tmp))?;
        Ok(TaskWriter {
            w: std::io::BufWriter::new(file),
            dest: dir.join("tasks.jsonl"),
            tmp,
            count: 0,
        })
    }

    /// A scratch file in the job's folder (downloaded manifests, report parts).
    pub fn scratch(&self, id: &str, name: &str) -> PathBuf {
        self.dir(id).join(name)
    }

    /// A job's tasks in manifest order, streamed from disk; `None` before the manifest is read.
    pub fn tasks(&self, id: &str) -> std::io::Result<Option<Lines<Task>>> {
        Lines::open(&self.dir(id).join("tasks.jsonl"), false)
    }

    /// Appends a finished task; one write, so a crash leaves whole lines only (and a torn last
    /// line, from a crash inside the write, is cut off by [`Store::repair_outcomes`]).
    pub fn append_outcome(&self, id: &str, outcome: &TaskOutcome) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(outcome).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let path = self.dir(id).join("results.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_context(e, "opening", &path))?;
        f.write_all(&line)
    }

    /// Cuts a torn last line off a job's results, so the next append starts a line of its own.
    pub fn repair_outcomes(&self, id: &str) -> std::io::Result<()> {
        let path = self.dir(id).join("results.jsonl");
        let mut f = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_context(e, "opening", &path)),
        };
        let len = f.metadata()?.len();
        if len == 0 {
            return Ok(());
        }
        // Walk back from the end in blocks to the last newline.
        let mut end = len;
        let mut buf = vec![0u8; 4096];
        loop {
            let start = end.saturating_sub(buf.len() as u64);
            let n = (end - start) as usize;
            f.seek(std::io::SeekFrom::Start(start))?;
            std::io::Read::read_exact(&mut f, &mut buf[..n])?;
            if let Some(p) = buf[..n].iter().rposition(|&b| b == b'\n') {
                let keep = start + p as u64 + 1;
                if keep != len {
                    tracing::warn!(
                        job = id,
                        torn = len - keep,
                        "cutting a torn last result line"
                    );
                    f.set_len(keep)?;
                }
                return Ok(());
            }
            if start == 0 {
                tracing::warn!(job = id, torn = len, "cutting a torn only result line");
                return f.set_len(0);
            }
            end = start;
        }
    }

    /// The finished tasks of a job in the order they finished, streamed from disk (lines that do
    /// not parse are skipped: a torn line is a task not finished).
    pub fn outcomes(&self, id: &str) -> std::io::Result<Lines<TaskOutcome>> {
        Ok(Lines::open(&self.dir(id).join("results.jsonl"), true)?.unwrap_or_else(Lines::empty))
    }

    /// Which tasks of a job are done, and how many succeeded and failed (each task counted once).
    pub fn progress(&self, id: &str) -> std::io::Result<Progress> {
        let mut p = Progress::default();
        for o in self.outcomes(id)? {
            p.record(&o?);
        }
        Ok(p)
    }
}

/// A job's task list being written.
pub struct TaskWriter {
    w: std::io::BufWriter<std::fs::File>,
    tmp: PathBuf,
    dest: PathBuf,
    count: u64,
}

impl TaskWriter {
    /// Adds the next task.
    pub fn push(&mut self, t: &Task) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.w, t).map_err(std::io::Error::other)?;
        self.w.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    /// Tasks so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Syncs and renames the list into place; returns the task count.
    pub fn commit(self) -> std::io::Result<u64> {
        self.w
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
            .map_err(|e| io_context(e, "syncing", &self.tmp))?;
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| io_context(e, "renaming", &self.tmp))?;
        Ok(self.count)
    }
}

/// JSON lines read one at a time from a store file.
pub struct Lines<T> {
    reader: Option<std::io::BufReader<std::fs::File>>,
    path: PathBuf,
    skip_bad: bool,
    line: String,
    _t: std::marker::PhantomData<T>,
}

impl<T> Lines<T> {
    fn open(path: &Path, skip_bad: bool) -> std::io::Result<Option<Lines<T>>> {
        match std::fs::File::open(path) {
            Ok(f) => Ok(Some(Lines {
                reader: Some(std::io::BufReader::new(f)),
                path: path.to_path_buf(),
                skip_bad,
                line: String::new(),
                _t: std::marker::PhantomData,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_context(e, "opening", path)),
        }
    }

    fn empty() -> Lines<T> {
        Lines {
            reader: None,
            path: PathBuf::new(),
            skip_bad: true,
            line: String::new(),
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: serde::de::DeserializeOwned> Iterator for Lines<T> {
    type Item = std::io::Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        let reader = self.reader.as_mut()?;
        loop {
            self.line.clear();
            match reader.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(io_context(e, "reading", &self.path))),
            }
            match serde_json::from_str::<T>(self.line.trim_end()) {
                Ok(v) => return Some(Ok(v)),
                Err(_) if self.skip_bad => continue,
                Err(e) => {
                    return Some(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", self.path.display()),
                    )));
                }
            }
        }
    }
}

/// Which tasks are done (one bit each) and how they ended.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    done: Vec<u64>,
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Tasks that failed.
    pub failed: u64,
}

impl Progress {
    /// Whether task `index` has a result.
    pub fn contains(&self, index: usize) -> bool {
        self.done
            .get(index / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    /// Marks a task done; false (and nothing counted) if it already was.
    pub fn record(&mut self, o: &TaskOutcome) -> bool {
        let (word, bit) = (o.index / 64, 1u64 << (o.index % 64));
        if self.done.len() <= word {
            self.done.resize(word + 1, 0);
        }
        if self.done[word] & bit != 0 {
            return false;
        }
        self.done[word] |= bit;
        if o.succeeded {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(index: usize, succeeded: bool) -> TaskOutcome {
        TaskOutcome {
            index,
            task: Task {
                bucket: "b".into(),
                key: format!("k{index}"),
                version: None,
            },
            succeeded,
            http: 200,
            code: String::new(),
            message: String::new(),
            attempts: 1,
        }
    }

    #[test]
    fn a_torn_last_result_line_is_cut_and_the_next_append_starts_a_line() {
        let root = std::env::temp_dir().join(format!("store-torn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(&root).unwrap();
        let mut w = store.task_writer("j").unwrap();
        for i in 0..3 {
            w.push(&outcome(i, true).task).unwrap();
        }
        assert_eq!(w.commit().unwrap(), 3);
        store.append_outcome("j", &outcome(0, true)).unwrap();
        // A crash inside the second write leaves half a line.
        let path = root.join("jobs/j/results.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(br#"{"index":1,"task":{"buck"#).unwrap();
        store.repair_outcomes("j").unwrap();
        store.append_outcome("j", &outcome(2, false)).unwrap();
        store.append_outcome("j", &outcome(2, false)).unwrap();
        let p = store.progress("j").unwrap();
        assert!(p.contains(0) && !p.contains(1) && p.contains(2));
        assert_eq!((p.succeeded, p.failed), (1, 1), "a task counts once");
        let tasks: Vec<Task> = store
            .tasks("j")
            .unwrap()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(tasks.len(), 3);
        assert_eq!(tasks[2].key, "k2");
        assert!(store.tasks("other").unwrap().is_none());
        let _ = std::fs::remove_dir_all(&root);
    }
}
