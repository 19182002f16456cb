//! Completion reports from the operator's seat: read one (every file MD5-checked), summarise it
//! from the handler's typed results, and turn its failed tasks into a retry manifest, or straight
//! into a new job with the same settings (`redrive`).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::aws::AwsOptions;
use batch_contract::report::{self, ReportManifest, ReportRow};
use batch_contract::result::{Action, Summary};

use crate::job::JobOptions;
use crate::location::Location;

/// What a report says, in totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportSummary {
    /// Where the report manifest was read.
    pub manifest: String,
    /// Rows.
    pub tasks: u64,
    /// Succeeded rows.
    pub succeeded: u64,
    /// Failed rows.
    pub failed: u64,
    /// Succeeded rows whose handler result says `converted`.
    pub converted: u64,
    /// Succeeded rows whose handler result says `skipped`.
    pub skipped: u64,
    /// Original bytes of the converted recordings.
    pub bytes_before: u64,
    /// Their bytes after conversion.
    pub bytes_after: u64,
    /// Seconds of audio converted.
    pub audio_seconds: f64,
    /// Converted recordings whose header promised more audio than the object held (cut off).
    pub cut_off: Vec<String>,
    /// Failure reasons and how often each occurred, most frequent first.
    pub failure_reasons: Vec<(String, u64)>,
    /// Skip reasons.
    pub skip_reasons: Vec<(String, u64)>,
}

