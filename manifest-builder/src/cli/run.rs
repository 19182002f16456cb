//! `run`, `serve` and `demo`: their flags, resolved into a [`RunRequest`], [`LocalOptions`] and
//! [`DemoOptions`].

use std::path::PathBuf;

#[cfg(feature = "local")]
use manifest_builder::demo::DemoOptions;
#[cfg(feature = "local")]
use manifest_builder::local::LocalOptions;
use manifest_builder::location::Location;
use manifest_builder::run::RunRequest;

use super::manifest::ManifestArgs;
use super::submit::OperationArgs;

/// The local pieces `run --local` and `serve` share.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// An embedded S3 keeping its data in DIR: no AWS account needed (`run` needs --local too).
    #[arg(long, value_name = "DIR")]
    pub embedded_s3: Option<PathBuf>,
    /// Port of the embedded S3 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub embedded_s3_port: u16,
    /// The local engine's job store (jobs survive a restart).
    #[arg(long, default_value = ".local-batch")]
    pub engine_dir: PathBuf,
    /// Invoke the function through the Lambda Invoke API at this URL (e.g. `cargo lambda watch`)
    /// instead of in this process.
    #[arg(long)]
    pub function_url: Option<String>,
}

/// Where `run` runs the job, when not on AWS.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Run on this machine: the local Batch Operations engine, the handler in this process.
    #[arg(long)]
    pub local: bool,
    /// The engine and the embedded S3.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Port of the local engine's S3 Control API (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub engine_port: u16,
    /// Invocations in flight (default: cores × 4; the work waits on S3).
    #[arg(long)]
    pub task_concurrency: Option<usize>,
}

#[cfg(feature = "local")]
impl From<&LocalArgs> for LocalOptions {
    fn from(a: &LocalArgs) -> Self {
        LocalOptions {
            local: a.local,
            embedded_s3: a.engine.embedded_s3.clone(),
            embedded_s3_port: a.engine.embedded_s3_port,
            engine_dir: a.engine.engine_dir.clone(),
            engine_port: a.engine_port,
            task_concurrency: a.task_concurrency,
            function_url: a.engine.function_url.clone(),
        }
    }
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
    #[arg(long, value_parser = super::check::function_arn)]
    pub function_arn: Option<String>,
    /// The role Batch Operations assumes (default with --local: a local name).
    #[arg(long, value_parser = super::check::role_arn)]
    pub role_arn: Option<String>,
    /// Completion report location s3://bucket/prefix (default: `reports` beside the manifest).
    #[arg(long)]
    pub report: Option<Location>,
    /// Handler arguments, schema and priority (as `submit`).
    #[command(flatten)]
    pub operation: OperationArgs,
    /// Seconds between DescribeJob calls (default: 10, or 0.2 with --local).
    #[arg(long)]
    pub interval: Option<f64>,
    /// Give up waiting after this many seconds (the job goes on).
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Submit without running `doctor`'s checks first.
    #[arg(long)]
    pub skip_doctor: bool,
}

impl From<&RunArgs> for RunRequest {
    fn from(a: &RunArgs) -> Self {
        RunRequest {
            selection: (&a.select).into(),
            local: a.local.local,
            function_arn: a.function_arn.clone(),
            role_arn: a.role_arn.clone(),
            report: a.report.clone(),
            user_args: a.operation.user_args.clone(),
            schema_version: a.operation.schema_version.clone(),
            priority: a.operation.priority,
            interval: a.interval,
            timeout: a.timeout,
            doctor: !a.skip_doctor,
        }
    }
}

/// Flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The engine and the embedded S3.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Port of the S3 Control API (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Invocations in flight (default: cores × 4).
    #[arg(long)]
    pub concurrency: Option<usize>,
}

#[cfg(feature = "local")]
impl From<&ServeArgs> for LocalOptions {
    fn from(a: &ServeArgs) -> Self {
        LocalOptions::from(&LocalArgs {
            local: true,
            engine: a.engine.clone(),
            engine_port: a.port,
            task_concurrency: a.concurrency,
        })
    }
}

/// Flags of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Good recordings to write (the odd and broken ones come on top).
    #[arg(long, default_value_t = 300)]
    pub recordings: usize,
    /// Shortest call, minutes.
    #[arg(long, default_value_t = 1.0)]
    pub min_minutes: f64,
    /// Longest call, minutes.
    #[arg(long, default_value_t = 4.0)]
    pub max_minutes: f64,
    /// Keep the embedded S3 and the job store here (default: a temporary folder, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Invocations in flight (default: cores × 4).
    #[arg(long)]
    pub task_concurrency: Option<usize>,
    /// Job argument for the handler, repeatable (e.g. codec=flac, downmix=stereo).
    #[arg(long = "user-arg", value_parser = super::check::user_arg)]
    pub user_args: Vec<(String, String)>,
}

#[cfg(feature = "local")]
impl From<&DemoArgs> for DemoOptions {
    fn from(a: &DemoArgs) -> Self {
        DemoOptions {
            recordings: a.recordings,
            min_minutes: a.min_minutes,
            max_minutes: a.max_minutes,
            dir: a.dir.clone(),
            task_concurrency: a.task_concurrency,
            user_args: a.user_args.clone(),
        }
    }
}

#[cfg(all(test, feature = "local"))]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        run: RunArgs,
    }

    #[derive(Parser)]
    struct Demo {
        #[command(flatten)]
        demo: DemoArgs,
    }

    #[test]
    fn the_flags_default_to_the_library_defaults() {
        let run = Wrap::try_parse_from(["run"]).unwrap().run;
        let ours = RunRequest::from(&run);
        assert_eq!(format!("{ours:?}"), format!("{:?}", RunRequest::default()));
        let local = LocalOptions::from(&run.local);
        assert_eq!(
            format!("{local:?}"),
            format!("{:?}", LocalOptions::default())
        );
        let demo = Demo::try_parse_from(["demo"]).unwrap().demo;
        assert_eq!(
            format!("{:?}", DemoOptions::from(&demo)),
            format!("{:?}", DemoOptions::default())
        );
    }
}
