//! Simulation: runs one pending tx in revm on an overlay of the forked state and records what
//! the detectors need (call frames, token transfers, holdings, claims, invariants, re-entries).

mod analysis;
mod env;
mod facts;
mod inspector;
mod ledger;
mod reentry;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use alloy::{
    consensus::{Transaction as _, TxEnvelope, transaction::Recovered},
    primitives::{Address, B256, Bytes, U256},
    sol_types::SolCall,
};
use revm::{
    ExecuteEvm, InspectEvm, MainBuilder, MainContext,
    context::{Context, result::ExecutionResult},
    context_interface::result::{EVMError, InvalidTransaction},
    database::CacheDB,
    database_interface::{DatabaseCommit, DatabaseRef},
    handler::{MainnetContext, MainnetEvm},
    primitives::hardfork::SpecId,
    state::EvmState,
};
use thiserror::Error;

pub use env::{SimBlock, tx_env, view_env};
use inspector::TxRecorder;

use crate::{
    config::{
        Asset, Config, InvariantCheck, Operand, ProtectedContract, SimulationConfig, ViewCall,
    },
    fork::{ColdTx, ForkError, ForkView, ReadLog, SharedFork, StateKey, StateLayer},
    types::{
        InvariantReading, InvariantValue, SimOutcome,
        abi::{IERC20, IPausable},
    },
};

const BALANCE_OF: [u8; 4] = IERC20::balanceOfCall::SELECTOR;
const PAUSED: [u8; 4] = IPausable::pausedCall::SELECTOR;

#[derive(Debug, Error)]
pub enum SimError {
    /// The sender has pending txs with lower nonces that must run first.
    #[error("tx {tx} has nonce {tx_nonce}, the sender's next is {state_nonce}")]
    NonceAhead { tx: B256, tx_nonce: u64, state_nonce: u64 },
    #[error("tx {tx} is not valid on this state: {reason}")]
    InvalidTx { tx: B256, reason: String },
    #[error("state for tx {tx} could not be read: {source}")]
    State { tx: B256, source: ForkError },
    #[error("evm failed on tx {tx}: {reason}")]
    Evm { tx: B256, reason: String },
    /// The run needs state the fork does not hold yet (only when fetches are deferred).
    #[error("tx {tx} needs {} state item(s) not cached yet", keys.len())]
    NeedState { tx: B256, keys: Vec<StateKey> },
}

type Overlay = CacheDB<ForkView>;

/// Speculative rounds before a run falls back to fetching misses one by one.
const MAX_SPECULATIVE_ROUNDS: usize = 8;
type SimEvm = MainnetEvm<MainnetContext<Overlay>, TxRecorder>;

/// An invariant's value on the pristine fork, and the state its views read.
#[derive(Debug)]
struct Baseline {
    value: InvariantValue,
    reads: ReadSet,
}

/// What a view call read: storage slots, and the balances of the accounts it loaded.
#[derive(Debug, Default)]
struct ReadSet {
    balances: HashSet<Address>,
    slots: HashSet<(Address, U256)>,
}

impl ReadSet {
    fn add(&mut self, state: &EvmState, ignore: &[Address]) {
        for (address, account) in state {
            if ignore.contains(address) {
                continue;
            }
            self.balances.insert(*address);
            self.slots.extend(account.storage.keys().map(|slot| (*address, *slot)));
        }
    }

    /// Whether a tx's state diff changed anything read here.
    fn touched_by(&self, state: &EvmState) -> bool {
        state.iter().any(|(address, account)| {
            (account.info.balance != account.original_info().balance
                && self.balances.contains(address))
                || account
                    .changed_storage_slots()
                    .any(|(slot, _)| self.slots.contains(&(*address, *slot)))
        })
    }
}

