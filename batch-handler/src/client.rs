//! S3 clients from the standard AWS configuration chain, with a custom endpoint when asked, and
//! the bucket facts more than one component needs.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_bucket_versioning::GetBucketVersioningError;
use aws_sdk_s3::types::BucketVersioningStatus;

/// Builds an S3 client from `aws-config`'s chain (environment, profile, container/instance role).
///
/// A custom endpoint (`endpoint_url`, or `AWS_ENDPOINT_URL[_S3]` which the chain reads itself)
/// switches to path-style addressing: local servers on 127.0.0.1 or localhost have no
/// per-bucket host names.
pub async fn s3_client(endpoint_url: Option<&str>) -> aws_sdk_s3::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared);
    let env_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    if endpoint_url.is_some() || env_endpoint {
        builder = builder.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// A bucket's versioning state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// Every write makes a new version.
    Enabled,
    /// Was enabled; writes now replace the `null` version.
    Suspended,
    /// Never enabled: a write replaces the object.
    Off,
}

/// Asks S3 for a bucket's versioning state.
pub async fn bucket_versioning(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Versioning, SdkError<GetBucketVersioningError, HttpResponse>> {
    match s3.get_bucket_versioning().bucket(bucket).send().await {
        Ok(out) => Ok(match out.status() {
            Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
            Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
            _ => Versioning::Off,
        }),
        Err(e) => status_from_unparsed_ok(&e).ok_or(e),
    }
}

/// Reads `<Status>` from a 200 response the SDK could not parse.
///
/// Some S3-compatible servers (moto among them) wrap the answer in a root element other than
/// S3's `VersioningConfiguration`, which the SDK's strict XML reader rejects. Only a successful
/// HTTP status is read this way; anything else stays an error.
fn status_from_unparsed_ok(
    err: &SdkError<GetBucketVersioningError, HttpResponse>,
) -> Option<Versioning> {
    let raw = err.raw_response()?;
    if raw.status().as_u16() != 200 {
        return None;
    }
    let body = std::str::from_utf8(raw.body().bytes()?).ok()?;
    Some(if body.contains("<Status>Enabled</Status>") {
        Versioning::Enabled
    } else if body.contains("<Status>Suspended</Status>") {
        Versioning::Suspended
    } else {
        Versioning::Off
    })
}
