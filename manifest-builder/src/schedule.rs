//! The weekly manifest job: `manifest-builder` as a Lambda that EventBridge Scheduler fires. It
//! selects the recordings of one window (by default the 7 days that ended `DELAY_DAYS` ago,
//! counted from the schedule's own time, so a retry days later picks the same window), writes the
//! manifest, submits the job and returns its id. A window is submitted once: a marker object
//! written with `If-None-Match: *` records the job, and the job's idempotency token (derived
//! from the manifest's ETag) makes two concurrent runs create one job.

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

async fn existing_job(s3: &aws_sdk_s3::Client, marker: &Location) -> anyhow::Result<Option<Value>> {
    let Location::S3 { bucket, key } = marker else {
        bail!("{marker}: the marker must be in S3");
    };
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let bytes = out
                .body
                .collect()
                .await
                .with_context(|| format!("reading {marker}"))?
                .into_bytes();
            Ok(Some(
                serde_json::from_slice(&bytes).with_context(|| format!("{marker} is not JSON"))?,
            ))
        }
        Err(e) => match aws_sdk_s3::Error::from(e) {
            aws_sdk_s3::Error::NoSuchKey(_) => Ok(None),
            e => Err(e).with_context(|| format!("reading {marker}")),
        },
    }
}

/// One scheduled run: select the window, write the manifest, submit once; returns what it did.
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
    let name = format!("window-{from}_{to}");
    let marker = cfg.manifests.child(&format!("{name}.job.json"));
    if let Some(seen) = existing_job(&s3, &marker).await? {
        tracing::info!(%from, %to, job = %seen["jobId"], "window already submitted");
        let mut seen = seen;
        seen["alreadySubmitted"] = json!(true);
        return Ok(seen);
    }
    let output = cfg.manifests.child(&format!("{name}.csv"));
    let (from_s, to_s, out) = (from.to_string(), to.to_string(), output.to_string());
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
        "window": {"from": from_s, "to": to_s},
        "selected": summary.objects,
        "bytes": summary.bytes,
        "manifest": out,
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
    let submit = JobSpec {
        manifest: Some(output),
        min_size: cfg.min_size,
        function_arn: cfg.function_arn.clone(),
        role_arn: cfg.role_arn.clone(),
        report: Some(cfg.report.clone()),
        user_args: cfg.user_args.clone(),
        description: Some(format!("shrink recordings {from}..{to}")),
        ..JobSpec::default()
    };
    let mut jobs = jobs.clone();
    if jobs.account_id.is_none() {
        jobs.account_id = cfg.account_id.clone();
    }
    let submitted = job::submit(&submit, &jobs, aws).await?;
    answer["jobId"] = json!(submitted.job_id);
    let Location::S3 { bucket, key } = &marker else {
        unreachable!("checked in Config")
    };
    let written = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .if_none_match("*")
        .content_type("application/json")
        .body(serde_json::to_vec(&answer)?.into())
        .send()
        .await;
    if let Err(e) = written {
        // 412: the marker exists (another run wrote it first); 409: a concurrent conditional
        // write is in progress. Anything else is a failure.
        let status = e.raw_response().map(|r| r.status().as_u16());
        if !matches!(status, Some(412 | 409)) {
            return Err(aws_sdk_s3::Error::from(e)).with_context(|| format!("writing {marker}"));
        }
        tracing::info!(%marker, "another run recorded the window first");
    }
    tracing::info!(%from, %to, job = %answer["jobId"], selected = summary.objects, "window submitted");
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
            run_window(&cfg, &ev.payload, &aws, &jobs)
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