/// Runs txs on one fork with a reusable EVM. One per worker thread.
pub struct Simulator {
    protected: Arc<[ProtectedContract]>,
    settings: SimulationConfig,
    evm: SimEvm,
    block: SimBlock,
    baselines: HashMap<Address, Vec<Baseline>>,
    /// `balanceOf(contract)` of each held token on the pristine fork.
    token_holdings: HashMap<(Address, Address), U256>,
    /// Return `NeedState` instead of fetching cold state on this thread.
    defer_fetch: bool,
    /// A cold tx's first miss also asks the node for its whole pre-state (`prestateTracer`).
    race_prestate: bool,
    /// Who holds each protected contract's keys on the pristine fork.
    privileged: HashMap<Address, analysis::Privileged>,
    /// Tokens' symbol and decimals: they never change.
    token_meta: HashMap<Address, (Option<String>, u8)>,
    /// The last call that reached a protected contract, re-run by `keep_warm`.
    recent: Option<(B256, revm::context::TxEnv)>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("block", &self.block)
            .field("protected", &self.protected.len())
            .finish()
    }
}

/// The EVM with the chain rules preempt simulates under.
pub fn build_evm<DB: revm::Database, I>(
    db: DB,
    block: SimBlock,
    chain_id: u64,
    inspector: I,
) -> MainnetEvm<MainnetContext<DB>, I> {
    Context::mainnet()
        .with_db(db)
        .with_block(block.to_env())
        .modify_cfg_chained(|cfg| {
            // anvil reports Bpo1, which only changes blob parameters: Osaka rules apply.
            cfg.set_spec_and_mainnet_gas_params(SpecId::OSAKA);
            cfg.chain_id = chain_id;
        })
        .build_mainnet_with_inspector(inspector)
}

impl Simulator {
    pub fn new(config: &Config, fork: SharedFork, block: SimBlock, chain_id: u64) -> Self {
        Self {
            protected: config.protected.clone().into(),
            settings: config.simulation.clone(),
            evm: build_evm(
                CacheDB::new(ForkView::new(fork)),
                block,
                chain_id,
                TxRecorder::watching(config.protected.iter().map(|p| p.address).collect()),
            ),
            block,
            baselines: HashMap::new(),
            token_holdings: HashMap::new(),
            defer_fetch: false,
            race_prestate: true,
            privileged: HashMap::new(),
            token_meta: HashMap::new(),
            recent: None,
        }
    }

    /// With `on`, a run that meets cold state returns `SimError::NeedState` with what it
    /// missed, for the caller to fetch off this thread; without, it fetches and waits.
    pub fn set_defer_fetch(&mut self, on: bool) {
        self.defer_fetch = on;
    }

    /// Off: cold state comes from batched fetches of the misses alone (the bench compares).
    pub fn set_race_prestate(&mut self, on: bool) {
        self.race_prestate = on;
    }

    pub fn block(&self) -> SimBlock {
        self.block
    }

    /// Runs `before` (earlier txs of the same sender, or of the same block) on this
    /// simulator's private layer, then analyses `tx` on the state they leave. The shared fork
    /// is never written.
    pub fn simulate_after<'a>(
        &mut self,
        before: impl IntoIterator<Item = (B256, &'a Recovered<TxEnvelope>)>,
        hash: B256,
        tx: &Recovered<TxEnvelope>,
    ) -> Result<SimOutcome, SimError> {
        let saved = std::mem::take(self.fork_view_mut().local_mut());
        self.invalidate_baselines();
        let result = (|| {
            for (prior_hash, prior) in before {
                let (_, state) = self.execute(prior_hash, prior)?;
                self.fork_view_mut().local_mut().apply_evm_state(&state);
            }
            self.simulate(hash, tx)
        })();
        *self.fork_view_mut().local_mut() = saved;
        self.invalidate_baselines();
        result
    }

    /// The read handle under the EVM: its private layers are how chained and replayed txs see
    /// the state earlier txs left.
    pub fn fork_view_mut(&mut self) -> &mut ForkView {
        &mut self.evm.ctx.journaled_state.database.db
    }

    pub fn fork_view(&self) -> &ForkView {
        &self.evm.ctx.journaled_state.database.db
    }

