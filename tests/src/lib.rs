//! Test harness: a real S3 server on loopback (moto, started by `scripts/test.sh`), clients,
//! buckets, synthetic Amazon Connect recordings and Batch Operations events.
//!
//! The server is found through `MOTO_ENDPOINT`. Outside the README's test command a test without
//! it prints a loud SKIP line and returns; under `scripts/test.sh` (which sets `E2E_REQUIRE=1`)
//! a missing server is a failure, so CI cannot pass by skipping.

pub mod fault_proxy;
pub mod pty;
pub mod served;

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use serde_json::{Value, json};

/// Whether missing prerequisites must fail the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("E2E_REQUIRE").is_ok_and(|v| v == "1")
}

/// Skips (loudly) or fails when a prerequisite is missing, per [`required`].
pub fn missing(what: &str, test: &str) {
    if required() {
        panic!("{test}: {what} is required under scripts/test.sh (E2E_REQUIRE=1) but missing");
    }
    eprintln!(
        "\n*** SKIP {test}: {what} not available; run the README's test command (scripts/test.sh) ***\n"
    );
}

/// The moto endpoint, or `None` after reporting the skip.
pub fn moto_endpoint(test: &str) -> Option<String> {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            missing("a moto server (MOTO_ENDPOINT)", test);
            None
        }
    }
}

/// The moto endpoint when the workspace binary `bin` is built too (else `None`, reported).
pub fn moto_and_binary(test: &str, bin: &str) -> Option<String> {
    let endpoint = moto_endpoint(test)?;
    require_binary(bin, test)?;
    Some(endpoint)
}

/// An object's bytes (a version of it when given).
pub async fn object_bytes(s3: &Client, bucket: &str, key: &str, version: Option<&str>) -> Vec<u8> {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET s3://{bucket}/{key}: {e:?}"))
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// A client with static credentials and an explicit region: never the instance-metadata chain.
pub fn s3_client(endpoint: &str) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        // Setup and checks only: a server busy with the other tests may pause longer than the
        // SDK's default 5 s before answering, which is not what any test is about.
        .stalled_stream_protection(
            aws_sdk_s3::config::StalledStreamProtectionConfig::enabled()
                .grace_period(std::time::Duration::from_secs(60))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// A client of an in-process embedded S3, with the key pair it generated.
pub fn embedded_client(server: &local_batch::embedded_s3::EmbeddedS3) -> Client {
    Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                &server.access_key,
                &server.secret_key,
                None,
                None,
                "embedded",
            ))
            .endpoint_url(&server.url)
            .force_path_style(true)
            .build(),
    )
}

static BUCKETS: AtomicU32 = AtomicU32::new(0);

/// Creates a fresh bucket with a unique name (tests share one server and run in parallel).
pub async fn new_bucket(s3: &Client, label: &str, versioned: bool) -> String {
    let n = BUCKETS.fetch_add(1, Ordering::SeqCst);
    let name = format!("{}-{}-{}", label.replace('_', "-"), std::process::id(), n).to_lowercase();
    s3.create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create bucket");
    if versioned {
        s3.put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("enable versioning");
    }
    name
}

/// The frames of a deterministic synthetic call (customer left, agent right).
pub fn connect_pcm(seconds: f64) -> Vec<(i16, i16)> {
    manifest_builder::synth::call_frames(seconds, 1).collect()
}

/// A PCM s16le 8 kHz stereo WAV as Amazon Connect writes it (written by `hound`).
pub fn connect_wav(seconds: f64) -> Vec<u8> {
    manifest_builder::synth::call_wav(seconds, 1)
}

/// A long recording built fast: a plain 44-byte header and `seconds` of repeated call audio.
pub fn long_connect_wav(seconds: u32) -> Vec<u8> {
    let unit: Vec<u8> = connect_pcm(10.0)
        .iter()
        .flat_map(|(l, r)| [l.to_le_bytes(), r.to_le_bytes()].concat())
        .collect();
    let data_len = seconds * 32_000;
    let mut v = Vec::with_capacity(44 + data_len as usize);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&[1, 0, 2, 0]);
    v.extend_from_slice(&8000u32.to_le_bytes());
    v.extend_from_slice(&32000u32.to_le_bytes());
    v.extend_from_slice(&[4, 0, 16, 0]);
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    while v.len() < 44 + data_len as usize {
        let take = unit.len().min(44 + data_len as usize - v.len());
        v.extend_from_slice(&unit[..take]);
    }
    v
}

