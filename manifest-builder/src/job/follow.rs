//! Following a job from the operator's seat: status, list, confirm or cancel, and waiting for
//! its end with the exit code that tells the outcomes apart.

use std::process::ExitCode;
use std::time::Duration;

use super::JobOptions;
use super::control::{self, JobState};
use crate::aws::AwsOptions;

/// `status JOB`.
pub async fn status(job_id: &str, opts: &JobOptions, aws: &AwsOptions) -> anyhow::Result<JobState> {
    let (client, account) = opts.client_and_account(aws).await?;
    let mut state = control::describe(&client, &account, job_id).await?;
    state.tags = control::tags(&client, &account, job_id).await;
    Ok(state)
}

/// `list`.
pub async fn list(
    statuses: &[String],
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<Vec<JobState>> {
    let (client, account) = opts.client_and_account(aws).await?;
    let mut all = control::list(&client, &account, statuses).await?;
    for s in &mut all {
        s.tags = control::tags(&client, &account, &s.job_id).await;
    }
    Ok(all)
}

/// `confirm JOB` / `cancel JOB`.
pub async fn set_status(
    job_id: &str,
    to: &str,
    reason: Option<&str>,
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<String> {
    let (client, account) = opts.client_and_account(aws).await?;
    control::update_status(&client, &account, job_id, to, reason).await
}

/// Exit codes of `wait`.
pub mod exit {
    /// Complete, no failed task.
    pub const COMPLETE: u8 = 0;
    /// Complete with failed tasks (see `report`).
    pub const FAILED_TASKS: u8 = 2;
    /// The job failed.
    pub const JOB_FAILED: u8 = 3;
    /// The job was cancelled.
    pub const CANCELLED: u8 = 4;
    /// Gave up waiting.
    pub const TIMEOUT: u8 = 5;
}

/// The exit code for a job's final state.
pub fn exit_code(state: &JobState) -> u8 {
    match state.status.as_str() {
        "Complete" if state.progress.as_ref().and_then(|p| p.failed).unwrap_or(0) > 0 => {
            exit::FAILED_TASKS
        }
        "Complete" => exit::COMPLETE,
        "Failed" => exit::JOB_FAILED,
        "Cancelled" => exit::CANCELLED,
        _ => exit::TIMEOUT,
    }
}

/// `wait JOB`: follows the job to a terminal state with a progress bar; returns the last state and exit code.
pub async fn wait(
    job_id: &str,
    interval: Duration,
    timeout: Option<Duration>,
    opts: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<(JobState, ExitCode)> {
    let (client, account) = opts.client_and_account(aws).await?;
    let started = std::time::Instant::now();
    let pb = crate::progress::tasks();
    loop {
        let state = control::describe(&client, &account, job_id).await?;
        match &state.progress {
            Some(p) => {
                pb.set_length(p.total.unwrap_or(0).max(0) as u64);
                pb.set_position((p.succeeded.unwrap_or(0) + p.failed.unwrap_or(0)).max(0) as u64);
                pb.set_message(format!(
                    "{} ({} failed)",
                    state.status,
                    p.failed
                        .map(|f| f.to_string())
                        .unwrap_or_else(|| "?".into())
                ));
            }
            None => pb.set_message(format!("{} (progress unknown)", state.status)),
        }
        if state.is_terminal() {
            pb.finish_and_clear();
            let code = exit_code(&state);
            return Ok((state, ExitCode::from(code)));
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            pb.finish_and_clear();
            return Ok((state, ExitCode::from(exit::TIMEOUT)));
        }
        tokio::time::sleep(interval).await;
    }
}

/// One line per job state.
pub fn describe_line(s: &JobState) -> String {
    let progress = match &s.progress {
        None => "progress unknown".to_string(),
        Some(p) => {
            let n = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_else(|| "?".into());
            format!(
                "{} of {} succeeded, {} failed",
                n(p.succeeded),
                n(p.total),
                n(p.failed)
            )
        }
    };
    let mut line = format!("{}  {:<10} {progress}", s.job_id, s.status);
    if let Some(d) = &s.description {
        line += &format!("  \"{d}\"");
    }
    if !s.tags.is_empty() {
        let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        line += &format!("  tags: {}", tags.join(","));
    }
    for f in &s.failures {
        line += &format!("\n  failure: {f}");
    }
    if let Some(r) = &s.report {
        line += &format!("\n  report: {r}/job-{}/manifest.json", s.job_id);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::control::Progress;

    fn state(status: &str, failed: Option<i64>) -> JobState {
        JobState {
            job_id: "j".into(),
            status: status.into(),
            progress: failed.map(|f| Progress {
                total: Some(10),
                succeeded: Some(10 - f),
                failed: Some(f),
                active_seconds: None,
            }),
            failures: vec![],
            report: None,
            tags: vec![],
            priority: None,
            description: None,
            status_update_reason: None,
            definition: None,
        }
    }

    #[test]
    fn exit_codes_tell_outcomes_apart() {
        assert_eq!(exit_code(&state("Complete", Some(0))), exit::COMPLETE);
        assert_eq!(exit_code(&state("Complete", None)), exit::COMPLETE);
        assert_eq!(exit_code(&state("Complete", Some(3))), exit::FAILED_TASKS);
        assert_eq!(exit_code(&state("Failed", Some(600))), exit::JOB_FAILED);
        assert_eq!(exit_code(&state("Cancelled", None)), exit::CANCELLED);
        assert!(
            !state("Completing", None).is_terminal(),
            "Completing is transient"
        );
        assert!(
            describe_line(&state("Preparing", None)).contains("progress unknown"),
            "absent progress is unknown, not zero"
        );
    }
}
