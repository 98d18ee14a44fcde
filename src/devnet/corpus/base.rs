//! The corpus's base state: every shape deployed once (tokens, Uniswap V2 from npm, the vaults,
//! markets, treasuries, governor, timelock, aggregator, ledger, vesting pool, the attackers'
//! contracts) with its users' positions in place. Each scenario starts from a copy of it.

use alloy::{
    primitives::{Address, B256, Bytes, U256, address, keccak256},
    sol_types::{SolCall, SolValue},
};

use super::{
    Actor, CorpusError,
    abi::{
        IERC20, IERC4626, IEtherBank, IFlashRefinancer, IHookShareVault, ILedgerToken, ILendMarket,
        IMintable, IProxyTreasury, IRateVault, IRoleTreasury, ISmartWallet, IUniswapV2Factory,
        IUniswapV2Router02, IVestingRewards, IWeth,
    },
    artifacts::CorpusArtifact as A,
    driver::{Driver, Tx},
    eth, usdx,
};
use crate::devnet::artifacts::Artifact;

/// USDX per ETH: the pair's starting price, the manual oracle's and RateFeed's.
pub(crate) const ETH_PRICE_USDX: u64 = 2_000;
/// VestingRewards vests over 100 days.
pub(crate) const VESTING_SECS: u64 = 100 * 86_400;
/// TimelockController's minimum delay.
pub(crate) const TIMELOCK_DELAY_SECS: u64 = 2 * 86_400;
/// FlashGovernor's voting delay.
pub(crate) const VOTING_DELAY_SECS: u64 = 86_400;
/// Router deadline: never reached.
pub(crate) const DEADLINE: U256 = U256::MAX;
/// Where honest payouts go: a grants program and the DAO's new multisig (no code).
pub(crate) const GRANTS: Address = address!("00000000000000000000000000000000000a6a01");
pub(crate) const MULTISIG: Address = address!("00000000000000000000000000000000000a6a02");
/// What the user once paid the attacker with a signed LedgerToken transfer (then replayed).
pub(crate) const SIGNED_PAYMENT_LDG: u64 = 20_000;
/// Vesting holders besides the five dev accounts (inactive accounts whose rewards sit vested).
pub(crate) const SYNTHETIC_HOLDERS: u8 = 15;

pub(crate) fn synthetic_holder(i: u8) -> Address {
    let mut bytes = [0u8; 20];
    bytes[17] = 0xc0;
    bytes[18] = 0xde;
    bytes[19] = i + 1;
    Address::from(bytes)
}

/// `keccak256("PAYER_ROLE")`.
pub(crate) fn payer_role() -> B256 {
    keccak256("PAYER_ROLE")
}

const MAX: U256 = U256::MAX;

fn approve(from: Actor, token: Address, spender: Address) -> Tx {
    Tx::call(from, token, IERC20::approveCall { spender, amount: MAX })
}

fn mint(token: Address, to: Address, amount: U256) -> Tx {
    Tx::call(Actor::Deployer, token, IMintable::mintCall { to, amount })
}

/// The user's smart wallet calling `target` with `value`.
pub(crate) fn wallet_exec(wallet: Address, target: Address, value: U256, data: Vec<u8>) -> Tx {
    Tx::call(Actor::User, wallet, ISmartWallet::execCall { target, value, data: data.into() })
        .value(value)
}

