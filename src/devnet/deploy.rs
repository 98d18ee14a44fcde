//! Deploys Uniswap V2, the demo tokens, every protocol fixture (vulnerable and fixed) and the
//! attack contracts on a dev node, and sets up the state the scenarios start from.

use std::collections::BTreeMap;

use alloy::{
    consensus::{TxEip1559, TypedTransaction},
    primitives::{Address, Bytes, TxKind, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::{SolCall, SolValue},
};
use serde::{Deserialize, Serialize};

use super::{
    DevAccount, DevnetError,
    abi::{
        IDemoToken, IEthVault, ILendingPool, IShareLender, IStakePool, IUniswapV2Factory,
        IUniswapV2Router02,
    },
    accounts::{Role, dev_accounts},
    artifacts::Artifact,
    node::{DevNode, SentStep},
};

/// Everything `deploy` put on chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    pub chain_id: u64,
    /// The block at which set-up was complete: the state every scenario starts from.
    pub block: u64,
    /// Contract name (`EthVault`, `Pair`, ...) → address.
    pub contracts: BTreeMap<String, Address>,
    /// Dev account role (`deployer`, `attacker`, ...) → address.
    pub accounts: BTreeMap<String, Address>,
}

impl Deployment {
    pub fn address(&self, name: &str) -> Result<Address, DevnetError> {
        self.contracts
            .get(name)
            .copied()
            .ok_or_else(|| DevnetError::UnknownContract { name: name.to_string() })
    }
}

/// `n` whole tokens (or ETH) in 18-decimal base units.
pub(crate) fn whole(n: u64) -> U256 {
    U256::from(n) * U256::from(1_000_000_000_000_000_000u128)
}

/// Router deadline: far enough that no demo ever hits it.
pub(crate) const DEADLINE: U256 = U256::MAX;

/// Price of 1 COL in DUSD, both in the pair (1,000 COL / 1,000,000 DUSD) and in the fixed oracle.
const COL_PRICE_DUSD: u64 = 1_000;
const PAIR_COL: u64 = 1_000;
const PAIR_DUSD: u64 = PAIR_COL * COL_PRICE_DUSD;
const LENDER_DEPOSIT_DUSD: u64 = 500_000;
/// 100 COL at 1,000 DUSD backs 100,000 DUSD; borrowing 30,000 is a 30% LTV, so the position
/// (and `solvent()`) survives a 20% price move, even after `pool-borrow-small`.
const BORROWER_COLLATERAL_COL: u64 = 100;
const BORROWER_DEBT_DUSD: u64 = 30_000;
/// Each price attack contract starts with this much DUSD to pump the pair with.
const PRICE_ATTACK_FUNDS_DUSD: u64 = 1_000_000;

/// Gas for a plain call during set-up; the few calls that need more say so where they are made.
const CALL_GAS: u64 = 300_000;

/// Deploys everything on the anvil at `rpc_url` (http). Works with `--no-mining`: after each
/// batch of set-up txs it mines until every receipt is in, and fails naming the first step
/// that reverted. Signs locally with the dev keys.
pub async fn deploy(rpc_url: &str) -> Result<Deployment, DevnetError> {
    let node = DevNode::connect(rpc_url).await?;
    let mut setup = Setup::new(node).await?;

    // Batch 1 (deployer only): Uniswap, tokens, ETH/stake/treasury protocols, mints.
    let base = base_protocols(&mut setup)?;
    setup.flush().await?;
    let pair = setup.get_pair(base.factory, base.col, base.dusd).await?;
    setup.contracts.insert("Pair".to_string(), pair);

    // Batch 2: lending pools, attack contracts, vault deposits, stakes, liquidity.
    let pools = lending_pools(&mut setup, &base, pair)?;
    attack_contracts(&mut setup, &base, &pools, pair)?;
    deposits_and_liquidity(&mut setup, &base, pair);
    setup.flush().await?;

    // Batch 3: lenders' deposits and the borrower's collateral (the pools exist now).
    lend_and_post_collateral(&mut setup, &base, &pools);
    setup.flush().await?;

    // Batch 4: the borrower borrows (needs the lender's DUSD in the pool).
    borrow(&mut setup, &pools);
    let block = setup.flush().await?;

    Ok(Deployment {
        chain_id: setup.node.chain_id,
        block,
        accounts: setup.accounts.iter().map(|a| (a.name.to_string(), a.address)).collect(),
        contracts: setup.contracts,
    })
}

