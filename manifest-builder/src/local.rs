//! The local pieces of a run: the embedded S3 and the local Batch Operations engine
//! (`local-batch`), started in this process, with the options that point the SDK at them.
//! Built with the default `local` feature only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use local_batch::embedded_s3::{self, EmbeddedS3};
use local_batch::engine::{self, Engine, api::Endpoint, invoke};

use crate::aws::AwsOptions;
use crate::job::JobOptions;
use crate::run::{LOCAL_ACCOUNT, Target};

/// Where the job runs, when not on AWS.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Run on this machine: the local Batch Operations engine, the handler in this process.
    pub local: bool,
    /// With --local: an embedded S3 keeping its data in DIR (no AWS account needed).
    pub embedded_s3: Option<PathBuf>,
    /// Port of the embedded S3 (0: any free port).
    pub embedded_s3_port: u16,
    /// The local engine's job store (jobs survive a restart).
    pub engine_dir: PathBuf,
    /// Port of the local engine's S3 Control API (0: any free port).
    pub engine_port: u16,
    /// Invocations in flight (default: cores × 4; the work waits on S3).
    pub task_concurrency: Option<usize>,
    /// Invoke the function through the Lambda Invoke API at this URL (e.g. `cargo lambda watch`)
    /// instead of in this process.
    pub function_url: Option<String>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            local: false,
            embedded_s3: None,
            embedded_s3_port: 0,
            engine_dir: PathBuf::from(".local-batch"),
            engine_port: 0,
            task_concurrency: None,
            function_url: None,
        }
    }
}