    /// Shared layers between the fork and this simulator's own state; baselines computed on
    /// the old stack are forgotten.
    pub fn set_layers(&mut self, layers: Vec<Arc<StateLayer>>) {
        self.fork_view_mut().set_layers(layers);
        self.invalidate_baselines();
    }

    pub fn fork(&self) -> &SharedFork {
        self.evm.ctx.journaled_state.database.db.fork()
    }

    /// Moves to a new fork (a new head) and block environment.
    pub fn set_fork(&mut self, fork: SharedFork, block: SimBlock) {
        self.evm.ctx.journaled_state.database = CacheDB::new(ForkView::new(fork));
        self.evm.ctx.block = block.to_env();
        self.block = block;
        self.baselines.clear();
        self.token_holdings.clear();
        self.privileged.clear();
    }

    /// Starts recording every state value the next runs read, for a detection's pre-state
    /// (off the hot path). The per-fork caches (invariant baselines, holdings, key holders,
    /// token metadata) are dropped first, so the reads behind them are recorded too.
    pub fn start_recording(&mut self) {
        self.invalidate_baselines();
        self.token_meta.clear();
        self.fork_view().start_recording();
    }

    /// Stops recording; what was read since `start_recording`.
    pub fn take_recording(&mut self) -> Option<ReadLog> {
        self.fork_view().take_recording()
    }

    /// Forgets cached invariant values (after the fork's state was changed in place).
    pub fn invalidate_baselines(&mut self) {
        self.baselines.clear();
        self.token_holdings.clear();
        self.privileged.clear();
    }

    fn reset_overlay(&mut self) {
        let cache = &mut self.evm.ctx.journaled_state.database.cache;
        cache.accounts.clear();
        cache.logs.clear();
        cache.block_hashes.clear();
        // Code by hash is kept between txs (the fork holds it too), but not without bound: a
        // worker that runs for months meets every contract on the chain.
        if cache.contracts.len() > 4_096 {
            cache.contracts.clear();
        }
    }

