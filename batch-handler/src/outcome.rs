//! Why a task ended, and the one place where errors become result codes.
//!
//! Retryable conditions (throttling, 5xx, timeouts, a cut connection, an object that changed
//! under us) are `TemporaryFailure`: S3 redrives them. Everything that will fail again the same
//! way (missing object, access denied, not a WAV, unsupported format) is `PermanentFailure` with
//! the reason, so the completion report says what to fix.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use serde::Serialize;

use crate::schema::{ResultCode, TaskResult};
use crate::transcode::TranscodeError;

/// What a successful task did, reported as the compact JSON `resultString`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `converted` or `skipped`.
    pub action: &'static str,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Size of the original.
    pub bytes_in: u64,
    /// Size written (0 when skipped).
    pub bytes_out: u64,
    /// Audio duration in seconds.
    pub duration_seconds: f64,
    /// Processing time in seconds.
    pub elapsed_seconds: f64,
    /// Key written (empty when skipped).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output_key: String,
    /// Version id of the written object, when the bucket is versioned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_version_id: Option<String>,
    /// Codec written, or found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<&'static str>,
    /// Downmix applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downmix: Option<&'static str>,
    /// Format of the original.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_format: Option<String>,
    /// Bytes of a trailing partial frame that were dropped.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped_bytes: u64,
    /// Bytes the WAV header promised beyond the end of the object (a cut-off recording).
    #[serde(skip_serializing_if = "is_zero")]
    pub missing_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    /// A skip: nothing written.
    pub fn skipped(reason: impl Into<String>, bytes_in: u64) -> Self {
        Summary {
            action: "skipped",
            reason: Some(reason.into()),
            bytes_in,
            bytes_out: 0,
            duration_seconds: 0.0,
            elapsed_seconds: 0.0,
            output_key: String::new(),
            output_version_id: None,
            codec: None,
            downmix: None,
            input_format: None,
            dropped_bytes: 0,
            missing_bytes: 0,
        }
    }

    /// The JSON, kept under the result size limit by shortening the output key if it must.
    pub fn to_result_string(&self) -> String {
        let json = serde_json::to_string(self).expect("summary serialises");
        if json.len() <= crate::schema::MAX_RESULT_STRING {
            return json;
        }
        let mut short = self.clone();
        let excess = json.len() - crate::schema::MAX_RESULT_STRING + 3;
        let mut cut = short.output_key.len().saturating_sub(excess);
        while !short.output_key.is_char_boundary(cut) {
            cut -= 1;
        }
        short.output_key = format!("{}...", &short.output_key[..cut]);
        serde_json::to_string(&short).expect("summary serialises")
    }
}

/// How one task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Converted or skipped.
    Done(Summary),
    /// Retry later (S3 redrives it).
    Temporary(String),
    /// Will not succeed as things are.
    Permanent(String),
}

impl Outcome {
    /// The result code S3 acts on.
    pub fn code(&self) -> ResultCode {
        match self {
            Outcome::Done(_) => ResultCode::Succeeded,
            Outcome::Temporary(_) => ResultCode::TemporaryFailure,
            Outcome::Permanent(_) => ResultCode::PermanentFailure,
        }
    }

    /// The short word logged for the task.
    pub fn action(&self) -> &'static str {
        match self {
            Outcome::Done(s) => s.action,
            Outcome::Temporary(_) => "temporary-failure",
            Outcome::Permanent(_) => "permanent-failure",
        }
    }

    /// The result for the response.
    pub fn to_result(&self, task_id: &str) -> TaskResult {
        let text = match self {
            Outcome::Done(s) => s.to_result_string(),
            Outcome::Temporary(r) | Outcome::Permanent(r) => r.clone(),
        };
        TaskResult::new(task_id, self.code(), &text)
    }

    /// The outcome of a transcoder error: bad input is permanent, a cut stream is not.
    pub fn from_transcode(err: &TranscodeError) -> Outcome {
        match err {
            TranscodeError::StreamEnded { .. } => {
                Outcome::Temporary(format!("reading the object: {err}"))
            }
            TranscodeError::AlreadyEncoded { .. } | TranscodeError::Wav(_) => {
                Outcome::Permanent(err.to_string())
            }
        }
    }
}

const RETRYABLE_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
    "PreconditionFailed",
    "ConditionalRequestConflict",
];

/// Classifies an S3 call's error; `what` names the call for the reason ("reading", "writing ...").
pub fn classify<E>(what: &str, err: &SdkError<E, HttpResponse>) -> Outcome
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err {
        SdkError::TimeoutError(_) => Outcome::Temporary(format!("{what}: timed out")),
        SdkError::DispatchFailure(e) => {
            Outcome::Temporary(format!("{what}: connection failed: {e:?}"))
        }
        SdkError::ResponseError(_) => {
            Outcome::Temporary(format!("{what}: response could not be read"))
        }
        SdkError::ConstructionFailure(_) => {
            Outcome::Permanent(format!("{what}: request could not be built: {err}"))
        }
        _ => {
            let code = err.code().unwrap_or("");
            let message = err.message().unwrap_or("");
            let status_txt = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
            let detail = if message.is_empty() {
                code.to_string()
            } else {
                format!("{code}: {message}")
            };
            let detail = if detail.is_empty() {
                "no error code".to_string()
            } else {
                detail
            };
            let reason = format!("{what}: {detail}{status_txt}");
            let retryable = RETRYABLE_CODES.contains(&code)
                || matches!(status, Some(s) if s == 429 || s == 412 || s == 409 || s >= 500);
            if retryable {
                if code == "PreconditionFailed" || status == Some(412) {
                    return Outcome::Temporary(format!(
                        "{what}: the object changed while it was converted; nothing was overwritten ({detail})"
                    ));
                }
                return Outcome::Temporary(reason);
            }
            match (code, status) {
                ("NoSuchKey" | "NotFound" | "NoSuchVersion", _) | (_, Some(404)) => {
                    Outcome::Permanent(format!("{what}: object not found ({detail})"))
                }
                ("AccessDenied", _) | (_, Some(403)) => {
                    Outcome::Permanent(format!("{what}: access denied ({detail}){status_txt}"))
                }
                ("InvalidObjectState", _) => Outcome::Permanent(format!(
                    "{what}: object is archived ({detail}); restore it before converting"
                )),
                _ => Outcome::Permanent(reason),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_json_is_compact_and_bounded() {
        let mut s = Summary::skipped("already converted (tag converted=true)", 10);
        assert_eq!(
            s.to_result_string(),
            r#"{"action":"skipped","reason":"already converted (tag converted=true)","bytesIn":10,"bytesOut":0,"durationSeconds":0.0,"elapsedSeconds":0.0}"#
        );
        s.action = "converted";
        s.output_key = "k/".repeat(700);
        let out = s.to_result_string();
        assert!(
            out.len() <= crate::schema::MAX_RESULT_STRING,
            "{}",
            out.len()
        );
        let v: serde_json::Value = serde_json::from_str(&out).expect("still valid JSON");
        assert!(v["outputKey"].as_str().unwrap().ends_with("..."));
    }

    #[test]
    fn transcode_errors_map_to_codes() {
        let cut = TranscodeError::StreamEnded {
            expected: 10,
            got: 4,
        };
        assert_eq!(
            Outcome::from_transcode(&cut).code(),
            ResultCode::TemporaryFailure
        );
        let bad = TranscodeError::Wav(crate::wav::WavError::Empty);
        assert_eq!(
            Outcome::from_transcode(&bad).code(),
            ResultCode::PermanentFailure
        );
    }
}
