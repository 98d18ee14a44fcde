//! One node connection: a feed socket carrying the heads and pending-tx subscriptions (read
//! frame by frame here, bad frames skipped and counted), a request socket for fetches, pool
//! reconciliation and code lookups, and a session that ends visibly on any transport error:
//! logged, counted as a reconnect, reconnected with backoff, the pool re-synced.

use std::{
    borrow::Cow,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use alloy::primitives::B256;
use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;
use tokio::{
    sync::{Notify, mpsc},
    task::{JoinHandle, JoinSet},
};
use tokio_util::sync::CancellationToken;

use super::{
    TxRouter,
    classify::{ClassifyJob, classifier},
    conn::{self, Incoming, TransportError, Writer},
    reconcile::{FetchJob, Origin, fetcher, reconcile},
    router::Admission,
    rpc::{RpcClient, RpcError},
    stats::{NodeIngestStats, unix_ms},
    verify::{Decoded, Forgery, VerifyError, on_claim, pending_tx, runs_on_claim},
};
use crate::{
    config::NodeConfig,
    types::{NewHead, PendingTx},
};

/// Txs known by hash waiting to be fetched, per session.
const FETCH_QUEUE: usize = 65_536;
/// Txs waiting for code, per session.
const CLASSIFY_QUEUE: usize = 16_384;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A session that lasted this long starts the backoff over.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Feed frames above this end the session (a pending tx body is at most ~128 KiB on mainnet).
pub const FEED_MAX_MESSAGE: usize = 8 << 20;
/// Answers above this end the session (`txpool_content` of a full mainnet pool is tens of MiB).
pub const RPC_MAX_MESSAGE: usize = 256 << 20;
/// WebSocket keep-alive: a ping this often; no frame at all for `SILENT_AFTER` ends the session.
const PING_EVERY: Duration = Duration::from_secs(5);
const SILENT_AFTER: Duration = Duration::from_secs(16);
const PING_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The feed reader lets other tasks run after this many frames in a row.
const YIELD_EVERY_FRAMES: u64 = 16;
/// `NodeEvent::Forged` at most this often per node (the first one at once).
const FORGED_EVENT_EVERY_MS: u64 = 1_000;

/// What a node task reports besides txs.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// Subscribed (after a start or a reconnect).
    Up {
        node: Arc<str>,
    },
    Down {
        node: Arc<str>,
        reason: String,
    },
    Head(NewHead),
    /// The node sent a body that lies about its hash or sender, is badly signed or is for
    /// another chain; `total` so far. Its state answers should not be trusted.
    Forged {
        node: Arc<str>,
        total: u64,
    },
}

/// Why a session ended (other than shutdown).
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("connect {what}: {source}")]
    Connect { what: &'static str, source: TransportError },
    #[error("feed: {0}")]
    Feed(TransportError),
    #[error("node closed the feed connection")]
    FeedClosed,
    #[error("request connection: {0}")]
    RpcConnection(String),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("subscribe {what}: {reason}")]
    Subscribe { what: &'static str, reason: String },
    #[error("no frame for {0:?} (pings unanswered)")]
    Silent(Duration),
}

enum End {
    Shutdown,
    Lost(SessionError),
}

