//! A scenario's hold on its node: queue and mine set-up txs, send the txs under test as pending
//! (with `preempt run` watching in the guarded mode), read state, and record what happened —
//! every block mined while the txs under test were pending, and what each of them did.

use std::{path::PathBuf, time::Duration};

use alloy::{
    consensus::{TxEip1559, TypedTransaction},
    eips::BlockNumberOrTag,
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, TxKind, U256},
    providers::{Provider, ext::AnvilApi},
    rpc::types::TransactionRequest,
    signers::SignerSync,
    sol_types::SolCall,
};
use serde_json::Value;
use tokio::time::Instant;

use super::{
    Actor, Book, CorpusError,
    abi::{IERC20, IRoleTreasury, ISmartWallet},
    artifacts::CorpusArtifact,
    config::plain_config,
    guard::{GuardProcess, Processed},
    rpc_err,
};
use crate::devnet::{
    DevnetError,
    node::{DevNode, SentStep},
};

/// Priority fee of a normal corpus tx, and of an urgent one (a whale leaving in a hurry).
const TIP_WEI: u128 = 1_000_000_000;
const URGENT_TIP_WEI: u128 = 30_000_000_000;
/// Gas of a set-up call that does not say (set-up txs are not estimated: a batch may depend on
/// txs of the same batch not yet mined).
const SETUP_CALL_GAS: u64 = 1_000_000;
/// Seconds between the blocks of txs under test.
const BLOCK_SECS: u64 = 12;
/// Set-up txs sent before each mine.
const SETUP_CHUNK: usize = 24;
/// Gas of a tx under test whose estimate failed (it reverts, or depends on a tx of its block).
const FALLBACK_GAS: u64 = 3_000_000;
/// How long preempt may take to log a pending tx as simulated (a debug build, cold state).
const SIMULATED_WITHIN: Duration = Duration::from_secs(10);
/// After a simulation with findings, how long a pause may take to reach the pool.
const PAUSE_WITHIN: Duration = Duration::from_secs(3);
/// How long preempt may take to take in a mined block.
const HEAD_WITHIN: Duration = Duration::from_secs(10);
/// How long `preempt run` may take to log `ready`.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Whether preempt watches.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// No preempt: the corpus's own test (each scenario does what it claims).
    Bare,
    /// `preempt run` is started before the first block of txs under test.
    Guarded(GuardSettings),
}

#[derive(Debug, Clone)]
pub(crate) struct GuardSettings {
    pub(crate) bin: PathBuf,
    /// Where the scenario's config, log and incidents go.
    pub(crate) dir: PathBuf,
    pub(crate) protect: Vec<&'static str>,
}

/// What a tx under test is, for the judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxRole {
    Honest,
    /// The exploit itself: it must be paused ahead of.
    Attack,
    /// An attacker's preparation (a deployment, an approval): pausing on it is welcome.
    Prep,
}

/// A tx before nonce, fees and signature.
#[derive(Debug, Clone)]
pub(crate) struct Tx {
    pub(crate) label: String,
    pub(crate) from: Actor,
    pub(crate) to: TxKind,
    pub(crate) value: U256,
    pub(crate) input: Bytes,
    pub(crate) gas: Option<u64>,
    pub(crate) urgent: bool,
    pub(crate) role: TxRole,
}

impl Tx {
    pub(crate) fn call<C: SolCall>(from: Actor, to: Address, call: C) -> Self {
        let name = C::SIGNATURE.split('(').next().unwrap_or(C::SIGNATURE);
        Self {
            label: format!("{}: {name}", from.name()),
            from,
            to: TxKind::Call(to),
            value: U256::ZERO,
            input: call.abi_encode().into(),
            gas: None,
            urgent: false,
            role: TxRole::Honest,
        }
    }

    pub(crate) fn transfer(from: Actor, to: Address, value: U256) -> Self {
        Self {
            label: format!("{}: send ETH", from.name()),
            from,
            to: TxKind::Call(to),
            value,
            input: Bytes::new(),
            gas: Some(100_000),
            urgent: false,
            role: TxRole::Honest,
        }
    }

