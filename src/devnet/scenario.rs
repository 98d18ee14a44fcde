//! The demo's pending txs: one signed tx per scenario (attacks, the same attacks on the fixed
//! contracts, and benign traffic), sent to the dev node's pool without mining it.

use alloy::{
    consensus::{TxEip1559, TxEip2930, TxLegacy, TypedTransaction},
    eips::eip2930::AccessList,
    primitives::{Address, B256, Bytes, TxKind, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};

use super::{
    DevnetError,
    abi::{
        IEthAttack, IEthVault, IFlashBorrowerSafe, ILendingPool, IPriceManipulationAttack,
        IStakePool, ITreasuryTakeoverAttack, IUniswapV2Router02,
    },
    accounts::Role,
    deploy::{DEADLINE, Deployment, whole},
    node::DevNode,
};

/// One pending tx of the demo. Each works on the freshly deployed state on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// attacker: VaultReentrancyAttack.attack{10 ETH}() re-enters EthVault.withdraw until it is dry.
    VaultReentrancyAttack,
    /// attacker: ReadOnlyReentrancyAttack.attack{1000 ETH}() borrows from ShareLender while
    /// StakePool.sharePrice() is inflated mid-exit.
    ReadOnlyReentrancyAttack,
    /// attacker: PriceManipulationAttack.attack(1,000,000 DUSD pump, 100 COL, max borrow) on LendingPool.
    PriceManipulationAttack,
    /// attacker: TreasuryTakeoverAttack.attack(DUSD) takes Treasury over and sweeps it.
    TreasuryTakeoverAttack,
    /// The vault attack on EthVaultFixed: reverts.
    VaultAttackOnFixed,
    /// The read-only reentrancy attack on StakePoolFixed/ShareLenderFixed: succeeds, borrows only the fair amount.
    ReadOnlyAttackOnFixed,
    /// The price attack on LendingPoolFixed (oracle-priced): reverts with "no profit".
    PriceAttackOnFixed,
    /// The takeover attack on TreasuryFixed: reverts.
    TreasuryAttackOnFixed,
    /// user: EthVault.deposit{1 ETH}() as a legacy tx.
    VaultDeposit,
    /// user: EthVault.withdraw(2 ETH).
    VaultWithdraw,
    /// whale: EthVault.withdraw(90 ETH), its whole balance and 90% of the vault.
    VaultWhaleWithdraw90Pct,
    /// lender: LendingPool.deposit(10,000 DUSD) as an EIP-2930 tx with an access list.
    PoolDeposit,
    /// lender: LendingPool.withdraw(100,000 DUSD) of its 500,000.
    PoolWithdraw,
    /// borrower: LendingPool.borrow(5,000 DUSD) more; the position stays healthy.
    PoolBorrowSmall,
    /// user: swaps 5,000 DUSD → COL through Router02 (COL price +~1%).
    Swap1Pct,
    /// user: swaps 95,000 DUSD → COL through Router02 (COL price +~20%).
    Swap20Pct,
    /// lp: Router02.addLiquidity(10 COL, 10,000 DUSD).
    AddLiquidity,
    /// lp: Router02.removeLiquidity(1,000 LP tokens).
    RemoveLiquidity,
    /// borrower: FlashBorrowerSafe.run(100,000 DUSD, 10 COL): a flash loan whose callback
    /// re-enters LendingPool.depositCollateral, then repays with the fee.
    FlashLoanSafe,
    /// user: StakePool.exit(10 shares).
    StakeAndExitNormal,
    /// user: EthVault.withdraw(1,000 ETH) with only 10 deposited: reverts (sent with a fixed gas limit).
    RevertingWithdraw,
}

const ALL: [Scenario; 21] = [
    Scenario::VaultReentrancyAttack,
    Scenario::ReadOnlyReentrancyAttack,
    Scenario::PriceManipulationAttack,
    Scenario::TreasuryTakeoverAttack,
    Scenario::VaultAttackOnFixed,
    Scenario::ReadOnlyAttackOnFixed,
    Scenario::PriceAttackOnFixed,
    Scenario::TreasuryAttackOnFixed,
    Scenario::VaultDeposit,
    Scenario::VaultWithdraw,
    Scenario::VaultWhaleWithdraw90Pct,
    Scenario::PoolDeposit,
    Scenario::PoolWithdraw,
    Scenario::PoolBorrowSmall,
    Scenario::Swap1Pct,
    Scenario::Swap20Pct,
    Scenario::AddLiquidity,
    Scenario::RemoveLiquidity,
    Scenario::FlashLoanSafe,
    Scenario::StakeAndExitNormal,
    Scenario::RevertingWithdraw,
];

