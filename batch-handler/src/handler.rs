//! One invocation: parse the event, settle the settings, run the tasks with a bound and a
//! deadline, and answer every task exactly once, whatever happens inside.

use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::outcome::Outcome;
use crate::settings::Settings;
use crate::task::{self, Context, Hooks};
use batch_contract::event::{self as invocation, Response, ResultCode, TaskEntry, TaskResult};

/// The handler a Lambda runtime (or the local engine, or `invoke`) calls once per event.
#[derive(Debug, Clone)]
pub struct Handler {
    ctx: Arc<Context>,
    base: Settings,
}

impl Handler {
    /// A handler with the function's base settings (from its environment).
    pub fn new(s3: aws_sdk_s3::Client, base: Settings) -> Self {
        Handler {
            ctx: Arc::new(Context::new(s3)),
            base,
        }
    }

    /// The same handler with fault-injection hooks (tests only).
    pub fn with_hooks(self, hooks: Hooks) -> Self {
        let ctx = Context {
            s3: self.ctx.s3.clone(),
            versioning: Default::default(),
            hooks,
        };
        Handler {
            ctx: Arc::new(ctx),
            base: self.base,
        }
    }

    /// Processes an event; tasks unfinished at `deadline` answer TemporaryFailure.
    pub async fn handle(&self, event: &Value, deadline: Option<Instant>) -> Response {
        let inv = invocation::parse(event);
        let mut response = Response::for_invocation(&inv);
        let settings = match &inv.error {
            Some(reason) => Err(format!("invalid invocation: {reason}")),
            None => self
                .base
                .with_user_arguments(&inv.user_arguments)
                .map_err(|e| e.to_string()),
        };
        let settings = match settings {
            Ok(s) => Arc::new(s),
            Err(reason) => {
                tracing::warn!(job_id = %inv.job_id, %reason, tasks = inv.tasks.len(), "invocation refused");
                response.results = inv
                    .tasks
                    .iter()
                    .map(|t| TaskResult::new(t.task_id(), ResultCode::PermanentFailure, &reason))
                    .collect();
                return response;
            }
        };
        let job_id = inv.job_id.clone();
        let concurrency = settings.concurrency;
        response.results = futures::stream::iter(inv.tasks)
            .map(|entry| {
                let ctx = self.ctx.clone();
                let settings = settings.clone();
                let job_id = job_id.clone();
                async move { run_entry(ctx, settings, entry, deadline, &job_id).await }
            })
            .buffered(concurrency)
            .collect()
            .await;
        response
    }

    /// What `handle` would do; see [`dry_run`].
    pub fn dry_run(&self, event: &Value) -> Value {
        dry_run(&self.base, event)
    }
}

/// What an invocation would do, without S3 or credentials: per task, the decoded object and settings.
pub fn dry_run(base: &Settings, event: &Value) -> Value {
    let inv = invocation::parse(event);
    let settings = match &inv.error {
        Some(reason) => Err(format!("invalid invocation: {reason}")),
        None => base
            .with_user_arguments(&inv.user_arguments)
            .map_err(|e| e.to_string()),
    };
    let tasks: Vec<Value> = inv
        .tasks
        .iter()
        .map(|entry| match (entry, &settings) {
            (_, Err(reason)) => json!({"taskId": entry.task_id(), "error": reason}),
            (TaskEntry::Invalid { task_id, reason }, _) => {
                json!({"taskId": task_id, "error": reason})
            }
            (TaskEntry::Ready(t), Ok(_)) => json!({
                "taskId": t.task_id,
                "bucket": t.bucket,
                "key": t.key,
                "rawKey": t.raw_key,
                "versionId": t.version_id,
            }),
        })
        .collect();
    json!({
        "invocationSchemaVersion": inv.raw_version,
        "invocationId": inv.invocation_id,
        "jobId": inv.job_id,
        "userArguments": inv.user_arguments,
        "settings": settings.as_ref().map(|s| s.describe()).unwrap_or(Value::Null),
        "tasks": tasks,
    })
}

async fn run_entry(
    ctx: Arc<Context>,
    settings: Arc<Settings>,
    entry: TaskEntry,
    deadline: Option<Instant>,
    job_id: &str,
) -> TaskResult {
    let task = match entry {
        TaskEntry::Invalid { task_id, reason } => {
            tracing::warn!(
                job_id,
                task_id,
                action = "permanent-failure",
                reason,
                "invalid task"
            );
            return TaskResult::new(&task_id, ResultCode::PermanentFailure, &reason);
        }
        TaskEntry::Ready(task) => task,
    };
    let started = std::time::Instant::now();
    let work = {
        let (task, job_id) = (task.clone(), job_id.to_string());
        // A task of its own: a panic in one object's processing becomes that task's failure.
        tokio::spawn(async move { task::run(&ctx, &settings, &task, &job_id).await })
    };
    let outcome = run_until(work, deadline).await;
    let ms = started.elapsed().as_millis() as u64;
    let (bytes_in, bytes_out) = match &outcome {
        Outcome::Done(s) => (s.bytes_in, s.bytes_out),
        _ => (0, 0),
    };
    let reason = match &outcome {
        Outcome::Done(s) => s.reason.clone().unwrap_or_default(),
        Outcome::Temporary(r) | Outcome::Permanent(r) => r.clone(),
    };
    tracing::info!(
        job_id,
        task_id = %task.task_id,
        bucket = %task.bucket,
        key = %task.key,
        version_id = task.version_id.as_deref().unwrap_or(""),
        action = outcome.action(),
        bytes_in,
        bytes_out,
        ms,
        reason,
        "task"
    );
    outcome.to_result(&task.task_id)
}

async fn run_until(
    mut work: tokio::task::JoinHandle<Outcome>,
    deadline: Option<Instant>,
) -> Outcome {
    let joined = match deadline {
        None => (&mut work).await,
        Some(d) => match tokio::time::timeout_at(d, &mut work).await {
            Ok(joined) => joined,
            Err(_) => {
                // Dropping the PUT mid-body aborts it: nothing partial is committed.
                work.abort();
                return Outcome::Temporary(
                    "stopped before the Lambda deadline; S3 will redrive the task (a write that completed \
                     meanwhile is recognised then as this task's)"
                        .into(),
                );
            }
        },
    };
    joined.unwrap_or_else(|e| {
        let what = if e.is_panic() {
            "panicked"
        } else {
            "was cancelled"
        };
        Outcome::Permanent(format!(
            "internal error: processing {what}; please report it"
        ))
    })
}
