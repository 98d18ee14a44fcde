//! A cold tx's whole pre-state in one round trip: the node's own `debug_traceCall` with the
//! `prestateTracer` returns every account, code and slot the tx reads. It races the batched
//! fetch of what a speculative run missed; whichever lands first lets the tx run again, and the
//! other still fills the fork when it lands.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use alloy::{
    consensus::{Transaction as _, TxEnvelope},
    primitives::{Address, B256, Bytes, U256},
};
use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{ForkCache, ForkError, NodeClient, NodeError, StateAnswer, StateKey, StateRequest};
use alloy::consensus::transaction::Recovered;

/// Pre-state traces in flight at once (per fork).
const MAX_TRACES_IN_FLIGHT: usize = 4;
/// Of those, how many ingest may start ahead of a worker; the rest stay for the txs the workers
/// find cold, so a burst of cold txs at ingest cannot take every slot.
const MAX_TRACES_AHEAD: usize = 2;
/// Txs remembered as traced (the set starts over past this many): a tx is traced once.
const TRACED_REMEMBERED: usize = 4096;

/// The txs whose pre-state was asked for already. What a tx misses after its trace landed is
/// state the trace did not cover (the pending block differs): a second trace would return the
/// same answer, so the batch fetches it alone.
#[derive(Debug, Default)]
pub(super) struct TracedTxs(std::sync::Mutex<std::collections::HashSet<B256>>);

impl TracedTxs {
    /// Notes `hash` as traced; whether it was new.
    fn note(&self, hash: B256) -> bool {
        let mut traced = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if traced.len() >= TRACED_REMEMBERED {
            traced.clear();
        }
        traced.insert(hash)
    }
}

/// A trace in flight for one tx; resolves to whether it filled the fork.
pub(crate) type TraceInFlight = Shared<BoxFuture<'static, bool>>;

/// How the fetch that released a cold tx went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColdFill {
    /// The node's pre-state trace landed first.
    Prestate,
    /// The batch of the speculative run's misses landed first (or no trace was asked).
    Batch,
}

/// Run as a trace's answer arrives.
pub type Answered = dyn Fn() + Send + Sync;

/// Who hears of a trace started ahead of the workers.
pub struct TraceWatch {
    /// Woken once the trace has filled the fork: the code it holds can decide the tx's lane
    /// before a slower code lookup answers.
    pub landed: Arc<Notify>,
    /// Run as the answer arrives, before it is parsed and stored: the tx will be routed within
    /// moments, and an idle worker can be woken meanwhile.
    pub answered: Option<Box<Answered>>,
}

impl std::fmt::Debug for TraceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWatch").field("answered", &self.answered.is_some()).finish()
    }
}

/// The tx a view is fetching for, so its first miss can ask the node for its whole pre-state.
/// Set for every run; the trace's call object is built only if the run misses (most are warm).
#[derive(Debug, Clone)]
pub struct ColdTx {
    pub hash: B256,
    /// The tx to trace; `None` once its trace was launched.
    tx: Option<Recovered<TxEnvelope>>,
}

impl ColdTx {
    pub fn of(hash: B256, tx: &Recovered<TxEnvelope>) -> Self {
        Self { hash, tx: Some(tx.clone()) }
    }

    /// A later round of a tx whose trace was launched: it waits on that trace, launches none.
    pub fn launched(hash: B256) -> Self {
        Self { hash, tx: None }
    }

    /// This round's part: the tx to trace, if it is still to be launched (it is launched once).
    pub(crate) fn take(&mut self) -> Self {
        Self { hash: self.hash, tx: self.tx.take() }
    }
}

/// The call object `debug_traceCall` takes for a pending tx. Fees are left out: the node would
/// check the sender can pay them at the traced block, and they change no state the tx reads.
pub fn call_object(tx: &Recovered<TxEnvelope>) -> Value {
    let inner = tx.inner();
    let mut call = json!({
        "from": tx.signer(),
        "gas": format!("{:#x}", inner.gas_limit()),
        "value": format!("{:#x}", inner.value()),
        "input": inner.input(),
    });
    if let Some(to) = inner.to() {
        call["to"] = json!(to);
    }
    if let Some(list) = inner.access_list() {
        call["accessList"] = json!(list);
    }
    call
}

