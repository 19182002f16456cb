//! `doctor` against moto's S3, Lambda and IAM (one endpoint: `--endpoint-url`), each check's
//! pass and its failure: a healthy setup passes everything; versioning off, no lifecycle rule, a
//! rule on another prefix, Object Lock with retention, SSE-KMS recordings whose key the handler
//! role may not use, a missing function, a role without the Batch Operations trust, recordings in
//! GLACIER; then the local engine on the embedded store (the demo's), which warns only about
//! the lifecycle rule a demo cannot have. `submit` refuses a job doctor fails, `--skip-doctor`
//! lets it through.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, DefaultRetention, ExpirationStatus, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockRetentionMode, ObjectLockRule, ServerSideEncryption, StorageClass,
};
use e2e_tests::*;
use serde_json::Value;

const PREFIX: &str = "rec/";
const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

fn trust(service: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"{service}"}},"Action":"sts:AssumeRole"}}]}}"#
    )
}

async fn role(iam: &aws_sdk_iam::Client, name: &str, service: &str, allow: &[&str]) -> String {
    let out = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust(service))
        .send()
        .await
        .expect("create role");
    if !allow.is_empty() {
        let actions = allow
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(",");
        iam.put_role_policy()
            .role_name(name)
            .policy_name("job")
            .policy_document(format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":[{actions}],"Resource":"*"}}]}}"#
            ))
            .send()
            .await
            .expect("put role policy");
    }
    out.role().unwrap().arn().to_string()
}

async fn put(s3: &Client, bucket: &str, key: &str, size: usize) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(vec![7u8; size]))
        .send()
        .await
        .expect("put");
}

