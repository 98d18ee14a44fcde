//! The race split into its three shares, for three kinds of attacker: the node's intake (attack
//! sent → its frame reaches the defender), the defender's share (frame in → pause bytes written
//! to the socket) and the node's acceptance (bytes written → the node's answer, the pause then
//! in its pool). Each race deploys a fresh `VaultReentrancyAttack` and attacks `EthVault`:
//! - cold: deployed (and mined) before a fresh defender starts, attacked with no settle time;
//! - steady: deployed after the defender started, mined a block before the attack;
//! - same block: the deploy and the attack pending together.
//!
//! The defender is `preempt run` in-process, or a naive bot (`naive.rs`) raced on the same
//! scenarios and measured the same way. Each race starts from the same chain state.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    network::TxSignerSync,
    primitives::{Address, B256, Bytes, TxKind, U256},
    providers::DynProvider,
    sol,
    sol_types::{SolCall, SolValue},
};
use serde_json::{Value, json};

use super::{
    BenchError,
    naive::NaiveBot,
    race::{BlockOrder, InProcessGuard, hex_u64, pending},
    rpc,
};
use crate::{
    devnet::{Artifact, DevAccount, dev_accounts},
    incident::unix_us_at,
};

sol! {
    function attack() payable;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RaceKind {
    Cold,
    Steady,
    SameBlock,
}

impl RaceKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Cold => "races_cold",
            Self::Steady => "races_steady",
            Self::SameBlock => "races_same_block",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Defender {
    Preempt,
    Naive,
}

/// One kind of race, `runs` times, for one defender.
#[derive(Debug, Default, Clone)]
pub(super) struct KindResult {
    pub(super) runs: usize,
    pub(super) wins: usize,
    /// Attack sent → its frame reached the defender (the node's intake), µs.
    pub(super) intake_us: Vec<f64>,
    /// Frame in → pause bytes written to the socket (the defender's share), µs.
    pub(super) share_us: Vec<f64>,
    /// Pause bytes written → the node's answer (the node's acceptance), µs.
    pub(super) accept_us: Vec<f64>,
    /// Attack sent → the pause seen in the pool (polled), ms.
    pub(super) to_pool_ms: Vec<f64>,
    /// The node's own `debug_traceCall` (prestateTracer) round trip for the same attack, µs.
    pub(super) trace_rtt_us: Vec<f64>,
    /// Rounds the attack's simulation waited for the node (preempt only).
    pub(super) state_waits: Vec<f64>,
    pub(super) failures: Vec<String>,
}

/// What every race needs from the bench.
#[derive(Debug)]
pub(super) struct KindSetup<'a> {
    pub(super) http: &'a DynProvider,
    /// A WebSocket to the node for the bench's own trace round trips (as preempt's transport).
    pub(super) ws: &'a DynProvider,
    pub(super) ws_url: &'a str,
    /// A full config without `[incidents]`.
    pub(super) config_text: &'a str,
    pub(super) dir: &'a Path,
    pub(super) vault: Address,
    pub(super) guardian: &'a DevAccount,
    pub(super) chain_id: u64,
}

/// A running defender, stopped after each race.
enum Running {
    Preempt { guard: InProcessGuard, incidents: std::path::PathBuf },
    Naive(NaiveBot),
}

/// The defender's own measures of one race.
#[derive(Debug, Default)]
struct Shares {
    seen_unix_us: Option<u64>,
    share_us: Option<f64>,
    accept_us: Option<f64>,
    state_waits: Option<f64>,
}

