//! Why a task ended, and the one place where errors become result codes.
//!
//! Retryable conditions (throttling, 5xx, timeouts, a cut connection, an object that changed
//! under us) are `TemporaryFailure`: S3 redrives them. Everything that will fail again the same
//! way (missing object, access denied, not a WAV, unsupported format) is `PermanentFailure` with
//! the reason, so the completion report says what to fix.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use batch_contract::event::{ResultCode, TaskResult};
pub use batch_contract::result::{Action, Summary};

use crate::transcode::TranscodeError;

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
            Outcome::Done(s) => s.action.as_str(),
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
            TranscodeError::AlreadyEncoded { .. }
            | TranscodeError::Wav(_)
            | TranscodeError::NeedsResampling { .. } => Outcome::Permanent(err.to_string()),
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