async fn expire_noncurrent(s3: &Client, bucket: &str, prefix: &str) {
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(
                    LifecycleRule::builder()
                        .id("expire-replaced-recordings")
                        .status(ExpirationStatus::Enabled)
                        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
                        .noncurrent_version_expiration(
                            NoncurrentVersionExpiration::builder()
                                .noncurrent_days(1)
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("put lifecycle");
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

struct Doctor<'a> {
    bin: &'a std::path::Path,
    endpoint: &'a str,
}

/// A check's status and why, by name.
type Checks = BTreeMap<String, (String, String)>;

impl Doctor<'_> {
    fn run(&self, args: &[&str]) -> (i32, Checks, Value) {
        // One endpoint for S3, Lambda, IAM and STS, as moto serves them.
        let out = aws_command(self.bin)
            .args(["--endpoint-url", self.endpoint])
            .args(["--json", "doctor", "--min-size", "1000"])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "doctor {args:?}: not JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let checks = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    (
                        c["status"].as_str().unwrap().to_string(),
                        c["why"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect();
        (out.status.code().unwrap_or(-1), checks, v)
    }
}

fn status<'a>(checks: &'a Checks, name: &str) -> (&'a str, &'a str) {
    let (s, w) = checks
        .get(name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"));
    (s.as_str(), w.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_healthy_setup_and_names_each_problem() {
    let test = "doctor_on_moto";
    let Some(endpoint) = moto_and_binary(test, "manifest-builder") else {
        return;
    };
    let bin = workspace_binary("manifest-builder").unwrap();
    let s3 = s3_client(&endpoint);
    let conf = sdk_config(&endpoint).await;
    let (iam, lambda) = (
        aws_sdk_iam::Client::new(&conf),
        aws_sdk_lambda::Client::new(&conf),
    );
    let tag = std::process::id();
    let handler_role = role(&iam, &format!("handler-{tag}"), "lambda.amazonaws.com", &[]).await;
    let job_role = role(
        &iam,
        &format!("job-{tag}"),
        "batchoperations.s3.amazonaws.com",
        &[
            "lambda:InvokeFunction",
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:PutObject",
        ],
    )
    .await;
    let untrusted = role(
        &iam,
        &format!("untrusted-{tag}"),
        "lambda.amazonaws.com",
        &["lambda:InvokeFunction", "s3:GetObject", "s3:PutObject"],
    )
    .await;
    let function = lambda
        .create_function()
        .function_name(format!("shrink-{tag}"))
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .role(&handler_role)
        .handler("bootstrap")
        .memory_size(512)
        .timeout(300)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(
                    b"PK\x05\x06".to_vec(),
                ))
                .build(),
        )
        .send()
        .await
        .expect("create function")
        .function_arn()
        .unwrap()
        .to_string();
    lambda
        .put_function_concurrency()
        .function_name(&function)
        .reserved_concurrent_executions(10)
        .send()
        .await
        .expect("reserved concurrency");
    let d = Doctor {
        bin: &bin,
        endpoint: &endpoint,
    };
    let report = |b: &str| format!("s3://{b}/reports");
    let full = |b: &str, role: &str| -> Vec<String> {
        [
            "--bucket",
            b,
            "--prefix",
            PREFIX,
            "--function-arn",
            &function,
            "--role-arn",
            role,
            "--report",
            &report(b),
        ]
        .map(String::from)
        .to_vec()
    };

    // Healthy: versioned, a rule expiring noncurrent originals under the prefix.
    let good = new_bucket(&s3, "doctor-good", true).await;
    expire_noncurrent(&s3, &good, PREFIX).await;
    for i in 0..3 {
        put(
            &s3,
            &good,
            &format!("{PREFIX}2026/11/0{i}/call {i}.wav"),
            2000 + i * 10,
        )
        .await;
    }
    let (code, checks, v) = d.run(&args(&full(&good, &job_role)));
    for (name, (s, why)) in &checks {
        assert_eq!(s, "pass", "{name}: {why}\n{v:#}");
    }
    assert_eq!(code, 0, "{v:#}");
    for name in [
        "function",
        "function-timeout",
        "function-concurrency",
        "versioning",
        "lifecycle",
        "object-lock",
        "encryption",
        "replication",
        "archive-classes",
        "report-bucket",
        "job-role",
        "job-role-permissions",
    ] {
        assert!(checks.contains_key(name), "{name} missing: {v:#}");
    }
    assert!(status(&checks, "lifecycle").1.contains("after 1 days"));
    assert!(status(&checks, "function-timeout").1.contains("call 2.wav"));

    // Versioning off and no lifecycle rule: a failure (exit 2) and a warning with its cost.
    let plain = new_bucket(&s3, "doctor-plain", false).await;
    put(&s3, &plain, &format!("{PREFIX}2026/11/01/a.wav"), 5000).await;
    let (code, checks, v) = d.run(&args(&full(&plain, &job_role)));
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(status(&checks, "versioning").0, "fail");
    let (s, why) = status(&checks, "lifecycle");
    assert_eq!(s, "warn");
    assert!(
        why.contains("no lifecycle rule") && why.contains("$"),
        "{why}"
    );
    let fix = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "versioning")
        .unwrap()["fix"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(fix.contains("put-bucket-versioning"), "{fix}");

    // `submit` refuses the job doctor fails; --skip-doctor would let it through to CreateJob.
    let manifest = format!("s3://{plain}/manifests/m.csv");
    s3.put_object()
        .bucket(&plain)
        .key("manifests/m.csv")
        .body(ByteStream::from(
            format!("{plain},{PREFIX}2026/11/01/a.wav\n").into_bytes(),
        ))
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket(&plain)
        .key("manifests/m.summary.json")
        .body(ByteStream::from(
            format!(r#"{{"source":"s3://{plain}/{PREFIX}","objects":1,"bytes":5000}}"#)
                .into_bytes(),
        ))
        .send()
        .await
        .unwrap();
    let out = aws_command(&bin)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .args([
            "submit",
            "--manifest",
            &manifest,
            "--function-arn",
            &function,
            "--role-arn",
            &job_role,
            "--report",
            &report(&plain),
            "--account-id",
            "123456789012",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("doctor: the job was not submitted") && err.contains("versioning"),
        "{err}"
    );

    // A rule on another prefix does not cover the recordings.
    let other = new_bucket(&s3, "doctor-other", true).await;
    expire_noncurrent(&s3, &other, "other/").await;
    put(&s3, &other, &format!("{PREFIX}2026/11/01/a.wav"), 5000).await;
    let (code, checks, v) = d.run(&args(&full(&other, &job_role)));
    assert_eq!(code, 1, "{v:#}");
    let (s, why) = status(&checks, "lifecycle");
    assert_eq!(s, "warn");
    assert!(why.contains("does not cover"), "{why}");

    // Object Lock with a default retention: originals stay until it ends.
    let locked = format!("doctor-locked-{tag}");
    s3.create_bucket()
        .bucket(&locked)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    expire_noncurrent(&s3, &locked, PREFIX).await;
    s3.put_object_lock_configuration()
        .bucket(&locked)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Governance)
                                .days(30)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    put(&s3, &locked, &format!("{PREFIX}2026/11/01/a.wav"), 5000).await;
    let (_, checks, v) = d.run(&args(&full(&locked, &job_role)));
    let (s, why) = status(&checks, "object-lock");
    assert_eq!(s, "warn", "{v:#}");
    assert!(why.contains("GOVERNANCE 30 days"), "{why}");

    // SSE-KMS recordings: the handler role may not use the key, then may.
    let kms = new_bucket(&s3, "doctor-kms", true).await;
    expire_noncurrent(&s3, &kms, PREFIX).await;
    s3.put_object()
        .bucket(&kms)
        .key(format!("{PREFIX}2026/11/01/a.wav"))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(KMS_KEY)
        .body(ByteStream::from(vec![1u8; 5000]))
        .send()
        .await
        .unwrap();
    let (code, checks, v) = d.run(&args(&full(&kms, &job_role)));
    assert!(status(&checks, "encryption").1.contains(KMS_KEY), "{v:#}");
    let (s, why) = status(&checks, "kms");
    assert_eq!((s, code), ("fail", 2), "{v:#}");
    assert!(why.contains("may not use"), "{why}");
    iam.put_role_policy()
        .role_name(format!("handler-{tag}"))
        .policy_name("kms")
        .policy_document(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"{KMS_KEY}"}}]}}"#
        ))
        .send()
        .await
        .unwrap();
    let (code, checks, v) = d.run(&args(&full(&kms, &job_role)));
    assert_eq!(status(&checks, "kms").0, "pass", "{v:#}");
    assert_eq!(code, 0, "{v:#}");

    // A missing function, and a role that does not trust Batch Operations.
    let mut missing = full(&good, &job_role);
    missing[5] = "arn:aws:lambda:us-east-1:123456789012:function:no-such-function".into();
    let (code, checks, v) = d.run(&args(&missing));
    assert_eq!(code, 2, "{v:#}");
    let (s, why) = status(&checks, "function");
    assert_eq!(s, "fail");
    assert!(why.contains("does not exist"), "{why}");
    let (code, checks, v) = d.run(&args(&full(&good, &untrusted)));
    assert_eq!(code, 2, "{v:#}");
    let (s, why) = status(&checks, "job-role");
    assert_eq!(s, "fail");
    assert!(
        why.contains("does not trust batchoperations.s3.amazonaws.com"),
        "{why}"
    );

    // Recordings in GLACIER are not selected: a restore first.
    let cold = new_bucket(&s3, "doctor-cold", true).await;
    expire_noncurrent(&s3, &cold, PREFIX).await;
    put(&s3, &cold, &format!("{PREFIX}2026/11/01/warm.wav"), 5000).await;
    s3.put_object()
        .bucket(&cold)
        .key(format!("{PREFIX}2026/11/01/cold.wav"))
        .storage_class(StorageClass::Glacier)
        .body(ByteStream::from(vec![1u8; 5000]))
        .send()
        .await
        .unwrap();
    let (code, checks, v) = d.run(&args(&full(&cold, &job_role)));
    assert_eq!(code, 1, "{v:#}");
    let (s, why) = status(&checks, "archive-classes");
    assert_eq!(s, "warn");
    assert!(why.starts_with("1 recordings"), "{why}");

    // Without the permissions to read a setting: warnings naming them, never a crash.
    let (code, checks, v) = d.run(&args(&full(&format!("doctor-absent-{tag}"), &job_role)));
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(status(&checks, "bucket").0, "fail", "{v:#}");
}