/// Parses a `prestateTracer` answer (`{address: {balance, nonce, code, storage}}`; absent
/// fields are zero or empty) into the request it answers and the answer, as a batch fetch would.
/// Accounts and slots the fork holds (`has_account`, `has_slot`) are left out unread: the fork
/// keeps what it holds, and a protected contract's code (kilobytes of hex, then analysed and
/// hashed) is in almost every trace.
pub(crate) fn parse(
    trace: &Value,
    has_account: impl Fn(&Address) -> bool,
    has_slot: impl Fn(&(Address, U256)) -> bool,
) -> Result<(StateRequest, StateAnswer), String> {
    let accounts = trace.as_object().ok_or_else(|| format!("not an object: {}", excerpt(trace)))?;
    let (mut request, mut answer) = (StateRequest::default(), StateAnswer::default());
    for (address, entry) in accounts {
        let address: Address =
            address.parse().map_err(|e| format!("account key `{address}`: {e}"))?;
        if !has_account(&address) {
            let info = account(&address, entry)?;
            request.accounts.push(address);
            answer.accounts.push(info);
        }
        let Some(storage) = entry.get("storage").and_then(Value::as_object) else { continue };
        for (slot, value) in storage {
            let slot: U256 = slot.parse().map_err(|e| format!("{address} slot `{slot}`: {e}"))?;
            if has_slot(&(address, slot)) {
                continue;
            }
            let value: U256 = value
                .as_str()
                .ok_or_else(|| format!("{address} slot {slot:#x}: {value}"))?
                .parse()
                .map_err(|e| format!("{address} slot {slot:#x}: {e}"))?;
            request.slots.push((address, slot));
            answer.slots.push(value);
        }
    }
    Ok((request, answer))
}

/// One account's entry of a `prestateTracer` answer.
fn account(address: &Address, entry: &Value) -> Result<Option<revm::state::AccountInfo>, String> {
    let balance = match entry.get("balance") {
        Some(Value::String(s)) => {
            s.parse::<U256>().map_err(|e| format!("{address} balance `{s}`: {e}"))?
        }
        None | Some(Value::Null) => U256::ZERO,
        Some(other) => return Err(format!("{address} balance {other}")),
    };
    let nonce = match entry.get("nonce") {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("{address} nonce {n}"))?,
        Some(Value::String(s)) => u64::from_str_radix(s.trim_start_matches("0x"), 16)
            .map_err(|e| format!("{address} nonce `{s}`: {e}"))?,
        None | Some(Value::Null) => 0,
        Some(other) => return Err(format!("{address} nonce {other}")),
    };
    let code = match entry.get("code") {
        Some(Value::String(s)) => s.parse::<Bytes>().map_err(|e| format!("{address} code: {e}"))?,
        None | Some(Value::Null) => Bytes::new(),
        Some(other) => return Err(format!("{address} code {}", excerpt(other))),
    };
    Ok(super::node::account_of(balance, nonce, code))
}

fn excerpt(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

impl NodeClient {
    /// The node's `prestateTracer` answer for the tx at `block`, unparsed (see `parse`).
    pub fn prestate(
        &self,
        call: Value,
        block: u64,
    ) -> impl Future<Output = Result<Value, NodeError>> + Send + 'static {
        let provider = self.provider();
        async move {
            use alloy::providers::Provider;
            let params = json!([call, format!("{block:#x}"), {"tracer": "prestateTracer"}]);
            tokio::time::timeout(
                std::time::Duration::from_secs(3),
                provider.raw_request::<_, Value>("debug_traceCall".into(), params),
            )
            .await
            .map_err(|_| NodeError::Timeout(std::time::Duration::from_secs(3)))?
            .map_err(|e| NodeError::Rpc(e.to_string()))
        }
    }
}

/// Whether the nodes answer `debug_traceCall` with the `prestateTracer` (off after a refusal).
#[derive(Debug, Clone, Default)]
pub(crate) struct PrestateSupport(Arc<AtomicBool>);

