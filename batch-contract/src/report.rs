//! S3 Batch Operations completion reports: the `manifest.json` commit marker and its result CSVs.
//!
//! The real rows put the HTTP status before the error code, unlike the `ReportSchema` string
//! the service writes (`s3-batch-ops.md` §2.5), so the two columns are told apart by content: a
//! three-digit number is the status. Every result file is checked against its MD5 before use.

use serde::{Deserialize, Serialize};

/// The only report format the service writes.
pub const REPORT_FORMAT: &str = "Report_CSV_20180820";

/// `<prefix>/job-<id>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportManifest {
    /// `Report_CSV_20180820`.
    pub format: String,
    /// ISO-8601 with milliseconds.
    pub report_creation_date: String,
    /// One entry per result file.
    pub results: Vec<ReportFile>,
    /// The declared (and misleading) column order.
    pub report_schema: String,
}

/// One result CSV of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportFile {
    /// `succeeded` or `failed`.
    pub task_execution_status: String,
    /// Bucket name (not ARN).
    pub bucket: String,
    /// Hex MD5 of the CSV object.
    #[serde(rename = "MD5Checksum")]
    pub md5_checksum: String,
    /// Full key of the CSV.
    pub key: String,
}

/// Why a report cannot be read, naming the file and the row.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// `manifest.json` is not the documented JSON.
    #[error("{file}: not a completion report manifest: {reason}")]
    Manifest {
        /// Where it came from.
        file: String,
        /// Parser message.
        reason: String,
    },
    /// A result file's bytes do not match the manifest's MD5.
    #[error("{file}: MD5 {actual} does not match the report manifest's {expected}")]
    Md5 {
        /// The CSV.
        file: String,
        /// From the manifest.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// A row that does not parse.
    #[error("{file}: row {row}: {reason}")]
    Row {
        /// The CSV.
        file: String,
        /// 1-based row number.
        row: usize,
        /// What is wrong.
        reason: String,
    },
}

impl ReportManifest {
    /// Parses `manifest.json`; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self, ReportError> {
        let m: ReportManifest =
            serde_json::from_slice(bytes).map_err(|e| ReportError::Manifest {
                file: file.to_string(),
                reason: e.to_string(),
            })?;
        if m.format != REPORT_FORMAT {
            return Err(ReportError::Manifest {
                file: file.to_string(),
                reason: format!("Format is {:?}, expected {REPORT_FORMAT}", m.format),
            });
        }
        Ok(m)
    }
}

/// Checks a result file against its manifest entry.
pub fn verify(file: &ReportFile, bytes: &[u8]) -> Result<(), ReportError> {
    let actual = crate::md5::md5_hex(bytes);
    if actual.eq_ignore_ascii_case(&file.md5_checksum) {
        Ok(())
    } else {
        Err(ReportError::Md5 {
            file: file.key.clone(),
            expected: file.md5_checksum.clone(),
            actual,
        })
    }
}

/// One task's line of a result CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportRow {
    /// Bucket name.
    pub bucket: String,
    /// Key as written in the manifest (URL-encoded).
    pub raw_key: String,
    /// Version id; empty when the manifest had none.
    pub version_id: String,
    /// `succeeded` or `failed`.
    pub status: String,
    /// HTTP status, when the row has one.
    pub http_status: Option<u16>,
    /// `PermanentFailure`, `InvalidRequest`, ...; empty on success.
    pub error_code: String,
    /// The function's result string (or the service's message).
    pub message: String,
}

impl ReportRow {
    /// The decoded key (`+` is a space, then `%XX`), or the raw key if it does not decode.
    pub fn key(&self) -> String {
        crate::key::decode_key(&self.raw_key).unwrap_or_else(|_| self.raw_key.clone())
    }

    /// Whether the task failed.
    pub fn failed(&self) -> bool {
        self.status.eq_ignore_ascii_case("failed")
    }
}