/// The local engine on the embedded store the demo filled: every check passes but the
/// lifecycle rule, which the embedded S3 cannot have.
#[test]
fn doctor_on_the_embedded_default_warns_only_about_the_lifecycle_rule() {
    let test = "doctor_embedded";
    let Some(bin) = require_binary("manifest-builder", test) else {
        return;
    };
    let dir = crate::engine::store(test);
    let out = aws_command(&bin)
        .args([
            "demo",
            "--recordings",
            "4",
            "--min-minutes",
            "0.3",
            "--max-minutes",
            "0.4",
        ])
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    // The demo's run ran doctor first: the one warning it printed is the lifecycle rule.
    let warnings: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("doctor: WARN"))
        .collect();
    assert_eq!(warnings.len(), 1, "{said}");
    assert!(warnings[0].contains("lifecycle"), "{said}");
    let out = aws_command(&bin)
        .args([
            "--json",
            "doctor",
            "--bucket",
            "connect-recordings-demo",
            "--prefix",
            "connect/demo-contact-center/CallRecordings/",
            "--report",
            "s3://connect-recordings-demo/batch-operations/manifests/reports",
            "--local",
            "--embedded-s3",
        ])
        .arg(dir.join("s3"))
        .arg("--engine-dir")
        .arg(dir.join("engine"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    for c in v["checks"].as_array().unwrap() {
        let expected = if c["name"] == "lifecycle" {
            "warn"
        } else {
            "pass"
        };
        assert_eq!(c["status"], expected, "{c}");
    }
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "versioning",
        "lifecycle",
        "encryption",
        "archive-classes",
        "report-bucket",
    ] {
        assert!(names.contains(&name), "{name}: {v:#}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