/// Deploys the base state on the node `d` drives (bare mode).
pub(crate) async fn deploy_base(d: &mut Driver) -> Result<(), CorpusError> {
    use Actor::*;
    let guardian = Guardian.address();
    let zero = U256::ZERO;

    // ---- batch 1: contracts (constructors only store addresses), mints, funding ----
    let usdx_token = d.deploy(
        "USDX",
        Deployer,
        A::CorpusToken,
        ("USD X", "USDX", U256::from(6u8)).abi_encode_params(),
    )?;
    let rwd = d.deploy(
        "RWD",
        Deployer,
        A::CorpusToken,
        ("Reward", "RWD", U256::from(18u8)).abi_encode_params(),
    )?;
    let hook = d.deploy("HOOK", Deployer, A::HookToken, Vec::new())?;
    let gov = d.deploy("GOV", Deployer, A::GovToken, Vec::new())?;
    let weth = d.deploy_code("WETH", Deployer, Artifact::Weth9.creation_code()?, Vec::new());
    let factory = d.deploy_code(
        "UniswapV2Factory",
        Deployer,
        Artifact::UniswapV2Factory.creation_code()?,
        Deployer.address().abi_encode(),
    );
    let router = d.deploy_code(
        "UniswapV2Router02",
        Deployer,
        Artifact::UniswapV2Router02.creation_code()?,
        (factory, weth).abi_encode_params(),
    );
    d.queue(
        Tx::call(
            Deployer,
            factory,
            IUniswapV2Factory::createPairCall { tokenA: weth, tokenB: usdx_token },
        )
        .gas(5_000_000),
    );

    let bank = d.deploy("EtherBank", Deployer, A::EtherBank, guardian.abi_encode())?;
    let hvault = d.deploy(
        "HookShareVault",
        Deployer,
        A::HookShareVault,
        (guardian, hook).abi_encode_params(),
    )?;
    let v4626 = d.deploy(
        "Vault4626",
        Deployer,
        A::CorpusVault4626,
        (guardian, usdx_token).abi_encode_params(),
    )?;
    let manual =
        d.deploy("ManualFeed", Deployer, A::ManualFeed, usdx(ETH_PRICE_USDX).abi_encode())?;
    let rate_vault = d.deploy("RateVault", Deployer, A::RateVault, guardian.abi_encode())?;
    let rate_feed = d.deploy(
        "RateFeed",
        Deployer,
        A::RateFeed,
        (rate_vault, usdx(ETH_PRICE_USDX)).abi_encode_params(),
    )?;
    let oracle_market = d.deploy(
        "OracleMarket",
        Deployer,
        A::LendMarket,
        (guardian, weth, usdx_token, manual).abi_encode_params(),
    )?;
    let rate_market = d.deploy(
        "RateMarket",
        Deployer,
        A::LendMarket,
        (guardian, rate_vault, usdx_token, rate_feed).abi_encode_params(),
    )?;
    let role_treasury = d.deploy(
        "RoleTreasury",
        Deployer,
        A::RoleTreasury,
        (guardian, Deployer.address()).abi_encode_params(),
    )?;
    let init_data: Bytes =
        IProxyTreasury::initializeCall { owner: Deployer.address() }.abi_encode().into();
    let init_impl =
        d.deploy("LooseInitTreasuryImpl", Deployer, A::LooseInitTreasury, guardian.abi_encode())?;
    let init_treasury = d.deploy(
        "InitTreasury",
        Deployer,
        A::ERC1967Proxy,
        (init_impl, init_data.clone()).abi_encode_params(),
    )?;
    let upgrade_impl = d.deploy(
        "LooseUpgradeTreasuryImpl",
        Deployer,
        A::LooseUpgradeTreasury,
        guardian.abi_encode(),
    )?;
    let upgrade_treasury = d.deploy(
        "UpgradeTreasury",
        Deployer,
        A::ERC1967Proxy,
        (upgrade_impl, init_data).abi_encode_params(),
    )?;
    d.deploy("TreasuryV2Impl", Deployer, A::TreasuryV2, guardian.abi_encode())?;
    let governor = d.deploy(
        "FlashGovernor",
        Deployer,
        A::FlashGovernor,
        (guardian, gov, usdx_token).abi_encode_params(),
    )?;
    // The gate and the timelock name each other: the timelock is the deployer's next create.
    let timelock_predicted = Deployer.address().create(d.next_nonce(Deployer) + 1);
    let gate = d.deploy(
        "ExecutorGate",
        Deployer,
        A::ExecutorGate,
        (guardian, timelock_predicted).abi_encode_params(),
    )?;
    let timelock = d.deploy(
        "Timelock",
        Deployer,
        A::TimelockController,
        (U256::from(TIMELOCK_DELAY_SECS), vec![Deployer.address()], vec![gate], Address::ZERO)
            .abi_encode_params(),
    )?;
    if timelock != timelock_predicted {
        return Err(CorpusError::Node(format!(
            "timelock at {timelock}, gate expects {timelock_predicted}"
        )));
    }
    let aggregator =
        d.deploy("SwapAggregator", Deployer, A::SwapAggregator, guardian.abi_encode())?;
    let ldg = d.deploy("LDG", Deployer, A::LedgerToken, guardian.abi_encode())?;
    let rewards = d.deploy(
        "VestingRewards",
        Deployer,
        A::VestingRewards,
        (guardian, usdx_token, U256::from(VESTING_SECS)).abi_encode_params(),
    )?;

    // The attackers' contracts (deployed long before they strike) and the users' own contracts.
    d.deploy("BankDrainAttack", Attacker, A::BankDrainAttack, bank.abi_encode())?;
    d.deploy("BankLeakAttack", Attacker, A::BankLeakAttack, bank.abi_encode())?;
    let hook_attack = d.deploy(
        "HookVaultReentrancyAttack",
        Attacker,
        A::HookVaultReentrancyAttack,
        (hvault, hook).abi_encode_params(),
    )?;
    d.deploy(
        "RateReadOnlyAttack",
        Attacker,
        A::RateReadOnlyAttack,
        (rate_vault, rate_market, usdx_token).abi_encode_params(),
    )?;
    d.deploy("EvilTreasuryImpl", Attacker, A::EvilTreasuryImpl, guardian.abi_encode())?;
    d.deploy("InitHijackAttack", Attacker, A::InitHijackAttack, init_treasury.abi_encode())?;
    d.deploy("FlashVoteAttack", Attacker, A::FlashVoteAttack, (gov, governor).abi_encode_params())?;
    d.deploy("SigReplayAttack", Attacker, A::SigReplayAttack, ldg.abi_encode())?;
    let wallet = d.deploy("UserWallet", User, A::SmartWallet, User.address().abi_encode())?;
    let refinancer = d.deploy(
        "FlashRefinancer",
        Borrower,
        A::FlashRefinancer,
        (oracle_market, weth, usdx_token).abi_encode_params(),
    )?;

    for (to, n) in [
        (Lp.address(), 3_000_000),
        (Whale.address(), 3_000_000),
        (User.address(), 500_000),
        (Lender.address(), 3_000_000),
        (Keeper.address(), 500_000),
        (Borrower.address(), 300_000),
        (wallet, 600_000),
        (refinancer, 100_000),
        (role_treasury, 1_000_000),
        (init_treasury, 500_000),
        (upgrade_treasury, 500_000),
        (governor, 1_000_000),
        (timelock, 500_000),
        (rewards, 1_000_000),
    ] {
        d.queue(mint(usdx_token, to, usdx(n)));
    }
    d.queue(mint(rwd, hvault, eth(50_000)));
    for (to, n) in [
        (Whale.address(), 700_000),
        (User.address(), 300_000),
        (wallet, 200_000),
        (Attacker.address(), 200_000),
    ] {
        d.queue(mint(hook, to, eth(n)));
    }
    for (to, n) in [
        (Whale.address(), 400_000),
        (User.address(), 150_000),
        (Lp.address(), 150_000),
        (Lender.address(), 100_000),
        (Borrower.address(), 140_000),
        (Attacker.address(), 10_000),
        (Deployer.address(), 50_000),
    ] {
        d.queue(mint(gov, to, eth(n)));
    }
    for (to, n) in [
        (Whale.address(), 600_000),
        (User.address(), 200_000),
        (Lp.address(), 100_000),
        (Lender.address(), 100_000),
    ] {
        d.queue(mint(ldg, to, eth(n)));
    }
    for (to, n) in [
        (role_treasury, 100),
        (init_treasury, 50),
        (upgrade_treasury, 50),
        (governor, 100),
        (timelock, 50),
    ] {
        d.queue(Tx::transfer(Deployer, to, eth(n)));
    }
    let dev_holders: Vec<Address> =
        [User, Whale, Lp, Lender, Borrower].iter().map(|a| a.address()).collect();
    let synthetic: Vec<Address> = (0..SYNTHETIC_HOLDERS).map(synthetic_holder).collect();
    for accounts in [dev_holders, synthetic] {
        d.queue(Tx::call(
            Deployer,
            rewards,
            IVestingRewards::allocateCall { accounts, amountEach: usdx(50_000) },
        ));
    }
    d.mine_setup().await?;

    // ---- batch 2: the pair exists; positions ----
    let pair = d
        .view(factory, IUniswapV2Factory::getPairCall { tokenA: weth, tokenB: usdx_token })
        .await?;
    if pair.is_zero() {
        return Err(CorpusError::Node("UniswapV2Factory.getPair(WETH, USDX) is zero".into()));
    }
    d.record("Pair", pair);
    let spot_feed =
        d.deploy("PairSpotFeed", Deployer, A::PairSpotFeed, (pair, weth).abi_encode_params())?;
    let spot_market = d.deploy(
        "SpotMarket",
        Deployer,
        A::LendMarket,
        (guardian, weth, usdx_token, spot_feed).abi_encode_params(),
    )?;
    d.deploy("PairBreaker", Deployer, A::PairBreaker, (guardian, pair).abi_encode_params())?;
    let spot_attack = d.deploy(
        "SpotPriceAttack",
        Attacker,
        A::SpotPriceAttack,
        (spot_market, pair, weth, usdx_token).abi_encode_params(),
    )?;
    d.queue(mint(usdx_token, spot_attack, usdx(3_000_000)));

    let wrap = |from: Actor, n: u64| Tx::call(from, weth, IWeth::depositCall {}).value(eth(n));
    let add_liquidity = |from: Actor, weth_n: u64, usdx_n: u64| {
        Tx::call(
            from,
            router,
            IUniswapV2Router02::addLiquidityCall {
                tokenA: weth,
                tokenB: usdx_token,
                amountADesired: eth(weth_n),
                amountBDesired: usdx(usdx_n),
                amountAMin: zero,
                amountBMin: zero,
                to: from.address(),
                deadline: DEADLINE,
            },
        )
        .gas(1_000_000)
    };

    // lp: most of the pair, a small SpotMarket position later, approvals everywhere it trades.
    d.queue_all([
        wrap(Lp, 1_200),
        approve(Lp, weth, router),
        approve(Lp, usdx_token, router),
        add_liquidity(Lp, 1_000, 2_000_000),
        approve(Lp, pair, router),
        Tx::call(Lp, bank, IEtherBank::depositCall {}).value(eth(3)),
        approve(Lp, usdx_token, spot_market),
        approve(Lp, weth, spot_market),
        approve(Lp, usdx_token, aggregator),
    ]);
    // whale: the rest of the pair, 90% of EtherBank, 70% of HookShareVault, 95% of Vault4626,
    // an unlimited USDX approval to the aggregator.
    d.queue_all([
        wrap(Whale, 400),
        approve(Whale, weth, router),
        approve(Whale, usdx_token, router),
        add_liquidity(Whale, 300, 600_000),
        Tx::call(Whale, bank, IEtherBank::depositCall {}).value(eth(90)),
        approve(Whale, hook, hvault),
        Tx::call(Whale, hvault, IHookShareVault::depositCall { assets: eth(700_000) }),
        approve(Whale, usdx_token, v4626),
        Tx::call(
            Whale,
            v4626,
            IERC4626::depositCall { assets: usdx(950_000), receiver: Whale.address() },
        ),
        approve(Whale, usdx_token, aggregator),
        approve(Whale, usdx_token, spot_market),
    ]);
    // user: small positions everywhere, and its smart wallet's.
    d.queue_all([
        Tx::call(User, bank, IEtherBank::depositCall {}).value(eth(5)),
        approve(User, hook, hvault),
        Tx::call(User, hvault, IHookShareVault::depositCall { assets: eth(200_000) }),
        approve(User, usdx_token, v4626),
        Tx::call(
            User,
            v4626,
            IERC4626::depositCall { assets: usdx(40_000), receiver: User.address() },
        ),
        Tx::call(User, rate_vault, IRateVault::stakeCall {}).value(eth(100)),
        wrap(User, 400),
        approve(User, usdx_token, aggregator),
        approve(User, weth, aggregator),
        approve(User, usdx_token, router),
        approve(User, weth, router),
        wallet_exec(wallet, bank, eth(2), IEtherBank::depositCall {}.abi_encode()),
        wallet_exec(
            wallet,
            hook,
            U256::ZERO,
            IERC20::approveCall { spender: hvault, amount: MAX }.abi_encode(),
        ),
        wallet_exec(
            wallet,
            hvault,
            U256::ZERO,
            IHookShareVault::depositCall { assets: eth(100_000) }.abi_encode(),
        ),
        wallet_exec(
            wallet,
            usdx_token,
            U256::ZERO,
            IERC20::approveCall { spender: v4626, amount: MAX }.abi_encode(),
        ),
        wallet_exec(
            wallet,
            v4626,
            U256::ZERO,
            IERC4626::depositCall { assets: usdx(10_000), receiver: wallet }.abi_encode(),
        ),
        wallet_exec(wallet, rate_vault, eth(10), IRateVault::stakeCall {}.abi_encode()),
        wallet_exec(
            wallet,
            rate_vault,
            U256::ZERO,
            IERC20::approveCall { spender: rate_market, amount: MAX }.abi_encode(),
        ),
        wallet_exec(
            wallet,
            rate_market,
            U256::ZERO,
            ILendMarket::depositCollateralCall { amount: eth(5) }.abi_encode(),
        ),
        wallet_exec(wallet, weth, eth(300), IWeth::depositCall {}.abi_encode()),
        wallet_exec(
            wallet,
            usdx_token,
            U256::ZERO,
            IERC20::approveCall { spender: router, amount: MAX }.abi_encode(),
        ),
        wallet_exec(
            wallet,
            weth,
            U256::ZERO,
            IERC20::approveCall { spender: router, amount: MAX }.abi_encode(),
        ),
        wallet_exec(
            wallet,
            weth,
            U256::ZERO,
            IERC20::approveCall { spender: spot_market, amount: MAX }.abi_encode(),
        ),
    ]);
    // lender: 1M USDX in each market; an allowance the keeper may pull (LDG).
    d.queue_all([
        approve(Lender, usdx_token, oracle_market),
        Tx::call(Lender, oracle_market, ILendMarket::depositCall { amount: usdx(1_000_000) }),
        approve(Lender, usdx_token, rate_market),
        Tx::call(Lender, rate_market, ILendMarket::depositCall { amount: usdx(1_000_000) }),
        approve(Lender, usdx_token, spot_market),
        Tx::call(
            Lender,
            ldg,
            IERC20::approveCall { spender: Keeper.address(), amount: eth(100_000) },
        ),
    ]);
    // borrower: collateral in OracleMarket; WETH for the refinancer and for SpotMarket.
    d.queue_all([
        wrap(Borrower, 700),
        approve(Borrower, weth, oracle_market),
        Tx::call(Borrower, oracle_market, ILendMarket::depositCollateralCall { amount: eth(100) }),
        Tx::call(Borrower, weth, IERC20::transferCall { to: refinancer, amount: eth(50) }),
        approve(Borrower, weth, spot_market),
        approve(Borrower, usdx_token, spot_market),
        approve(Borrower, usdx_token, oracle_market),
    ]);
    d.queue(approve(Keeper, usdx_token, oracle_market));
    // attacker: WETH collateral for the price attack; its hook attack may pull its HOOK.
    d.queue_all([
        wrap(Attacker, 200),
        Tx::call(Attacker, weth, IERC20::transferCall { to: spot_attack, amount: eth(200) }),
        approve(Attacker, hook, hook_attack),
    ]);
    // The user once paid the attacker with a signed LedgerToken transfer, submitted by the attacker.
    let (from, to, value) = (User.address(), Attacker.address(), eth(SIGNED_PAYMENT_LDG));
    let digest = d
        .view(ldg, ILedgerToken::transferDigestCall { from, to, value, deadline: DEADLINE })
        .await?;
    let (v, r, s) = d.sign_digest(User, digest)?;
    d.queue(Tx::call(
        Attacker,
        ldg,
        ILedgerToken::transferWithSigCall { from, to, value, deadline: DEADLINE, v, r, s },
    ));
    d.mine_setup().await?;

    // ---- batch 3: lending positions that need the lenders' cash and the pair's liquidity ----
    d.queue_all([
        Tx::call(Lender, spot_market, ILendMarket::depositCall { amount: usdx(1_000_000) }),
        Tx::call(Whale, spot_market, ILendMarket::depositCall { amount: usdx(500_000) }),
        Tx::call(Borrower, oracle_market, ILendMarket::borrowCall { amount: usdx(140_000) }),
        Tx::call(
            Borrower,
            refinancer,
            IFlashRefinancer::openCall { collateral: eth(50), debt: usdx(50_000) },
        ),
        Tx::call(Borrower, spot_market, ILendMarket::depositCollateralCall { amount: eth(500) }),
        Tx::call(Lp, spot_market, ILendMarket::depositCollateralCall { amount: eth(50) }),
        Tx::call(
            Deployer,
            role_treasury,
            IRoleTreasury::grantRoleCall { role: payer_role(), account: Lender.address() },
        ),
    ]);
    d.mine_setup().await?;
    d.queue_all([
        Tx::call(Borrower, spot_market, ILendMarket::borrowCall { amount: usdx(100_000) }),
        Tx::call(Lp, spot_market, ILendMarket::borrowCall { amount: usdx(40_000) }),
    ]);
    d.mine_setup().await?;
    Ok(())
}