/// What batch 1 deployed, for the batches that build on it.
#[derive(Clone, Copy)]
struct BaseProtocols {
    factory: Address,
    router: Address,
    col: Address,
    dusd: Address,
    oracle: Address,
    vault: Address,
    vault_fixed: Address,
    stake_pool: Address,
    stake_pool_fixed: Address,
    share_lender: Address,
    share_lender_fixed: Address,
    treasury: Address,
    treasury_fixed: Address,
}

/// The two lending pools: one priced from the pair's spot reserves, one from a fixed oracle.
#[derive(Clone, Copy)]
struct LendingPools {
    lending_pool: Address,
    lending_pool_fixed: Address,
}

/// Uniswap V2 (factory, WETH, router, the COL/DUSD pair), the demo tokens, the ETH vault,
/// stake pool, share lender and treasury (each with its fixed twin), and the first mints.
fn base_protocols(setup: &mut Setup) -> Result<BaseProtocols, DevnetError> {
    let guardian = setup.address_of(Role::Guardian);
    let user = setup.address_of(Role::User);
    let lp = setup.address_of(Role::LiquidityProvider);
    let lender = setup.address_of(Role::Lender);
    let borrower = setup.address_of(Role::Borrower);
    let deployer = Role::Deployer;
    let zero = U256::ZERO;
    let factory = setup.deploy(
        "UniswapV2Factory",
        deployer,
        Artifact::UniswapV2Factory,
        setup.address_of(deployer).abi_encode(),
    )?;
    let weth = setup.deploy("WETH9", deployer, Artifact::Weth9, Vec::new())?;
    let router = setup.deploy(
        "UniswapV2Router02",
        deployer,
        Artifact::UniswapV2Router02,
        (factory, weth).abi_encode_params(),
    )?;
    let token_args =
        |name: &str, symbol: &str| (name.to_string(), symbol.to_string()).abi_encode_params();
    let col =
        setup.deploy("COL", deployer, Artifact::DemoToken, token_args("Collateral", "COL"))?;
    let dusd =
        setup.deploy("DUSD", deployer, Artifact::DemoToken, token_args("Demo Dollar", "DUSD"))?;
    // Creating the pair deploys its code: far more gas than a plain call.
    let create_pair = IUniswapV2Factory::createPairCall { tokenA: col, tokenB: dusd };
    setup.call(
        "UniswapV2Factory.createPair(COL, DUSD)",
        deployer,
        factory,
        create_pair,
        zero,
        4_000_000,
    );

    let vault = setup.deploy("EthVault", deployer, Artifact::EthVault, guardian.abi_encode())?;
    let vault_fixed =
        setup.deploy("EthVaultFixed", deployer, Artifact::EthVaultFixed, guardian.abi_encode())?;
    let stake_pool =
        setup.deploy("StakePool", deployer, Artifact::StakePool, guardian.abi_encode())?;
    let stake_pool_fixed = setup.deploy(
        "StakePoolFixed",
        deployer,
        Artifact::StakePoolFixed,
        guardian.abi_encode(),
    )?;
    let share_lender = setup.deploy(
        "ShareLender",
        deployer,
        Artifact::ShareLender,
        (guardian, stake_pool).abi_encode_params(),
    )?;
    let share_lender_fixed = setup.deploy(
        "ShareLenderFixed",
        deployer,
        Artifact::ShareLender,
        (guardian, stake_pool_fixed).abi_encode_params(),
    )?;
    for (name, share_lender) in
        [("ShareLender", share_lender), ("ShareLenderFixed", share_lender_fixed)]
    {
        let fund = IShareLender::fundCall {};
        setup.call(
            format!("{name}.fund(1,000 ETH)"),
            deployer,
            share_lender,
            fund,
            whole(1_000),
            CALL_GAS,
        );
    }
    let oracle = setup.deploy(
        "FixedPriceOracle",
        deployer,
        Artifact::FixedPriceOracle,
        whole(COL_PRICE_DUSD).abi_encode(),
    )?;
    let treasury = setup.deploy("Treasury", deployer, Artifact::Treasury, guardian.abi_encode())?;
    let treasury_fixed =
        setup.deploy("TreasuryFixed", deployer, Artifact::TreasuryFixed, guardian.abi_encode())?;
    for (name, treasury) in [("Treasury", treasury), ("TreasuryFixed", treasury_fixed)] {
        setup.transfer(format!("send 50 ETH to {name}"), deployer, treasury, whole(50));
        setup.mint(format!("DUSD.mint({name}, 100,000)"), dusd, treasury, whole(100_000));
    }
    setup.mint("COL.mint(lp, 2,000)", col, lp, whole(2 * PAIR_COL));
    setup.mint("DUSD.mint(lp, 2,000,000)", dusd, lp, whole(2 * PAIR_DUSD));
    setup.mint("DUSD.mint(user, 1,000,000)", dusd, user, whole(1_000_000));
    setup.mint("DUSD.mint(lender, 2,000,000)", dusd, lender, whole(4 * LENDER_DEPOSIT_DUSD));
    setup.mint("COL.mint(borrower, 1,000)", col, borrower, whole(10 * BORROWER_COLLATERAL_COL));
    Ok(BaseProtocols {
        factory,
        router,
        col,
        dusd,
        oracle,
        vault,
        vault_fixed,
        stake_pool,
        stake_pool_fixed,
        share_lender,
        share_lender_fixed,
        treasury,
        treasury_fixed,
    })
}

