//! The flags every command shares: where the AWS calls go, and where the job calls go.

use manifest_builder::aws::AwsOptions;
use manifest_builder::job::JobOptions;

/// S3 endpoint, region and profile.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AwsArgs {
    /// S3 endpoint (a local S3-compatible server); path-style addressing is then used.
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// Region (else the standard chain: AWS_REGION, profile).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Named profile from ~/.aws/config.
    #[arg(long, global = true)]
    pub profile: Option<String>,
}

impl From<&AwsArgs> for AwsOptions {
    fn from(a: &AwsArgs) -> Self {
        AwsOptions {
            endpoint_url: a.endpoint_url.clone(),
            region: a.region.clone(),
            profile: a.profile.clone(),
            static_credentials: None,
        }
    }
}

/// The account and the S3 Control endpoint of the job commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct JobArgs {
    /// 12-digit account that owns the job (else STS GetCallerIdentity).
    #[arg(long, global = true)]
    pub account_id: Option<String>,
    /// S3 Control endpoint (the local engine, a stub); calls go there without the account-id host prefix.
    #[arg(long, global = true)]
    pub s3control_endpoint_url: Option<String>,
}

impl From<&JobArgs> for JobOptions {
    fn from(a: &JobArgs) -> Self {
        JobOptions {
            account_id: a.account_id.clone(),
            s3control_endpoint_url: a.s3control_endpoint_url.clone(),
        }
    }
}

/// Parses a `key=value` flag (user arguments, tags).
pub fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}
