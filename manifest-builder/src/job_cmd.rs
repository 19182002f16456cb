//! `submit`, `status`, `wait`, `list`, `confirm`, `cancel`: the job's life from the operator's seat.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_s3::error::ProvideErrorMetadata;

use crate::aws::AwsOptions;
use crate::control::{self, JobState};
use crate::job::{
    self, CreateJob, LambdaInvoke, Manifest, ManifestLocation, ManifestSpec, Operation, Report,
};
use crate::location::Location;

/// Options of every job command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct JobOptions {
    /// 12-digit account that owns the job (else STS GetCallerIdentity).
    #[arg(long, global = true)]
    pub account_id: Option<String>,
    /// S3 Control endpoint (the local engine, a stub); calls go there without the account-id host prefix.
    #[arg(long, global = true)]
    pub s3control_endpoint_url: Option<String>,
}

impl JobOptions {
    async fn client_and_account(
        &self,
        aws: &AwsOptions,
    ) -> anyhow::Result<(aws_sdk_s3control::Client, String)> {
        let shared = aws.config().await;
        let account = match &self.account_id {
            Some(a) => a.clone(),
            None => control::caller_account(&shared).await?,
        };
        Ok((
            control::client(&shared, self.s3control_endpoint_url.as_deref()),
            account,
        ))
    }
}

/// Parses a `key=value` flag (user arguments, tags).
pub fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

/// Flags of `submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// CSV manifest written by `manifest` (s3://bucket/key); pinned by its current ETag.
    #[arg(long, required_unless_present_any = ["inventory", "generate"], conflicts_with_all = ["inventory", "generate"])]
    pub manifest: Option<Location>,
    /// An S3 Inventory manifest.json passed straight to the job (S3InventoryReport_CSV_20161130).
    #[arg(long, conflicts_with = "generate")]
    pub inventory: Option<Location>,
    /// Let the service list the objects (its manifest generator) instead of a manifest.
    /// Its filters differ from `manifest`'s: creation time instead of day folders, one
    /// case-sensitive suffix, no version ids, no regex.
    #[arg(long)]
    pub generate: bool,
    /// With --generate: the bucket to list.
    #[arg(long, requires = "generate")]
    pub source_bucket: Option<String>,
    /// With --generate: key prefix, e.g. connect/<alias>/CallRecordings/.
    #[arg(long, requires = "generate")]
    pub source_prefix: Option<String>,
    /// With --generate: created at least this long ago (7d, 2w), counted from today's midnight UTC.
    #[arg(long, requires = "generate")]
    pub older_than: Option<String>,
    /// With --generate: created at or after this day (YYYY-MM-DD).
    #[arg(long, requires = "generate")]
    pub created_after: Option<chrono::NaiveDate>,
    /// With --generate: created before this day (YYYY-MM-DD).
    #[arg(long, requires = "generate")]
    pub created_before: Option<chrono::NaiveDate>,
    /// With --generate: key suffix (case-sensitive on the service side).
    #[arg(long, default_value = ".wav")]
    pub suffix: String,
    /// With --generate: smallest object in bytes (see `manifest --help`).
    #[arg(long, default_value_t = crate::select::DEFAULT_MIN_SIZE)]
    pub min_size: u64,
    /// With --generate: storage classes to take (repeatable).
    #[arg(long = "generator-storage-class", default_values_t = ["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING"].map(String::from))]
    pub generator_storage_classes: Vec<String>,
    /// With --generate: keep the generated list at s3://bucket/prefix.
    #[arg(long, requires = "generate")]
    pub manifest_output: Option<Location>,
    /// The handler: arn:aws:lambda:<region>:<account>:function:<name>[:<alias or version>].
    #[arg(long)]
    pub function_arn: String,
    /// The role Batch Operations assumes: arn:aws:iam::<account>:role/<name>.
    #[arg(long)]
    pub role_arn: String,
    /// Completion report location s3://bucket/prefix (no trailing '/').
    #[arg(long)]
    pub report: Option<Location>,
    /// Report every task (all) or only failures (failed).
    #[arg(long, default_value = "all", value_parser = ["all", "failed"])]
    pub report_scope: String,
    /// Job argument for the handler (schema 2.0), repeatable: codec, downmix, storageClass, tagKey, tagValue, destBucket, destPrefix.
    #[arg(long = "user-arg", value_parser = key_value)]
    pub user_args: Vec<(String, String)>,
    /// Invocation schema version.
    #[arg(long, default_value = "2.0", value_parser = ["1.0", "2.0"])]
    pub schema_version: String,
    /// Higher runs first.
    #[arg(long, default_value_t = 10)]
    pub priority: i64,
    /// Shown in the console and `list`.
    #[arg(long)]
    pub description: Option<String>,
    /// Job tag key=value (repeatable; needs s3:PutJobTagging).
    #[arg(long = "tag", value_parser = key_value)]
    pub tags: Vec<(String, String)>,
    /// Wait in Suspended until `confirm`.
    #[arg(long)]
    pub confirmation_required: bool,
    /// Print the request, submit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What `submit` prints.
