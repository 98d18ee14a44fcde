//! A chain of honest corpus traffic for `preempt shadow`: the base state, then every honest
//! scenario's txs on one anvil in corpus order, then rounds of the scenarios that can repeat
//! until the chain holds the blocks asked for, and optionally one attack mined last. Writes the
//! plain configs, the block range (`chain.json`) and the state with its history (`state.json`).

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256},
    providers::{Provider, ext::AnvilApi},
};
use serde::{Deserialize, Serialize};

use alloy::sol_types::SolCall;

use crate::bench::AnvilProcess;

use super::{
    Actor::{self, *},
    Book, CorpusError, Kind, Shape,
    abi::{IERC20, IERC4626, IEtherBank, IHookShareVault, ILendMarket, IMintable},
    base::{deploy_base, wallet_exec},
    config::{PROTECT, plain_config},
    driver::{Driver, Mode, Tx, TxRole},
    eth, rpc_err,
    scenarios::{self, ScenarioDef},
    usdx,
};

/// How long one scenario may take on the chain (a debug build, anvil on a busy machine).
const SCENARIO_WITHIN: Duration = Duration::from_secs(120);
/// How long anvil may take to write its state (with every block's history) on SIGINT.
const DUMP_WITHIN: Duration = Duration::from_secs(120);
/// Rounds after the first, at most: a scenario that repeats adds at least one block a round.
const MAX_ROUNDS: u32 = 50;

/// What `preempt devnet corpus-chain` builds.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// Where chain.json, state.json and the configs go.
    pub out: PathBuf,
    /// Blocks of honest traffic, at least (after the base deployment).
    pub blocks: u64,
    /// A corpus attack mined after the honest traffic.
    pub attack: Option<String>,
    pub anvil: PathBuf,
    /// The node URL written into the configs (the chain is served later by whoever loads it).
    pub node_url: String,
}

/// One scenario run on the chain, and the blocks it mined.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainScenario {
    pub name: String,
    pub shape: String,
    /// 0: the pass over every honest scenario; 1…: the repeats.
    pub round: u32,
    pub first_block: u64,
    pub last_block: u64,
    /// Txs it sent as blocks under test (set-up txs are mined too, and not counted here).
    pub txs: usize,
}

/// A scenario left out of the chain (its changes were reverted), and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkippedScenario {
    pub name: String,
    pub round: u32,
    pub reason: String,
}

/// The attack mined after the honest traffic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainAttack {
    pub name: String,
    /// The exploit tx(s) (not the attacker's preparation).
    pub txs: Vec<B256>,
    /// The block holding the last of them (the chain's last block).
    pub block: u64,
    pub first_block: u64,
}

/// What `chain.json` holds: the block range and what is in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainManifest {
    pub chain_id: u64,
    /// The first block after the base deployment.
    pub from_block: u64,
    /// The last block of honest traffic.
    pub honest_to_block: u64,
    /// The chain's last block (the attack's, with `--attack`).
    pub to_block: u64,
    /// Blocks from `from_block` to `honest_to_block`.
    pub honest_blocks: u64,
    /// Txs in `from_block..=honest_to_block` (set-up and under test alike).
    pub honest_txs: u64,
    pub rounds: u32,
    pub scenarios: Vec<ChainScenario>,
    pub skipped: Vec<SkippedScenario>,
    pub attack: Option<ChainAttack>,
    /// anvil's state with every block's history (`anvil --load-state`): relative to the out dir.
    pub state: String,
    /// The plain config protecting every corpus contract, and one per shape (relative paths).
    pub config: String,
    pub configs: BTreeMap<String, String>,
    pub contracts: BTreeMap<String, Address>,
    pub build_seconds: f64,
}

/// An anvil that keeps every block's state and writes it all to `dump` when it exits.
#[derive(Debug)]
struct HistoryNode(AnvilProcess);

impl HistoryNode {
    fn start(anvil: &Path, dump: &Path) -> Result<Self, CorpusError> {
        // The dump holds every block's state only with this flag, and only on exit
        // (`anvil_dumpState` leaves the history out).
        let keep = [OsStr::new("--preserve-historical-states"), OsStr::new("--dump-state")];
        let args: Vec<&OsStr> = keep.into_iter().chain([dump.as_os_str()]).collect();
        AnvilProcess::start_with(anvil, &args)
            .map(Self)
            .map_err(|e| CorpusError::Anvil(e.to_string()))
    }

