//! `submit`: its flags, resolved into a [`JobSpec`]; the operation flags `run` shares.

use manifest_builder::job::{DEFAULT_GENERATOR_STORAGE_CLASSES, JobSpec, ReportScope};
use manifest_builder::location::Location;

use super::check;
use super::global::key_value;

/// What the job asks of the handler: the flags `submit` and `run` share.
#[derive(Debug, Clone, clap::Args)]
pub struct OperationArgs {
    /// Job argument for the handler (schema 2.0), repeatable: codec, downmix, storageClass, tagKey, tagValue, destBucket, destPrefix.
    #[arg(long = "user-arg", value_parser = check::user_arg)]
    pub user_args: Vec<(String, String)>,
    /// Invocation schema version.
    #[arg(long, default_value = "2.0", value_parser = ["1.0", "2.0"])]
    pub schema_version: String,
    /// Higher runs first.
    #[arg(long, default_value_t = 10)]
    pub priority: i64,
}

/// `--report-scope`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportScopeArg {
    /// Every task.
    All,
    /// Failed tasks only.
    Failed,
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
    #[arg(long, requires = "generate", value_parser = check::bucket_name)]
    pub source_bucket: Option<String>,
    /// With --generate: key prefix, e.g. connect/<alias>/CallRecordings/.
    #[arg(long, requires = "generate", value_parser = check::key_prefix)]
    pub source_prefix: Option<String>,
    /// With --generate: created at least this long ago (7d, 2w), counted from today's midnight UTC.
    #[arg(long, requires = "generate", value_parser = check::age)]
    pub older_than: Option<String>,
    /// With --generate: created at or after this day (YYYY-MM-DD).
    #[arg(long, requires = "generate", value_parser = check::date)]
    pub created_after: Option<chrono::NaiveDate>,
    /// With --generate: created before this day (YYYY-MM-DD).
    #[arg(long, requires = "generate", value_parser = check::date)]
    pub created_before: Option<chrono::NaiveDate>,
    /// With --generate: key suffix (case-sensitive on the service side).
    #[arg(long, default_value = ".wav")]
    pub suffix: String,
    /// With --generate: smallest object in bytes (see `manifest --help`).
    #[arg(long, default_value_t = manifest_builder::select::DEFAULT_MIN_SIZE)]
    pub min_size: u64,
    /// With --generate: storage classes to take (repeatable).
    #[arg(long = "generator-storage-class", default_values_t = DEFAULT_GENERATOR_STORAGE_CLASSES.map(String::from))]
    pub generator_storage_classes: Vec<String>,
    /// With --generate: keep the generated list at s3://bucket/prefix.
    #[arg(long, requires = "generate")]
    pub manifest_output: Option<Location>,
    /// The handler: arn:aws:lambda:<region>:<account>:function:<name>[:<alias or version>].
    #[arg(long, value_parser = check::function_arn)]
    pub function_arn: String,
    /// The role Batch Operations assumes: arn:aws:iam::<account>:role/<name>.
    #[arg(long, value_parser = check::role_arn)]
    pub role_arn: String,
    /// Completion report location s3://bucket/prefix (no trailing '/').
    #[arg(long)]
    pub report: Option<Location>,
    /// Report every task (all) or only failures (failed).
    #[arg(long, default_value = "all", value_enum)]
    pub report_scope: ReportScopeArg,
    /// Handler arguments, schema and priority (shared with `run`).
    #[command(flatten)]
    pub operation: OperationArgs,
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
    /// Submit without running `doctor`'s checks first.
    #[arg(long)]
    pub skip_doctor: bool,
}

impl From<&SubmitArgs> for JobSpec {
    fn from(a: &SubmitArgs) -> Self {
        JobSpec {
            manifest: a.manifest.clone(),
            inventory: a.inventory.clone(),
            generate: a.generate,
            source_bucket: a.source_bucket.clone(),
            source_prefix: a.source_prefix.clone(),
            older_than: a.older_than.clone(),
            created_after: a.created_after,
            created_before: a.created_before,
            suffix: a.suffix.clone(),
            min_size: a.min_size,
            generator_storage_classes: a.generator_storage_classes.clone(),
            manifest_output: a.manifest_output.clone(),
            function_arn: a.function_arn.clone(),
            role_arn: a.role_arn.clone(),
            report: a.report.clone(),
            report_scope: match a.report_scope {
                ReportScopeArg::All => ReportScope::All,
                ReportScopeArg::Failed => ReportScope::Failed,
            },
            user_args: a.operation.user_args.clone(),
            schema_version: a.operation.schema_version.clone(),
            priority: a.operation.priority,
            description: a.description.clone(),
            tags: a.tags.clone(),
            confirmation_required: a.confirmation_required,
            dry_run: a.dry_run,
            doctor: !a.skip_doctor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: SubmitArgs,
    }

    #[test]
    fn the_flags_default_to_the_library_defaults() {
        let args = Wrap::try_parse_from([
            "submit",
            "--manifest",
            "s3://b/m.csv",
            "--function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            "--role-arn",
            "arn:aws:iam::123456789012:role/r",
        ])
        .unwrap()
        .args;
        let ours = JobSpec::from(&args);
        let lib = JobSpec {
            manifest: Some("s3://b/m.csv".parse().unwrap()),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            ..JobSpec::default()
        };
        assert_eq!(format!("{ours:?}"), format!("{lib:?}"));
    }
}
