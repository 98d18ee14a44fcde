//! A scriptable fake node: a WebSocket server on loopback that relays a real anvil's WS both
//! ways and, on command, injects frames into the pending-tx subscription (`inject_pending`
//! for a body, `inject` for raw text, `inject_binary`), drops a fraction of pending
//! notifications (`drop_ratio`), delays them (`delay`), refuses new connections (`refuse`),
//! answers a full-body pending subscribe with an error (`refuse_full_bodies`), answers a method
//! as missing (`remove_method`), answers `eth_getBlockReceipts` one receipt short
//! (`short_receipts`) and kills live connections (`kill`).
//! Use: `FakeNode::start(&anvil.ws_url()).await`, then point a node config at `ws_url()`.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::{AbortHandle, JoinHandle},
};
use tokio_tungstenite::tungstenite::Message;

/// One client connection: where to write to it, and its pending-tx subscription ids.
struct Conn {
    id: usize,
    to_client: mpsc::UnboundedSender<Message>,
    pending_subs: Arc<Mutex<Vec<String>>>,
    tasks: Vec<AbortHandle>,
}

#[derive(Default)]
struct Script {
    /// Pending notifications to drop, as a fraction (an accumulator keeps it exact).
    drop_ratio: f64,
    drop_acc: f64,
    delay: Duration,
}

#[derive(Default)]
struct State {
    conns: Mutex<Vec<Conn>>,
    script: Mutex<Script>,
    refusing: AtomicBool,
    refuse_full_bodies: AtomicBool,
    /// Methods answered with "method not found" instead of relayed.
    missing_methods: Mutex<Vec<String>>,
    /// Answers to `eth_getBlockReceipts` still to be cut one receipt short.
    short_receipts: AtomicUsize,
    /// Receipt lists cut short so far.
    receipts_cut: AtomicUsize,
    accepted: AtomicUsize,
    dropped: AtomicUsize,
    relayed_pending: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The fake node; stops (with every connection) when dropped.
pub struct FakeNode {
    port: u16,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl FakeNode {
    /// Serves on a free loopback port, relaying each connection to `upstream_ws_url`.
    pub async fn start(upstream_ws_url: &str) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let port = listener.local_addr().expect("bound address").port();
        let state = Arc::new(State::default());
        let upstream = upstream_ws_url.to_string();
        let s = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if s.refusing.load(Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                let id = s.accepted.fetch_add(1, Ordering::SeqCst);
                let (s, upstream) = (Arc::clone(&s), upstream.clone());
                tokio::spawn(async move { relay(s, id, stream, &upstream).await });
            }
        });
        FakeNode { port, state, accept }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Sends `text` as is, as one text frame, to every connection with a pending subscription.
    pub fn inject(&self, text: impl Into<String>) {
        let text: String = text.into();
        for c in lock(&self.state.conns).iter().filter(|c| !lock(&c.pending_subs).is_empty()) {
            let _ = c.to_client.send(Message::text(text.clone()));
        }
    }

    /// Sends `body` (JSON text) as a pending-tx notification of each connection's subscription.
    pub fn inject_pending(&self, body: &str) {
        for c in lock(&self.state.conns).iter() {
            for sub in lock(&c.pending_subs).iter() {
                let frame = format!(
                    r#"{{"jsonrpc":"2.0","method":"eth_subscription","params":{{"subscription":"{sub}","result":{body}}}}}"#
                );
                let _ = c.to_client.send(Message::text(frame));
            }
        }
    }

    pub fn inject_binary(&self, bytes: Vec<u8>) {
        for c in lock(&self.state.conns).iter().filter(|c| !lock(&c.pending_subs).is_empty()) {
            let _ = c.to_client.send(Message::binary(bytes.clone()));
        }
    }

    /// Drops this fraction of pending notifications from now on (0.5: every other one).
    pub fn drop_ratio(&self, ratio: f64) {
        let mut script = lock(&self.state.script);
        script.drop_ratio = ratio.clamp(0.0, 1.0);
        script.drop_acc = 0.0;
    }

    /// Holds each pending notification this long before relaying it.
    pub fn delay(&self, delay: Duration) {
        lock(&self.state.script).delay = delay;
    }