    pub(crate) fn create(
        from: Actor,
        artifact: CorpusArtifact,
        code: Bytes,
        args: Vec<u8>,
    ) -> Self {
        let mut input = code.to_vec();
        input.extend_from_slice(&args);
        // Code deposit is 200 gas a byte, calldata up to 16; the rest covers constructors.
        let gas = 300_000 + 250 * input.len() as u64;
        Self {
            label: format!("{}: deploy {}", from.name(), artifact.file_name()),
            from,
            to: TxKind::Create,
            value: U256::ZERO,
            input: input.into(),
            gas: Some(gas),
            urgent: false,
            role: TxRole::Honest,
        }
    }

    pub(crate) fn value(mut self, value: U256) -> Self {
        self.value = value;
        self
    }

    pub(crate) fn gas(mut self, gas: u64) -> Self {
        self.gas = Some(gas);
        self
    }

    pub(crate) fn urgent(mut self) -> Self {
        self.urgent = true;
        self
    }

    pub(crate) fn attack(mut self) -> Self {
        self.role = TxRole::Attack;
        self
    }

    pub(crate) fn prep(mut self) -> Self {
        self.role = TxRole::Prep;
        self
    }

    pub(crate) fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
}

#[derive(Debug)]
struct Queued {
    tx: Tx,
    nonce: u64,
}

/// A tx under test and what became of it.
#[derive(Debug, Clone)]
pub(crate) struct SentTx {
    pub(crate) label: String,
    pub(crate) hash: B256,
    pub(crate) role: TxRole,
    pub(crate) block: Option<u64>,
    pub(crate) index: Option<usize>,
    pub(crate) success: Option<bool>,
    /// What preempt logged about it before the block was mined (guarded mode).
    pub(crate) processed: Option<Processed>,
}

#[derive(Debug, Clone)]
pub(crate) struct MinedTx {
    pub(crate) hash: B256,
    pub(crate) from: Address,
    /// `None` for a contract creation.
    pub(crate) to: Option<Address>,
    pub(crate) success: bool,
}

/// A block mined while the txs under test were pending.
#[derive(Debug, Clone)]
pub(crate) struct MinedBlock {
    pub(crate) number: u64,
    pub(crate) txs: Vec<MinedTx>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asset {
    Eth,
    Token(Address),
}

/// A state check evaluated after the scenario (bare mode).
#[derive(Debug, Clone)]
pub(crate) enum Check {
    HasRole {
        contract: Address,
        role: B256,
        account: Address,
    },
    Implementation {
        proxy: Address,
        implementation: Address,
    },
    /// The smart wallet's hook ran (it counts the views it read).
    HookRan {
        wallet: Address,
    },
}

/// What a scenario claims to do, checked in bare mode.
#[derive(Debug, Clone)]
enum Expect {
    Gain { what: String, who: Address, asset: Asset, min: U256, before: U256 },
    Loss { what: String, who: Address, asset: Asset, min: U256, before: U256 },
    Same { what: String, who: Address, asset: Asset, before: U256 },
    Check { what: String, check: Check },
}

/// A split drain: prevented when the attacker's take stays within twice the threshold.
#[derive(Debug, Clone)]
pub(crate) struct SplitDrain {
    pub(crate) beneficiary: Address,
    pub(crate) token: Address,
    pub(crate) threshold_bps: u64,
    pub(crate) holdings_start: U256,
    pub(crate) beneficiary_start: U256,
    pub(crate) taken: Option<U256>,
}

/// What a scenario's run left for the judge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed<'a> {
    pub(crate) sent: &'a [SentTx],
    pub(crate) blocks: &'a [MinedBlock],
    pub(crate) split: Option<&'a SplitDrain>,
    pub(crate) book: &'a Book,
}

/// What the guarded run saw at the end.
#[derive(Debug, Default)]
pub(crate) struct GuardOutcome {
    /// Guardian txs still in the pool after the last block (sent late, e.g. by the block guard).
    pub(crate) pool_pauses: Vec<B256>,
    pub(crate) incidents: Vec<Value>,
    pub(crate) exit_code: Option<i32>,
}

/// EIP-1967 implementation slot: `keccak256("eip1967.proxy.implementation") - 1`.
const EIP1967_IMPLEMENTATION_SLOT: B256 =
    alloy::primitives::b256!("360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc");