impl ReportSummary {
    /// Bytes saved.
    pub fn saved(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

/// Where `what` points: a job id, an S3 report manifest or prefix, or a local directory or file.
async fn manifest_location(
    what: &str,
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<Location> {
    if what.starts_with("s3://") {
        let loc: Location = what.parse()?;
        return Ok(if what.ends_with(".json") {
            loc
        } else {
            loc.child("manifest.json")
        });
    }
    let path = std::path::Path::new(what);
    if path.exists() {
        return Ok(Location::Local(if path.is_dir() {
            path.join("manifest.json")
        } else {
            path.to_path_buf()
        }));
    }
    let state = crate::job::status(what, opts, aws).await?;
    let Some(report) = state.report else {
        bail!("job {what} has no completion report (it was created with the report disabled)");
    };
    let loc: Location = report.parse()?;
    Ok(loc.child(&format!("job-{}/manifest.json", state.job_id)))
}

fn result_location(manifest: &Location, file: &report::ReportFile) -> Location {
    match manifest {
        Location::S3 { .. } => Location::S3 {
            bucket: file.bucket.clone(),
            key: file.key.clone(),
        },
        Location::Local(p) => {
            let dir = p.parent().unwrap_or(std::path::Path::new("."));
            let name = file.key.rsplit('/').next().unwrap_or(&file.key);
            let candidates = [
                dir.join(&file.key),
                dir.join("results").join(name),
                dir.join(name),
            ];
            Location::Local(
                candidates
                    .iter()
                    .find(|c| c.exists())
                    .cloned()
                    .unwrap_or_else(|| dir.join("results").join(name)),
            )
        }
    }
}

/// Reads and checks every result file of a report.
pub async fn read(
    what: &str,
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<(Location, Vec<ReportRow>)> {
    let (loc, rows, _) = read_with_files(what, opts, aws).await?;
    Ok((loc, rows))
}

/// [`read`], and where each result file was read (for links to them).
pub async fn read_with_files(
    what: &str,
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<(Location, Vec<ReportRow>, Vec<String>)> {
    let s3 = aws.s3().await;
    let loc = manifest_location(what, opts, aws).await?;
    let m = ReportManifest::parse(&loc.read(&s3).await?, &loc.to_string())?;
    let mut rows = Vec::new();
    let mut files = Vec::new();
    for file in &m.results {
        let at = result_location(&loc, file);
        let bytes = at.read(&s3).await?;
        report::verify(file, &bytes)?;
        rows.extend(report::parse_rows(&bytes, &at.to_string())?);
        files.push(at.to_string());
    }
    Ok((loc, rows, files))
}

fn histogram(items: impl Iterator<Item = String>) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for i in items {
        *counts.entry(i).or_default() += 1;
    }
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Totals of a report's rows.
pub fn summarise(manifest: &Location, rows: &[ReportRow]) -> ReportSummary {
    let mut s = ReportSummary {
        manifest: manifest.to_string(),
        tasks: rows.len() as u64,
        ..Default::default()
    };
    let mut skips = Vec::new();
    for r in rows {
        if r.failed() {
            s.failed += 1;
            continue;
        }
        s.succeeded += 1;
        let Some(v) = Summary::from_result_string(&r.message) else {
            continue;
        };
        match v.action {
            Action::Converted => {
                s.converted += 1;
                s.bytes_before += v.bytes_in;
                s.bytes_after += v.bytes_out;
                s.audio_seconds += v.duration_seconds;
                if v.missing_bytes > 0 {
                    s.cut_off.push(r.key());
                }
            }
            Action::Skipped => {
                s.skipped += 1;
                skips.push(
                    v.reason
                        .as_deref()
                        .unwrap_or("")
                        .chars()
                        .take(100)
                        .collect(),
                );
            }
        }
    }
    s.failure_reasons = histogram(rows.iter().filter(|r| r.failed()).map(|r| {
        let msg: String = r.message.chars().take(160).collect();
        if r.error_code.is_empty() {
            msg
        } else {
            format!("{}: {msg}", r.error_code)
        }
    }));
    s.skip_reasons = histogram(skips.into_iter());
    s
}

/// Which failed tasks a retry manifest takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failures {
    /// Every failed task (an operator's `redrive`).
    All,
    /// Only those that may succeed on a retry: TemporaryFailure, throttling and 5xx answers.
    /// A PermanentFailure's reason is final (the scheduled function's re-drive).
    Temporary,
}

impl Failures {
    fn takes(self, r: &ReportRow) -> bool {
        r.failed()
            && match self {
                Failures::All => true,
                Failures::Temporary => {
                    r.error_code == "TemporaryFailure"
                        || r.http_status.is_some_and(|s| s == 429 || s >= 500)
                }
            }
    }
}

/// The failed tasks as a manifest (keys decoded, then re-encoded strictly).
pub fn retry_manifest(rows: &[ReportRow]) -> anyhow::Result<String> {
    retry_manifest_of(rows, Failures::All)
}

/// The failed tasks `which` takes, as a manifest.
pub fn retry_manifest_of(rows: &[ReportRow], which: Failures) -> anyhow::Result<String> {
    let failed: Vec<&ReportRow> = rows.iter().filter(|r| which.takes(r)).collect();
    let with_versions = failed.iter().filter(|r| !r.version_id.is_empty()).count();
    if with_versions != 0 && with_versions != failed.len() {
        bail!(
            "the failed tasks mix rows with and without version ids; a manifest has them on every row or on none"
        );
    }
    let mut out = String::new();
    for r in failed {
        let key = batch_contract::key::decode_key(&r.raw_key)
            .with_context(|| format!("report row for {:?}", r.raw_key))?;
        out += &crate::manifest::row(&crate::select::Recording {
            bucket: r.bucket.clone(),
            key,
            version_id: (!r.version_id.is_empty()).then(|| r.version_id.clone()),
            size: 0,
            last_modified: None,
            storage_class: String::new(),
        });
    }
    Ok(out)
}

/// What `redrive` did.
#[derive(Debug, Serialize)]
pub struct Redriven {
    /// The job whose failures were re-driven.
    pub from_job: String,
    /// Failed tasks put in the retry manifest.
    pub tasks: usize,
    /// The retry manifest.
    pub manifest: String,
    /// The new job (absent on a dry run or with nothing to re-drive).
    pub job_id: Option<String>,
}

/// `redrive JOB`: report → retry manifest → a new job with the first job's settings.
pub async fn redrive(
    job_id: &str,
    retry: &Location,
    which: Failures,
    dry_run: bool,
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<Redriven> {
    let (_, rows) = read(job_id, opts, aws).await?;
    let text = retry_manifest_of(&rows, which)?;
    let tasks = text.lines().count();
    let mut done = Redriven {
        from_job: job_id.to_string(),
        tasks,
        manifest: retry.to_string(),
        job_id: None,
    };
    if tasks == 0 {
        return Ok(done);
    }
    let state = crate::job::status(job_id, opts, aws).await?;
    let Some(mut job) = state.definition else {
        bail!(
            "job {job_id}: its operation is not LambdaInvoke; cannot re-drive it with the same settings"
        );
    };
    let arn = retry.object_arn()?;
    if dry_run {
        return Ok(done);
    }
    let s3 = aws.s3().await;
    let etag = retry
        .write(&s3, text.clone().into_bytes(), "text/csv")
        .await?
        .context("the retry manifest has no ETag")?;
    let versioned = text
        .lines()
        .next()
        .is_some_and(|l| l.split(',').count() == 3);
    job.manifest = Some(batch_contract::job::Manifest {
        spec: batch_contract::job::ManifestSpec {
            format: batch_contract::job::MANIFEST_FORMATS[0].into(),
            fields: Some(if versioned {
                vec!["Bucket".into(), "Key".into(), "VersionId".into()]
            } else {
                vec!["Bucket".into(), "Key".into()]
            }),
        },
        location: batch_contract::job::ManifestLocation {
            object_arn: arn,
            object_version_id: None,
            etag,
        },
    });
    job.description = Some(format!("re-drive of {job_id}").chars().take(256).collect());
    job.confirmation_required = Some(false);
    let problems = job.problems();
    if !problems.is_empty() {
        bail!(
            "the re-drive job is not valid, nothing submitted: {}",
            problems.join("; ")
        );
    }
    let (client, account) = opts.client_and_account(aws).await?;
    done.job_id = Some(crate::job::control::create(&client, &account, &job, &[]).await?);
    Ok(done)
}

/// Human-readable report summary.
pub fn print(s: &ReportSummary) {
    let mb = |b: u64| b as f64 / 1e6;
    println!("report {}", s.manifest);
    println!(
        "tasks {}: {} succeeded ({} converted, {} skipped), {} failed",
        s.tasks, s.succeeded, s.converted, s.skipped, s.failed
    );
    if s.converted > 0 {
        println!(
            "converted {:.1} h of audio: {:.1} MB -> {:.1} MB, saved {:.1} MB ({:.0} %)",
            s.audio_seconds / 3600.0,
            mb(s.bytes_before),
            mb(s.bytes_after),
            mb(s.saved()),
            100.0 * s.saved() as f64 / s.bytes_before.max(1) as f64
        );
    }
    for key in &s.cut_off {
        println!("  cut off: {key} ended before its WAV header said; converted what it holds");
    }
    for (reason, n) in &s.failure_reasons {
        println!("  failed {n:>7}  {reason}");
    }
    for (reason, n) in &s.skip_reasons {
        println!("  skipped {n:>6}  {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(csv: &str) -> Vec<ReportRow> {
        report::parse_rows(csv.as_bytes(), "r.csv").unwrap()
    }

    #[test]
    fn totals_and_histograms_from_handler_results() {
        let conv =
            r#"{"action":"converted","bytesIn":4000,"bytesOut":1000,"durationSeconds":60.0}"#
                .replace('"', "\"\"");
        let skip =
            r#"{"action":"skipped","reason":"already converted (tag converted=true)","bytesIn":9}"#
                .replace('"', "\"\"");
        let csv = format!(
            "b,a.wav,,succeeded,200,,\"{conv}\"\nb,b.wav,,succeeded,200,,\"{conv}\"\nb,c.wav,,succeeded,200,,\"{skip}\"\n\
             b,d+e.wav,,failed,200,PermanentFailure,not a WAV file\nb,f.wav,,failed,200,PermanentFailure,not a WAV file\n\
             b,g%3A.wav,,failed,200,TemporaryFailure,reading the object: timed out\n"
        );
        let r = rows(&csv);
        let s = summarise(&"s3://r/job-1/manifest.json".parse().unwrap(), &r);
        assert_eq!(
            (s.tasks, s.succeeded, s.failed, s.converted, s.skipped),
            (6, 3, 3, 2, 1)
        );
        assert_eq!(
            (s.bytes_before, s.bytes_after, s.saved()),
            (8000, 2000, 6000)
        );
        assert_eq!(s.audio_seconds, 120.0);
        assert_eq!(
            s.failure_reasons[0],
            ("PermanentFailure: not a WAV file".to_string(), 2)
        );
        assert_eq!(
            s.skip_reasons,
            vec![("already converted (tag converted=true)".to_string(), 1)]
        );
        assert_eq!(
            retry_manifest_of(&r, Failures::Temporary).unwrap(),
            "b,g%3A.wav\n",
            "a PermanentFailure's reason is final"
        );
        assert_eq!(
            retry_manifest(&r).unwrap(),
            "b,d%20e.wav\nb,f.wav\nb,g%3A.wav\n",
            "form-decoded, strictly re-encoded"
        );
    }

    #[test]
    fn retry_manifest_keeps_versions_and_refuses_a_mix() {
        assert_eq!(
            retry_manifest(&rows("b,k.wav,v1,failed,200,PermanentFailure,x\n")).unwrap(),
            "b,k.wav,v1\n"
        );
        let mixed = rows(
            "b,k.wav,v1,failed,200,PermanentFailure,x\nb,j.wav,,failed,200,PermanentFailure,x\n",
        );
        assert!(
            retry_manifest(&mixed)
                .unwrap_err()
                .to_string()
                .contains("mix rows")
        );
    }
}
