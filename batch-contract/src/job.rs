//! The CreateJob request for a LambdaInvoke job, as JSON members (the shape of the AWS CLI's
//! `--cli-input-json`), and the checks that catch a bad job before it is submitted and billed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Manifest formats CreateJob accepts.
pub const MANIFEST_FORMATS: [&str; 2] = [
    "S3BatchOperations_CSV_20180820",
    "S3InventoryReport_CSV_20161130",
];
/// Limits from the S3 Control API model.
pub const MAX_USER_ARGUMENTS: usize = 10;
/// Longest user argument key.
pub const MAX_USER_ARGUMENT_KEY: usize = 64;
/// Longest user argument value.
pub const MAX_USER_ARGUMENT_VALUE: usize = 1024;

/// CreateJob's members, for `Operation.LambdaInvoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateJob {
    /// 12 digits (from STS when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Wait in `Suspended` until confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_required: Option<bool>,
    /// The operation.
    pub operation: Operation,
    /// Where the list of objects is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    /// Or: let the service list the objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_generator: Option<ManifestGenerator>,
    /// Completion report.
    pub report: Report,
    /// Higher runs first.
    pub priority: i64,
    /// The role Batch Operations assumes.
    pub role_arn: String,
    /// Free text, 1..256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Idempotency token, 1..64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
}

/// `Operation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Operation {
    /// The only operation this tool submits.
    pub lambda_invoke: LambdaInvoke,
}

/// `Operation.LambdaInvoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LambdaInvoke {
    /// Function, alias or version ARN.
    pub function_arn: String,
    /// `1.0` (service default) or `2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_schema_version: Option<String>,
    /// Needs schema 2.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_arguments: Option<BTreeMap<String, String>>,
}

/// `Manifest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Manifest {
    /// Format and columns.
    pub spec: ManifestSpec,
    /// Object and ETag.
    pub location: ManifestLocation,
}

/// `Manifest.Spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestSpec {
    /// One of [`MANIFEST_FORMATS`].
    pub format: String,
    /// CSV columns: `Bucket`, `Key`, `VersionId`, `Ignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// `Manifest.Location`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestLocation {
    /// `arn:aws:s3:::bucket/key`.
    pub object_arn: String,
    /// Pinned version of the manifest object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_version_id: Option<String>,
    /// The manifest's current ETag (quoted or not: both are accepted, as AWS does).
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// `ManifestGenerator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestGenerator {
    /// The only generator there is.
    #[serde(rename = "S3JobManifestGenerator")]
    pub s3_job_manifest_generator: S3JobManifestGenerator,
}

/// `ManifestGenerator.S3JobManifestGenerator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3JobManifestGenerator {
    /// Bucket ARN to list.
    pub source_bucket: String,
    /// Keep the generated list.
    pub enable_manifest_output: bool,
    /// Where the generated list goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_output_location: Option<ManifestOutputLocation>,
    /// Which objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<GeneratorFilter>,
}

/// `S3JobManifestGenerator.ManifestOutputLocation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestOutputLocation {
    /// Bucket ARN.
    pub bucket: String,
    /// `S3InventoryReport_CSV_20211130`, the only format.
    pub manifest_format: String,
    /// Key prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_prefix: Option<String>,
}

/// `S3JobManifestGenerator.Filter` (the subset this tool sets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GeneratorFilter {
    /// Created at or after (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<String>,
    /// Created before (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<String>,
    /// Prefix and suffix (one string each at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name_constraint: Option<KeyNameConstraint>,
    /// Strictly larger than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_size_greater_than_bytes: Option<i64>,
    /// Strictly smaller than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_size_less_than_bytes: Option<i64>,
    /// Storage classes to take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_any_storage_class: Option<Vec<String>>,
}

/// `Filter.KeyNameConstraint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyNameConstraint {
    /// Key prefixes (the service accepts one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_any_prefix: Option<Vec<String>>,
    /// Key suffixes (the service accepts one; case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_any_suffix: Option<Vec<String>>,
}

/// Storage classes the manifest generator can filter on.
pub const GENERATOR_STORAGE_CLASSES: [&str; 7] = [
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "GLACIER",
    "INTELLIGENT_TIERING",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
];

