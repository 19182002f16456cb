//! The S3 Control job API over HTTP on loopback: routes the five job calls to the engine and
//! answers in the REST-XML shapes `aws-sdk-s3control` parses, errors included. Requests are
//! not signature-checked: the engine binds 127.0.0.1 only.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::Value;

use super::{ApiError, Engine, xml};

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

fn reply(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .header(
            "x-amz-request-id",
            uuid::Uuid::new_v4().simple().to_string(),
        )
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

fn failure(e: ApiError) -> Response<Full<Bytes>> {
    reply(e.status, xml::error(e.code, &e.message, "local"))
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

async fn route(engine: Engine, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
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
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let engine = engine.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let engine = engine.clone();
                    async move { Ok::<_, Infallible>(route(engine, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), service)
                    .await;
            });
        }
    });
    Ok(Endpoint { url, task })
}