/// The lending pools and the benign flash borrower of the vulnerable one.
fn lending_pools(
    setup: &mut Setup,
    base: &BaseProtocols,
    pair: Address,
) -> Result<LendingPools, DevnetError> {
    let guardian = setup.address_of(Role::Guardian);
    let deployer = Role::Deployer;
    let BaseProtocols { col, dusd, oracle, .. } = *base;
    let lending_pool = setup.deploy(
        "LendingPool",
        deployer,
        Artifact::LendingPool,
        (guardian, col, dusd, pair).abi_encode_params(),
    )?;
    let lending_pool_fixed = setup.deploy(
        "LendingPoolFixed",
        deployer,
        Artifact::LendingPoolFixed,
        (guardian, col, dusd, oracle).abi_encode_params(),
    )?;
    // Its constructor reads the pool's tokens: fine, the same sender deploys the pool just before.
    let flash_borrower = setup.deploy(
        "FlashBorrowerSafe",
        deployer,
        Artifact::FlashBorrowerSafe,
        lending_pool.abi_encode(),
    )?;
    setup.mint("COL.mint(FlashBorrowerSafe, 10)", col, flash_borrower, whole(10));
    setup.mint("DUSD.mint(FlashBorrowerSafe, 1,000)", dusd, flash_borrower, whole(1_000));

    Ok(LendingPools { lending_pool, lending_pool_fixed })
}

