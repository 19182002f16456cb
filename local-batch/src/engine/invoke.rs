//! How the engine reaches the function: in this process through the `batch-handler` library, or
//! through the Lambda Invoke API of a running function (e.g. `bootstrap` under `cargo lambda
//! watch`), the call S3 Batch Operations makes.

use std::time::Duration;

use serde_json::Value;

/// Why an invocation gave no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The function ran and failed (error, panic, timeout): the task fails permanently.
    #[error("Lambda returned function error: {0}")]
    Function(String),
    /// The function could not be reached or throttled: the task is re-driven.
    #[error("Lambda invocation failed: {0}")]
    Unreachable(String),
    /// The answer is not the Batch Operations response JSON: the task fails permanently.
    #[error("Invalid JSON returned in Lambda payload")]
    InvalidPayload,
}

/// Something that runs the function on one invocation event.
#[async_trait::async_trait]
pub trait Invoker: Send + Sync {
    /// Sends `event` to `function_arn`, returns the function's JSON answer.
    async fn invoke(&self, function_arn: &str, event: Value) -> Result<Value, InvokeError>;
}

/// The handler library, called in this process (the function ARN is not used).
pub struct InProcess {
    handler: batch_handler::Handler,
    timeout: Duration,
}

impl InProcess {
    /// `timeout` plays the function's timeout: tasks still running then answer TemporaryFailure.
    pub fn new(handler: batch_handler::Handler, timeout: Duration) -> Self {
        InProcess { handler, timeout }
    }
}

#[async_trait::async_trait]
impl Invoker for InProcess {
    async fn invoke(&self, _function_arn: &str, event: Value) -> Result<Value, InvokeError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let response = self.handler.handle(&event, Some(deadline)).await;
        serde_json::to_value(response).map_err(|e| InvokeError::Function(e.to_string()))
    }
}

/// A function behind the Lambda Invoke API (`--function-url`).
pub struct LambdaApi {
    client: aws_sdk_lambda::Client,
}

impl LambdaApi {
    /// A client for the Invoke API at `url` with the shared configuration's credentials.
    pub fn new(shared: &aws_config::SdkConfig, url: &str) -> Self {
        let conf = aws_sdk_lambda::config::Builder::from(shared)
            .endpoint_url(url)
            .build();
        LambdaApi {
            client: aws_sdk_lambda::Client::from_conf(conf),
        }
    }
}

/// The function name (and qualifier) of a function ARN; a bare name is returned as is.
pub fn function_name(arn: &str) -> &str {
    match arn.split_once(":function:") {
        Some((_, rest)) => rest,
        None => arn,
    }
}

#[async_trait::async_trait]
impl Invoker for LambdaApi {
    async fn invoke(&self, function_arn: &str, event: Value) -> Result<Value, InvokeError> {
        let name = function_name(function_arn);
        let (name, qualifier) = match name.split_once(':') {
            Some((n, q)) => (n, Some(q)),
            None => (name, None),
        };
        let payload =
            serde_json::to_vec(&event).map_err(|e| InvokeError::Function(e.to_string()))?;
        let out = self
            .client
            .invoke()
            .function_name(name)
            .set_qualifier(qualifier.map(str::to_string))
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                InvokeError::Unreachable(batch_contract::text::one_line(
                    &format!("{}", aws_sdk_lambda::Error::from(e)),
                    1024,
                ))
            })?;
        let body = out
            .payload()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        if out.function_error().is_some() {
            return Err(InvokeError::Function(
                String::from_utf8_lossy(&body).trim().to_string(),
            ));
        }
        serde_json::from_slice(&body).map_err(|_| InvokeError::InvalidPayload)
    }
}
