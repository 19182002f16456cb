//! The weekly manifest job: `manifest-builder` as a Lambda that EventBridge Scheduler fires. It
//! selects the recordings of one window (by default the 7 days that ended `DELAY_DAYS` ago,
//! counted from the schedule's own time, so a retry days later picks the same window), writes the
//! manifest, submits the job and returns its id. A window is submitted once: a marker object
//! written with `If-None-Match: *` records the job, and the job's idempotency token (derived
//! from the manifest's ETag) makes two concurrent runs create one job.
//!
//! Every run also heals the windows before it, oldest first (`CATCH_UP_WINDOWS`, default 8,
//! never before `START_DATE`): a window without a marker (a run that failed after the
//! scheduler's retries, a paused schedule) is submitted; a job that completed with
//! TemporaryFailure tasks gets one re-drive job for them; a job that failed for a reason other
//! than its manifest is resubmitted once. Each such step is recorded in the window's marker with
//! a conditional write, so concurrent or repeated runs do it once. Windows older than the
//! look-back are left to `manifest-builder run --from --to`.

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate};
use serde_json::{Value, json};

use crate::aws::AwsOptions;
use crate::job::{self, JobOptions, JobSpec};
use crate::location::Location;
use crate::select::{self, Selection};

/// The function's configuration, from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `RECORDINGS_BUCKET`.
    pub bucket: String,
    /// `RECORDINGS_PREFIX`, e.g. `connect/acme/CallRecordings/`.
    pub prefix: String,
    /// `MANIFEST_LOCATION`, `s3://ops-bucket/batch-operations/manifests`.
    pub manifests: Location,
    /// `REPORT_LOCATION`, `s3://ops-bucket/batch-operations/reports`.
    pub report: Location,
    /// `HANDLER_FUNCTION_ARN`.
    pub function_arn: String,
    /// `JOB_ROLE_ARN`.
    pub role_arn: String,
    /// `ACCOUNT_ID` (else STS).
    pub account_id: Option<String>,
    /// `DELAY_DAYS`: recordings are final this many days after the call (default 7).
    pub delay_days: u32,
    /// `WINDOW_DAYS`: days per run (default 7, for a weekly schedule).
    pub window_days: u32,
    /// `USER_ARGUMENTS`: `key=value,key=value` passed to the handler.
    pub user_args: Vec<(String, String)>,
    /// `MIN_SIZE`: smallest object in bytes (default 512 KiB).
    pub min_size: u64,
    /// `CATCH_UP_WINDOWS`: earlier windows each run looks back over (default 8; 0: none).
    pub catch_up_windows: u32,
    /// `START_DATE`: no window ending before this day is looked at (YYYY-MM-DD).
    pub start_date: Option<NaiveDate>,
    /// `STUCK_AFTER_DAYS`: a window due this many days without a completed job is stuck (default 14).
    pub stuck_after_days: u32,
}