    fn http_url(&self) -> String {
        self.0.http_url()
    }

    fn ws_url(&self) -> String {
        self.0.ws_url()
    }

    /// SIGINT, then waits for anvil to write its dump and exit.
    async fn stop_and_dump(mut self) -> Result<(), CorpusError> {
        let pid = self.0.pid().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let started = Instant::now();
        while started.elapsed() < DUMP_WITHIN {
            match self.0.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => return Err(CorpusError::Anvil(format!("waiting for anvil: {e}"))),
            }
        }
        Err(CorpusError::Anvil(format!(
            "anvil did not write its state within {} s",
            DUMP_WITHIN.as_secs()
        )))
    }
}

/// The chain being built: the node, a driver on it, and what has been mined so far.
struct Builder {
    node: HistoryNode,
    driver: Driver,
    book: Book,
}

impl Builder {
    async fn head(&self) -> Result<u64, CorpusError> {
        self.driver.provider().get_block_number().await.map_err(rpc_err("eth_blockNumber"))
    }

    /// A fresh driver (nonces read again from the node), after a scenario was rolled back.
    async fn reconnect(&mut self) -> Result<(), CorpusError> {
        let provider = self.driver.provider().clone();
        let _ = provider.anvil_drop_all_transactions().await;
        self.driver = Driver::connect(
            &self.node.http_url(),
            &self.node.ws_url(),
            self.book.clone(),
            Mode::Bare,
        )
        .await?;
        Ok(())
    }

    /// Runs `def` on the chain; rolls it back (and says why) when it fails or any of its txs
    /// reverts, so the chain holds only traffic that did what it meant to.
    async fn run(
        &mut self,
        def: &ScenarioDef,
    ) -> Result<Result<(u64, u64, usize), String>, CorpusError> {
        let provider = self.driver.provider().clone();
        let snapshot = provider.anvil_snapshot().await.map_err(rpc_err("evm_snapshot"))?;
        let before = self.head().await?;
        let first = self.driver.sent.len();
        let outcome = match tokio::time::timeout(SCENARIO_WITHIN, (def.run)(&mut self.driver)).await
        {
            Err(_) => Err(format!("did not finish within {} s", SCENARIO_WITHIN.as_secs())),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(())) => {
                match self.driver.sent[first..].iter().find(|s| s.success != Some(true)) {
                    Some(s) if s.success.is_none() => Err(format!("`{}` was not mined", s.label)),
                    Some(s) => Err(format!("`{}` reverted", s.label)),
                    None => Ok(()),
                }
            }
        };
        match outcome {
            Ok(()) => {
                let after = self.head().await?;
                Ok(Ok((before + 1, after, self.driver.sent.len() - first)))
            }
            Err(reason) => {
                let reverted =
                    provider.anvil_revert(snapshot).await.map_err(rpc_err("evm_revert"))?;
                if !reverted {
                    return Err(CorpusError::Node(format!(
                        "evm_revert refused the snapshot taken before `{}`",
                        def.name
                    )));
                }
                self.reconnect().await?;
                Ok(Err(reason))
            }
        }
    }

    /// As `run`, for a block of `txs` that is not a corpus scenario.
    async fn run_txs(
        &mut self,
        name: &str,
        txs: Vec<Tx>,
    ) -> Result<Result<(u64, u64, usize), String>, CorpusError> {
        let provider = self.driver.provider().clone();
        let snapshot = provider.anvil_snapshot().await.map_err(rpc_err("evm_snapshot"))?;
        let before = self.head().await?;
        let first = self.driver.sent.len();
        let outcome = match self.driver.block(txs).await {
            Err(e) => Err(e.to_string()),
            Ok(_) => match self.driver.sent[first..].iter().find(|s| s.success != Some(true)) {
                Some(s) => Err(format!("`{}` did not succeed", s.label)),
                None => Ok(()),
            },
        };
        if let Err(reason) = outcome {
            if !provider.anvil_revert(snapshot).await.map_err(rpc_err("evm_revert"))? {
                return Err(CorpusError::Node(format!(
                    "evm_revert refused the snapshot taken before `{name}`"
                )));
            }
            self.reconnect().await?;
            return Ok(Err(reason));
        }
        Ok(Ok((before + 1, self.head().await?, self.driver.sent.len() - first)))
    }

    async fn txs_in(&self, from: u64, to: u64) -> Result<u64, CorpusError> {
        let mut txs = 0;
        for n in from..=to {
            txs += self
                .driver
                .provider()
                .get_block_transaction_count_by_number(n.into())
                .await
                .map_err(rpc_err(format!("eth_getBlockTransactionCountByNumber({n})")))?
                .unwrap_or_default();
        }
        Ok(txs)
    }
}