    /// While set, new connections are closed at once (the node looks down).
    pub fn refuse(&self, on: bool) {
        self.state.refusing.store(on, Ordering::SeqCst);
    }

    /// While set, `eth_subscribe ["newPendingTransactions", true]` is answered with an error,
    /// as by a node that only sends hashes.
    pub fn refuse_full_bodies(&self, on: bool) {
        self.state.refuse_full_bodies.store(on, Ordering::SeqCst);
    }

    /// Answers requests for `method` with "method not found", as a node without it would (a
    /// batch too, when every request in it is for a missing method).
    pub fn remove_method(&self, method: &str) {
        lock(&self.state.missing_methods).push(method.to_string());
    }

    /// The next `times` non-empty answers to `eth_getBlockReceipts` lose their last receipt,
    /// as from a node that lies about (or has not finished indexing) a block.
    pub fn short_receipts(&self, times: usize) {
        self.state.short_receipts.store(times, Ordering::SeqCst);
    }

    /// Receipt lists cut short so far.
    pub fn receipts_cut(&self) -> usize {
        self.state.receipts_cut.load(Ordering::SeqCst)
    }

    /// Closes every live connection; new ones are still accepted unless `refuse`d.
    pub fn kill(&self) -> usize {
        let conns: Vec<Conn> = lock(&self.state.conns).drain(..).collect();
        let n = conns.len();
        for c in conns {
            for t in c.tasks {
                t.abort();
            }
        }
        n
    }

    /// Connections accepted so far (a reconnect shows here).
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Live connections with a pending subscription.
    pub fn subscribed(&self) -> usize {
        lock(&self.state.conns).iter().filter(|c| !lock(&c.pending_subs).is_empty()).count()
    }

    /// Pending notifications dropped by `drop_ratio`.
    pub fn dropped(&self) -> usize {
        self.state.dropped.load(Ordering::SeqCst)
    }

    /// Pending notifications relayed to clients.
    pub fn relayed_pending(&self) -> usize {
        self.state.relayed_pending.load(Ordering::SeqCst)
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.accept.abort();
        self.kill();
    }
}

