//! `run`, `serve` and `demo`: the main job in one command (select → manifest → submit → wait →
//! report), against AWS or on this machine with the local engine and, optionally, the embedded S3.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::aws::AwsOptions;
use crate::embedded_s3::{self, EmbeddedS3};
use crate::engine::{self, Engine, api::Endpoint, invoke};
use crate::job_cmd::{self, JobOptions, SubmitArgs, key_value};
use crate::location::Location;
use crate::report_cmd::{self, ReportSummary};
use crate::select_cmd::{self, ManifestArgs};

/// Account id of local jobs when none is given.
pub const LOCAL_ACCOUNT: &str = "000000000000";
/// Function ARN of local jobs when none is given (the in-process handler ignores it).
pub const LOCAL_FUNCTION: &str = "arn:aws:lambda:us-east-1:000000000000:function:batch-handler";
/// Role ARN of local jobs when none is given.
pub const LOCAL_ROLE: &str = "arn:aws:iam::000000000000:role/batch-operations-local";

/// Where the job runs, when not on AWS.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LocalArgs {
    /// Run on this machine: the local Batch Operations engine, the handler in this process.
    #[arg(long)]
    pub local: bool,
    /// With --local: an embedded S3 keeping its data in DIR (no AWS account needed).
    #[arg(long, value_name = "DIR")]
    pub embedded_s3: Option<PathBuf>,
    /// Port of the embedded S3 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub embedded_s3_port: u16,
    /// The local engine's job store (jobs survive a restart).
    #[arg(long, default_value = ".local-batch")]
    pub engine_dir: PathBuf,
    /// Port of the local engine's S3 Control API (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub engine_port: u16,
    /// Invocations in flight (default: cores × 4; the work waits on S3).
    #[arg(long)]
    pub task_concurrency: Option<usize>,
    /// Invoke the function through the Lambda Invoke API at this URL (e.g. `cargo lambda watch`)
    /// instead of in this process.
    #[arg(long)]
    pub function_url: Option<String>,
}

/// The local pieces, kept alive while a command runs.
pub struct Local {
    /// Options that point the SDK at the local pieces.
    pub aws: AwsOptions,
    /// Options that point the job commands at the engine.
    pub jobs: JobOptions,
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
    local: &LocalArgs,
    aws: &AwsOptions,
    jobs: &JobOptions,
) -> anyhow::Result<Local> {
    let mut aws = aws.clone();
    let mut jobs = jobs.clone();
    let mut out = Local {
        aws: aws.clone(),
        jobs: jobs.clone(),
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
    out.aws = aws;
    out.jobs = jobs;
    out.engine = Some(eng);
    out.api = Some(api);
    Ok(out)
}

/// Flags of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// What to select (the flags of `manifest`).
    #[command(flatten)]
    pub select: ManifestArgs,
    /// Where to run.
    #[command(flatten)]
    pub local: LocalArgs,
    /// The handler (default with --local: a local name; the in-process handler ignores it).
    #[arg(long)]
    pub function_arn: Option<String>,
    /// The role Batch Operations assumes (default with --local: a local name).
    #[arg(long)]
    pub role_arn: Option<String>,
    /// Completion report location s3://bucket/prefix (default: `reports` beside the manifest).
    #[arg(long)]
    pub report: Option<Location>,
    /// Job argument for the handler, repeatable (see `submit --help`).
    #[arg(long = "user-arg", value_parser = key_value)]
    pub user_args: Vec<(String, String)>,
    /// Invocation schema version.
    #[arg(long, default_value = "2.0", value_parser = ["1.0", "2.0"])]
    pub schema_version: String,
    /// Higher runs first.
    #[arg(long, default_value_t = 10)]
    pub priority: i64,
    /// Seconds between DescribeJob calls (default: 10, or 0.2 with --local).
    #[arg(long)]
    pub interval: Option<f64>,
    /// Give up waiting after this many seconds (the job goes on).
    #[arg(long)]
    pub timeout: Option<f64>,
}

/// What `run` did.
#[derive(Debug, Serialize)]
pub struct RunOutcome {
    /// What was selected.
    pub selected: u64,
    /// Bytes selected.
    pub selected_bytes: u64,
    /// The job, if one was submitted.
    pub job_id: Option<String>,
    /// Its final status.
    pub status: Option<String>,
    /// Its report, summarised.
    pub report: Option<ReportSummary>,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// Exit code (as `wait`).
    #[serde(skip)]
    pub exit: u8,
}

/// select → manifest → submit → wait → report.
pub async fn run(
    args: &RunArgs,
    aws: &AwsOptions,
    jobs: &JobOptions,
) -> anyhow::Result<RunOutcome> {
    let started = std::time::Instant::now();
    let local = start(&args.local, aws, jobs).await?;
    run_with(args, &local, started).await
}