/// Builds the chain and writes everything into `opts.out`.
pub async fn build_chain(opts: &ChainOptions) -> Result<ChainManifest, CorpusError> {
    let started = Instant::now();
    let attack = match &opts.attack {
        None => None,
        Some(name) => Some(attack_def(name)?),
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CorpusError::Io { path, source }
    };
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    let state = opts.out.join("state.json");
    // A dump left by an earlier build must not pass for this one's.
    if state.exists() {
        std::fs::remove_file(&state).map_err(io(&state))?;
    }
    let node = HistoryNode::start(&opts.anvil, &state)?;
    let mut driver =
        Driver::connect(&node.http_url(), &node.ws_url(), Book::default(), Mode::Bare).await?;
    deploy_base(&mut driver).await?;
    let book = driver.observed().book.clone();
    let mut b = Builder { node, driver, book };
    let chain_id = b.driver.provider().get_chain_id().await.map_err(rpc_err("eth_chainId"))?;
    let from_block = b.head().await? + 1;
    eprintln!(
        "corpus-chain: base state deployed ({:.1} s); honest traffic from block {from_block}",
        started.elapsed().as_secs_f64()
    );

    let mut repeatable: Vec<&'static ScenarioDef> =
        scenarios::all().into_iter().filter(|s| s.kind == Kind::Honest).collect();
    let (mut ran, mut skipped) = (Vec::new(), Vec::new());
    let mut round = 0;
    'rounds: loop {
        let mut kept = Vec::new();
        // Shapes whose top-up did not help a scenario this round: not topped up again.
        let mut futile: Vec<Shape> = Vec::new();
        for def in repeatable {
            let head = b.head().await?;
            if head + 1 >= from_block + opts.blocks && round > 0 {
                break 'rounds;
            }
            let mut result = b.run(def).await?;
            // Earlier traffic took the positions this scenario spends: its users deposit
            // again (honest traffic too), and it is tried once more.
            if result.is_err()
                && !futile.contains(&def.shape)
                && let Some(top_up) = top_up(def.shape, &b.book)?
            {
                let name = format!("top-up:{}", def.shape.name());
                if let Ok((first_block, last_block, txs)) = b.run_txs(&name, top_up).await? {
                    ran.push(ChainScenario {
                        name,
                        shape: def.shape.name().to_string(),
                        round,
                        first_block,
                        last_block,
                        txs,
                    });
                    result = b.run(def).await?;
                    if result.is_err() {
                        futile.push(def.shape);
                    }
                }
            }
            match result {
                Ok((first_block, last_block, txs)) => {
                    ran.push(ChainScenario {
                        name: def.name.to_string(),
                        shape: def.shape.name().to_string(),
                        round,
                        first_block,
                        last_block,
                        txs,
                    });
                    kept.push(def);
                }
                Err(reason) => {
                    skipped.push(SkippedScenario { name: def.name.to_string(), round, reason })
                }
            }
        }
        let head = b.head().await?;
        eprintln!(
            "corpus-chain: round {round}: {} scenarios mined, head {head} ({} blocks of honest traffic)",
            kept.len(),
            (head + 1).saturating_sub(from_block)
        );
        if head + 1 >= from_block + opts.blocks {
            break;
        }
        if kept.is_empty() || round >= MAX_ROUNDS {
            return Err(CorpusError::Expectation(format!(
                "only {} blocks of honest traffic after {} round(s): no scenario repeats",
                (head + 1).saturating_sub(from_block),
                round + 1
            )));
        }
        repeatable = kept;
        round += 1;
    }
    let honest_to_block = b.head().await?;
    let honest_txs = b.txs_in(from_block, honest_to_block).await?;

    let attack = match attack {
        None => None,
        Some(def) => Some(mine_attack(&mut b, def).await?),
    };
    let to_block = b.head().await?;

    // The configs: every corpus contract in one, and each shape's own.
    let incidents = opts.out.join("incidents.jsonl");
    let all: Vec<&str> = PROTECT.iter().map(|p| p.name).collect();
    let config_path = opts.out.join("preempt.toml");
    let text = plain_config(&b.book, &all, &opts.node_url, &incidents)?;
    std::fs::write(&config_path, text).map_err(io(&config_path))?;
    let configs_dir = opts.out.join("configs");
    std::fs::create_dir_all(&configs_dir).map_err(io(&configs_dir))?;
    let mut configs = BTreeMap::new();
    for shape in shapes() {
        let path = configs_dir.join(format!("{}.toml", shape.name()));
        let text = plain_config(&b.book, scenarios::protected(shape), &opts.node_url, &incidents)?;
        std::fs::write(&path, text).map_err(io(&path))?;
        configs.insert(shape.name().to_string(), format!("configs/{}.toml", shape.name()));
    }

    let Builder { node, book, .. } = b;
    node.stop_and_dump().await?;
    if !state.exists() {
        return Err(CorpusError::Anvil(format!(
            "anvil exited without writing {}",
            state.display()
        )));
    }
    let manifest = ChainManifest {
        chain_id,
        from_block,
        honest_to_block,
        to_block,
        honest_blocks: honest_to_block + 1 - from_block,
        honest_txs,
        rounds: round + 1,
        scenarios: ran,
        skipped,
        attack,
        state: "state.json".into(),
        config: "preempt.toml".into(),
        configs,
        contracts: book.contracts,
        build_seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    };
    let path = opts.out.join("chain.json");
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| CorpusError::Node(format!("cannot encode chain.json: {e}")))?;
    std::fs::write(&path, text + "\n").map_err(io(&path))?;
    Ok(manifest)
}

