//! A WebSocket of its own per node, for pauses only: the request frame is written on the
//! submitting task itself (no hop through a transport's backend task), so the moment its bytes
//! went to the socket is known, apart from the moment the node answered.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use futures::{SinkExt, StreamExt, stream::SplitSink};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

type Socket = crate::fork::NodeSocket;
type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// One open connection: its write half, and the answers its reader task has not matched yet.
#[derive(Debug)]
struct Open {
    sink: SplitSink<Socket, Message>,
    waiters: Waiters,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A pause connection to one node (ws:// or wss:// only).
#[derive(Debug)]
pub(crate) struct PauseSocket {
    url: String,
    open: tokio::sync::Mutex<Option<Open>>,
    next_id: AtomicU64,
}

impl PauseSocket {
    /// `None` for a node reached over HTTP or IPC (its pauses go through its client).
    pub(crate) fn for_url(url: &str) -> Option<Self> {
        (url.starts_with("ws://") || url.starts_with("wss://")).then(|| Self {
            url: url.to_string(),
            open: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
        })
    }

    /// Opens the connection now, so the first pause does not pay for the handshake.
    pub(crate) async fn warm(&self) -> Result<(), String> {
        let mut open = self.open.lock().await;
        if open.is_none() {
            *open = Some(connect(&self.url).await?);
        }
        Ok(())
    }

    /// Writes one JSON-RPC request: when its bytes went to the socket, and where its answer
    /// will come.
    pub(crate) async fn write(&self, method: &str, params: Value) -> Result<Written, String> {
        let mut open = self.open.lock().await;
        if open.as_ref().is_none_or(|o| o.reader.is_finished()) {
            *open = None;
            *open = Some(connect(&self.url).await?);
        }
        self.write_on(&mut open, method, params).await
    }

    /// As `write`, only on a connection that is open and not in use: `None` otherwise (the
    /// caller then goes the usual way). Never waits for a lock or a handshake.
    pub(crate) async fn write_if_open(
        &self,
        method: &str,
        params: Value,
    ) -> Option<Result<Written, String>> {
        let mut open = self.open.try_lock().ok()?;
        if open.as_ref().is_none_or(|o| o.reader.is_finished()) {
            return None;
        }
        Some(self.write_on(&mut open, method, params).await)
    }

    async fn write_on(
        &self,
        open: &mut Option<Open>,
        method: &str,
        params: Value,
    ) -> Result<Written, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (tx, rx) = oneshot::channel();
        let Some(conn) = open.as_mut() else { return Err("no connection".into()) };
        lock(&conn.waiters).insert(id, tx);
        // `send` flushes: when it returns the frame is in the kernel's socket buffer.
        if let Err(e) = conn.sink.send(Message::text(body.to_string())).await {
            *open = None;
            return Err(format!("writing to the pause connection: {e}"));
        }
        Ok(Written { at: Instant::now(), answer: rx })
    }
}

/// A request on its way: when it was written, and its answer to come.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) at: Instant,
    answer: oneshot::Receiver<Result<Value, String>>,
}

impl Written {
    /// The node's answer; `Err(None)` when the connection closed first.
    pub(crate) async fn answer(self) -> Result<Value, Option<String>> {
        match self.answer.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Some(e)),
            Err(_) => Err(None),
        }
    }
}

async fn connect(url: &str) -> Result<Open, String> {
    // No TCP timer on either side (see `fork::ws`).
    let socket = crate::fork::connect_ws(url, None)
        .await
        .map_err(|e| format!("cannot open a pause connection to {url}: {e}"))?;
    let (sink, mut stream) = socket.split();
    let waiters: Waiters = Arc::default();
    let answers = Arc::clone(&waiters);
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            let text = match &frame {
                Message::Text(t) => t.as_str(),
                Message::Close(_) => break,
                _ => continue,
            };
            let Ok(answer) = serde_json::from_str::<Value>(text) else { continue };
            let Some(id) = answer["id"].as_u64() else { continue };
            let Some(waiter) = lock(&answers).remove(&id) else { continue };
            let result = match answer.get("error") {
                Some(e) => Err(e["message"].as_str().map(str::to_string).unwrap_or(e.to_string())),
                None => Ok(answer["result"].clone()),
            };
            let _ = waiter.send(result);
        }
        // The connection ended: whoever still waits hears it now, not at their timeout.
        lock(&answers).clear();
    });
    Ok(Open { sink, waiters, reader })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
