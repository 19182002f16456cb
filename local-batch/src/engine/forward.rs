//! The engine's endpoint is also a loopback-only HTTP proxy, so that boto3, the AWS CLI and other
//! clients with the stock S3 Control endpoint rules reach it with no code of the user's. Those
//! rules put the account id in front of any custom endpoint's host
//! (`http://123456789012.127.0.0.1:PORT/v20180820/jobs`), a name no resolver knows. With
//! `HTTP_PROXY` set to this endpoint the client does not resolve it: it sends the request here in
//! absolute form, and the job API answers it whatever the host. Everything else it sends through
//! the proxy (the embedded S3, moto) is passed on to that server, but only on 127.0.0.1.

use std::net::SocketAddr;

use http_body_util::BodyExt;
use hyper::{Request, Response};

use super::api::Body;

/// Where a proxied request goes: `Ok(None)` when it is for this endpoint (or not proxied),
/// `Err` when it asks for a host other than the loopback.
pub fn target<B>(req: &Request<B>, own: SocketAddr) -> Result<Option<SocketAddr>, String> {
    let Some(authority) = req.uri().authority() else {
        return Ok(None);
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let ip = match host {
        "localhost" => std::net::IpAddr::from([127, 0, 0, 1]),
        h => match h.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_loopback() => ip,
            // `<account>.127.0.0.1`: the S3 Control rules' name for this endpoint.
            _ if h.ends_with(".127.0.0.1") || h.ends_with(".localhost") => return Ok(None),
            _ => {
                return Err(format!(
                    "the local engine forwards to 127.0.0.1 only, not to {host}"
                ));
            }
        },
    };
    let to = SocketAddr::new(ip, port);
    Ok((to.port() != own.port()).then_some(to))
}

/// Sends `req` to `to` over a new connection and streams the answer back.
pub async fn forward(to: SocketAddr, req: Request<hyper::body::Incoming>) -> Response<Body> {
    match send(to, req).await {
        Ok(resp) => resp.map(|b| b.boxed()),
        Err(e) => {
            let body = format!("the local engine could not reach {to}: {e}");
            Response::builder()
                .status(502)
                .header("content-type", "text/plain")
                .body(
                    http_body_util::Full::new(bytes::Bytes::from(body))
                        .map_err(|never| match never {})
                        .boxed(),
                )
                .expect("response")
        }
    }
}

async fn send(
    to: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<hyper::body::Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let (mut parts, body) = req.into_parts();
    // Origin form for the server; the Host header (which the signature covers) stays as sent.
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()?;
    for hop in ["proxy-connection", "proxy-authorization"] {
        parts.headers.remove(hop);
    }
    let stream = tokio::net::TcpStream::connect(to).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender
        .send_request(Request::from_parts(parts, body))
        .await?)
}