impl PrestateSupport {
    pub(crate) fn refused(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn refuse(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl ForkCache {
    /// Asks the best node for the tx's pre-state and stores it; whether it did. A node without
    /// the tracer (or the debug namespace) is not asked again. `answered` runs as the node's
    /// answer arrives, before it is parsed and stored.
    async fn fill_from_prestate(&self, call: Value, answered: Option<&Answered>) -> bool {
        let Some(source) = self.source() else { return false };
        let Some(node) = source.nodes(self.block()).into_iter().next() else { return false };
        let (epoch, block) = (self.epoch(), self.block());
        let parsed = node.prestate(call, block).await.and_then(|trace| {
            if let Some(answered) = answered {
                answered();
            }
            parse(&trace, |a| self.accounts.contains_key(a), |k| self.storage.contains_key(k))
                .map_err(|e| NodeError::Rpc(format!("prestate trace: {e}")))
        });
        match parsed {
            Ok((request, answer)) => {
                self.stats.prestate_traces.increment(1);
                self.store_fetched(epoch, &request, &answer);
                true
            }
            Err(e) => {
                let text = e.to_string().to_lowercase();
                if text.contains("not found")
                    || text.contains("not supported")
                    || text.contains("unsupported")
                    || text.contains("does not exist")
                {
                    source.prestate_support().refuse();
                }
                tracing::debug!(node = %node.name, error = %e, "prestate trace failed; the batched fetch stands");
                false
            }
        }
    }

    /// Fetches what a speculative run of `cold` missed, racing the node's pre-state trace of the
    /// whole tx (launched on its first miss; later rounds wait on the same trace while it is in
    /// flight). Returns when the first of them has filled the fork.
    pub async fn fetch_cold(
        self: &Arc<Self>,
        cold: Option<ColdTx>,
        keys: Vec<StateKey>,
    ) -> Result<ColdFill, ForkError> {
        // A trace that has landed already covered what it could: this miss is beyond it.
        let trace = cold.and_then(|c| self.trace_for(c, None)).filter(|t| t.peek().is_none());
        let fork = Arc::clone(self);
        let batch = async move { fork.prefetch_keys(&keys).await };
        let Some(trace) = trace else { return batch.await.map(|()| ColdFill::Batch) };
        // Both run to the end on their own: the one that loses still fills the fork.
        let mut batch = tokio::spawn(batch);
        tokio::select! {
            biased;
            filled = trace => {
                if filled {
                    return Ok(ColdFill::Prestate);
                }
                flatten(batch.await).map(|()| ColdFill::Batch)
            }
            fetched = &mut batch => flatten(fetched).map(|()| ColdFill::Batch),
        }
    }

    /// Starts the node's pre-state trace of a cold tx as it arrives, before a worker has run
    /// it: by the time one does, its state is on the way or here (the worker then waits on this
    /// same trace, not a second one). `watch` hears when the answer arrives and when it has
    /// filled the fork. Only from a runtime thread, and only while few are in flight.
    pub fn trace_ahead(
        self: &Arc<Self>,
        hash: B256,
        tx: &Recovered<TxEnvelope>,
        watch: TraceWatch,
    ) -> bool {
        if tokio::runtime::Handle::try_current().is_err()
            || self.traces.len() >= MAX_TRACES_AHEAD
            || self.traces.contains_key(&hash)
        {
            return false;
        }
        self.trace_for(ColdTx::of(hash, tx), Some(watch)).is_some()
    }

    /// The trace in flight for `cold`, launched now if this is its first round (a tx is traced
    /// once: a miss after its trace landed is fetched by the batch alone).
    fn trace_for(
        self: &Arc<Self>,
        cold: ColdTx,
        watch: Option<TraceWatch>,
    ) -> Option<TraceInFlight> {
        if let Some(t) = self.traces.get(&cold.hash) {
            return Some(t.clone());
        }
        let call = call_object(cold.tx.as_ref()?);
        // A trace costs the node more than a batch of plain reads: under a burst of cold txs
        // only a few race at once, the rest fetch their misses in batches.
        if self.source().is_none_or(|s| s.prestate_support().refused())
            || self.traces.len() >= MAX_TRACES_IN_FLIGHT
            || !self.traced.note(cold.hash)
        {
            return None;
        }
        let fork = Arc::clone(self);
        let hash = cold.hash;
        let task = tokio::spawn(async move {
            let answered = watch.as_ref().and_then(|w| w.answered.as_deref());
            let filled = fork.fill_from_prestate(call, answered).await;
            fork.traces.remove(&hash);
            if let Some(watch) = watch.filter(|_| filled) {
                watch.landed.notify_waiters();
            }
            filled
        });
        let trace: TraceInFlight = async move { task.await.unwrap_or(false) }.boxed().shared();
        self.traces.insert(hash, trace.clone());
        Some(trace)
    }

    /// As `fetch_cold`, waiting on this (non-runtime) thread.
    pub fn fetch_cold_blocking(
        self: &Arc<Self>,
        cold: Option<ColdTx>,
        keys: &[StateKey],
    ) -> Result<ColdFill, ForkError> {
        let Some(source) = self.source().cloned() else { return Ok(ColdFill::Batch) };
        let (fork, keys_owned, block) = (Arc::clone(self), keys.to_vec(), self.block());
        source
            .blocking(async move {
                fork.fetch_cold(cold, keys_owned).await.map_err(|e| NodeError::Rpc(e.to_string()))
            })
            .map_err(|source| ForkError::Fetch {
                what: format!("{} missing state item(s)", keys.len()),
                block,
                source,
            })
    }
}

fn flatten(joined: Result<Result<(), ForkError>, tokio::task::JoinError>) -> Result<(), ForkError> {
    joined.map_err(|e| ForkError::Offline { what: format!("state fetch task: {e}") })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prestate_answer_parses_accounts_code_and_only_the_slots_listed() {
        let trace = json!({
            "0x0000000000000000000000000000000000000000": {"balance": "0x0"},
            "0x5fbdb2315678afecb367f032d93f642f64180aa3": {
                "balance": "0x10", "nonce": 1, "code": "0x6001",
                "storage": {"0x0000000000000000000000000000000000000000000000000000000000000002": "0x05"}
            },
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266": {"balance": "0x21e19e0c9bab2400000", "nonce": 7}
        });
        let (request, answer) = parse(&trace, |_| false, |_| false).expect("parses");
        assert_eq!(request.accounts.len(), 3);
        let at = |a: &str| {
            request
                .accounts
                .iter()
                .position(|x| *x == a.parse::<Address>().expect("a"))
                .expect("listed")
        };
        assert!(
            answer.accounts[at("0x0000000000000000000000000000000000000000")].is_none(),
            "empty: absent"
        );
        let c = answer.accounts[at("0x5fbdb2315678afecb367f032d93f642f64180aa3")]
            .clone()
            .expect("contract");
        assert_eq!((c.balance, c.nonce), (U256::from(16), 1));
        assert_eq!(c.code.expect("code").original_bytes().as_ref(), &[0x60, 0x01]);
        let eoa =
            answer.accounts[at("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266")].clone().expect("eoa");
        assert_eq!(eoa.nonce, 7);
        assert_eq!(
            request.slots,
            vec![("0x5fbdb2315678afecb367f032d93f642f64180aa3".parse().expect("a"), U256::from(2))]
        );
        assert_eq!(answer.slots, vec![U256::from(5)]);
    }

    #[test]
    fn accounts_and_slots_the_fork_holds_are_left_out_unread() {
        let known: Address = "0x5fbdb2315678afecb367f032d93f642f64180aa3".parse().expect("a");
        let fresh: Address = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266".parse().expect("a");
        // The held account's code is not even valid hex: it is never read.
        let trace = json!({
            known.to_string(): {"balance": "0x10", "code": "0xzz", "storage": {
                "0x1": "0x0000000000000000000000000000000000000000000000000000000000000009",
                "0x2": "0x0000000000000000000000000000000000000000000000000000000000000005"
            }},
            fresh.to_string(): {"balance": "0x1", "nonce": 3}
        });
        let (request, answer) =
            parse(&trace, |a| *a == known, |k| *k == (known, U256::from(1))).expect("parses");
        assert_eq!(request.accounts, vec![fresh]);
        assert_eq!(answer.accounts[0].as_ref().map(|a| a.nonce), Some(3));
        assert_eq!(request.slots, vec![(known, U256::from(2))], "its slot not held is read");
        assert_eq!(answer.slots, vec![U256::from(5)]);
    }

    #[test]
    fn malformed_prestate_answers_are_errors_naming_the_field() {
        let bad = json!({"0x5fbdb2315678afecb367f032d93f642f64180aa3": {"balance": "zz"}});
        assert!(parse(&bad, |_| false, |_| false).is_err_and(|e| e.contains("balance")));
        assert!(
            parse(&json!("nope"), |_| false, |_| false).is_err_and(|e| e.contains("not an object"))
        );
        let bad_slot =
            json!({"0x5fbdb2315678afecb367f032d93f642f64180aa3": {"storage": {"0x1": 5}}});
        assert!(parse(&bad_slot, |_| false, |_| false).is_err_and(|e| e.contains("slot")));
    }
}
