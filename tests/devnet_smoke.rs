//! Deploys the demo dev net on a fresh `anvil --no-mining`, then mines each scenario's tx on
//! the deployed state (reverting to a snapshot after each) and checks it succeeds or reverts
//! as the scenario says.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use alloy::{
    consensus::Transaction as _,
    eips::Typed2718 as _,
    primitives::{Address, B256, U256},
    providers::{Provider, RootProvider, ext::AnvilApi},
    rpc::types::TransactionRequest,
    sol,
    sol_types::SolCall,
};
use preempt::{
    bench::AnvilProcess,
    config::Config,
    devnet::{Deployment, Scenario, config_toml, deploy, send_scenario},
};

sol! {
    interface IPair {
        function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
        function token0() external view returns (address);
    }
    interface ILendingPoolViews {
        function solvent() external view returns (bool);
        function totalDeposits() external view returns (uint256);
    }
}

/// anvil from scripts/setup.sh (`$PREEMPT_TOOLS`, else `.tools`), on a free port.
async fn start_anvil() -> (AnvilProcess, RootProvider) {
    let tools = std::env::var_os("PREEMPT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    let process =
        AnvilProcess::start(&tools.join("bin/anvil")).unwrap_or_else(|e| panic!("anvil: {e}"));
    let provider = RootProvider::new_http(process.http_url().parse().expect("anvil url"));
    (process, provider)
}

async fn view<C: SolCall>(provider: &RootProvider, to: Address, call: C) -> C::Return {
    let request = TransactionRequest::default().to(to).input(call.abi_encode().into());
    let output = provider.call(request).await.expect("eth_call");
    C::abi_decode_returns(&output).expect("decode view output")
}

/// COL's price in DUSD from the pair's reserves, in DUSD per COL scaled by 1e6.
async fn col_price_micro(provider: &RootProvider, d: &Deployment) -> u128 {
    let pair = d.address("Pair").expect("Pair");
    let reserves = view(provider, pair, IPair::getReservesCall {}).await;
    let token0 = view(provider, pair, IPair::token0Call {}).await;
    let (r0, r1) = (U256::from(reserves.reserve0), U256::from(reserves.reserve1));
    let (col, dusd) = if token0 == d.address("COL").expect("COL") { (r0, r1) } else { (r1, r0) };
    (dusd * U256::from(1_000_000u64) / col).to::<u128>()
}

async fn receipt_status(provider: &RootProvider, tx: B256) -> Option<bool> {
    provider
        .get_transaction_receipt(tx)
        .await
        .expect("eth_getTransactionReceipt")
        .map(|r| r.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_mines_as_expected_on_the_deployed_devnet() {
    let (anvil, provider) = start_anvil().await;

    let started = Instant::now();
    let d = deploy(&anvil.http_url()).await.unwrap_or_else(|e| panic!("deploy failed: {e}"));
    let deploy_time = started.elapsed();
    assert!(deploy_time < Duration::from_secs(10), "deploy took {deploy_time:?}");
    eprintln!("deployed {} contracts in {deploy_time:?} (block {})", d.contracts.len(), d.block);

    // The generated config is accepted by the loader and protects all ten demo contracts.
    let toml = config_toml(&d, "ws://127.0.0.1:8546", "PREEMPT_GUARDIAN_KEY");
    let config =
        Config::parse(&toml, Path::new("devnet.toml")).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(config.protected.len(), 10);

    // The state the brief promises.
    let eth = |n: u64| U256::from(n) * U256::from(10u64).pow(U256::from(18u64));
    for vault in ["EthVault", "EthVaultFixed"] {
        let balance =
            provider.get_balance(d.address(vault).expect("vault")).await.expect("balance");
        assert_eq!(balance, eth(100), "{vault}");
    }
    assert_eq!(col_price_micro(&provider, &d).await, 1_000_000_000, "pair price is 1,000 DUSD/COL");
    for pool in ["LendingPool", "LendingPoolFixed"] {
        let pool = d.address(pool).expect("pool");
        assert!(view(&provider, pool, ILendingPoolViews::solventCall {}).await);
        assert_eq!(
            view(&provider, pool, ILendingPoolViews::totalDepositsCall {}).await,
            eth(500_000)
        );
    }

    // Each scenario alone, mined on the deployed state.
    for &scenario in Scenario::all() {
        let snapshot = provider.anvil_snapshot().await.expect("evm_snapshot");
        let price_before = col_price_micro(&provider, &d).await;
        let tx = send_scenario(&anvil.http_url(), &d, scenario)
            .await
            .unwrap_or_else(|e| panic!("{scenario}: {e}"));
        assert_eq!(receipt_status(&provider, tx).await, None, "{scenario}: mined before evm_mine");
        provider.evm_mine(None).await.expect("evm_mine");
        let receipt =
            provider.get_transaction_receipt(tx).await.expect("eth_getTransactionReceipt");
        let receipt = receipt.unwrap_or_else(|| panic!("{scenario}: not mined by evm_mine"));
        let status = receipt.status();
        assert_eq!(status, !scenario.reverts(), "{scenario}: receipt status");
        let sent = provider.get_transaction_by_hash(tx).await.expect("eth_getTransactionByHash");
        let sent = sent.unwrap_or_else(|| panic!("{scenario}: tx not found"));
        // A revert must come from the contract's logic, not from running out of gas.
        assert!(
            receipt.gas_used < sent.gas_limit(),
            "{scenario}: used all {} gas",
            receipt.gas_used
        );
        let expected_type = match scenario {
            Scenario::VaultDeposit => 0,
            Scenario::PoolDeposit => 1,
            _ => 2,
        };
        assert_eq!(sent.ty(), expected_type, "{scenario}: tx type");
        if scenario == Scenario::PoolDeposit {
            assert!(sent.access_list().is_some_and(|l| !l.is_empty()), "{scenario}: access list");
        }

        let price_after = col_price_micro(&provider, &d).await;
        let moved_bps =
            (price_after as i128 - price_before as i128) * 10_000 / price_before as i128;
        match scenario {
            Scenario::Swap1Pct => {
                assert!((80..=120).contains(&moved_bps), "{scenario} moved {moved_bps} bps")
            }
            Scenario::Swap20Pct => {
                assert!((1_800..=2_200).contains(&moved_bps), "{scenario} moved {moved_bps} bps")
            }
            Scenario::VaultReentrancyAttack => {
                let left = provider
                    .get_balance(d.address("EthVault").expect("EthVault"))
                    .await
                    .expect("balance");
                assert_eq!(left, U256::ZERO, "{scenario}: the vault is drained");
            }
            Scenario::TreasuryTakeoverAttack => {
                let left = provider
                    .get_balance(d.address("Treasury").expect("Treasury"))
                    .await
                    .expect("balance");
                assert_eq!(left, U256::ZERO, "{scenario}: the treasury is swept");
            }
            Scenario::PriceManipulationAttack => {
                let pool = d.address("LendingPool").expect("LendingPool");
                assert!(
                    !view(&provider, pool, ILendingPoolViews::solventCall {}).await,
                    "{scenario}: pool insolvent"
                );
            }
            Scenario::PoolBorrowSmall | Scenario::FlashLoanSafe => {
                let pool = d.address("LendingPool").expect("LendingPool");
                assert!(
                    view(&provider, pool, ILendingPoolViews::solventCall {}).await,
                    "{scenario}: pool solvent"
                );
            }
            _ => {}
        }
        eprintln!(
            "ok: {scenario} (success {status}, gas {} of {})",
            receipt.gas_used,
            sent.gas_limit()
        );
        assert!(
            provider.anvil_revert(snapshot).await.expect("evm_revert"),
            "{scenario}: evm_revert"
        );
    }

    // Every non-attack scenario that succeeds alone also succeeds when all are pending together
    // (same-account scenarios take consecutive nonces; no two touch state another relies on).
    let together: Vec<Scenario> =
        Scenario::all().iter().copied().filter(|s| !s.is_attack() && !s.reverts()).collect();
    let mut sent = Vec::new();
    for &scenario in &together {
        let tx = send_scenario(&anvil.http_url(), &d, scenario)
            .await
            .unwrap_or_else(|e| panic!("{scenario}: {e}"));
        sent.push((scenario, tx));
    }
    for _ in 0..10 {
        provider.evm_mine(None).await.expect("evm_mine");
    }
    for (scenario, tx) in sent {
        assert_eq!(
            receipt_status(&provider, tx).await,
            Some(true),
            "{scenario} sent with the others"
        );
    }
    eprintln!("total {:?}", started.elapsed());
}
