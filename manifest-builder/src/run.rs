//! The main job in one call: select → manifest → submit → wait → report, against AWS or on this
//! machine ([`crate::local`]: the local engine and, optionally, the embedded S3).

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::aws::AwsOptions;
use crate::job::{self, JobOptions, JobSpec};
use crate::location::Location;
use crate::report::{self, ReportSummary};
use crate::select::{self, Selection};

/// Account id of local jobs when none is given.
pub const LOCAL_ACCOUNT: &str = "000000000000";
/// Function ARN of local jobs when none is given (the in-process handler ignores it).
pub const LOCAL_FUNCTION: &str = "arn:aws:lambda:us-east-1:000000000000:function:batch-handler";
/// Role ARN of local jobs when none is given.
pub const LOCAL_ROLE: &str = "arn:aws:iam::000000000000:role/batch-operations-local";

/// What `run` does: the selection, then a job over it with these settings.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// What to select (the request of `manifest`).
    pub selection: Selection,
    /// On this machine: the local engine with the handler in this process (or `function_url`).
    pub local: bool,
    /// The handler (default with `local`: [`LOCAL_FUNCTION`]).
    pub function_arn: Option<String>,
    /// The role Batch Operations assumes (default with `local`: [`LOCAL_ROLE`]).
    pub role_arn: Option<String>,
    /// Completion report location (default: `reports` beside the manifest).
    pub report: Option<Location>,
    /// Job arguments for the handler.
    pub user_args: Vec<(String, String)>,
    /// Invocation schema version.
    pub schema_version: String,
    /// Higher runs first.
    pub priority: i64,
    /// Seconds between DescribeJob calls (default: 10, or 0.2 locally).
    pub interval: Option<f64>,
    /// Give up waiting after this many seconds (the job goes on).
    pub timeout: Option<f64>,
    /// Run `doctor`'s checks first and refuse on a failure.
    pub doctor: bool,
}

impl Default for RunRequest {
    fn default() -> Self {
        let job = JobSpec::default();
        RunRequest {
            selection: Selection::default(),
            local: false,
            function_arn: None,
            role_arn: None,
            report: None,
            user_args: Vec::new(),
            schema_version: job.schema_version,
            priority: job.priority,
            interval: None,
            timeout: None,
            doctor: true,
        }
    }
}

/// Where the calls of a run go: AWS, or the local pieces already started.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// S3 (and STS) calls.
    pub aws: AwsOptions,
    /// S3 Control calls.
    pub jobs: JobOptions,
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

