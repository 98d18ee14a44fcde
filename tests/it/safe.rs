//! A Safe as guardian, on anvil with the real Safe 1.4.1 contracts: the pause goes through
//! `execTransaction` signed by the guardian (an owner of a 1-of-2 Safe), or through
//! `execTransactionFromModule` (the guardian a module), lands ahead of the attack in the same
//! block, and the attack fails against the paused vault; `preempt run` does it as a process.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::{
    consensus::BlockHeader as _,
    eips::{BlockNumberOrTag, eip1559::BaseFeeParams},
    primitives::{Address, B256, Bytes, U256},
    providers::{Provider, RootProvider},
    rpc::types::TransactionRequest,
    sol,
    sol_types::SolCall,
};
use preempt::{
    config::Config,
    devnet::{SafeDeployment, deploy_safe, dev_accounts, safe_config_toml, send_vault_attack},
    respond::{
        AttackFees, Decision, HeadNonces, PausePlan, Pauser, Responder, SafeError,
        check_safe_guardian, read_safe_nonce, safe_tx_hash,
    },
};

use crate::support::{
    Devnet,
    guard::{GUARDIAN_KEY, wait_pending_from},
};

sol! {
    interface ISafeView {
        function getTransactionHash(
            address to,
            uint256 value,
            bytes data,
            uint8 operation,
            uint256 safeTxGas,
            uint256 baseGas,
            uint256 gasPrice,
            address gasToken,
            address refundReceiver,
            uint256 nonce
        ) external view returns (bytes32);
        function getOwners() external view returns (address[]);
        function getThreshold() external view returns (uint256);
    }
}

fn guardian() -> Address {
    dev_accounts()[1].address
}

struct SafeNet {
    devnet: Devnet,
    safes: SafeDeployment,
    provider: RootProvider,
}

async fn start() -> SafeNet {
    let devnet = Devnet::start().await;
    let mut deployment = devnet.deployment.clone();
    let safes =
        deploy_safe(&devnet.anvil.http_url(), &mut deployment).await.expect("deploy the Safes");
    let provider = RootProvider::new_http(devnet.anvil.http_url().parse().expect("url"));
    SafeNet { devnet, safes, provider }
}

impl SafeNet {
    fn config(&self, module: bool) -> Config {
        let text = safe_config_toml(&self.safes, &self.devnet.anvil.ws_url(), "UNUSED", module);
        Config::parse(&text, Path::new("safe.toml")).expect("the Safe config is valid")
    }

    async fn view<C: SolCall>(&self, to: Address, call: C) -> C::Return {
        let request = TransactionRequest::default().to(to).input(call.abi_encode().into());
        let out = self.provider.call(request).await.expect("eth_call");
        C::abi_decode_returns(&out).expect("decodes")
    }

    async fn paused(&self, vault: Address) -> bool {
        let request = TransactionRequest::default()
            .to(vault)
            .input(Bytes::from_static(&[0x5c, 0x97, 0x5a, 0xbb]).into());
        let out = self.provider.call(request).await.expect("paused()");
        out.last() == Some(&1)
    }

    /// The next block's base fee, the guardian's nonce, the chain id.
    async fn head(&self) -> (u64, u64, u64) {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .expect("rpc")
            .expect("latest block");
        let base_fee =
            block.header.next_block_base_fee(BaseFeeParams::ethereum()).expect("a London block");
        let nonce = self.provider.get_transaction_count(guardian()).await.expect("nonce");
        let chain_id = self.provider.get_chain_id().await.expect("chain id");
        (base_fee, nonce, chain_id)
    }

    async fn attack_fees(&self, attack: B256, base_fee: u64) -> AttackFees {
        let tx = self
            .provider
            .get_transaction_by_hash(attack)
            .await
            .expect("rpc")
            .expect("the attack is pending");
        AttackFees::of(&tx, base_fee)
    }

    /// (hash, sender) of each tx in the latest block, in order.
    async fn latest_block_txs(&self) -> Vec<(B256, Address)> {
        let block: serde_json::Value =
            self.devnet.rpc("eth_getBlockByNumber", serde_json::json!(["latest", true])).await;
        block["transactions"]
            .as_array()
            .expect("transactions")
            .iter()
            .map(|t| {
                (
                    t["hash"].as_str().expect("hash").parse().expect("hash"),
                    t["from"].as_str().expect("from").parse().expect("from"),
                )
            })
            .collect()
    }

    async fn receipt(&self, hash: B256) -> (bool, u64) {
        let r = self.provider.get_transaction_receipt(hash).await.expect("rpc").expect("mined");
        (r.status(), r.gas_used)
    }

