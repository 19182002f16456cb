//! The job: what to submit ([`JobSpec`], pinned to its manifest's ETag), the S3 Control calls
//! ([`control`]), and following it to its end ([`follow`]).

pub mod control;
pub mod follow;

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use aws_sdk_s3::error::ProvideErrorMetadata;

pub use batch_contract::job::*;
pub use follow::{describe_line, exit, exit_code, list, set_status, status, wait};

use crate::aws::AwsOptions;
use crate::location::Location;

/// Where the job commands go: the account and, for the local engine, its endpoint.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// 12-digit account that owns the job (else STS GetCallerIdentity).
    pub account_id: Option<String>,
    /// S3 Control endpoint (the local engine, a stub), reached without the account-id host prefix.
    pub s3control_endpoint_url: Option<String>,
}

impl JobOptions {
    /// The account the jobs belong to (given, or STS GetCallerIdentity).
    pub async fn account(&self, aws: &AwsOptions) -> anyhow::Result<String> {
        match &self.account_id {
            Some(a) => Ok(a.clone()),
            None => control::caller_account(&aws.config().await).await,
        }
    }

    /// The S3 Control client and the account the jobs belong to.
    pub async fn client_and_account(
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

/// Which tasks the completion report lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReportScope {
    /// Every task.
    #[default]
    All,
    /// Failed tasks only.
    Failed,
}

/// What to submit: the request of `submit`, of `run` and of the scheduled function.
/// `Default` is the CLI's defaults (but the ARNs, which have none).
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// CSV manifest written by `manifest`; pinned by its current ETag.
    pub manifest: Option<Location>,
    /// An S3 Inventory manifest.json passed straight to the job.
    pub inventory: Option<Location>,
    /// Let the service list the objects (its manifest generator) instead of a manifest.
    pub generate: bool,
    /// With `generate`: the bucket to list.
    pub source_bucket: Option<String>,
    /// With `generate`: key prefix.
    pub source_prefix: Option<String>,
    /// With `generate`: created at least this long ago (7d, 2w), from today's midnight UTC.
    pub older_than: Option<String>,
    /// With `generate`: created at or after this day.
    pub created_after: Option<chrono::NaiveDate>,
    /// With `generate`: created before this day.
    pub created_before: Option<chrono::NaiveDate>,
    /// With `generate`: key suffix (case-sensitive on the service side).
    pub suffix: String,
    /// With `generate`: smallest object in bytes.
    pub min_size: u64,
    /// With `generate`: storage classes to take.
    pub generator_storage_classes: Vec<String>,
    /// With `generate`: keep the generated list at s3://bucket/prefix.
    pub manifest_output: Option<Location>,
    /// The handler's ARN.
    pub function_arn: String,
    /// The role Batch Operations assumes.
    pub role_arn: String,
    /// Completion report location s3://bucket/prefix.
    pub report: Option<Location>,
    /// Which tasks the report lists.
    pub report_scope: ReportScope,
    /// Job arguments for the handler (schema 2.0).
    pub user_args: Vec<(String, String)>,
    /// Invocation schema version, "1.0" or "2.0".
    pub schema_version: String,
    /// Higher runs first.
    pub priority: i64,
    /// Shown in the console and `list`.
    pub description: Option<String>,
    /// Job tags.
    pub tags: Vec<(String, String)>,
    /// Wait in Suspended until confirmed.
    pub confirmation_required: bool,
    /// Build and check the request, submit nothing.
    pub dry_run: bool,
    /// Run `doctor`'s checks first and refuse on a failure (not on a dry run).
    pub doctor: bool,
}

/// Storage classes the manifest generator takes by default.
pub const DEFAULT_GENERATOR_STORAGE_CLASSES: [&str; 4] = [
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
];

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            manifest: None,
            inventory: None,
            generate: false,
            source_bucket: None,
            source_prefix: None,
            older_than: None,
            created_after: None,
            created_before: None,
            suffix: ".wav".into(),
            min_size: crate::select::DEFAULT_MIN_SIZE,
            generator_storage_classes: DEFAULT_GENERATOR_STORAGE_CLASSES.map(String::from).to_vec(),
            manifest_output: None,
            function_arn: String::new(),
            role_arn: String::new(),
            report: None,
            report_scope: ReportScope::All,
            user_args: Vec::new(),
            schema_version: "2.0".into(),
            priority: 10,
            description: None,
            tags: Vec::new(),
            confirmation_required: false,
            dry_run: false,
            doctor: true,
        }
    }
}