/// `run` with the local pieces already started (the demo starts them first to fill the S3).
pub async fn run_with(
    args: &RunArgs,
    local: &Local,
    started: std::time::Instant,
) -> anyhow::Result<RunOutcome> {
    let (aws, jobs) = (&local.aws, &local.jobs);
    let mut select = args.select.clone();
    if select.output.is_none() {
        match (&select.bucket, args.local.local) {
            (Some(bucket), true) => {
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
                select.output = Some(Location::S3 {
                    bucket: bucket.clone(),
                    key: format!("batch-operations/manifests/run-{stamp}.csv"),
                });
            }
            _ => bail!("give --output s3://bucket/key.csv: where the job's manifest goes"),
        }
    }
    let output = select.output.clone().expect("set above");
    let summary = select_cmd::run(&select, aws).await?;
    let mut outcome = RunOutcome {
        selected: summary.objects,
        selected_bytes: summary.bytes,
        job_id: None,
        status: None,
        report: None,
        seconds: 0.0,
        exit: 0,
    };
    eprintln!(
        "selected {} recordings, {:.1} MB, manifest {output}",
        summary.objects,
        summary.bytes as f64 / 1e6
    );
    if summary.objects == 0 || select.dry_run {
        outcome.seconds = started.elapsed().as_secs_f64();
        return Ok(outcome);
    }
    if summary.manifests.len() != 1 {
        bail!(
            "the selection was split into {} manifests; submit each with `submit --manifest`",
            summary.manifests.len()
        );
    }
    let need = |v: &Option<String>, default: &str, what: &str| -> anyhow::Result<String> {
        match (v, args.local.local) {
            (Some(v), _) => Ok(v.clone()),
            (None, true) => Ok(default.to_string()),
            (None, false) => bail!("give --{what}"),
        }
    };
    let report = args
        .report
        .clone()
        .unwrap_or_else(|| output.sibling("reports"));
    let submit = SubmitArgs {
        manifest: Some(output.clone()),
        inventory: None,
        generate: false,
        source_bucket: None,
        source_prefix: None,
        older_than: None,
        created_after: None,
        created_before: None,
        suffix: ".wav".into(),
        min_size: crate::select::DEFAULT_MIN_SIZE,
        generator_storage_classes: Vec::new(),
        manifest_output: None,
        function_arn: need(&args.function_arn, LOCAL_FUNCTION, "function-arn")?,
        role_arn: need(&args.role_arn, LOCAL_ROLE, "role-arn")?,
        report: Some(report),
        report_scope: "all".into(),
        user_args: args.user_args.clone(),
        schema_version: args.schema_version.clone(),
        priority: args.priority,
        description: Some(format!("shrink {} recordings", summary.objects)),
        tags: Vec::new(),
        confirmation_required: false,
        dry_run: false,
    };
    let submitted = job_cmd::submit(&submit, jobs, aws).await?;
    let job_id = submitted.job_id.context("no job id")?;
    eprintln!("job {job_id} submitted");
    let interval = args
        .interval
        .unwrap_or(if args.local.local { 0.2 } else { 10.0 });
    let (state, code) = job_cmd::wait(
        &job_id,
        Duration::from_secs_f64(interval),
        args.timeout.map(Duration::from_secs_f64),
        jobs,
        aws,
    )
    .await?;
    outcome.exit = job_cmd::exit_code(&state);
    let _ = code;
    outcome.status = Some(state.status.clone());
    for f in &state.failures {
        eprintln!("job failure: {f}");
    }
    if state.is_terminal() {
        match report_cmd::read(&job_id, jobs, aws).await {
            Ok((loc, rows)) => outcome.report = Some(report_cmd::summarise(&loc, &rows)),
            Err(e) => eprintln!("no completion report: {e:#}"),
        }
    }
    outcome.job_id = Some(job_id);
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Prints a run's outcome for people.
pub fn print(o: &RunOutcome) {
    if let (Some(id), Some(status)) = (&o.job_id, &o.status) {
        println!("job {id}: {status}");
    } else {
        println!("nothing submitted ({} recordings selected)", o.selected);
    }
    if let Some(r) = &o.report {
        report_cmd::print(r);
        let gb = |b: u64| b as f64 / 1e9;
        let prices = crate::estimate::Prices::default();
        let before = gb(r.bytes_before) * prices.standard_gb_month;
        let after = gb(r.bytes_after) * prices.glacier_ir_gb_month;
        if r.converted > 0 {
            println!(
                "storage of the converted recordings: ${before:.4}/month in S3 Standard -> ${after:.4}/month in Glacier IR \
                 (saves ${:.4}/month, ${:.2} per TB-month of originals)",
                before - after,
                (before - after) / gb(r.bytes_before) * 1000.0
            );
        }
    }
    println!(
        "{:.1} s, {:.1} objects/s",
        o.seconds,
        o.selected as f64 / o.seconds.max(1e-9)
    );
}

/// Flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Also start the embedded S3, keeping its data in DIR.
    #[arg(long, value_name = "DIR")]
    pub embedded_s3: Option<PathBuf>,
    /// Port of the embedded S3 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub embedded_s3_port: u16,
    /// The job store.
    #[arg(long, default_value = ".local-batch")]
    pub engine_dir: PathBuf,
    /// Port of the S3 Control API (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Invocations in flight (default: cores × 4).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Invoke the function through the Lambda Invoke API at this URL instead of in process.
    #[arg(long)]
    pub function_url: Option<String>,
}

/// `serve`: starts the engine (and the embedded S3), prints the endpoints, runs until Ctrl-C.
pub async fn serve(args: &ServeArgs, aws: &AwsOptions, jobs: &JobOptions) -> anyhow::Result<()> {
    let local = LocalArgs {
        local: true,
        embedded_s3: args.embedded_s3.clone(),
        embedded_s3_port: args.embedded_s3_port,
        engine_dir: args.engine_dir.clone(),
        engine_port: args.port,
        task_concurrency: args.concurrency,
        function_url: args.function_url.clone(),
    };
    let l = start(&local, aws, jobs).await?;
    let endpoints = serde_json::json!({
        "s3control_endpoint_url": l.api.as_ref().map(|a| a.url.clone()),
        "account_id": l.jobs.account_id,
        "s3_endpoint_url": l.s3.as_ref().map(|s| s.url.clone()),
        "aws_access_key_id": l.s3.as_ref().map(|s| s.access_key.clone()),
        "aws_secret_access_key": l.s3.as_ref().map(|s| s.secret_key.clone()),
        "region": l.aws.region,
    });
    println!("{endpoints}");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