#[derive(Debug, serde::Serialize)]
pub struct Submitted {
    /// The job id (absent on a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Token: the same manifest and operation give the same job.
    pub client_request_token: String,
    /// The request.
    pub request: CreateJob,
}

async fn manifest_etag(
    s3: &aws_sdk_s3::Client,
    loc: &Location,
) -> anyhow::Result<(String, Option<String>)> {
    let Location::S3 { bucket, key } = loc else {
        bail!("{loc}: a job's manifest must be in S3 (s3://bucket/key)");
    };
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{loc}: {}",
                e.code()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string())
            )
        })
        .with_context(|| format!("reading the manifest's ETag ({loc})"))?;
    let etag = head
        .e_tag()
        .map(|e| e.trim_matches('"').to_string())
        .with_context(|| format!("{loc}: no ETag"))?;
    Ok((
        etag,
        head.version_id()
            .map(str::to_string)
            .filter(|v| v != "null"),
    ))
}

/// The ETag `manifest` recorded for `loc` in the summary beside it, if there is one.
async fn recorded_etag(s3: &aws_sdk_s3::Client, loc: &Location) -> Option<String> {
    let name = match loc {
        Location::S3 { key, .. } => key.rsplit('/').next()?.to_string(),
        Location::Local(_) => return None,
    };
    let stem = name.rsplit_once('.').map(|(s, _)| s).unwrap_or(&name);
    // A split manifest's parts share the summary of the un-numbered name.
    let base = stem
        .rsplit_once('-')
        .filter(|(_, n)| n.len() == 5 && n.bytes().all(|b| b.is_ascii_digit()))
        .map(|(b, _)| b)
        .unwrap_or(stem);
    let summary = loc
        .sibling(&format!("{base}.summary.json"))
        .read(s3)
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&summary).ok()?;
    let me = loc.to_string();
    v["manifests"]
        .as_array()?
        .iter()
        .find(|m| m["location"] == me.as_str())?["etag"]
        .as_str()
        .map(str::to_string)
}

async fn manifest_fields(s3: &aws_sdk_s3::Client, loc: &Location) -> anyhow::Result<Vec<String>> {
    let Location::S3 { bucket, key } = loc else {
        unreachable!("checked by manifest_etag")
    };
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .range("bytes=0-4095")
        .send()
        .await
        .map_err(aws_sdk_s3::Error::from)
        .with_context(|| format!("reading {loc}"))?;
    let head = out.body.collect().await?.into_bytes();
    let first = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    match first.split(',').count() {
        2 => Ok(vec!["Bucket".into(), "Key".into()]),
        3 => Ok(vec!["Bucket".into(), "Key".into(), "VersionId".into()]),
        n => bail!("{loc}: row 1 has {n} fields; a manifest row is bucket,key[,versionId]"),
    }
}

/// The manifest (CSV or inventory) pinned by its current ETag, checked against the one recorded.
async fn pinned_manifest(args: &SubmitArgs, s3: &aws_sdk_s3::Client) -> anyhow::Result<Manifest> {
    let (loc, format) = match (&args.manifest, &args.inventory) {
        (Some(m), _) => (m, job::MANIFEST_FORMATS[0]),
        (None, Some(i)) => (i, job::MANIFEST_FORMATS[1]),
        (None, None) => bail!("give --manifest, --inventory or --generate"),
    };
    let (etag, version) = manifest_etag(s3, loc).await?;
    if let Some(recorded) = recorded_etag(s3, loc).await
        && recorded != etag
    {
        bail!(
            "{loc}: the manifest changed since it was written (ETag {recorded}, now {etag}); nothing submitted"
        );
    }
    let fields = if format == job::MANIFEST_FORMATS[0] {
        Some(manifest_fields(s3, loc).await?)
    } else {
        None
    };
    Ok(Manifest {
        spec: ManifestSpec {
            format: format.to_string(),
            fields,
        },
        location: ManifestLocation {
            object_arn: loc.object_arn()?,
            object_version_id: version,
            etag,
        },
    })
}

