//! A fault-injecting HTTP proxy between the tool and an S3 server, for the fault tests: it
//! forwards each request to the server, or instead answers what real S3 and real networks do
//! (503 SlowDown, 500 InternalError, a reset connection, a body cut short, a stall, latency,
//! and a PUT that the server committed whose answer never arrives).
//!
//! Seeded: whether and how a request is faulted depends only on the seed, the request's method
//! and path, and how many times that same request was seen before, so a failure reproduces with
//! its seed whatever the interleaving. Bounded: it serves until dropped, and every fault is
//! counted by kind.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};

/// What the proxy can do instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// `503 SlowDown`, not forwarded.
    SlowDown,
    /// `500 InternalError`, not forwarded.
    InternalError,
    /// The connection closed with no answer, not forwarded.
    Reset,
    /// Forwarded; the answer's body stops halfway and the connection closes.
    CutBody,
    /// Forwarded after a long pause.
    Stall,
    /// Forwarded after a short pause.
    Latency,
    /// Forwarded (the server commits it), then the connection closes with no answer. PUT only.
    LostAnswer,
}

/// Which requests are faulted, and how.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// Fraction of requests faulted (0.0 to 1.0).
    pub rate: f64,
    /// Kinds to choose from, evenly.
    pub kinds: Vec<Fault>,
    /// Only requests whose `METHOD path?query` contains one of these (empty: every request).
    pub only: Vec<String>,
    /// Length of a stall.
    pub stall: Duration,
    /// Fault only the first this many occurrences of each request (0: any occurrence).
    pub occurrences: u64,
}

impl Plan {
    /// Every kind of fault on `rate` of all requests.
    pub fn all(seed: u64, rate: f64) -> Plan {
        Plan {
            seed,
            rate,
            kinds: vec![
                Fault::SlowDown,
                Fault::InternalError,
                Fault::Reset,
                Fault::CutBody,
                Fault::Stall,
                Fault::Latency,
                Fault::LostAnswer,
            ],
            only: Vec::new(),
            stall: Duration::from_millis(1500),
            occurrences: 0,
        }
    }
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    counts: Arc<Mutex<BTreeMap<Fault, u64>>>,
    requests: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Faults injected so far, by kind.
    pub fn injected(&self) -> BTreeMap<Fault, u64> {
        self.counts.lock().unwrap().clone()
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        *self.requests.lock().unwrap()
    }
}

/// SplitMix64: a few lines of a well-known mixer, enough for reproducible fault choices (no
/// RNG crate needed for this).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

struct Shared {
    plan: Plan,
    upstream: SocketAddr,
    seen: Mutex<HashMap<String, u64>>,
    counts: Arc<Mutex<BTreeMap<Fault, u64>>>,
    requests: Arc<Mutex<u64>>,
}

impl Shared {
    /// The fault for this request, if any (deterministic in seed, request and occurrence).
    fn choose(&self, method: &str, target: &str) -> Option<Fault> {
        let id = format!("{method} {target}");
        *self.requests.lock().unwrap() += 1;
        if !self.plan.only.is_empty() && !self.plan.only.iter().any(|o| id.contains(o.as_str())) {
            return None;
        }
        let n = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(id.clone()).or_default();
            *n += 1;
            *n
        };
        if self.plan.occurrences > 0 && n > self.plan.occurrences {
            return None;
        }
        let r = mix(self.plan.seed ^ mix(hash_str(&id) ^ mix(n)));
        if (r >> 11) as f64 / (1u64 << 53) as f64 >= self.plan.rate {
            return None;
        }
        let kinds: Vec<Fault> = self
            .plan
            .kinds
            .iter()
            .copied()
            .filter(|k| *k != Fault::LostAnswer || method == "PUT")
            .collect();
        if kinds.is_empty() {
            return None;
        }
        let k = kinds[(mix(r) % kinds.len() as u64) as usize];
        *self.counts.lock().unwrap().entry(k).or_default() += 1;
        Some(k)
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn full(status: u16, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(
            Full::new(Bytes::from_static(text.as_bytes()))
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
        .expect("response")
}

/// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`) with `plan`.
pub async fn start(upstream: &str, plan: Plan) -> FaultProxy {
    let upstream: SocketAddr = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("upstream is http://127.0.0.1:PORT");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    let requests = Arc::new(Mutex::new(0));
    let shared = Arc::new(Shared {
        plan,
        upstream,
        seen: Mutex::new(HashMap::new()),
        counts: counts.clone(),
        requests: requests.clone(),
    });
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { handle(&shared, req).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    FaultProxy {
        url,
        counts,
        requests,
        task,
    }
}

/// Why a connection is dropped on purpose.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault injected: connection dropped")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    shared: &Shared,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Dropped> {
    let method = req.method().as_str().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let fault = shared.choose(&method, &target);
    match fault {
        Some(Fault::SlowDown) => {
            return Ok(full(
                503,
                "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
            ));
        }
        Some(Fault::InternalError) => {
            return Ok(full(
                500,
                "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>",
            ));
        }
        Some(Fault::Reset) => return Err(Dropped),
        Some(Fault::Stall) => tokio::time::sleep(shared.plan.stall).await,
        Some(Fault::Latency) => tokio::time::sleep(Duration::from_millis(50)).await,
        _ => {}
    }
    let answer = forward(shared.upstream, req).await.map_err(|_| Dropped)?;
    match fault {
        Some(Fault::LostAnswer) => Err(Dropped),
        Some(Fault::CutBody) => {
            let (parts, body) = answer.into_parts();
            let half = body.slice(..body.len() / 2);
            let frames = futures::stream::iter(vec![
                Ok(Frame::data(half)),
                Err(std::io::Error::other("fault injected: body cut")),
            ]);
            Ok(Response::from_parts(parts, StreamBody::new(frames).boxed()))
        }
        _ => {
            let (parts, body) = answer.into_parts();
            Ok(Response::from_parts(
                parts,
                Full::new(body)
                    .map_err(|never: Infallible| match never {})
                    .boxed(),
            ))
        }
    }
}

/// Sends the request to the server on a connection of its own; returns the whole answer.
async fn forward(
    upstream: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Bytes>, Box<dyn std::error::Error + Send + Sync>> {
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    // The body is sent whole: its length replaces any chunked transfer encoding.
    parts.headers.remove(hyper::header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(hyper::header::CONTENT_LENGTH, body.len().into());
    let stream = tokio::net::TcpStream::connect(upstream).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let answer = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = answer.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}
