//! A local S3 Batch Operations engine: the S3 Control job API on 127.0.0.1, running LambdaInvoke
//! jobs the way the service does (status transitions, manifest ETag check, invocation schema 1.0
//! and 2.0, TemporaryFailure re-drives, the 50 %-after-1,000-tasks rule, completion reports), with
//! its jobs on disk so a restart resumes them. Nothing public emulates Batch Operations jobs.

pub mod api;
mod completion;
pub mod invoke;
pub mod retry;
pub mod source;
pub mod store;
pub mod xml;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use batch_contract::event::{Answer, OutgoingTask, answer};
use batch_contract::job::CreateJob;
use invoke::{InvokeError, Invoker};
use retry::EngineError;
pub use store::JobStatus;
use store::{JobRecord, Store, Task, TaskOutcome};

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
            let outcomes = store.load_outcomes(&record.id)?;
            let failed = outcomes.values().filter(|o| !o.succeeded).count() as u64;
            let live = Live {
                succeeded: outcomes.len() as u64 - failed,
                failed,
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

    /// CreateJob.
    pub async fn create(&self, account: &str, body: &str) -> Result<String, ApiError> {
        let bad = |m: String| ApiError::new(400, "BadRequestException", m);
        let (root, members) = xml::parse(body).map_err(bad)?;
        if root != "CreateJobRequest" {
            return Err(bad(format!("expected CreateJobRequest, got {root}")));
        }
        let request: CreateJob = serde_json::from_value(members)
            .map_err(|e| bad(format!("invalid CreateJobRequest: {e}")))?;
        if !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())) {
            return Err(bad(format!(
                "x-amz-account-id {account:?} is not 12 digits"
            )));
        }
        let problems = request.problems();
        if !problems.is_empty() {
            return Err(bad(problems.join("; ")));
        }
        if request.manifest.is_some() == request.manifest_generator.is_some() {
            return Err(bad("give either Manifest or ManifestGenerator".into()));
        }
        let token = request.client_request_token.clone().unwrap_or_default();
        let mut unsalted = request.clone();
        unsalted.client_request_token = None;
        let fingerprint = format!(
            "{account}:{}",
            serde_json::to_string(&unsalted).unwrap_or_default()
        );
        if !token.is_empty() {
            let jobs = self.inner.jobs.lock().expect("jobs");
            if let Some(seen) = jobs.values().find(|l| {
                l.record.account == account
                    && l.record.request.client_request_token.as_deref() == Some(token.as_str())
            }) {
                return if seen.record.fingerprint == fingerprint {
                    Ok(seen.record.id.clone())
                } else {
                    Err(ApiError::new(
                        400,
                        "IdempotencyException",
                        format!(
                            "ClientRequestToken {token} was used for job {} with different parameters",
                            seen.record.id
                        ),
                    ))
                };
            }
        }
        if let Some(m) = &request.manifest {
            let etag = source::manifest_etag(&self.inner.s3, &m.location)
                .await
                .map_err(|e| bad(e.to_string()))?;
            if etag != m.location.etag.trim_matches('"') {
                return Err(bad(format!(
                    "The ETag of the manifest {} is {etag}, not {}",
                    m.location.object_arn, m.location.etag
                )));
            }
        }
        let record = JobRecord {
            id: uuid::Uuid::new_v4().to_string(),
            account: account.to_string(),
            priority: request.priority,
            request,
            fingerprint,
            status: JobStatus::New,
            status_update_reason: None,
            failure_reasons: Vec::new(),
            created: now(),
            terminated: None,
            suspended: None,
            active_since: None,
            total: None,
            generated_manifest: None,
            report_pending: None,
        };
        self.inner
            .store
            .save(&record)
            .map_err(|e| ApiError::new(500, "InternalServiceException", e.to_string()))?;
        let id = record.id.clone();
        self.inner.jobs.lock().expect("jobs").insert(
            id.clone(),
            Live {
                record,
                succeeded: 0,
                failed: 0,
                stop: Arc::new(AtomicBool::new(false)),
                running: false,
            },
        );
        self.spawn(id.clone());
        Ok(id)
    }

    fn with_job<T>(
        &self,
        account: &str,
        id: &str,
        f: impl FnOnce(&mut Live) -> T,
    ) -> Result<T, ApiError> {
        let mut jobs = self.inner.jobs.lock().expect("jobs");
        match jobs.get_mut(id) {
            Some(l) if l.record.account == account => Ok(f(l)),
            _ => Err(ApiError::not_found(id)),
        }
    }

    /// DescribeJob's `Job` members.
    pub fn describe(&self, account: &str, id: &str) -> Result<Value, ApiError> {
        let region = self.inner.opts.region.clone();
        self.with_job(account, id, |l| descriptor(l, &region))
    }

    /// ListJobs' members: newest first, `statuses` filtering when not empty.
    pub fn list(
        &self,
        account: &str,
        statuses: &[String],
        max: usize,
        next: Option<&str>,
    ) -> Result<Value, ApiError> {
        let start: usize = match next {
            Some(t) => t
                .parse()
                .map_err(|_| ApiError::new(400, "InvalidNextTokenException", "bad NextToken"))?,
            None => 0,
        };
        let jobs = self.inner.jobs.lock().expect("jobs");
        let mut all: Vec<&Live> = jobs
            .values()
            .filter(|l| l.record.account == account)
            .filter(|l| {
                statuses.is_empty() || statuses.iter().any(|s| s == l.record.status.as_str())
            })
            .collect();
        all.sort_by(|a, b| {
            b.record
                .created
                .cmp(&a.record.created)
                .then(a.record.id.cmp(&b.record.id))
        });
        let max = if max == 0 { 1000 } else { max.min(1000) };
        let page: Vec<Value> = all
            .iter()
            .skip(start)
            .take(max)
            .map(|l| {
                json!({
                    "JobId": l.record.id,
                    "Description": l.record.request.description,
                    "Operation": "LambdaInvoke",
                    "Priority": l.record.priority,
                    "Status": l.record.status.as_str(),
                    "CreationTime": l.record.created,
                    "TerminationDate": l.record.terminated,
                    "ProgressSummary": progress(l),
                })
            })
            .collect();
        let mut out = json!({ "Jobs": page });
        if start + max < all.len() {
            out["NextToken"] = json!((start + max).to_string());
        }
        Ok(out)
    }

    /// UpdateJobStatus: `Ready` confirms a suspended job, `Cancelled` cancels.
    pub async fn update_status(
        &self,
        account: &str,
        id: &str,
        requested: &str,
        reason: Option<String>,
    ) -> Result<Value, ApiError> {
        let conflict = |status: JobStatus| {
            ApiError::new(
                400,
                "JobStatusException",
                format!("job {id} is {status}: cannot move it to {requested}"),
            )
        };
        enum Then {
            Run,
            Finish,
            Nothing,
        }
        let (then, record) = self.with_job(account, id, |l| {
            let status = l.record.status;
            use JobStatus::*;
            let then = match (requested, status) {
                ("Ready", Suspended) => {
                    l.record.status = Ready;
                    Then::Run
                }
                ("Cancelled", New | Suspended | Ready) if !l.running => {
                    l.stop.store(true, Ordering::SeqCst);
                    l.record.status = Cancelling;
                    Then::Finish
                }
                ("Cancelled", s) if !s.is_terminal() && s != Failing => {
                    l.stop.store(true, Ordering::SeqCst);
                    l.record.status = Cancelling;
                    Then::Nothing
                }
                ("Ready" | "Cancelled", _) => return Err(conflict(status)),
                _ => {
                    return Err(ApiError::new(
                        400,
                        "BadRequestException",
                        format!("RequestedJobStatus {requested:?} is not Ready or Cancelled"),
                    ));
                }
            };
            l.record.status_update_reason = reason.clone();
            Ok((then, l.record.clone()))
        })??;
        self.inner
            .store
            .save(&record)
            .map_err(|e| ApiError::new(500, "InternalServiceException", e.to_string()))?;
        match then {
            Then::Run => self.spawn(id.to_string()),
            Then::Finish => finish(&self.inner, id, JobStatus::Cancelled, None).await,
            Then::Nothing => {}
        }
        let status = self.with_job(account, id, |l| l.record.status.as_str())?;
        Ok(json!({"JobId": id, "Status": status, "StatusUpdateReason": reason}))
    }

    /// UpdateJobPriority.
    pub fn update_priority(
        &self,
        account: &str,
        id: &str,
        priority: i64,
    ) -> Result<Value, ApiError> {
        if !(0..=2_147_483_647).contains(&priority) {
            return Err(ApiError::new(
                400,
                "BadRequestException",
                format!("Priority {priority} is outside 0..2147483647"),
            ));
        }
        let record = self.with_job(account, id, |l| {
            l.record.priority = priority;
            l.record.clone()
        })?;
        self.inner
            .store
            .save(&record)
            .map_err(|e| ApiError::new(500, "InternalServiceException", e.to_string()))?;
        Ok(json!({"JobId": id, "Priority": priority}))
    }
}

