//! WebSockets to a node that never wait on a TCP timer, on either side:
//! - Nagle off, for our writes. alloy's own `WsConnect` leaves it on, and a small request
//!   written while an earlier one is unacknowledged then waits for the node's delayed ACK:
//!   ~40 ms, measured, on every pause sent over an otherwise idle socket.
//! - Quick ACKs, for the node's writes. A node that leaves Nagle on (anvil does) holds its
//!   second small write (an answer right after another, a pending tx right after the
//!   subscription's answer) until we ACK the first, and Linux delays that ACK up to 40 ms:
//!   measured as 40–45 ms state fetches and intakes. Linux leaves quick-ACK mode on its own,
//!   so it is set again after every read.
//!
//! Every connection preempt opens to a node's WebSocket goes through `connect`.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder},
    pubsub::{ConnectionHandle, ConnectionInterface, PubSubConnect},
    transports::{TransportErrorKind, TransportResult},
};
use futures::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, client_async_tls_with_config,
    tungstenite::{self, Message, client::IntoClientRequest, protocol::WebSocketConfig},
};

const KEEPALIVE: Duration = Duration::from_secs(10);

/// A node's WebSocket as `connect` opens it.
pub(crate) type NodeSocket = WebSocketStream<MaybeTlsStream<QuickAck>>;

/// A TCP stream that asks the kernel to ACK at once after every read.
#[derive(Debug)]
pub(crate) struct QuickAck(TcpStream);

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            // Best effort: a socket that refuses only costs the old delay.
            let _ = self.0.set_quickack(true);
        }
        read
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Opens `url` (ws:// or wss://) with Nagle off and quick ACKs on.
pub(crate) async fn connect(
    url: &str,
    config: Option<WebSocketConfig>,
) -> Result<NodeSocket, tungstenite::Error> {
    let request = url.into_client_request()?;
    let uri = request.uri();
    let host =
        uri.host().ok_or(tungstenite::Error::Url(tungstenite::error::UrlError::NoHostName))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("wss") { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let _ = tcp.set_quickack(true);
    let (socket, _) = client_async_tls_with_config(request, QuickAck(tcp), config, None).await?;
    Ok(socket)
}

/// alloy's pub-sub transport over `connect`'s socket; `max_retries` as alloy's (0: a drop
/// ends the connection).
#[derive(Debug, Clone)]
pub struct LowLatencyWs {
    pub url: String,
    pub max_retries: u32,
}

impl PubSubConnect for LowLatencyWs {
    fn is_local(&self) -> bool {
        alloy::transports::utils::guess_local_url(&self.url)
    }

    async fn connect(&self) -> TransportResult<ConnectionHandle> {
        let socket = connect(&self.url, None).await.map_err(TransportErrorKind::custom)?;
        let (handle, interface) = ConnectionHandle::new();
        tokio::spawn(backend(socket, interface));
        Ok(handle.with_max_retries(self.max_retries))
    }
}

/// Moves requests from alloy's frontend to the socket and answers back, pinging when idle
/// (alloy's `WsBackend` is tied to a plain TCP stream).
async fn backend(mut socket: NodeSocket, mut interface: ConnectionInterface) {
    let keepalive = tokio::time::sleep(KEEPALIVE);
    tokio::pin!(keepalive);
    let mut expecting_pong = false;
    let failed = loop {
        tokio::select! {
            biased;
            request = interface.recv_from_frontend() => {
                let Some(request) = request else { break false };
                keepalive.as_mut().reset(tokio::time::Instant::now() + KEEPALIVE);
                if let Err(e) = socket.send(Message::text(request.get())).await {
                    tracing::debug!(error = %e, "node connection: write failed");
                    break true;
                }
            }
            _ = &mut keepalive => {
                if expecting_pong {
                    tracing::debug!("node connection: no pong");
                    break true;
                }
                keepalive.as_mut().reset(tokio::time::Instant::now() + KEEPALIVE);
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break true;
                }
                expecting_pong = true;
            }
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str()) {
                    Ok(item) => {
                        if interface.send_to_frontend(item).is_err() {
                            break false;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "node connection: not a JSON-RPC message");
                        break true;
                    }
                },
                Some(Ok(Message::Pong(_))) => expecting_pong = false,
                Some(Ok(Message::Close(_))) | None => break true,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "node connection: read failed");
                    break true;
                }
            },
        }
    };
    if failed {
        interface.close_with_error();
    }
}

/// A provider for `url`: WebSocket over `connect`, else HTTP or IPC as alloy connects them.
pub async fn connect_provider(url: &str, ws_max_retries: u32) -> TransportResult<DynProvider> {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        let ws = LowLatencyWs { url: url.to_string(), max_retries: ws_max_retries };
        Ok(ProviderBuilder::new().connect_pubsub_with(ws).await?.erased())
    } else {
        Ok(ProviderBuilder::new().connect(url).await?.erased())
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn every_read_leaves_the_socket_in_quick_ack_mode() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let client =
            tokio::spawn(async move { TcpStream::connect(address).await.expect("connect") });
        let (mut server, _) = listener.accept().await.expect("accept");
        let mut ours = QuickAck(client.await.expect("join"));
        for round in 0..3u8 {
            // The kernel drops quick-ACK mode by itself; each read sets it again.
            ours.0.set_quickack(false).expect("clear");
            server.write_all(&[round; 16]).await.expect("write");
            let mut buf = [0u8; 16];
            ours.read_exact(&mut buf).await.expect("read");
            assert_eq!(buf, [round; 16]);
            assert!(ours.0.quickack().expect("quickack"), "round {round}");
        }
        ours.write_all(b"ping").await.expect("write back");
        let mut back = [0u8; 4];
        server.read_exact(&mut back).await.expect("read back");
        assert_eq!(&back, b"ping");
    }
}
