//! The probe on real fixture bytecode in an in-process EVM (no node): a re-entrancy drainer
//! deployed next to the vault it names is caught before its attack tx exists; a contract that
//! only reads the vault's views is probed and found harmless.

use std::{path::Path, sync::Arc};

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope, transaction::Recovered},
    primitives::{Address, B256, Bytes, Signature, TxKind, U256},
    sol_types::SolValue,
};
use revm::state::AccountInfo;

use super::*;
use crate::{
    config::Config,
    devnet::Artifact,
    fork::ForkCache,
    simulate::{SimBlock, Simulator},
    types::{CallFrame, Evidence, ProbeReach, Severity},
};

const OWNER: Address = Address::with_last_byte(0x0e);
const GUARDIAN: Address = Address::with_last_byte(0x0f);
const USER: Address = Address::with_last_byte(0x01);
const ATTACKER: Address = Address::with_last_byte(0xa7);

fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// The vault the owner's first deployment creates.
fn vault() -> Address {
    OWNER.create(0)
}

fn config() -> Config {
    let text = format!(
        r#"
[[protect]]
name = "EthVault"
address = "{}"
drain_threshold_bps = 1000
"#,
        vault()
    );
    Config::parse(&text, Path::new("test.toml")).expect("valid config")
}

/// A signed-looking tx (the signer is given, not recovered: the simulator only reads it).
fn tx(from: Address, nonce: u64, to: TxKind, input: Bytes, value: U256) -> Recovered<TxEnvelope> {
    let inner = TxEip1559 {
        chain_id: 1,
        nonce,
        gas_limit: 8_000_000,
        max_fee_per_gas: 1,
        max_priority_fee_per_gas: 0,
        to,
        value,
        input,
        access_list: Default::default(),
    };
    let signed = inner.into_signed(Signature::new(U256::ONE, U256::ONE, false));
    Recovered::new_unchecked(TxEnvelope::Eip1559(signed), from)
}

/// A simulator on an empty chain where the owner deployed the vault and the user put 50 ETH in.
fn chain() -> (Simulator, Config) {
    let config = config();
    let fork = Arc::new(ForkCache::new(1, None));
    for a in [OWNER, USER, ATTACKER] {
        fork.insert_account(a, AccountInfo { balance: eth(1_000), ..Default::default() });
    }
    let block = SimBlock {
        number: 2,
        timestamp: 1_700_000_000,
        base_fee: 0,
        gas_limit: 30_000_000,
        beneficiary: Address::ZERO,
        prevrandao: B256::ZERO,
        excess_blob_gas: 0,
    };
    let mut sim = Simulator::new(&config, fork, block, 1);
    let mut create = Artifact::EthVault.creation_code().expect("artifact").to_vec();
    create.extend(GUARDIAN.abi_encode());
    let steps = [
        tx(OWNER, 0, TxKind::Create, create.into(), U256::ZERO),
        // deposit()
        tx(USER, 0, TxKind::Call(vault()), Bytes::from_static(&[0xd0, 0xe3, 0x0d, 0xb0]), eth(50)),
    ];
    for (i, step) in steps.iter().enumerate() {
        let (result, state) = sim.execute(B256::with_last_byte(i as u8), step).expect("runs");
        assert!(result.is_success(), "set-up step {i}: {result:?}");
        sim.fork_view_mut().local_mut().apply_evm_state(&state);
    }
    sim.invalidate_baselines();
    (sim, config)
}

/// Creation code that returns `runtime` as the contract's code.
fn deploying(runtime: &[u8]) -> Vec<u8> {
    // PUSH1 len DUP1 PUSH1 12 PUSH1 0 CODECOPY PUSH1 0 RETURN, then the runtime.
    let mut code = vec![0x60, runtime.len() as u8, 0x80, 0x60, 12, 0x60, 0, 0x39, 0x60, 0, 0xf3];
    code.push(0x00);
    code.extend_from_slice(runtime);
    code
}

/// A lens: any call reads `vault.totalAssets()` and returns it (the vault's address is in its
/// code, so it is probed).
fn lens_runtime(vault: Address) -> Vec<u8> {
    // mstore(0, selector << 224)
    let mut code = vec![0x63, 0x01, 0xe1, 0xd1, 0x14, 0x60, 0xe0, 0x1b, 0x60, 0x00, 0x52];
    // staticcall(gas, vault, 0, 4, 0, 32)
    code.extend([0x60, 0x20, 0x60, 0x00, 0x60, 0x04, 0x60, 0x00, 0x73]);
    code.extend_from_slice(vault.as_slice());
    code.extend([0x5a, 0xfa, 0x50]);
    // return(0, 32)
    code.extend([0x60, 0x20, 0x60, 0x00, 0xf3]);
    code
}