fn progress(l: &Live) -> Value {
    let Some(total) = l.record.total else {
        return Value::Null;
    };
    let active = l.record.active_since.as_deref().and_then(|s| {
        let start = chrono::DateTime::parse_from_rfc3339(s).ok()?;
        let end = match l.record.terminated.as_deref() {
            Some(t) => chrono::DateTime::parse_from_rfc3339(t).ok()?,
            None => chrono::Utc::now().fixed_offset(),
        };
        Some((end - start).num_seconds().max(0))
    });
    json!({
        "TotalNumberOfTasks": total,
        "NumberOfTasksSucceeded": l.succeeded,
        "NumberOfTasksFailed": l.failed,
        "Timers": {"ElapsedTimeInActiveSeconds": active.unwrap_or(0)},
    })
}

fn descriptor(l: &Live, region: &str) -> Value {
    let r = &l.record;
    let failures: Vec<Value> = r
        .failure_reasons
        .iter()
        .map(|(c, m)| json!({"FailureCode": c, "FailureReason": m}))
        .collect();
    json!({
        "JobId": r.id,
        "ConfirmationRequired": r.request.confirmation_required.unwrap_or(false),
        "Description": r.request.description,
        "JobArn": format!("arn:aws:s3:{region}:{}:job/{}", r.account, r.id),
        "Status": r.status.as_str(),
        "Manifest": r.request.manifest,
        "Operation": r.request.operation,
        "Priority": r.priority,
        "ProgressSummary": progress(l),
        "StatusUpdateReason": r.status_update_reason,
        "FailureReasons": if failures.is_empty() { Value::Null } else { Value::Array(failures) },
        "Report": r.request.report,
        "CreationTime": r.created,
        "TerminationDate": r.terminated,
        "RoleArn": r.request.role_arn,
        "SuspendedDate": r.suspended,
        "SuspendedCause": r.suspended.as_ref().map(|_| "AwaitingConfirmation"),
        "ManifestGenerator": r.request.manifest_generator,
        "GeneratedManifestDescriptor": r.generated_manifest.as_ref().map(|(arn, etag)| json!({
            "Format": "S3InventoryReport_CSV_20211130",
            "Location": {"ObjectArn": arn, "ETag": etag},
        })),
    })
}