impl Config {
    /// Reads the configuration through `lookup` (the environment in the function).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let need = |k: &str| {
            lookup(k)
                .filter(|v| !v.is_empty())
                .with_context(|| format!("environment variable {k} is not set"))
        };
        let number = |k: &str, default: u64| -> anyhow::Result<u64> {
            match lookup(k).filter(|v| !v.is_empty()) {
                Some(v) => v
                    .parse()
                    .with_context(|| format!("{k}={v:?} is not a whole number")),
                None => Ok(default),
            }
        };
        let location = |k: &str| -> anyhow::Result<Location> {
            let v = need(k)?;
            let loc: Location = v.parse().with_context(|| format!("{k}={v:?}"))?;
            if !matches!(loc, Location::S3 { .. }) {
                bail!("{k}={v:?} must be s3://bucket/prefix");
            }
            Ok(loc)
        };
        let user_args = lookup("USER_ARGUMENTS")
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .with_context(|| format!("USER_ARGUMENTS: {p:?} is not key=value"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let window_days = number("WINDOW_DAYS", 7)? as u32;
        if window_days == 0 {
            bail!("WINDOW_DAYS must be at least 1");
        }
        Ok(Config {
            bucket: need("RECORDINGS_BUCKET")?,
            prefix: lookup("RECORDINGS_PREFIX").unwrap_or_default(),
            manifests: location("MANIFEST_LOCATION")?,
            report: location("REPORT_LOCATION")?,
            function_arn: need("HANDLER_FUNCTION_ARN")?,
            role_arn: need("JOB_ROLE_ARN")?,
            account_id: lookup("ACCOUNT_ID").filter(|v| !v.is_empty()),
            delay_days: number("DELAY_DAYS", 7)? as u32,
            window_days,
            user_args,
            min_size: number("MIN_SIZE", crate::select::DEFAULT_MIN_SIZE)?,
            catch_up_windows: number("CATCH_UP_WINDOWS", 8)?.min(520) as u32,
            start_date: lookup("START_DATE")
                .filter(|v| !v.is_empty())
                .map(|v| {
                    NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                        .with_context(|| format!("START_DATE={v:?} is not YYYY-MM-DD"))
                })
                .transpose()?,
            stuck_after_days: number("STUCK_AFTER_DAYS", 14)? as u32,
        })
    }
}

/// The window of a run at `today`: `window_days` days, the last of them `delay_days` ago.
pub fn window(today: NaiveDate, delay_days: u32, window_days: u32) -> (NaiveDate, NaiveDate) {
    let to = today - chrono::Days::new(u64::from(delay_days));
    let from = to - chrono::Days::new(u64::from(window_days.saturating_sub(1)));
    (from, to)
}

/// The day a run counts from: the event's `scheduledTime` (EventBridge Scheduler's
/// `<aws.scheduler.scheduled-time>`) or `time` (EventBridge), else today.
fn run_day(event: &Value) -> anyhow::Result<NaiveDate> {
    for field in ["scheduledTime", "time"] {
        if let Some(t) = event.get(field).and_then(Value::as_str) {
            return DateTime::parse_from_rfc3339(t)
                .map(|d| d.date_naive())
                .with_context(|| format!("event field {field}={t:?} is not an RFC 3339 time"));
        }
    }
    Ok(chrono::Utc::now().date_naive())
}

fn day(event: &Value, field: &str) -> anyhow::Result<Option<NaiveDate>> {
    event
        .get(field)
        .and_then(Value::as_str)
        .map(|d| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .with_context(|| format!("event field {field}={d:?} is not YYYY-MM-DD"))
        })
        .transpose()
}

/// The windows a run at `today` looks at, oldest first: the look-back, then the current one.
pub fn windows(cfg: &Config, today: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let (from, to) = window(today, cfg.delay_days, cfg.window_days);
    let step = u64::from(cfg.window_days);
    (0..=u64::from(cfg.catch_up_windows))
        .rev()
        .map(|k| {
            (
                from - chrono::Days::new(k * step),
                to - chrono::Days::new(k * step),
            )
        })
        .filter(|(_, to)| cfg.start_date.is_none_or(|start| *to >= start))
        .collect()
}

/// A window's marker: what was recorded, and its ETag for the next conditional update.
async fn existing_job(
    s3: &aws_sdk_s3::Client,
    marker: &Location,
) -> anyhow::Result<Option<(Value, String)>> {
    let Location::S3 { bucket, key } = marker else {
        bail!("{marker}: the marker must be in S3");
    };
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let etag = out.e_tag().unwrap_or_default().to_string();
            let bytes = out
                .body
                .collect()
                .await
                .with_context(|| format!("reading {marker}"))?
                .into_bytes();
            Ok(Some((
                serde_json::from_slice(&bytes).with_context(|| format!("{marker} is not JSON"))?,
                etag,
            )))
        }
        Err(e) => match aws_sdk_s3::Error::from(e) {
            aws_sdk_s3::Error::NoSuchKey(_) => Ok(None),
            e => Err(e).with_context(|| format!("reading {marker}")),
        },
    }
}