impl Running {
    async fn start(
        setup: &KindSetup<'_>,
        defender: Defender,
        run: usize,
        kind: RaceKind,
    ) -> Result<Self, BenchError> {
        match defender {
            Defender::Naive => Ok(Self::Naive(
                NaiveBot::start(setup.ws_url, vec![setup.vault], setup.guardian, setup.chain_id)
                    .await?,
            )),
            Defender::Preempt => {
                let incidents = setup.dir.join(format!("{}-{run}.jsonl", kind.name()));
                let _ = std::fs::remove_file(&incidents);
                // The probe would pause at the attacker's deployment, before any attack: the
                // race kinds measure the reaction to the attack itself, so it only records.
                let text = format!(
                    "{}\n[incidents]\npath = \"{}\"\n\n[policy.rules]\nprobe = \"record\"\n",
                    setup.config_text,
                    incidents.display()
                );
                let guard = InProcessGuard::start(&text, setup.dir).await?;
                Ok(Self::Preempt { guard, incidents })
            }
        }
    }

    /// Stops the defender and reads its measures for `attack`.
    async fn stop(self, attack: B256) -> Shares {
        match self {
            Self::Naive(bot) => {
                let s = bot.stop().await.into_iter().find(|s| s.attack == attack);
                Shares {
                    seen_unix_us: s.as_ref().map(|s| s.seen_unix_us),
                    share_us: s.as_ref().map(|s| s.share_us),
                    accept_us: s.as_ref().and_then(|s| s.accept_us),
                    state_waits: None,
                }
            }
            Self::Preempt { guard, incidents } => {
                guard.stop().await;
                let text = std::fs::read_to_string(&incidents).unwrap_or_default();
                let record =
                    text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|r| {
                        r["kind"] == "detection"
                            && r["attack_tx"].as_str().and_then(|h| h.parse().ok()) == Some(attack)
                    });
                let Some(r) = record else { return Shares::default() };
                let node = r["submitted"][0]["results"]
                    .as_array()
                    .and_then(|rs| rs.iter().find(|x| x["kind"] == "node").cloned())
                    .unwrap_or_default();
                let accept = match (node["latency_us"].as_f64(), node["written_us"].as_f64()) {
                    (Some(answered), Some(written)) => Some(answered - written),
                    _ => None,
                };
                Shares {
                    seen_unix_us: r["seen_unix_us"].as_u64(),
                    share_us: r["sent_us"].as_f64(),
                    accept_us: accept,
                    state_waits: r["times"]["state_waits"].as_f64(),
                }
            }
        }
    }
}

/// A fresh attacker contract and the attack on it, signed (not sent).
struct AttackPair {
    deploy: Bytes,
    attack: Bytes,
    attack_hash: B256,
}

async fn attack_pair(setup: &KindSetup<'_>) -> Result<AttackPair, BenchError> {
    let attacker = &dev_accounts()[3];
    let nonce: u64 = hex_u64(
        &rpc(setup.http, "eth_getTransactionCount", json!([attacker.address, "pending"])).await?,
    );
    let block = rpc(setup.http, "eth_getBlockByNumber", json!(["latest", false])).await?;
    let base = u128::from(hex_u64(&block["baseFeePerGas"]).max(1));
    let code = Artifact::VaultReentrancyAttack
        .creation_code()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut init = code.to_vec();
    init.extend(setup.vault.abi_encode());
    let contract = attacker.address.create(nonce);
    // The demo attacker's fees: 2 × base fee + 1 gwei, 1 gwei tip.
    let tx = |nonce: u64, to: TxKind, value: U256, input: Bytes, gas_limit: u64| TxEip1559 {
        chain_id: setup.chain_id,
        nonce,
        gas_limit,
        max_fee_per_gas: base * 2 + 1_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to,
        value,
        access_list: Default::default(),
        input,
    };
    let sign = |mut t: TxEip1559| -> Result<(Bytes, B256), BenchError> {
        let sig = attacker
            .signer
            .sign_transaction_sync(&mut t)
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let envelope: TxEnvelope = t.into_signed(sig).into();
        Ok((envelope.encoded_2718().into(), *envelope.tx_hash()))
    };
    let (deploy, _) = sign(tx(nonce, TxKind::Create, U256::ZERO, init.into(), 1_500_000))?;
    let ten_eth = U256::from(10u64) * U256::from(10u64).pow(U256::from(18u64));
    let (attack, attack_hash) = sign(tx(
        nonce + 1,
        TxKind::Call(contract),
        ten_eth,
        attackCall {}.abi_encode().into(),
        2_000_000,
    ))?;
    Ok(AttackPair { deploy, attack, attack_hash })
}

