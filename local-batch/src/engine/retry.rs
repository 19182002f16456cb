//! The engine's own S3 calls (manifest reads, inventory data files, listings, report writes),
//! retried as the service retries them: on throttling, 5xx, timeouts, resets and cut bodies, with
//! bounded exponential backoff and full jitter, on top of the client's own attempts (the SDK's,
//! 8 with the CLI's client: see `manifest_builder::aws`), which do not cover a body cut halfway.
//!
//! Bound: [`ATTEMPTS`] rounds, sleeping at most `min(MAX_DELAY, BASE_DELAY × 2^n)` between them
//! (0.1 + 0.2 + 0.4 s = 0.7 s of backoff at the most, plus the client's own). A call that still
//! fails gives a typed [`EngineError::S3`] naming the call, the object, the error and the
//! attempts.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Calls made before giving up.
pub const ATTEMPTS: u32 = 4;
/// First backoff ceiling.
pub const BASE_DELAY: Duration = Duration::from_millis(100);
/// Largest backoff ceiling.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Why the engine could not go on with a job.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An S3 call that failed for good, or after every retry.
    #[error("{call} s3://{bucket}/{key}: {detail} (attempt {attempts} of {ATTEMPTS})")]
    S3 {
        /// `GetObject`, `PutObject`, `HeadObject`, `ListObjectsV2`.
        call: &'static str,
        /// Bucket.
        bucket: String,
        /// Key (or prefix).
        key: String,
        /// The error, with its source chain.
        detail: String,
        /// Calls made.
        attempts: u32,
    },
    /// A manifest (or inventory) that cannot be used; the job fails with this reason.
    #[error("{0}")]
    Invalid(String),
    /// The job store on disk.
    #[error("the job store: {0}")]
    Store(#[from] std::io::Error),
    /// A job that is no longer in the engine.
    #[error("job {0} is no longer known to the engine")]
    Vanished(String),
}

impl From<String> for EngineError {
    fn from(reason: String) -> Self {
        EngineError::Invalid(reason)
    }
}

impl From<&str> for EngineError {
    fn from(reason: &str) -> Self {
        EngineError::Invalid(reason.to_string())
    }
}

/// One failed call: whether another attempt may succeed, and what happened.
#[derive(Debug)]
pub struct Failure {
    /// Throttling, 5xx, a timeout, a reset, a cut body.
    pub retryable: bool,
    /// The error, one line.
    pub detail: String,
}

/// Classifies an SDK error the way the service retries.
pub fn sdk_failure<E>(e: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let retryable = match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("");
            matches!(
                code,
                "SlowDown"
                    | "Throttling"
                    | "ThrottlingException"
                    | "RequestTimeout"
                    | "InternalError"
                    | "ServiceUnavailable"
                    | "OperationAborted"
            ) || status.is_some_and(|st| st == 429 || st >= 500)
        }
        _ => false,
    };
    Failure {
        retryable,
        detail: batch_contract::text::one_line(&DisplayErrorContext(e).to_string(), 512),
    }
}

/// A failure reading a response body (a cut connection, a stall).
pub fn body_failure(e: impl std::error::Error, got: usize, expected: Option<i64>) -> Failure {
    let of = expected.map(|n| format!(" of {n}")).unwrap_or_default();
    Failure {
        retryable: true,
        detail: batch_contract::text::one_line(
            &format!(
                "the body was cut after {got}{of} bytes: {}",
                DisplayErrorContext(e)
            ),
            512,
        ),
    }
}

/// A delay in `[0, min(MAX_DELAY, BASE_DELAY × 2^attempt))`: full jitter, so many tasks backing
/// off at once do not come back at once. (A hash of the clock and a counter: no RNG crate needed
/// for this.)
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = BASE_DELAY
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_DELAY);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    ceiling.mul_f64(unit)
}

/// Runs `call` until it succeeds, fails for good, or [`ATTEMPTS`] are spent.
pub async fn retried<T, F, Fut>(
    call: &'static str,
    bucket: &str,
    key: &str,
    mut f: F,
) -> Result<T, EngineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Ok(v) => return Ok(v),
            Err(failure) if failure.retryable && attempt < ATTEMPTS => {
                tracing::debug!(call, bucket, key, attempt, detail = %failure.detail, "retrying");
                tokio::time::sleep(backoff(attempt - 1)).await;
            }
            Err(failure) => {
                return Err(EngineError::S3 {
                    call,
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    detail: failure.detail,
                    attempts: attempt,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_stays_under_its_ceiling() {
        for attempt in 0..20 {
            let ceiling = BASE_DELAY
                .saturating_mul(1u32 << attempt.min(16))
                .min(MAX_DELAY);
            for _ in 0..50 {
                assert!(backoff(attempt) < ceiling.max(Duration::from_nanos(1)));
            }
        }
    }

    #[tokio::test]
    async fn a_retryable_failure_is_retried_and_a_final_one_is_not() {
        let calls = AtomicU32::new(0);
        let ok: Result<u32, _> = retried("GetObject", "b", "k", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 3 {
                Err(Failure {
                    retryable: true,
                    detail: "503 SlowDown".into(),
                })
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(ok.unwrap(), 3);
        calls.store(0, Ordering::SeqCst);
        let denied: Result<(), _> = retried("GetObject", "b", "k", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Failure {
                retryable: false,
                detail: "AccessDenied".into(),
            })
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let e = denied.unwrap_err().to_string();
        assert_eq!(e, "GetObject s3://b/k: AccessDenied (attempt 1 of 4)");
        calls.store(0, Ordering::SeqCst);
        let spent: Result<(), _> = retried("PutObject", "b", "k", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Failure {
                retryable: true,
                detail: "reset".into(),
            })
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
        assert!(spent.unwrap_err().to_string().contains("attempt 4 of 4"));
    }
}