/// Writes a window's marker: created only if absent (`If-None-Match: *`) or replaced only if
/// unchanged (`If-Match` its ETag). `Ok(false)`: another run wrote it first.
async fn write_marker(
    s3: &aws_sdk_s3::Client,
    marker: &Location,
    value: &Value,
    replacing: Option<&str>,
) -> anyhow::Result<bool> {
    let Location::S3 { bucket, key } = marker else {
        bail!("{marker}: the marker must be in S3");
    };
    let mut put = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(serde_json::to_vec(value)?.into());
    put = match replacing {
        Some(etag) => put.if_match(etag),
        None => put.if_none_match("*"),
    };
    match put.send().await {
        Ok(_) => Ok(true),
        Err(e) => {
            // 412: the marker exists or changed (another run wrote it first); 409: a concurrent
            // conditional write is in progress. Anything else is a failure.
            let status = e.raw_response().map(|r| r.status().as_u16());
            if matches!(status, Some(412 | 409)) {
                tracing::info!(%marker, "another run recorded the window first");
                Ok(false)
            } else {
                Err(aws_sdk_s3::Error::from(e)).with_context(|| format!("writing {marker}"))
            }
        }
    }
}

fn marker_of(cfg: &Config, from: NaiveDate, to: NaiveDate) -> Location {
    cfg.manifests.child(&format!("window-{from}_{to}.job.json"))
}

fn jobs_for(cfg: &Config, jobs: &JobOptions) -> JobOptions {
    let mut jobs = jobs.clone();
    if jobs.account_id.is_none() {
        jobs.account_id = cfg.account_id.clone();
    }
    jobs
}

/// Selects a window, writes its manifest and submits its job (`note` tells a resubmission
/// apart, so it gets its own idempotency token). Returns the marker's content.
async fn submit_window(
    cfg: &Config,
    (from, to): (NaiveDate, NaiveDate),
    note: Option<&str>,
    aws: &AwsOptions,
    jobs: &JobOptions,
) -> anyhow::Result<Value> {
    let output = cfg.manifests.child(&format!("window-{from}_{to}.csv"));
    let select = Selection {
        bucket: Some(cfg.bucket.clone()),
        prefix: cfg.prefix.clone(),
        from: Some(from),
        to: Some(to),
        min_size: cfg.min_size,
        output: Some(output.clone()),
        ..Selection::default()
    };
    let summary = select::run(&select, aws).await?;
    let mut answer = json!({
        "window": {"from": from.to_string(), "to": to.to_string()},
        "selected": summary.objects,
        "bytes": summary.bytes,
        "manifest": output.to_string(),
        "alreadySubmitted": false,
        "jobId": null,
    });
    if summary.objects == 0 {
        tracing::info!(%from, %to, "nothing to convert in the window");
        return Ok(answer);
    }
    if summary.manifests.len() != 1 {
        bail!(
            "the window's selection was split into {} manifests; shorten WINDOW_DAYS",
            summary.manifests.len()
        );
    }
    let description = match note {
        Some(n) => format!("shrink recordings {from}..{to} ({n})"),
        None => format!("shrink recordings {from}..{to}"),
    };
    let submit = JobSpec {
        manifest: Some(output),
        min_size: cfg.min_size,
        function_arn: cfg.function_arn.clone(),
        role_arn: cfg.role_arn.clone(),
        report: Some(cfg.report.clone()),
        user_args: cfg.user_args.clone(),
        description: Some(description.chars().take(256).collect()),
        // The weekly run's stack was checked when deployed; its role has no IAM read rights.
        doctor: false,
        ..JobSpec::default()
    };
    let submitted = job::submit(&submit, &jobs_for(cfg, jobs), aws).await?;
    answer["jobId"] = json!(submitted.job_id);
    tracing::info!(%from, %to, job = %answer["jobId"], selected = summary.objects, "window submitted");
    Ok(answer)
}

