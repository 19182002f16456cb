//! The S3 Control job calls the engine answers (CreateJob, DescribeJob, ListJobs,
//! UpdateJobStatus, UpdateJobPriority) and the job descriptors they return.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use batch_contract::job::CreateJob;

use super::runner::finish;
use super::store::{JobRecord, JobStatus};
use super::{ApiError, Engine, Live, now, xml};

impl Engine {
    /// CreateJob.
    pub async fn create(&self, account: &str, body: &str) -> Result<String, ApiError> {
        let bad = |m: String| ApiError::new(400, "BadRequestException", m);
        let (root, mut members) = xml::parse(body).map_err(bad)?;
        if root != "CreateJobRequest" {
            return Err(bad(format!("expected CreateJobRequest, got {root}")));
        }
        if let Some(op) = members["Operation"].as_object()
            && let Some(other) = op.keys().find(|k| *k != "LambdaInvoke")
        {
            return Err(bad(format!(
                "operation {other} is not supported by the local engine; only LambdaInvoke"
            )));
        }
        let tags = match members.as_object_mut().and_then(|m| m.remove("Tags")) {
            Some(t) => parse_tags(&t).map_err(|e| ApiError::new(400, e.0, e.1))?,
            None => Vec::new(),
        };
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
        // A manifest that is missing, unreadable, changed (another ETag) or malformed does not
        // fail CreateJob: as on AWS, the job is created and fails while Preparing, with the
        // reason in FailureReasons. Only the request's own shape is checked here.
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
            tags,
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

    /// GetJobTagging's members.
    pub fn tags(&self, account: &str, id: &str) -> Result<Value, ApiError> {
        self.with_job(
            account,
            id,
            |l| json!({"Tags": tag_members(&l.record.tags)}),
        )
    }

    /// PutJobTagging: replaces the job's tags with the request's (`PutJobTaggingRequest`).
    pub fn put_tags(&self, account: &str, id: &str, body: &str) -> Result<Value, ApiError> {
        let bad = |m: String| ApiError::new(400, "BadRequestException", m);
        let (root, members) = xml::parse(body).map_err(bad)?;
        if root != "PutJobTaggingRequest" {
            return Err(bad(format!("expected PutJobTaggingRequest, got {root}")));
        }
        let tags = parse_tags(&members["Tags"]).map_err(|e| ApiError::new(400, e.0, e.1))?;
        self.retag(account, id, tags)
    }

    /// DeleteJobTagging: removes every tag of the job.
    pub fn delete_tags(&self, account: &str, id: &str) -> Result<Value, ApiError> {
        self.retag(account, id, Vec::new())
    }

    fn retag(
        &self,
        account: &str,
        id: &str,
        tags: Vec<(String, String)>,
    ) -> Result<Value, ApiError> {
        self.change(account, id, |r| r.tags = tags)?;
        Ok(json!({}))
    }

    /// Changes a job's record and saves it.
    fn change(
        &self,
        account: &str,
        id: &str,
        f: impl FnOnce(&mut JobRecord),
    ) -> Result<(), ApiError> {
        let record = self.with_job(account, id, |l| {
            f(&mut l.record);
            l.record.clone()
        })?;
        self.inner
            .store
            .save(&record)
            .map_err(|e| ApiError::new(500, "InternalServiceException", e.to_string()))
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
        self.change(account, id, |r| r.priority = priority)?;
        Ok(json!({"JobId": id, "Priority": priority}))
    }
}

pub(super) fn progress(l: &Live) -> Value {
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

pub(super) fn descriptor(l: &Live, region: &str) -> Value {
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

/// Most tags a job may carry (S3 Batch Operations job tags).
pub const MAX_JOB_TAGS: usize = 50;

/// Tags from a request's `Tags` (`<member><Key/><Value/></member>` list, or absent): keys 1 to
/// 128 characters and unique, values up to 256, at most [`MAX_JOB_TAGS`], as AWS checks them.
fn parse_tags(v: &Value) -> Result<Vec<(String, String)>, (&'static str, String)> {
    let items: Vec<&Value> = match v {
        Value::Null => Vec::new(),
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        other => return Err(("BadRequestException", format!("Tags: unexpected {other}"))),
    };
    if items.len() > MAX_JOB_TAGS {
        return Err((
            "TooManyTagsException",
            format!("{} tags: a job has at most {MAX_JOB_TAGS}", items.len()),
        ));
    }
    let mut tags: Vec<(String, String)> = Vec::new();
    for t in items {
        let key = t["Key"].as_str().unwrap_or("").to_string();
        let value = t["Value"].as_str().unwrap_or("").to_string();
        if key.is_empty() || key.chars().count() > 128 {
            return Err((
                "InvalidTag",
                format!("tag key {key:?}: 1 to 128 characters"),
            ));
        }
        if value.chars().count() > 256 {
            return Err((
                "InvalidTag",
                format!("tag {key}: value longer than 256 characters"),
            ));
        }
        if tags.iter().any(|(k, _)| *k == key) {
            return Err(("InvalidTag", format!("tag key {key:?} given twice")));
        }
        tags.push((key, value));
    }
    Ok(tags)
}

fn tag_members(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}