/// Deposits that give a shape's users back the positions the corpus's scenarios spend (the
/// base state's), for another round; `None` for shapes whose traffic needs none.
fn top_up(shape: Shape, book: &Book) -> Result<Option<Vec<Tx>>, CorpusError> {
    let mint = |token: Address, to: Actor, amount| {
        Tx::call(Deployer, token, IMintable::mintCall { to: to.address(), amount })
    };
    Ok(Some(match shape {
        Shape::EthVault => {
            let (bank, wallet) = (book.get("EtherBank")?, book.get("UserWallet")?);
            let deposit =
                |from: Actor, n| Tx::call(from, bank, IEtherBank::depositCall {}).value(eth(n));
            vec![
                deposit(User, 5),
                deposit(Whale, 90),
                deposit(Lp, 3),
                wallet_exec(wallet, bank, eth(2), IEtherBank::depositCall {}.abi_encode()),
            ]
        }
        Shape::Erc20Vault => {
            let (vault, hook, wallet) =
                (book.get("HookShareVault")?, book.get("HOOK")?, book.get("UserWallet")?);
            let deposit = |from: Actor, n| {
                Tx::call(from, vault, IHookShareVault::depositCall { assets: eth(n) })
            };
            vec![
                mint(hook, Whale, eth(700_000)),
                mint(hook, User, eth(300_000)),
                Tx::call(Deployer, hook, IMintable::mintCall { to: wallet, amount: eth(100_000) }),
                deposit(Whale, 700_000),
                deposit(User, 200_000),
                wallet_exec(
                    wallet,
                    vault,
                    alloy::primitives::U256::ZERO,
                    IHookShareVault::depositCall { assets: eth(100_000) }.abi_encode(),
                ),
            ]
        }
        Shape::Erc4626 => {
            let (vault, token) = (book.get("Vault4626")?, book.get("USDX")?);
            let deposit = |from: Actor, n| {
                Tx::call(
                    from,
                    vault,
                    IERC4626::depositCall { assets: usdx(n), receiver: from.address() },
                )
            };
            vec![
                mint(token, Whale, usdx(950_000)),
                mint(token, User, usdx(40_000)),
                deposit(Whale, 950_000),
                deposit(User, 40_000),
            ]
        }
        Shape::Lending => {
            let (market, token) = (book.get("SpotMarket")?, book.get("USDX")?);
            vec![
                mint(token, Whale, usdx(500_000)),
                Tx::call(Whale, market, ILendMarket::depositCall { amount: usdx(500_000) }),
            ]
        }
        Shape::Treasury => {
            let token = book.get("USDX")?;
            let mut txs = Vec::new();
            for (name, n, ether) in [
                ("RoleTreasury", 1_000_000, 100),
                ("InitTreasury", 500_000, 50),
                ("UpgradeTreasury", 500_000, 50),
            ] {
                let to = book.get(name)?;
                txs.push(Tx::call(Deployer, token, IMintable::mintCall { to, amount: usdx(n) }));
                txs.push(Tx::transfer(Deployer, to, eth(ether)));
            }
            txs
        }
        Shape::Ledger => {
            let ldg = book.get("LDG")?;
            vec![Tx::call(
                Lp,
                ldg,
                IERC20::transferCall { to: Whale.address(), amount: eth(600_000) },
            )]
        }
        _ => return Ok(None),
    }))
}