/// The service-side manifest generator for `--generate`.
fn generator(args: &SubmitArgs) -> anyhow::Result<job::ManifestGenerator> {
    let Some(bucket) = &args.source_bucket else {
        bail!("--generate needs --source-bucket");
    };
    let midnight = |d: chrono::NaiveDate| format!("{}T00:00:00Z", d.format("%Y-%m-%d"));
    let mut before = args.created_before;
    if let Some(age) = &args.older_than {
        let days = crate::select::parse_age(age).map_err(anyhow::Error::msg)?;
        let cutoff = chrono::Utc::now().date_naive() - chrono::Days::new(days);
        before = Some(before.map_or(cutoff, |b| b.min(cutoff)));
    }
    let output = match &args.manifest_output {
        Some(Location::S3 { bucket, key }) => Some(job::ManifestOutputLocation {
            bucket: format!("arn:aws:s3:::{bucket}"),
            manifest_format: "S3InventoryReport_CSV_20211130".into(),
            manifest_prefix: (!key.is_empty()).then(|| key.clone()),
        }),
        Some(other) => bail!("--manifest-output {other}: must be s3://bucket/prefix"),
        None => None,
    };
    let one = |s: &Option<String>| s.clone().filter(|x| !x.is_empty()).map(|x| vec![x]);
    Ok(job::ManifestGenerator {
        s3_job_manifest_generator: job::S3JobManifestGenerator {
            source_bucket: format!("arn:aws:s3:::{bucket}"),
            enable_manifest_output: output.is_some(),
            manifest_output_location: output,
            filter: Some(job::GeneratorFilter {
                created_after: args.created_after.map(midnight),
                created_before: before.map(midnight),
                key_name_constraint: Some(job::KeyNameConstraint {
                    match_any_prefix: one(&args.source_prefix),
                    match_any_suffix: one(&Some(args.suffix.clone())),
                }),
                // Strictly greater than: one byte less than the smallest size wanted.
                object_size_greater_than_bytes: (args.min_size > 0)
                    .then(|| args.min_size as i64 - 1),
                object_size_less_than_bytes: None,
                match_any_storage_class: Some(
                    args.generator_storage_classes
                        .iter()
                        .map(|c| c.to_ascii_uppercase())
                        .collect(),
                ),
            }),
        },
    })
}