fn set_status(inner: &Inner, id: &str, status: JobStatus) -> Result<JobRecord, EngineError> {
    let record = {
        let mut jobs = inner.jobs.lock().expect("jobs");
        let l = jobs
            .get_mut(id)
            .ok_or_else(|| EngineError::Vanished(id.to_string()))?;
        l.record.status = status;
        match status {
            JobStatus::Suspended => l.record.suspended = Some(now()),
            JobStatus::Active if l.record.active_since.is_none() => {
                l.record.active_since = Some(now())
            }
            _ => {}
        }
        l.record.clone()
    };
    inner.store.save(&record)?;
    Ok(record)
}

fn snapshot(inner: &Inner, id: &str) -> Result<(JobRecord, Arc<AtomicBool>), EngineError> {
    let jobs = inner.jobs.lock().expect("jobs");
    let l = jobs
        .get(id)
        .ok_or_else(|| EngineError::Vanished(id.to_string()))?;
    Ok((l.record.clone(), l.stop.clone()))
}

/// Moves a job to its terminal state, writing the completion report first.
async fn finish(
    inner: &Arc<Inner>,
    id: &str,
    status: JobStatus,
    failure: Option<(String, String)>,
) {
    let record = {
        let mut jobs = inner.jobs.lock().expect("jobs");
        let Some(l) = jobs.get_mut(id) else { return };
        if let Some(f) = failure {
            l.record.failure_reasons.push(f);
        }
        l.record.clone()
    };
    let tasks = inner
        .store
        .load_tasks(id)
        .ok()
        .flatten()
        .unwrap_or_default();
    let outcomes = inner.store.load_outcomes(id).unwrap_or_default();
    // Each round is one report write with its own retries (see `retry`); a report that still
    // cannot be written fails the job for now and is tried again when the engine restarts.
    let mut written = Ok(());
    for round in 0..REPORT_ROUNDS {
        written = completion::write(&inner.s3, &record, &tasks, &outcomes).await;
        match &written {
            Ok(()) => break,
            Err(reason) => {
                tracing::warn!(job = %id, round, %reason, "completion report not written yet");
                tokio::time::sleep(retry::MAX_DELAY).await;
            }
        }
    }
    let record = {
        let mut jobs = inner.jobs.lock().expect("jobs");
        let Some(l) = jobs.get_mut(id) else { return };
        l.record
            .failure_reasons
            .retain(|(code, _)| code != REPORT_WRITE_FAILED);
        match written {
            Ok(()) => {
                l.record.status = status;
                l.record.report_pending = None;
            }
            Err(reason) => {
                tracing::error!(job = %id, %reason, "completion report not written");
                l.record.failure_reasons.push((
                    REPORT_WRITE_FAILED.into(),
                    batch_contract::text::one_line(&reason.to_string(), 1024),
                ));
                l.record.status = JobStatus::Failed;
                l.record.report_pending = Some(status);
            }
        }
        l.record.terminated = Some(now());
        l.record.clone()
    };
    if let Err(e) = inner.store.save(&record) {
        tracing::error!(job = %id, error = %e, "job record not saved");
    }
}