/// Runs a node connection until `cancel` fires; the task ends promptly after it, whatever the
/// node does (every wait is raced against `cancel`).
pub fn spawn_node<T: Send + Sync + 'static>(
    node: NodeConfig,
    router: Arc<TxRouter<T>>,
    events: mpsc::UnboundedSender<NodeEvent>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let name: Arc<str> = node.name.clone().into();
        let stats = router.stats().node(&name);
        if !conn::is_subscribable(&node.url) {
            let reason = TransportError::Unsupported { url: node.url.clone() }.to_string();
            tracing::warn!(node = %name, %reason, "node not used for pending txs or heads");
            let _ = events.send(NodeEvent::Down { node: Arc::clone(&name), reason });
            return cancel.cancelled().await;
        }
        let mut backoff = FIRST_BACKOFF;
        // For the log line; the metrics count the same.
        let (mut reconnects, mut connect_failures) = (0u64, 0u64);
        loop {
            let started = Instant::now();
            let intake = Intake {
                name: Arc::clone(&name),
                router: Arc::clone(&router),
                stats: Arc::clone(&stats),
                events: events.clone(),
                classify: None,
            };
            let ended = session(&node, intake, &cancel).await;
            stats.connected.set(0.0);
            let error = match ended {
                End::Shutdown => return,
                End::Lost(e) => e,
            };
            if cancel.is_cancelled() {
                return;
            }
            // A lost session is a reconnect; a failed attempt to open one is not.
            if matches!(error, SessionError::Connect { .. }) {
                stats.connect_failures.increment(1);
                connect_failures += 1;
            } else {
                stats.reconnects.increment(1);
                reconnects += 1;
            }
            if started.elapsed() > STABLE_AFTER {
                backoff = FIRST_BACKOFF;
            }
            tracing::warn!(
                node = %name,
                error = %error,
                reconnects,
                connect_failures,
                retry_in_ms = backoff.as_millis() as u64,
                "node session ended; reconnecting, then re-syncing the pool"
            );
            let _ =
                events.send(NodeEvent::Down { node: Arc::clone(&name), reason: error.to_string() });
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// `f`, unless `cancel` fires first.
pub(super) async fn or_cancel<F: Future>(cancel: &CancellationToken, f: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        v = f => Some(v),
    }
}

async fn connect(
    url: &str,
    max_message: usize,
    what: &'static str,
    cancel: &CancellationToken,
) -> Result<Option<(Writer, conn::Reader)>, SessionError> {
    match or_cancel(cancel, tokio::time::timeout(CONNECT_TIMEOUT, conn::connect(url, max_message)))
        .await
    {
        None => Ok(None),
        Some(Ok(Ok(c))) => Ok(Some(c)),
        Some(Ok(Err(source))) => Err(SessionError::Connect { what, source }),
        Some(Err(_)) => {
            Err(SessionError::Connect { what, source: TransportError::Timeout(CONNECT_TIMEOUT) })
        }
    }
}

/// A JSON-RPC message on the feed: a subscription notification or an answer to a subscribe.
#[derive(Deserialize)]
struct FeedMessage<'a> {
    id: Option<u64>,
    #[serde(borrow)]
    params: Option<Notification<'a>>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Notification<'a> {
    #[serde(borrow)]
    subscription: Cow<'a, str>,
    #[serde(borrow)]
    result: &'a RawValue,
}

#[derive(Deserialize)]
struct HeadFrame {
    #[serde(with = "alloy::serde::quantity")]
    number: u64,
    hash: B256,
}

const SUB_HEADS: u64 = 1;
const SUB_PENDING_FULL: u64 = 2;
const SUB_PENDING_HASHES: u64 = 3;

fn subscribe_request(id: u64, params: &[serde_json::Value]) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "eth_subscribe", "params": params})
        .to_string()
}