/// select → manifest → submit → wait → report, with the calls going to `target` (AWS, or the
/// local pieces the caller started: see [`crate::local::start`]).
pub async fn run(
    args: &RunRequest,
    target: &Target,
    started: std::time::Instant,
) -> anyhow::Result<RunOutcome> {
    let (aws, jobs) = (&target.aws, &target.jobs);
    if args.doctor {
        let req = crate::doctor::DoctorRequest {
            bucket: args.selection.bucket.clone().unwrap_or_default(),
            prefix: args.selection.prefix.clone(),
            dest_bucket: crate::doctor::dest_bucket(&args.user_args),
            function_arn: (!args.local).then(|| args.function_arn.clone()).flatten(),
            role_arn: (!args.local).then(|| args.role_arn.clone()).flatten(),
            // Where the job's report will go: given, or `reports` beside the manifest.
            report: args
                .report
                .clone()
                .or_else(|| args.selection.output.as_ref().map(|o| o.sibling("reports")))
                .or_else(|| {
                    let bucket = args.selection.bucket.clone().filter(|_| args.local)?;
                    Some(Location::S3 {
                        bucket,
                        key: "batch-operations/manifests/reports".into(),
                    })
                }),
            local: args.local,
            ..Default::default()
        };
        crate::doctor::preflight(&req, aws, jobs).await?;
    }
    let mut select = args.selection.clone();
    let fingerprint = fingerprint(args, chrono::Utc::now().date_naive())?;
    let given = select.output.is_some();
    let default_output = |n: u32| -> anyhow::Result<Location> {
        match (&select.bucket, args.local) {
            // Named by the selection, not the clock: the same command run again finds it.
            (Some(bucket), true) => Ok(Location::S3 {
                bucket: bucket.clone(),
                key: match n {
                    1 => format!("batch-operations/manifests/run-{}.csv", &fingerprint[..16]),
                    n => format!(
                        "batch-operations/manifests/run-{}-{n}.csv",
                        &fingerprint[..16]
                    ),
                },
            }),
            _ => bail!("give --output s3://bucket/key.csv: where the job's manifest goes"),
        }
    };
    let mut outcome = RunOutcome {
        selected: 0,
        selected_bytes: 0,
        job_id: None,
        status: None,
        report: None,
        seconds: 0.0,
        exit: 0,
    };
    let s3 = aws.s3().await;
    // The run this command already started, if one is unfinished: follow it. A finished one
    // keeps its manifest; this run selects what is left, beside it.
    let mut job_id = None;
    let mut earlier: Option<RunMarker> = None;
    let mut n = 1;
    let (output, marker_at) = loop {
        let output = match &select.output {
            Some(o) if given => o.clone(),
            _ => default_output(n)?,
        };
        let marker_at = crate::manifest::beside(&output, "run.json");
        let found: Option<RunMarker> = match marker_at.read(&s3).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .ok()
                .filter(|m: &RunMarker| m.fingerprint == fingerprint),
            Err(_) => None,
        };
        let Some(m) = found.filter(|_| !select.dry_run) else {
            break (output, marker_at);
        };
        match &m.job_id {
            None => {
                eprintln!(
                    "an earlier run wrote {output} but stopped before its job was recorded: submitting it \
                     again (the same request token returns its job if it was created)"
                );
                earlier = Some(m);
                break (output, marker_at);
            }
            Some(id) => match job::status(id, jobs, aws).await {
                Ok(state) if !state.is_terminal() => {
                    eprintln!(
                        "job {id} was submitted for this selection by an earlier run ({marker_at}): following it"
                    );
                    outcome.selected = m.selected;
                    outcome.selected_bytes = m.selected_bytes;
                    job_id = Some(id.clone());
                    break (output, marker_at);
                }
                Ok(_) if !given && n < 10_000 => n += 1,
                Ok(_) => break (output, marker_at),
                Err(e) => {
                    eprintln!("the earlier run's job {id} is unknown ({e:#}): selecting again");
                    break (output, marker_at);
                }
            },
        }
    };
    select.output = Some(output.clone());
    if let Some(m) = &earlier {
        outcome.selected = m.selected;
        outcome.selected_bytes = m.selected_bytes;
    }
    let resubmit = earlier.as_ref().is_some_and(|m| m.job_id.is_none());
    if job_id.is_none() {
        if !resubmit {
            let summary = select::run(&select, aws).await?;
            outcome.selected = summary.objects;
            outcome.selected_bytes = summary.bytes;
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
        }
        let mut marker = RunMarker {
            fingerprint: fingerprint.clone(),
            manifest: output.to_string(),
            selected: outcome.selected,
            selected_bytes: outcome.selected_bytes,
            job_id: None,
        };
        // Recorded before CreateJob: a run killed in between resubmits the same request.
        write_marker(&s3, &marker_at, &marker).await?;
        let need = |v: &Option<String>, default: &str, what: &str| -> anyhow::Result<String> {
            match (v, args.local) {
                (Some(v), _) => Ok(v.clone()),
                (None, true) => Ok(default.to_string()),
                (None, false) => bail!("give --{what}"),
            }
        };
        let report = args
            .report
            .clone()
            .unwrap_or_else(|| output.sibling("reports"));
        let submit = JobSpec {
            manifest: Some(output.clone()),
            function_arn: need(&args.function_arn, LOCAL_FUNCTION, "function-arn")?,
            role_arn: need(&args.role_arn, LOCAL_ROLE, "role-arn")?,
            report: Some(report),
            user_args: args.user_args.clone(),
            schema_version: args.schema_version.clone(),
            priority: args.priority,
            description: Some(format!("shrink {} recordings", outcome.selected)),
            // `run` ran the checks before selecting.
            doctor: false,
            ..JobSpec::default()
        };
        let submitted = job::submit(&submit, jobs, aws).await?;
        let id = submitted.job_id.context("no job id")?;
        eprintln!("job {id} submitted");
        marker.job_id = Some(id.clone());
        write_marker(&s3, &marker_at, &marker).await?;
        job_id = Some(id);
    }
    let job_id = job_id.expect("submitted or found");
    let interval = args.interval.unwrap_or(if args.local { 0.2 } else { 10.0 });
    let (state, _) = job::wait(
        &job_id,
        Duration::from_secs_f64(interval),
        args.timeout.map(Duration::from_secs_f64),
        jobs,
        aws,
    )
    .await?;
    outcome.exit = job::exit_code(&state);
    outcome.status = Some(state.status.clone());
    for f in &state.failures {
        eprintln!("job failure: {f}");
    }
    if state.is_terminal() {
        match report::read(&job_id, jobs, aws).await {
            Ok((loc, rows)) => outcome.report = Some(report::summarise(&loc, &rows)),
            Err(e) => eprintln!("no completion report: {e:#}"),
        }
    }
    outcome.job_id = Some(job_id);
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// What a run records beside its manifest, so that the same command run again (after a crash,
/// a kill, a closed terminal) follows the same job instead of starting another.
#[derive(Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunMarker {
    /// [`fingerprint`] of the run.
    fingerprint: String,
    /// The manifest.
    manifest: String,
    /// Recordings selected.
    selected: u64,
    /// Their bytes.
    selected_bytes: u64,
    /// The job, once created.
    job_id: Option<String>,
}