/// One attack contract per protocol and per fixed twin, deployed by the attacker.
fn attack_contracts(
    setup: &mut Setup,
    base: &BaseProtocols,
    pools: &LendingPools,
    pair: Address,
) -> Result<(), DevnetError> {
    let attacker = Role::Attacker;
    let BaseProtocols {
        col,
        dusd,
        vault,
        vault_fixed,
        stake_pool,
        stake_pool_fixed,
        share_lender,
        share_lender_fixed,
        treasury,
        treasury_fixed,
        ..
    } = *base;
    let LendingPools { lending_pool, lending_pool_fixed } = *pools;
    // Their constructors only store addresses, so they may share a batch with their targets.
    setup.deploy(
        "VaultReentrancyAttack",
        attacker,
        Artifact::VaultReentrancyAttack,
        vault.abi_encode(),
    )?;
    setup.deploy(
        "VaultReentrancyAttackOnFixed",
        attacker,
        Artifact::VaultReentrancyAttack,
        vault_fixed.abi_encode(),
    )?;
    setup.deploy(
        "ReadOnlyReentrancyAttack",
        attacker,
        Artifact::ReadOnlyReentrancyAttack,
        (stake_pool, share_lender).abi_encode_params(),
    )?;
    setup.deploy(
        "ReadOnlyReentrancyAttackOnFixed",
        attacker,
        Artifact::ReadOnlyReentrancyAttack,
        (stake_pool_fixed, share_lender_fixed).abi_encode_params(),
    )?;
    for (name, pool) in [
        ("PriceManipulationAttack", lending_pool),
        ("PriceManipulationAttackOnFixed", lending_pool_fixed),
    ] {
        let args = (pool, pair, col, dusd).abi_encode_params();
        let attack = setup.deploy(name, attacker, Artifact::PriceManipulationAttack, args)?;
        setup.mint(
            format!("DUSD.mint({name}, 1,000,000)"),
            dusd,
            attack,
            whole(PRICE_ATTACK_FUNDS_DUSD),
        );
    }
    setup.deploy(
        "TreasuryTakeoverAttack",
        attacker,
        Artifact::TreasuryTakeoverAttack,
        treasury.abi_encode(),
    )?;
    setup.deploy(
        "TreasuryTakeoverAttackOnFixed",
        attacker,
        Artifact::TreasuryTakeoverAttack,
        treasury_fixed.abi_encode(),
    )?;

    Ok(())
}

/// Vault deposits (a whale and a user), stakes, approvals and the pair's liquidity.
fn deposits_and_liquidity(setup: &mut Setup, base: &BaseProtocols, pair: Address) {
    let lp = setup.address_of(Role::LiquidityProvider);
    let zero = U256::ZERO;
    let BaseProtocols {
        router, col, dusd, vault, vault_fixed, stake_pool, stake_pool_fixed, ..
    } = *base;
    for (name, vault) in [("EthVault", vault), ("EthVaultFixed", vault_fixed)] {
        let deposit = IEthVault::depositCall {};
        setup.call(
            format!("whale: {name}.deposit(90 ETH)"),
            Role::Whale,
            vault,
            deposit.clone(),
            whole(90),
            CALL_GAS,
        );
        setup.call(
            format!("user: {name}.deposit(10 ETH)"),
            Role::User,
            vault,
            deposit,
            whole(10),
            CALL_GAS,
        );
    }
    for (name, pool) in [("StakePool", stake_pool), ("StakePoolFixed", stake_pool_fixed)] {
        let stake = IStakePool::stakeCall {};
        setup.call(
            format!("user: {name}.stake(100 ETH)"),
            Role::User,
            pool,
            stake,
            whole(100),
            CALL_GAS,
        );
    }
    setup.approve("user: DUSD.approve(UniswapV2Router02)", Role::User, dusd, router);

    let liquidity_provider = Role::LiquidityProvider;
    setup.approve("lp: COL.approve(UniswapV2Router02)", liquidity_provider, col, router);
    setup.approve("lp: DUSD.approve(UniswapV2Router02)", liquidity_provider, dusd, router);
    let add_liquidity = IUniswapV2Router02::addLiquidityCall {
        tokenA: col,
        tokenB: dusd,
        amountADesired: whole(PAIR_COL),
        amountBDesired: whole(PAIR_DUSD),
        amountAMin: zero,
        amountBMin: zero,
        to: lp,
        deadline: DEADLINE,
    };
    // The first mint into the pair initialises its storage: more than a plain call.
    let step = "lp: UniswapV2Router02.addLiquidity(1,000 COL, 1,000,000 DUSD)";
    setup.call(step, liquidity_provider, router, add_liquidity, zero, 600_000);
    setup.approve("lp: Pair.approve(UniswapV2Router02)", liquidity_provider, pair, router);
}

