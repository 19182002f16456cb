//! S3 Control job calls: create, describe, list, confirm, cancel, through `aws-sdk-s3control`.
//!
//! Against a custom endpoint the SDK would send every call to `<account-id>.<host>` (its
//! endpoint rules require the account id as a host prefix, with no switch to turn that off), which
//! does not resolve for 127.0.0.1; a fixed resolver sends them to the endpoint as given.

use anyhow::{Context, bail};
use aws_sdk_s3control::Client;
use aws_sdk_s3control::config::endpoint::{Endpoint, EndpointFuture, Params, ResolveEndpoint};
use aws_sdk_s3control::types::{
    JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec,
    JobOperation, JobReport, JobReportFormat, JobReportScope, JobStatus, LambdaInvokeOperation,
    RequestedJobStatus, S3Tag,
};

use batch_contract::job::CreateJob;

/// Sends every call to one URL, without the account-id host prefix.
#[derive(Debug)]
struct FixedEndpoint(String);

impl ResolveEndpoint for FixedEndpoint {
    fn resolve_endpoint<'a>(&'a self, _params: &'a Params) -> EndpointFuture<'a> {
        EndpointFuture::ready(Ok(Endpoint::builder().url(self.0.clone()).build()))
    }
}

/// An S3 Control client; `endpoint` (a local engine, a stub) bypasses the account-id host prefix.
pub fn client(shared: &aws_config::SdkConfig, endpoint: Option<&str>) -> Client {
    let mut b = aws_sdk_s3control::config::Builder::from(shared);
    if let Some(url) = endpoint {
        b = b.endpoint_resolver(FixedEndpoint(url.to_string()));
    }
    Client::from_conf(b.interceptor(crate::aws::Reachability).build())
}

/// The token that makes re-running the same submit return the same job instead of a second one.
pub fn request_token(job: &CreateJob) -> String {
    let mut basis = job.clone();
    basis.client_request_token = None;
    basis.account_id = None;
    let text = serde_json::to_string(&basis).expect("job serialises");
    batch_contract::md5::md5_hex(text.as_bytes())
}

fn built<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("building {what}: {e}"))
}