fn is_status(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_task_status(s: &str) -> bool {
    s.eq_ignore_ascii_case("succeeded") || s.eq_ignore_ascii_case("failed")
}

/// The schema string the service declares (its order differs from the rows').
pub const REPORT_SCHEMA: &str =
    "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage";

/// Writes result rows one at a time as the service does (no header, RFC 4180 quoting, the HTTP
/// status before the error code), so a report of millions of rows streams to a file.
pub struct RowWriter<W: std::io::Write> {
    inner: csv::Writer<W>,
}

impl<W: std::io::Write> RowWriter<W> {
    /// Rows go to `w`.
    pub fn new(w: W) -> Self {
        RowWriter {
            inner: csv::WriterBuilder::new().has_headers(false).from_writer(w),
        }
    }

    /// Writes one row.
    pub fn write(&mut self, r: &ReportRow) -> Result<(), csv::Error> {
        let http = r.http_status.map(|h| h.to_string()).unwrap_or_default();
        self.inner.write_record([
            r.bucket.as_str(),
            r.raw_key.as_str(),
            r.version_id.as_str(),
            r.status.as_str(),
            http.as_str(),
            r.error_code.as_str(),
            r.message.as_str(),
        ])
    }

    /// Flushes and gives the writer back.
    pub fn finish(self) -> Result<W, csv::Error> {
        self.inner.into_inner().map_err(|e| e.into_error().into())
    }
}

/// Writes result rows as the service does; [`parse_rows`] reads them back.
pub fn write_rows<'a>(
    rows: impl IntoIterator<Item = &'a ReportRow>,
) -> Result<Vec<u8>, csv::Error> {
    let mut w = RowWriter::new(Vec::new());
    for r in rows {
        w.write(r)?;
    }
    w.finish()
}

