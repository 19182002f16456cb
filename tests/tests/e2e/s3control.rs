//! The job commands through the real `aws-sdk-s3control` client against a minimal S3 Control
//! server in the test, which checks the request XML and answers in the AWS shapes
//! (`local-infra.md` §5.5). Manifests live on moto.

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Command;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use e2e_tests::*;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const NS: &str = "http://awss3control.amazonaws.com/doc/2018-08-20/";

#[derive(Default)]
struct Stub {
    jobs: HashMap<String, (String, String, u32)>, // id -> (status, request body, describes)
    tokens: HashMap<String, (String, String)>,    // token -> (body without token, id)
    creates: usize,
    problems: Vec<String>,
}

fn tag<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(&body[start..end])
}

fn xml(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    xml(
        status,
        format!(
            "<ErrorResponse><Error><Code>{code}</Code><Message>{message}</Message></Error><RequestId>stub</RequestId></ErrorResponse>"
        ),
    )
}

async fn serve(
    stub: Arc<Mutex<Stub>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (method, path, query) = (
        req.method().clone(),
        req.uri().path().to_string(),
        req.uri().query().unwrap_or("").to_string(),
    );
    let account = req
        .headers()
        .get("x-amz-account-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body =
        String::from_utf8(req.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let mut s = stub.lock().unwrap();
    if account != ACCOUNT {
        s.problems.push(format!("x-amz-account-id {account:?}"));
    }
    if !host.starts_with("127.0.0.1") {
        s.problems.push(format!(
            "host {host:?}: the account-id prefix must not be added"
        ));
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["v20180820", "jobs"]) => {
            let listing: &[&str] = if body.contains("<ManifestGenerator>") {
                &[
                    "S3JobManifestGenerator",
                    "SourceBucket",
                    "EnableManifestOutput",
                ]
            } else {
                &[
                    "Manifest",
                    "Spec",
                    "Format",
                    "Location",
                    "ObjectArn",
                    "ETag",
                ]
            };
            let common = [
                "ClientRequestToken",
                "ConfirmationRequired",
                "Operation",
                "LambdaInvoke",
                "FunctionArn",
                "InvocationSchemaVersion",
                "Priority",
                "Report",
                "Enabled",
                "RoleArn",
            ];
            for needed in common.iter().chain(listing) {
                if tag(&body, needed).is_none() {
                    s.problems
                        .push(format!("CreateJobRequest without <{needed}>"));
                }
            }
            if !body.contains(&format!("<CreateJobRequest xmlns=\"{NS}\">")) {
                s.problems
                    .push("root is not CreateJobRequest in the 2018-08-20 namespace".into());
            }
            let token = tag(&body, "ClientRequestToken")
                .unwrap_or_default()
                .to_string();
            let rest = body.replace(&token, "");
            if let Some((seen, id)) = s.tokens.get(&token).cloned() {
                if seen != rest {
                    return Ok(error(
                        400,
                        "IdempotencyException",
                        "token reused with different parameters",
                    ));
                }
                return Ok(xml(
                    200,
                    format!(
                        "<CreateJobResult xmlns=\"{NS}\"><JobId>{id}</JobId></CreateJobResult>"
                    ),
                ));
            }
            s.creates += 1;
            let id = format!("00000000-0000-4000-8000-{:012}", s.creates);
            let status = if tag(&body, "ConfirmationRequired") == Some("true") {
                "Suspended"
            } else {
                "Ready"
            };
            s.jobs.insert(id.clone(), (status.into(), body.clone(), 0));
            s.tokens.insert(token, (rest, id.clone()));
            Ok(xml(
                200,
                format!("<CreateJobResult xmlns=\"{NS}\"><JobId>{id}</JobId></CreateJobResult>"),
            ))
        }
        ("GET", ["v20180820", "jobs", id]) => {
            let Some((status, body, describes)) = s.jobs.get_mut(*id) else {
                return Ok(error(404, "NotFoundException", "No such job"));
            };
            *describes += 1;
            // Ready → Active → Complete, one step per DescribeJob; progress only once Active.
            if *status == "Ready" && *describes > 1 {
                *status = "Active".into();
            } else if *status == "Active" && *describes > 2 {
                *status = "Complete".into();
            }
            let progress = match status.as_str() {
                "Active" => {
                    "<ProgressSummary><TotalNumberOfTasks>3</TotalNumberOfTasks><NumberOfTasksSucceeded>1</NumberOfTasksSucceeded><NumberOfTasksFailed>0</NumberOfTasksFailed></ProgressSummary>"
                }
                "Complete" => {
                    "<ProgressSummary><TotalNumberOfTasks>3</TotalNumberOfTasks><NumberOfTasksSucceeded>2</NumberOfTasksSucceeded><NumberOfTasksFailed>1</NumberOfTasksFailed><Timers><ElapsedTimeInActiveSeconds>4</ElapsedTimeInActiveSeconds></Timers></ProgressSummary>"
                }
                _ => "",
            };
            let report = tag(body, "Report").unwrap_or("");
            let (operation, role) = (
                tag(body, "Operation").unwrap_or(""),
                tag(body, "RoleArn").unwrap_or(""),
            );
            let description = tag(body, "Description")
                .map(|d| format!("<Description>{d}</Description>"))
                .unwrap_or_default();
            Ok(xml(
                200,
                format!(
                    "<DescribeJobResult xmlns=\"{NS}\"><Job><JobId>{id}</JobId>{description}<Operation>{operation}</Operation><Status>{status}</Status><Priority>10</Priority>{progress}<Report>{report}</Report><RoleArn>{role}</RoleArn></Job></DescribeJobResult>"
                ),
            ))
        }
        ("GET", ["v20180820", "jobs"]) => {
            let mut ids: Vec<_> = s
                .jobs
                .iter()
                .map(|(id, (st, _, _))| (id.clone(), st.clone()))
                .collect();
            ids.sort();
            let members: String = ids.iter().map(|(id, st)| format!("<member><JobId>{id}</JobId><Status>{st}</Status><Priority>10</Priority><Operation>LambdaInvoke</Operation></member>")).collect();
            Ok(xml(
                200,
                format!("<ListJobsResult xmlns=\"{NS}\"><Jobs>{members}</Jobs></ListJobsResult>"),
            ))
        }
        ("POST", ["v20180820", "jobs", id, "status"]) => {
            let requested = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("requestedJobStatus="))
                .unwrap_or("")
                .to_string();
            let Some((status, _, _)) = s.jobs.get_mut(*id) else {
                return Ok(error(404, "NotFoundException", "No such job"));
            };
            match (status.as_str(), requested.as_str()) {
                ("Suspended", "Ready") => *status = "Ready".into(),
                (_, "Cancelled") => *status = "Cancelled".into(),
                (from, to) => {
                    return Ok(error(
                        400,
                        "JobStatusException",
                        &format!("cannot go from {from} to {to}"),
                    ));
                }
            }
            Ok(xml(
                200,
                format!(
                    "<UpdateJobStatusResult xmlns=\"{NS}\"><JobId>{id}</JobId><Status>{status}</Status></UpdateJobStatusResult>"
                ),
            ))
        }
        _ => Ok(error(404, "NotFound", &format!("{method} {path}"))),
    }
}

