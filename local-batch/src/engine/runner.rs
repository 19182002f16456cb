//! Running a job the service's way: prepare (read the manifest), wait for confirmation, run
//! the tasks with re-drives and the failure rule, and finish with the completion report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use serde_json::Value;

use batch_contract::event::{Answer, OutgoingTask, answer};
use batch_contract::job::CreateJob;

use super::invoke::InvokeError;
use super::retry::{self, EngineError};
use super::store::{JobRecord, JobStatus, Task, TaskOutcome};
use super::{
    FAILURE_RULE_MIN_TASKS, Inner, REPORT_ROUNDS, REPORT_WRITE_FAILED, completion, now, source,
};

pub(super) fn set_status(
    inner: &Inner,
    id: &str,
    status: JobStatus,
) -> Result<JobRecord, EngineError> {
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

pub(super) fn snapshot(
    inner: &Inner,
    id: &str,
) -> Result<(JobRecord, Arc<AtomicBool>), EngineError> {
    let jobs = inner.jobs.lock().expect("jobs");
    let l = jobs
        .get(id)
        .ok_or_else(|| EngineError::Vanished(id.to_string()))?;
    Ok((l.record.clone(), l.stop.clone()))
}

/// Moves a job to its terminal state, writing the completion report first.
pub(super) async fn finish(
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
    // Each round is one report write with its own retries (see `retry`); a report that still
    // cannot be written fails the job for now and is tried again when the engine restarts.
    let mut written = Ok(());
    for round in 0..REPORT_ROUNDS {
        written = completion::write(&inner.s3, &inner.store, &record).await;
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

/// The FailureCode of a job whose manifest could not be used. The S3 User Guide says a job
/// fails "due to issues with the manifest" and records a FailureCode and a FailureReason, but
/// names no codes: these say which issue (the reason says the rest).
fn manifest_failure_code(e: &EngineError, generated: bool) -> &'static str {
    match e {
        _ if generated => "ManifestGenerationFailed",
        EngineError::S3 { detail, .. }
            if detail.contains("NoSuchKey")
                || detail.contains("NotFound")
                || detail.contains("404") =>
        {
            "ManifestNotFound"
        }
        EngineError::Invalid(m) if m.contains("does not match the job's") => "ManifestETagMismatch",
        EngineError::Invalid(m) if m.contains("MD5") => "ManifestChecksumMismatch",
        EngineError::Invalid(_) => "ManifestMalformed",
        _ => "ManifestReadFailed",
    }
}

pub(super) async fn run_job(inner: &Arc<Inner>, id: &str) -> Result<(), EngineError> {
    let (record, stop) = snapshot(inner, id)?;
    if record.status == JobStatus::New {
        set_status(inner, id, JobStatus::Preparing)?;
    }
    if inner.store.tasks(id)?.is_none() {
        let mut writer = inner.store.task_writer(id)?;
        let read = {
            let mut sink = |t: Task| writer.push(&t).map_err(EngineError::from);
            if record.request.manifest.is_some() {
                let scratch = inner.store.scratch(id, "manifest.download");
                source::read_manifest(&inner.s3, &record.request, &scratch, &mut sink).await
            } else {
                source::generate(&inner.s3, &record.request, &mut sink).await
            }
        };
        if let Err(reason) = read {
            let code = manifest_failure_code(&reason, record.request.manifest.is_none());
            let reason = batch_contract::text::one_line(&reason.to_string(), 256);
            finish(inner, id, JobStatus::Failed, Some((code.into(), reason))).await;
            return Ok(());
        }
        let total = writer.commit()?;
        let generated = source::write_generated(
            &inner.s3,
            &record.request,
            id,
            inner.store.tasks(id)?.into_iter().flatten(),
            &inner.store.scratch(id, "generated.csv.gz"),
        )
        .await?;
        let mut jobs = inner.jobs.lock().expect("jobs");
        if let Some(l) = jobs.get_mut(id) {
            l.record.total = Some(total);
            l.record.generated_manifest = generated;
        }
    }
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
        run_tasks(inner, id, &record.request, &stop).await?;
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

pub(super) async fn run_tasks(
    inner: &Arc<Inner>,
    id: &str,
    request: &CreateJob,
    stop: &Arc<AtomicBool>,
) -> Result<(), EngineError> {
    // A crash inside the last append leaves half a line: cut it, so the next one starts afresh.
    inner.store.repair_outcomes(id)?;
    let done = inner.store.progress(id)?;
    // The task list streams from disk, a task at a time, as invocations free up: memory holds
    // the tasks in flight, not the job.
    let tasks = inner
        .store
        .tasks(id)?
        .ok_or_else(|| EngineError::Invalid(format!("job {id} has no task list")))?;
    let pending = tasks
        .enumerate()
        .filter(move |(i, _)| !done.contains(*i))
        .map_while(|(i, t)| match t {
            Ok(t) => Some((i, t)),
            Err(e) => {
                tracing::error!(job = %id, error = %e, "reading the task list");
                None
            }
        });
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

pub(super) async fn run_task(
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
            task: task.clone(),
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
    use serde_json::json;

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
