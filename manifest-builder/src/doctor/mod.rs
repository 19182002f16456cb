//! `doctor`: before a job, whether its savings will be real and its tasks can succeed. Each check
//! reads a setting through the real AWS API (moto and the local pieces answer the same calls) and
//! ends as pass, warn or fail, with one line of why and the command or template parameter that
//! fixes it. A setting that cannot be read (a missing permission, an S3 that does not implement
//! it) is a warning naming what was missing, never an error of the command.
//!
//! [`bucket`] checks the recordings bucket (versioning, lifecycle, Object Lock, encryption,
//! replication, archive classes) and the report bucket; [`function`] the handler; [`iam`] the
//! job role's trust and permissions and the handler role's use of a KMS key.

pub mod bucket;
pub mod function;
pub mod iam;

use serde::Serialize;

use crate::aws::AwsOptions;
use crate::estimate::{Prices, Workload};
use crate::job::JobOptions;
use crate::location::Location;
use crate::manifest::{ClassTotals, Sampled};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As it should be.
    Pass,
    /// The job can run, but something costs money or may fail some tasks.
    Warn,
    /// The job must not run like this.
    Fail,
}

impl Status {
    /// Upper case, for the terminal.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Short name (`versioning`, `lifecycle`, ...).
    pub name: String,
    /// Pass, warn or fail.
    pub status: Status,
    /// One line: what was found and what it means.
    pub why: String,
    /// The command or template parameter that fixes it (warn and fail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passing check.
    pub fn pass(name: &str, why: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Pass,
            why: why.into(),
            fix: None,
        }
    }

    /// A warning with its fix.
    pub fn warn(name: &str, why: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Warn,
            why: why.into(),
            fix: Some(fix.into()),
        }
    }

    /// A failure with its fix.
    pub fn fail(name: &str, why: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            why: why.into(),
            fix: Some(fix.into()),
        }
    }
}

/// What the selection holds, as far as the checks need it (from a dry-run selection or the
/// summary written beside a manifest).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Objects selected.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The largest (the longest recording).
    pub largest: Option<Sampled>,
    /// A sample, for encryption, retention and legal holds.
    pub sample: Vec<Sampled>,
    /// Objects in archive classes, not selected.
    pub archived: ClassTotals,
}

impl From<&crate::manifest::Summary> for Facts {
    fn from(s: &crate::manifest::Summary) -> Self {
        Facts {
            objects: s.objects,
            bytes: s.bytes,
            largest: s.largest.clone(),
            sample: s.sample.clone(),
            archived: s.archived.clone(),
        }
    }
}

impl Facts {
    /// Reads the facts from a manifest summary's JSON (as `manifest` writes it).
    pub fn from_summary_json(v: &serde_json::Value) -> Option<Facts> {
        let sampled = |s: &serde_json::Value| -> Option<Sampled> {
            Some(Sampled {
                key: s["key"].as_str()?.to_string(),
                version_id: s["version_id"].as_str().map(String::from),
                size: s["size"].as_u64()?,
            })
        };
        Some(Facts {
            objects: v["objects"].as_u64()?,
            bytes: v["bytes"].as_u64()?,
            largest: sampled(&v["largest"]),
            sample: v["sample"]
                .as_array()
                .map(|a| a.iter().filter_map(sampled).collect())
                .unwrap_or_default(),
            archived: ClassTotals {
                objects: v["archived"]["objects"].as_u64().unwrap_or(0),
                bytes: v["archived"]["bytes"].as_u64().unwrap_or(0),
            },
        })
    }
}

/// The `destBucket` job argument: destination mode, originals not replaced.
pub fn dest_bucket(user_args: &[(String, String)]) -> Option<String> {
    user_args
        .iter()
        .find(|(k, _)| k == "destBucket")
        .map(|(_, v)| v.clone())
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct DoctorRequest {
    /// The recordings bucket (empty: its checks are left out).
    pub bucket: String,
    /// The recordings prefix (`connect/<alias>/CallRecordings/`).
    pub prefix: String,
    /// Destination bucket (the `destBucket` job argument): not in place.
    pub dest_bucket: Option<String>,
    /// The handler; `None` on the local engine (the handler runs in its process).
    pub function_arn: Option<String>,
    /// The role Batch Operations assumes; `None` on the local engine.
    pub role_arn: Option<String>,
    /// The job's manifest (the role must read it).
    pub manifest: Option<Location>,
    /// Completion report location.
    pub report: Option<Location>,
    /// What the selection holds; without it the checks that need the objects are left out.
    pub facts: Option<Facts>,
    /// The local engine: no function, no role, no IAM.
    pub local: bool,
    /// The processing rate and the noncurrent days the estimate assumes.
    pub workload: Workload,
    /// Prices of the extra storage.
    pub prices: Prices,
}

/// Every check's answer, and the exit code they make.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// The checks in the order they ran.
    pub checks: Vec<Check>,
    /// The worst status.
    pub status: Status,
    /// 0 all pass, 1 warnings, 2 a failure.
    pub exit: u8,
}