/// The attack scenario named `name`.
fn attack_def(name: &str) -> Result<&'static ScenarioDef, CorpusError> {
    let all = scenarios::all();
    match all.iter().find(|s| s.name == name) {
        Some(def) if def.kind == Kind::Attack => Ok(def),
        found => {
            let known: Vec<&str> =
                all.iter().filter(|s| s.kind == Kind::Attack).map(|s| s.name).collect();
            let what = if found.is_some() { "is not an attack" } else { "is not a scenario" };
            Err(CorpusError::Expectation(format!(
                "--attack `{name}` {what}; one of: {}",
                known.join(", ")
            )))
        }
    }
}

/// Runs the attack last; its exploit txs must succeed (an attack that reverts on this chain is
/// no attack for the shadow to find).
async fn mine_attack(b: &mut Builder, def: &ScenarioDef) -> Result<ChainAttack, CorpusError> {
    let first_block = b.head().await? + 1;
    let first = b.driver.sent.len();
    (def.run)(&mut b.driver).await?;
    let exploits: Vec<_> =
        b.driver.sent[first..].iter().filter(|s| s.role == TxRole::Attack).cloned().collect();
    if exploits.is_empty() {
        return Err(CorpusError::Expectation(format!("`{}` sent no exploit tx", def.name)));
    }
    if let Some(s) = exploits.iter().find(|s| s.success != Some(true)) {
        return Err(CorpusError::Expectation(format!(
            "attack `{}` ({}) did not succeed on this chain",
            s.label, def.name
        )));
    }
    let block = exploits.iter().filter_map(|s| s.block).max().unwrap_or_default();
    Ok(ChainAttack {
        name: def.name.to_string(),
        txs: exploits.iter().map(|s| s.hash).collect(),
        block,
        first_block,
    })
}

/// Every shape the corpus has, in corpus order.
fn shapes() -> Vec<Shape> {
    let mut out: Vec<Shape> = Vec::new();
    for s in scenarios::all() {
        if !out.contains(&s.shape) {
            out.push(s.shape);
        }
    }
    out
}

/// `preempt devnet corpus-chain`: the command-line arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ChainArgs {
    /// Where chain.json, state.json (anvil --load-state) and the plain configs go.
    #[arg(long)]
    pub out: PathBuf,
    /// Blocks of honest traffic, at least.
    #[arg(long, default_value_t = 250)]
    pub blocks: u64,
    /// A corpus attack to mine after the honest traffic (e.g. eth-bank-withdrawall-reentrancy).
    #[arg(long)]
    pub attack: Option<String>,
    /// The node URL written into the configs (shadow's --rpc overrides it).
    #[arg(long, default_value = "ws://127.0.0.1:8545")]
    pub node_url: String,
    /// The anvil binary (default: $PREEMPT_TOOLS/bin/anvil, else .tools/bin/anvil).
    #[arg(long)]
    pub anvil: Option<PathBuf>,
}

/// Runs `preempt devnet corpus-chain`: 0 when the chain was built, 2 with one line otherwise.
pub async fn chain_command(args: ChainArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    let anvil = args.anvil.unwrap_or_else(|| {
        std::env::var_os("PREEMPT_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".tools"))
            .join("bin/anvil")
    });
    let opts = ChainOptions {
        out: args.out,
        blocks: args.blocks,
        attack: args.attack,
        anvil,
        node_url: args.node_url,
    };
    match build_chain(&opts).await {
        Ok(m) => {
            println!(
                "chain {}: honest traffic in blocks {}..={} ({} blocks, {} txs, {} scenario runs in {} rounds, {} skipped){}",
                m.chain_id,
                m.from_block,
                m.honest_to_block,
                m.honest_blocks,
                m.honest_txs,
                m.scenarios.len(),
                m.rounds,
                m.skipped.len(),
                m.attack
                    .as_ref()
                    .map(|a| format!("; attack {} in block {}", a.name, a.block))
                    .unwrap_or_default()
            );
            println!(
                "wrote {0}/chain.json, {0}/state.json, {0}/preempt.toml, {0}/configs/ in {1:.1} s",
                opts.out.display(),
                m.build_seconds
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