async fn write_marker(
    s3: &aws_sdk_s3::Client,
    at: &Location,
    marker: &RunMarker,
) -> anyhow::Result<()> {
    at.write(s3, serde_json::to_vec_pretty(marker)?, "application/json")
        .await
        .with_context(|| format!("recording the run at {at}"))?;
    Ok(())
}

/// What makes two runs the same run: the selection, its window resolved to days (so
/// `--older-than 7d` tomorrow is another run), and the job's settings. Hex MD5.
pub fn fingerprint(args: &RunRequest, today: chrono::NaiveDate) -> anyhow::Result<String> {
    let s = &args.selection;
    let text = format!(
        "{:?}|{:?}|{}|{:?}|{}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}|{}",
        s.bucket,
        s.inventory.as_ref().map(|l| l.to_string()),
        s.prefix,
        s.window(today)?.map(|w| (w.from, w.to)),
        s.suffix,
        s.key_regex.as_ref().map(|r| r.as_str().to_string()),
        s.modified_after,
        s.modified_before,
        s.min_size,
        s.max_size,
        s.storage_classes,
        s.skip_storage_classes,
        s.check_tags,
        s.converted_tag,
        s.versions,
        s.output.as_ref().map(|l| l.to_string()),
        s.max_tasks,
        args.function_arn,
        args.role_arn,
        args.report.as_ref().map(|l| l.to_string()),
        args.user_args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&"),
        args.schema_version,
        args.priority,
    );
    Ok(batch_contract::md5::md5_hex(text.as_bytes()))
}

/// Prints a run's outcome for people.
pub fn print(o: &RunOutcome) {
    if let (Some(id), Some(status)) = (&o.job_id, &o.status) {
        println!("job {id}: {status}");
    } else {
        println!("nothing submitted ({} recordings selected)", o.selected);
    }
    if let Some(r) = &o.report {
        report::print(r);
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