#[test]
fn a_drainer_deployed_next_to_the_vault_is_caught_by_calling_its_attack_entry_point() {
    let (mut sim, config) = chain();
    let mut create = Artifact::VaultReentrancyAttack.creation_code().expect("artifact").to_vec();
    create.extend(vault().abi_encode());
    let deploy = tx(ATTACKER, 0, TxKind::Create, create.into(), U256::ZERO);
    let hash = B256::with_last_byte(0xd0);
    let outcome = sim.simulate(hash, &deploy).expect("deploy runs");
    assert!(creates_contracts(&outcome));
    assert!(detect(&outcome, &config.protected).is_empty(), "the deployment itself is harmless");

    let report = probe_pending_deploy(
        &mut sim,
        hash,
        &deploy,
        &outcome,
        &config.protected,
        ProbeBudget { time: Duration::from_secs(10), ..Default::default() },
        &|| false,
    )
    .expect("probe runs");
    assert_eq!(report.1, 1, "one contract probed");
    let report = report.0.expect("a finding");
    assert_eq!(report.contract, ATTACKER.create(0));
    let [finding] = report.findings.as_slice() else { panic!("{:?}", report.findings) };
    assert_eq!((finding.rule, finding.severity), (rule_names::PROBE, Severity::Critical));
    assert_eq!(finding.contract, vault());
    let Evidence::Probe { deployed, deployer, reach, entry, value, findings, .. } =
        &finding.evidence
    else {
        panic!("{:?}", finding.evidence)
    };
    assert_eq!((*deployed, *deployer), (ATTACKER.create(0), ATTACKER));
    assert_eq!(*reach, ProbeReach::Code(vault()));
    // attack() requires ETH: the retry sends a tenth of the vault's 50 ETH.
    assert_eq!((entry.as_str(), *value), ("attack()", eth(5)));
    assert!(findings.iter().any(|f| f.rule == rule_names::DRAIN), "{findings:?}");
    let probed = report.outcome.expect("the probed call");
    assert_eq!(
        (probed.tx_hash, probed.from, probed.to),
        (hash, ATTACKER, Some(ATTACKER.create(0)))
    );

    // The private layer is as it was: the drainer does not exist outside the probe.
    let after = sim.account(ATTACKER.create(0)).expect("readable");
    assert!(after.as_ref().is_none_or(|a| a.is_empty_code_hash()), "{after:?}");
    assert_eq!(sim.holdings_of(&config.protected[0]).expect("holdings")[0].1, eth(50));
}

#[test]
fn a_contract_that_only_reads_the_vault_is_probed_and_found_harmless() {
    let (mut sim, config) = chain();
    let deploy = tx(USER, 1, TxKind::Create, deploying(&lens_runtime(vault())).into(), U256::ZERO);
    let hash = B256::with_last_byte(0xd1);
    let outcome = sim.simulate(hash, &deploy).expect("deploy runs");
    assert!(creates_contracts(&outcome));
    let (result, state) = sim.execute(hash, &deploy).expect("runs");
    assert!(result.is_success());
    let created = created_contracts(&state, USER);
    assert_eq!(created.len(), 1);
    assert_eq!(reach(&created[0], &outcome, &config.protected), Some(ProbeReach::Code(vault())));
    sim.fork_view_mut().local_mut().apply_evm_state(&state);
    let report = probe(
        &mut sim,
        &created[0],
        hash,
        ProbeReach::Code(vault()),
        &config.protected,
        ProbeBudget { time: Duration::from_secs(10), ..Default::default() },
        &|| false,
    );
    // No dispatcher: every attack-shaped name is tried, then plain calldata.
    assert_eq!(report.calls, ATTACK_ENTRY_POINTS.len() + 1, "{report:?}");
    assert!(report.findings.is_empty() && report.outcome.is_none(), "{report:?}");
    assert!(!report.cut_short);
}

/// A contract that only reads the vault, deployed on the simulator's private layer.
fn deployed_lens(sim: &mut Simulator) -> NewContract {
    let deploy = tx(USER, 1, TxKind::Create, deploying(&lens_runtime(vault())).into(), U256::ZERO);
    let (_, state) = sim.execute(B256::ZERO, &deploy).expect("runs");
    let created = created_contracts(&state, USER);
    sim.fork_view_mut().local_mut().apply_evm_state(&state);
    created.into_iter().next().expect("the lens")
}