async fn session<T: Send + Sync + 'static>(
    node: &NodeConfig,
    mut intake: Intake<T>,
    cancel: &CancellationToken,
) -> End {
    let session_cancel = cancel.child_token();
    // Every task of the session ends with it, however it ends.
    let _stop_children = session_cancel.clone().drop_guard();
    let mut tasks = JoinSet::new();

    // Requests on connections of their own, apart from the feed and from each other: a pool
    // listing of many MiB never holds a code lookup or a tx fetch behind it.
    let mut rpcs = Vec::new();
    for what in ["tx fetch connection", "pool connection", "code lookup connection"] {
        if rpcs.len() == 1 && !node.pending {
            break;
        }
        match connect(&node.url, RPC_MAX_MESSAGE, what, cancel).await {
            Ok(Some((w, r))) => rpcs.push(RpcClient::start(
                w,
                r,
                Arc::clone(&intake.stats),
                &session_cancel,
                &mut tasks,
            )),
            Ok(None) => return End::Shutdown,
            Err(e) => return End::Lost(e),
        }
    }
    let rpc = rpcs[0].clone();
    let (mut feed_writer, mut feed_reader) =
        match connect(&node.url, FEED_MAX_MESSAGE, "feed", cancel).await {
            Ok(Some(c)) => c,
            Ok(None) => return End::Shutdown,
            Err(e) => return End::Lost(e),
        };

    let mut requests = vec![subscribe_request(SUB_HEADS, &["newHeads".into()])];
    if node.pending {
        // Full bodies where the node offers them; hashes (fetched) where it does not.
        requests.push(subscribe_request(
            SUB_PENDING_FULL,
            &["newPendingTransactions".into(), true.into()],
        ));
    }
    for r in requests {
        match or_cancel(cancel, feed_writer.send(r)).await {
            None => return End::Shutdown,
            Some(Err(e)) => return End::Lost(SessionError::Feed(e)),
            Some(Ok(())) => {}
        }
    }

    // The session's helpers, each its own task so the feed reader never waits on them.
    let (lost_tx, mut lost_rx) = mpsc::channel::<SessionError>(1);
    let head_seen = Arc::new(Notify::new());
    let (fetch_tx, fetch_rx) = mpsc::channel::<FetchJob>(FETCH_QUEUE);
    if node.pending {
        let (classify_tx, classify_rx) = mpsc::channel::<ClassifyJob>(CLASSIFY_QUEUE);
        intake.classify = Some(classify_tx);
        tasks.spawn(classifier(
            Arc::clone(&intake.router),
            rpcs[2].clone(),
            Arc::clone(&intake.stats),
            classify_rx,
            session_cancel.clone(),
        ));
        tasks.spawn(fetcher(intake.clone(), rpc.clone(), fetch_rx, session_cancel.clone()));
        tasks.spawn(reconcile(
            intake.clone(),
            rpcs[1].clone(),
            fetch_tx.clone(),
            Arc::clone(&head_seen),
            lost_tx,
            session_cancel.clone(),
        ));
    }
    {
        // The head now, so the guard does not wait for the next block after a reconnect.
        let (rpc, intake) = (rpc.clone(), intake.clone());
        tasks.spawn(async move {
            let latest = rpc
                .call::<Option<HeadFrame>>(
                    "eth_getBlockByNumber",
                    ("latest", false),
                    CONNECT_TIMEOUT,
                )
                .await;
            if let Ok(Some(head)) = latest {
                intake.head(head);
            }
        });
    }

    let mut feed = Feed {
        intake,
        fetch: fetch_tx,
        head_seen,
        heads_sub: None,
        pending_sub: None,
        wants_pending: node.pending,
        up: false,
        warned_bad_frame: false,
        bad_frames: 0,
        to_send: Vec::new(),
    };
    // Resolves when any request connection is gone.
    let any_rpc_dead =
        futures::future::select_all(rpcs.iter().map(|r| Box::pin(r.dead().cancelled())));
    tokio::pin!(any_rpc_dead);
    let subscribe_deadline = tokio::time::sleep(SUBSCRIBE_TIMEOUT);
    tokio::pin!(subscribe_deadline);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let pings = matches!(feed_writer, Writer::Ws(_));
    let mut last_frame = Instant::now();
    let mut frames = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return End::Shutdown,
            (_, dead, _) = &mut any_rpc_dead => {
                return End::Lost(SessionError::RpcConnection(rpcs[dead].end_reason()));
            }
            Some(e) = lost_rx.recv() => return End::Lost(e),
            frame = feed_reader.next() => {
                let seen_at = Instant::now();
                last_frame = seen_at;
                match frame {
                    Err(e) => return End::Lost(SessionError::Feed(e)),
                    Ok(None) => return End::Lost(SessionError::FeedClosed),
                    Ok(Some(Incoming::Control)) => {}
                    Ok(Some(Incoming::NotText(len))) => feed.bad_frame(&format!("{len} bytes not text")),
                    Ok(Some(Incoming::Text(text))) => {
                        if let Err(e) = feed.on_text(text.as_str(), seen_at) {
                            return End::Lost(e);
                        }
                        // Frames already buffered are read without the runtime ever taking the
                        // thread back; the tasks this one woke (a classify step, a fetch)
                        // would wait for the whole burst.
                        frames += 1;
                        if frames.is_multiple_of(YIELD_EVERY_FRAMES) {
                            tokio::task::yield_now().await;
                        }
                        for request in std::mem::take(&mut feed.to_send) {
                            match or_cancel(cancel, feed_writer.send(request)).await {
                                None => return End::Shutdown,
                                Some(Err(e)) => return End::Lost(SessionError::Feed(e)),
                                Some(Ok(())) => {}
                            }
                        }
                        if feed.subscribed() && !feed.up {
                            feed.up = true;
                            feed.intake.stats.connected.set(1.0);
                            let _ = feed.intake.events.send(NodeEvent::Up { node: Arc::clone(&feed.intake.name) });
                        }
                    }
                }
            }
            _ = &mut subscribe_deadline, if !feed.up => {
                return End::Lost(SessionError::Subscribe {
                    what: "heads and pending txs",
                    reason: format!("no answer within {SUBSCRIBE_TIMEOUT:?}"),
                });
            }
            _ = ping.tick(), if pings => {
                if last_frame.elapsed() > SILENT_AFTER {
                    return End::Lost(SessionError::Silent(last_frame.elapsed()));
                }
                match or_cancel(cancel, tokio::time::timeout(PING_WRITE_TIMEOUT, feed_writer.ping())).await {
                    None => return End::Shutdown,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => return End::Lost(SessionError::Feed(e)),
                    Some(Err(_)) => return End::Lost(SessionError::Feed(TransportError::Timeout(PING_WRITE_TIMEOUT))),
                }
            }
        }
    }
}