/// Builds, checks and (unless a dry run) submits the job.
pub async fn submit(
    args: &SubmitArgs,
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<Submitted> {
    let s3 = aws.s3().await;
    let (manifest, manifest_generator) = if args.generate {
        (None, Some(generator(args)?))
    } else {
        (Some(pinned_manifest(args, &s3).await?), None)
    };
    let user_arguments: BTreeMap<String, String> = args.user_args.iter().cloned().collect();
    let report = match &args.report {
        Some(Location::S3 { bucket, key }) => Report {
            bucket: Some(format!("arn:aws:s3:::{bucket}")),
            format: Some("Report_CSV_20180820".into()),
            enabled: true,
            prefix: (!key.is_empty()).then(|| key.clone()),
            report_scope: Some(
                if args.report_scope == "failed" {
                    "FailedTasksOnly"
                } else {
                    "AllTasks"
                }
                .into(),
            ),
        },
        Some(other) => {
            bail!("--report {other}: the completion report goes to S3 (s3://bucket/prefix)")
        }
        None => Report {
            bucket: None,
            format: None,
            enabled: false,
            prefix: None,
            report_scope: None,
        },
    };
    let mut job = CreateJob {
        account_id: opts.account_id.clone(),
        confirmation_required: Some(args.confirmation_required),
        operation: Operation {
            lambda_invoke: LambdaInvoke {
                function_arn: args.function_arn.clone(),
                invocation_schema_version: Some(args.schema_version.clone()),
                user_arguments: (!user_arguments.is_empty()).then_some(user_arguments),
            },
        },
        manifest,
        manifest_generator,
        report,
        priority: args.priority,
        role_arn: args.role_arn.clone(),
        description: args.description.clone(),
        client_request_token: None,
    };
    let problems = job.problems();
    if !problems.is_empty() {
        bail!(
            "the job is not valid, nothing submitted: {}",
            problems.join("; ")
        );
    }
    let token = control::request_token(&job);
    job.client_request_token = Some(token.clone());
    if args.dry_run {
        return Ok(Submitted {
            job_id: None,
            client_request_token: token,
            request: job,
        });
    }
    let (client, account) = opts.client_and_account(aws).await?;
    job.account_id = Some(account.clone());
    let tags: Vec<(String, String)> = args.tags.clone();
    let job_id = control::create(&client, &account, &job, &tags).await?;
    Ok(Submitted {
        job_id: Some(job_id),
        client_request_token: token,
        request: job,
    })
}

/// `status JOB`.
pub async fn status(job_id: &str, opts: &JobOptions, aws: &AwsOptions) -> anyhow::Result<JobState> {
    let (client, account) = opts.client_and_account(aws).await?;
    control::describe(&client, &account, job_id).await
}

/// `list`.
pub async fn list(
    statuses: &[String],
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<Vec<JobState>> {
    let (client, account) = opts.client_and_account(aws).await?;
    control::list(&client, &account, statuses).await
}

/// `confirm JOB` / `cancel JOB`.
pub async fn set_status(
    job_id: &str,
    to: &str,
    reason: Option<&str>,
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<String> {
    let (client, account) = opts.client_and_account(aws).await?;
    control::update_status(&client, &account, job_id, to, reason).await
}

/// Exit codes of `wait`.
pub mod exit {
    /// Complete, no failed task.
    pub const COMPLETE: u8 = 0;
    /// Complete with failed tasks (see `report`).
    pub const FAILED_TASKS: u8 = 2;
    /// The job failed.
    pub const JOB_FAILED: u8 = 3;
    /// The job was cancelled.
    pub const CANCELLED: u8 = 4;
    /// Gave up waiting.
    pub const TIMEOUT: u8 = 5;
}

/// The exit code for a job's final state.
pub fn exit_code(state: &JobState) -> u8 {
    match state.status.as_str() {
        "Complete" if state.progress.as_ref().and_then(|p| p.failed).unwrap_or(0) > 0 => {
            exit::FAILED_TASKS
        }
        "Complete" => exit::COMPLETE,
        "Failed" => exit::JOB_FAILED,
        "Cancelled" => exit::CANCELLED,
        _ => exit::TIMEOUT,
    }
}

/// `wait JOB`: follows the job to a terminal state with a progress bar; returns the last state and exit code.
pub async fn wait(
    job_id: &str,
    interval: Duration,
    timeout: Option<Duration>,
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<(JobState, ExitCode)> {
    let (client, account) = opts.client_and_account(aws).await?;
    let started = std::time::Instant::now();
    let pb = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} tasks, {elapsed}")
            .expect("template")
            .progress_chars("=> "),
    );
    loop {
        let state = control::describe(&client, &account, job_id).await?;
        match &state.progress {
            Some(p) => {
                pb.set_length(p.total.unwrap_or(0).max(0) as u64);
                pb.set_position((p.succeeded.unwrap_or(0) + p.failed.unwrap_or(0)).max(0) as u64);
                pb.set_message(format!(
                    "{} ({} failed)",
                    state.status,
                    p.failed
                        .map(|f| f.to_string())
                        .unwrap_or_else(|| "?".into())
                ));
            }
            None => pb.set_message(format!("{} (progress unknown)", state.status)),
        }
        if state.is_terminal() {
            pb.finish_and_clear();
            let code = exit_code(&state);
            return Ok((state, ExitCode::from(code)));
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            pb.finish_and_clear();
            return Ok((state, ExitCode::from(exit::TIMEOUT)));
        }
        tokio::time::sleep(interval).await;
    }
}

/// One line per job state.
pub fn describe_line(s: &JobState) -> String {
    let progress = match &s.progress {
        None => "progress unknown".to_string(),
        Some(p) => {
            let n = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_else(|| "?".into());
            format!(
                "{} of {} succeeded, {} failed",
                n(p.succeeded),
                n(p.total),
                n(p.failed)
            )
        }
    };
    let mut line = format!("{}  {:<10} {progress}", s.job_id, s.status);
    if let Some(d) = &s.description {
        line += &format!("  \"{d}\"");
    }
    for f in &s.failures {
        line += &format!("\n  failure: {f}");
    }
    if let Some(r) = &s.report {
        line += &format!("\n  report: {r}/job-{}/manifest.json", s.job_id);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Progress;

    fn state(status: &str, failed: Option<i64>) -> JobState {
        JobState {
            job_id: "j".into(),
            status: status.into(),
            progress: failed.map(|f| Progress {
                total: Some(10),
                succeeded: Some(10 - f),
                failed: Some(f),
                active_seconds: None,
            }),
            failures: vec![],
            report: None,
            priority: None,
            description: None,
            status_update_reason: None,
            definition: None,
        }
    }

    #[test]
    fn exit_codes_tell_outcomes_apart() {
        assert_eq!(exit_code(&state("Complete", Some(0))), exit::COMPLETE);
        assert_eq!(exit_code(&state("Complete", None)), exit::COMPLETE);
        assert_eq!(exit_code(&state("Complete", Some(3))), exit::FAILED_TASKS);
        assert_eq!(exit_code(&state("Failed", Some(600))), exit::JOB_FAILED);
        assert_eq!(exit_code(&state("Cancelled", None)), exit::CANCELLED);
        assert!(
            !state("Completing", None).is_terminal(),
            "Completing is transient"
        );
        assert!(
            describe_line(&state("Preparing", None)).contains("progress unknown"),
            "absent progress is unknown, not zero"
        );
    }
}