/// Lenders' deposits and the borrower's collateral in both pools.
fn lend_and_post_collateral(setup: &mut Setup, base: &BaseProtocols, pools: &LendingPools) {
    let zero = U256::ZERO;
    let BaseProtocols { col, dusd, .. } = *base;
    let LendingPools { lending_pool, lending_pool_fixed } = *pools;
    for (name, pool) in [("LendingPool", lending_pool), ("LendingPoolFixed", lending_pool_fixed)] {
        setup.approve(format!("lender: DUSD.approve({name})"), Role::Lender, dusd, pool);
        let deposit = ILendingPool::depositCall { amount: whole(LENDER_DEPOSIT_DUSD) };
        setup.call(
            format!("lender: {name}.deposit(500,000 DUSD)"),
            Role::Lender,
            pool,
            deposit,
            zero,
            CALL_GAS,
        );
        setup.approve(format!("borrower: COL.approve({name})"), Role::Borrower, col, pool);
        let post = ILendingPool::depositCollateralCall { amount: whole(BORROWER_COLLATERAL_COL) };
        let step = format!("borrower: {name}.depositCollateral(100 COL)");
        setup.call(step, Role::Borrower, pool, post, zero, CALL_GAS);
    }
}

/// The borrower's debt in both pools.
fn borrow(setup: &mut Setup, pools: &LendingPools) {
    let zero = U256::ZERO;
    let LendingPools { lending_pool, lending_pool_fixed } = *pools;
    for (name, pool) in [("LendingPool", lending_pool), ("LendingPoolFixed", lending_pool_fixed)] {
        let borrow = ILendingPool::borrowCall { amount: whole(BORROWER_DEBT_DUSD) };
        let step = format!("borrower: {name}.borrow(30,000 DUSD)");
        setup.call(step, Role::Borrower, pool, borrow, zero, CALL_GAS);
    }
}

/// A set-up tx queued for the next batch, its nonce already assigned.
#[derive(Debug)]
struct QueuedTx {
    step: String,
    from: Role,
    nonce: u64,
    to: TxKind,
    value: U256,
    input: Bytes,
    gas_limit: u64,
}

/// Set-up txs are queued (with nonces counted locally, so contract addresses are known before
/// anything is mined), then sent and mined one batch at a time. Within a batch, only txs from
/// the same sender may depend on each other: anvil orders a sender's txs by nonce but makes no
/// promise about the order across senders.
#[derive(Debug)]
struct Setup {
    node: DevNode,
    accounts: Vec<DevAccount>,
    /// Next nonce per dev account, indexed like `accounts`.
    nonces: Vec<u64>,
    queued: Vec<QueuedTx>,
    contracts: BTreeMap<String, Address>,
}

impl Setup {
    async fn new(node: DevNode) -> Result<Self, DevnetError> {
        let accounts = dev_accounts();
        let mut nonces = Vec::with_capacity(accounts.len());
        for account in &accounts {
            nonces.push(node.pending_nonce(account.address).await?);
        }
        Ok(Self { node, accounts, nonces, queued: Vec::new(), contracts: BTreeMap::new() })
    }

    fn address_of(&self, role: Role) -> Address {
        self.accounts[role as usize].address
    }

    fn next_nonce(&mut self, role: Role) -> u64 {
        let nonce = self.nonces[role as usize];
        self.nonces[role as usize] += 1;
        nonce
    }