/// One scheduled run of one window given by hand (`from`/`to` in the event): select, write the
/// manifest, submit once; returns what it did.
pub async fn run_window(
    cfg: &Config,
    event: &Value,
    aws: &AwsOptions,
    jobs: &JobOptions,
) -> anyhow::Result<Value> {
    let (from, to) = match (day(event, "from")?, day(event, "to")?) {
        (Some(f), Some(t)) if f <= t => (f, t),
        (Some(f), Some(t)) => bail!("event window from {f} is after to {t}"),
        (None, None) => window(run_day(event)?, cfg.delay_days, cfg.window_days),
        _ => bail!("give both from and to in the event, or neither"),
    };
    let s3 = aws.s3().await;
    let marker = marker_of(cfg, from, to);
    if let Some((mut seen, _)) = existing_job(&s3, &marker).await? {
        tracing::info!(%from, %to, job = %seen["jobId"], "window already submitted");
        seen["alreadySubmitted"] = json!(true);
        return Ok(seen);
    }
    let answer = submit_window(cfg, (from, to), None, aws, jobs).await?;
    write_marker(&s3, &marker, &answer, None).await?;
    Ok(answer)
}

/// What a run found or did for one window.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowOutcome {
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// `submitted`, `empty`, `done`, `in progress`, `redriven`, `resubmitted`, `failed`,
    /// `cancelled`, `unknown` or `error`.
    pub status: String,
    /// The window's job (the first one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// A job this run created for it (re-drive or resubmission).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_job_id: Option<String>,
    /// Why, for anything but a plain submission or completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Due this many days (since the run that first selected it) without a completed job.
    pub stuck: bool,
}

/// Whether a job's failure comes from its manifest (resubmitting would fail the same way).
fn manifest_fault(failures: &[String]) -> bool {
    failures
        .iter()
        .any(|f| f.to_ascii_lowercase().contains("manifest"))
}

fn not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<aws_sdk_s3control::Error>(),
            Some(aws_sdk_s3control::Error::NotFoundException(_))
        )
    })
}

