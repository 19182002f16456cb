//! The local Batch Operations engine: the real `aws-sdk-s3control` client against its API, jobs
//! on moto with the in-process handler, re-drives, the failure-rate rule, a restart mid-job, and
//! the built `bootstrap` under `cargo lambda watch`. Wrappers around the handler inject faults.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3control::error::ProvideErrorMetadata;
use aws_sdk_s3control::types::{
    JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec,
    JobOperation, JobReport, JobStatus, LambdaInvokeOperation, RequestedJobStatus,
};
use e2e_tests::*;
use futures::StreamExt;
use local_batch::engine::invoke::{InProcess, InvokeError, Invoker};
use local_batch::engine::{self, Engine, api::Endpoint};
use serde_json::{Value, json};

pub(crate) const ACCOUNT: &str = "123456789012";
pub(crate) const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:batch-handler";
pub(crate) const ROLE: &str = "arn:aws:iam::123456789012:role/batch-ops";

pub(crate) fn shared() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new("test", "test", None, None, "static"),
        ))
        .build()
}

pub(crate) fn store(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("engine-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn in_process(s3: &Client) -> Arc<dyn Invoker> {
    let settings = batch_handler::Settings::from_lookup(|_| None).unwrap();
    Arc::new(InProcess::new(
        batch_handler::Handler::new(s3.clone(), settings),
        Duration::from_secs(120),
    ))
}

async fn start(
    s3: &Client,
    dir: &std::path::Path,
    invoker: Arc<dyn Invoker>,
    tweak: impl FnOnce(&mut engine::Options),
) -> (Engine, Endpoint, aws_sdk_s3control::Client) {
    let mut opts = engine::Options::new(dir.to_path_buf());
    opts.backoff = Duration::from_millis(10);
    tweak(&mut opts);
    let eng = Engine::open(opts, s3.clone(), invoker).unwrap();
    eng.resume();
    let api = engine::api::serve(eng.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let control = manifest_builder::job::control::client(&shared(), Some(&api.url));
    (eng, api, control)
}

pub(crate) async fn put(s3: &Client, bucket: &str, key: &str, body: Vec<u8>) -> String {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .trim_matches('"')
        .to_string()
}

/// Writes `n` small Connect recordings (and `broken` non-WAV objects); returns the manifest's ETag.
async fn recordings(s3: &Client, bucket: &str, n: usize, broken: usize) -> String {
    let wav = connect_wav(1.0);
    let mut rows = String::new();
    let keys: Vec<String> = (0..n + broken)
        .map(|i| format!("rec/2024/01/0{}/c{i:05}_20240101T03:07_UTC.wav", 1 + i % 9))
        .collect();
    // A bounded number in flight: a thousand at once stalls moto on a busy 2-core machine.
    futures::stream::iter(keys.iter().enumerate().map(|(i, k)| {
        let body = if i < n {
            wav.clone()
        } else {
            b"ID3 not a wave file at all".to_vec()
        };
        put(s3, bucket, k, body)
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    for k in &keys {
        rows.push_str(&format!(
            "{bucket},{}\n",
            batch_contract::key::encode_key(k)
        ));
    }
    put(s3, bucket, "manifests/m.csv", rows.into_bytes()).await
}

pub(crate) async fn create(
    control: &aws_sdk_s3control::Client,
    bucket: &str,
    etag: &str,
    token: &str,
    confirm: bool,
) -> Result<
    String,
    aws_sdk_s3control::error::SdkError<aws_sdk_s3control::operation::create_job::CreateJobError>,
> {
    create_shaped(control, bucket, etag, token, confirm, &Shape::default()).await
}

/// What a test job looks like beyond its manifest: a VersionId column, handler arguments.
#[derive(Default)]
pub(crate) struct Shape<'a> {
    /// The manifest has Bucket, Key, VersionId.
    pub versions: bool,
    /// `userArguments`.
    pub args: &'a [(&'a str, &'a str)],
}

/// CreateJob for `manifests/m.csv` in `bucket`, report under `reports`.
pub(crate) async fn create_shaped(
    control: &aws_sdk_s3control::Client,
    bucket: &str,
    etag: &str,
    token: &str,
    confirm: bool,
    shape: &Shape<'_>,
) -> Result<
    String,
    aws_sdk_s3control::error::SdkError<aws_sdk_s3control::operation::create_job::CreateJobError>,
> {
    let mut invoke = LambdaInvokeOperation::builder()
        .function_arn(FUNCTION)
        .invocation_schema_version("2.0");
    for (k, v) in shape.args {
        invoke = invoke.user_arguments(*k, *v);
    }
    let mut spec = JobManifestSpec::builder()
        .format(JobManifestFormat::S3BatchOperationsCsv20180820)
        .fields(JobManifestFieldName::Bucket)
        .fields(JobManifestFieldName::Key);
    if shape.versions {
        spec = spec.fields(JobManifestFieldName::VersionId);
    }
    control
        .create_job()
        .account_id(ACCOUNT)
        .operation(
            JobOperation::builder()
                .lambda_invoke(invoke.build())
                .build(),
        )
        .manifest(
            JobManifest::builder()
                .spec(spec.build().unwrap())
                .location(
                    JobManifestLocation::builder()
                        .object_arn(format!("arn:aws:s3:::{bucket}/manifests/m.csv"))
                        .e_tag(etag)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .report(
            JobReport::builder()
                .enabled(true)
                .bucket(format!("arn:aws:s3:::{bucket}"))
                .format(aws_sdk_s3control::types::JobReportFormat::ReportCsv20180820)
                .prefix("reports")
                .report_scope(aws_sdk_s3control::types::JobReportScope::AllTasks)
                .build(),
        )
        .priority(10)
        .role_arn(ROLE)
        .client_request_token(token)
        .confirmation_required(confirm)
        .send()
        .await
        .map(|o| o.job_id().unwrap().to_string())
}

pub(crate) async fn describe(
    control: &aws_sdk_s3control::Client,
    id: &str,
) -> aws_sdk_s3control::types::JobDescriptor {
    control
        .describe_job()
        .account_id(ACCOUNT)
        .job_id(id)
        .send()
        .await
        .unwrap()
        .job()
        .unwrap()
        .clone()
}

pub(crate) async fn until(
    control: &aws_sdk_s3control::Client,
    id: &str,
    done: impl Fn(&aws_sdk_s3control::types::JobDescriptor) -> bool,
) -> aws_sdk_s3control::types::JobDescriptor {
    let started = Instant::now();
    loop {
        let job = describe(control, id).await;
        if done(&job) {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "job {id} stuck in {:?}",
            job.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn terminal(j: &aws_sdk_s3control::types::JobDescriptor) -> bool {
    matches!(
        j.status(),
        Some(JobStatus::Complete | JobStatus::Failed | JobStatus::Cancelled)
    )
}

pub(crate) fn counts(j: &aws_sdk_s3control::types::JobDescriptor) -> (i64, i64, i64) {
    let p = j.progress_summary().expect("progress");
    (
        p.total_number_of_tasks().unwrap_or(-1),
        p.number_of_tasks_succeeded().unwrap_or(-1),
        p.number_of_tasks_failed().unwrap_or(-1),
    )
}

pub(crate) async fn report_rows(
    s3: &Client,
    bucket: &str,
    id: &str,
) -> Vec<batch_contract::report::ReportRow> {
    report_rows_at(s3, bucket, "reports", id).await
}

pub(crate) async fn report_rows_at(
    s3: &Client,
    bucket: &str,
    prefix: &str,
    id: &str,
) -> Vec<batch_contract::report::ReportRow> {
    let loc = manifest_builder::location::Location::S3 {
        bucket: bucket.to_string(),
        key: format!("{prefix}/job-{id}/manifest.json"),
    };
    let m =
        batch_contract::report::ReportManifest::parse(&loc.read(s3).await.unwrap(), "m").unwrap();
    let mut rows = Vec::new();
    for f in &m.results {
        let at = manifest_builder::location::Location::S3 {
            bucket: f.bucket.clone(),
            key: f.key.clone(),
        };
        let bytes = at.read(s3).await.unwrap();
        batch_contract::report::verify(f, &bytes).unwrap();
        assert!(f.key.starts_with(&format!("{prefix}/job-{id}/results/")));
        let name = f.key.rsplit('/').next().unwrap();
        assert_eq!(name.len(), 44, "{name}: 40 hex digits + .csv");
        rows.extend(batch_contract::report::parse_rows(&bytes, &f.key).unwrap());
    }
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn the_s3control_client_drives_the_local_engine() {
    let test = "s3control_client_drives_the_local_engine";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "engine-api", true).await;
    let etag = recordings(&s3, &bucket, 4, 1).await;
    let dir = store(test);
    let (_eng, _api, control) = start(&s3, &dir, in_process(&s3), |_| {}).await;

    // Suspended until confirmed; the same token gives the same job, other parameters an error.
    let id = create(&control, &bucket, &etag, "token-1", true)
        .await
        .unwrap();
    assert_eq!(
        create(&control, &bucket, &etag, "token-1", true)
            .await
            .unwrap(),
        id
    );
    let reuse = create(&control, &bucket, &etag, "token-1", false)
        .await
        .unwrap_err();
    assert_eq!(reuse.code(), Some("IdempotencyException"), "{reuse:?}");
    let job = until(&control, &id, |j| j.status() == Some(&JobStatus::Suspended)).await;
    assert_eq!(counts(&job).0, 5);
    assert_eq!(
        job.operation()
            .unwrap()
            .lambda_invoke()
            .unwrap()
            .function_arn(),
        Some(FUNCTION)
    );
    assert!(
        job.job_arn()
            .unwrap()
            .ends_with(&format!(":{ACCOUNT}:job/{id}"))
    );

    let p = control
        .update_job_priority()
        .account_id(ACCOUNT)
        .job_id(&id)
        .priority(42)
        .send()
        .await
        .unwrap();
    assert_eq!(p.priority(), 42);
    assert_eq!(describe(&control, &id).await.priority(), 42);

    let listed = control
        .list_jobs()
        .account_id(ACCOUNT)
        .send()
        .await
        .unwrap();
    assert!(
        listed
            .jobs()
            .iter()
            .any(|j| j.job_id() == Some(id.as_str()) && j.status() == Some(&JobStatus::Suspended))
    );
    let listed = control
        .list_jobs()
        .account_id(ACCOUNT)
        .job_statuses(JobStatus::Complete)
        .send()
        .await
        .unwrap();
    assert!(
        listed
            .jobs()
            .iter()
            .all(|j| j.job_id() != Some(id.as_str()))
    );

    // Confirm: it runs to Complete; the broken object fails with a reason.
    let r = control
        .update_job_status()
        .account_id(ACCOUNT)
        .job_id(&id)
        .requested_job_status(RequestedJobStatus::Ready)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), Some(&JobStatus::Ready));
    let job = until(&control, &id, terminal).await;
    assert_eq!(job.status(), Some(&JobStatus::Complete));
    assert_eq!(counts(&job), (5, 4, 1));
    let again = control
        .update_job_status()
        .account_id(ACCOUNT)
        .job_id(&id)
        .requested_job_status(RequestedJobStatus::Ready)
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("JobStatusException"));

    // A second job, cancelled while suspended: nothing runs, no report.
    let other = create(&control, &bucket, &etag, "token-2", true)
        .await
        .unwrap();
    until(&control, &other, |j| {
        j.status() == Some(&JobStatus::Suspended)
    })
    .await;
    let c = control
        .update_job_status()
        .account_id(ACCOUNT)
        .job_id(&other)
        .requested_job_status(RequestedJobStatus::Cancelled)
        .status_update_reason("not today")
        .send()
        .await
        .unwrap();
    assert_eq!(c.status(), Some(&JobStatus::Cancelled));
    let job = describe(&control, &other).await;
    assert_eq!(job.status_update_reason(), Some("not today"));
    assert_eq!(counts(&job), (5, 0, 0));

    // A wrong ETag does not fail CreateJob: as on AWS the job is created and fails, with the
    // manifest's problem in FailureReasons. A quoted ETag is the same ETag.
    let wrong = create(
        &control,
        &bucket,
        "0123456789abcdef0123456789abcdef",
        "token-3",
        false,
    )
    .await
    .unwrap();
    let failed = until(&control, &wrong, terminal).await;
    assert_eq!(failed.status(), Some(&JobStatus::Failed));
    let reasons = failed.failure_reasons();
    assert_eq!(
        reasons[0].failure_code(),
        Some("ManifestETagMismatch"),
        "{reasons:?}"
    );
    assert!(
        reasons[0].failure_reason().unwrap_or("").contains("ETag"),
        "{reasons:?}"
    );
    let quoted = create(&control, &bucket, &format!("\"{etag}\""), "token-q", true)
        .await
        .unwrap();
    let q = until(&control, &quoted, |j| {
        j.status() == Some(&JobStatus::Suspended)
    })
    .await;
    assert!(q.failure_reasons().is_empty(), "a quoted ETag is accepted");
    // Unknown job, another account's job.
    let none = control
        .describe_job()
        .account_id(ACCOUNT)
        .job_id("00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(none.code(), Some("NotFoundException"));
    let elsewhere = control
        .describe_job()
        .account_id("999999999999")
        .job_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), Some("NotFoundException"));

    // The report is the service's: manifest.json, MD5-checked files, rows in the real order.
    let rows = report_rows(&s3, &bucket, &id).await;
    assert_eq!(rows.len(), 5);
    let failed: Vec<_> = rows.iter().filter(|r| r.failed()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error_code, "PermanentFailure");
    assert_eq!(failed[0].http_status, Some(200));
    assert!(
        failed[0].raw_key.contains("%3A07"),
        "{:?}",
        failed[0].raw_key
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Answers TemporaryFailure the first `n` times it sees each task, then lets the handler run.
struct Flaky {
    inner: Arc<dyn Invoker>,
    first: u32,
    seen: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    calls: AtomicU64,
}

#[async_trait::async_trait]
impl Invoker for Flaky {
    async fn invoke(&self, f: &str, event: Value) -> Result<Value, InvokeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let task = event["tasks"][0]["taskId"].as_str().unwrap().to_string();
        let n = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(task.clone()).or_default();
            *n += 1;
            *n
        };
        if n <= self.first {
            return Ok(json!({
                "invocationSchemaVersion": event["invocationSchemaVersion"],
                "invocationId": event["invocationId"],
                "treatMissingKeysAs": "PermanentFailure",
                "results": [{"taskId": task, "resultCode": "TemporaryFailure", "resultString": "SlowDown (injected)"}],
            }));
        }
        self.inner.invoke(f, event).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_failures_are_redriven_until_they_pass_or_the_attempts_run_out() {
    let test = "temporary_failures_are_redriven";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "engine-redrive", true).await;
    let etag = recordings(&s3, &bucket, 12, 0).await;
    for (first, attempts, succeeded) in [(2u32, 4u32, 12i64), (5, 3, 0)] {
        let dir = store(&format!("{test}-{first}"));
        let flaky = Arc::new(Flaky {
            inner: in_process(&s3),
            first,
            seen: Default::default(),
            calls: AtomicU64::new(0),
        });
        let (_eng, _api, control) =
            start(&s3, &dir, flaky.clone(), |o| o.max_attempts = attempts).await;
        let id = create(&control, &bucket, &etag, &format!("t{first}"), false)
            .await
            .unwrap();
        let job = until(&control, &id, terminal).await;
        assert_eq!(job.status(), Some(&JobStatus::Complete));
        assert_eq!(counts(&job), (12, succeeded, 12 - succeeded));
        let expected_calls = if succeeded > 0 {
            12 * (first + 1)
        } else {
            12 * attempts
        };
        assert_eq!(
            flaky.calls.load(Ordering::SeqCst),
            u64::from(expected_calls)
        );
        let rows = report_rows(&s3, &bucket, &id).await;
        assert_eq!(rows.len(), 12);
        if succeeded == 0 {
            assert!(
                rows.iter().all(|r| r.error_code == "TemporaryFailure"
                    && r.message.contains("SlowDown (injected)"))
            );
        } else {
            assert!(
                rows.iter()
                    .all(|r| !r.failed() && r.message.contains("converted")),
                "{rows:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Fails 60 % of tasks permanently without touching S3 (the objects need not exist).
struct MostlyBroken {
    calls: AtomicU64,
}

#[async_trait::async_trait]
impl Invoker for MostlyBroken {
    async fn invoke(&self, _f: &str, event: Value) -> Result<Value, InvokeError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let task = event["tasks"][0]["taskId"].clone();
        let code = if n % 5 < 3 {
            "PermanentFailure"
        } else {
            "Succeeded"
        };
        Ok(json!({
            "invocationSchemaVersion": event["invocationSchemaVersion"],
            "invocationId": event["invocationId"],
            "treatMissingKeysAs": "PermanentFailure",
            "results": [{"taskId": task, "resultCode": code, "resultString": "injected"}],
        }))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_failing_more_than_half_its_tasks_after_1000_fails() {
    let test = "failure_rate_rule";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "engine-rule", false).await;
    let rows: String = (0..3000).map(|i| format!("{bucket},k{i}.wav\n")).collect();
    let etag = put(&s3, &bucket, "manifests/m.csv", rows.into_bytes()).await;
    let dir = store(test);
    let broken = Arc::new(MostlyBroken {
        calls: AtomicU64::new(0),
    });
    let (_eng, _api, control) = start(&s3, &dir, broken.clone(), |o| o.concurrency = 4).await;
    let id = create(&control, &bucket, &etag, "rule", false)
        .await
        .unwrap();
    let job = until(&control, &id, terminal).await;
    assert_eq!(job.status(), Some(&JobStatus::Failed));
    let (total, ok, failed) = counts(&job);
    assert_eq!(total, 3000);
    let run = ok + failed;
    assert!((1000..1100).contains(&run), "stopped after {run} tasks");
    assert!(failed * 2 > run);
    let reasons: Vec<_> = job
        .failure_reasons()
        .iter()
        .map(|f| f.failure_code().unwrap_or(""))
        .collect();
    assert_eq!(reasons, ["TaskFailureRateExceeded"]);
    assert_eq!(report_rows(&s3, &bucket, &id).await.len() as i64, run);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Counts invocations and slows them, so the engine can be stopped mid-job.
struct Slow {
    inner: Arc<dyn Invoker>,
    calls: AtomicU64,
}

#[async_trait::async_trait]
impl Invoker for Slow {
    async fn invoke(&self, f: &str, event: Value) -> Result<Value, InvokeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        self.inner.invoke(f, event).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_restarted_mid_job_resumes_without_converting_twice() {
    let test = "engine_restart_resumes";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "engine-restart", true).await;
    let etag = recordings(&s3, &bucket, 60, 0).await;
    let dir = store(test);
    let slow = Arc::new(Slow {
        inner: in_process(&s3),
        calls: AtomicU64::new(0),
    });
    let (first, api, control) = start(&s3, &dir, slow.clone(), |o| o.concurrency = 2).await;
    let id = create(&control, &bucket, &etag, "restart", false)
        .await
        .unwrap();
    until(&control, &id, |j| {
        j.progress_summary()
            .and_then(|p| p.number_of_tasks_succeeded())
            .unwrap_or(0)
            >= 15
    })
    .await;
    first.abort();
    api.stop();
    drop(first);
    let before = slow.calls.load(Ordering::SeqCst);
    assert!(before < 60, "the job finished before the restart");

    let (second, _api, control) = start(&s3, &dir, in_process(&s3), |_| {}).await;
    let job = until(&control, &id, terminal).await;
    assert_eq!(job.status(), Some(&JobStatus::Complete));
    assert_eq!(counts(&job), (60, 60, 0));
    assert!(
        second.invocations() <= 60 - 15 + 2,
        "{} invocations after the restart",
        second.invocations()
    );
    // Each recording has exactly its original and one converted version.
    let mut per_key: std::collections::HashMap<String, usize> = Default::default();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(&bucket)
            .prefix("rec/")
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await
            .unwrap();
        for v in page.versions() {
            *per_key.entry(v.key().unwrap().to_string()).or_default() += 1;
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
    assert_eq!(per_key.len(), 60);
    assert!(per_key.values().all(|&n| n == 2), "{per_key:?}");
    assert_eq!(report_rows(&s3, &bucket, &id).await.len(), 60);
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_local(endpoint: &str, bucket: &str, dir: &std::path::Path) -> (Option<i32>, Value) {
    let mut c = aws_command(&workspace_binary("manifest-builder").unwrap());
    c.args([
        "--endpoint-url",
        endpoint,
        "--json",
        "run",
        "--local",
        "--bucket",
        bucket,
    ])
    .args([
        "--prefix",
        "rec/",
        "--min-size",
        "1",
        "--task-concurrency",
        "8",
    ])
    .arg("--engine-dir")
    .arg(dir);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

#[tokio::test(flavor = "multi_thread")]
async fn run_shrinks_a_thousand_recordings_on_moto_and_a_second_run_converts_nothing() {
    let test = "run_local_thousand";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    if require_binary("manifest-builder", test).is_none() {
        return;
    }
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "engine-run", true).await;
    recordings(&s3, &bucket, 1000, 10).await;
    let dir = store(test);

    let (code, first) = run_local(&endpoint, &bucket, &dir);
    assert_eq!(code, Some(2), "failed tasks give exit 2: {first}");
    assert_eq!(first["status"], "Complete", "{first}");
    assert_eq!(first["selected"], 1010);
    let report = &first["report"];
    assert_eq!(
        (
            report["tasks"].as_u64(),
            report["converted"].as_u64(),
            report["failed"].as_u64()
        ),
        (Some(1010), Some(1000), Some(10)),
        "{report}"
    );
    assert!(report["bytes_after"].as_u64().unwrap() * 3 < report["bytes_before"].as_u64().unwrap());
    eprintln!(
        "run --local on moto, in-process handler: 1010 objects in {:.1} s = {:.0} objects/s",
        first["seconds"].as_f64().unwrap(),
        1010.0 / first["seconds"].as_f64().unwrap()
    );
    // The report names exactly the objects of the bucket, once each.
    let id = first["job_id"].as_str().unwrap();
    let rows = report_rows_at(&s3, &bucket, "batch-operations/manifests/reports", id).await;
    let mut keys: Vec<String> = rows.iter().map(|r| r.key()).collect();
    keys.sort();
    let mut listed = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("rec/")
        .into_paginator()
        .send();
    while let Some(p) = pages.next().await {
        listed.extend(
            p.unwrap()
                .contents()
                .iter()
                .map(|o| o.key().unwrap().to_string()),
        );
    }
    listed.sort();
    assert_eq!(keys, listed);
    assert!(
        rows.iter()
            .filter(|r| r.failed())
            .all(|r| r.raw_key.starts_with("rec/") && r.message.contains("WAV")),
        "{:?}",
        rows.iter().find(|r| r.failed())
    );

    // Second run: the converted recordings are Glacier IR now; only the broken ones are selected.
    let (_, second) = run_local(&endpoint, &bucket, &dir);
    assert_eq!(second["selected"], 10, "{second}");
    assert_eq!(second["report"]["converted"], 0);
    assert_eq!(second["report"]["failed"], 10);
    let _ = std::fs::remove_dir_all(&dir);
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cargo lambda watch` in its own process group, killed with the group.
struct Watch(std::process::Child);

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// Starts the handler under `cargo lambda watch` (function timeout `timeout` seconds, four
/// invocations at a time) against `endpoint`; returns it and its Invoke API URL, or `None` after
/// reporting cargo-lambda missing.
async fn watch(endpoint: &str, timeout: u32, test: &str) -> Option<(Watch, String)> {
    use std::os::unix::process::CommandExt;
    if !have("cargo-lambda") {
        missing(
            "cargo-lambda (pip install cargo-lambda; .ci/run installs it)",
            test,
        );
        return None;
    }
    let port = free_port();
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../batch-handler");
    let log = std::fs::File::create(std::env::temp_dir().join(format!(
        "cargo-lambda-watch-{test}-{}.log",
        std::process::id()
    )))
    .unwrap();
    let mut cmd = std::process::Command::new("cargo");
    cmd.args([
        "lambda",
        "watch",
        "-A",
        "127.0.0.1",
        "-P",
        &port.to_string(),
    ])
    .args(["--timeout", &timeout.to_string(), "--concurrency", "4"])
    .current_dir(&crate_dir)
    .env("AWS_ACCESS_KEY_ID", "test")
    .env("AWS_SECRET_ACCESS_KEY", "test")
    .env("AWS_REGION", "us-east-1")
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env("AWS_ENDPOINT_URL", endpoint)
    .env("FUNCTION_TIMEOUT_SECONDS", timeout.to_string())
    .stdout(log.try_clone().unwrap())
    .stderr(log)
    .process_group(0);
    let watch = Watch(cmd.spawn().unwrap());
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "cargo lambda watch did not listen"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Some((watch, format!("http://127.0.0.1:{port}")))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_built_bootstrap_runs_a_job_under_cargo_lambda_watch() {
    let test = "bootstrap_under_cargo_lambda_watch";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "engine-watch", true).await;
    let etag = recordings(&s3, &bucket, 40, 2).await;
    let Some((_watch, url)) = watch(&endpoint, 600, test).await else {
        return;
    };
    let lambda = Arc::new(local_batch::engine::invoke::LambdaApi::new(&shared(), &url));
    // The first invocation starts (and, if needed, builds) the function: time it alone.
    let probe = Instant::now();
    let warm = lambda
        .invoke(FUNCTION, json!({"invocationSchemaVersion": "2.0", "invocationId": "i", "job": {"id": "j"}, "tasks": []}))
        .await
        .unwrap();
    assert_eq!(warm["results"], json!([]));
    eprintln!(
        "cargo lambda watch: first invocation {:.2} s",
        probe.elapsed().as_secs_f64()
    );

    let dir = store(test);
    let (_eng, _api, control) = start(&s3, &dir, lambda, |o| o.concurrency = 8).await;
    let t = Instant::now();
    let id = create(&control, &bucket, &etag, "watch", false)
        .await
        .unwrap();
    let job = until(&control, &id, terminal).await;
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(job.status(), Some(&JobStatus::Complete));
    assert_eq!(counts(&job), (42, 40, 2));
    eprintln!(
        "through cargo lambda watch: 42 tasks in {secs:.1} s = {:.1} objects/s",
        42.0 / secs
    );
    let rows = report_rows(&s3, &bucket, &id).await;
    assert_eq!(rows.iter().filter(|r| r.failed()).count(), 2);

    // The same job with the handler in process, for comparison.
    let bucket2 = new_bucket(&s3, "engine-watch-inproc", true).await;
    let etag2 = recordings(&s3, &bucket2, 40, 2).await;
    let dir2 = store(&format!("{test}-inproc"));
    let (_e2, _a2, control2) = start(&s3, &dir2, in_process(&s3), |o| o.concurrency = 8).await;
    let t = Instant::now();
    let id2 = create(&control2, &bucket2, &etag2, "inproc", false)
        .await
        .unwrap();
    let job2 = until(&control2, &id2, terminal).await;
    let secs2 = t.elapsed().as_secs_f64();
    assert_eq!(counts(&job2), (42, 40, 2));
    eprintln!(
        "in process: 42 tasks in {secs2:.1} s = {:.1} objects/s",
        42.0 / secs2
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

/// Passes invocations through and keeps every task's answer: (resultCode, resultString).
struct Recorded {
    inner: Arc<dyn Invoker>,
    /// (key, resultCode, resultString) of every task result, in the order they came back.
    answers: std::sync::Mutex<Vec<(String, String, String)>>,
}

#[async_trait::async_trait]
impl Invoker for Recorded {
    async fn invoke(&self, f: &str, event: Value) -> Result<Value, InvokeError> {
        let keys: HashMap<String, String> = event["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let key = t["s3Key"].as_str().unwrap_or("");
                (
                    t["taskId"].as_str().unwrap_or("").to_string(),
                    key.to_string(),
                )
            })
            .collect();
        let out = self.inner.invoke(f, event).await?;
        for r in out["results"].as_array().into_iter().flatten() {
            let id = r["taskId"].as_str().unwrap_or("");
            self.answers.lock().unwrap().push((
                keys.get(id).cloned().unwrap_or_default(),
                r["resultCode"].as_str().unwrap_or("").to_string(),
                r["resultString"].as_str().unwrap_or("").to_string(),
            ));
        }
        Ok(out)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_past_its_deadline_answers_temporary_failure_and_the_redrive_completes() {
    use e2e_tests::fault_proxy::{self, Fault, Plan};
    let test = "function_past_its_deadline";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "engine-deadline", true).await;
    let n = 8;
    let etag = recordings(&s3, &bucket, n, 0).await;
    // Each recording's first GET stalls past the 6 s function timeout; later ones pass. The
    // handler stops at 4.8 s, leaving 1.2 s to answer before the emulator gives up, even on a
    // busy machine.
    let mut plan = Plan::all(5, 1.0);
    plan.kinds = vec![Fault::Stall];
    plan.stall = Duration::from_secs(12);
    plan.only = vec![format!("GET /{bucket}/rec/")];
    plan.occurrences = 1;
    let proxy = fault_proxy::start(&endpoint, plan).await;
    let Some((_watch, url)) = watch(&proxy.url, 6, test).await else {
        return;
    };
    let lambda = Arc::new(local_batch::engine::invoke::LambdaApi::new(&shared(), &url));
    // The first invocation starts the function; give it the time that takes.
    let started = Instant::now();
    let empty = json!({"invocationSchemaVersion": "2.0", "invocationId": "i", "job": {"id": "j"}, "tasks": []});
    while lambda.invoke(FUNCTION, empty.clone()).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the function never answered"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let recorded = Arc::new(Recorded {
        inner: lambda,
        answers: Default::default(),
    });
    let dir = store(test);
    let (eng, _api, control) = start(&s3, &dir, recorded.clone(), |o| o.concurrency = 4).await;
    let id = create(&control, &bucket, &etag, "deadline", false)
        .await
        .unwrap();
    let job = until(&control, &id, terminal).await;
    assert_eq!(job.status(), Some(&JobStatus::Complete));
    assert_eq!(
        counts(&job),
        (n as i64, n as i64, 0),
        "every task re-driven to success"
    );
    let stalls = proxy.injected().get(&Fault::Stall).copied().unwrap_or(0);
    assert!(stalls >= n as u64, "{stalls} stalls for {n} recordings");
    let answers = recorded.answers.lock().unwrap().clone();
    // Every task's first attempt met the stall and stopped at the deadline; every later attempt
    // but the last did too (a server slowed by the other tests can push a re-drive past 4.8 s);
    // the last converted it.
    let mut by_key: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (key, code, why) in &answers {
        by_key.entry(key).or_default().push((code, why));
    }
    assert_eq!(by_key.len(), n, "{answers:#?}");
    for (key, tries) in &by_key {
        let (last, earlier) = tries.split_last().unwrap();
        assert!(
            !earlier.is_empty(),
            "{key}: converted on the first try: {tries:?}"
        );
        assert_eq!(last.0, "Succeeded", "{key}: {tries:?}");
        assert!(
            earlier
                .iter()
                .all(|(code, why)| *code == "TemporaryFailure" && why.contains("deadline")),
            "{key}: {tries:?}"
        );
    }
    let temporary = answers.len() - n;
    assert_eq!(
        eng.invocations(),
        answers.len() as u64,
        "one invocation per answer: every re-drive was answered"
    );
    let rows = report_rows(&s3, &bucket, &id).await;
    assert_eq!(rows.len(), n);
    for r in &rows {
        let s = batch_contract::result::Summary::from_result_string(&r.message)
            .unwrap_or_else(|| panic!("{}: {}", r.key(), r.message));
        assert_eq!(
            s.action,
            batch_contract::result::Action::Converted,
            "{}",
            r.message
        );
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(r.key())
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.version_id(),
            s.output_version_id.as_deref(),
            "{}",
            r.key()
        );
    }
    eprintln!(
        "past the deadline under cargo lambda watch: {n} tasks, {} invocations, {temporary} \
         TemporaryFailure then converted",
        eng.invocations()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_starts_the_embedded_s3_and_the_engine_for_other_clients() {
    use std::io::BufRead;
    let test = "serve_embedded";
    let Some(bin) = require_binary("manifest-builder", test) else {
        return;
    };
    let dir = store(test);
    let mut child = aws_command(&bin)
        .args(["serve", "--embedded-s3"])
        .arg(dir.join("s3"))
        .arg("--engine-dir")
        .arg(dir.join("engine"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ep: Value = serde_json::from_str(&line).unwrap();
    let url = ep["s3_endpoint_url"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{ep}");
    let creds = aws_sdk_s3::config::Credentials::new(
        ep["aws_access_key_id"].as_str().unwrap(),
        ep["aws_secret_access_key"].as_str().unwrap(),
        None,
        None,
        "serve",
    );
    let s3 = Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(url)
            .force_path_style(true)
            .build(),
    );
    // Wrong keys are refused: the embedded S3 checks signatures.
    let stranger = s3_client(url);
    assert!(stranger.list_buckets().send().await.is_err());

    // What the handler needs beyond s3s-fs: tags, storage class, versioning status, conditional PUT.
    s3.create_bucket().bucket("calls").send().await.unwrap();
    let key = "connect/x/CallRecordings/2024/01/26/a b+c%_été_20240126T03:07_UTC.wav";
    let etag = put(&s3, "calls", key, connect_wav(40.0)).await;
    let settings = batch_handler::Settings::from_lookup(|_| None).unwrap();
    let handler = batch_handler::Handler::new(s3.clone(), settings);
    let event = event_v2(
        "calls",
        &[(batch_contract::key::encode_key(key).as_str(), None)],
        json!({"destPrefix": "converted/"}),
    );
    let first = serde_json::to_value(handler.handle(&event, None).await).unwrap();
    assert_eq!(first["results"][0]["resultCode"], "Succeeded", "{first}");
    let out_key = format!("converted/{key}");
    let head = s3
        .head_object()
        .bucket("calls")
        .key(&out_key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.storage_class().map(|c| c.as_str()), Some("GLACIER_IR"));
    let tags = s3
        .get_object_tagging()
        .bucket("calls")
        .key(&out_key)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| t.key() == "converted" && t.value() == "true")
    );
    let listed = s3
        .list_objects_v2()
        .bucket("calls")
        .prefix("converted/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.contents()[0].storage_class().map(|c| c.as_str()),
        Some("GLACIER_IR")
    );
    // The original is untouched; a second run is a no-op (the destination exists: 412).
    assert_eq!(
        s3.head_object()
            .bucket("calls")
            .key(key)
            .send()
            .await
            .unwrap()
            .e_tag()
            .unwrap()
            .trim_matches('"'),
        etag
    );
    let again = serde_json::to_value(
        handler
            .handle(&e2e_tests::as_job(event.clone(), "second-job"), None)
            .await,
    )
    .unwrap();
    assert!(
        again["results"][0]["resultString"]
            .as_str()
            .unwrap()
            .contains("skipped"),
        "{again}"
    );
    // In place on the (unversioned) embedded S3 is refused, naming the reason.
    let in_place = event_v2(
        "calls",
        &[(batch_contract::key::encode_key(key).as_str(), None)],
        json!({}),
    );
    let refused = serde_json::to_value(handler.handle(&in_place, None).await).unwrap();
    assert_eq!(refused["results"][0]["resultCode"], "PermanentFailure");
    assert!(
        refused["results"][0]["resultString"]
            .as_str()
            .unwrap()
            .contains("not versioned"),
        "{refused}"
    );

    // Keys up to S3's 1,024 bytes are kept; a longer one is refused as S3 refuses it.
    put(&s3, "calls", &"k".repeat(1024), vec![1u8; 10]).await;
    let long = "k".repeat(1025);
    let e = aws_sdk_s3::Error::from(
        s3.put_object()
            .bucket("calls")
            .key(&long)
            .body(vec![1u8; 10].into())
            .send()
            .await
            .unwrap_err(),
    );
    assert!(format!("{e:?}").contains("KeyTooLongError"), "{e:?}");

    // The engine answers the S3 Control API at the printed endpoint.
    let control =
        manifest_builder::job::control::client(&shared(), ep["s3control_endpoint_url"].as_str());
    let jobs = control
        .list_jobs()
        .account_id(ep["account_id"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert!(jobs.jobs().is_empty());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The built `manifest-builder` as the scheduled Lambda function, behind a Runtime API of the
/// test's: S3 at `endpoint`, the engine at `control`, the recordings under `prefix` in `bucket`,
/// manifests and reports under `ops/`, and `settings` on top.
struct ScheduledFunction {
    _child: tokio::process::Child,
    runtime: Arc<crate::lambda_protocol::RuntimeApi>,
    posted: tokio::sync::mpsc::UnboundedReceiver<crate::lambda_protocol::Posted>,
}

impl ScheduledFunction {
    async fn start(
        binary: &std::path::Path,
        (endpoint, control): (&str, &str),
        (bucket, prefix): (&str, &str),
        settings: &[(&str, &str)],
    ) -> ScheduledFunction {
        let (addr, runtime, posted) = crate::lambda_protocol::start_runtime_api().await;
        let mut cmd = crate::lambda_protocol::function_command(binary, &addr, "manifest", endpoint);
        cmd.env("AWS_ENDPOINT_URL_S3_CONTROL", control)
            .env("RECORDINGS_BUCKET", bucket)
            .env("RECORDINGS_PREFIX", prefix)
            .env("MANIFEST_LOCATION", format!("s3://{bucket}/ops/manifests"))
            .env("REPORT_LOCATION", format!("s3://{bucket}/ops/reports"))
            .env("HANDLER_FUNCTION_ARN", FUNCTION)
            .env("JOB_ROLE_ARN", ROLE)
            .env("ACCOUNT_ID", ACCOUNT)
            .env("MIN_SIZE", "1");
        for (k, v) in settings {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        ScheduledFunction {
            _child: child,
            runtime,
            posted,
        }
    }

    /// Delivers the schedule's event for `at` as request `id`; returns the function's answer.
    async fn fire(&mut self, id: &str, at: &str) -> Value {
        self.runtime
            .queue
            .lock()
            .await
            .push_back((id.into(), json!({"scheduledTime": at})));
        self.runtime.ready.notify_one();
        let (rid, kind, body) = tokio::time::timeout(Duration::from_secs(120), self.posted.recv())
            .await
            .expect("the function answered")
            .unwrap();
        assert_eq!((rid.as_str(), kind.as_str()), (id, "response"), "{body}");
        body
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_manifest_function_submits_each_window_once() {
    let test = "scheduled_manifest_function";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let Some(binary) = require_binary("manifest-builder", test) else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "schedule", true).await;
    let wav = connect_wav(2.0);
    // Fired 2026-11-23 with 7 days' delay: the window is 2026-11-10 .. 2026-11-16.
    for day in [
        "2026/11/09",
        "2026/11/10",
        "2026/11/13",
        "2026/11/16",
        "2026/11/17",
    ] {
        let key = format!(
            "connect/acme/CallRecordings/{day}/c_{}T09:00_UTC.wav",
            day.replace('/', "")
        );
        put(&s3, &bucket, &key, wav.clone()).await;
    }
    let dir = store(test);
    let (_eng, api, control) = start(&s3, &dir, in_process(&s3), |_| {}).await;

    let mut function = ScheduledFunction::start(
        &binary,
        (&endpoint, &api.url),
        (&bucket, "connect/acme/CallRecordings/"),
        // One window here; the look-back has its own test (the_schedule_catches_up_...).
        &[("USER_ARGUMENTS", "downmix=sum"), ("CATCH_UP_WINDOWS", "0")],
    )
    .await;
    let mut answers = Vec::new();
    // The schedule fires, then fires again (a retry, or a duplicate delivery).
    for id in ["first", "retry"] {
        answers.push(function.fire(id, "2026-11-23T03:00:00Z").await);
    }
    drop(function);
    let (first, retry) = (&answers[0], &answers[1]);
    assert_eq!(
        first["window"],
        json!({"from": "2026-11-10", "to": "2026-11-16"})
    );
    assert_eq!(first["selected"], 3, "{first}");
    assert_eq!(first["alreadySubmitted"], false);
    let job = first["jobId"].as_str().unwrap();
    assert_eq!(retry["jobId"], job);
    assert_eq!(retry["alreadySubmitted"], true);
    let listed = control
        .list_jobs()
        .account_id(ACCOUNT)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.jobs().len(), 1);
    let done = until(&control, job, terminal).await;
    assert_eq!(counts(&done), (3, 3, 0));
    let desc = done.operation().unwrap().lambda_invoke().unwrap();
    assert_eq!(desc.user_arguments().unwrap()["downmix"], "sum");
    assert_eq!(
        report_rows_at(&s3, &bucket, "ops/reports", job).await.len(),
        3
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn mb_local(endpoint: &str, control: &str) -> std::process::Command {
    let mut c = aws_command(&workspace_binary("manifest-builder").unwrap());
    c.args([
        "--endpoint-url",
        endpoint,
        "--s3control-endpoint-url",
        control,
        "--account-id",
        ACCOUNT,
        "--json",
    ]);
    c
}

fn submitted(c: &mut std::process::Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["job_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn generator_and_inventory_jobs_run_on_the_engine() {
    let test = "generator_and_inventory_jobs";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    if require_binary("manifest-builder", test).is_none() {
        return;
    }
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "engine-gen", true).await;
    let wav = connect_wav(1.0);
    for k in [
        "calls/a b.wav",
        "calls/c+d.wav",
        "calls/e.WAV",
        "calls/notes.txt",
        "other/f.wav",
    ] {
        put(&s3, &bucket, k, wav.clone()).await;
    }
    let dir = store(test);
    let (_eng, api, control) = start(&s3, &dir, in_process(&s3), |_| {}).await;
    let common = ["--function-arn", FUNCTION, "--role-arn", ROLE, "--report"];
    // The manifest generator: prefix calls/, suffix .wav (case-sensitive), created before tomorrow.
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string();
    let generated = submitted(
        mb_local(&endpoint, &api.url)
            .args([
                "submit",
                "--generate",
                "--source-bucket",
                &bucket,
                "--source-prefix",
                "calls/",
            ])
            .args(["--created-before", &tomorrow, "--min-size", "1"])
            .arg("--manifest-output")
            .arg(format!("s3://{bucket}/generated"))
            .args(common)
            .arg(format!("s3://{bucket}/reports")),
    );
    let job = until(&control, &generated, terminal).await;
    assert_eq!(counts(&job), (2, 2, 0));
    let rows = report_rows(&s3, &bucket, &generated).await;
    let mut keys: Vec<String> = rows.iter().map(|r| r.key()).collect();
    keys.sort();
    assert_eq!(keys, ["calls/a b.wav", "calls/c+d.wav"]);
    let described = job
        .generated_manifest_descriptor()
        .expect("generated manifest");
    let arn = described.location().unwrap().object_arn();
    assert!(
        arn.contains(&format!("{bucket}/generated/job-{generated}/manifest.json")),
        "{arn}"
    );

    // An S3 Inventory manifest (CSV.gz, keys form-encoded) handed to the job as it is.
    let rows = format!("\"{bucket}\",\"calls/e.WAV\"\n\"{bucket}\",\"calls/a+b.wav\"\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, rows.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let md5 = batch_contract::md5::md5_hex(&gz);
    put(&s3, &bucket, "inventory/data/1.csv.gz", gz.clone()).await;
    let manifest = json!({
        "sourceBucket": bucket, "destinationBucket": format!("arn:aws:s3:::{bucket}"),
        "version": "2016-11-30", "creationTimestamp": "1700000000000", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key",
        "files": [{"key": "inventory/data/1.csv.gz", "size": gz.len(), "MD5checksum": md5}],
    });
    put(
        &s3,
        &bucket,
        "inventory/manifest.json",
        serde_json::to_vec(&manifest).unwrap(),
    )
    .await;
    let from_inventory = submitted(
        mb_local(&endpoint, &api.url)
            .arg("submit")
            .arg("--inventory")
            .arg(format!("s3://{bucket}/inventory/manifest.json"))
            .args(common)
            .arg(format!("s3://{bucket}/reports")),
    );
    let job = until(&control, &from_inventory, terminal).await;
    assert_eq!(job.status(), Some(&JobStatus::Complete));
    let rows = report_rows(&s3, &bucket, &from_inventory).await;
    let mut keys: Vec<(String, bool)> = rows.iter().map(|r| (r.key(), r.failed())).collect();
    keys.sort();
    // a+b.wav is "a b.wav" (already converted by the first job: skipped); e.WAV converts.
    assert_eq!(
        keys,
        [
            ("calls/a b.wav".to_string(), false),
            ("calls/e.WAV".to_string(), false)
        ]
    );
    assert!(
        rows.iter()
            .any(|r| r.raw_key == "calls/a+b.wav" && r.message.contains("skipped")),
        "{rows:?}"
    );

    // A manifest whose data file does not match its MD5 fails the job with the reason.
    let mut bad = manifest.clone();
    bad["files"][0]["MD5checksum"] = json!("00000000000000000000000000000000");
    put(
        &s3,
        &bucket,
        "inventory/bad.json",
        serde_json::to_vec(&bad).unwrap(),
    )
    .await;
    let broken = submitted(
        mb_local(&endpoint, &api.url)
            .arg("submit")
            .arg("--inventory")
            .arg(format!("s3://{bucket}/inventory/bad.json"))
            .args(common)
            .arg(format!("s3://{bucket}/reports")),
    );
    let job = until(&control, &broken, terminal).await;
    assert_eq!(job.status(), Some(&JobStatus::Failed));
    let reason = job.failure_reasons()[0].failure_reason().unwrap_or("");
    assert!(
        reason.contains("MD5") && reason.contains("inventory/data/1.csv.gz"),
        "{reason}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Answers TemporaryFailure for every task whose key holds `part` while `on` is set.
struct FailingKeys {
    inner: Arc<dyn Invoker>,
    part: &'static str,
    on: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Invoker for FailingKeys {
    async fn invoke(&self, f: &str, event: Value) -> Result<Value, InvokeError> {
        let task = &event["tasks"][0];
        let key = task["s3Key"].as_str().unwrap_or("");
        if self.on.load(Ordering::SeqCst) && key.contains(self.part) {
            return Ok(json!({
                "invocationSchemaVersion": event["invocationSchemaVersion"],
                "invocationId": event["invocationId"],
                "treatMissingKeysAs": "PermanentFailure",
                "results": [{"taskId": task["taskId"], "resultCode": "TemporaryFailure", "resultString": "SlowDown (injected)"}],
            }));
        }
        self.inner.invoke(f, event).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schedule_catches_up_missed_windows_redrives_temporary_failures_and_reports_failed_jobs()
 {
    use e2e_tests::fault_proxy::{self, Fault, Plan};
    let test = "schedule_catch_up";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let Some(binary) = require_binary("manifest-builder", test) else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "catchup", true).await;
    let wav = connect_wav(1.0);
    let prefix = "connect/acme/CallRecordings";
    // Windows of 7 days, 7 days' delay. Oct 20-26: two good, one whose tasks fail temporarily
    // for the first job, one that is not a WAV (a PermanentFailure). Then one recording in each
    // of Oct 27-Nov 2, Nov 3-9 (its job's manifest cannot be read: the job fails) and Nov 10-16.
    for (day, name, body) in [
        ("2026/10/21", "a1", wav.clone()),
        ("2026/10/22", "a2", wav.clone()),
        ("2026/10/23", "flaky", wav.clone()),
        (
            "2026/10/24",
            "junk",
            b"not a wav at all, just text".repeat(4),
        ),
        ("2026/10/28", "b1", wav.clone()),
        ("2026/11/04", "c1", wav.clone()),
        ("2026/11/11", "d1", wav.clone()),
    ] {
        let key = format!(
            "{prefix}/{day}/{name}_{}T09:00_UTC.wav",
            day.replace('/', "")
        );
        put(&s3, &bucket, &key, body).await;
    }
    // The engine reads S3 through a proxy that fails every read of the Nov 3-9 manifest.
    let mut plan = Plan::all(7, 1.0);
    plan.kinds = vec![Fault::InternalError];
    plan.only = vec![format!(
        "GET /{bucket}/ops/manifests/window-2026-11-03_2026-11-09.csv"
    )];
    let proxy = fault_proxy::start(&endpoint, plan).await;
    let engine_s3 = s3_client(&proxy.url);
    let invoker = Arc::new(FailingKeys {
        inner: in_process(&s3),
        part: "flaky",
        on: true.into(),
    });
    let dir = store(test);
    let (_eng, api, control) = start(&engine_s3, &dir, invoker.clone(), |_| {}).await;
    let mut function = ScheduledFunction::start(
        &binary,
        (&endpoint, &api.url),
        (&bucket, &format!("{prefix}/")),
        &[
            ("CATCH_UP_WINDOWS", "3"),
            ("START_DATE", "2026-10-20"),
            ("STUCK_AFTER_DAYS", "7"),
        ],
    )
    .await;
    let statuses = |answer: &Value| -> Vec<(String, String)> {
        answer["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["from"].as_str().unwrap().to_string(),
                    w["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let job_count = async || {
        control
            .list_jobs()
            .account_id(ACCOUNT)
            .send()
            .await
            .unwrap()
            .jobs()
            .len()
    };

    // 1. Nov 2: the first window only (nothing before START_DATE).
    let first = function.fire("first", "2026-11-02T03:00:00Z").await;
    assert_eq!(
        statuses(&first),
        [("2026-10-20".into(), "submitted".into())],
        "{first}"
    );
    let job_a = first["jobId"].as_str().unwrap().to_string();
    let a = until(&control, &job_a, terminal).await;
    assert_eq!(a.status(), Some(&JobStatus::Complete));
    assert_eq!(
        counts(&a),
        (4, 2, 2),
        "one temporary and one permanent failure"
    );
    invoker.on.store(false, Ordering::SeqCst);

    // 2. Nov 23, two weekly runs missed: the first window's temporary failure is re-driven, the
    // two missed windows and the current one are submitted, oldest first.
    let second = function.fire("second", "2026-11-23T03:00:00Z").await;
    assert_eq!(
        statuses(&second),
        [
            ("2026-10-20".into(), "redriven".into()),
            ("2026-10-27".into(), "submitted".into()),
            ("2026-11-03".into(), "submitted".into()),
            ("2026-11-10".into(), "submitted".into()),
        ],
        "{second:#}"
    );
    assert_eq!(second["window"]["from"], "2026-11-10");
    let windows = second["windows"].as_array().unwrap();
    let redrive = windows[0]["newJobId"].as_str().unwrap().to_string();
    assert!(
        windows[0]["reason"]
            .as_str()
            .unwrap()
            .contains("1 TemporaryFailure"),
        "{second}"
    );
    let ids: Vec<String> = windows[1..]
        .iter()
        .map(|w| w["jobId"].as_str().unwrap().to_string())
        .collect();
    let r = until(&control, &redrive, terminal).await;
    assert_eq!(
        counts(&r),
        (1, 1, 0),
        "only the TemporaryFailure task, now converted"
    );
    let rows = report_rows_at(&s3, &bucket, "ops/reports", &redrive).await;
    assert!(rows[0].key().contains("flaky"), "{:?}", rows[0].raw_key);
    for (id, status) in
        ids.iter()
            .zip([JobStatus::Complete, JobStatus::Failed, JobStatus::Complete])
    {
        let j = until(&control, id, terminal).await;
        assert_eq!(j.status(), Some(&status), "{id}");
    }
    assert_eq!(job_count().await, 5, "A, its re-drive, and three windows");

    // 3. The same time again (a retry): nothing new; the failed window is reported (its
    // manifest could not be read: resubmitting would fail the same way) and, due 7 days, stuck.
    let third = function.fire("third", "2026-11-23T03:00:00Z").await;
    assert_eq!(
        statuses(&third),
        [
            ("2026-10-20".into(), "done".into()),
            ("2026-10-27".into(), "done".into()),
            ("2026-11-03".into(), "failed".into()),
            ("2026-11-10".into(), "done".into()),
        ],
        "{third:#}"
    );
    let failed = &third["windows"][2];
    assert!(
        failed["reason"].as_str().unwrap().contains("manifest"),
        "{failed}"
    );
    assert_eq!(failed["stuck"], true);
    assert_eq!(third["stuckWindows"], 1);
    assert_eq!(third["alreadySubmitted"], true);
    assert_eq!(job_count().await, 5, "a rerun submits nothing");
    drop(function);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_s3_keeps_keys_verbatim_and_survives_a_restart() {
    let dir = store("embedded_keys");
    let server = local_batch::embedded_s3::start(&dir, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let s3 = embedded_client(&server);
    for b in ["calls", "other"] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    put(&s3, "other", "k", b"other bucket".to_vec()).await;
    // Each of these named another object's file (or another bucket's) when keys were paths.
    let long = format!("{}.wav", "通".repeat(340));
    assert_eq!(long.len(), 1024);
    let keys = [
        "k/x",
        "k//x",
        "k/./x",
        "z/../../other/k",
        "/k/x",
        "..",
        long.as_str(),
    ];
    for key in keys {
        put(&s3, "calls", key, key.as_bytes().to_vec()).await;
    }
    let too_long = s3
        .put_object()
        .bucket("calls")
        .key(format!("{long}x"))
        .body(Vec::new().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), Some("KeyTooLongError"), "{too_long:?}");
    drop(server);
    let server = local_batch::embedded_s3::start(&dir, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let s3 = embedded_client(&server);
    for key in keys {
        assert_eq!(get_bytes(&s3, "calls", key).await, key.as_bytes(), "{key}");
    }
    assert_eq!(get_bytes(&s3, "other", "k").await, b"other bucket");
    let listed = s3
        .list_objects_v2()
        .bucket("calls")
        .send()
        .await
        .unwrap()
        .contents()
        .len();
    assert_eq!(listed, keys.len());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