/// `runs` races of `kind` against `defender`.
pub(super) async fn race_kind(
    setup: &KindSetup<'_>,
    kind: RaceKind,
    defender: Defender,
    runs: usize,
) -> Result<KindResult, BenchError> {
    let mut result = KindResult::default();
    for run in 0..runs {
        let snapshot = rpc(setup.http, "evm_snapshot", json!([])).await?;
        let pair = attack_pair(setup).await?;
        let running = match kind {
            RaceKind::Cold => {
                rpc(setup.http, "eth_sendRawTransaction", json!([pair.deploy])).await?;
                rpc(setup.http, "evm_mine", json!([])).await?;
                // No settle time: the attack comes as soon as the defender is ready.
                Running::start(setup, defender, run, kind).await?
            }
            RaceKind::Steady => {
                let running = Running::start(setup, defender, run, kind).await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
                rpc(setup.http, "eth_sendRawTransaction", json!([pair.deploy])).await?;
                rpc(setup.http, "evm_mine", json!([])).await?;
                tokio::time::sleep(Duration::from_millis(150)).await;
                rpc(setup.http, "evm_mine", json!([])).await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
                running
            }
            RaceKind::SameBlock => {
                let running = Running::start(setup, defender, run, kind).await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
                rpc(setup.http, "eth_sendRawTransaction", json!([pair.deploy])).await?;
                running
            }
        };
        let expected = if kind == RaceKind::SameBlock { 3 } else { 2 };

        let sent = Instant::now();
        rpc(setup.http, "eth_sendRawTransaction", json!([pair.attack])).await?;
        let mut in_pool = None;
        while in_pool.is_none() && sent.elapsed() < Duration::from_secs(5) {
            if pending(setup.http).await? >= expected {
                in_pool = Some(sent.elapsed());
            } else {
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
        }
        match in_pool {
            Some(d) => result.to_pool_ms.push(d.as_secs_f64() * 1e3),
            None => result.failures.push(format!("{} run {run}: no pause within 5 s", kind.name())),
        }
        // The node's own round trip for the whole pre-state of this attack (what a cold tx
        // costs at best), on the same kind of connection preempt uses.
        if kind != RaceKind::SameBlock && defender == Defender::Preempt {
            let tx = alloy::eips::Decodable2718::decode_2718(&mut pair.attack.as_ref())
                .ok()
                .and_then(|t: TxEnvelope| {
                    alloy::consensus::transaction::SignerRecoverable::try_into_recovered(t).ok()
                });
            if let Some(tx) = tx {
                let params =
                    json!([crate::fork::call_object(&tx), "latest", {"tracer": "prestateTracer"}]);
                let started = Instant::now();
                if rpc(setup.ws, "debug_traceCall", params).await.is_ok() {
                    result.trace_rtt_us.push(started.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
        rpc(setup.http, "evm_mine", json!([])).await?;
        let won =
            BlockOrder::latest(setup.http, setup.guardian.address, pair.attack_hash).await?.won();
        result.runs += 1;
        if won {
            result.wins += 1;
        } else {
            result.failures.push(format!("{} run {run}: the pause did not go first", kind.name()));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        let shares = running.stop(pair.attack_hash).await;
        if let Some(seen) = shares.seen_unix_us {
            let sent_unix = unix_us_at(sent);
            result.intake_us.push(seen.saturating_sub(sent_unix) as f64);
        }
        result.share_us.extend(shares.share_us);
        result.accept_us.extend(shares.accept_us);
        result.state_waits.extend(shares.state_waits);
        rpc(setup.http, "evm_revert", json!([snapshot])).await?;
        rpc(setup.http, "anvil_dropAllTransactions", json!([])).await?;
    }
    Ok(result)
}