    /// Mines one block and checks that `pause` is in it before `attack`, both from the block
    /// the attack targeted, the pause succeeded and the attack failed. Returns the pause's gas.
    async fn mine_and_check_order(&self, pause: B256, attack: B256) -> u64 {
        self.devnet.mine().await;
        let txs = self.latest_block_txs().await;
        let at = |h: B256| txs.iter().position(|(t, _)| *t == h);
        let (Some(p), Some(a)) = (at(pause), at(attack)) else {
            panic!("pause and attack both in the block: {txs:?}");
        };
        assert!(p < a, "pause at {p}, attack at {a}");
        let (pause_ok, gas) = self.receipt(pause).await;
        assert!(pause_ok, "the pause through the Safe succeeded");
        assert!(!self.receipt(attack).await.0, "the attack failed against the paused vault");
        gas
    }
}

fn plan_of(d: Decision) -> PausePlan {
    match d {
        Decision::Pause { plan } => plan,
        other => panic!("expected a pause, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_safes_are_real_1_of_n_safes_the_guardian_can_act_through() {
    let net = start().await;
    let s = &net.safes;
    let owners = net.view(s.safe, ISafeView::getOwnersCall {}).await;
    assert_eq!(owners.len(), 2);
    assert!(owners.contains(&guardian()) && owners.contains(&dev_accounts()[9].address));
    assert_eq!(net.view(s.safe, ISafeView::getThresholdCall {}).await, U256::from(1));
    assert_eq!(read_safe_nonce(&net.provider, s.safe).await.expect("nonce"), 0);
    // The module Safe's nonce moved once: the owner's tx that enabled the guardian as module.
    assert_eq!(read_safe_nonce(&net.provider, s.module_safe).await.expect("nonce"), 1);

    let owner_route = net.config(false).respond.safe.expect("a Safe");
    let module_route = net.config(true).respond.safe.expect("a Safe");
    check_safe_guardian(&net.provider, &owner_route, guardian()).await.expect("an owner");
    check_safe_guardian(&net.provider, &module_route, guardian()).await.expect("a module");
    // The guardian owns no part of the module Safe, and is no module of the 1-of-2 one.
    let wrong = preempt::config::GuardianSafe { address: s.module_safe, ..owner_route };
    let e = check_safe_guardian(&net.provider, &wrong, guardian()).await.expect_err("not an owner");
    assert!(matches!(e, SafeError::NotSoleSigner { threshold: 1, .. }), "{e}");
    let wrong = preempt::config::GuardianSafe { address: s.safe, ..module_route };
    let e = check_safe_guardian(&net.provider, &wrong, guardian()).await.expect_err("no module");
    assert!(matches!(e, SafeError::NotModule { .. }), "{e}");
    let e = read_safe_nonce(&net.provider, s.vault).await.expect_err("a vault is no Safe");
    assert!(e.to_string().contains("nonce()"), "{e}");

    // Our EIP-712 hash is the Safe's own.
    let data = Bytes::from_static(&[0x84, 0x56, 0xcb, 0x59]);
    let (_, _, chain_id) = net.head().await;
    let theirs = net
        .view(
            s.safe,
            ISafeView::getTransactionHashCall {
                to: s.vault,
                value: U256::ZERO,
                data: data.clone(),
                operation: 0,
                safeTxGas: U256::ZERO,
                baseGas: U256::ZERO,
                gasPrice: U256::ZERO,
                gasToken: Address::ZERO,
                refundReceiver: Address::ZERO,
                nonce: U256::from(7),
            },
        )
        .await;
    assert_eq!(safe_tx_hash(chain_id, s.safe, s.vault, &data, 7), theirs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_pause_for_the_safes_nonce_lands_ahead_of_the_attack_and_the_nonce_moves_once()
{
    let net = start().await;
    let config = net.config(false);
    let (base_fee, nonce, chain_id) = net.head().await;
    let safe_nonce = read_safe_nonce(&net.provider, net.safes.safe).await.expect("nonce");
    let pauser = Pauser::new(dev_accounts()[1].signer.clone(), chain_id, nonce);
    let mut responder = Responder::new(config.respond.clone(), Some(pauser));
    let head =
        HeadNonces { next_base_fee: base_fee, guardian_nonce: nonce, safe_nonce: Some(safe_nonce) };
    assert_eq!(responder.prepare(&config.protected, head).installed, 1);

    let attack = send_vault_attack(&net.devnet.anvil.http_url(), net.safes.vault_attack)
        .await
        .expect("attack sent");
    let fees = net.attack_fees(attack, base_fee).await;
    let plan = plan_of(responder.decide(&config.protected[0], Some((attack, fees)), base_fee));
    assert!(plan.presigned && plan.outbids_attack, "{plan:?}");
    assert_eq!((plan.safe, plan.safe_nonce), (Some(net.safes.safe), Some(safe_nonce)));
    let sent = net.provider.send_raw_transaction(&plan.raw).await.expect("the node takes it");
    assert_eq!(*sent.tx_hash(), plan.tx_hash);

    let gas = net.mine_and_check_order(plan.tx_hash, attack).await;
    assert!(net.paused(net.safes.vault).await, "the vault is paused");
    assert_eq!(
        read_safe_nonce(&net.provider, net.safes.safe).await.expect("nonce"),
        safe_nonce + 1
    );
    assert!(gas < plan.gas_limit, "{gas} gas used of {}", plan.gas_limit);
    println!("pause through execTransaction (Safe nonce 0 -> 1): {gas} gas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_a_module_the_guardian_pauses_with_no_signature_and_no_safe_nonce() {
    let net = start().await;
    let config = net.config(true);
    let (base_fee, nonce, chain_id) = net.head().await;
    let pauser = Pauser::new(dev_accounts()[1].signer.clone(), chain_id, nonce);
    let mut responder = Responder::new(config.respond.clone(), Some(pauser));
    let head = HeadNonces { next_base_fee: base_fee, guardian_nonce: nonce, safe_nonce: None };
    responder.prepare(&config.protected, head);
    let attack = send_vault_attack(&net.devnet.anvil.http_url(), net.safes.module_vault_attack)
        .await
        .expect("attack sent");
    let fees = net.attack_fees(attack, base_fee).await;
    let plan = plan_of(responder.decide(&config.protected[0], Some((attack, fees)), base_fee));
    assert!(plan.presigned);
    assert_eq!((plan.safe, plan.safe_nonce), (Some(net.safes.module_safe), None));
    let sent = net.provider.send_raw_transaction(&plan.raw).await.expect("the node takes it");
    assert_eq!(*sent.tx_hash(), plan.tx_hash);
    let gas = net.mine_and_check_order(plan.tx_hash, attack).await;
    assert!(net.paused(net.safes.module_vault).await);
    assert_eq!(read_safe_nonce(&net.provider, net.safes.module_safe).await.expect("nonce"), 1);
    println!("pause through execTransactionFromModule: {gas} gas");
}

/// `preempt run` as a process with its own config (the demo's would pause every demo
/// contract through the Safe, which guards only one of them).
struct Guard {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    incidents: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Guard {
    fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let incidents = dir.path().join("incidents.jsonl");
        let path = dir.path().join("preempt.toml");
        let text = format!("{config}\n[incidents]\npath = \"{}\"\n", incidents.display());
        std::fs::write(&path, text).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_preempt"))
            .args(["run", "--config"])
            .arg(&path)
            .env("PREEMPT_GUARDIAN_KEY", GUARDIAN_KEY)
            .env("RUST_LOG", "info,preempt=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn preempt run");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stderr, sink) = (child.stderr.take().expect("stderr"), Arc::clone(&log));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let guard = Self { child, log, incidents, _dir: dir };
        guard.wait_log(" ready", Duration::from_secs(30));
        guard
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }

    fn wait_log(&self, needle: &str, limit: Duration) {
        let started = Instant::now();
        while !self.log().contains(needle) {
            assert!(started.elapsed() < limit, "never logged `{needle}`:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.incidents)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preempt_run_with_a_safe_guardian_pauses_ahead_of_the_attack_in_the_same_block() {
    let net = start().await;
    let config =
        safe_config_toml(&net.safes, &net.devnet.anvil.ws_url(), "PREEMPT_GUARDIAN_KEY", false);
    let guard = Guard::start(&config);
    let safe_nonce = read_safe_nonce(&net.provider, net.safes.safe).await.expect("nonce");

    let attack = send_vault_attack(&net.devnet.anvil.http_url(), net.safes.vault_attack)
        .await
        .expect("attack sent");
    let pauses = wait_pending_from(&net.devnet, guardian(), 1, Duration::from_secs(20)).await;
    assert_eq!(pauses.len(), 1, "one pause in the pool:\n{}", guard.log());
    let pause: serde_json::Value =
        net.devnet.rpc("eth_getTransactionByHash", serde_json::json!([pauses[0]])).await;
    assert_eq!(
        pause["to"].as_str().map(str::to_lowercase),
        Some(format!("{:#x}", net.safes.safe)),
        "the guardian's tx goes to the Safe"
    );
    net.mine_and_check_order(pauses[0], attack).await;
    assert!(net.paused(net.safes.vault).await, "the vault is paused");
    assert_eq!(
        read_safe_nonce(&net.provider, net.safes.safe).await.expect("nonce"),
        safe_nonce + 1,
        "the Safe executed exactly one transaction"
    );

    guard.wait_log("pause landed", Duration::from_secs(10));
    let records = guard.records();
    let outcome = records.iter().find(|r| r["kind"] == "outcome").expect("outcome record");
    assert_eq!(outcome["same_block"], true, "{outcome}");
    assert_eq!(outcome["pause_before_attack"], true, "{outcome}");
    assert_eq!(outcome["attack_succeeded"], false, "{outcome}");
    assert_eq!(outcome["contract_paused"], true, "{outcome}");
    let detection = records.iter().find(|r| r["kind"] == "detection").expect("detection record");
    let plan = &detection["decisions"][0][1]["plan"];
    assert_eq!(
        plan["safe"].as_str().map(str::to_lowercase),
        Some(format!("{:#x}", net.safes.safe))
    );
}