/// The feed's reader state.
struct Feed<T> {
    intake: Intake<T>,
    fetch: mpsc::Sender<FetchJob>,
    head_seen: Arc<Notify>,
    heads_sub: Option<String>,
    pending_sub: Option<String>,
    wants_pending: bool,
    up: bool,
    warned_bad_frame: bool,
    /// This session's bad frames, for the log (the metric counts every session's).
    bad_frames: u64,
    /// Requests to write on the feed (a fallback subscribe).
    to_send: Vec<String>,
}

impl<T: Send + Sync + 'static> Feed<T> {
    fn subscribed(&self) -> bool {
        self.heads_sub.is_some() && (self.pending_sub.is_some() || !self.wants_pending)
    }

    fn bad_frame(&mut self, what: &str) {
        self.intake.stats.bad_frames.increment(1);
        self.bad_frames += 1;
        let total = self.bad_frames;
        if !self.warned_bad_frame {
            self.warned_bad_frame = true;
            tracing::warn!(node = %self.intake.name, bad_frames = total, frame = what, "bad frame from node skipped");
        } else {
            tracing::debug!(node = %self.intake.name, bad_frames = total, frame = what, "bad frame skipped");
        }
    }

    /// One text frame. An error only for a refused subscription (the session cannot work).
    fn on_text(&mut self, text: &str, seen_at: Instant) -> Result<(), SessionError> {
        let Ok(message) = serde_json::from_str::<FeedMessage<'_>>(text) else {
            self.bad_frame("not a JSON-RPC message");
            return Ok(());
        };
        if let Some(n) = message.params {
            if self.pending_sub.as_deref() == Some(&*n.subscription) {
                self.on_pending(n.result, seen_at);
            } else if self.heads_sub.as_deref() == Some(&*n.subscription) {
                match serde_json::from_str::<HeadFrame>(n.result.get()) {
                    Ok(head) => {
                        self.intake.head(head);
                        self.head_seen.notify_one();
                    }
                    Err(_) => self.bad_frame("head of the wrong shape"),
                }
            } else {
                self.bad_frame("notification for no subscription of ours");
            }
            return Ok(());
        }
        let id = match message.id {
            Some(id @ (SUB_HEADS | SUB_PENDING_FULL | SUB_PENDING_HASHES)) => id,
            _ => {
                self.bad_frame("neither a notification nor an answer to a subscribe");
                return Ok(());
            }
        };
        let sub_id = message.result.and_then(|r| serde_json::from_str::<String>(r.get()).ok());
        match (id, sub_id) {
            (SUB_HEADS, Some(s)) => self.heads_sub = Some(s),
            (SUB_PENDING_FULL | SUB_PENDING_HASHES, Some(s)) => self.pending_sub = Some(s),
            (SUB_PENDING_FULL, None) => {
                // No full bodies here: hashes, each fetched and verified.
                tracing::info!(
                    node = %self.intake.name,
                    refused = %describe(&message.error),
                    "node offers pending tx hashes only; bodies are fetched"
                );
                self.to_send.push(subscribe_request(
                    SUB_PENDING_HASHES,
                    &["newPendingTransactions".into()],
                ));
            }
            (id, None) => {
                return Err(SessionError::Subscribe {
                    what: if id == SUB_HEADS { "newHeads" } else { "newPendingTransactions" },
                    reason: describe(&message.error),
                });
            }
            _ => self.bad_frame("answer to no request of ours"),
        }
        Ok(())
    }

    fn on_pending(&mut self, body: &RawValue, seen_at: Instant) {
        let stats = &self.intake.stats;
        stats.received.increment(1);
        let text = body.get();
        if text.starts_with('"') {
            match serde_json::from_str::<B256>(text) {
                Ok(hash) if self.intake.router.seen().contains(&hash) => self.intake.duplicate(),
                Ok(hash) => {
                    let job = FetchJob { hash, seen_at, origin: Origin::Subscription };
                    // Full: a node flooding hashes; what is real comes back by reconciliation.
                    if self.fetch.try_send(job).is_err() {
                        stats.fetch_failures.increment(1);
                    }
                }
                Err(_) => self.bad_frame("pending tx hash of the wrong shape"),
            }
            return;
        }
        let decoding = self.intake.router.decoding();
        let routed = self.intake.body(text, seen_at, Origin::Subscription, None);
        drop(decoding);
        if let Err(Some(what)) = routed {
            self.bad_frame(what);
        }
    }
}