async fn relay(state: Arc<State>, id: usize, stream: TcpStream, upstream: &str) {
    let Ok(client) = tokio_tungstenite::accept_async(stream).await else { return };
    let Ok((node, _)) = tokio_tungstenite::connect_async(upstream).await else { return };
    let (mut client_tx, mut client_rx) = client.split();
    let (mut node_tx, mut node_rx) = node.split();
    let (to_client, mut outgoing) = mpsc::unbounded_channel::<Message>();
    let pending_subs: Arc<Mutex<Vec<String>>> = Arc::default();
    // Ids of the client's pending-tx subscribe requests, to learn the subscription id.
    let pending_requests: Arc<Mutex<Vec<Value>>> = Arc::default();
    // Ids of the client's receipt requests, whose answers may be cut short.
    let receipt_requests: Arc<Mutex<Vec<Value>>> = Arc::default();

    let mut writer = tokio::spawn(async move {
        while let Some(m) = outgoing.recv().await {
            if client_tx.send(m).await.is_err() {
                return;
            }
        }
    });
    let mut up = {
        let (state, requests, receipts, to_client) = (
            Arc::clone(&state),
            Arc::clone(&pending_requests),
            Arc::clone(&receipt_requests),
            to_client.clone(),
        );
        tokio::spawn(async move {
            while let Some(Ok(m)) = client_rx.next().await {
                let v = match &m {
                    Message::Text(t) => serde_json::from_str::<Value>(t.as_str()).ok(),
                    _ => None,
                };
                if let Some(v) = &v {
                    // A request or a batch: the calls in it.
                    let calls = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
                    for call in calls.iter().filter(|c| c["method"] == "eth_getBlockReceipts") {
                        lock(&receipts).push(call["id"].clone());
                    }
                    // Answered here when every call in it is for a missing method.
                    let missing = |c: &Value| {
                        c["method"].as_str().is_some_and(|method| {
                            lock(&state.missing_methods).iter().any(|m| m == method)
                        })
                    };
                    if !calls.is_empty() && calls.iter().all(missing) {
                        let mut answers = calls.iter().map(|c| {
                            json!({"jsonrpc": "2.0", "id": c["id"],
                                "error": {"code": -32601, "message": "Method not found"}})
                        });
                        let answer = if v.is_array() {
                            Value::Array(answers.collect())
                        } else {
                            answers.next().unwrap_or_default()
                        };
                        let _ = to_client.send(Message::text(answer.to_string()));
                        continue;
                    }
                    if v["method"] == "eth_subscribe" && v["params"][0] == "newPendingTransactions"
                    {
                        if v["params"][1] == true && state.refuse_full_bodies.load(Ordering::SeqCst)
                        {
                            let refusal = json!({"jsonrpc": "2.0", "id": v["id"],
                                "error": {"code": -32602, "message": "full bodies not supported"}});
                            let _ = to_client.send(Message::text(refusal.to_string()));
                            continue;
                        }
                        lock(&requests).push(v["id"].clone());
                    }
                }
                if node_tx.send(m).await.is_err() {
                    return;
                }
            }
        })
    };
    let mut down = {
        let (state, requests, receipts, subs, to_client) = (
            Arc::clone(&state),
            Arc::clone(&pending_requests),
            Arc::clone(&receipt_requests),
            Arc::clone(&pending_subs),
            to_client.clone(),
        );
        tokio::spawn(async move {
            while let Some(Ok(m)) = node_rx.next().await {
                let Message::Text(t) = &m else {
                    let _ = to_client.send(m);
                    continue;
                };
                let Ok(mut v) = serde_json::from_str::<Value>(t.as_str()) else {
                    let _ = to_client.send(m);
                    continue;
                };
                if cut_receipts(&state, &receipts, &mut v) {
                    let _ = to_client.send(Message::text(v.to_string()));
                    continue;
                }
                let answered = {
                    let mut requests = lock(&requests);
                    let at = requests.iter().position(|id| *id == v["id"]);
                    at.map(|at| requests.remove(at)).is_some()
                };
                if answered && let Some(sub) = v["result"].as_str() {
                    lock(&subs).push(sub.to_string());
                }
                let is_pending = v["method"] == "eth_subscription"
                    && v["params"]["subscription"]
                        .as_str()
                        .is_some_and(|s| lock(&subs).iter().any(|p| p == s));
                if is_pending {
                    let delay = {
                        let mut script = lock(&state.script);
                        script.drop_acc += script.drop_ratio;
                        if script.drop_acc >= 1.0 {
                            script.drop_acc -= 1.0;
                            state.dropped.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        script.delay
                    };
                    state.relayed_pending.fetch_add(1, Ordering::SeqCst);
                    if !delay.is_zero() {
                        let to_client = to_client.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = to_client.send(m);
                        });
                        continue;
                    }
                }
                let _ = to_client.send(m);
            }
        })
    };
    let tasks = vec![writer.abort_handle(), up.abort_handle(), down.abort_handle()];
    lock(&state.conns).push(Conn { id, to_client, pending_subs, tasks: tasks.clone() });
    // Either side gone (or `kill`): the whole relay goes, both sockets closed.
    tokio::select! {
        _ = &mut writer => {}
        _ = &mut up => {}
        _ = &mut down => {}
    }
    for t in tasks {
        t.abort();
    }
    lock(&state.conns).retain(|c| c.id != id);
}

/// Cuts the last receipt off answers (single or batched) to the receipt requests of `ids`
/// while `short_receipts` lasts; true when `answer` was changed.
fn cut_receipts(state: &State, ids: &Mutex<Vec<Value>>, answer: &mut Value) -> bool {
    let mut changed = false;
    let answers: Vec<&mut Value> = match answer {
        Value::Array(items) => items.iter_mut().collect(),
        single => vec![single],
    };
    for a in answers {
        let ours = {
            let mut ids = lock(ids);
            let at = ids.iter().position(|id| *id == a["id"]);
            at.map(|at| ids.remove(at)).is_some()
        };
        let Some(list) = a["result"].as_array_mut().filter(|l| !l.is_empty()) else { continue };
        if ours
            && state
                .short_receipts
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            list.pop();
            state.receipts_cut.fetch_add(1, Ordering::SeqCst);
            changed = true;
        }
    }
    changed
}
