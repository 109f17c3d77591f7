//! The MLLP edge: HL7 v2 messages framed as `<VT> message <FS><CR>` over TCP, or over
//! TLS (rustls, the server's certificate), many per connection, answered in order. A frame larger than
//! the limit or a connection idle longer than the timeout is closed. The rules live
//! in `lianyi_interop::Inbound` and the framing in `lianyi_hl7::mllp` (pure, so it is
//! unit-tested and fuzzed there); this module only moves bytes between the socket and
//! the framer.

use std::net::SocketAddr;
use std::time::Duration;

use lianyi_hl7::mllp::{Framer, frame};
use lianyi_interop::Inbound;
use lianyi_interop::inbound::Outcome;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

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

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    peer: SocketAddr,
    inbound: Inbound,
    limits: MllpLimits,
) -> std::io::Result<()> {
    let mut framer = Framer::new(limits.max_frame);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        while let Some(message) = framer.next_frame() {
            let (ack, outcome) = inbound.receive(message, Some(peer.ip().to_string())).await;
            metrics::counter!("lianyi_mllp_messages_total", "outcome" => outcome_name(outcome)).increment(1);
            if outcome == Outcome::Failed && inbound.database_failing().await {
                // Nothing was stored: no ACK, so the sender keeps the message and sends
                // it again (an AE might be taken as final).
                tracing::warn!(
                    "the database does not answer or its disk is full: MLLP connection closed without an ACK"
                );
                return Ok(());
            }
            sock.write_all(&frame(&ack)).await?;
        }
        if framer.overflowed() {
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
        framer.push(&chunk[..n]);
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
