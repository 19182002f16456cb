//! The built `batch-handler` binary as a Lambda: driven through the Lambda Runtime API protocol
//! by a minimal runtime server in the test, converting a real object on moto.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use batch_contract::key::encode_key;
use bytes::Bytes;
use e2e_tests::*;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::{Mutex, Notify, mpsc};

/// What the runtime posted back: (request id, "response" | "error", body).
pub type Posted = (String, String, Value);

pub struct RuntimeApi {
    pub queue: Mutex<VecDeque<(String, Value)>>,
    pub ready: Notify,
    posted: mpsc::UnboundedSender<Posted>,
}

async fn serve(
    api: Arc<RuntimeApi>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if method == hyper::Method::GET && path == "/2018-06-01/runtime/invocation/next" {
        // Long poll: hold the request until an event is queued.
        let (id, event) = loop {
            if let Some(next) = api.queue.lock().await.pop_front() {
                break next;
            }
            api.ready.notified().await;
        };
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 120_000;
        let resp = Response::builder()
            .header("Lambda-Runtime-Aws-Request-Id", id)
            .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
            .header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:123456789012:function:shrink",
            )
            .header(
                "Lambda-Runtime-Trace-Id",
                "Root=1-00000000-000000000000000000000000",
            )
            .body(Full::new(Bytes::from(event.to_string())))
            .unwrap();
        return Ok(resp);
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if method == hyper::Method::POST && parts.len() == 5 && parts[2] == "invocation" {
        let value = serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()));
        let _ = api
            .posted
            .send((parts[3].to_string(), parts[4].to_string(), value));
    } else if method == hyper::Method::POST {
        let _ = api.posted.send((
            "-".into(),
            path.clone(),
            Value::String(String::from_utf8_lossy(&body).into()),
        ));
    }
    Ok(Response::builder()
        .status(StatusCode::ACCEPTED)
        .body(Full::new(Bytes::new()))
        .unwrap())
}

/// `binary` as Lambda starts a function: nothing of the caller's environment, the Runtime API at
/// `addr`, static credentials, an explicit region, S3 at `endpoint`.
pub fn function_command(
    binary: &std::path::Path,
    addr: &str,
    name: &str,
    endpoint: &str,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", endpoint);
    cmd
}

pub async fn start_runtime_api() -> (String, Arc<RuntimeApi>, mpsc::UnboundedReceiver<Posted>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let api = Arc::new(RuntimeApi {
        queue: Mutex::new(VecDeque::new()),
        ready: Notify::new(),
        posted: tx,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server_api = api.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let api = server_api.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| serve(api.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    (addr, api, rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_answers_batch_events_through_the_lambda_runtime_api() {
    let test = "the_binary_answers_batch_events_through_the_lambda_runtime_api";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let Some(binary) = require_binary("batch-handler", test) else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "lambda", true).await;
    let key = "connect/acme/CallRecordings/2025/02/03/abc_20250203T10:15_UTC.wav";
    let wav = connect_wav(3.0);
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from(wav.clone()))
        .send()
        .await
        .unwrap();

    let (addr, api, mut posted) = start_runtime_api().await;
    let mut child = function_command(&binary, &addr, "shrink", &endpoint)
        .env("DOWNMIX", "sum")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start batch-handler");

    let good = event_v1(&bucket, &[(&encode_key(key), None)]);
    let mut bad_version = good.clone();
    bad_version["invocationSchemaVersion"] = json!("9.9");
    let not_an_object = json!(["not", "an", "event"]);
    {
        let mut q = api.queue.lock().await;
        q.push_back(("req-1".into(), good));
        q.push_back(("req-2".into(), bad_version));
        q.push_back(("req-3".into(), not_an_object));
    }
    api.ready.notify_waiters();
    api.ready.notify_one();

    let mut answers = Vec::new();
    while answers.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(120), posted.recv()).await;
        let Ok(Some(p)) = next else {
            let _ = child.start_kill();
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .await
                .ok();
            panic!("runtime did not answer 3 events; got {answers:?}; stderr:\n{err}");
        };
        api.ready.notify_one();
        answers.push(p);
    }
    child.start_kill().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();

    let by_id = |id: &str| {
        answers
            .iter()
            .find(|(i, _, _)| i == id)
            .cloned()
            .unwrap_or_else(|| panic!("no answer for {id}: {answers:?}"))
    };
    let (_, kind, body) = by_id("req-1");
    assert_eq!(kind, "response", "{body}");
    assert_eq!(body["invocationSchemaVersion"], "1.0");
    assert_eq!(body["treatMissingKeysAs"], "PermanentFailure");
    assert_eq!(body["results"][0]["taskId"], "task-0");
    assert_eq!(body["results"][0]["resultCode"], "Succeeded", "{body}");
    let summary: Value =
        serde_json::from_str(body["results"][0]["resultString"].as_str().unwrap()).unwrap();
    assert_eq!(summary["action"], "converted");
    assert_eq!(
        summary["downmix"], "sum",
        "environment settings reach the Lambda"
    );

    let (_, kind, body) = by_id("req-2");
    assert_eq!(
        kind, "response",
        "an unknown schema version is a task failure, not a function error"
    );
    assert_eq!(body["invocationSchemaVersion"], "9.9");
    assert_eq!(body["results"][0]["resultCode"], "PermanentFailure");
    assert!(
        body["results"][0]["resultString"]
            .as_str()
            .unwrap()
            .contains("unknown invocationSchemaVersion")
    );

    let (_, kind, body) = by_id("req-3");
    assert_eq!(kind, "response", "{body}");
    assert_eq!(body["results"], json!([]));

    let converted = s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let bytes = converted.body.collect().await.unwrap().into_bytes();
    assert_eq!(u16::from_le_bytes([bytes[20], bytes[21]]), 6);

    // One JSON log line per task, with the fields an operator searches for.
    let task_line: Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["task_id"] == "task-0" && v["fields"]["action"] == "converted")
        .unwrap_or_else(|| panic!("no JSON task log line in:\n{stderr}"));
    assert_eq!(task_line["fields"]["key"], key);
    assert!(task_line["fields"]["bytes_out"].as_u64().unwrap() > 0);
    assert!(
        !stderr.contains("AWS_SECRET_ACCESS_KEY") && !stderr.contains("\"test\""),
        "no credentials in logs"
    );
}