async fn start_stub() -> (String, Arc<Mutex<Stub>>) {
    let stub = Arc::new(Mutex::new(Stub::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let s = stub.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| serve(s.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    (url, stub)
}

fn mb(endpoint: &str, control: &str) -> Command {
    let mut c = aws_command(&workspace_binary("manifest-builder").unwrap());
    c.args([
        "--endpoint-url",
        endpoint,
        "--s3control-endpoint-url",
        control,
        "--account-id",
        ACCOUNT,
    ]);
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(c: &mut Command) -> (Option<i32>, String) {
    let out = c.output().unwrap();
    assert!(!out.status.success(), "{c:?} should fail");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_follow_confirm_cancel_through_s3control() {
    let test = "submit_follow_confirm_cancel";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    if require_binary("manifest-builder", test).is_none() {
        return;
    }
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "jobs", false).await;
    for k in ["calls/a.wav", "calls/b.wav", "calls/c.wav"] {
        s3.put_object()
            .bucket(&bucket)
            .key(k)
            .body(ByteStream::from(vec![0u8; 700 * 1024]))
            .send()
            .await
            .unwrap();
    }
    let (control, stub) = start_stub().await;
    let manifest = format!("s3://{bucket}/manifests/m.csv");
    ok(mb(&endpoint, &control).args([
        "manifest", "--bucket", &bucket, "--prefix", "calls/", "--output", &manifest,
    ]));

    let function = "arn:aws:lambda:us-east-1:123456789012:function:shrink:live";
    let role = "arn:aws:iam::123456789012:role/BatchOperationsShrink";
    let submit = |extra: &[&str]| {
        let mut c = mb(&endpoint, &control);
        c.args([
            "--json",
            "submit",
            "--manifest",
            &manifest,
            "--function-arn",
            function,
            "--role-arn",
            role,
            "--report",
            &format!("s3://{bucket}/reports"),
            "--user-arg",
            "downmix=sum",
            "--description",
            "weekly shrink",
            // The stub's jobs never run; doctor's checks have their own tests (doctor.rs).
            "--skip-doctor",
        ]);
        c.args(extra);
        c
    };
    let first: Value = serde_json::from_str(&ok(&mut submit(&[]))).unwrap();
    let job = first["job_id"].as_str().unwrap().to_string();
    let etag = s3
        .head_object()
        .bucket(&bucket)
        .key("manifests/m.csv")
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert_eq!(
        first["request"]["Manifest"]["Location"]["ETag"],
        etag.as_str(),
        "pinned by the manifest's ETag, unquoted"
    );
    assert_eq!(
        first["request"]["Manifest"]["Spec"]["Fields"],
        serde_json::json!(["Bucket", "Key"])
    );
    {
        let s = stub.lock().unwrap();
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        let body = &s.jobs[&job].1;
        assert!(
            body.contains("<InvocationSchemaVersion>2.0</InvocationSchemaVersion>"),
            "{body}"
        );
        assert!(
            body.contains("<key>downmix</key><value>sum</value>"),
            "{body}"
        );
        assert!(
            body.contains(&format!(
                "<ObjectArn>arn:aws:s3:::{bucket}/manifests/m.csv</ObjectArn>"
            )),
            "{body}"
        );
        assert!(
            body.contains("<ReportScope>AllTasks</ReportScope>")
                && body.contains("<Prefix>reports</Prefix>"),
            "{body}"
        );
    }
    // The same submit again: the same token, the same job.
    let again: Value = serde_json::from_str(&ok(&mut submit(&[]))).unwrap();
    assert_eq!(again["job_id"], job.as_str());
    assert_eq!(stub.lock().unwrap().creates, 1);

    // wait follows Ready → Active → Complete; one failed task → exit code 2.
    let out = mb(&endpoint, &control)
        .args(["--json", "wait", &job, "--interval", "0.05"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (last["status"].as_str(), last["progress"]["failed"].as_i64()),
        (Some("Complete"), Some(1))
    );
    assert_eq!(last["report"], format!("s3://{bucket}/reports").as_str());

    // A job that waits for confirmation; its status before it runs has no progress (unknown, not 0).
    let held: Value = serde_json::from_str(&ok(&mut submit(&[
        "--confirmation-required",
        "--priority",
        "20",
    ])))
    .unwrap();
    let held = held["job_id"].as_str().unwrap().to_string();
    assert_ne!(held, job, "other parameters, another token");
    let st: Value = serde_json::from_str(&ok(
        mb(&endpoint, &control).args(["--json", "status", &held])
    ))
    .unwrap();
    assert_eq!(st["status"], "Suspended");
    assert_eq!(st["progress"], Value::Null);
    assert_eq!(
        ok(mb(&endpoint, &control).args(["confirm", &held])).trim(),
        "Ready"
    );
    let (_, err) = fails(mb(&endpoint, &control).args(["confirm", &held]));
    assert!(err.contains("JobStatusException"), "{err}");
    assert_eq!(
        ok(mb(&endpoint, &control).args(["cancel", &held, "--reason", "test"])).trim(),
        "Cancelled"
    );
    let listed: Value =
        serde_json::from_str(&ok(mb(&endpoint, &control).args(["--json", "list"]))).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // The completion report of the first job, as the service writes it (real column order).
    let conv = |bytes_in: u64| {
        format!("\"{}\"", format!(r#"{{"action":"converted","bytesIn":{bytes_in},"bytesOut":{},"durationSeconds":21.8}}"#, bytes_in / 4).replace('"', "\"\""))
    };
    let ok_rows = format!(
        "{bucket},calls/a.wav,,succeeded,200,,{}\n{bucket},calls/b.wav,,succeeded,200,,{}\n",
        conv(716_800),
        conv(716_800)
    );
    let failed_rows = format!(
        "{bucket},calls/c%2Bd.wav,,failed,200,PermanentFailure,\"reading the object: object not found (NoSuchKey: gone)\"\n"
    );
    let prefix = format!("reports/job-{job}");
    let mut results = Vec::new();
    for (status, body, name) in [
        (
            "succeeded",
            &ok_rows,
            "6217b0fab0de85c408b4be96aeaca9b195a7daa5",
        ),
        (
            "failed",
            &failed_rows,
            "b2ddad417e94331e9f37b44f1faf8c7ed5873f2e",
        ),
    ] {
        let key = format!("{prefix}/results/{name}.csv");
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(body.clone().into_bytes()))
            .send()
            .await
            .unwrap();
        results.push(serde_json::json!({"TaskExecutionStatus": status, "Bucket": bucket, "MD5Checksum": batch_contract::md5::md5_hex(body.as_bytes()), "Key": key}));
    }
    let report_manifest = serde_json::json!({"Format": "Report_CSV_20180820", "ReportCreationDate": "2026-11-23T12:00:00.000Z", "Results": results,
        "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"});
    s3.put_object()
        .bucket(&bucket)
        .key(format!("{prefix}/manifest.json"))
        .body(ByteStream::from(report_manifest.to_string().into_bytes()))
        .send()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("e2e-report-{}", std::process::id()));
    let retry_local = dir.join("retry.csv");
    let by_job: Value = serde_json::from_str(&ok(mb(&endpoint, &control)
        .args(["--json", "report", &job, "--retry-manifest"])
        .arg(&retry_local)))
    .unwrap();
    assert_eq!(
        (
            by_job["tasks"].as_u64(),
            by_job["succeeded"].as_u64(),
            by_job["failed"].as_u64(),
            by_job["converted"].as_u64()
        ),
        (Some(3), Some(2), Some(1), Some(2))
    );
    assert_eq!(
        (
            by_job["bytes_before"].as_u64(),
            by_job["bytes_after"].as_u64()
        ),
        (Some(1_433_600), Some(358_400))
    );
    assert_eq!(
        by_job["failure_reasons"][0][0],
        "PermanentFailure: reading the object: object not found (NoSuchKey: gone)"
    );
    assert_eq!(
        std::fs::read_to_string(&retry_local).unwrap(),
        format!("{bucket},calls/c%2Bd.wav\n")
    );
    let by_uri: Value = serde_json::from_str(&ok(mb(&endpoint, &control).args([
        "--json",
        "report",
        &format!("s3://{bucket}/{prefix}/"),
    ])))
    .unwrap();
    assert_eq!(by_uri["tasks"], 3);
    // A local copy of the report folder reads the same.
    let local = dir.join(format!("job-{job}"));
    std::fs::create_dir_all(local.join("results")).unwrap();
    std::fs::write(local.join("manifest.json"), report_manifest.to_string()).unwrap();
    std::fs::write(
        local.join("results/6217b0fab0de85c408b4be96aeaca9b195a7daa5.csv"),
        &ok_rows,
    )
    .unwrap();
    std::fs::write(
        local.join("results/b2ddad417e94331e9f37b44f1faf8c7ed5873f2e.csv"),
        &failed_rows,
    )
    .unwrap();
    let by_dir: Value = serde_json::from_str(&ok(mb(&endpoint, &control)
        .arg("--json")
        .arg("report")
        .arg(&local)))
    .unwrap();
    assert_eq!(
        (by_dir["failed"].as_u64(), by_dir["converted"].as_u64()),
        (Some(1), Some(2))
    );
    // A result file that does not match its MD5 is refused.
    std::fs::write(
        local.join("results/b2ddad417e94331e9f37b44f1faf8c7ed5873f2e.csv"),
        "tampered\n",
    )
    .unwrap();
    let (_, err) = fails(mb(&endpoint, &control).arg("report").arg(&local));
    assert!(
        err.contains("b2ddad417e94331e9f37b44f1faf8c7ed5873f2e.csv: MD5"),
        "{err}"
    );

    // Re-drive: the failed task in a new manifest, submitted with the first job's settings.
    let creates = stub.lock().unwrap().creates;
    let retry = format!("s3://{bucket}/retry/{job}.csv");
    let redriven: Value = serde_json::from_str(&ok(mb(&endpoint, &control).args([
        "--json",
        "redrive",
        &job,
        "--retry-manifest",
        &retry,
    ])))
    .unwrap();
    assert_eq!(redriven["tasks"], 1);
    let new_job = redriven["job_id"].as_str().unwrap().to_string();
    {
        let st = stub.lock().unwrap();
        assert_eq!(st.creates, creates + 1);
        let body = &st.jobs[&new_job].1;
        assert!(
            body.contains(&format!(
                "<ObjectArn>arn:aws:s3:::{bucket}/retry/{job}.csv</ObjectArn>"
            )),
            "{body}"
        );
        assert!(
            body.contains(&format!("<FunctionArn>{function}</FunctionArn>"))
                && body.contains(&format!("<RoleArn>{role}</RoleArn>")),
            "{body}"
        );
        assert!(
            body.contains("<key>downmix</key><value>sum</value>"),
            "same job arguments: {body}"
        );
        assert!(
            body.contains(&format!("<Description>re-drive of {job}</Description>")),
            "{body}"
        );
    }

    // Unknown job id.
    let (_, err) = fails(mb(&endpoint, &control).args(["status", "no-such-job"]));
    assert!(err.contains("NotFoundException"), "{err}");

    // Bad input: nothing reaches S3 Control.
    let creates = stub.lock().unwrap().creates;
    let (_, err) = fails(mb(&endpoint, &control).args([
        "submit",
        "--skip-doctor",
        "--manifest",
        &manifest,
        "--function-arn",
        function,
        "--role-arn",
        "arn:aws:iam::account:role/x",
        "--report",
        &format!("s3://{bucket}/r"),
    ]));
    assert!(
        err.contains("--role-arn") && err.contains("invalid role ARN"),
        "{err}"
    );
    let (_, err) = fails(mb(&endpoint, &control).args([
        "submit",
        "--skip-doctor",
        "--manifest",
        &manifest,
        "--function-arn",
        "shrink",
        "--role-arn",
        role,
    ]));
    assert!(
        err.contains("--function-arn") && err.contains("invalid function ARN"),
        "{err}"
    );
    let many: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
    let mut c = mb(&endpoint, &control);
    c.args([
        "submit",
        "--skip-doctor",
        "--manifest",
        &manifest,
        "--function-arn",
        function,
        "--role-arn",
        role,
    ]);
    for kv in &many {
        c.args(["--user-arg", kv]);
    }
    let (_, err) = fails(&mut c);
    // Each is refused on its own first: the handler takes no argument named k0.
    assert!(
        err.contains("--user-arg") && err.contains("unknown (accepted:"),
        "{err}"
    );
    // The manifest changed after `manifest` wrote it (and recorded its ETag).
    s3.put_object()
        .bucket(&bucket)
        .key("manifests/m.csv")
        .body(ByteStream::from_static(b"other,bytes\n"))
        .send()
        .await
        .unwrap();
    let (_, err) = fails(&mut submit(&[]));
    assert!(err.contains("changed since it was written"), "{err}");
    let (_, err) = fails(mb(&endpoint, &control).args([
        "submit",
        "--skip-doctor",
        "--manifest",
        &format!("s3://{bucket}/missing.csv"),
        "--function-arn",
        function,
        "--role-arn",
        role,
    ]));
    assert!(err.contains("missing.csv"), "{err}");
    assert_eq!(
        stub.lock().unwrap().creates,
        creates,
        "nothing submitted after an error"
    );

    // The service-side manifest generator, with the same kinds of filters.
    let generated: Value = serde_json::from_str(&ok(mb(&endpoint, &control).args([
        "--json",
        "submit",
        "--skip-doctor",
        "--generate",
        "--source-bucket",
        &bucket,
        "--source-prefix",
        "calls/",
        "--created-after",
        "2024-01-01",
        "--created-before",
        "2024-02-01",
        "--manifest-output",
        &format!("s3://{bucket}/generated"),
        "--function-arn",
        function,
        "--role-arn",
        role,
    ])))
    .unwrap();
    let body = stub.lock().unwrap().jobs[generated["job_id"].as_str().unwrap()]
        .1
        .clone();
    for part in [
        format!("<SourceBucket>arn:aws:s3:::{bucket}</SourceBucket>"),
        "<EnableManifestOutput>true</EnableManifestOutput>".to_string(),
        "<ManifestFormat>S3InventoryReport_CSV_20211130</ManifestFormat>".to_string(),
        "<MatchAnyPrefix><member>calls/</member></MatchAnyPrefix>".to_string(),
        "<MatchAnySuffix><member>.wav</member></MatchAnySuffix>".to_string(),
        "<ObjectSizeGreaterThanBytes>524287</ObjectSizeGreaterThanBytes>".to_string(),
        "<CreatedAfter>2024-01-01T00:00:00Z</CreatedAfter>".to_string(),
        "<MatchAnyStorageClass><member>STANDARD</member>".to_string(),
    ] {
        assert!(body.contains(&part), "{part} missing from {body}");
    }
    assert!(
        !body.contains("<Manifest>"),
        "a generator job has no manifest"
    );
    // An inventory manifest passed straight through.
    s3.put_object()
        .bucket(&bucket)
        .key("inv/manifest.json")
        .body(ByteStream::from_static(b"{}"))
        .send()
        .await
        .unwrap();
    let inv: Value = serde_json::from_str(&ok(mb(&endpoint, &control).args([
        "--json",
        "submit",
        "--skip-doctor",
        "--inventory",
        &format!("s3://{bucket}/inv/manifest.json"),
        "--function-arn",
        function,
        "--role-arn",
        role,
    ])))
    .unwrap();
    let body = stub.lock().unwrap().jobs[inv["job_id"].as_str().unwrap()]
        .1
        .clone();
    assert!(
        body.contains("<Format>S3InventoryReport_CSV_20161130</Format>")
            && !body.contains("<Fields>"),
        "{body}"
    );
    let problems = stub.lock().unwrap().problems.clone();
    assert!(problems.is_empty(), "{problems:?}");
}
