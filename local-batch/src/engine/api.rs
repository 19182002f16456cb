//! The S3 Control job API over HTTP on loopback: routes the job calls (and job tagging) to the
//! engine and answers in the REST-XML shapes `aws-sdk-s3control`, boto3 and the AWS CLI parse,
//! errors included. Requests are not signature-checked: the engine binds 127.0.0.1 only. The
//! same port is a loopback-only HTTP proxy ([`super::forward`]) so that stock clients reach it.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::Value;

use super::{ApiError, Engine, forward, xml};

/// What the endpoint answers with: its own XML, or a forwarded response streamed through.
pub type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// A running endpoint.
pub struct Endpoint {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// Stops accepting connections.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn reply_with(status: u16, body: String, id: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .header("x-amz-request-id", id)
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("response")
}

fn reply(status: u16, body: String) -> Response<Body> {
    reply_with(status, body, &request_id())
}

/// An error body whose RequestId is the response's `x-amz-request-id`.
fn failure(e: ApiError) -> Response<Body> {
    let id = request_id();
    reply_with(e.status, xml::error(e.code, &e.message, &id), &id)
}

fn query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let d = |s: &str| batch_contract::key::decode_key(s).unwrap_or_else(|_| s.to_string());
            (d(k), d(v))
        })
        .collect()
}

async fn route(
    engine: Engine,
    own: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // A proxied request (absolute form) for another loopback server: pass it on.
    if !path.starts_with("/v20180820/") {
        match forward::target(&req, own) {
            Ok(Some(to)) => return forward::forward(to, req).await,
            Ok(None) => {}
            Err(refused) => return failure(ApiError::new(403, "AccessDenied", refused)),
        }
    }
    let q = query(req.uri().query().unwrap_or(""));
    let param = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let account = req
        .headers()
        .get("x-amz-account-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(e) => return failure(ApiError::new(400, "BadRequestException", e.to_string())),
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let done = |root: &str, v: Result<Value, ApiError>| match v {
        Ok(v) => reply(200, xml::document(root, &v)),
        Err(e) => failure(e),
    };
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["v20180820", "jobs"]) => done(
            "CreateJobResult",
            engine
                .create(&account, &body)
                .await
                .map(|id| serde_json::json!({"JobId": id})),
        ),
        ("GET", ["v20180820", "jobs"]) => {
            let statuses: Vec<String> = q
                .iter()
                .filter(|(k, _)| k == "jobStatuses")
                .map(|(_, v)| v.clone())
                .collect();
            let max = param("maxResults")
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            done(
                "ListJobsResult",
                engine.list(&account, &statuses, max, param("nextToken").as_deref()),
            )
        }
        ("GET", ["v20180820", "jobs", id]) => done(
            "DescribeJobResult",
            engine
                .describe(&account, id)
                .map(|j| serde_json::json!({"Job": j})),
        ),
        ("POST", ["v20180820", "jobs", id, "status"]) => {
            let requested = param("requestedJobStatus").unwrap_or_default();
            done(
                "UpdateJobStatusResult",
                engine
                    .update_status(&account, id, &requested, param("statusUpdateReason"))
                    .await,
            )
        }
        ("POST", ["v20180820", "jobs", id, "priority"]) => {
            match param("priority").and_then(|p| p.parse::<i64>().ok()) {
                Some(p) => done(
                    "UpdateJobPriorityResult",
                    engine.update_priority(&account, id, p),
                ),
                None => failure(ApiError::new(
                    400,
                    "BadRequestException",
                    "priority must be an integer",
                )),
            }
        }
        ("GET", ["v20180820", "jobs", id, "tagging"]) => {
            done("GetJobTaggingResult", engine.tags(&account, id))
        }
        ("PUT", ["v20180820", "jobs", id, "tagging"]) => {
            done("PutJobTaggingResult", engine.put_tags(&account, id, &body))
        }
        ("DELETE", ["v20180820", "jobs", id, "tagging"]) => {
            done("DeleteJobTaggingResult", engine.delete_tags(&account, id))
        }
        _ => failure(ApiError::new(
            501,
            "NotImplemented",
            format!("{method} {path} is not part of the local Batch Operations engine"),
        )),
    }
}

/// Serves the engine's API on `addr` (use port 0 for a free one).
pub async fn serve(engine: Engine, addr: SocketAddr) -> std::io::Result<Endpoint> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let own = listener.local_addr()?;
    let url = format!("http://{own}");
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let engine = engine.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let engine = engine.clone();
                    async move { Ok::<_, Infallible>(route(engine, own, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), service)
                    .await;
            });
        }
    });
    Ok(Endpoint { url, task })
}