/// `doctor`'s checks for a job about to be submitted: the bucket and prefix from the manifest's
/// summary (or the generator's source), the function and role unless the job goes to a local
/// engine (a custom S3 Control endpoint), which invokes the handler itself.
async fn preflight(
    args: &JobSpec,
    opts: &JobOptions,
    aws: &AwsOptions,
    s3: &aws_sdk_s3::Client,
) -> anyhow::Result<()> {
    use crate::doctor;
    let local = opts.s3control_endpoint_url.is_some();
    let mut req = doctor::DoctorRequest {
        dest_bucket: doctor::dest_bucket(&args.user_args),
        function_arn: (!local).then(|| args.function_arn.clone()),
        role_arn: (!local).then(|| args.role_arn.clone()),
        manifest: args.manifest.clone(),
        report: args.report.clone(),
        local,
        ..Default::default()
    };
    if args.generate {
        req.bucket = args.source_bucket.clone().unwrap_or_default();
        req.prefix = args.source_prefix.clone().unwrap_or_default();
    } else if let Some(m) = &args.manifest
        && let Some((facts, source)) = doctor::facts_of_manifest(m, s3).await
    {
        req.facts = Some(facts);
        if let Some((bucket, prefix)) = source {
            (req.bucket, req.prefix) = (bucket, prefix);
        }
    }
    doctor::preflight(&req, aws, opts).await.map(|_| ())
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
async fn pinned_manifest(args: &JobSpec, s3: &aws_sdk_s3::Client) -> anyhow::Result<Manifest> {
    let (loc, format) = match (&args.manifest, &args.inventory) {
        (Some(m), _) => (m, MANIFEST_FORMATS[0]),
        (None, Some(i)) => (i, MANIFEST_FORMATS[1]),
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
    let fields = if format == MANIFEST_FORMATS[0] {
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

impl JobSpec {
    /// What can be refused before any request: locations the service cannot read, ARNs and
    /// user arguments of the wrong shape, an empty creation window.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(Location::Local(p)) = &self.manifest {
            bail!(
                "--manifest {}: the service reads the manifest from S3; give s3://bucket/key \
                 (`manifest --output s3://...` writes it there)",
                p.display()
            );
        }
        if let Some(Location::Local(p)) = &self.inventory {
            bail!(
                "--inventory {}: the service reads the inventory report from S3, not from this \
                 machine; give the report's s3://.../manifest.json (for a local copy, \
                 `manifest --inventory {}` writes a CSV manifest to submit instead)",
                p.display(),
                p.display()
            );
        }
        if let Some(Location::Local(p)) = &self.report {
            bail!(
                "--report {}: the completion report goes to S3 (s3://bucket/prefix)",
                p.display()
            );
        }
        check_role_arn(&self.role_arn).map_err(|e| anyhow::anyhow!("--role-arn: {e}"))?;
        check_function_arn(&self.function_arn)
            .map_err(|e| anyhow::anyhow!("--function-arn: {e}"))?;
        let args: BTreeMap<String, String> = self.user_args.iter().cloned().collect();
        check_user_arguments(&args).map_err(|e| anyhow::anyhow!("--user-arg: {e}"))?;
        if let (Some(a), Some(b)) = (self.created_after, self.created_before)
            && a >= b
        {
            bail!("--created-after {a} is not before --created-before {b}: the window is empty");
        }
        Ok(())
    }
}

/// The service-side manifest generator for `--generate`.
fn generator(args: &JobSpec) -> anyhow::Result<ManifestGenerator> {
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
        Some(Location::S3 { bucket, key }) => Some(ManifestOutputLocation {
            bucket: format!("arn:aws:s3:::{bucket}"),
            manifest_format: "S3InventoryReport_CSV_20211130".into(),
            manifest_prefix: (!key.is_empty()).then(|| key.clone()),
        }),
        Some(other) => bail!("--manifest-output {other}: must be s3://bucket/prefix"),
        None => None,
    };
    let one = |s: &Option<String>| s.clone().filter(|x| !x.is_empty()).map(|x| vec![x]);
    Ok(ManifestGenerator {
        s3_job_manifest_generator: S3JobManifestGenerator {
            source_bucket: format!("arn:aws:s3:::{bucket}"),
            enable_manifest_output: output.is_some(),
            manifest_output_location: output,
            filter: Some(GeneratorFilter {
                created_after: args.created_after.map(midnight),
                created_before: before.map(midnight),
                key_name_constraint: Some(KeyNameConstraint {
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
    args: &JobSpec,
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<Submitted> {
    args.check()?;
    let s3 = aws.s3().await;
    if args.doctor && !args.dry_run {
        preflight(args, opts, aws, &s3).await?;
    }
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
                match args.report_scope {
                    ReportScope::Failed => "FailedTasksOnly",
                    ReportScope::All => "AllTasks",
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