async fn run_job(inner: &Arc<Inner>, id: &str) -> Result<(), EngineError> {
    let (record, stop) = snapshot(inner, id)?;
    if record.status == JobStatus::New {
        set_status(inner, id, JobStatus::Preparing)?;
    }
    let tasks = match inner.store.load_tasks(id).map_err(|e| e.to_string())? {
        Some(t) => t,
        None => {
            let read = if record.request.manifest.is_some() {
                source::read_manifest(&inner.s3, &record.request).await
            } else {
                source::generate(&inner.s3, &record.request).await
            };
            let tasks = match read {
                Ok(t) => t,
                Err(reason) => {
                    let reason = batch_contract::text::one_line(&reason.to_string(), 256);
                    finish(
                        inner,
                        id,
                        JobStatus::Failed,
                        Some(("ManifestReadFailed".into(), reason)),
                    )
                    .await;
                    return Ok(());
                }
            };
            let generated = source::write_generated(&inner.s3, &record.request, id, &tasks).await?;
            inner.store.save_tasks(id, &tasks)?;
            let mut jobs = inner.jobs.lock().expect("jobs");
            if let Some(l) = jobs.get_mut(id) {
                l.record.total = Some(tasks.len() as u64);
                l.record.generated_manifest = generated;
            }
            tasks
        }
    };
    let status = snapshot(inner, id)?.0.status;
    if status == JobStatus::Preparing {
        if record.request.confirmation_required.unwrap_or(false) {
            set_status(inner, id, JobStatus::Suspended)?;
            return Ok(());
        }
        set_status(inner, id, JobStatus::Ready)?;
    }
    if !stop.load(Ordering::SeqCst) {
        set_status(inner, id, JobStatus::Active)?;
        run_tasks(inner, id, &record.request, tasks, &stop).await?;
    }
    let (record, _) = snapshot(inner, id)?;
    let end = match record.status {
        JobStatus::Cancelling => JobStatus::Cancelled,
        JobStatus::Failing => JobStatus::Failed,
        _ => JobStatus::Complete,
    };
    finish(inner, id, end, None).await;
    Ok(())
}