/// `Report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    /// Bucket ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// `Report_CSV_20180820`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Whether a report is written.
    pub enabled: bool,
    /// Key prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `AllTasks` or `FailedTasksOnly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_scope: Option<String>,
}

fn arn_parts(arn: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    (parts.len() == 6 && parts[0] == "arn" && !parts[1].is_empty()).then_some(parts)
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks an IAM role ARN (`arn:<partition>:iam::<12 digits>:role/<name>`).
pub fn check_role_arn(arn: &str) -> Result<(), String> {
    match arn_parts(arn) {
        Some(p)
            if p[2] == "iam"
                && p[3].is_empty()
                && is_account(p[4])
                && p[5].starts_with("role/")
                && p[5].len() > 5 =>
        {
            Ok(())
        }
        _ => Err(format!(
            "invalid role ARN {arn:?}: expected arn:aws:iam::<12-digit account>:role/<name>"
        )),
    }
}

/// Checks a Lambda function ARN (`arn:<partition>:lambda:<region>:<12 digits>:function:<name>[:<qualifier>]`).
pub fn check_function_arn(arn: &str) -> Result<(), String> {
    let ok = arn.len() <= 1024
        && matches!(arn_parts(arn), Some(p) if p[2] == "lambda" && !p[3].is_empty() && is_account(p[4])
            && p[5].strip_prefix("function:").is_some_and(|n| !n.is_empty() && !n.starts_with(':')));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid function ARN {arn:?}: expected arn:aws:lambda:<region>:<12-digit account>:function:<name>[:<alias or version>]"
        ))
    }
}

/// Checks user arguments against the service limits (10 entries, keys 1..64, values ..1024).
pub fn check_user_arguments(args: &BTreeMap<String, String>) -> Result<(), String> {
    if args.len() > MAX_USER_ARGUMENTS {
        return Err(format!(
            "{} user arguments: at most {MAX_USER_ARGUMENTS}",
            args.len()
        ));
    }
    for (k, v) in args {
        if k.is_empty() || k.chars().count() > MAX_USER_ARGUMENT_KEY {
            return Err(format!(
                "user argument key {k:?}: 1 to {MAX_USER_ARGUMENT_KEY} characters"
            ));
        }
        if v.chars().count() > MAX_USER_ARGUMENT_VALUE {
            return Err(format!(
                "user argument {k}: value longer than {MAX_USER_ARGUMENT_VALUE} characters"
            ));
        }
    }
    Ok(())
}