impl Diagnosis {
    /// Adds a check found outside [`diagnose`] (the selection could not be listed, say).
    pub fn push(&mut self, c: Check) {
        self.checks.push(c);
        self.status = self
            .checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass);
        self.exit = exit_code(self.status);
    }

    /// The failed checks: what `run` and `submit` refuse on.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }
}

/// Runs every check that applies to `req`.
pub async fn diagnose(req: &DoctorRequest, aws: &AwsOptions, jobs: &JobOptions) -> Diagnosis {
    let s3 = aws.s3().await;
    let account = match &jobs.account_id {
        Some(a) => Some(a.clone()),
        None if req.local => None,
        None => match crate::job::control::caller_account(&aws.service_config("STS").await).await {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::debug!("no account id: {e:#}");
                None
            }
        },
    };
    let mut checks = Vec::new();
    // The function first: its environment says whether an unversioned overwrite is allowed,
    // and its role is the one that must use the recordings' KMS keys.
    let func = match (&req.function_arn, req.local) {
        (_, true) => {
            checks.push(Check::pass(
                "function",
                "the local engine runs the handler in this process: no function to check",
            ));
            None
        }
        (None, false) => {
            checks.push(Check::warn(
                "function",
                "no function given: not checked",
                "give --function-arn (the stack's HandlerFunctionArn output)",
            ));
            None
        }
        (Some(arn), false) => {
            let lambda = aws_sdk_lambda::Client::new(&aws.service_config("LAMBDA").await);
            let (found, mut more) = function::check(&lambda, arn, req).await;
            checks.append(&mut more);
            found
        }
    };
    let mut kms_keys = Vec::new();
    if !req.bucket.is_empty() {
        checks.extend(bucket::versioning(&s3, req, func.as_ref()).await);
        checks.push(bucket::lifecycle(&s3, req).await);
        checks.extend(bucket::object_lock(&s3, req).await);
        let (check, keys) = bucket::encryption(&s3, req).await;
        checks.push(check);
        kms_keys = keys;
        checks.push(bucket::replication(&s3, req).await);
        if let Some(f) = &req.facts {
            checks.push(bucket::archived(req, f));
        }
    }
    checks.push(bucket::report_bucket(&s3, req, account.as_deref()).await);
    if !req.local {
        let iam_client = aws_sdk_iam::Client::new(&aws.service_config("IAM").await);
        if let Some(role) = &req.role_arn {
            checks.extend(iam::job_role(&iam_client, role, req).await);
        } else {
            checks.push(Check::warn(
                "job-role",
                "no job role given: not checked",
                "give --role-arn (the stack's BatchJobRoleArn output)",
            ));
        }
        if !kms_keys.is_empty() {
            checks.push(iam::kms_use(&iam_client, func.as_ref(), &kms_keys).await);
        }
    } else if !kms_keys.is_empty() {
        checks.push(Check::pass(
            "kms",
            format!(
                "recordings are encrypted with {}: the local handler uses your own credentials",
                kms_keys.join(", ")
            ),
        ));
    }
    let status = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass);
    Diagnosis {
        exit: exit_code(status),
        checks,
        status,
    }
}

fn exit_code(s: Status) -> u8 {
    match s {
        Status::Pass => 0,
        Status::Warn => 1,
        Status::Fail => 2,
    }
}

/// The terminal view: one line per check, its fix below.
pub fn print(d: &Diagnosis) {
    for c in &d.checks {
        println!("{} {:<20} {}", c.status.label(), c.name, c.why);
        if let Some(fix) = &c.fix {
            println!("     {:<20} fix: {fix}", "");
        }
    }
    let count = |s| d.checks.iter().filter(|c| c.status == s).count();
    println!(
        "doctor: {} passed, {} warnings, {} failed",
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail)
    );
}

/// An S3, Lambda or IAM error, reduced to what a check says about it.
#[derive(Debug, Clone)]
pub(crate) struct CallError {
    /// The service's error code (`AccessDenied`, `NoSuchLifecycleConfiguration`, ...).
    pub code: String,
    /// HTTP status, when a response came.
    pub status: Option<u16>,
    /// One line.
    pub message: String,
}