async fn run_tasks(
    inner: &Arc<Inner>,
    id: &str,
    request: &CreateJob,
    tasks: Vec<Task>,
    stop: &Arc<AtomicBool>,
) -> Result<(), EngineError> {
    let done = inner.store.load_outcomes(id)?;
    let pending: Vec<(usize, Task)> = tasks
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !done.contains_key(i))
        .collect();
    let request = Arc::new(request.clone());
    let concurrency = inner.opts.concurrency.max(1);
    let mut results = futures::stream::iter(pending)
        .map(|(index, task)| {
            let (inner, request, stop) = (inner.clone(), request.clone(), stop.clone());
            let id = id.to_string();
            async move { run_task(&inner, &id, &request, index, &task, &stop).await }
        })
        .buffer_unordered(concurrency);
    while let Some(outcome) = results.next().await {
        let Some(outcome) = outcome else { continue };
        inner.store.append_outcome(id, &outcome)?;
        let tripped = {
            let mut jobs = inner.jobs.lock().expect("jobs");
            let l = jobs
                .get_mut(id)
                .ok_or_else(|| EngineError::Vanished(id.to_string()))?;
            if outcome.succeeded {
                l.succeeded += 1;
            } else {
                l.failed += 1;
            }
            let run = l.succeeded + l.failed;
            let trip = run >= FAILURE_RULE_MIN_TASKS
                && l.failed * 2 > run
                && !l.stop.load(Ordering::SeqCst);
            if trip {
                l.stop.store(true, Ordering::SeqCst);
                l.record.status = JobStatus::Failing;
                l.record.failure_reasons.push((
                    "TaskFailureRateExceeded".into(),
                    format!(
                        "{} of {run} tasks failed (more than 50% after at least {FAILURE_RULE_MIN_TASKS} tasks)",
                        l.failed
                    ),
                ));
                Some(l.record.clone())
            } else {
                None
            }
        };
        if let Some(r) = tripped {
            inner.store.save(&r).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The invocation event for one task, as Batch Operations sends it.
pub fn event(request: &CreateJob, job_id: &str, task_id: &str, task: &Task) -> Value {
    let li = &request.operation.lambda_invoke;
    batch_contract::event::build(
        li.invocation_schema_version.as_deref(),
        &uuid::Uuid::new_v4().simple().to_string(),
        job_id,
        li.user_arguments.as_ref(),
        OutgoingTask {
            task_id,
            bucket: &task.bucket,
            raw_key: &task.key,
            version_id: task.version.as_deref(),
        },
    )
}

async fn run_task(
    inner: &Arc<Inner>,
    job_id: &str,
    request: &CreateJob,
    index: usize,
    task: &Task,
    stop: &AtomicBool,
) -> Option<TaskOutcome> {
    let _permit = inner.permits.acquire().await.ok()?;
    let task_id = format!("{index:08x}-{}", &job_id[..8.min(job_id.len())]);
    let arn = &request.operation.lambda_invoke.function_arn;
    let mut attempts = 0;
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        attempts += 1;
        inner.invocations.fetch_add(1, Ordering::Relaxed);
        let ev = event(request, job_id, &task_id, task);
        let answer = match inner.invoker.invoke(arn, ev).await {
            Ok(v) => answer(&v, &task_id),
            Err(e @ InvokeError::Unreachable(_)) => Answer::Temporary(e.to_string()),
            Err(e) => Answer::Permanent(e.to_string()),
        };
        let (succeeded, code, message) = match answer {
            Answer::Succeeded(m) => (true, "", m),
            Answer::Permanent(m) => (false, "PermanentFailure", m),
            Answer::Temporary(m) if attempts < inner.opts.max_attempts => {
                tracing::debug!(job = job_id, task = index, attempts, reason = %m, "re-driving");
                tokio::time::sleep(inner.opts.backoff * 2u32.pow(attempts - 1)).await;
                continue;
            }
            Answer::Temporary(m) => (false, "TemporaryFailure", m),
        };
        return Some(TaskOutcome {
            index,
            succeeded,
            http: 200,
            code: code.to_string(),
            message: batch_contract::text::one_line(&message, 1024),
            attempts,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_the_schema_the_job_asked_for() {
        let mut job: CreateJob = serde_json::from_value(json!({
            "Operation": {"LambdaInvoke": {"FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}},
            "Report": {"Enabled": false}, "Priority": 1, "RoleArn": "arn:aws:iam::123456789012:role/r"
        }))
        .unwrap();
        let task = Task {
            bucket: "b".into(),
            key: "a%3Ab.wav".into(),
            version: None,
        };
        let v1 = event(&job, "j", "t", &task);
        assert_eq!(v1["tasks"][0]["s3BucketArn"], "arn:aws:s3:::b");
        assert_eq!(v1["tasks"][0]["s3VersionId"], Value::Null);
        job.operation.lambda_invoke.invocation_schema_version = Some("2.0".into());
        job.operation.lambda_invoke.user_arguments =
            Some([("codec".to_string(), "alaw".to_string())].into());
        let v2 = event(&job, "j", "t", &task);
        assert_eq!(v2["tasks"][0]["s3Bucket"], "b");
        assert_eq!(v2["tasks"][0]["s3Key"], "a%3Ab.wav");
        assert_eq!(v2["job"]["userArguments"]["codec"], "alaw");
    }
}