fn describe(error: &Option<serde_json::Value>) -> String {
    error.as_ref().map(|e| e.to_string()).unwrap_or_else(|| "no subscription id".into())
}

/// Takes bodies from any path of one node (feed, fetch, reconciliation) through verification
/// and the router, counting per node. Cheap to clone.
pub(super) struct Intake<T> {
    pub(super) name: Arc<str>,
    pub(super) router: Arc<TxRouter<T>>,
    pub(super) stats: Arc<NodeIngestStats>,
    events: mpsc::UnboundedSender<NodeEvent>,
    classify: Option<mpsc::Sender<ClassifyJob>>,
}

impl<T> Clone for Intake<T> {
    fn clone(&self) -> Self {
        Self {
            name: Arc::clone(&self.name),
            router: Arc::clone(&self.router),
            stats: Arc::clone(&self.stats),
            events: self.events.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> Intake<T> {
    fn head(&self, head: HeadFrame) {
        self.stats.note_head(head.number);
        self.router.maintain();
        let _ = self.events.send(NodeEvent::Head(NewHead {
            number: head.number,
            hash: head.hash,
            source: Arc::clone(&self.name),
        }));
    }

    pub(super) fn duplicate(&self) {
        self.stats.duplicates.increment(1);
        let totals = self.router.stats();
        totals.received.increment(1);
        totals.duplicates.increment(1);
    }

    /// A body as JSON text: verified, deduped on its computed hash, routed. `asked`: the hash
    /// it was fetched by. `Err(Some(_))`: not a tx body (a bad frame, for the feed to count).
    pub(super) fn body(
        &self,
        text: &str,
        seen_at: Instant,
        origin: Origin,
        asked: Option<B256>,
    ) -> Result<(), Option<&'static str>> {
        let decoded = match self.router.verifier().decode(text) {
            Ok(d) => d,
            Err(VerifyError::Malformed(_)) => {
                return Err(Some("pending tx body of the wrong shape"));
            }
            Err(VerifyError::Forged(f)) => {
                self.forged(f);
                return Err(None);
            }
        };
        if let Some(asked) = asked
            && asked != decoded.hash
        {
            self.forged(Forgery::Substituted { asked, got: decoded.hash });
            return Err(None);
        }
        self.decoded(decoded, seen_at, origin);
        Ok(())
    }

    fn decoded(&self, decoded: Decoded, seen_at: Instant, origin: Origin) {
        let (hash, claimed) = (decoded.hash, decoded.claimed_from);
        match self.router.seen().claim_of(&hash) {
            // Seen and recovered: the same signed bytes, so only the claimed sender is left to
            // compare (recovery is the costly part, and a duplicate needs none).
            Some((signer, true)) => {
                if signer != claimed {
                    return self.forged(Forgery::Sender { hash, claimed, recovered: signer });
                }
                self.stats.verified.increment(1);
                self.duplicate()
            }
            // Seen on the same claim, still being checked: its check speaks for this copy too.
            Some((signer, false)) if signer == claimed => self.duplicate(),
            // Seen on another claim, not checked yet: one of the two lies, and this copy's own
            // recovery says which. If this one is honest it is taken in place of the other,
            // whose check then finds it forged.
            Some((_, false)) => self.admit_recovered(decoded, seen_at, origin, true),
            None if runs_on_claim(&decoded.envelope) => {
                self.admit_on_claim(decoded, seen_at, origin)
            }
            None => self.admit_recovered(decoded, seen_at, origin, false),
        }
    }

    /// Recovers the signer now, then admits the tx; `replacing`: it is taken in place of an
    /// unchecked claim of another sender, whose seen entry is forgotten first.
    fn admit_recovered(&self, decoded: Decoded, seen_at: Instant, origin: Origin, replacing: bool) {
        let hash = decoded.hash;
        match self.router.verifier().recover(decoded) {
            Ok(tx) => {
                self.stats.verified.increment(1);
                if replacing {
                    self.router.seen().forget(&hash);
                }
                self.admit(pending_tx(tx, &self.name, seen_at), origin);
            }
            Err(f) => self.forged(f),
        }
    }

    /// Queues a plain call on its claimed sender and recovers the signer after: a worker
    /// simulates it meanwhile, and acts on the sender only once the check is settled.
    fn admit_on_claim(&self, decoded: Decoded, seen_at: Instant, origin: Origin) {
        let (hash, claimed) = (decoded.hash, decoded.claimed_from);
        let (tx, check) = on_claim(decoded, &self.name, seen_at);
        self.admit(tx, origin);
        match check.settle() {
            Ok(_) => {
                self.router.seen().confirm(&hash, claimed);
                self.stats.verified.increment(1);
            }
            Err(f) => {
                // An honest copy (another node's, the next re-sync's) is taken when it comes.
                self.router.seen().forget_claim(&hash, claimed);
                self.forged(f);
            }
        }
    }

    fn admit(&self, tx: PendingTx, origin: Origin) {
        let admitted = self.router.admit(tx);
        match admitted {
            Admission::Duplicate => return self.stats.duplicates.increment(1),
            Admission::Skipped => self.stats.filtered.increment(1),
            Admission::Deferred => self.stats.dropped.increment(1),
            _ => {}
        }
        match origin {
            Origin::Subscription => &self.stats.from_subscription,
            Origin::Reconcile => &self.stats.recovered,
        }
        .increment(1);
        if let Admission::NeedsCode(tx, need) = admitted {
            // `need` is found again by the classifier's own rank, as code lands.
            drop(need);
            let job = ClassifyJob::new(*tx, self.router.seen_set());
            match &self.classify {
                Some(classify) => {
                    // Full (a flood of calls to unknown code) or gone: on as `Other`.
                    if let Err(
                        mpsc::error::TrySendError::Full(job)
                        | mpsc::error::TrySendError::Closed(job),
                    ) = classify.try_send(job)
                    {
                        job.dispatch(&self.router, super::Lane::Other);
                    }
                }
                None => job.dispatch(&self.router, super::Lane::Other),
            }
        }
    }

    fn forged(&self, forgery: Forgery) {
        self.stats.forged.increment(1);
        let total = self.stats.forged_seen.fetch_add(1, Ordering::Relaxed) + 1;
        if total == 1 {
            tracing::warn!(
                node = %self.name,
                forged = total,
                error = %forgery,
                "node sent a forged pending tx; dropped (later ones are counted, not logged)"
            );
        } else {
            tracing::debug!(node = %self.name, forged = total, error = %forgery, "forged pending tx dropped");
        }
        let now = unix_ms();
        let last = self.stats.last_forged_event_ms.load(Ordering::Relaxed);
        if (total == 1 || now.saturating_sub(last) >= FORGED_EVENT_EVERY_MS)
            && self
                .stats
                .last_forged_event_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let _ = self.events.send(NodeEvent::Forged { node: Arc::clone(&self.name), total });
        }
    }
}