    /// Fetches, in a few batched rounds, the state a run of `txs` in order will read: each round
    /// runs every tx speculatively (misses answer empty and are noted; each tx steps on what
    /// the ones before it left, guessed or not) and fetches everything noted at once. A block
    /// then costs a few round trips to the node, not one per tx.
    pub fn prefetch_for<'a>(
        &mut self,
        txs: impl Iterator<Item = &'a Recovered<TxEnvelope>> + Clone,
        max_rounds: usize,
    ) -> Result<(), SimError> {
        if self.fork().source().is_none() {
            return Ok(());
        }
        for _ in 0..max_rounds {
            let saved = std::mem::take(self.fork_view_mut().local_mut());
            let mut misses = Vec::new();
            for tx in txs.clone() {
                self.reset_overlay();
                let env = tx_env(tx, self.settings.max_tx_gas);
                self.fork_view().set_speculative(true);
                let run = self.evm.transact(env);
                let view = self.fork_view();
                misses.extend(view.take_misses());
                view.set_speculative(false);
                if let Ok(run) = run {
                    self.fork_view_mut().local_mut().apply_evm_state(&run.state);
                }
            }
            *self.fork_view_mut().local_mut() = saved;
            self.reset_overlay();
            let mut seen = HashSet::new();
            misses.retain(|k| seen.insert(*k));
            if misses.is_empty() {
                return Ok(());
            }
            self.fork_view()
                .fetch_misses(&misses)
                .map_err(|source| SimError::State { tx: B256::ZERO, source })?;
        }
        Ok(())
    }

    /// Runs a tx without analysis and returns its result and state diff (replaying a block).
    pub fn execute(
        &mut self,
        hash: B256,
        tx: &Recovered<TxEnvelope>,
    ) -> Result<(ExecutionResult, EvmState), SimError> {
        let env = tx_env(tx, self.settings.max_tx_gas);
        let out = self.settle(hash, |evm| evm.transact(env.clone()))?;
        Ok((out.result, out.state))
    }

    /// Simulates `tx` on the pristine fork and records everything the detectors read.
    pub fn simulate(
        &mut self,
        hash: B256,
        tx: &Recovered<TxEnvelope>,
    ) -> Result<SimOutcome, SimError> {
        self.simulate_inner(hash, tx, false).map(|(outcome, _)| outcome)
    }

    /// As `simulate`, and also the tx's state diff (a replay steps on it).
    pub fn simulate_with_state(
        &mut self,
        hash: B256,
        tx: &Recovered<TxEnvelope>,
    ) -> Result<(SimOutcome, EvmState), SimError> {
        self.simulate_inner(hash, tx, true)
    }

    fn simulate_inner(
        &mut self,
        hash: B256,
        tx: &Recovered<TxEnvelope>,
        keep_state: bool,
    ) -> Result<(SimOutcome, EvmState), SimError> {
        let env = tx_env(tx, self.settings.max_tx_gas);
        // A cold miss races the node's pre-state trace of this tx against the batched misses.
        let cold = self.race_prestate.then(|| ColdTx::of(hash, tx));
        self.simulate_env(hash, tx.signer(), tx.inner().to(), env, cold, keep_state)
    }

    /// Runs a call nobody signed (a probe of a new contract, from its deployer) through the
    /// same analysis as a tx, on the state as it is now (the fork and this simulator's private
    /// layer): no fee is charged and the sender's nonce is not checked. `hash` names the run
    /// in errors and in the outcome.
    pub fn simulate_call(
        &mut self,
        hash: B256,
        from: Address,
        to: Address,
        data: Bytes,
        value: U256,
        gas_limit: u64,
    ) -> Result<SimOutcome, SimError> {
        let env = revm::context::TxEnv {
            tx_type: 0,
            caller: from,
            gas_limit: gas_limit.min(self.settings.max_tx_gas),
            gas_price: 0,
            kind: alloy::primitives::TxKind::Call(to),
            value,
            data,
            nonce: 0,
            chain_id: None,
            ..Default::default()
        };
        let cfg = &mut self.evm.ctx.cfg;
        cfg.disable_nonce_check = true;
        cfg.disable_base_fee = true;
        let run = self.simulate_env(hash, from, Some(to), env, None, false);
        let cfg = &mut self.evm.ctx.cfg;
        cfg.disable_nonce_check = false;
        cfg.disable_base_fee = false;
        run.map(|(outcome, _)| outcome)
    }

    /// The ETH balance and code of `address` on the state as it is now.
    pub fn account(
        &mut self,
        address: Address,
    ) -> Result<Option<revm::state::AccountInfo>, SimError> {
        self.reset_overlay();
        let mut info = self
            .fork_view()
            .basic_ref(address)
            .map_err(|source| SimError::State { tx: B256::ZERO, source })?;
        if let Some(info) = info.as_mut()
            && info.code.is_none()
            && !info.is_empty_code_hash()
        {
            info.code = Some(
                self.fork_view()
                    .code_by_hash_ref(info.code_hash)
                    .map_err(|source| SimError::State { tx: B256::ZERO, source })?,
            );
        }
        Ok(info)
    }

    fn simulate_env(
        &mut self,
        hash: B256,
        from: Address,
        to: Option<Address>,
        env: revm::context::TxEnv,
        cold: Option<ColdTx>,
        keep_state: bool,
    ) -> Result<(SimOutcome, EvmState), SimError> {
        let started = Instant::now();
        // Storage accesses, mapping keys and logs are recorded in the same run: the inspector's
        // per-opcode hook is paid anyway, and no rule then needs a second run.
        self.fork_view().set_cold_tx(cold);
        let run = self.settle(hash, |evm| {
            evm.inspector.reset(true);
            evm.inspect_tx(env.clone())
        });
        self.fork_view().set_cold_tx(None);
        let run = run?;
        let (result, state) = (run.result, run.state);
        let mut recorded = self.take_recorded();
        effective_success(&mut recorded.frames);
        let mut outcome = SimOutcome {
            tx_hash: hash,
            from,
            to,
            success: result.is_success(),
            gas_used: result.tx_gas_used(),
            failure: failure_reason(&result),
            frames: Vec::new(),
            transfers: Vec::new(),
            holdings: Vec::new(),
            claims: Vec::new(),
            invariants: Vec::new(),
            reentries: Vec::new(),
            touched_protected: Vec::new(),
            ledgers: Vec::new(),
            sim_time: Default::default(),
            block_number: self.block.number,
        };
        if !outcome.success {
            // A reverted tx changes nothing a rule looks at (but its sender paid for it).
            outcome.frames = recorded.frames;
            outcome.sim_time = started.elapsed();
            return Ok((outcome, if keep_state { state } else { EvmState::default() }));
        }
        let analysis = self.analyze(outcome.from, &recorded, &state)?;
        outcome.invariants = self.invariants_after(&state)?;
        outcome.transfers = analysis.transfers;
        if !analysis.touched.is_empty() && env.kind.is_call() {
            self.recent = Some((hash, env));
        }
        outcome.touched_protected = analysis.touched;
        outcome.holdings = analysis.holdings;
        outcome.claims = analysis.claims;
        outcome.reentries = analysis.reentries;
        outcome.ledgers = analysis.ledgers;
        for l in outcome.ledgers.iter_mut() {
            l.tx_hash = hash;
        }
        outcome.frames = recorded.frames;
        outcome.sim_time = started.elapsed();
        Ok((outcome, if keep_state { state } else { EvmState::default() }))
    }

    /// What the inspector recorded of the last run, taken out of it.
    fn take_recorded(&mut self) -> analysis::Recorded {
        let r = &mut self.evm.inspector;
        analysis::Recorded {
            frames: std::mem::take(&mut r.frames),
            spans: std::mem::take(&mut r.spans),
            accesses: std::mem::take(&mut r.accesses),
            keccak: std::mem::take(&mut r.keccak),
            calls_out: std::mem::take(&mut r.calls_out),
            logs: std::mem::take(&mut r.logs),
        }
    }

    /// Configured invariants whose views read a slot or a balance the tx changed, evaluated on
    /// the state after it (the others cannot have moved: a view is a function of what it reads).
    fn invariants_after(&mut self, state: &EvmState) -> Result<Vec<InvariantReading>, SimError> {
        let protected = Arc::clone(&self.protected);
        let mut to_check: Vec<(&ProtectedContract, usize)> = Vec::new();
        for p in protected.iter().filter(|p| !p.invariants.is_empty()) {
            self.ensure_baselines(p)?;
            let baselines = self.baselines.get(&p.address).map(Vec::as_slice).unwrap_or_default();
            for (i, b) in baselines.iter().enumerate() {
                if b.reads.touched_by(state) {
                    to_check.push((p, i));
                }
            }
        }
        if to_check.is_empty() {
            return Ok(Vec::new());
        }
        self.evm.ctx.journaled_state.database.commit(state.clone());
        let mut out = Vec::with_capacity(to_check.len());
        for (p, i) in &to_check {
            let Some(inv) = p.invariants.get(*i) else { continue };
            let after = match self.evaluate(p.address, &inv.check) {
                Ok((v, _)) => v,
                Err(e) => {
                    self.reset_overlay();
                    return Err(e);
                }
            };
            let before = self
                .baselines
                .get(&p.address)
                .and_then(|b| b.get(*i))
                .map(|b| b.value.clone())
                .unwrap_or(InvariantValue::Unreadable { reason: "no baseline".into() });
            out.push(InvariantReading {
                contract: p.address,
                invariant: inv.source.clone(),
                before,
                after,
            });
        }
        self.reset_overlay();
        Ok(out)
    }

    /// Loads what the rules read for every protected contract (invariant views, token
    /// holdings, who holds its keys), so a simulation on the hot path finds it cached.
    pub fn warm(&mut self) -> Result<(), SimError> {
        self.warm_call_stack();
        self.reset_overlay();
        let protected = Arc::clone(&self.protected);
        for p in protected.iter() {
            self.ensure_baselines(p)?;
            // Measured: on a fresh guard or a new head, reading the key holders (`owner()`,
            // `admin()`, the EIP-1967 admin slot: one blocking node read) cost a drain's first
            // analysis 160–1,200 µs.
            self.privileged(p.address)?;
            self.reset_overlay();
            for token in &p.tokens {
                self.token_holding(p.address, *token)?;
            }
        }
        self.reset_overlay();
        Ok(())
    }

    /// Keeps an idle worker's caches warm (instructions, the EVM's frames, the protected
    /// contracts' code and state): the deep self-call, each protected contract's reads, and the
    /// last call that reached one, run again without its nonce and fee checks. Nothing is
    /// cached, recorded or fetched: a miss reads as empty and is forgotten.
    pub fn keep_warm(&mut self) {
        self.fork_view().set_speculative(true);
        self.warm_call_stack();
        let protected = Arc::clone(&self.protected);
        for p in protected.iter() {
            let _ = self.holdings_of(p);
            let _ = self.read_paused(p.address);
        }
        if let Some((_, env)) = &self.recent {
            let env = env.clone();
            self.reset_overlay();
            let cfg = &mut self.evm.ctx.cfg;
            cfg.disable_nonce_check = true;
            cfg.disable_base_fee = true;
            cfg.disable_balance_check = true;
            self.evm.inspector.reset(true);
            let _ = self.evm.inspect_tx(env);
            let _ = self.take_recorded();
            let cfg = &mut self.evm.ctx.cfg;
            cfg.disable_nonce_check = false;
            cfg.disable_base_fee = false;
            cfg.disable_balance_check = false;
        }
        let view = self.fork_view();
        view.take_misses();
        view.set_speculative(false);
        self.reset_overlay();
    }

    /// Runs a self-calling contract some 80 frames deep, so the EVM's frame stack and memory are
    /// allocated (and their pages touched) now, not during the first deep attack it simulates.
    fn warm_call_stack(&mut self) {
        // PUSH0 x5, ADDRESS, GAS, CALL, STOP: calls itself until the gas runs out.
        const RECURSE: [u8; 9] = [0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x30, 0x5a, 0xf1, 0x00];
        let address = Address::repeat_byte(0xfe);
        self.reset_overlay();
        let code = revm::bytecode::Bytecode::new_raw(Bytes::from_static(&RECURSE));
        self.evm
            .ctx
            .journaled_state
            .database
            .insert_account_info(address, revm::state::AccountInfo::from_bytecode(code));
        let gas = std::mem::replace(&mut self.settings.view_gas_limit, 21_000 + 12_000);
        let _ = self.view(address, Bytes::new());
        self.settings.view_gas_limit = gas;
        self.reset_overlay();
    }

    /// `balanceOf(contract)` of `token` on the pristine fork, read once per fork.
    fn token_holding(&mut self, contract: Address, token: Address) -> Result<U256, SimError> {
        if let Some(v) = self.token_holdings.get(&(contract, token)) {
            return Ok(*v);
        }
        let v = self.read_uint(token, call_with_address(BALANCE_OF, contract))?.unwrap_or_default();
        self.token_holdings.insert((contract, token), v);
        Ok(v)
    }

    /// A protected contract's holdings on the fork as it is (ETH, then each token).
    pub fn holdings_of(&mut self, p: &ProtectedContract) -> Result<Vec<(Asset, U256)>, SimError> {
        self.reset_overlay();
        let eth = self
            .fork_view()
            .basic_ref(p.address)
            .map_err(|source| SimError::State { tx: B256::ZERO, source })?
            .map(|a| a.balance)
            .unwrap_or_default();
        let mut out = vec![(Asset::Eth, eth)];
        for token in &p.tokens {
            let balance = self
                .read_uint(*token, call_with_address(BALANCE_OF, p.address))?
                .unwrap_or_default();
            out.push((Asset::Token(*token), balance));
        }
        Ok(out)
    }

    /// `paused()` on the fork as it is; `None` when the contract has no such view.
    pub fn read_paused(&mut self, contract: Address) -> Result<Option<bool>, SimError> {
        self.reset_overlay();
        Ok(self.read_uint(contract, Bytes::from_static(&PAUSED))?.map(|v| !v.is_zero()))
    }

    /// Runs `run` on a fresh overlay until it reads only cached state: each speculative run
    /// notes what it missed, the misses are fetched together, and the run is repeated.
    fn settle<R>(
        &mut self,
        hash: B256,
        mut run: impl FnMut(&mut SimEvm) -> Result<R, EVMError<ForkError>>,
    ) -> Result<R, SimError> {
        let mut round = 0;
        loop {
            self.reset_overlay();
            let view = &self.evm.ctx.journaled_state.database.db;
            view.set_speculative(round < MAX_SPECULATIVE_ROUNDS);
            let out = run(&mut self.evm);
            let view = &self.evm.ctx.journaled_state.database.db;
            let misses = view.take_misses();
            view.set_speculative(false);
            if misses.is_empty() {
                return out.map_err(|e| map_evm_error(hash, e));
            }
            if self.defer_fetch {
                // The caller fetches without holding this thread, then runs the tx again.
                return Err(SimError::NeedState { tx: hash, keys: misses });
            }
            // What ran on guessed values is discarded; fetch what was missing and run again.
            view.fetch_misses(&misses).map_err(|source| SimError::State { tx: hash, source })?;
            round += 1;
        }
    }

    fn ensure_baselines(&mut self, p: &ProtectedContract) -> Result<(), SimError> {
        if self.baselines.contains_key(&p.address) {
            return Ok(());
        }
        let mut out = Vec::with_capacity(p.invariants.len());
        for inv in &p.invariants {
            let (value, reads) = self.evaluate(p.address, &inv.check)?;
            out.push(Baseline { value, reads });
        }
        self.baselines.insert(p.address, out);
        Ok(())
    }

    /// Evaluates an invariant on the overlay as it is now; returns the accounts its views read.
    fn evaluate(
        &mut self,
        contract: Address,
        check: &InvariantCheck,
    ) -> Result<(InvariantValue, ReadSet), SimError> {
        let mut reads = ReadSet::default();
        let mut call =
            |this: &mut Self, view: &ViewCall| -> Result<Result<Bytes, String>, SimError> {
                let (out, state) = this.view(contract, Bytes::copy_from_slice(&view.selector))?;
                // The view's caller and the block's beneficiary are loaded by every call.
                reads.add(&state, &[Address::ZERO, this.block.beneficiary]);
                Ok(out.map_err(|e| format!("{}: {e}", view.signature)))
            };
        let value = match check {
            InvariantCheck::IsTrue(view) => match call(self, view)? {
                Ok(out) if out.len() >= 32 => {
                    if U256::from_be_slice(&out[..32]).is_zero() {
                        InvariantValue::Violated { lhs: None, rhs: None, op: None }
                    } else {
                        InvariantValue::Holds { lhs: None, rhs: None }
                    }
                }
                Ok(out) => InvariantValue::Unreadable {
                    reason: format!("{} returned {} bytes", view.signature, out.len()),
                },
                Err(reason) => InvariantValue::Unreadable { reason },
            },
            InvariantCheck::Compare { lhs, op, rhs } => {
                let mut side =
                    |this: &mut Self, o: &Operand| -> Result<Result<U256, String>, SimError> {
                        Ok(match o {
                            Operand::Literal(v) => Ok(*v),
                            Operand::Call(view) => match call(this, view)? {
                                Ok(out) if out.len() >= 32 => Ok(U256::from_be_slice(&out[..32])),
                                Ok(out) => {
                                    Err(format!("{} returned {} bytes", view.signature, out.len()))
                                }
                                Err(e) => Err(e),
                            },
                        })
                    };
                match (side(self, lhs)?, side(self, rhs)?) {
                    (Ok(l), Ok(r)) if op.holds(l, r) => {
                        InvariantValue::Holds { lhs: Some(l), rhs: Some(r) }
                    }
                    (Ok(l), Ok(r)) => {
                        InvariantValue::Violated { lhs: Some(l), rhs: Some(r), op: Some(*op) }
                    }
                    (Err(reason), _) | (_, Err(reason)) => InvariantValue::Unreadable { reason },
                }
            }
        };
        Ok((value, reads))
    }

    fn read_uint(&mut self, target: Address, data: Bytes) -> Result<Option<U256>, SimError> {
        let (out, _) = self.view(target, data)?;
        Ok(out.ok().filter(|o| o.len() >= 32).map(|o| U256::from_be_slice(&o[..32])))
    }

    /// A read-only call on the overlay as it is now. `Err` inside: the call reverted.
    fn view(
        &mut self,
        target: Address,
        data: Bytes,
    ) -> Result<(Result<Bytes, String>, EvmState), SimError> {
        let cfg = &mut self.evm.ctx.cfg;
        cfg.disable_nonce_check = true;
        cfg.disable_base_fee = true;
        cfg.disable_balance_check = true;
        let env = view_env(target, data, self.settings.view_gas_limit);
        let run = self.evm.transact(env);
        let cfg = &mut self.evm.ctx.cfg;
        cfg.disable_nonce_check = false;
        cfg.disable_base_fee = false;
        cfg.disable_balance_check = false;
        let run = run.map_err(|e| map_evm_error(B256::ZERO, e))?;
        let out = match run.result {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => Err(format!("reverted {output}")),
            ExecutionResult::Halt { reason, .. } => Err(format!("halted: {reason:?}")),
        };
        Ok((out, run.state))
    }
}

