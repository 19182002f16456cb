//! A local S3 Batch Operations engine: the S3 Control job API on 127.0.0.1, running LambdaInvoke
//! jobs the way the service does (status transitions, manifest ETag check, invocation schema 1.0
//! and 2.0, TemporaryFailure re-drives, the 50 %-after-1,000-tasks rule, completion reports), with
//! its jobs on disk so a restart resumes them. Nothing public emulates Batch Operations jobs.

pub mod api;
mod completion;
mod forward;
pub mod invoke;
mod jobs;
pub mod retry;
mod runner;
pub mod source;
pub mod store;
pub mod xml;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use invoke::Invoker;
use runner::{finish, run_job};
pub use store::JobStatus;
use store::{JobRecord, Store};

/// Failure code of a job whose completion report could not be written (yet).
pub const REPORT_WRITE_FAILED: &str = "ReportWriteFailed";
/// Report writes (each with its own retries) before a job is failed for want of its report.
const REPORT_ROUNDS: u32 = 3;

/// Tasks that must have run before the failure-rate rule applies.
pub const FAILURE_RULE_MIN_TASKS: u64 = 1000;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Job store folder.
    pub store: PathBuf,
    /// Invocations in flight across all jobs.
    pub concurrency: usize,
    /// Invocations per task before a TemporaryFailure is final.
    pub max_attempts: u32,
    /// First re-drive delay (doubles each time).
    pub backoff: Duration,
    /// Region in job ARNs.
    pub region: String,
}

impl Options {
    /// Defaults: cores × 4 in flight (the work is I/O-bound), 4 attempts, 200 ms backoff.
    pub fn new(store: PathBuf) -> Options {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Options {
            store,
            concurrency: cores * 4,
            max_attempts: 4,
            backoff: Duration::from_millis(200),
            region: "us-east-1".into(),
        }
    }
}

/// An API error in the AWS shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `NotFoundException`, `BadRequestException`, ...
    pub code: &'static str,
    /// Message.
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found(id: &str) -> ApiError {
        ApiError::new(404, "NotFoundException", format!("No such job: {id}"))
    }
}

struct Live {
    record: JobRecord,
    succeeded: u64,
    failed: u64,
    stop: Arc<AtomicBool>,
    running: bool,
}

struct Inner {
    store: Store,
    s3: aws_sdk_s3::Client,
    invoker: Arc<dyn Invoker>,
    opts: Options,
    jobs: Mutex<HashMap<String, Live>>,
    permits: Arc<tokio::sync::Semaphore>,
    runners: Mutex<Vec<tokio::task::AbortHandle>>,
    invocations: AtomicU64,
}

/// The engine; clones share it.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Engine {
    /// Opens the store and takes over its jobs (call [`Engine::resume`] to run the unfinished ones).
    pub fn open(
        opts: Options,
        s3: aws_sdk_s3::Client,
        invoker: Arc<dyn Invoker>,
    ) -> std::io::Result<Engine> {
        let store = Store::open(&opts.store)?;
        let mut jobs = HashMap::new();
        for record in store.load_all()? {
            let progress = store.progress(&record.id)?;
            let live = Live {
                succeeded: progress.succeeded,
                failed: progress.failed,
                stop: Arc::new(AtomicBool::new(matches!(
                    record.status,
                    JobStatus::Cancelling | JobStatus::Failing
                ))),
                running: false,
                record,
            };
            jobs.insert(live.record.id.clone(), live);
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                store,
                s3,
                invoker,
                permits: Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1))),
                opts,
                jobs: Mutex::new(jobs),
                runners: Mutex::new(Vec::new()),
                invocations: AtomicU64::new(0),
            }),
        })
    }

    /// Runs every job that was interrupted (not terminal, not waiting for confirmation), and
    /// writes the completion reports that could not be written before.
    pub fn resume(&self) {
        let pending: Vec<(String, JobStatus)> = {
            let jobs = self.inner.jobs.lock().expect("jobs");
            jobs.values()
                .filter_map(|l| l.record.report_pending.map(|s| (l.record.id.clone(), s)))
                .collect()
        };
        for (id, status) in pending {
            let inner = self.inner.clone();
            let handle = tokio::spawn(async move { finish(&inner, &id, status, None).await });
            self.inner
                .runners
                .lock()
                .expect("runners")
                .push(handle.abort_handle());
        }
        let ids: Vec<String> = {
            let jobs = self.inner.jobs.lock().expect("jobs");
            jobs.values()
                .filter(|l| {
                    !l.record.status.is_terminal() && l.record.status != JobStatus::Suspended
                })
                .map(|l| l.record.id.clone())
                .collect()
        };
        for id in ids {
            self.spawn(id);
        }
    }

    /// Stops every runner at once, as a crash would (finished tasks are already on disk).
    pub fn abort(&self) {
        for h in self.inner.runners.lock().expect("runners").drain(..) {
            h.abort();
        }
    }

    /// Invocations sent so far (re-drives included).
    pub fn invocations(&self) -> u64 {
        self.inner.invocations.load(Ordering::Relaxed)
    }

    fn spawn(&self, id: String) {
        {
            let mut jobs = self.inner.jobs.lock().expect("jobs");
            match jobs.get_mut(&id) {
                Some(l) if !l.running => l.running = true,
                _ => return,
            }
        }
        let inner = self.inner.clone();
        let handle = tokio::spawn(async move {
            if let Err(reason) = run_job(&inner, &id).await {
                tracing::error!(job = %id, %reason, "job failed");
                finish(
                    &inner,
                    &id,
                    JobStatus::Failed,
                    Some(("InternalError".into(), reason.to_string())),
                )
                .await;
            }
            if let Some(l) = inner.jobs.lock().expect("jobs").get_mut(&id) {
                l.running = false;
            }
        });
        self.inner
            .runners
            .lock()
            .expect("runners")
            .push(handle.abort_handle());
    }
}
