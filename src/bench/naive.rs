//! The peer on the reaction path: a naive guard bot, as a newcomer would write one. It
//! subscribes to the node's pending txs, runs the node's `debug_traceCall` with the callTracer
//! on each, and when any frame touches a protected address it signs a pause outbidding the tx
//! and writes it to the node. Its share (frame in → pause bytes written) is measured exactly as
//! preempt's is, on the same kind of connection.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use alloy::{
    consensus::{SignableTransaction, Transaction as _, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    network::TxSignerSync,
    primitives::{Address, B256, Bytes, TxKind, U256},
    providers::{Provider, ProviderBuilder, WsConnect},
    rpc::types::Transaction,
    signers::local::PrivateKeySigner,
};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::BenchError;
use crate::{devnet::DevAccount, incident::unix_us_at, submit::PauseSocket};

/// `pause()`.
const PAUSE: [u8; 4] = [0x84, 0x56, 0xcb, 0x59];

/// One pause the bot sent.
#[derive(Debug, Clone)]
pub(super) struct NaiveSample {
    pub(super) attack: B256,
    pub(super) seen_unix_us: u64,
    /// Frame in → pause bytes written, µs.
    pub(super) share_us: f64,
    /// Bytes written → the node's answer, µs.
    pub(super) accept_us: Option<f64>,
}

#[derive(Debug)]
pub(super) struct NaiveBot {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    samples: Arc<Mutex<Vec<NaiveSample>>>,
}

impl NaiveBot {
    /// Connects, subscribes, and returns once the subscription is live.
    pub(super) async fn start(
        ws_url: &str,
        protected: Vec<Address>,
        guardian: &DevAccount,
        chain_id: u64,
    ) -> Result<Self, BenchError> {
        let node = |e: &dyn std::fmt::Display| BenchError::Node(format!("naive bot: {e}"));
        let provider = ProviderBuilder::new()
            .connect_ws(WsConnect::new(ws_url))
            .await
            .map_err(|e| node(&e))?;
        let socket = PauseSocket::for_url(ws_url)
            .ok_or_else(|| BenchError::Setup(format!("naive bot needs a ws:// node: {ws_url}")))?;
        socket.warm().await.map_err(|e| node(&e))?;
        let nonce = provider.get_transaction_count(guardian.address).await.map_err(|e| node(&e))?;
        let sub = provider
            .subscribe_full_pending_transactions()
            .channel_size(4_096)
            .await
            .map_err(|e| node(&e))?;
        let (cancel, samples) =
            (CancellationToken::new(), Arc::<Mutex<Vec<NaiveSample>>>::default());
        let bot = Bot {
            provider: provider.erased(),
            socket,
            protected,
            signer: guardian.signer.clone(),
            chain_id,
            nonce,
            samples: Arc::clone(&samples),
        };
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let mut stream = sub.into_stream();
            let mut bot = bot;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    next = stream.next() => match next {
                        Some(tx) => bot.on_pending(tx, Instant::now()).await,
                        None => break,
                    },
                }
            }
        });
        Ok(Self { cancel, task, samples })
    }

    /// Stops the bot; the pauses it sent.
    pub(super) async fn stop(self) -> Vec<NaiveSample> {
        self.cancel.cancel();
        let _ = self.task.await;
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

struct Bot {
    provider: alloy::providers::DynProvider,
    socket: PauseSocket,
    protected: Vec<Address>,
    signer: PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    samples: Arc<Mutex<Vec<NaiveSample>>>,
}

impl Bot {
    /// Traces the tx at the node, and pauses if it touches a protected address.
    async fn on_pending(&mut self, tx: Transaction, seen: Instant) {
        let envelope: &TxEnvelope = tx.inner.inner();
        if tx.inner.signer() == self.signer.address() {
            return;
        }
        let mut call = json!({
            "from": tx.inner.signer(),
            "gas": format!("{:#x}", envelope.gas_limit()),
            "value": format!("{:#x}", envelope.value()),
            "input": envelope.input(),
        });
        if let Some(to) = envelope.to() {
            call["to"] = json!(to);
        }
        let params = json!([call, "latest", {"tracer": "callTracer"}]);
        let Ok(trace) =
            self.provider.raw_request::<_, Value>("debug_traceCall".into(), params).await
        else {
            return;
        };
        let Some(contract) = touched(&trace, &self.protected) else { return };
        // Outbid on both fields: twice the attack's.
        let max_fee = envelope.max_fee_per_gas().saturating_mul(2);
        let tip = envelope.max_priority_fee_per_gas().unwrap_or(max_fee / 2).saturating_mul(2);
        let mut pause = TxEip1559 {
            chain_id: self.chain_id,
            nonce: self.nonce,
            gas_limit: 100_000,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip.min(max_fee),
            to: TxKind::Call(contract),
            value: U256::ZERO,
            access_list: Default::default(),
            input: Bytes::from_static(&PAUSE),
        };
        let Ok(sig) = self.signer.sign_transaction_sync(&mut pause) else { return };
        let raw: Bytes = TxEnvelope::from(pause.into_signed(sig)).encoded_2718().into();
        let Ok(written) = self.socket.write("eth_sendRawTransaction", json!([raw])).await else {
            return;
        };
        let written_at = written.at;
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(2), written.answer()).await;
        let answered_at = Instant::now();
        let accept_us = matches!(answer, Ok(Ok(_)))
            .then(|| answered_at.duration_since(written_at).as_secs_f64() * 1e6);
        self.nonce += 1;
        let sample = NaiveSample {
            attack: *tx.inner.tx_hash(),
            seen_unix_us: unix_us_at(seen),
            share_us: written_at.duration_since(seen).as_secs_f64() * 1e6,
            accept_us,
        };
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
    }
}

/// The first protected address any frame of a callTracer trace calls or runs as.
fn touched(frame: &Value, protected: &[Address]) -> Option<Address> {
    for key in ["to", "from"] {
        if let Some(a) = frame[key].as_str().and_then(|a| a.parse::<Address>().ok())
            && protected.contains(&a)
        {
            return Some(a);
        }
    }
    frame["calls"].as_array()?.iter().find_map(|c| touched(c, protected))
}
