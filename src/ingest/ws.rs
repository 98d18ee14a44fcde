//! A WebSocket to a node owned by ingest (not alloy-pubsub): Nagle off, a hard cap on message
//! and frame size, and every frame handed up as it is read, so nothing reconnects or drops
//! behind ingest's back.

use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async_with_config,
    tungstenite::{self, protocol::WebSocketConfig},
};

pub(super) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `url` (ws:// or wss://) with messages and frames capped at `max_message` bytes. A
/// larger message is a transport error: the protocol cannot skip it and stay in sync.
pub(super) async fn connect(url: &str, max_message: usize) -> Result<WsStream, tungstenite::Error> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    // `true`: TCP_NODELAY. A small request written while an earlier one is unacknowledged
    // would otherwise wait for the node's delayed ACK (~40 ms, measured).
    let (socket, _) = connect_async_with_config(url, Some(config), true).await?;
    Ok(socket)
}