impl CreateJob {
    /// Every problem the service would reject (or silently mis-handle), before anything is submitted.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = check_role_arn(&self.role_arn) {
            p.push(format!("RoleArn: {e}"));
        }
        let li = &self.operation.lambda_invoke;
        if let Err(e) = check_function_arn(&li.function_arn) {
            p.push(format!("Operation.LambdaInvoke.FunctionArn: {e}"));
        }
        if let Some(args) = li.user_arguments.as_ref().filter(|a| !a.is_empty()) {
            if let Err(e) = check_user_arguments(args) {
                p.push(format!("Operation.LambdaInvoke.UserArguments: {e}"));
            }
            if li.invocation_schema_version.as_deref() != Some("2.0") {
                p.push(
                    "Operation.LambdaInvoke.UserArguments: needs InvocationSchemaVersion 2.0"
                        .into(),
                );
            }
        }
        if let Some(v) = li
            .invocation_schema_version
            .as_deref()
            .filter(|v| !["1.0", "2.0"].contains(v))
        {
            p.push(format!(
                "Operation.LambdaInvoke.InvocationSchemaVersion: {v:?} is not 1.0 or 2.0"
            ));
        }
        if let Some(a) = self.account_id.as_deref().filter(|a| !is_account(a)) {
            p.push(format!("AccountId: {a:?} is not 12 digits"));
        }
        if !(0..=2_147_483_647).contains(&self.priority) {
            p.push(format!(
                "Priority: {} is outside 0..2147483647",
                self.priority
            ));
        }
        if let Some(d) = self
            .description
            .as_deref()
            .filter(|d| d.is_empty() || d.chars().count() > 256)
        {
            p.push(format!(
                "Description: {} characters, 1 to 256 allowed",
                d.chars().count()
            ));
        }
        if let Some(t) = self
            .client_request_token
            .as_deref()
            .filter(|t| t.is_empty() || t.len() > 64)
        {
            p.push(format!(
                "ClientRequestToken: {} characters, 1 to 64 allowed",
                t.len()
            ));
        }
        if let Some(g) = &self.manifest_generator {
            let g = &g.s3_job_manifest_generator;
            if !g.source_bucket.starts_with("arn:") || !g.source_bucket.contains(":s3:::") {
                p.push(format!(
                    "ManifestGenerator.SourceBucket: {:?} is not a bucket ARN",
                    g.source_bucket
                ));
            }
            if let Some(f) = &g.filter {
                let k = f.key_name_constraint.clone().unwrap_or_default();
                if k.match_any_prefix.as_ref().is_some_and(|v| v.len() > 1)
                    || k.match_any_suffix.as_ref().is_some_and(|v| v.len() > 1)
                {
                    p.push("ManifestGenerator.Filter.KeyNameConstraint: one prefix and one suffix at most".into());
                }
                if let Some(c) = f
                    .match_any_storage_class
                    .iter()
                    .flatten()
                    .find(|c| !GENERATOR_STORAGE_CLASSES.contains(&c.as_str()))
                {
                    p.push(format!(
                        "ManifestGenerator.Filter.MatchAnyStorageClass: {c:?} is not one of {}",
                        GENERATOR_STORAGE_CLASSES.join(", ")
                    ));
                }
            }
        }
        match (&self.manifest, &self.manifest_generator) {
            (None, None) => {
                p.push("Manifest: missing (give a Manifest or a ManifestGenerator)".into())
            }
            (Some(_), Some(_)) => {
                p.push("Manifest and ManifestGenerator: give one, not both".into())
            }
            (None, Some(_)) => {}
            (Some(m), None) => {
                if !MANIFEST_FORMATS.contains(&m.spec.format.as_str()) {
                    p.push(format!(
                        "Manifest.Spec.Format: {:?} is not one of {}",
                        m.spec.format,
                        MANIFEST_FORMATS.join(", ")
                    ));
                }
                if let Some(f) = m.spec.fields.as_ref().and_then(|f| {
                    f.iter()
                        .find(|f| !["Ignore", "Bucket", "Key", "VersionId"].contains(&f.as_str()))
                }) {
                    p.push(format!("Manifest.Spec.Fields: unknown field {f:?}"));
                }
                if !m.location.object_arn.starts_with("arn:")
                    || !m.location.object_arn.contains(":s3:::")
                    || !m.location.object_arn.contains('/')
                {
                    p.push(format!(
                        "Manifest.Location.ObjectArn: {:?} is not arn:aws:s3:::<bucket>/<key>",
                        m.location.object_arn
                    ));
                }
                // Quoted or not, as AWS takes it (the quotes are not part of the tag).
                if m.location.etag.trim_matches('"').is_empty() {
                    p.push(format!(
                        "Manifest.Location.ETag: {:?} is empty",
                        m.location.etag
                    ));
                }
            }
        }
        if self.report.enabled {
            if !self
                .report
                .bucket
                .as_deref()
                .is_some_and(|b| b.starts_with("arn:") && b.contains(":s3:::"))
            {
                p.push("Report.Bucket: a bucket ARN (arn:aws:s3:::<bucket>) is required when the report is enabled".into());
            }
            if self
                .report
                .prefix
                .as_deref()
                .is_some_and(|x| x.ends_with('/'))
            {
                p.push("Report.Prefix: must not end with '/' (the report would land under '<prefix>//job-...')".into());
            }
            if let Some(s) = self
                .report
                .report_scope
                .as_deref()
                .filter(|s| !["AllTasks", "FailedTasksOnly"].contains(s))
            {
                p.push(format!(
                    "Report.ReportScope: {s:?} is not AllTasks or FailedTasksOnly"
                ));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F13 (`s3-batch-ops.md` §10), the docs' CLI example with its placeholders.
    const F13: &str = r#"{
      "AccountId": "account-id",
      "Operation": { "LambdaInvoke": { "FunctionArn": "arn:aws:lambda:region:account-id:function:LambdaFunctionName" } },
      "Manifest": {
        "Spec": { "Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"] },
        "Location": { "ObjectArn": "arn:aws:s3:::amzn-s3-demo-manifest-bucket", "ETag": "ManifestETag" }
      },
      "Report": { "Bucket": "arn:aws:s3:::amzn-s3-demo-bucket", "Format": "Report_CSV_20180820", "Enabled": true, "Prefix": "ReportPrefix", "ReportScope": "AllTasks" },
      "Priority": 2,
      "RoleArn": "arn:aws:iam::account-id:role/BatchOperationsRole",
      "Description": "Lambda Function"
    }"#;

    #[test]
    fn f13_parses_and_its_placeholders_are_caught() {
        let job: CreateJob = serde_json::from_str(F13).unwrap();
        assert_eq!(job.priority, 2);
        assert_eq!(
            job.operation.lambda_invoke.function_arn,
            "arn:aws:lambda:region:account-id:function:LambdaFunctionName"
        );
        let m = job.manifest.as_ref().unwrap();
        assert_eq!(m.spec.format, "S3BatchOperations_CSV_20180820");
        assert_eq!(
            m.spec.fields.as_deref(),
            Some(&["Bucket".to_string(), "Key".to_string()][..])
        );
        assert_eq!(m.location.etag, "ManifestETag");
        assert_eq!(job.report.report_scope.as_deref(), Some("AllTasks"));
        assert_eq!(job.description.as_deref(), Some("Lambda Function"));
        let problems = job.problems();
        let has = |s: &str| problems.iter().any(|p| p.starts_with(s));
        assert!(has("RoleArn: invalid role ARN"), "{problems:?}");
        assert!(has("Operation.LambdaInvoke.FunctionArn"), "{problems:?}");
        assert!(has("AccountId"), "{problems:?}");
        assert!(
            has("Manifest.Location.ObjectArn"),
            "the example's ObjectArn names a bucket, not an object: {problems:?}"
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn a_correct_job_has_no_problems_and_round_trips() {
        let mut job: CreateJob = serde_json::from_str(F13).unwrap();
        job.account_id = Some("123456789012".into());
        job.role_arn = "arn:aws:iam::123456789012:role/BatchOperationsRole".into();
        job.operation.lambda_invoke.function_arn =
            "arn:aws:lambda:us-east-1:123456789012:function:shrink:live".into();
        job.operation.lambda_invoke.invocation_schema_version = Some("2.0".into());
        job.operation.lambda_invoke.user_arguments =
            Some([("downmix".to_string(), "sum".to_string())].into());
        job.manifest.as_mut().unwrap().location.object_arn =
            "arn:aws:s3:::manifests/job/manifest.csv".into();
        assert_eq!(job.problems(), Vec::<String>::new());
        let back: CreateJob = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(back, job);
    }

    #[test]
    fn limits_and_traps_are_reported() {
        assert!(check_role_arn("arn:aws:iam::123456789012:user/bob").is_err());
        assert!(check_function_arn("arn:aws:lambda:us-east-1:123456789012:function:").is_err());
        let eleven: BTreeMap<String, String> = (0..11)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert!(
            check_user_arguments(&eleven)
                .unwrap_err()
                .contains("at most 10")
        );
        let long_key: BTreeMap<String, String> = [("k".repeat(65), String::new())].into();
        assert!(check_user_arguments(&long_key).is_err());
        let long_value: BTreeMap<String, String> = [("k".to_string(), "v".repeat(1025))].into();
        assert!(check_user_arguments(&long_value).is_err());
        let mut job: CreateJob = serde_json::from_str(F13).unwrap();
        job.operation.lambda_invoke.user_arguments =
            Some([("a".to_string(), "b".to_string())].into());
        job.manifest.as_mut().unwrap().location.etag = "\"abc\"".into();
        job.manifest.as_mut().unwrap().spec.format = "S3InventoryReport_CSV_20211130".into();
        job.report.prefix = Some("reports/".into());
        let problems = job.problems().join("\n");
        assert!(
            problems.contains("needs InvocationSchemaVersion 2.0"),
            "{problems}"
        );
        assert!(
            !problems.contains("ETag"),
            "a quoted ETag is accepted: {problems}"
        );
        assert!(
            problems.contains("S3InventoryReport_CSV_20211130\" is not one of"),
            "{problems}"
        );
        assert!(problems.contains("must not end with '/'"), "{problems}");
    }
}
