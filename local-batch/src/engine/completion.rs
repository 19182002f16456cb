//! Completion reports as the service writes them: `<prefix>/job-<id>/results/<40 hex>.csv`, one
//! file for succeeded and one for failed tasks, rows in the observed column order (HTTP status
//! before error code), then `manifest.json` with each file's MD5, written last as the commit marker.

use batch_contract::md5::{HashingWriter, md5_hex};
use batch_contract::report::{
    REPORT_FORMAT, REPORT_SCHEMA, ReportFile, ReportManifest, ReportRow, RowWriter,
};

use super::retry::EngineError;
use super::source::{bucket_of_arn, put, put_file};
use super::store::{JobRecord, Progress, Store, TaskOutcome};

fn row(o: &TaskOutcome) -> ReportRow {
    ReportRow {
        bucket: o.task.bucket.clone(),
        raw_key: o.task.key.clone(),
        version_id: o.task.version.clone().unwrap_or_default(),
        status: if o.succeeded { "succeeded" } else { "failed" }.into(),
        http_status: Some(o.http),
        error_code: o.code.clone(),
        message: o.message.clone(),
    }
}

/// One result file being written to a scratch file, hashed as it goes.
struct Part {
    status: &'static str,
    path: std::path::PathBuf,
    rows: u64,
    writer: RowWriter<HashingWriter<std::io::BufWriter<std::fs::File>>>,
}

impl Part {
    fn create(store: &Store, id: &str, status: &'static str) -> Result<Part, EngineError> {
        let path = store.scratch(id, &format!("report-{status}.csv"));
        let file = std::fs::File::create(&path)?;
        Ok(Part {
            status,
            path,
            rows: 0,
            writer: RowWriter::new(HashingWriter::new(std::io::BufWriter::new(file))),
        })
    }
}

fn csv_error(e: csv::Error) -> EngineError {
    EngineError::Invalid(format!("writing report rows: {e}"))
}

/// Writes the report of a job that ran at least one task, if the job asked for one. The rows
/// stream from the job's results on disk to scratch files (each task once, in the order tasks
/// finished, as the service's reports are unordered) and are uploaded from there.
pub async fn write(
    s3: &aws_sdk_s3::Client,
    store: &Store,
    job: &JobRecord,
) -> Result<(), EngineError> {
    let report = &job.request.report;
    if !report.enabled {
        return Ok(());
    }
    let bucket = bucket_of_arn(report.bucket.as_deref().ok_or("Report.Bucket is missing")?);
    let base = match report.prefix.as_deref() {
        Some(p) if !p.is_empty() => format!("{p}/job-{}", job.id),
        _ => format!("job-{}", job.id),
    };
    let failed_only = report.report_scope.as_deref() == Some("FailedTasksOnly");
    let mut succeeded = (!failed_only)
        .then(|| Part::create(store, &job.id, "succeeded"))
        .transpose()?;
    let mut failed = Part::create(store, &job.id, "failed")?;
    let mut seen = Progress::default();
    let total = job.total.unwrap_or(u64::MAX);
    for o in store.outcomes(&job.id)? {
        let o = o?;
        if o.index as u64 >= total || !seen.record(&o) {
            continue;
        }
        let part = if o.succeeded {
            match succeeded.as_mut() {
                Some(p) => p,
                None => continue,
            }
        } else {
            &mut failed
        };
        part.writer.write(&row(&o)).map_err(csv_error)?;
        part.rows += 1;
    }
    if seen.succeeded + seen.failed == 0 {
        return Ok(());
    }
    let mut results = Vec::new();
    for part in succeeded.into_iter().chain([failed]) {
        let (buffered, md5, _) = part.writer.finish().map_err(csv_error)?.finish();
        buffered.into_inner().map_err(|e| e.into_error())?;
        if part.rows == 0 {
            let _ = std::fs::remove_file(&part.path);
            continue;
        }
        let name = format!(
            "{}{}",
            md5_hex(format!("{}/{}", job.id, part.status).as_bytes()),
            &md5_hex(part.status.as_bytes())[..8]
        );
        let key = format!("{base}/results/{name}.csv");
        put_file(s3, &bucket, &key, &part.path).await?;
        let _ = std::fs::remove_file(&part.path);
        results.push(ReportFile {
            task_execution_status: part.status.into(),
            bucket: bucket.clone(),
            md5_checksum: md5,
            key,
        });
    }
    let manifest = ReportManifest {
        format: REPORT_FORMAT.into(),
        report_creation_date: chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        results,
        report_schema: REPORT_SCHEMA.into(),
    };
    let body = serde_json::to_vec(&manifest).expect("a report manifest serialises");
    put(s3, &bucket, &format!("{base}/manifest.json"), body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_put_the_http_status_before_the_error_code_and_quote_like_rfc4180() {
        let o = TaskOutcome {
            index: 0,
            task: super::super::store::Task {
                bucket: "b".into(),
                key: "a%2Cb.wav".into(),
                version: Some("v1".into()),
            },
            succeeded: false,
            http: 200,
            code: "PermanentFailure".into(),
            message: "not a WAV, \"RIFF\" missing".into(),
            attempts: 1,
        };
        let bytes = batch_contract::report::write_rows([&row(&o)]).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            "b,a%2Cb.wav,v1,failed,200,PermanentFailure,\"not a WAV, \"\"RIFF\"\" missing\"\n"
        );
        let parsed = batch_contract::report::parse_rows(text.as_bytes(), "r.csv").unwrap();
        assert_eq!(parsed[0].error_code, "PermanentFailure");
    }
}