/// The local pieces, kept alive while a command runs.
pub struct Local {
    /// Where the calls go: the local pieces.
    pub target: Target,
    /// The embedded S3, if started.
    pub s3: Option<EmbeddedS3>,
    /// The engine, if started.
    pub engine: Option<Engine>,
    /// The engine's endpoint.
    pub api: Option<Endpoint>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts what `local` asks for and returns options that reach it.
pub async fn start(
    local: &LocalOptions,
    aws: &AwsOptions,
    jobs: &JobOptions,
) -> anyhow::Result<Local> {
    let mut aws = aws.clone();
    let mut jobs = jobs.clone();
    let mut out = Local {
        target: Target {
            aws: aws.clone(),
            jobs: jobs.clone(),
        },
        s3: None,
        engine: None,
        api: None,
    };
    if !local.local {
        if local.embedded_s3.is_some() {
            bail!("--embedded-s3 needs --local (Batch Operations on AWS cannot reach it)");
        }
        return Ok(out);
    }
    if let Some(dir) = &local.embedded_s3 {
        let s3 = embedded_s3::start(dir, loopback(local.embedded_s3_port))
            .await
            .with_context(|| format!("starting the embedded S3 in {}", dir.display()))?;
        aws.endpoint_url = Some(s3.url.clone());
        aws.static_credentials = Some((s3.access_key.clone(), s3.secret_key.clone()));
        out.s3 = Some(s3);
    }
    if aws.region.is_none()
        && (aws.endpoint_url.is_some() || std::env::var_os("AWS_REGION").is_none())
    {
        aws.region = Some("us-east-1".into());
    }
    let s3 = aws.s3().await;
    let invoker: Arc<dyn invoke::Invoker> = match &local.function_url {
        Some(url) => Arc::new(invoke::LambdaApi::new(&aws.config().await, url)),
        None => {
            let settings = batch_handler::Settings::from_env()
                .map_err(|e| anyhow::anyhow!("handler settings from the environment: {e}"))?;
            let handler = batch_handler::Handler::new(s3.clone(), settings);
            Arc::new(invoke::InProcess::new(handler, Duration::from_secs(900)))
        }
    };
    let mut opts = engine::Options::new(local.engine_dir.clone());
    if let Some(c) = local.task_concurrency {
        opts.concurrency = c.max(1);
    }
    let eng = Engine::open(opts, s3, invoker)
        .with_context(|| format!("opening the job store {}", local.engine_dir.display()))?;
    eng.resume();
    let api = engine::api::serve(eng.clone(), loopback(local.engine_port))
        .await
        .context("starting the local engine's endpoint")?;
    jobs.s3control_endpoint_url = Some(api.url.clone());
    if jobs.account_id.is_none() {
        jobs.account_id = Some(LOCAL_ACCOUNT.into());
    }
    out.target = Target { aws, jobs };
    out.engine = Some(eng);
    out.api = Some(api);
    Ok(out)
}

/// `serve`: starts the engine (and the embedded S3), prints the endpoints, runs until Ctrl-C.
pub async fn serve(
    local: &LocalOptions,
    aws: &AwsOptions,
    jobs: &JobOptions,
) -> anyhow::Result<()> {
    let l = start(local, aws, jobs).await?;
    let control = l.api.as_ref().map(|a| a.url.clone());
    let s3 =
        l.s3.as_ref()
            .map(|s| s.url.clone())
            .or(aws.endpoint_url.clone());
    let environment = client_environment(
        control.as_deref().unwrap_or_default(),
        s3.as_deref(),
        l.s3.as_ref()
            .map(|s| (s.access_key.as_str(), s.secret_key.as_str())),
        l.target.aws.region.as_deref(),
    );
    let endpoints = serde_json::json!({
        "s3control_endpoint_url": control,
        "account_id": l.target.jobs.account_id,
        "s3_endpoint_url": l.s3.as_ref().map(|s| s.url.clone()),
        "aws_access_key_id": l.s3.as_ref().map(|s| s.access_key.clone()),
        "aws_secret_access_key": l.s3.as_ref().map(|s| s.secret_key.clone()),
        "region": l.target.aws.region,
        "environment": environment.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
    });
    println!("{endpoints}");
    eprintln!("boto3, the AWS CLI and other stock clients reach this engine with:");
    for (k, v) in &environment {
        eprintln!("  export {k}={v}");
    }
    eprintln!(
        "  then e.g. aws s3control list-jobs --account-id {}",
        l.target.jobs.account_id.as_deref().unwrap_or(LOCAL_ACCOUNT)
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

/// The environment that lets stock clients (boto3, the AWS CLI) use the engine and its S3 with
/// no code: their S3 Control rules put the account id in front of the endpoint's host, a name
/// that resolves nowhere, so the engine's endpoint is also their HTTP proxy (it answers the job
/// calls itself and passes anything else on to 127.0.0.1 only). `NO_PROXY` is emptied: an entry
/// such as `127.0.0.1` would send the job calls around the proxy, to that unresolvable name.
pub fn client_environment(
    control: &str,
    s3: Option<&str>,
    keys: Option<(&str, &str)>,
    region: Option<&str>,
) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "AWS_ENDPOINT_URL_S3_CONTROL".to_string(),
            control.to_string(),
        ),
        ("HTTP_PROXY".to_string(), control.to_string()),
        ("http_proxy".to_string(), control.to_string()),
        ("NO_PROXY".to_string(), String::new()),
        ("no_proxy".to_string(), String::new()),
    ];
    if let Some(s3) = s3 {
        env.push(("AWS_ENDPOINT_URL_S3".into(), s3.to_string()));
    }
    if let Some((key, secret)) = keys {
        env.push(("AWS_ACCESS_KEY_ID".into(), key.to_string()));
        env.push(("AWS_SECRET_ACCESS_KEY".into(), secret.to_string()));
    }
    // The Rust SDK reads AWS_REGION, botocore AWS_DEFAULT_REGION.
    let region = region.unwrap_or("us-east-1").to_string();
    env.push(("AWS_REGION".into(), region.clone()));
    env.push(("AWS_DEFAULT_REGION".into(), region));
    env.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
    env
}

/// Turns versioning on for a bucket of the embedded S3, so a run there converts in place as in
/// production (the original stays as the previous version); a no-op when it is on already.
pub async fn enable_versioning(s3: &aws_sdk_s3::Client, bucket: &str) -> anyhow::Result<()> {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let now = s3
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .map_err(aws_sdk_s3::Error::from)
        .with_context(|| format!("checking versioning of bucket {bucket}"))?;
    if now.status() == Some(&BucketVersioningStatus::Enabled) {
        return Ok(());
    }
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(aws_sdk_s3::Error::from)
        .with_context(|| format!("enabling versioning on bucket {bucket}"))?;
    Ok(())
}
