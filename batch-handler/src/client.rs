//! S3 clients from the standard AWS configuration chain, with a custom endpoint when asked.

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
