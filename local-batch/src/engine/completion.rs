//! Completion reports as the service writes them: `<prefix>/job-<id>/results/<40 hex>.csv`, one
//! file for succeeded and one for failed tasks, rows in the observed column order (HTTP status
//! before error code), then `manifest.json` with each file's MD5, written last as the commit marker.

use std::collections::HashMap;

use batch_contract::md5::md5_hex;
use batch_contract::report::{
    REPORT_FORMAT, REPORT_SCHEMA, ReportFile, ReportManifest, ReportRow, write_rows,
};

use super::retry::EngineError;
use super::source::{bucket_of_arn, put};
use super::store::{JobRecord, Task, TaskOutcome};

fn rows(tasks: &[Task], outcomes: &[&TaskOutcome]) -> Result<Vec<u8>, EngineError> {
    let rows: Vec<ReportRow> = outcomes
        .iter()
        .map(|o| {
            let t = &tasks[o.index];
            ReportRow {
                bucket: t.bucket.clone(),
                raw_key: t.key.clone(),
                version_id: t.version.clone().unwrap_or_default(),
                status: if o.succeeded { "succeeded" } else { "failed" }.into(),
                http_status: Some(o.http),
                error_code: o.code.clone(),
                message: o.message.clone(),
            }
        })
        .collect();
    write_rows(&rows).map_err(|e| EngineError::Invalid(format!("writing report rows: {e}")))
}

/// Writes the report of a job that ran at least one task, if the job asked for one.
pub async fn write(
    s3: &aws_sdk_s3::Client,
    job: &JobRecord,
    tasks: &[Task],
    outcomes: &HashMap<usize, TaskOutcome>,
) -> Result<(), EngineError> {
    let report = &job.request.report;
    if !report.enabled || outcomes.is_empty() {
        return Ok(());
    }
    let bucket = bucket_of_arn(report.bucket.as_deref().ok_or("Report.Bucket is missing")?);
    let base = match report.prefix.as_deref() {
        Some(p) if !p.is_empty() => format!("{p}/job-{}", job.id),
        _ => format!("job-{}", job.id),
    };
    let mut sorted: Vec<&TaskOutcome> = outcomes
        .values()
        .filter(|o| o.index < tasks.len())
        .collect();
    sorted.sort_by_key(|o| o.index);
    let failed_only = report.report_scope.as_deref() == Some("FailedTasksOnly");
    let mut results = Vec::new();
    for (status, succeeded) in [("succeeded", true), ("failed", false)] {
        if succeeded && failed_only {
            continue;
        }
        let part: Vec<&TaskOutcome> = sorted
            .iter()
            .copied()
            .filter(|o| o.succeeded == succeeded)
            .collect();
        if part.is_empty() {
            continue;
        }
        let body = rows(tasks, &part)?;
        let name = format!(
            "{}{}",
            md5_hex(format!("{}/{status}", job.id).as_bytes()),
            &md5_hex(status.as_bytes())[..8]
        );
        let key = format!("{base}/results/{name}.csv");
        let md5 = md5_hex(&body);
        put(s3, &bucket, &key, body).await?;
        results.push(ReportFile {
            task_execution_status: status.into(),
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
        let tasks = vec![Task {
            bucket: "b".into(),
            key: "a%2Cb.wav".into(),
            version: Some("v1".into()),
        }];
        let o = TaskOutcome {
            index: 0,
            succeeded: false,
            http: 200,
            code: "PermanentFailure".into(),
            message: "not a WAV, \"RIFF\" missing".into(),
            attempts: 1,
        };
        let text = String::from_utf8(rows(&tasks, &[&o]).unwrap()).unwrap();
        assert_eq!(
            text,
            "b,a%2Cb.wav,v1,failed,200,PermanentFailure,\"not a WAV, \"\"RIFF\"\" missing\"\n"
        );
        let parsed = batch_contract::report::parse_rows(text.as_bytes(), "r.csv").unwrap();
        assert_eq!(parsed[0].error_code, "PermanentFailure");
    }
}
