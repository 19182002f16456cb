//! The engine's job store on disk, so that jobs survive a restart: one folder per job with its
//! record (`job.json`, replaced atomically on every status change), its task list (`tasks.jsonl`,
//! written once when the manifest has been read) and its results (`results.jsonl`, one line
//! appended per finished task, so a resumed job skips what is done).

use std::collections::HashMap;
use std::io::Write;
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

    /// Records a job's task list (once, atomically).
    pub fn save_tasks(&self, id: &str, tasks: &[Task]) -> std::io::Result<()> {
        let dir = self.dir(id);
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join("tasks.jsonl.tmp");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        for t in tasks {
            serde_json::to_writer(&mut w, t).map_err(std::io::Error::other)?;
            w.write_all(b"\n")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, dir.join("tasks.jsonl"))
    }

    /// A job's task list, if the manifest has been read.
    pub fn load_tasks(&self, id: &str) -> std::io::Result<Option<Vec<Task>>> {
        let path = self.dir(id).join("tasks.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_context(e, "reading", &path)),
        };
        text.lines()
            .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
            .collect::<std::io::Result<Vec<Task>>>()
            .map(Some)
    }

    /// Appends a finished task; one write, so a crash leaves whole lines only.
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

    /// The finished tasks of a job, by index (a torn last line is ignored).
    pub fn load_outcomes(&self, id: &str) -> std::io::Result<HashMap<usize, TaskOutcome>> {
        let path = self.dir(id).join("results.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(io_context(e, "reading", &path)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<TaskOutcome>(l).ok())
            .map(|o| (o.index, o))
            .collect())
    }
}
