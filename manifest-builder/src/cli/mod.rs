//! The command line: clap types live here and nowhere else. Each command resolves its flags into
//! the library's plain request type (`From`) and calls it; what it prints is the library's answer,
//! as JSON with `--json`.

mod check;
mod doctor;
mod estimate;
mod global;
mod manifest;
mod run;
mod submit;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use manifest_builder as mb;
use manifest_builder::aws::AwsOptions;
use manifest_builder::estimate::{Prices, Workload};
use manifest_builder::job::{self, JobOptions, JobSpec};
use manifest_builder::location::Location;
use manifest_builder::report;
use manifest_builder::run::RunRequest;
use manifest_builder::select::{self, Selection};
use manifest_builder::synth;

use estimate::{PriceArgs, WorkloadArgs};
use global::{AwsArgs, JobArgs};
use manifest::ManifestArgs;
#[cfg(feature = "local")]
use run::{DemoArgs, ServeArgs};
use run::{LocalArgs, RunArgs};
use submit::SubmitArgs;

#[derive(Parser)]
#[command(
    version,
    about = "Select Amazon Connect call recordings and run the S3 Batch Operations jobs that shrink them",
    long_about = "Select Amazon Connect call recordings and run the S3 Batch Operations jobs that shrink them.\n\n\
    Typical use: `manifest-builder manifest --bucket amazon-connect-0123 --prefix connect/acme/CallRecordings/ \
    --older-than 7d --output s3://ops-bucket/manifests/week.csv` lists only the day folders of the window, \
    keeps .wav objects of 512 KiB or more outside the archive classes, and writes a Batch Operations CSV \
    manifest (strictly URL-encoded, version ids on versioned buckets) with a summary beside it."
)]
pub struct Cli {
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    jobs: JobArgs,
    /// Machine-readable output (JSON on stdout).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Write a Batch Operations CSV manifest of the recordings that are due.
    Manifest(Box<ManifestArgs>),
    /// Create the S3 Batch Operations job (LambdaInvoke) for a manifest.
    Submit(Box<SubmitArgs>),
    /// Show a job's status, progress and failures.
    Status {
        /// Job id.
        job_id: String,
    },
    /// Follow a job to its end. Exit 0: complete without failed tasks; 2: failed tasks;
    /// 3: job failed; 4: cancelled; 5: timed out.
    Wait {
        /// Job id.
        job_id: String,
        /// Seconds between DescribeJob calls.
        #[arg(long, default_value_t = 10.0)]
        interval: f64,
        /// Give up after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// List jobs (of the last 90 days), optionally by status.
    List {
        /// Only these statuses (repeatable): Active, Complete, Failed, Suspended...
        #[arg(long = "status")]
        statuses: Vec<String>,
    },
    /// Let a job created with --confirmation-required run.
    Confirm {
        /// Job id.
        job_id: String,
    },
    /// Cancel a job (jobs are billed even when cancelled).
    Cancel {
        /// Job id.
        job_id: String,
        /// Why, recorded on the job.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Read a completion report: totals, failure reasons, bytes saved; optionally a retry manifest.
    Report {
        /// A job id, s3://.../job-<id>/manifest.json (or its folder), or a local copy of the report.
        what: String,
        /// Write the failed tasks here as a manifest (s3://... or a local path).
        #[arg(long)]
        retry_manifest: Option<Location>,
        /// Also write the report as one self-contained HTML page (totals, outcomes, failure
        /// reasons, processing time per recording-minute, links to the files).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// A job of the local engine (with --embedded-s3: the demo's or run's store).
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Check a finished job against the originals: each conversion is converted again from the
    /// original version it names and compared byte for byte, with its tags, metadata and
    /// encryption. Exit 0: all verified (or rolled back, or originals expired); 2: mismatches.
    Verify {
        /// A job id, s3://.../job-<id>/manifest.json (or its folder), or a local copy of the report.
        what: String,
        /// Check only N conversions, chosen at random.
        #[arg(long)]
        sample: Option<usize>,
        /// Seed of --sample (printed, so a sample can be repeated).
        #[arg(long)]
        seed: Option<u64>,
        /// Objects checked at once.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
        /// The storage class every conversion must be in (the job's storageClass, e.g.
        /// GLACIER_IR); default: any, listed per object in the verification report.
        #[arg(long)]
        storage_class: Option<String>,
        /// A job of the local engine (with --embedded-s3: the demo's or run's store).
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Undo a job: copy each original version back onto its key, only where the key still holds
    /// the job's conversion (If-Match); the conversion stays as a noncurrent version.
    /// Exit 0: every original is current again; 2: some were skipped or refused (listed).
    Rollback {
        /// A job id, s3://.../job-<id>/manifest.json (or its folder), or a local copy of the report.
        what: String,
        /// Check everything, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Objects at once.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
        /// A job of the local engine (with --embedded-s3: the demo's or run's store).
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Re-run a job's failed tasks: report, retry manifest, and a new job with the same settings.
    Redrive {
        /// Job id.
        job_id: String,
        /// Where the retry manifest goes (s3://bucket/key.csv).
        #[arg(long)]
        retry_manifest: Location,
        /// Read the report and count, write and submit nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Before a job: whether its savings will be real and its tasks can succeed (versioning,
    /// lifecycle, Object Lock, encryption and KMS, the function, the job role, the report
    /// bucket, replication, archive classes). Exit 0: all pass; 1: warnings; 2: a failure.
    Doctor(Box<doctor::DoctorArgs>),
    /// Storage and processing cost over the years, before and after, month by month.
    ///
    /// From assumptions (--minutes-per-month ...) or measured inputs (--from-summary of a
    /// manifest: its bytes are a backlog converted in the first month). Prices are flags with
    /// us-east-1 defaults.
    Estimate {
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        prices: PriceArgs,
        /// Years to project.
        #[arg(long, default_value_t = 6)]
        years: u32,
        /// A manifest summary (written by `manifest`): its bytes become the backlog.
        #[arg(long)]
        from_summary: Option<Location>,
        /// Monthly rows as CSV on stdout.
        #[arg(long)]
        csv: bool,
        /// Also draw the chart (cost per month before and after, storage and processing apart,
        /// break-even, totals) as an SVG file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Also write a self-contained HTML page with the chart and the yearly table.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// The main job in one command: select, write the manifest, submit, follow, report.
    ///
    /// Against AWS by default; `--local` runs the job on this machine (local Batch Operations
    /// engine, handler in this process) and `--local --embedded-s3 DIR` needs no AWS account.
    Run(Box<RunArgs>),
    /// Start the local Batch Operations engine (and with --embedded-s3 an S3) and print the endpoints.
    #[cfg(feature = "local")]
    Serve(ServeArgs),
    /// Try everything with no AWS account: embedded S3, local engine, synthetic Connect recordings.
    #[cfg(feature = "local")]
    Demo(DemoArgs),
    /// Write a synthetic Amazon Connect recording (PCM s16le 8 kHz stereo, two talkers).
    SampleRecording {
        /// Output WAV.
        output: PathBuf,
        /// Length in minutes.
        #[arg(long, default_value_t = 5.0)]
        minutes: f64,
        /// Seed: the same seed gives the same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u32,
    },
}

/// Where a command's calls go: AWS (or the given endpoints), or with `--local` the engine and
/// embedded S3 started here, kept alive by the returned pieces.
#[cfg(feature = "local")]
async fn local_target(
    local: &LocalArgs,
    aws: &mb::aws::AwsOptions,
    jobs: &JobOptions,
) -> anyhow::Result<(mb::run::Target, Option<mb::local::Local>)> {
    if !local.local {
        return Ok((
            mb::run::Target {
                aws: aws.clone(),
                jobs: jobs.clone(),
            },
            None,
        ));
    }
    let pieces = mb::local::start(&local.into(), aws, jobs).await?;
    Ok((pieces.target.clone(), Some(pieces)))
}

/// Without the local engine, `--local` is refused.
#[cfg(not(feature = "local"))]
async fn local_target(
    local: &LocalArgs,
    aws: &mb::aws::AwsOptions,
    jobs: &JobOptions,
) -> anyhow::Result<(mb::run::Target, Option<()>)> {
    if local.local {
        anyhow::bail!(
            "--local: this build has no local engine (built without the `local` feature)"
        );
    }
    Ok((
        mb::run::Target {
            aws: aws.clone(),
            jobs: jobs.clone(),
        },
        None,
    ))
}

fn print<T: serde::Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

/// Runs one command; the exit code says how it ended.
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    manifest_builder::progress::set_quiet(cli.json);
    let (aws, jobs, json) = (
        &AwsOptions::from(&cli.aws),
        &JobOptions::from(&cli.jobs),
        cli.json,
    );
    match cli.command {
        Command::Submit(args) => {
            let submitted = job::submit(&JobSpec::from(&*args), jobs, aws).await?;
            print(json, &submitted, |s| match &s.job_id {
                Some(id) => println!("{id}"),
                None => println!(
                    "{}",
                    serde_json::to_string_pretty(&s.request).expect("json")
                ),
            })?;
        }
        Command::Status { job_id } => {
            let state = job::status(&job_id, jobs, aws).await?;
            print(json, &state, |s| println!("{}", job::describe_line(s)))?;
        }
        Command::Wait {
            job_id,
            interval,
            timeout,
        } => {
            let (state, code) = job::wait(
                &job_id,
                std::time::Duration::from_secs_f64(interval),
                timeout.map(std::time::Duration::from_secs_f64),
                jobs,
                aws,
            )
            .await?;
            print(json, &state, |s| println!("{}", job::describe_line(s)))?;
            return Ok(code);
        }
        Command::List { statuses } => {
            let all = job::list(&statuses, jobs, aws).await?;
            print(json, &all, |all| {
                all.iter()
                    .for_each(|s| println!("{}", job::describe_line(s)))
            })?;
        }
        Command::Report {
            what,
            retry_manifest,
            html,
            local,
        } => {
            let (target, _pieces) = local_target(&local, aws, jobs).await?;
            let (aws, jobs) = (&target.aws, &target.jobs);
            let (loc, rows, files) = report::read_with_files(&what, jobs, aws).await?;
            let summary = report::summarise(&loc, &rows);
            if let Some(out) = retry_manifest {
                let text = report::retry_manifest(&rows)?;
                out.write(&aws.s3().await, text.into_bytes(), "text/csv")
                    .await?;
                eprintln!("retry manifest: {out} ({} tasks)", summary.failed);
            }
            if let Some(path) = html {
                let page = mb::pictures::report_html(
                    &format!("Completion report: {what}"),
                    &summary,
                    &rows,
                    &files,
                    &mb::estimate::Prices::default(),
                );
                std::fs::write(&path, page)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("report page: {}", path.display());
            }
            print(json, &summary, report::print)?;
        }
        Command::Verify {
            what,
            sample,
            seed,
            concurrency,
            storage_class,
            local,
        } => {
            let req = mb::verify::VerifyRequest {
                what,
                sample,
                seed,
                concurrency: concurrency.into(),
                storage_class,
            };
            let (target, _pieces) = local_target(&local, aws, jobs).await?;
            let summary = mb::verify::verify(&req, &target.jobs, &target.aws).await?;
            print(json, &summary, mb::verify::print)?;
            return Ok(std::process::ExitCode::from(summary.exit));
        }
        Command::Rollback {
            what,
            dry_run,
            concurrency,
            local,
        } => {
            let req = mb::rollback::RollbackRequest {
                what,
                dry_run,
                concurrency: concurrency.into(),
            };
            let (target, _pieces) = local_target(&local, aws, jobs).await?;
            let summary = mb::rollback::rollback(&req, &target.jobs, &target.aws).await?;
            print(json, &summary, mb::rollback::print)?;
            return Ok(std::process::ExitCode::from(summary.exit));
        }
        Command::Redrive {
            job_id,
            retry_manifest,
            dry_run,
        } => {
            let done = report::redrive(
                &job_id,
                &retry_manifest,
                report::Failures::All,
                dry_run,
                jobs,
                aws,
            )
            .await?;
            print(json, &done, |d| match &d.job_id {
                Some(id) => println!("{id}"),
                None => eprintln!(
                    "{} failed tasks of {}; no job submitted",
                    d.tasks, d.from_job
                ),
            })?;
        }
        Command::Estimate {
            workload,
            prices,
            years,
            from_summary,
            csv,
            svg,
            html,
        } => {
            let codec = workload
                .codec
                .as_deref()
                .and_then(mb::estimate::codec_profile)
                .copied();
            let (mut workload, prices) = (Workload::from(&workload), Prices::from(&prices));
            if let Some(loc) = from_summary {
                let summary: serde_json::Value =
                    serde_json::from_slice(&loc.read(&aws.s3().await).await?)
                        .with_context(|| format!("{loc} is not a manifest summary"))?;
                let bytes = summary["bytes"]
                    .as_u64()
                    .with_context(|| format!("{loc}: no \"bytes\" field"))?;
                workload.backlog_gb += bytes as f64 / 1e9;
            }
            if workload.minutes_per_month <= 0.0 && workload.backlog_gb <= 0.0 {
                anyhow::bail!(
                    "nothing to estimate: give --minutes-per-month, --backlog-gb or --from-summary"
                );
            }
            let mut e = mb::estimate::project(&workload, &prices, years.clamp(1, 50) * 12);
            e.codec = codec;
            if let Some(path) = &svg {
                std::fs::write(path, mb::pictures::estimate_svg(&e))
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("chart: {}", path.display());
            }
            if let Some(path) = &html {
                std::fs::write(path, mb::pictures::estimate_html(&e))
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("page: {}", path.display());
            }
            if csv {
                print!("{}", mb::estimate::csv(&e));
            } else {
                print(json, &e, |e| print!("{}", mb::estimate::table(e)))?;
            }
        }
        Command::Doctor(args) => {
            let mut req = mb::doctor::DoctorRequest::from(&*args);
            let (target, _pieces) = local_target(&args.local, aws, jobs).await?;
            let mut listing_failed = None;
            if let Some(m) = &req.manifest
                && let Some((facts, source)) =
                    mb::doctor::facts_of_manifest(m, &target.aws.s3().await).await
            {
                req.facts = Some(facts);
                if let (true, Some((bucket, prefix))) = (req.bucket.is_empty(), source) {
                    (req.bucket, req.prefix) = (bucket, prefix);
                }
            }
            if req.facts.is_none()
                && !args.no_selection
                && (args.select.bucket.is_some() || args.select.inventory.is_some())
            {
                match mb::doctor::facts_of_selection(&Selection::from(&args.select), &target.aws)
                    .await
                {
                    Ok(f) => req.facts = Some(f),
                    Err(e) => listing_failed = Some(mb::aws::explain(&e)),
                }
            }
            let mut d = mb::doctor::diagnose(&req, &target.aws, &target.jobs).await;
            if let Some(e) = listing_failed {
                d.push(mb::doctor::Check::warn(
                    "selection",
                    format!("the selection could not be listed, so its checks were left out: {e}"),
                    "check --bucket, --prefix and s3:ListBucket (s3:ListBucketVersions)",
                ));
            }
            print(json, &d, mb::doctor::print)?;
            return Ok(std::process::ExitCode::from(d.exit));
        }
        Command::Confirm { job_id } => {
            let status = job::set_status(&job_id, "Ready", None, jobs, aws).await?;
            print(
                json,
                &serde_json::json!({"job_id": job_id, "status": status}),
                |v| println!("{}", v["status"].as_str().unwrap_or("")),
            )?;
        }
        Command::Cancel { job_id, reason } => {
            let status =
                job::set_status(&job_id, "Cancelled", reason.as_deref(), jobs, aws).await?;
            print(
                json,
                &serde_json::json!({"job_id": job_id, "status": status}),
                |v| println!("{}", v["status"].as_str().unwrap_or("")),
            )?;
        }
        Command::Manifest(args) => {
            let summary = select::run(&Selection::from(&*args), aws).await?;
            print(json, &summary, |s| select::print_summary(s, args.dry_run))?;
        }
        Command::Run(args) => {
            let started = std::time::Instant::now();
            let request = RunRequest::from(&*args);
            #[cfg(feature = "local")]
            let local = manifest_builder::local::start(&(&args.local).into(), aws, jobs).await?;
            #[cfg(feature = "local")]
            let target = local.target.clone();
            // The embedded S3 runs the production mode: in place on a versioned bucket.
            #[cfg(feature = "local")]
            if let (Some(_), Some(bucket)) = (&local.s3, &request.selection.bucket) {
                manifest_builder::local::enable_versioning(&target.aws.s3().await, bucket).await?;
            }
            #[cfg(not(feature = "local"))]
            let target = {
                if args.local.local {
                    anyhow::bail!(
                        "--local: this build has no local engine (built without the `local` feature)"
                    );
                }
                mb::run::Target {
                    aws: aws.clone(),
                    jobs: jobs.clone(),
                }
            };
            let outcome = mb::run::run(&request, &target, started).await?;
            print(json, &outcome, mb::run::print)?;
            return Ok(std::process::ExitCode::from(outcome.exit));
        }
        #[cfg(feature = "local")]
        Command::Serve(args) => manifest_builder::local::serve(&(&args).into(), aws, jobs).await?,
        #[cfg(feature = "local")]
        Command::Demo(args) => {
            let outcome = manifest_builder::demo::demo(&(&args).into()).await?;
            print(json, &outcome, mb::run::print)?;
            // The demo's broken recordings fail on purpose: a completed job is a success.
            let done = outcome.status.as_deref() == Some("Complete");
            return Ok(if done {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(outcome.exit)
            });
        }
        Command::SampleRecording {
            output,
            minutes,
            seed,
        } => {
            let file = std::fs::File::create(&output)
                .with_context(|| format!("creating {}", output.display()))?;
            synth::write_call(std::io::BufWriter::new(file), minutes * 60.0, seed)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "{}: {minutes} min synthetic Connect recording",
                output.display()
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
