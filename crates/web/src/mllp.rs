//! The MLLP edge: HL7 v2 messages framed as `<VT> message <FS><CR>` over TCP, or over
//! TLS (rustls, the server's certificate), many per connection, answered in order. A frame larger than
//! the limit or a connection idle longer than the timeout is closed. The rules live
//! in `lianyi_interop::Inbound`; this module only frames bytes.

use std::net::SocketAddr;
use std::time::Duration;

use lianyi_interop::Inbound;
use lianyi_interop::inbound::Outcome;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const VT: u8 = 0x0b;
const FS: u8 = 0x1c;
const CR: u8 = 0x0d;

#[derive(Clone, Copy, Debug)]
pub struct MllpLimits {
    /// The largest message accepted, in bytes.
    pub max_frame: usize,
    /// A connection with no bytes for this long is closed.
    pub idle: Duration,
}

impl Default for MllpLimits {
    fn default() -> Self {
        MllpLimits { max_frame: 4 << 20, idle: Duration::from_secs(300) }
    }
}

/// Accepts connections until the task is dropped; with `tls`, every connection must
/// complete a TLS handshake (within 10 s) before any frame is read.
pub async fn serve_mllp(
    listener: TcpListener,
    inbound: Inbound,
    limits: MllpLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((sock, peer)) = listener.accept().await else { continue };
        let _ = sock.set_nodelay(true);
        let inbound = inbound.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let ended = match acceptor {
                None => connection(sock, peer, inbound, limits).await,
                Some(a) => match tokio::time::timeout(Duration::from_secs(10), a.accept(sock)).await {
                    Ok(Ok(stream)) => connection(stream, peer, inbound, limits).await,
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")),
                },
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "MLLP connection ended");
            }
        });
    }
}

/// The span of the first complete frame in `buf`: (start of content, end of content).
fn next_frame(buf: &[u8]) -> Option<(usize, usize)> {
    let start = buf.iter().position(|b| *b == VT)? + 1;
    let end = buf[start..].windows(2).position(|w| w == [FS, CR])? + start;
    Some((start, end))
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    peer: SocketAddr,
    inbound: Inbound,
    limits: MllpLimits,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        while let Some((start, end)) = next_frame(&buf) {
            let (ack, outcome) = inbound.receive(&buf[start..end], Some(peer.ip().to_string())).await;
            buf.drain(..end + 2);
            metrics::counter!("lianyi_mllp_messages_total", "outcome" => outcome_name(outcome)).increment(1);
            let mut framed = Vec::with_capacity(ack.len() + 3);
            framed.push(VT);
            framed.extend_from_slice(&ack);
            framed.extend_from_slice(&[FS, CR]);
            sock.write_all(&framed).await?;
        }
        // Bytes before a frame start are noise; an unfinished frame may not grow past
        // the limit.
        match buf.iter().position(|b| *b == VT) {
            Some(0) => {}
            Some(i) => {
                buf.drain(..i);
            }
            None => buf.clear(),
        }
        if buf.len() > limits.max_frame {
            tracing::warn!(limit = limits.max_frame, "MLLP frame over the size limit; connection closed");
            return Ok(());
        }
        let n = match tokio::time::timeout(limits.idle, sock.read(&mut chunk)).await {
            Err(_) => return Ok(()),
            Ok(r) => r?,
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Accepted => "accepted",
        Outcome::Duplicate => "duplicate",
        Outcome::Error => "error",
        Outcome::Rejected => "rejected",
        Outcome::Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_after_noise_and_only_when_complete() {
        assert_eq!(next_frame(b"\x0bMSH|x\x1c\x0d"), Some((1, 6)));
        assert_eq!(next_frame(b"junk\x0bA\x1c\x0d\x0bB\x1c\x0d"), Some((5, 6)));
        assert_eq!(next_frame(b"\x0bMSH|x\x1c"), None);
        assert_eq!(next_frame(b"MSH|x\x1c\x0d"), None);
    }
}