/// A schema 1.0 event with one task per `(raw_key, version)`; keys must already be URL-encoded.
pub fn event_v1(bucket: &str, tasks: &[(&str, Option<&str>)]) -> Value {
    let tasks: Vec<Value> = tasks
        .iter()
        .enumerate()
        .map(|(i, (key, version))| {
            json!({"taskId": format!("task-{i}"), "s3Key": key, "s3VersionId": version,
                   "s3BucketArn": format!("arn:aws:s3:us-east-1:123456789012:{bucket}")})
        })
        .collect();
    json!({"invocationSchemaVersion": "1.0", "invocationId": "aW52b2NhdGlvbg==",
           "job": {"id": "job-e2e"}, "tasks": tasks})
}

/// The same event as sent by another job (a rerun, not a retry of the same task).
pub fn as_job(mut event: Value, job_id: &str) -> Value {
    event["job"]["id"] = json!(job_id);
    event
}

/// A schema 2.0 event with user arguments.
pub fn event_v2(bucket: &str, tasks: &[(&str, Option<&str>)], args: Value) -> Value {
    let tasks: Vec<Value> = tasks
        .iter()
        .enumerate()
        .map(|(i, (key, version))| {
            json!({"taskId": format!("task-{i}"), "s3Key": key, "s3VersionId": version, "s3Bucket": bucket})
        })
        .collect();
    json!({"invocationSchemaVersion": "2.0", "invocationId": "djI=",
           "job": {"id": "job-e2e-v2", "userArguments": args}, "tasks": tasks})
}

/// Path of a workspace binary built by `scripts/test.sh` (`cargo build --bins`) next to this test.
pub fn workspace_binary(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/<test-binary> → target/<profile>/<name>
    let path = exe.parent()?.parent()?.join(name);
    path.exists().then_some(path)
}

/// A command running `binary` with the tests' AWS environment: static credentials, an explicit
/// region and no instance metadata, so the SDK never looks beyond loopback.
pub fn aws_command(binary: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(binary);
    c.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

/// A workspace binary, or `None` after reporting it missing (skip, or fail under the test command).
pub fn require_binary(name: &str, test: &str) -> Option<std::path::PathBuf> {
    let found = workspace_binary(name);
    if found.is_none() {
        missing(&format!("the {name} binary (cargo build -p {name})"), test);
    }
    found
}

/// Whether a reference tool is installed; when not, a loud skip, or a failure in CI
/// (`E2E_REQUIRE_TOOLS=1`, set by `.ci/run`, which installs them).
pub fn require_tool(cmd: &str, test: &str) -> bool {
    if have(cmd) {
        return true;
    }
    if std::env::var("E2E_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("{test}: {cmd} is required in CI (E2E_REQUIRE_TOOLS=1) but not installed");
    }
    eprintln!("\n*** SKIP {test}: {cmd} not installed (apt-get install {cmd}) ***\n");
    false
}

/// The Python that runs `scripts/quality.py` (PESQ from PyPI): the workspace's `.venv`, where
/// `scripts/test.sh` installs `pesq` and `numpy`; a loud skip without it, a failure in CI.
pub fn quality_python(test: &str) -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import pesq, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if std::env::var("E2E_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!(
            "{test}: .venv/bin/python with pesq and numpy is required in CI (scripts/test.sh installs them)"
        );
    }
    eprintln!(
        "\n*** SKIP {test}: no .venv/bin/python with pesq and numpy (scripts/test.sh installs them) ***\n"
    );
    None
}

/// Runs a reference tool or a workspace binary and returns its stdout; a failure to start or a
/// non-zero exit fails the test with the command and its stderr.
pub fn run_tool(cmd: &mut std::process::Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The workspace's `scripts/` folder.
pub fn scripts_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

/// Whether a command is on PATH (for ffmpeg, sox, python3).
pub fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// An object's whole body (panics on any error: for tests).
pub async fn get_bytes(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {bucket}/{key}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}
