//! The handler function: that it exists, and that its timeout, memory and reserved concurrency
//! fit the job.

use super::{CallError, Check, DoctorRequest, not_checked};

/// Seconds every invocation needs beside the audio (start, the two S3 requests' latency).
pub const FIXED_SECONDS: f64 = 2.0;
/// Headroom the timeout should leave over the time the longest recording needs.
pub const MARGIN: f64 = 3.0;
/// Lambda's longest timeout.
pub const MAX_TIMEOUT: f64 = 900.0;

/// What the other checks need to know of the function.
#[derive(Debug, Clone, Default)]
pub struct Function {
    /// Its execution role (the one that reads the recordings and uses their KMS keys).
    pub role: Option<String>,
    /// `ALLOW_UNVERSIONED_OVERWRITE` is set in its environment.
    pub allows_unversioned_overwrite: bool,
}

/// Seconds the handler needs for `bytes` of recording at the measured rate, with `memory_mb`.
/// The rate (`Workload::lambda_seconds_per_minute`) was measured at `Workload::lambda_memory_mb`;
/// with less memory Lambda gives proportionally less CPU.
pub fn seconds_needed(req: &DoctorRequest, bytes: u64, memory_mb: f64) -> f64 {
    let w = &req.workload;
    let minutes = bytes as f64 / (w.mb_per_minute * 1e6);
    let slower = (w.lambda_memory_mb / memory_mb.max(1.0)).max(1.0);
    FIXED_SECONDS + minutes * w.lambda_seconds_per_minute * slower
}

/// GetFunction and GetFunctionConcurrency: the function, its timeout and its concurrency.
pub async fn check(
    lambda: &aws_sdk_lambda::Client,
    arn: &str,
    req: &DoctorRequest,
) -> (Option<Function>, Vec<Check>) {
    let out = match lambda.get_function().function_name(arn).send().await {
        Ok(out) => out,
        Err(e) => {
            let e = CallError::from_sdk(&e);
            let check = if e.is(&["ResourceNotFoundException"]) || e.status == Some(404) {
                Check::fail(
                    "function",
                    format!("function {arn} does not exist"),
                    "deploy the stack (scripts/deploy.sh) and give its HandlerFunctionArn output \
                     as --function-arn",
                )
            } else {
                not_checked("function", "GetFunction", "lambda:GetFunction", &e)
            };
            return (None, vec![check]);
        }
    };
    let Some(conf) = out.configuration() else {
        return (
            None,
            vec![Check::warn(
                "function",
                format!("GetFunction of {arn} answered without a configuration"),
                "check the function in the Lambda console",
            )],
        );
    };
    let arch = conf
        .architectures()
        .iter()
        .map(|a| a.as_str().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let arch = if arch.is_empty() {
        "x86_64".into()
    } else {
        arch
    };
    let memory = f64::from(conf.memory_size().unwrap_or(128));
    let timeout = f64::from(conf.timeout().unwrap_or(3));
    let env = conf.environment().and_then(|e| e.variables());
    let found = Function {
        role: conf.role().map(String::from),
        allows_unversioned_overwrite: env
            .and_then(|v| v.get("ALLOW_UNVERSIONED_OVERWRITE"))
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes")),
    };
    let mut checks = vec![];
    let state = conf.state().map(|s| s.as_str().to_string());
    let memory_note = if memory < 256.0 {
        " (below 256 MB: less CPU, slower tasks; template parameter HandlerMemory)"
    } else {
        ""
    };
    match state.as_deref() {
        Some("Failed") | Some("Inactive") => checks.push(Check::fail(
            "function",
            format!(
                "function {arn} is {}: {}",
                state.as_deref().unwrap_or(""),
                conf.state_reason().unwrap_or("no reason given")
            ),
            "redeploy the function (scripts/deploy.sh)",
        )),
        _ => checks.push(Check::pass(
            "function",
            format!(
                "{} exists: {arch}, {memory} MB{memory_note}, timeout {timeout} s, runtime {}",
                conf.function_name().unwrap_or(arn),
                conf.runtime().map(|r| r.as_str()).unwrap_or("?")
            ),
        )),
    }
    if let Some(f) = &req.facts
        && let Some(largest) = &f.largest
    {
        let needed = seconds_needed(req, largest.size, memory);
        let why = format!(
            "the longest selected recording ({}, {:.1} MB, about {:.1} min) needs about {:.1} s \
             at {} s per audio minute with {memory} MB; the timeout is {timeout} s",
            largest.key,
            largest.size as f64 / 1e6,
            largest.size as f64 / (req.workload.mb_per_minute * 1e6),
            needed,
            req.workload.lambda_seconds_per_minute
        );
        let want = (needed * MARGIN).ceil().min(MAX_TIMEOUT);
        let fix = format!(
            "template parameter HandlerTimeout={want} (or aws lambda update-function-configuration \
             --function-name {arn} --timeout {want})"
        );
        checks.push(if needed > timeout {
            Check::fail(
                "function-timeout",
                format!("{why}: its task would time out"),
                fix,
            )
        } else if needed * MARGIN > timeout {
            Check::warn(
                "function-timeout",
                format!("{why}: less than {MARGIN}x headroom for a slow S3 read"),
                fix,
            )
        } else {
            Check::pass("function-timeout", why)
        });
    }
    checks.push(
        match lambda
            .get_function_concurrency()
            .function_name(arn)
            .send()
            .await
        {
            Ok(c) => match c.reserved_concurrent_executions() {
                Some(0) => Check::fail(
                    "function-concurrency",
                    "reserved concurrency is 0: every invocation is throttled",
                    "template parameter HandlerReservedConcurrency (e.g. 50)",
                ),
                Some(n) => Check::pass(
                    "function-concurrency",
                    format!("reserved concurrency {n}: the job cannot starve the account's other functions"),
                ),
                None => Check::warn(
                    "function-concurrency",
                    "no reserved concurrency: a job's invocations can take the account's whole \
                     concurrency and throttle other functions",
                    format!(
                        "template parameter HandlerReservedConcurrency (e.g. 50), or aws lambda \
                         put-function-concurrency --function-name {arn} \
                         --reserved-concurrent-executions 50"
                    ),
                ),
            },
            Err(e) => not_checked(
                "function-concurrency",
                "GetFunctionConcurrency",
                "lambda:GetFunctionConcurrency",
                &CallError::from_sdk(&e),
            ),
        },
    );
    (Some(found), checks)
}
