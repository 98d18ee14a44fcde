//! JSON-RPC requests on a connection ingest owns (its own socket, not the feed's): ids matched
//! to answers, batches, a timeout on every call, and a token that fires when the connection
//! is gone, so the session ends visibly instead of a transport reconnecting silently.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use thiserror::Error;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::{
    conn::{Incoming, Reader, Writer},
    stats::NodeIngestStats,
};

#[derive(Debug, Clone, Error)]
pub enum RpcError {
    #[error("{method}: node error {code}: {message}")]
    Node { method: &'static str, code: i64, message: String },
    #[error("{method}: no answer within {after:?}")]
    Timeout { method: &'static str, after: Duration },
    #[error("{method}: connection closed")]
    Closed { method: &'static str },
    #[error("{method}: unexpected answer: {reason}")]
    Decode { method: &'static str, reason: String },
}

type Reply = Result<Box<RawValue>, (i64, String)>;

#[derive(Debug)]
struct Shared {
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    out: mpsc::UnboundedSender<String>,
    /// Fires when the connection is gone (read or write failed, node closed it, shutdown).
    dead: CancellationToken,
    /// Why it died, for the session's log line.
    end: Mutex<Option<String>>,
}

impl Shared {
    fn die(&self, reason: String) {
        let mut end = self.end.lock().unwrap_or_else(|p| p.into_inner());
        end.get_or_insert(reason);
        self.dead.cancel();
        // Every caller waiting gets `Closed` now rather than at its timeout.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Requests to one node on one connection. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct RpcClient {
    shared: Arc<Shared>,
}

#[derive(Serialize)]
struct Request<'a, P> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: P,
}

#[derive(Deserialize)]
struct Response<'a> {
    id: Option<u64>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
    #[serde(default)]
    message: String,
}

/// Removes a call's entry if it is abandoned (timeout, cancelled caller).
struct Waiting<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl RpcClient {
    /// Starts the reader and writer tasks of a connection in `tasks`; they end with `cancel`.
    pub(super) fn start(
        mut writer: Writer,
        mut reader: Reader,
        stats: Arc<NodeIngestStats>,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<()>,
    ) -> Self {
        let (out, mut outgoing) = mpsc::unbounded_channel::<String>();
        let shared = Arc::new(Shared {
            next_id: AtomicU64::new(1),
            waiting: Mutex::default(),
            out,
            dead: cancel.child_token(),
            end: Mutex::default(),
        });
        let s = Arc::clone(&shared);
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = s.dead.cancelled() => return,
                    text = outgoing.recv() => match text {
                        None => return,
                        Some(text) => {
                            if let Err(e) = writer.send(text).await {
                                s.die(format!("write: {e}"));
                                return;
                            }
                        }
                    },
                }
            }
        });
        let s = Arc::clone(&shared);
        tasks.spawn(async move {
            loop {
                let frame = tokio::select! {
                    _ = s.dead.cancelled() => return,
                    frame = reader.next() => frame,
                };
                match frame {
                    Ok(Some(Incoming::Text(text))) => {
                        if !s.deliver(text.as_str()) {
                            stats.bad_frames.increment(1);
                        }
                    }
                    Ok(Some(Incoming::NotText(_))) => {
                        stats.bad_frames.increment(1);
                    }
                    Ok(Some(Incoming::Control)) => {}
                    Ok(None) => return s.die("node closed the connection".into()),
                    Err(e) => return s.die(e.to_string()),
                }
            }
        });
        Self { shared }
    }

    /// Fires when the connection is gone.
    pub(super) fn dead(&self) -> &CancellationToken {
        &self.shared.dead
    }

    pub(super) fn end_reason(&self) -> String {
        let end = self.shared.end.lock().unwrap_or_else(|p| p.into_inner());
        end.clone().unwrap_or_else(|| "request connection closed".into())
    }

    fn register(&self) -> (u64, oneshot::Receiver<Reply>) {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        (id, rx)
    }

    /// One call, answered within `timeout`.
    pub(super) async fn call<R: DeserializeOwned>(
        &self,
        method: &'static str,
        params: impl Serialize,
        timeout: Duration,
    ) -> Result<R, RpcError> {
        let (id, rx) = self.register();
        let _waiting = Waiting { shared: &self.shared, id };
        let text = serde_json::to_string(&Request { jsonrpc: "2.0", id, method, params })
            .map_err(|e| RpcError::Decode { method, reason: e.to_string() })?;
        if self.shared.out.send(text).is_err() {
            return Err(RpcError::Closed { method });
        }
        let reply = match tokio::time::timeout(timeout, rx).await {
            Err(_) => return Err(RpcError::Timeout { method, after: timeout }),
            Ok(Err(_)) => return Err(RpcError::Closed { method }),
            Ok(Ok(reply)) => reply,
        };
        decode(method, reply)
    }

    /// The same method with each of `params`, as one JSON-RPC batch; one result per params,
    /// in order. The whole batch is answered within `timeout` or fails.
    pub(super) async fn batch<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &'static str,
        params: &[P],
        timeout: Duration,
    ) -> Result<Vec<Result<R, RpcError>>, RpcError> {
        if params.is_empty() {
            return Ok(Vec::new());
        }
        let mut waits = Vec::with_capacity(params.len());
        let mut guards = Vec::with_capacity(params.len());
        let mut requests = Vec::with_capacity(params.len());
        for p in params {
            let (id, rx) = self.register();
            guards.push(Waiting { shared: &self.shared, id });
            waits.push(rx);
            requests.push(Request { jsonrpc: "2.0", id, method, params: p });
        }
        let text = serde_json::to_string(&requests)
            .map_err(|e| RpcError::Decode { method, reason: e.to_string() })?;
        if self.shared.out.send(text).is_err() {
            return Err(RpcError::Closed { method });
        }
        let replies = tokio::time::timeout(timeout, futures::future::join_all(waits))
            .await
            .map_err(|_| RpcError::Timeout { method, after: timeout })?;
        drop(guards);
        Ok(replies
            .into_iter()
            .map(|r| match r {
                Err(_) => Err(RpcError::Closed { method }),
                Ok(reply) => decode(method, reply),
            })
            .collect())
    }
}

fn decode<R: DeserializeOwned>(method: &'static str, reply: Reply) -> Result<R, RpcError> {
    match reply {
        Ok(raw) => serde_json::from_str(raw.get())
            .map_err(|e| RpcError::Decode { method, reason: e.to_string() }),
        Err((code, message)) => Err(RpcError::Node { method, code, message }),
    }
}

impl Shared {
    /// Hands a response (or each of a batch's) to its caller; false if the frame is not one.
    fn deliver(&self, text: &str) -> bool {
        if text.trim_start().starts_with('[') {
            let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) else { return false };
            let mut all = true;
            for item in items {
                all &= self.deliver_one(item.get());
            }
            all
        } else {
            self.deliver_one(text)
        }
    }

    fn deliver_one(&self, text: &str) -> bool {
        let Ok(response) = serde_json::from_str::<Response<'_>>(text) else { return false };
        let Some(id) = response.id else { return false };
        let reply = match (response.error, response.result) {
            (Some(e), _) => Err((e.code, e.message)),
            // `"result": null` arrives as `None`.
            (None, result) => Ok(result.unwrap_or(RawValue::NULL).to_owned()),
        };
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        // A late answer to an abandoned call is not a bad frame.
        if let Some(tx) = waiting {
            let _ = tx.send(reply);
        }
        true
    }
}
