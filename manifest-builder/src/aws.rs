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

    /// The shared configuration for another service (Lambda, IAM, STS) that `doctor` asks: with a
    /// custom `--endpoint-url` (moto, LocalStack: one port for every service) its calls go there
    /// too, unless `AWS_ENDPOINT_URL_<SERVICE>` names that service's own endpoint.
    pub async fn service_config(&self, service_env: &str) -> aws_config::SdkConfig {
        let shared = self.config().await;
        let own = std::env::var_os(format!("AWS_ENDPOINT_URL_{service_env}"))
            .is_some_and(|v| !v.is_empty());
        match &self.endpoint_url {
            Some(url) if !own => shared.into_builder().endpoint_url(url).build(),
            _ => shared,
        }
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
        aws_sdk_s3::Client::from_conf(b.interceptor(Reachability).build())
    }
}

/// Notes the endpoint and operation of an attempt that could not reach its server, so that the
/// error a command ends with can name them ([`explain`]): the SDK's own error says neither.
#[derive(Debug)]
pub struct Reachability;

#[derive(Debug, Clone)]
struct AttemptTarget(String);

impl aws_smithy_types::config_bag::Storable for AttemptTarget {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// The last endpoint (scheme://host:port) and operation that could not be reached. A process
/// global: the error is printed by `main`, far from the client that met it.
static UNREACHABLE: std::sync::Mutex<Option<(String, String)>> = std::sync::Mutex::new(None);

impl aws_sdk_s3::config::Intercept for Reachability {
    fn name(&self) -> &'static str {
        "Reachability"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        cfg.interceptor_state()
            .store_put(AttemptTarget(origin(context.request().uri())));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_s3::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let unreachable = matches!(context.output_or_error(), Some(Err(e))
            if e.is_connector_error() || e.is_timeout_error());
        if unreachable && let Some(AttemptTarget(endpoint)) = cfg.load::<AttemptTarget>() {
            let op = cfg
                .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
                .map(|m| format!("{} {}", m.service(), m.name()))
                .unwrap_or_default();
            *UNREACHABLE.lock().unwrap_or_else(|p| p.into_inner()) = Some((endpoint.clone(), op));
        }
        Ok(())
    }
}

/// `scheme://authority` of a request URI: the endpoint, without the key or the query.
fn origin(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?']).next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => uri.to_string(),
    }
}

/// One line for an error a command ends with. A server that could not be reached (refused,
/// reset, DNS, timeout) is said plainly, with the endpoint, the operation and what to check;
/// the SDK's detail follows. Any other error is its context chain as it is.
pub fn explain(err: &anyhow::Error) -> String {
    let detail = format!("{err:#}");
    let Some(conn) = err
        .chain()
        .find_map(|e| e.downcast_ref::<aws_sdk_s3::error::ConnectorError>())
    else {
        return detail;
    };
    let how = if conn.is_timeout() {
        "timed out".to_string()
    } else {
        // The innermost cause is the one that says what happened (refused, DNS, reset).
        let mut cause: &dyn std::error::Error = conn;
        while let Some(next) = cause.source() {
            cause = next;
        }
        cause.to_string()
    };
    let (endpoint, op) = UNREACHABLE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_else(|| ("the AWS endpoint".into(), String::new()));
    let during = if op.is_empty() {
        String::new()
    } else {
        format!(" ({op})")
    };
    // Without a context of ours the top is the SDK's own wording: say the operation instead.
    let top = err.to_string();
    let what = if top.contains("unhandled error") || top.contains("dispatch failure") {
        format!("calling{during}")
    } else {
        format!("{top}{during}")
    };
    format!(
        "{what}: could not reach {endpoint}: {how}. Check the endpoint URL (--endpoint-url or \
         AWS_ENDPOINT_URL for S3, --s3control-endpoint-url for jobs), that the server is running, \
         and the credentials and region. SDK: {detail}"
    )
}