/// Parses a result CSV (no header, RFC 4180 quoting, LF or CRLF).
pub fn parse_rows(bytes: &[u8], file: &str) -> Result<Vec<ReportRow>, ReportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 1;
        let err = |reason: String| ReportError::Row {
            file: file.to_string(),
            row,
            reason,
        };
        let record = record.map_err(|e| err(e.to_string()))?;
        let f: Vec<&str> = record.iter().collect();
        if f.len() == 1 && f[0].is_empty() {
            continue;
        }
        // Seven columns; the troubleshooting page also shows rows without the VersionId column.
        let (version, rest) = match f.len() {
            n if n >= 7 && is_task_status(f[3]) => (f[2], &f[3..]),
            n if n >= 6 && is_task_status(f[2]) => ("", &f[2..]),
            n => {
                return Err(err(format!(
                    "expected 7 fields (Bucket, Key, VersionId, TaskStatus, HTTPStatusCode, ErrorCode, ResultMessage), found {n}"
                )));
            }
        };
        let (status, a, b) = (rest[0], rest[1], rest[2]);
        let (http, code) = match (is_status(a), is_status(b)) {
            (true, _) => (Some(a), b),
            (false, true) => (Some(b), a),
            (false, false) if a.is_empty() && b.is_empty() => (None, ""),
            _ => {
                return Err(err(format!(
                    "neither {a:?} nor {b:?} is an HTTP status code"
                )));
            }
        };
        rows.push(ReportRow {
            bucket: f[0].to_string(),
            raw_key: f[1].to_string(),
            version_id: version.to_string(),
            status: status.to_ascii_lowercase(),
            http_status: http.map(|h| h.parse().expect("three digits")),
            error_code: code.to_string(),
            // A message with unquoted commas spills into more fields: put it back together.
            message: rest[3..].join(","),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::md5::md5_hex;

    #[test]
    fn written_rows_put_the_http_status_first_quote_like_rfc4180_and_read_back() {
        let row = ReportRow {
            bucket: "b".into(),
            raw_key: "a%2Cb.wav".into(),
            version_id: "v1".into(),
            status: "failed".into(),
            http_status: Some(200),
            error_code: "PermanentFailure".into(),
            message: "not a WAV, \"RIFF\" missing".into(),
        };
        let text = String::from_utf8(write_rows([&row]).unwrap()).unwrap();
        assert_eq!(
            text,
            "b,a%2Cb.wav,v1,failed,200,PermanentFailure,\"not a WAV, \"\"RIFF\"\" missing\"\n"
        );
        assert_eq!(parse_rows(text.as_bytes(), "r.csv").unwrap(), vec![row]);
    }

    /// F10 (`s3-batch-ops.md` §10).
    const F10: &str = r#"{
      "Format": "Report_CSV_20180820",
      "ReportCreationDate": "2019-04-05T17:48:39.725Z",
      "Results": [
        {"TaskExecutionStatus": "succeeded", "Bucket": "my-job-reports", "MD5Checksum": "83b1c4cbe93fc893f54053697e10fd6e",
         "Key": "job-f8fb9d89-a3aa-461d-bddc-ea6a1b131955/results/6217b0fab0de85c408b4be96aeaca9b195a7daa5.csv"},
        {"TaskExecutionStatus": "failed", "Bucket": "my-job-reports", "MD5Checksum": "22ee037f3515975f7719699e5c416eaa",
         "Key": "job-f8fb9d89-a3aa-461d-bddc-ea6a1b131955/results/b2ddad417e94331e9f37b44f1faf8c7ed5873f2e.csv"}
      ],
      "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
    }"#;

    #[test]
    fn f10_report_manifest() {
        let m = ReportManifest::parse(F10.as_bytes(), "manifest.json").unwrap();
        assert_eq!(m.results.len(), 2);
        assert_eq!(m.results[0].task_execution_status, "succeeded");
        assert_eq!(m.results[1].task_execution_status, "failed");
        assert_eq!(
            m.results[1].md5_checksum,
            "22ee037f3515975f7719699e5c416eaa"
        );
        assert!(
            m.results[0]
                .key
                .ends_with("6217b0fab0de85c408b4be96aeaca9b195a7daa5.csv")
        );
        let bad = F10.replace("Report_CSV_20180820", "Report_CSV_2099");
        assert!(
            ReportManifest::parse(bad.as_bytes(), "m.json")
                .unwrap_err()
                .to_string()
                .contains("expected Report_CSV_20180820")
        );
        assert!(
            ReportManifest::parse(b"{", "reports/job-1/manifest.json")
                .unwrap_err()
                .to_string()
                .starts_with("reports/job-1/manifest.json: not a completion report manifest")
        );
    }

    #[test]
    fn f11_report_rows_by_content() {
        let csv = concat!(
            "amzn-s3-demo-bucket1,image_14975,,failed,200,PermanentFailure,\"Lambda returned function error: {\"\"errorMessage\"\":\"\"2019-04-05T17:35:21.155Z 2845ca0d-38d9-4c4b-abcf-379dc749c452 Task timed out after 3.00 seconds\"\"}\"\n",
            "BUCKET_NAME,prefix/file_name,failed,400,InvalidRequest,Task failed due to missing VersionId\r\n",
            "amzn-s3-demo-bucket1,image_17775,,succeeded,200,,converted to A-law 8 kHz mono\n",
            "b,k%20ey,v1,failed,PermanentFailure,200,declared order\n",
        );
        let rows = parse_rows(csv.as_bytes(), "r.csv").unwrap();
        assert_eq!(rows.len(), 4);
        let r = &rows[0];
        assert_eq!(
            (
                r.bucket.as_str(),
                r.raw_key.as_str(),
                r.version_id.as_str(),
                r.status.as_str()
            ),
            ("amzn-s3-demo-bucket1", "image_14975", "", "failed")
        );
        assert_eq!(
            (r.http_status, r.error_code.as_str()),
            (Some(200), "PermanentFailure")
        );
        assert_eq!(
            r.message,
            "Lambda returned function error: {\"errorMessage\":\"2019-04-05T17:35:21.155Z 2845ca0d-38d9-4c4b-abcf-379dc749c452 Task timed out after 3.00 seconds\"}"
        );
        assert_eq!(
            (
                rows[1].raw_key.as_str(),
                rows[1].http_status,
                rows[1].error_code.as_str()
            ),
            ("prefix/file_name", Some(400), "InvalidRequest")
        );
        assert_eq!(rows[1].message, "Task failed due to missing VersionId");
        assert!(!rows[2].failed());
        assert_eq!(
            (rows[2].error_code.as_str(), rows[2].message.as_str()),
            ("", "converted to A-law 8 kHz mono")
        );
        assert_eq!(
            (
                rows[3].http_status,
                rows[3].error_code.as_str(),
                rows[3].key()
            ),
            (Some(200), "PermanentFailure", "k ey".to_string())
        );
    }

    #[test]
    fn handler_json_results_survive_the_csv() {
        let json = r#"{"action":"converted","bytesIn":10,"bytesOut":3}"#;
        let line = format!("b,k,,succeeded,200,,\"{}\"\n", json.replace('"', "\"\""));
        let rows = parse_rows(line.as_bytes(), "r.csv").unwrap();
        assert_eq!(rows[0].message, json);
        // Unquoted commas in a message are put back together.
        let rows = parse_rows(b"b,k,,failed,200,PermanentFailure,a, b, c\n", "r.csv").unwrap();
        assert_eq!(rows[0].message, "a, b, c");
    }

    #[test]
    fn bad_rows_name_the_file_and_row() {
        let e = parse_rows(b"b,k,,succeeded,200,,ok\nb,k\n", "results/x.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("results/x.csv: row 2: expected 7 fields"),
            "{e}"
        );
        let e = parse_rows(b"b,k,,failed,abc,def,msg\n", "x.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("row 1: neither \"abc\" nor \"def\" is an HTTP status code"),
            "{e}"
        );
    }

    #[test]
    fn md5_is_checked() {
        let f = ReportFile {
            task_execution_status: "failed".into(),
            bucket: "b".into(),
            md5_checksum: md5_hex(b"abc"),
            key: "job-1/results/a.csv".into(),
        };
        assert_eq!(f.md5_checksum, "900150983cd24fb0d6963f7d28e17f72");
        verify(&f, b"abc").unwrap();
        let e = verify(&f, b"abd").unwrap_err().to_string();
        assert!(e.starts_with("job-1/results/a.csv: MD5 "), "{e}");
    }
}