/// Submits `job` (already validated); returns the job id.
pub async fn create(
    client: &Client,
    account_id: &str,
    job: &CreateJob,
    tags: &[(String, String)],
) -> anyhow::Result<String> {
    let li = &job.operation.lambda_invoke;
    let op = LambdaInvokeOperation::builder()
        .function_arn(&li.function_arn)
        .set_invocation_schema_version(li.invocation_schema_version.clone())
        .set_user_arguments(
            li.user_arguments
                .as_ref()
                .map(|m| m.clone().into_iter().collect()),
        )
        .build();
    let manifest = match &job.manifest {
        None => None,
        Some(m) => {
            let spec = built(
                JobManifestSpec::builder()
                    .format(JobManifestFormat::from(m.spec.format.as_str()))
                    .set_fields(m.spec.fields.as_ref().map(|f| {
                        f.iter()
                            .map(|x| JobManifestFieldName::from(x.as_str()))
                            .collect()
                    }))
                    .build(),
                "the manifest spec",
            )?;
            let location = built(
                JobManifestLocation::builder()
                    .object_arn(&m.location.object_arn)
                    .set_object_version_id(m.location.object_version_id.clone())
                    .e_tag(&m.location.etag)
                    .build(),
                "the manifest location",
            )?;
            Some(JobManifest::builder().spec(spec).location(location).build())
        }
    };
    let generator = job.manifest_generator.as_ref().map(generator).transpose()?;
    let r = &job.report;
    let report = JobReport::builder()
        .enabled(r.enabled)
        .set_bucket(r.bucket.clone())
        .set_prefix(r.prefix.clone())
        .set_format(r.format.as_deref().map(JobReportFormat::from))
        .set_report_scope(r.report_scope.as_deref().map(JobReportScope::from))
        .build();
    let tags = tags
        .iter()
        .map(|(k, v)| built(S3Tag::builder().key(k).value(v).build(), "a tag"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = client
        .create_job()
        .account_id(account_id)
        .confirmation_required(job.confirmation_required.unwrap_or(false))
        .operation(JobOperation::builder().lambda_invoke(op).build())
        .set_manifest(manifest)
        .set_manifest_generator(generator)
        .report(report)
        .priority(job.priority as i32)
        .role_arn(&job.role_arn)
        .set_description(job.description.clone())
        .client_request_token(
            job.client_request_token
                .clone()
                .unwrap_or_else(|| request_token(job)),
        )
        .set_tags((!tags.is_empty()).then_some(tags))
        .send()
        .await
        .map_err(aws_sdk_s3control::Error::from)
        .context("CreateJob")?;
    out.job_id()
        .map(str::to_string)
        .context("CreateJob returned no job id")
}

fn time(s: &Option<String>, what: &str) -> anyhow::Result<Option<aws_smithy_types::DateTime>> {
    s.as_deref()
        .map(|t| {
            aws_smithy_types::DateTime::from_str(t, aws_smithy_types::date_time::Format::DateTime)
                .map_err(|e| anyhow::anyhow!("{what} {t:?}: {e}"))
        })
        .transpose()
}

fn generator(
    g: &batch_contract::job::ManifestGenerator,
) -> anyhow::Result<aws_sdk_s3control::types::JobManifestGenerator> {
    use aws_sdk_s3control::types::{
        GeneratedManifestFormat, JobManifestGeneratorFilter, KeyNameConstraint,
        S3JobManifestGenerator, S3ManifestOutputLocation, S3StorageClass,
    };
    let g = &g.s3_job_manifest_generator;
    let output = g
        .manifest_output_location
        .as_ref()
        .map(|o| {
            built(
                S3ManifestOutputLocation::builder()
                    .bucket(&o.bucket)
                    .manifest_format(GeneratedManifestFormat::from(o.manifest_format.as_str()))
                    .set_manifest_prefix(o.manifest_prefix.clone())
                    .build(),
                "the generated manifest's location",
            )
        })
        .transpose()?;
    let filter = match &g.filter {
        None => None,
        Some(f) => Some(
            JobManifestGeneratorFilter::builder()
                .set_created_after(time(&f.created_after, "CreatedAfter")?)
                .set_created_before(time(&f.created_before, "CreatedBefore")?)
                .set_key_name_constraint(f.key_name_constraint.as_ref().map(|k| {
                    KeyNameConstraint::builder()
                        .set_match_any_prefix(k.match_any_prefix.clone())
                        .set_match_any_suffix(k.match_any_suffix.clone())
                        .build()
                }))
                .set_object_size_greater_than_bytes(f.object_size_greater_than_bytes)
                .set_object_size_less_than_bytes(f.object_size_less_than_bytes)
                .set_match_any_storage_class(
                    f.match_any_storage_class
                        .as_ref()
                        .map(|v| v.iter().map(|c| S3StorageClass::from(c.as_str())).collect()),
                )
                .build(),
        ),
    };
    let s3 = built(
        S3JobManifestGenerator::builder()
            .source_bucket(&g.source_bucket)
            .enable_manifest_output(g.enable_manifest_output)
            .set_manifest_output_location(output)
            .set_filter(filter)
            .build(),
        "the manifest generator",
    )?;
    Ok(aws_sdk_s3control::types::JobManifestGenerator::S3JobManifestGenerator(s3))
}

/// Progress as the service reports it; `None` fields are unknown (not zero).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Tasks in the job.
    pub total: Option<i64>,
    /// Succeeded so far.
    pub succeeded: Option<i64>,
    /// Failed so far.
    pub failed: Option<i64>,
    /// Seconds active.
    pub active_seconds: Option<i64>,
}

/// What `status` shows of a job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobState {
    /// Id.
    pub job_id: String,
    /// `Active`, `Complete`, ...
    pub status: String,
    /// Progress (absent before the manifest is read).
    pub progress: Option<Progress>,
    /// `FailureCode: FailureReason` lines.
    pub failures: Vec<String>,
    /// `s3://bucket/prefix` of the completion report, when enabled.
    pub report: Option<String>,
    /// Priority.
    pub priority: Option<i32>,
    /// Description.
    pub description: Option<String>,
    /// Why the status last changed.
    pub status_update_reason: Option<String>,
    /// Job tags (GetJobTagging; empty when none or not allowed to read them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// The job's own settings (operation, role, report, priority), to submit a re-drive alike.
    #[serde(skip)]
    pub definition: Option<CreateJob>,
}

impl JobState {
    /// Whether the job has reached a terminal state.
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "Complete" | "Failed" | "Cancelled")
    }
}

/// DescribeJob.
pub async fn describe(client: &Client, account_id: &str, job_id: &str) -> anyhow::Result<JobState> {
    let out = client
        .describe_job()
        .account_id(account_id)
        .job_id(job_id)
        .send()
        .await
        .map_err(aws_sdk_s3control::Error::from)
        .with_context(|| format!("DescribeJob {job_id}"))?;
    let job = out
        .job()
        .with_context(|| format!("DescribeJob {job_id}: no job in the answer"))?;
    let progress = job.progress_summary().map(|p| Progress {
        total: p.total_number_of_tasks(),
        succeeded: p.number_of_tasks_succeeded(),
        failed: p.number_of_tasks_failed(),
        active_seconds: p.timers().and_then(|t| t.elapsed_time_in_active_seconds()),
    });
    let report = job.report().filter(|r| r.enabled()).and_then(|r| {
        let bucket = r.bucket()?.rsplit(':').next()?.to_string();
        Some(match r.prefix() {
            Some(p) => format!("s3://{bucket}/{p}"),
            None => format!("s3://{bucket}"),
        })
    });
    Ok(JobState {
        job_id: job.job_id().unwrap_or(job_id).to_string(),
        status: job
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "Unknown".into()),
        progress,
        failures: job
            .failure_reasons()
            .iter()
            .map(|f| {
                format!(
                    "{}: {}",
                    f.failure_code().unwrap_or(""),
                    f.failure_reason().unwrap_or("")
                )
            })
            .collect(),
        report,
        tags: Vec::new(),
        priority: Some(job.priority()),
        description: job.description().map(str::to_string),
        status_update_reason: job.status_update_reason().map(str::to_string),
        definition: definition(job),
    })
}