impl CallError {
    /// From any SDK error.
    pub fn from_sdk<E>(
        e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> Self
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        CallError {
            code: e.code().unwrap_or_default().to_string(),
            status: e.raw_response().map(|r| r.status().as_u16()),
            message: e
                .message()
                .map(String::from)
                .unwrap_or_else(|| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
                .replace('\n', " ")
                // One line: the SDK's chain can run to kilobytes.
                .chars()
                .take(240)
                .collect(),
        }
    }

    /// A permission was missing.
    pub fn denied(&self) -> bool {
        matches!(
            self.code.as_str(),
            "AccessDenied"
                | "AccessDeniedException"
                | "UnauthorizedOperation"
                | "AllAccessDisabled"
        ) || self.status == Some(403)
    }

    /// The server does not implement the call (the embedded S3, some S3-compatible stores).
    pub fn not_implemented(&self) -> bool {
        self.code == "NotImplemented" || self.status == Some(501)
    }

    /// Whether the code is one of these (the "not configured" answers).
    pub fn is(&self, codes: &[&str]) -> bool {
        codes.contains(&self.code.as_str())
    }

    /// `code (HTTP n): message`.
    pub fn describe(&self) -> String {
        let status = self
            .status
            .map(|s| format!(" (HTTP {s})"))
            .unwrap_or_default();
        let code = if self.code.is_empty() {
            "error"
        } else {
            &self.code
        };
        format!("{code}{status}: {}", self.message)
    }
}

/// The warning for a setting that could not be read: names the permission when one was missing.
pub(crate) fn not_checked(name: &str, call: &str, permission: &str, e: &CallError) -> Check {
    if e.denied() {
        Check::warn(
            name,
            format!(
                "not checked: {call} was refused ({}); it needs {permission}",
                e.code
            ),
            format!("grant {permission} to the identity running doctor, or check by hand"),
        )
    } else {
        Check::warn(
            name,
            format!("not checked: {call} failed: {}", e.describe()),
            format!("retry; {call} needs {permission}"),
        )
    }
}

/// `$1,234` (whole dollars, as the estimate table), or `$0.42` below $100.
pub(crate) fn dollars(x: f64) -> String {
    if x.abs() < 100.0 {
        format!("${x:.2}")
    } else {
        crate::estimate::money(x)
    }
}

/// The selection's facts, from a dry run of it (nothing is written).
pub async fn facts_of_selection(
    selection: &crate::select::Selection,
    aws: &AwsOptions,
) -> anyhow::Result<Facts> {
    let mut dry = selection.clone();
    dry.dry_run = true;
    dry.output = None;
    let summary = crate::select::run(&dry, aws).await?;
    Ok(Facts::from(&summary))
}

/// The facts of a written manifest, and the bucket and prefix it was selected from, from the
/// summary beside it; `None` when it has none (a manifest not written by `manifest`).
pub async fn facts_of_manifest(
    manifest: &Location,
    s3: &aws_sdk_s3::Client,
) -> Option<(Facts, Option<(String, String)>)> {
    let bytes = crate::manifest::summary_location(manifest)
        .read(s3)
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let source = v["source"].as_str().and_then(source_bucket_prefix);
    Some((Facts::from_summary_json(&v)?, source))
}

/// The bucket and prefix a manifest summary's `source` names (`s3://bucket/prefix{...}`).
pub fn source_bucket_prefix(source: &str) -> Option<(String, String)> {
    let rest = source.strip_prefix("s3://")?;
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = path.split(['{', ' ']).next().unwrap_or("");
    Some((bucket.to_string(), prefix.to_string()))
}

/// Before `run` or `submit`: the checks, warnings printed to stderr, and an error naming every
/// failed check (the job is not submitted).
pub async fn preflight(
    req: &DoctorRequest,
    aws: &AwsOptions,
    jobs: &JobOptions,
) -> anyhow::Result<Diagnosis> {
    let d = diagnose(req, aws, jobs).await;
    for c in d.checks.iter().filter(|c| c.status == Status::Warn) {
        eprintln!("doctor: WARN {}: {}", c.name, c.why);
        if let Some(fix) = &c.fix {
            eprintln!("        fix: {fix}");
        }
    }
    let failed: Vec<String> = d
        .failures()
        .map(|c| {
            format!(
                "{}: {}{}",
                c.name,
                c.why,
                c.fix
                    .as_ref()
                    .map(|f| format!(" (fix: {f})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if !failed.is_empty() {
        anyhow::bail!(
            "doctor: the job was not submitted: {} (run `manifest-builder doctor` for every \
             check, or pass --skip-doctor)",
            failed.join("; ")
        );
    }
    Ok(d)
}