/// Which envelope a scenario's tx uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxType {
    Legacy,
    Eip2930,
    Eip1559,
}

/// Where a scenario's gas limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GasLimit {
    /// `eth_estimateGas` at the latest block, padded (see `padded_gas`).
    Estimate,
    /// A tx that reverts cannot be estimated: send it with this limit.
    Fixed(u64),
}

/// A scenario's tx before fees, nonce and signature.
#[derive(Debug, Clone)]
struct ScenarioTx {
    from: Role,
    to: Address,
    value: U256,
    input: Bytes,
    tx_type: TxType,
    gas: GasLimit,
}

impl Scenario {
    pub fn all() -> &'static [Scenario] {
        &ALL
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::VaultReentrancyAttack => "vault-reentrancy-attack",
            Self::ReadOnlyReentrancyAttack => "read-only-reentrancy-attack",
            Self::PriceManipulationAttack => "price-manipulation-attack",
            Self::TreasuryTakeoverAttack => "treasury-takeover-attack",
            Self::VaultAttackOnFixed => "vault-attack-on-fixed",
            Self::ReadOnlyAttackOnFixed => "read-only-attack-on-fixed",
            Self::PriceAttackOnFixed => "price-attack-on-fixed",
            Self::TreasuryAttackOnFixed => "treasury-attack-on-fixed",
            Self::VaultDeposit => "vault-deposit",
            Self::VaultWithdraw => "vault-withdraw",
            Self::VaultWhaleWithdraw90Pct => "vault-whale-withdraw-90pct",
            Self::PoolDeposit => "pool-deposit",
            Self::PoolWithdraw => "pool-withdraw",
            Self::PoolBorrowSmall => "pool-borrow-small",
            Self::Swap1Pct => "swap-1pct",
            Self::Swap20Pct => "swap-20pct",
            Self::AddLiquidity => "add-liquidity",
            Self::RemoveLiquidity => "remove-liquidity",
            Self::FlashLoanSafe => "flash-loan-safe",
            Self::StakeAndExitNormal => "stake-and-exit-normal",
            Self::RevertingWithdraw => "reverting-withdraw",
        }
    }

    pub fn from_name(s: &str) -> Option<Scenario> {
        ALL.iter().copied().find(|scenario| scenario.name() == s)
    }

    /// True only for attacks on the vulnerable contracts.
    pub fn is_attack(self) -> bool {
        matches!(
            self,
            Self::VaultReentrancyAttack
                | Self::ReadOnlyReentrancyAttack
                | Self::PriceManipulationAttack
                | Self::TreasuryTakeoverAttack
        )
    }

    /// For attacks: the findings the detector must produce, as (protected contract name in the
    /// config, rule). Empty for everything else.
    pub fn expected_findings(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::VaultReentrancyAttack => &[("EthVault", "reentrancy"), ("EthVault", "drain")],
            Self::ReadOnlyReentrancyAttack => {
                &[("StakePool", "read-only-reentrancy"), ("ShareLender", "drain")]
            }
            // The pool books the borrow as the attacker's debt; the loss is in the price.
            Self::PriceManipulationAttack => {
                &[("LendingPool", "invariant"), ("LendingPool", "price-manipulation")]
            }
            Self::TreasuryTakeoverAttack => &[("Treasury", "drain")],
            _ => &[],
        }
    }

    /// Whether the tx reverts when mined on the freshly deployed state.
    pub fn reverts(self) -> bool {
        matches!(
            self,
            Self::VaultAttackOnFixed
                | Self::PriceAttackOnFixed
                | Self::TreasuryAttackOnFixed
                | Self::RevertingWithdraw
        )
    }

    /// The scenario's tx: sender, target, value and calldata, envelope, where its gas comes from.
    fn tx(self, d: &Deployment) -> Result<ScenarioTx, DevnetError> {
        let dusd = d.address("DUSD")?;
        let col = d.address("COL")?;
        let call = |from: Role, to: &str, input: Vec<u8>| -> Result<ScenarioTx, DevnetError> {
            Ok(ScenarioTx {
                from,
                to: d.address(to)?,
                value: U256::ZERO,
                input: input.into(),
                tx_type: TxType::Eip1559,
                gas: GasLimit::Estimate,
            })
        };
        let with_value = |tx: ScenarioTx, eth: u64| ScenarioTx { value: whole(eth), ..tx };
        // A tx that reverts cannot be estimated.
        let reverting = |tx: ScenarioTx, gas: u64| ScenarioTx { gas: GasLimit::Fixed(gas), ..tx };

        // The ETH attacks take their stake as msg.value of the attack tx itself.
        let eth_attack = |attack: &str, stake_eth: u64| {
            call(Role::Attacker, attack, IEthAttack::attackCall {}.abi_encode())
                .map(|tx| with_value(tx, stake_eth))
        };
        let price_attack = |attack: &str| {
            let input = IPriceManipulationAttack::attackCall {
                pumpAmount: whole(1_000_000),
                collateralAmount: whole(100),
                borrowAmount: U256::ZERO, // as much as the pool allows
            };
            call(Role::Attacker, attack, input.abi_encode())
        };
        let treasury_attack = |attack: &str| {
            call(
                Role::Attacker,
                attack,
                ITreasuryTakeoverAttack::attackCall { token: dusd }.abi_encode(),
            )
        };
        let vault_withdraw = |from: Role, eth: u64| {
            call(from, "EthVault", IEthVault::withdrawCall { amount: whole(eth) }.abi_encode())
        };
        let lending_pool = |from: Role, input: Vec<u8>| call(from, "LendingPool", input);
        let router = |from: Role, input: Vec<u8>| call(from, "UniswapV2Router02", input);
        let swap = |dusd_in: u64| {
            let input = IUniswapV2Router02::swapExactTokensForTokensCall {
                amountIn: whole(dusd_in),
                amountOutMin: U256::ZERO,
                path: vec![dusd, col],
                to: Role::User.account().address,
                deadline: DEADLINE,
            };
            router(Role::User, input.abi_encode())
        };
        let lp = Role::LiquidityProvider.account().address;

        Ok(match self {
            Self::VaultReentrancyAttack => eth_attack("VaultReentrancyAttack", 10)?,
            Self::VaultAttackOnFixed => {
                reverting(eth_attack("VaultReentrancyAttackOnFixed", 10)?, 1_000_000)
            }
            Self::ReadOnlyReentrancyAttack => eth_attack("ReadOnlyReentrancyAttack", 1_000)?,
            Self::ReadOnlyAttackOnFixed => eth_attack("ReadOnlyReentrancyAttackOnFixed", 1_000)?,
            Self::PriceManipulationAttack => price_attack("PriceManipulationAttack")?,
            Self::PriceAttackOnFixed => {
                reverting(price_attack("PriceManipulationAttackOnFixed")?, 1_500_000)
            }
            Self::TreasuryTakeoverAttack => treasury_attack("TreasuryTakeoverAttack")?,
            Self::TreasuryAttackOnFixed => {
                reverting(treasury_attack("TreasuryTakeoverAttackOnFixed")?, 500_000)
            }
            Self::VaultDeposit => ScenarioTx {
                tx_type: TxType::Legacy,
                ..with_value(
                    call(Role::User, "EthVault", IEthVault::depositCall {}.abi_encode())?,
                    1,
                )
            },
            Self::VaultWithdraw => vault_withdraw(Role::User, 2)?,
            Self::VaultWhaleWithdraw90Pct => vault_withdraw(Role::Whale, 90)?,
            Self::RevertingWithdraw => reverting(vault_withdraw(Role::User, 1_000)?, 200_000),
            Self::PoolDeposit => ScenarioTx {
                tx_type: TxType::Eip2930,
                ..lending_pool(
                    Role::Lender,
                    ILendingPool::depositCall { amount: whole(10_000) }.abi_encode(),
                )?
            },
            Self::PoolWithdraw => lending_pool(
                Role::Lender,
                ILendingPool::withdrawCall { amount: whole(100_000) }.abi_encode(),
            )?,
            Self::PoolBorrowSmall => lending_pool(
                Role::Borrower,
                ILendingPool::borrowCall { amount: whole(5_000) }.abi_encode(),
            )?,
            Self::Swap1Pct => swap(5_000)?,
            Self::Swap20Pct => swap(95_000)?,
            Self::AddLiquidity => {
                let input = IUniswapV2Router02::addLiquidityCall {
                    tokenA: col,
                    tokenB: dusd,
                    amountADesired: whole(10),
                    amountBDesired: whole(10_000),
                    amountAMin: U256::ZERO,
                    amountBMin: U256::ZERO,
                    to: lp,
                    deadline: DEADLINE,
                };
                router(Role::LiquidityProvider, input.abi_encode())?
            }
            Self::RemoveLiquidity => {
                let input = IUniswapV2Router02::removeLiquidityCall {
                    tokenA: col,
                    tokenB: dusd,
                    liquidity: whole(1_000),
                    amountAMin: U256::ZERO,
                    amountBMin: U256::ZERO,
                    to: lp,
                    deadline: DEADLINE,
                };
                router(Role::LiquidityProvider, input.abi_encode())?
            }
            Self::FlashLoanSafe => {
                let input = IFlashBorrowerSafe::runCall {
                    amount: whole(100_000),
                    collateralTopUp: whole(10),
                };
                call(Role::Borrower, "FlashBorrowerSafe", input.abi_encode())?
            }
            Self::StakeAndExitNormal => call(
                Role::User,
                "StakePool",
                IStakePool::exitCall { shares: whole(10) }.abi_encode(),
            )?,
        })
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Estimates are taken at the latest block, but the tx runs in the next one, where e.g. the
/// pair's price accumulator is written for the first time in that block (+40% gas for a swap).
fn padded_gas(estimate: u64) -> u64 {
    estimate.saturating_mul(3) / 2 + 50_000
}

/// Builds and signs the scenario's one tx (from its dev account, nonce from the node's `pending`
/// count, `max_fee = 2 * base_fee + 1 gwei`), sends it with `eth_sendRawTransaction` without
/// mining, and returns its hash.
pub async fn send_scenario(
    rpc_url: &str,
    d: &Deployment,
    s: Scenario,
) -> Result<B256, DevnetError> {
    let node = DevNode::connect(rpc_url).await?;
    let plan = s.tx(d)?;
    let sender = plan.from.account();
    let rpc = |action: &str| {
        let action = format!("{action} for scenario {s}");
        move |source| DevnetError::Rpc { action, source }
    };

    let nonce = node.pending_nonce(sender.address).await?;
    let fees = node.fees().await?;
    let mut request = TransactionRequest::default()
        .from(sender.address)
        .to(plan.to)
        .value(plan.value)
        .input(plan.input.clone().into());
    let access_list = if plan.tx_type == TxType::Eip2930 {
        let result = node
            .provider
            .create_access_list(&request)
            .latest()
            .await
            .map_err(rpc("eth_createAccessList"))?;
        if let Some(error) = result.error {
            return Err(DevnetError::ScenarioRejected {
                scenario: s.name(),
                reason: format!("access list: {error}"),
            });
        }
        request = request.access_list(result.access_list.clone());
        result.access_list
    } else {
        AccessList::default()
    };
    let gas_limit = match plan.gas {
        GasLimit::Fixed(gas) => gas,
        GasLimit::Estimate => padded_gas(
            node.provider.estimate_gas(request).latest().await.map_err(rpc("eth_estimateGas"))?,
        ),
    };

    let to = TxKind::Call(plan.to);
    let chain_id = node.chain_id;
    let tx = match plan.tx_type {
        TxType::Legacy => TypedTransaction::Legacy(TxLegacy {
            chain_id: Some(chain_id),
            nonce,
            gas_price: fees.max_fee_per_gas,
            gas_limit,
            to,
            value: plan.value,
            input: plan.input,
        }),
        TxType::Eip2930 => TypedTransaction::Eip2930(TxEip2930 {
            chain_id,
            nonce,
            gas_price: fees.max_fee_per_gas,
            gas_limit,
            to,
            value: plan.value,
            access_list,
            input: plan.input,
        }),
        TxType::Eip1559 => TypedTransaction::Eip1559(TxEip1559 {
            chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            to,
            value: plan.value,
            access_list,
            input: plan.input,
        }),
    };
    let what = format!("scenario {s}");
    let raw = node.sign(&sender.signer, tx, &what)?;
    node.send_raw(&raw, &what).await
}