/// The settings of a described job, as a CreateJob without a manifest.
fn definition(job: &aws_sdk_s3control::types::JobDescriptor) -> Option<CreateJob> {
    let li = job.operation()?.lambda_invoke()?;
    let r = job.report();
    Some(CreateJob {
        account_id: None,
        confirmation_required: Some(job.confirmation_required().unwrap_or(false)),
        operation: batch_contract::job::Operation {
            lambda_invoke: batch_contract::job::LambdaInvoke {
                function_arn: li.function_arn()?.to_string(),
                invocation_schema_version: li.invocation_schema_version().map(str::to_string),
                user_arguments: li.user_arguments().map(|m| m.clone().into_iter().collect()),
            },
        },
        manifest: None,
        manifest_generator: None,
        report: batch_contract::job::Report {
            bucket: r.and_then(|r| r.bucket()).map(str::to_string),
            format: r.and_then(|r| r.format()).map(|f| f.as_str().to_string()),
            enabled: r.is_some_and(|r| r.enabled()),
            prefix: r.and_then(|r| r.prefix()).map(str::to_string),
            report_scope: r
                .and_then(|r| r.report_scope())
                .map(|s| s.as_str().to_string()),
        },
        priority: i64::from(job.priority()),
        role_arn: job.role_arn()?.to_string(),
        description: job.description().map(str::to_string),
        client_request_token: None,
    })
}

/// ListJobs, all pages; `statuses` filters when not empty.
pub async fn list(
    client: &Client,
    account_id: &str,
    statuses: &[String],
) -> anyhow::Result<Vec<JobState>> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_jobs()
            .account_id(account_id)
            .set_job_statuses((!statuses.is_empty()).then(|| {
                statuses
                    .iter()
                    .map(|s| JobStatus::from(s.as_str()))
                    .collect()
            }))
            .set_next_token(token)
            .send()
            .await
            .map_err(aws_sdk_s3control::Error::from)
            .context("ListJobs")?;
        for j in page.jobs() {
            out.push(JobState {
                job_id: j.job_id().unwrap_or_default().to_string(),
                status: j
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                progress: j.progress_summary().map(|p| Progress {
                    total: p.total_number_of_tasks(),
                    succeeded: p.number_of_tasks_succeeded(),
                    failed: p.number_of_tasks_failed(),
                    active_seconds: None,
                }),
                failures: Vec::new(),
                report: None,
                tags: Vec::new(),
                priority: Some(j.priority()),
                description: j.description().map(str::to_string),
                status_update_reason: None,
                definition: None,
            });
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// UpdateJobStatus to `Ready` (confirm) or `Cancelled`; returns the new status.
pub async fn update_status(
    client: &Client,
    account_id: &str,
    job_id: &str,
    to: &str,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    let requested = match to {
        "Ready" => RequestedJobStatus::Ready,
        "Cancelled" => RequestedJobStatus::Cancelled,
        other => bail!("cannot request status {other}"),
    };
    let out = client
        .update_job_status()
        .account_id(account_id)
        .job_id(job_id)
        .requested_job_status(requested)
        .set_status_update_reason(reason.map(str::to_string))
        .send()
        .await
        .map_err(aws_sdk_s3control::Error::from)
        .with_context(|| format!("UpdateJobStatus {job_id} -> {to}"))?;
    Ok(out
        .status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default())
}

/// The caller's account, from STS.
pub async fn caller_account(shared: &aws_config::SdkConfig) -> anyhow::Result<String> {
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(shared)
            .interceptor(crate::aws::Reachability)
            .build(),
    );
    let me = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(aws_sdk_sts::Error::from)
        .context("finding the account id with STS GetCallerIdentity (or give --account-id)")?;
    me.account()
        .map(str::to_string)
        .context("STS returned no account")
}

/// A job's tags (GetJobTagging). An error (no `s3:GetJobTagging`, say) gives none: tags are
/// shown where they can be read, never a reason for `status` to fail.
pub async fn tags(client: &Client, account_id: &str, job_id: &str) -> Vec<(String, String)> {
    match client
        .get_job_tagging()
        .account_id(account_id)
        .job_id(job_id)
        .send()
        .await
    {
        Ok(out) => out
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        Err(e) => {
            tracing::debug!(job = job_id, error = %aws_sdk_s3control::error::DisplayErrorContext(&e), "GetJobTagging");
            Vec::new()
        }
    }
}
