//! `doctor`: its flags, resolved into a [`DoctorRequest`].

use manifest_builder::doctor::DoctorRequest;
use manifest_builder::estimate::{Prices, Workload};
use manifest_builder::location::Location;

use super::manifest::ManifestArgs;
use super::run::LocalArgs;

/// Flags of `doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The selection the job will take (the flags of `manifest`): its bytes, largest object and
    /// a sample are what several checks weigh.
    #[command(flatten)]
    pub select: ManifestArgs,
    /// Check the buckets' settings only: do not list the selection.
    #[arg(long)]
    pub no_selection: bool,
    /// A written manifest: the job role must read it; its summary gives the selection's facts.
    #[arg(long)]
    pub manifest: Option<Location>,
    /// The handler: arn:aws:lambda:<region>:<account>:function:<name>.
    #[arg(long, value_parser = super::check::function_arn)]
    pub function_arn: Option<String>,
    /// The role Batch Operations assumes.
    #[arg(long, value_parser = super::check::role_arn)]
    pub role_arn: Option<String>,
    /// Completion report location s3://bucket/prefix.
    #[arg(long)]
    pub report: Option<Location>,
    /// The job's handler arguments (destBucket means destination mode: no in-place checks).
    #[arg(long = "user-arg", value_parser = super::check::user_arg)]
    pub user_args: Vec<(String, String)>,
    /// Days the estimate assumes originals stay as noncurrent versions (as `estimate`).
    #[arg(long, default_value_t = Workload::default().noncurrent_days)]
    pub noncurrent_days: f64,
    /// Measured Lambda seconds per audio minute (as `estimate`; `report` shows yours).
    #[arg(long, default_value_t = Workload::default().lambda_seconds_per_minute)]
    pub lambda_seconds_per_minute: f64,
    /// S3 Standard $ per GB-month: the price of the originals kept.
    #[arg(long, default_value_t = Prices::default().standard_gb_month)]
    pub standard_gb_month: f64,
    /// Check the local engine's setup (with --embedded-s3: the demo's store).
    #[command(flatten)]
    pub local: LocalArgs,
}

impl From<&DoctorArgs> for DoctorRequest {
    fn from(a: &DoctorArgs) -> Self {
        let dest_bucket = manifest_builder::doctor::dest_bucket(&a.user_args);
        DoctorRequest {
            bucket: a.select.bucket.clone().unwrap_or_default(),
            prefix: a.select.prefix.clone(),
            dest_bucket,
            function_arn: a.function_arn.clone(),
            role_arn: a.role_arn.clone(),
            manifest: a.manifest.clone(),
            report: a.report.clone(),
            facts: None,
            local: a.local.local,
            workload: Workload {
                noncurrent_days: a.noncurrent_days,
                lambda_seconds_per_minute: a.lambda_seconds_per_minute,
                ..Workload::default()
            },
            prices: Prices {
                standard_gb_month: a.standard_gb_month,
                ..Prices::default()
            },
        }
    }
}
