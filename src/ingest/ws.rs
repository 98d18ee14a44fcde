//! A WebSocket to a node owned by ingest (not alloy-pubsub): no TCP timer on either side (see
//! `fork::ws`), a hard cap on message and frame size, and every frame handed up as it is read,
//! so nothing reconnects or drops behind ingest's back.

use tokio_tungstenite::tungstenite::{self, protocol::WebSocketConfig};

pub(super) type WsStream = crate::fork::NodeSocket;

/// Opens `url` (ws:// or wss://) with messages and frames capped at `max_message` bytes. A
/// larger message is a transport error: the protocol cannot skip it and stay in sync.
pub(super) async fn connect(url: &str, max_message: usize) -> Result<WsStream, tungstenite::Error> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    crate::fork::connect_ws(url, Some(config)).await
}