    /// Queues the deployment of `artifact` with ABI-encoded constructor `args`, records it under
    /// `name`, and returns the address it will have.
    fn deploy(
        &mut self,
        name: &str,
        from: Role,
        artifact: Artifact,
        args: Vec<u8>,
    ) -> Result<Address, DevnetError> {
        let mut code = artifact.creation_code()?.to_vec();
        code.extend_from_slice(&args);
        let nonce = self.next_nonce(from);
        let address = self.address_of(from).create(nonce);
        // Code deposit is 200 gas a byte, calldata up to 16; the rest covers constructors.
        let gas_limit = 150_000 + 250 * code.len() as u64;
        self.queued.push(QueuedTx {
            step: format!("deploy {name}"),
            from,
            nonce,
            to: TxKind::Create,
            value: U256::ZERO,
            input: code.into(),
            gas_limit,
        });
        self.contracts.insert(name.to_string(), address);
        Ok(address)
    }

    fn call(
        &mut self,
        step: impl Into<String>,
        from: Role,
        to: Address,
        call: impl SolCall,
        value: U256,
        gas_limit: u64,
    ) {
        self.queue_call(step.into(), from, to, call.abi_encode().into(), value, gas_limit);
    }

    /// A plain ETH transfer (to an EOA or a contract's `receive`).
    fn transfer(&mut self, step: impl Into<String>, from: Role, to: Address, value: U256) {
        self.queue_call(step.into(), from, to, Bytes::new(), value, CALL_GAS);
    }

    fn queue_call(
        &mut self,
        step: String,
        from: Role,
        to: Address,
        input: Bytes,
        value: U256,
        gas_limit: u64,
    ) {
        let nonce = self.next_nonce(from);
        self.queued.push(QueuedTx {
            step,
            from,
            nonce,
            to: TxKind::Call(to),
            value,
            input,
            gas_limit,
        });
    }

    fn mint(&mut self, step: impl Into<String>, token: Address, to: Address, amount: U256) {
        self.call(
            step,
            Role::Deployer,
            token,
            IDemoToken::mintCall { to, amount },
            U256::ZERO,
            CALL_GAS,
        );
    }

    /// Unlimited allowance for `spender`.
    fn approve(&mut self, step: impl Into<String>, from: Role, token: Address, spender: Address) {
        let approve = IDemoToken::approveCall { spender, amount: U256::MAX };
        self.call(step, from, token, approve, U256::ZERO, CALL_GAS);
    }

    /// Signs and sends every queued tx, then mines until all are in; returns the last block.
    async fn flush(&mut self) -> Result<u64, DevnetError> {
        let fees = self.node.fees().await?;
        let mut sent = Vec::with_capacity(self.queued.len());
        for q in self.queued.drain(..) {
            let tx = TypedTransaction::Eip1559(TxEip1559 {
                chain_id: self.node.chain_id,
                nonce: q.nonce,
                gas_limit: q.gas_limit,
                max_fee_per_gas: fees.max_fee_per_gas,
                max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                to: q.to,
                value: q.value,
                access_list: Default::default(),
                input: q.input,
            });
            let raw = self.node.sign(&self.accounts[q.from as usize].signer, tx, &q.step)?;
            let tx = self.node.send_raw(&raw, &q.step).await?;
            sent.push(SentStep { step: q.step, tx });
        }
        self.node.mine_and_check(&sent).await
    }

    async fn get_pair(
        &self,
        factory: Address,
        col: Address,
        dusd: Address,
    ) -> Result<Address, DevnetError> {
        let call = IUniswapV2Factory::getPairCall { tokenA: col, tokenB: dusd };
        let request = TransactionRequest::default().to(factory).input(call.abi_encode().into());
        let output = self.node.provider.call(request).await.map_err(|source| DevnetError::Rpc {
            action: "eth_call UniswapV2Factory.getPair(COL, DUSD)".into(),
            source,
        })?;
        let pair = IUniswapV2Factory::getPairCall::abi_decode_returns(&output).map_err(|e| {
            DevnetError::UnexpectedNodeState {
                what: format!("UniswapV2Factory.getPair returned {output}: {e}"),
            }
        })?;
        if pair.is_zero() {
            return Err(DevnetError::UnexpectedNodeState {
                what: "UniswapV2Factory.getPair(COL, DUSD) is zero after createPair".into(),
            });
        }
        Ok(pair)
    }
}