/// A frame inside a reverted frame did not happen either.
fn effective_success(frames: &mut [crate::types::CallFrame]) {
    for i in 0..frames.len() {
        if let Some(parent) = frames[i].parent
            && !frames[parent].success
        {
            frames[i].success = false;
        }
    }
}

fn failure_reason(result: &ExecutionResult) -> Option<String> {
    match result {
        ExecutionResult::Success { .. } => None,
        ExecutionResult::Revert { output, .. } => Some(decode_revert(output)),
        ExecutionResult::Halt { reason, .. } => Some(format!("halted: {reason:?}")),
    }
}

/// `Error(string)` and panics decoded where possible, else the raw bytes.
pub fn decode_revert(output: &Bytes) -> String {
    match alloy::sol_types::decode_revert_reason(output) {
        Some(reason) => format!("reverted: {reason}"),
        None if output.is_empty() => "reverted without reason".to_string(),
        None => format!("reverted: {output}"),
    }
}

fn call_with_address(selector: [u8; 4], account: Address) -> Bytes {
    let mut data = Vec::with_capacity(36);
    data.extend_from_slice(&selector);
    data.extend_from_slice(&[0u8; 12]);
    data.extend_from_slice(account.as_slice());
    data.into()
}

fn map_evm_error(tx: B256, e: EVMError<ForkError>) -> SimError {
    match e {
        EVMError::Database(source) => SimError::State { tx, source },
        EVMError::Transaction(InvalidTransaction::NonceTooHigh { tx: tx_nonce, state }) => {
            SimError::NonceAhead { tx, tx_nonce, state_nonce: state }
        }
        EVMError::Transaction(reason) => SimError::InvalidTx { tx, reason: reason.to_string() },
        EVMError::Header(reason) => SimError::Evm { tx, reason: reason.to_string() },
        other => SimError::Evm { tx, reason: other.to_string() },
    }
}
