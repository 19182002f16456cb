//! A request body of known length fed from a channel, so one PUT streams the converted audio.
//!
//! The SDK needs an exact size hint to send `Content-Length` (and the aws-chunked checksum
//! trailer); `http_body_util::StreamBody` reports none. The body also refuses to end short or
//! run long, so a conversion that stops half-way can never commit a truncated object.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Boxed error type the SDK accepts from bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Streaming body of exactly `remaining` bytes.
#[derive(Debug)]
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    remaining: u64,
}

/// The sending side: each piece of output, or the reason to abort the upload.
pub type BodySender = mpsc::Sender<Result<Bytes, String>>;

impl ChannelBody {
    /// A body of `len` bytes and the sender that feeds it (`depth` pieces buffered).
    pub fn new(len: u64, depth: usize) -> (BodySender, ChannelBody) {
        let (tx, rx) = mpsc::channel(depth);
        (tx, ChannelBody { rx, remaining: len })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => {
                let n = bytes.len() as u64;
                if n > self.remaining {
                    let msg = format!("body overran its length by {} bytes", n - self.remaining);
                    self.remaining = 0;
                    return Poll::Ready(Some(Err(msg.into())));
                }
                self.remaining -= n;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(Some(Err(reason))) => Poll::Ready(Some(Err(reason.into()))),
            Poll::Ready(None) if self.remaining > 0 => {
                let msg = format!("body ended {} bytes early", self.remaining);
                self.remaining = 0;
                Poll::Ready(Some(Err(msg.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn drain(mut body: ChannelBody) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let frame = frame.map_err(|e| e.to_string())?;
            out.extend_from_slice(frame.data_ref().unwrap());
        }
        Ok(out)
    }

    #[tokio::test]
    async fn exact_length_passes_through() {
        let (tx, body) = ChannelBody::new(5, 2);
        assert_eq!(body.size_hint().exact(), Some(5));
        tokio::spawn(async move {
            tx.send(Ok(Bytes::from_static(b"ab"))).await.unwrap();
            tx.send(Ok(Bytes::from_static(b"cde"))).await.unwrap();
        });
        assert_eq!(drain(body).await.unwrap(), b"abcde");
    }

    #[tokio::test]
    async fn short_long_and_aborted_bodies_fail() {
        let (tx, body) = ChannelBody::new(5, 2);
        tx.send(Ok(Bytes::from_static(b"ab"))).await.unwrap();
        drop(tx);
        assert_eq!(drain(body).await.unwrap_err(), "body ended 3 bytes early");
        let (tx, body) = ChannelBody::new(1, 2);
        tx.send(Ok(Bytes::from_static(b"ab"))).await.unwrap();
        assert!(drain(body).await.unwrap_err().contains("overran"));
        let (tx, body) = ChannelBody::new(9, 2);
        tx.send(Err("not a WAV".into())).await.unwrap();
        assert_eq!(drain(body).await.unwrap_err(), "not a WAV");
    }
}
