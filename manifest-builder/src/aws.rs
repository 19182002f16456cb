//! AWS clients from the standard chain, shaped by the CLI's global options.
//!
//! Retries: the SDK's standard mode (exponential backoff with full jitter) on throttling, 5xx,
//! timeouts and resets, with [`SDK_ATTEMPTS`] attempts and backoff capped at [`MAX_BACKOFF`]
//! (about 10 s in all at the most), where the default is 3 attempts. A response body cut short
//! is not retried by the SDK: whole-object reads retry it themselves ([`BODY_ATTEMPTS`]).

use std::time::Duration;

/// Attempts of every S3 call (the SDK default is 3).
pub const SDK_ATTEMPTS: u32 = 8;
/// Largest backoff between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Reads of a whole object whose body was cut.
pub const BODY_ATTEMPTS: u32 = 5;

/// Where the AWS calls go and as whom: what every command shares.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// S3 endpoint (a local S3-compatible server); path-style addressing is then used.
    pub endpoint_url: Option<String>,
    /// Region (else the standard chain: AWS_REGION, profile).
    pub region: Option<String>,
    /// Named profile from ~/.aws/config.
    pub profile: Option<String>,
    /// Fixed credentials (the embedded S3's generated key pair) instead of the standard chain.
    pub static_credentials: Option<(String, String)>,
}

impl AwsOptions {
    /// The shared configuration from the standard chain with these overrides.
    pub async fn config(&self) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &self.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(p) = &self.profile {
            loader = loader.profile_name(p);
        }
        if let Some((key, secret)) = &self.static_credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                key.clone(),
                secret.clone(),
                None,
                None,
                "embedded-s3",
            ));
        }
        loader.load().await
    }

    /// An S3 client (path-style with a custom endpoint).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let shared = self.config().await;
        let mut b = aws_sdk_s3::config::Builder::from(&shared).retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(SDK_ATTEMPTS)
                .with_max_backoff(MAX_BACKOFF),
        );
        let env_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        if let Some(url) = &self.endpoint_url {
            b = b.endpoint_url(url);
        }
        if self.endpoint_url.is_some() || env_endpoint {
            b = b.force_path_style(true);
        }
        aws_sdk_s3::Client::from_conf(b.build())
    }
}