/// Looks at one window with a marker, and heals it where it can (once, recorded in the marker).
async fn visit(
    cfg: &Config,
    s3: &aws_sdk_s3::Client,
    (from, to): (NaiveDate, NaiveDate),
    (mut marker, etag): (Value, String),
    aws: &AwsOptions,
    jobs: &JobOptions,
) -> anyhow::Result<WindowOutcome> {
    let mut out = WindowOutcome {
        from: from.to_string(),
        to: to.to_string(),
        status: "done".into(),
        job_id: marker["jobId"].as_str().map(str::to_string),
        new_job_id: None,
        reason: None,
        stuck: false,
    };
    let Some(job_id) = out.job_id.clone() else {
        out.status = "empty".into();
        return Ok(out);
    };
    // A resubmitted window is followed through its newer job.
    let current = marker["resubmittedJobId"]
        .as_str()
        .map(str::to_string)
        .unwrap_or(job_id);
    let jobs = jobs_for(cfg, jobs);
    let state = match job::status(&current, &jobs, aws).await {
        Ok(s) => s,
        Err(e) if not_found(&e) => {
            out.status = "unknown".into();
            out.reason = Some(format!(
                "job {current} is not known to S3 Control (it keeps jobs 90 days); not resubmitted: \
                 run `manifest-builder run --from {from} --to {to}` to convert what is left"
            ));
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    let marker_loc = marker_of(cfg, from, to);
    match state.status.as_str() {
        "Complete" => {
            let failed = state.progress.as_ref().and_then(|p| p.failed).unwrap_or(0);
            if failed == 0 {
                return Ok(out);
            }
            if let Some(r) = marker.get("redrive").filter(|r| !r.is_null()) {
                out.reason = Some(format!(
                    "{failed} failed tasks; re-driven before ({} TemporaryFailure tasks, job {})",
                    r["tasks"],
                    r["jobId"].as_str().unwrap_or("none")
                ));
                return Ok(out);
            }
            let retry = cfg
                .manifests
                .child(&format!("window-{from}_{to}.redrive.csv"));
            let done = crate::report::redrive(
                &current,
                &retry,
                crate::report::Failures::Temporary,
                false,
                &jobs,
                aws,
            )
            .await
            .with_context(|| format!("re-driving job {current}"))?;
            marker["redrive"] =
                json!({"jobId": done.job_id, "tasks": done.tasks, "manifest": done.manifest});
            if !write_marker(s3, &marker_loc, &marker, Some(&etag)).await? {
                out.reason = Some("another run re-drove it at the same time".into());
                return Ok(out);
            }
            out.new_job_id = done.job_id.clone();
            if done.tasks == 0 {
                out.reason = Some(format!(
                    "{failed} failed tasks, all PermanentFailure (final): not re-driven"
                ));
            } else {
                out.status = "redriven".into();
                out.reason = Some(format!(
                    "{failed} failed tasks: {} TemporaryFailure tasks re-driven",
                    done.tasks
                ));
            }
        }
        "Failed" => {
            let why = state.failures.join("; ");
            if marker.get("resubmittedJobId").is_some_and(|v| !v.is_null())
                || manifest_fault(&state.failures)
            {
                out.status = "failed".into();
                out.reason = Some(if manifest_fault(&state.failures) {
                    format!("job {current} failed on its manifest ({why}); not resubmitted")
                } else {
                    format!("job {current} failed again after its resubmission ({why})")
                });
                return Ok(out);
            }
            let note = format!("resubmitted after job {current} failed");
            let again = submit_window(cfg, (from, to), Some(&note), aws, &jobs).await?;
            marker["resubmittedJobId"] = again["jobId"].clone();
            marker["resubmittedBecause"] = json!(why);
            if !write_marker(s3, &marker_loc, &marker, Some(&etag)).await? {
                out.reason = Some("another run resubmitted it at the same time".into());
                return Ok(out);
            }
            out.status = "resubmitted".into();
            out.new_job_id = again["jobId"].as_str().map(str::to_string);
            out.reason = Some(format!("job {current} failed: {why}"));
        }
        "Cancelled" => {
            out.status = "cancelled".into();
            out.reason = Some(format!(
                "job {current} was cancelled{}; not resubmitted",
                state
                    .status_update_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
        other => {
            out.status = "in progress".into();
            out.reason = Some(format!("job {current} is {other}"));
        }
    }
    Ok(out)
}

/// One scheduled run: the current window submitted once, and the look-back healed (see the
/// module's documentation). The answer keeps the current window's fields at the top and lists
/// every window under `windows`; one JSON log line says the same.
pub async fn run_schedule(
    cfg: &Config,
    event: &Value,
    aws: &AwsOptions,
    jobs: &JobOptions,
) -> anyhow::Result<Value> {
    if event.get("from").is_some() || event.get("to").is_some() {
        return run_window(cfg, event, aws, jobs).await;
    }
    let today = run_day(event)?;
    let s3 = aws.s3().await;
    let all = windows(cfg, today);
    let mut outcomes = Vec::new();
    let mut current = Value::Null;
    for (i, &(from, to)) in all.iter().enumerate() {
        let is_current = i + 1 == all.len();
        let marker = marker_of(cfg, from, to);
        let result = match existing_job(&s3, &marker).await {
            Err(e) => Err(e),
            Ok(None) => match submit_window(cfg, (from, to), None, aws, jobs).await {
                Ok(answer) => {
                    let first = write_marker(&s3, &marker, &answer, None).await;
                    if is_current {
                        current = answer.clone();
                    }
                    first.map(|written| WindowOutcome {
                        from: from.to_string(),
                        to: to.to_string(),
                        status: if answer["jobId"].is_null() {
                            "empty"
                        } else {
                            "submitted"
                        }
                        .into(),
                        job_id: answer["jobId"].as_str().map(str::to_string),
                        new_job_id: None,
                        reason: (!written).then(|| "another run recorded it first".to_string()),
                        stuck: false,
                    })
                }
                Err(e) => Err(e),
            },
            Ok(Some((seen, etag))) => {
                if is_current {
                    current = seen.clone();
                    current["alreadySubmitted"] = json!(true);
                }
                visit(cfg, &s3, (from, to), (seen, etag), aws, jobs).await
            }
        };
        let mut outcome = result.unwrap_or_else(|e| WindowOutcome {
            from: from.to_string(),
            to: to.to_string(),
            status: "error".into(),
            job_id: None,
            new_job_id: None,
            reason: Some(format!("{e:#}")),
            stuck: false,
        });
        // Due since the run that first selected it; stuck when still without a completed job.
        let due = to + chrono::Days::new(u64::from(cfg.delay_days));
        let waiting = !matches!(outcome.status.as_str(), "done" | "empty" | "redriven");
        outcome.stuck = waiting && (today - due).num_days() >= i64::from(cfg.stuck_after_days);
        outcomes.push(outcome);
    }
    let stuck = outcomes.iter().filter(|o| o.stuck).count();
    let errors: Vec<String> = outcomes
        .iter()
        .filter(|o| o.status == "error")
        .map(|o| {
            format!(
                "{}..{}: {}",
                o.from,
                o.to,
                o.reason.as_deref().unwrap_or("")
            )
        })
        .collect();
    let listed = serde_json::to_string(&outcomes)?;
    tracing::info!(windows = %listed, stuck_windows = stuck, errors = errors.len(), "scheduled run");
    // The current window's own failure fails the run (the scheduler retries it); earlier
    // windows' errors are reported and looked at again next run.
    if current.is_null()
        && let Some(e) = outcomes.last().filter(|o| o.status == "error")
    {
        bail!(
            "window {}..{}: {}",
            e.from,
            e.to,
            e.reason.as_deref().unwrap_or("")
        );
    }
    let mut answer = current;
    answer["windows"] = serde_json::to_value(&outcomes)?;
    answer["stuckWindows"] = json!(stuck);
    Ok(answer)
}

/// Runs as the scheduled Lambda function (when `AWS_LAMBDA_RUNTIME_API` is set).
pub async fn lambda() -> anyhow::Result<()> {
    let cfg = Config::from_lookup(|k| std::env::var(k).ok())?;
    let aws = AwsOptions::default();
    // The SDK's own variable for a custom S3 Control endpoint (the local engine in tests).
    let jobs = JobOptions {
        s3control_endpoint_url: std::env::var("AWS_ENDPOINT_URL_S3_CONTROL").ok(),
        ..Default::default()
    };
    let service = lambda_runtime::service_fn(move |ev: lambda_runtime::LambdaEvent<Value>| {
        let (cfg, aws, jobs) = (cfg.clone(), aws.clone(), jobs.clone());
        async move {
            run_schedule(&cfg, &ev.payload, &aws, &jobs)
                .await
                .map_err(|e| lambda_runtime::Error::from(format!("{e:#}")))
        }
    });
    lambda_runtime::run(service)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_window_is_the_week_that_ended_delay_days_ago() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let (from, to) = window(today, 7, 7);
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2026-11-10".into(), "2026-11-16".into())
        );
        assert_eq!(window(today, 0, 1), (today, today));
        let ev = json!({"scheduledTime": "2026-11-23T03:00:00Z"});
        assert_eq!(run_day(&ev).unwrap(), today);
        assert!(run_day(&json!({"scheduledTime": "yesterday"})).is_err());
    }

    #[test]
    fn the_look_back_goes_oldest_first_and_stops_at_the_start_date() {
        let cfg = |catch_up, start: Option<&str>| Config {
            bucket: "b".into(),
            prefix: String::new(),
            manifests: "s3://o/m".parse().unwrap(),
            report: "s3://o/r".parse().unwrap(),
            function_arn: String::new(),
            role_arn: String::new(),
            account_id: None,
            delay_days: 7,
            window_days: 7,
            user_args: Vec::new(),
            min_size: 1,
            catch_up_windows: catch_up,
            start_date: start.map(|d| d.parse().unwrap()),
            stuck_after_days: 14,
        };
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let days = |w: Vec<(NaiveDate, NaiveDate)>| -> Vec<String> {
            w.iter().map(|(f, t)| format!("{f}..{t}")).collect()
        };
        assert_eq!(
            days(windows(&cfg(2, None), today)),
            [
                "2026-10-27..2026-11-02",
                "2026-11-03..2026-11-09",
                "2026-11-10..2026-11-16"
            ]
        );
        assert_eq!(
            days(windows(&cfg(0, None), today)),
            ["2026-11-10..2026-11-16"]
        );
        // A window ending on the start date is looked at; one ending before it is not.
        assert_eq!(
            days(windows(&cfg(8, Some("2026-11-09")), today)),
            ["2026-11-03..2026-11-09", "2026-11-10..2026-11-16"]
        );
        assert!(manifest_fault(&[
            "ManifestReadFailed: reading s3://o/m.csv".into()
        ]));
        assert!(!manifest_fault(&[
            "TaskFailureRateExceeded: 600 of 1000 tasks failed".into()
        ]));
    }

    #[test]
    fn configuration_errors_name_the_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let base: &[(&str, &str)] = &[
            ("RECORDINGS_BUCKET", "calls"),
            ("MANIFEST_LOCATION", "s3://ops/m"),
            ("REPORT_LOCATION", "s3://ops/r"),
            (
                "HANDLER_FUNCTION_ARN",
                "arn:aws:lambda:us-east-1:123456789012:function:h",
            ),
            ("JOB_ROLE_ARN", "arn:aws:iam::123456789012:role/j"),
            ("USER_ARGUMENTS", "downmix=sum, codec=alaw"),
        ];
        let c = Config::from_lookup(env(base)).unwrap();
        assert_eq!(
            c.user_args,
            [
                ("downmix".into(), "sum".into()),
                ("codec".into(), "alaw".into())
            ]
        );
        assert_eq!((c.delay_days, c.window_days), (7, 7));
        assert_eq!(
            (c.catch_up_windows, c.start_date, c.stuck_after_days),
            (8, None, 14)
        );
        let bad_start: &[(&str, &str)] = &[
            ("RECORDINGS_BUCKET", "calls"),
            ("MANIFEST_LOCATION", "s3://ops/m"),
            ("REPORT_LOCATION", "s3://ops/r"),
            ("HANDLER_FUNCTION_ARN", "f"),
            ("JOB_ROLE_ARN", "r"),
            ("START_DATE", "last spring"),
        ];
        let e = format!("{:#}", Config::from_lookup(env(bad_start)).unwrap_err());
        assert!(e.contains("START_DATE"), "{e}");
        let e = Config::from_lookup(env(&base[1..])).unwrap_err();
        assert!(e.to_string().contains("RECORDINGS_BUCKET"), "{e}");
        let local: &[(&str, &str)] = &[
            ("RECORDINGS_BUCKET", "calls"),
            ("MANIFEST_LOCATION", "/tmp/m"),
        ];
        assert!(
            format!("{:#}", Config::from_lookup(env(local)).unwrap_err())
                .contains("MANIFEST_LOCATION")
        );
    }
}