#[derive(Debug)]
pub(crate) struct Driver {
    node: DevNode,
    ws_url: String,
    book: Book,
    nonces: [u64; 10],
    queued: Vec<Queued>,
    mode: Mode,
    guard: Option<GuardProcess>,
    pub(crate) sent: Vec<SentTx>,
    pub(crate) blocks: Vec<MinedBlock>,
    expects: Vec<Expect>,
    pub(crate) split: Option<SplitDrain>,
    pub(crate) notes: Vec<String>,
}

impl Driver {
    pub(crate) async fn connect(
        http_url: &str,
        ws_url: &str,
        book: Book,
        mode: Mode,
    ) -> Result<Self, CorpusError> {
        let node = DevNode::connect(http_url).await?;
        let mut nonces = [0u64; 10];
        for actor in Actor::ALL {
            nonces[actor as usize] = node.pending_nonce(actor.address()).await?;
        }
        Ok(Self {
            node,
            ws_url: ws_url.to_string(),
            book,
            nonces,
            queued: Vec::new(),
            mode,
            guard: None,
            sent: Vec::new(),
            blocks: Vec::new(),
            expects: Vec::new(),
            split: None,
            notes: Vec::new(),
        })
    }

    pub(crate) fn provider(&self) -> &alloy::providers::RootProvider {
        &self.node.provider
    }

