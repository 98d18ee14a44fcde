//! A WebSocket connection to a node with Nagle's algorithm off. alloy's own `WsConnect` leaves it
//! on, and a small request written while an earlier one is unacknowledged then waits for the
//! node's delayed ACK: ~40 ms, measured, on every pause sent over an otherwise idle socket.

use std::time::Duration;

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder},
    pubsub::{ConnectionHandle, PubSubConnect},
    transports::{TransportErrorKind, TransportResult, ws::WsBackend},
};

const KEEPALIVE: Duration = Duration::from_secs(10);

/// Connects with `TCP_NODELAY`; `max_retries` as alloy's (0: a drop ends the connection).
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
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(self.url.as_str(), None, true)
                .await
                .map_err(TransportErrorKind::custom)?;
        let (handle, interface) = ConnectionHandle::new();
        WsBackend::from_socket(socket, interface, KEEPALIVE).spawn();
        Ok(handle.with_max_retries(self.max_retries))
    }
}

/// A provider for `url`: WebSocket with no Nagle delay, else HTTP or IPC as alloy connects them.
pub async fn connect_provider(url: &str, ws_max_retries: u32) -> TransportResult<DynProvider> {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        let ws = LowLatencyWs { url: url.to_string(), max_retries: ws_max_retries };
        Ok(ProviderBuilder::new().connect_pubsub_with(ws).await?.erased())
    } else {
        Ok(ProviderBuilder::new().connect(url).await?.erased())
    }
}
