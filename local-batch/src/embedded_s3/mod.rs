//! An S3 server inside the binary, for trying the tool with no AWS account and for other clients
//! on this machine: s3s (protocol, SigV4, XML) on 127.0.0.1 with a generated key pair, over the
//! project's own versioned store ([`store`]: keys kept verbatim, versions, delete markers, tags
//! per version, checksums checked before anything is stored, crash-safe on disk), answered as S3
//! answers ([`s3`]). Buckets can be versioned, so the demo converts in place as production does.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub mod s3;
pub mod store;

/// A running embedded S3.
pub struct EmbeddedS3 {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Access key the server accepts.
    pub access_key: String,
    /// Its secret.
    pub secret_key: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EmbeddedS3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn random_hex(bytes: usize) -> String {
    let mut s = String::new();
    while s.len() < bytes * 2 {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(bytes * 2);
    s
}

/// Fixes the key pair instead of generating one (for scripts whose clients cannot read it from
/// `serve`'s output, such as the test suite's second pass over the embedded store).
pub const ACCESS_KEY_ENV: &str = "EMBEDDED_S3_ACCESS_KEY_ID";
/// The secret that goes with [`ACCESS_KEY_ENV`].
pub const SECRET_KEY_ENV: &str = "EMBEDDED_S3_SECRET_ACCESS_KEY";

/// Starts the embedded S3 on `addr` with its store under `dir/store`.
pub async fn start(dir: &Path, addr: SocketAddr) -> std::io::Result<EmbeddedS3> {
    let store = store::Store::open(&dir.join("store")).map_err(std::io::Error::other)?;
    let fixed = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (access_key, secret_key) = match (fixed(ACCESS_KEY_ENV), fixed(SECRET_KEY_ENV)) {
        (Some(a), Some(s)) => (a, s),
        _ => (
            format!("LOCAL{}", random_hex(8).to_ascii_uppercase()),
            random_hex(20),
        ),
    };
    let mut b = s3s::service::S3ServiceBuilder::new(s3::Server {
        store: Arc::new(store),
    });
    b.set_auth(s3s::auth::SimpleAuth::from_single(
        access_key.clone(),
        secret_key.clone(),
    ));
    let service = b.build();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let http =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            let conn = http
                .serve_connection(hyper_util::rt::TokioIo::new(sock), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok(EmbeddedS3 {
        url,
        access_key,
        secret_key,
        task,
    })
}