    pub(crate) fn observed(&self) -> Observed<'_> {
        Observed {
            sent: &self.sent,
            blocks: &self.blocks,
            split: self.split.as_ref(),
            book: &self.book,
        }
    }

    pub(crate) fn into_book(self) -> Book {
        self.book
    }

    pub(crate) fn addr(&self, name: &str) -> Result<Address, CorpusError> {
        self.book.get(name)
    }

    pub(crate) fn record(&mut self, name: &str, address: Address) {
        self.book.contracts.insert(name.to_string(), address);
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    // ---- queueing ----

    /// The nonce `actor`'s next queued tx gets.
    pub(crate) fn next_nonce(&self, actor: Actor) -> u64 {
        self.nonces[actor as usize]
    }

    /// Queues `tx` with the next nonce of its sender; returns the address a create would get.
    pub(crate) fn queue(&mut self, tx: Tx) -> Address {
        let nonce = self.nonces[tx.from as usize];
        self.nonces[tx.from as usize] += 1;
        let address = tx.from.address().create(nonce);
        self.queued.push(Queued { tx, nonce });
        address
    }

    pub(crate) fn queue_all(&mut self, txs: impl IntoIterator<Item = Tx>) {
        for tx in txs {
            self.queue(tx);
        }
    }

    /// Queues the deployment of `artifact` with ABI-encoded `args`, records it as `name`, and
    /// returns its address.
    pub(crate) fn deploy(
        &mut self,
        name: &str,
        from: Actor,
        artifact: CorpusArtifact,
        args: Vec<u8>,
    ) -> Result<Address, CorpusError> {
        let tx = Tx::create(from, artifact, artifact.creation_code()?, args)
            .label(format!("{}: deploy {name}", from.name()));
        let address = self.queue(tx);
        self.record(name, address);
        Ok(address)
    }

    /// Queues the deployment of a contract compiled elsewhere (Uniswap V2, WETH from npm).
    pub(crate) fn deploy_code(
        &mut self,
        name: &str,
        from: Actor,
        code: Bytes,
        args: Vec<u8>,
    ) -> Address {
        let mut input = code.to_vec();
        input.extend_from_slice(&args);
        let gas = 300_000 + 250 * input.len() as u64;
        let tx = Tx {
            label: format!("{}: deploy {name}", from.name()),
            from,
            to: TxKind::Create,
            value: U256::ZERO,
            input: input.into(),
            gas: Some(gas),
            urgent: false,
            role: TxRole::Honest,
        };
        let address = self.queue(tx);
        self.record(name, address);
        address
    }

    // ---- set-up: mined before the guard starts ----

    /// Sends the queued txs and mines until each is in a block and succeeded.
    pub(crate) async fn mine_setup(&mut self) -> Result<(), CorpusError> {
        if self.guard.is_some() {
            return Err(CorpusError::Expectation(
                "set-up txs after the guard started: send them as a block instead".into(),
            ));
        }
        let queued = std::mem::take(&mut self.queued);
        // In chunks: anvil 1.7.1 was seen to drop the tail of a 75-tx batch sent before one mine.
        for chunk in queued.chunks(SETUP_CHUNK) {
            let mut sent = Vec::with_capacity(chunk.len());
            for q in chunk {
                let gas = q.tx.gas.unwrap_or(SETUP_CALL_GAS);
                let hash = self.sign_and_send(q, gas).await?;
                sent.push(SentStep { step: q.tx.label.clone(), tx: hash });
            }
            self.node.mine_and_check(&sent).await.map_err(|e| match e {
                DevnetError::StepReverted { step, tx } => CorpusError::Reverted { step, tx },
                other => CorpusError::Devnet(other),
            })?;
        }
        Ok(())
    }

    /// Moves the chain's clock `secs` forward (one empty block), before the guard starts.
    pub(crate) async fn advance_time(&mut self, secs: u64) -> Result<(), CorpusError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let latest = self.latest_timestamp().await?.max(now);
        self.node
            .provider
            .anvil_set_next_block_timestamp(latest + secs)
            .await
            .map_err(rpc_err("evm_setNextBlockTimestamp"))?;
        self.node.provider.evm_mine(None).await.map_err(rpc_err("evm_mine"))?;
        Ok(())
    }

    async fn latest_timestamp(&self) -> Result<u64, CorpusError> {
        let block = self
            .node
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(rpc_err("eth_getBlockByNumber(latest)"))?
            .ok_or_else(|| CorpusError::Node("no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    // ---- the txs under test ----

    /// Queues `txs` and runs them as one block: sent to the pool, seen by preempt (guarded
    /// mode), then mined. Returns their hashes.
    pub(crate) async fn block(&mut self, txs: Vec<Tx>) -> Result<Vec<B256>, CorpusError> {
        self.queue_all(txs);
        self.run_block().await
    }

    /// Runs the queued txs as one block (see `block`).
    pub(crate) async fn run_block(&mut self) -> Result<Vec<B256>, CorpusError> {
        if let Mode::Guarded(settings) = &self.mode
            && self.guard.is_none()
        {
            let settings = settings.clone();
            self.start_guard(&settings).await?;
        }
        let queued = std::mem::take(&mut self.queued);
        let first = self.sent.len();
        for q in queued {
            let gas = match q.tx.gas {
                Some(g) => g,
                None => self.estimate(&q.tx).await.unwrap_or(FALLBACK_GAS),
            };
            let hash = self.sign_and_send(&q, gas).await?;
            self.sent.push(SentTx {
                label: q.tx.label,
                hash,
                role: q.tx.role,
                block: None,
                index: None,
                success: None,
                processed: None,
            });
        }
        let hashes: Vec<B256> = self.sent[first..].iter().map(|s| s.hash).collect();
        if self.guard.is_some() {
            self.wait_until_seen(first).await?;
        }
        // Everything sent is mined (a full block spills into the next one).
        for _ in 0..4 {
            self.mine_one().await?;
            if self.sent[first..].iter().all(|s| s.block.is_some()) {
                break;
            }
        }
        if let Some(missing) = self.sent[first..].iter().find(|s| s.block.is_none()) {
            return Err(CorpusError::Node(format!(
                "`{}` was not mined in 4 blocks",
                missing.label
            )));
        }
        Ok(hashes)
    }

    async fn start_guard(&mut self, settings: &GuardSettings) -> Result<(), CorpusError> {
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| CorpusError::Io { path, source }
        };
        std::fs::create_dir_all(&settings.dir).map_err(io(&settings.dir))?;
        let incidents = settings.dir.join("incidents.jsonl");
        // Each run judges its own records only (the guard appends to the file).
        if incidents.exists() {
            std::fs::remove_file(&incidents).map_err(io(&incidents))?;
        }
        let config = plain_config(&self.book, &settings.protect, &self.ws_url, &incidents)?;
        let config_path = settings.dir.join("preempt.toml");
        std::fs::write(&config_path, config).map_err(io(&config_path))?;
        let log = settings.dir.join("preempt.log");
        let guard =
            GuardProcess::start(&settings.bin, &config_path, &log, incidents, READY_WITHIN).await?;
        self.guard = Some(guard);
        Ok(())
    }

    /// Waits until preempt logged each tx sent since `first` (or a pause is already in the pool),
    /// then, when a simulation had findings, until a pause reaches the pool.
    async fn wait_until_seen(&mut self, first: usize) -> Result<(), CorpusError> {
        let started = Instant::now();
        loop {
            let Some(guard) = &self.guard else { return Ok(()) };
            for s in &mut self.sent[first..] {
                if s.processed.is_none() {
                    s.processed = guard.processed(s.hash);
                }
            }
            if self.sent[first..].iter().all(|s| s.processed.is_some()) {
                break;
            }
            if !self.guardian_pool().await?.is_empty() {
                break;
            }
            if started.elapsed() > SIMULATED_WITHIN {
                let missing: Vec<String> = self.sent[first..]
                    .iter()
                    .filter(|s| s.processed.is_none())
                    .map(|s| s.label.clone())
                    .collect();
                self.note(format!("not logged as simulated before mining: {}", missing.join(", ")));
                break;
            }
            if let Some(guard) = &mut self.guard
                && !guard.alive()
            {
                self.note("preempt run exited while txs were pending");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let findings = self.sent[first..].iter().any(|s| {
            matches!(s.processed, Some(Processed::Simulated { findings }) if findings != Some(0))
        });
        if findings {
            let started = Instant::now();
            while started.elapsed() < PAUSE_WITHIN && self.guardian_pool().await?.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Mines one block (12 s after the last, as on mainnet), records it, and (guarded) waits
    /// until preempt took it in.
    async fn mine_one(&mut self) -> Result<(), CorpusError> {
        // Never before the wall clock either: a node restarted from a dumped state refuses a
        // timestamp older than its own start.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let next = (self.latest_timestamp().await? + BLOCK_SECS).max(now + 1);
        self.node
            .provider
            .anvil_set_next_block_timestamp(next)
            .await
            .map_err(rpc_err("evm_setNextBlockTimestamp"))?;
        self.node.provider.evm_mine(None).await.map_err(rpc_err("evm_mine"))?;
        let number =
            self.node.provider.get_block_number().await.map_err(rpc_err("eth_blockNumber"))?;
        let block = self.fetch_block(number).await?;
        for (index, tx) in block.txs.iter().enumerate() {
            if let Some(s) = self.sent.iter_mut().find(|s| s.hash == tx.hash) {
                s.block = Some(number);
                s.index = Some(index);
                s.success = Some(tx.success);
            }
        }
        self.blocks.push(block);
        if let Some(guard) = &self.guard {
            let started = Instant::now();
            while !guard.head_done(number) {
                if started.elapsed() > HEAD_WITHIN {
                    self.note(format!("preempt did not log block {number} as taken in"));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(())
    }

    async fn fetch_block(&self, number: u64) -> Result<MinedBlock, CorpusError> {
        let tag = format!("{number:#x}");
        let block = self.raw("eth_getBlockByNumber", vec![tag.clone().into(), true.into()]).await?;
        let receipts = self.raw("eth_getBlockReceipts", vec![tag.into()]).await?;
        let receipts = receipts.as_array().cloned().unwrap_or_default();
        let mut txs = Vec::new();
        for t in block["transactions"].as_array().cloned().unwrap_or_default() {
            let address = |v: &Value| v.as_str().and_then(|s| s.parse::<Address>().ok());
            let hash = t["hash"].as_str().and_then(|s| s.parse::<B256>().ok());
            let (Some(hash), Some(from)) = (hash, address(&t["from"])) else {
                return Err(CorpusError::Node(format!("block {number}: a tx without hash/from")));
            };
            let to = address(&t["to"]);
            let success = receipts
                .iter()
                .find(|r| {
                    r["transactionHash"].as_str().and_then(|h| h.parse::<B256>().ok()) == Some(hash)
                })
                .map(|r| r["status"].as_str() == Some("0x1"))
                .ok_or_else(|| {
                    CorpusError::Node(format!("block {number}: no receipt for {hash}"))
                })?;
            txs.push(MinedTx { hash, from, to, success });
        }
        Ok(MinedBlock { number, txs })
    }

    /// Guardian txs waiting in the pool.
    pub(crate) async fn guardian_pool(&self) -> Result<Vec<B256>, CorpusError> {
        let content = self.raw("txpool_content", Vec::new()).await?;
        let guardian = format!("{:#x}", Actor::Guardian.address());
        let mut found = Vec::new();
        for section in ["pending", "queued"] {
            let Some(senders) = content[section].as_object() else { continue };
            for (sender, by_nonce) in senders {
                if !sender.eq_ignore_ascii_case(&guardian) {
                    continue;
                }
                for tx in by_nonce.as_object().map(|o| o.values()).into_iter().flatten() {
                    if let Some(hash) = tx["hash"].as_str().and_then(|h| h.parse().ok()) {
                        found.push(hash);
                    }
                }
            }
        }
        Ok(found)
    }

    async fn raw(&self, method: &'static str, params: Vec<Value>) -> Result<Value, CorpusError> {
        self.node.provider.raw_request(method.into(), params).await.map_err(rpc_err(method))
    }

    async fn estimate(&self, tx: &Tx) -> Option<u64> {
        let mut request = TransactionRequest::default()
            .from(tx.from.address())
            .value(tx.value)
            .input(tx.input.clone().into());
        request.set_kind(tx.to);
        let estimate = self.node.provider.estimate_gas(request).await.ok()?;
        // Estimated at the latest block, run in the next (e.g. a pair's first price accumulator
        // write of a block): pad it.
        Some(estimate.saturating_mul(3) / 2 + 50_000)
    }

    async fn sign_and_send(&self, q: &Queued, gas_limit: u64) -> Result<B256, CorpusError> {
        let fees = self.node.fees().await?;
        let tip = if q.tx.urgent { URGENT_TIP_WEI } else { TIP_WEI };
        let max_fee = fees.max_fee_per_gas - fees.max_priority_fee_per_gas + tip;
        let tx = TypedTransaction::Eip1559(TxEip1559 {
            chain_id: self.node.chain_id,
            nonce: q.nonce,
            gas_limit,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            to: q.tx.to,
            value: q.tx.value,
            access_list: Default::default(),
            input: q.tx.input.clone(),
        });
        let raw = self.node.sign(&q.tx.from.account().signer, tx, &q.tx.label)?;
        Ok(self.node.send_raw(&raw, &q.tx.label).await?)
    }

    // ---- state ----

    /// Calls a view at the latest block.
    pub(crate) async fn view<C: SolCall>(
        &self,
        to: Address,
        call: C,
    ) -> Result<C::Return, CorpusError> {
        let request = TransactionRequest::default().to(to).input(call.abi_encode().into());
        let out = self
            .node
            .provider
            .call(request)
            .await
            .map_err(rpc_err(format!("eth_call {} on {to}", C::SIGNATURE)))?;
        C::abi_decode_returns(&out)
            .map_err(|e| CorpusError::Node(format!("{} returned {out}: {e}", C::SIGNATURE)))
    }

    pub(crate) async fn token_balance(
        &self,
        token: Address,
        who: Address,
    ) -> Result<U256, CorpusError> {
        self.view(token, IERC20::balanceOfCall { account: who }).await
    }

    pub(crate) async fn balance(&self, asset: Asset, who: Address) -> Result<U256, CorpusError> {
        match asset {
            Asset::Eth => self
                .node
                .provider
                .get_balance(who)
                .await
                .map_err(rpc_err(format!("eth_getBalance({who})"))),
            Asset::Token(token) => self.token_balance(token, who).await,
        }
    }

    /// Signs a 32-byte digest with `actor`'s key: (v, r, s).
    pub(crate) fn sign_digest(
        &self,
        actor: Actor,
        digest: B256,
    ) -> Result<(u8, B256, B256), CorpusError> {
        let sig = actor.account().signer.sign_hash_sync(&digest).map_err(|source| {
            CorpusError::Sign { what: format!("a digest for {}", actor.name()), source }
        })?;
        Ok((27 + u8::from(sig.v()), B256::from(sig.r()), B256::from(sig.s())))
    }

    // ---- what the scenario claims (checked in bare mode) ----

    pub(crate) async fn expect_gain(
        &mut self,
        what: &str,
        who: Address,
        asset: Asset,
        min: U256,
    ) -> Result<(), CorpusError> {
        let before = self.balance(asset, who).await?;
        self.expects.push(Expect::Gain { what: what.into(), who, asset, min, before });
        Ok(())
    }

    pub(crate) async fn expect_loss(
        &mut self,
        what: &str,
        who: Address,
        asset: Asset,
        min: U256,
    ) -> Result<(), CorpusError> {
        let before = self.balance(asset, who).await?;
        self.expects.push(Expect::Loss { what: what.into(), who, asset, min, before });
        Ok(())
    }

    pub(crate) async fn expect_same(
        &mut self,
        what: &str,
        who: Address,
        asset: Asset,
    ) -> Result<(), CorpusError> {
        let before = self.balance(asset, who).await?;
        self.expects.push(Expect::Same { what: what.into(), who, asset, before });
        Ok(())
    }

    pub(crate) fn expect_check(&mut self, what: &str, check: Check) {
        self.expects.push(Expect::Check { what: what.into(), check });
    }

    /// Judges this attack as a split drain of `token` held by `victim`, taken by `beneficiary`.
    pub(crate) async fn split_drain(
        &mut self,
        victim: Address,
        token: Address,
        beneficiary: Address,
        threshold_bps: u64,
    ) -> Result<(), CorpusError> {
        let holdings_start = self.token_balance(token, victim).await?;
        let beneficiary_start = self.token_balance(token, beneficiary).await?;
        self.split = Some(SplitDrain {
            beneficiary,
            token,
            threshold_bps,
            holdings_start,
            beneficiary_start,
            taken: None,
        });
        Ok(())
    }

    async fn check(&self, check: &Check) -> Result<bool, CorpusError> {
        Ok(match *check {
            Check::HasRole { contract, role, account } => {
                self.view(contract, IRoleTreasury::hasRoleCall { role, account }).await?
            }
            Check::Implementation { proxy, implementation } => {
                let slot = self
                    .node
                    .provider
                    .get_storage_at(proxy, EIP1967_IMPLEMENTATION_SLOT.into())
                    .await
                    .map_err(rpc_err(format!("eth_getStorageAt({proxy})")))?;
                Address::from_word(slot.into()) == implementation
            }
            Check::HookRan { wallet } => {
                !self.view(wallet, ISmartWallet::readsCall {}).await?.is_zero()
            }
        })
    }

    /// Bare mode: every tx under test succeeded and every expectation holds. Returns what failed.
    pub(crate) async fn verify(&self) -> Result<Vec<String>, CorpusError> {
        let mut failed = Vec::new();
        for s in &self.sent {
            match s.success {
                Some(true) => {}
                Some(false) => failed.push(format!("`{}` reverted", s.label)),
                None => failed.push(format!("`{}` was not mined", s.label)),
            }
        }
        for e in &self.expects {
            match e {
                Expect::Gain { what, who, asset, min, before } => {
                    let now = self.balance(*asset, *who).await?;
                    let gained = now.saturating_sub(*before);
                    if gained < *min {
                        failed.push(format!("{what}: gained {gained}, expected at least {min}"));
                    }
                }
                Expect::Loss { what, who, asset, min, before } => {
                    let now = self.balance(*asset, *who).await?;
                    let lost = before.saturating_sub(now);
                    if lost < *min {
                        failed.push(format!("{what}: lost {lost}, expected at least {min}"));
                    }
                }
                Expect::Same { what, who, asset, before } => {
                    let now = self.balance(*asset, *who).await?;
                    if now != *before {
                        failed.push(format!("{what}: {before} became {now}"));
                    }
                }
                Expect::Check { what, check } => {
                    if !self.check(check).await? {
                        failed.push(format!("{what}: does not hold"));
                    }
                }
            }
        }
        Ok(failed)
    }

    /// Guarded mode: the attacker's take in a split drain, the pauses left in the pool, preempt
    /// stopped, and its incident records.
    pub(crate) async fn finish(&mut self) -> Result<GuardOutcome, CorpusError> {
        if let Some(split) = &self.split {
            let now = self.token_balance(split.token, split.beneficiary).await?;
            let taken = now.saturating_sub(split.beneficiary_start);
            if let Some(split) = &mut self.split {
                split.taken = Some(taken);
            }
        }
        let Some(guard) = self.guard.take() else { return Ok(GuardOutcome::default()) };
        // A pause the block guard sends for the last block arrives after it was taken in.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pool_pauses = self.guardian_pool().await?;
        let incidents_path = guard.incidents.clone();
        let exit_code = guard.stop().await;
        let incidents = match std::fs::read_to_string(&incidents_path) {
            Ok(text) => text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect(),
            Err(_) => Vec::new(),
        };
        Ok(GuardOutcome { pool_pauses, incidents, exit_code })
    }
}