#[test]
fn the_budget_cuts_a_probe_short() {
    let (mut sim, config) = chain();
    let lens = deployed_lens(&mut sim);
    let budget = ProbeBudget { max_calls: 3, ..Default::default() };
    let report = probe(
        &mut sim,
        &lens,
        B256::ZERO,
        ProbeReach::Code(vault()),
        &config.protected,
        budget,
        &|| false,
    );
    assert_eq!(report.calls, 3);
    assert!(report.cut_short);
    assert!(!report.gave_way);
}

#[test]
fn a_probe_gives_way_between_calls_to_a_tx_waiting_for_the_worker() {
    let (mut sim, config) = chain();
    let lens = deployed_lens(&mut sim);
    // A tx lands in a lane after the second call.
    let asked = std::cell::Cell::new(0);
    let give_way = || {
        asked.set(asked.get() + 1);
        asked.get() > 2
    };
    let report = probe(
        &mut sim,
        &lens,
        B256::ZERO,
        ProbeReach::Code(vault()),
        &config.protected,
        ProbeBudget { time: Duration::from_secs(10), ..Default::default() },
        &give_way,
    );
    assert_eq!(report.calls, 2, "{report:?}");
    assert!(report.gave_way && report.cut_short, "{report:?}");
    assert!(report.findings.is_empty());
}

fn outcome_calling(target: Address) -> SimOutcome {
    SimOutcome {
        tx_hash: B256::ZERO,
        from: USER,
        to: None,
        success: true,
        gas_used: 100_000,
        failure: None,
        frames: vec![CallFrame {
            index: 0,
            parent: None,
            depth: 0,
            caller: USER,
            target,
            code: target,
            scheme: "CALL",
            value: U256::ZERO,
            selector: None,
            success: true,
            gas_used: 0,
        }],
        transfers: Vec::new(),
        holdings: Vec::new(),
        claims: Vec::new(),
        invariants: Vec::new(),
        reentries: Vec::new(),
        touched_protected: Vec::new(),
        ledgers: Vec::new(),
        sim_time: Default::default(),
        block_number: 1,
    }
}

#[test]
fn a_new_contract_reaches_a_protected_one_by_its_code_its_storage_or_its_deployment() {
    let config = config();
    let plain = NewContract {
        address: Address::with_last_byte(0x55),
        deployer: USER,
        code: Bytes::from_static(&[0x60, 0x00, 0x00]),
        stored: vec![U256::from(7u64)],
    };
    let elsewhere = outcome_calling(Address::with_last_byte(0x66));
    assert_eq!(reach(&plain, &elsewhere, &config.protected), None, "no link: not probed");

    let mut in_code = plain.clone();
    in_code.code = lens_runtime(vault()).into();
    assert_eq!(reach(&in_code, &elsewhere, &config.protected), Some(ProbeReach::Code(vault())));

    let mut in_storage = plain.clone();
    in_storage.stored.push(U256::from_be_slice(vault().as_slice()));
    assert_eq!(
        reach(&in_storage, &elsewhere, &config.protected),
        Some(ProbeReach::Storage(vault()))
    );

    assert_eq!(
        reach(&plain, &outcome_calling(vault()), &config.protected),
        Some(ProbeReach::Deployment(vault()))
    );
}

#[test]
fn entry_points_go_attack_names_first_then_the_dispatcher_then_no_calldata() {
    let attack = selector_of("attack()");
    let owner = selector_of("owner()");
    // DUP1 PUSH4 owner EQ .. DUP1 PUSH4 attack EQ
    let mut code = vec![0x80, 0x63];
    code.extend(owner);
    code.extend([0x14, 0x80, 0x63]);
    code.extend(attack);
    code.push(0x14);
    let names: Vec<String> =
        entries(&code, &ProbeBudget::default()).into_iter().map(|e| e.name).collect();
    assert_eq!(names, vec!["attack()".to_string(), "0x8da5cb5b".into(), "(no calldata)".into()]);
    let calldata = Entry { selector: Some(attack), name: String::new() }.calldata();
    assert_eq!(&calldata[..4], &attack);
    assert!(calldata.len() == 4 + ZERO_ARGS && calldata[4..].iter().all(|b| *b == 0));
}
