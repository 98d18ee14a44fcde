//! Safes on the dev net: the real Safe 1.4.1 singleton, proxy factory and fallback handler
//! (npm `@safe-global/safe-contracts`), a 1-of-2 Safe owned by the guardian and the spare dev
//! account, and a 1-of-1 Safe of the spare account with the guardian enabled as a module. Each
//! Safe is the guardian of its own `EthVault` (funded as the demo's is), and a reentrancy attack
//! contract is aimed at each vault.

use std::{collections::HashMap, fmt::Write as _};

use alloy::{
    consensus::{TxEip1559, TypedTransaction},
    primitives::{Address, B256, Bytes, TxKind, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol,
    sol_types::{SolCall, SolValue},
};
use serde::{Deserialize, Serialize};

use super::{
    DevAccount, DevnetError,
    abi::{IEthAttack, IEthVault},
    accounts::{Role, dev_accounts},
    artifacts::Artifact,
    deploy::{Deployment, whole},
    node::{DevNode, SentStep},
};
use crate::types::abi::ISafe;

sol! {
    interface ISafeProxyFactory {
        function createProxyWithNonce(address singleton, bytes initializer, uint256 saltNonce)
            external returns (address proxy);
    }
}

/// The spare dev account (index 9): the Safes' other owner.
const SPARE: usize = 9;

/// Gas for a proxy plus a setup that writes two owners and a fallback handler, with room.
const CREATE_SAFE_GAS: u64 = 600_000;
const CALL_GAS: u64 = 300_000;

/// What `deploy_safe` put on chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SafeDeployment {
    pub singleton: Address,
    pub proxy_factory: Address,
    pub fallback_handler: Address,
    /// 1-of-2, owned by the guardian and the spare account; the guardian of `vault`.
    pub safe: Address,
    pub owners: Vec<Address>,
    /// 1-of-1 of the spare account, the guardian an enabled module; the guardian of `module_vault`.
    pub module_safe: Address,
    pub vault: Address,
    pub vault_attack: Address,
    pub module_vault: Address,
    pub module_vault_attack: Address,
}

/// Deploys the Safe contracts, both Safes and their vaults on the dev node at `rpc_url`, after
/// `deploy` (it adds `Safe`, `ModuleSafe`, `SafeVault`, `SafeVaultAttack`, `ModuleVault` and
/// `ModuleVaultAttack` to `d.contracts`). Mines as it goes, like `deploy`.
pub async fn deploy_safe(rpc_url: &str, d: &mut Deployment) -> Result<SafeDeployment, DevnetError> {
    let node = DevNode::connect(rpc_url).await?;
    let accounts = dev_accounts();
    let guardian = Role::Guardian.account().address;
    let spare = accounts[SPARE].clone();
    let mut batch = Batch::new(&node);

    // ---- the Safe contracts ----
    let deployer = Role::Deployer.account();
    let singleton = batch.deploy("Safe singleton", &deployer, Artifact::Safe, &[]).await?;
    let proxy_factory =
        batch.deploy("SafeProxyFactory", &deployer, Artifact::SafeProxyFactory, &[]).await?;
    let fallback_handler = batch
        .deploy(
            "CompatibilityFallbackHandler",
            &deployer,
            Artifact::CompatibilityFallbackHandler,
            &[],
        )
        .await?;
    batch.flush().await?;

    // ---- two Safes (addresses from a call first: CREATE2 on the initializer), their vaults ----
    let owners = vec![guardian, spare.address];
    let create = |owners: Vec<Address>, salt: u64| ISafeProxyFactory::createProxyWithNonceCall {
        singleton,
        initializer: ISafe::setupCall {
            owners,
            threshold: U256::from(1),
            to: Address::ZERO,
            data: Bytes::new(),
            fallbackHandler: fallback_handler,
            paymentToken: Address::ZERO,
            payment: U256::ZERO,
            paymentReceiver: Address::ZERO,
        }
        .abi_encode()
        .into(),
        saltNonce: U256::from(salt),
    };
    let mut safes = Vec::new();
    for (step, call) in [
        ("create the guardian's 1-of-2 Safe", create(owners.clone(), 1)),
        ("create the spare account's 1-of-1 Safe", create(vec![spare.address], 2)),
    ] {
        let safe = batch.would_return(deployer.address, proxy_factory, &call, step).await?;
        let input = call.abi_encode().into();
        batch.call(step, &deployer, proxy_factory, input, U256::ZERO, CREATE_SAFE_GAS).await?;
        safes.push(safe);
    }
    let (safe, module_safe) = (safes[0], safes[1]);
    let attacker = Role::Attacker.account();
    let mut vaults = Vec::new();
    for (name, guardian_safe) in [("SafeVault", safe), ("ModuleVault", module_safe)] {
        let vault =
            batch.deploy(name, &deployer, Artifact::EthVault, &guardian_safe.abi_encode()).await?;
        let attack = batch
            .deploy(
                &format!("{name}Attack"),
                &attacker,
                Artifact::VaultReentrancyAttack,
                &vault.abi_encode(),
            )
            .await?;
        vaults.push((name, vault, attack));
    }
    batch.flush().await?;

    // ---- deposits as in the demo's vault, and the guardian enabled as a module ----
    for &(name, vault, _) in &vaults {
        let deposit: Bytes = IEthVault::depositCall {}.abi_encode().into();
        let whale = Role::Whale.account();
        let user = Role::User.account();
        let step = format!("whale: {name}.deposit(90 ETH)");
        batch.call(step, &whale, vault, deposit.clone(), whole(90), CALL_GAS).await?;
        let step = format!("user: {name}.deposit(10 ETH)");
        batch.call(step, &user, vault, deposit, whole(10), CALL_GAS).await?;
    }
    let enable = ISafe::execTransactionCall {
        to: module_safe,
        value: U256::ZERO,
        data: ISafe::enableModuleCall { module: guardian }.abi_encode().into(),
        operation: 0,
        safeTxGas: U256::ZERO,
        baseGas: U256::ZERO,
        gasPrice: U256::ZERO,
        gasToken: Address::ZERO,
        refundReceiver: Address::ZERO,
        signatures: approved_by_sender(spare.address),
    };
    let step = "spare: ModuleSafe.enableModule(guardian)";
    batch.call(step, &spare, module_safe, enable.abi_encode().into(), U256::ZERO, CALL_GAS).await?;
    batch.flush().await?;

    let [(_, vault, vault_attack), (_, module_vault, module_vault_attack)] = [vaults[0], vaults[1]];
    for (name, address) in [
        ("Safe", safe),
        ("ModuleSafe", module_safe),
        ("SafeVault", vault),
        ("SafeVaultAttack", vault_attack),
        ("ModuleVault", module_vault),
        ("ModuleVaultAttack", module_vault_attack),
    ] {
        d.contracts.insert(name.to_string(), address);
    }
    Ok(SafeDeployment {
        singleton,
        proxy_factory,
        fallback_handler,
        safe,
        owners,
        module_safe,
        vault,
        vault_attack,
        module_vault,
        module_vault_attack,
    })
}

/// Safe's signature of an owner who is the tx's sender: `r` = owner, `s` = 0, `v` = 1.
fn approved_by_sender(owner: Address) -> Bytes {
    let mut sig = vec![0u8; 65];
    sig[12..32].copy_from_slice(owner.as_slice());
    sig[64] = 1;
    sig.into()
}

/// A preempt config that protects the Safe-guarded vault (`module`: the module Safe's vault)
/// and pauses through its Safe, watching `node_url`, the guardian key from `guardian_key_env`.
pub fn safe_config_toml(
    s: &SafeDeployment,
    node_url: &str,
    guardian_key_env: &str,
    module: bool,
) -> String {
    let (safe, vault, name, role) = if module {
        (s.module_safe, s.module_vault, "ModuleVault", "\nsafe_role = \"module\"")
    } else {
        (s.safe, s.vault, "SafeVault", "")
    };
    let mut out = String::new();
    let _ = writeln!(out, "[[node]]\nname = \"anvil\"\nurl = \"{node_url}\"\n");
    let _ =
        writeln!(out, "[guardian]\nkey = \"env:{guardian_key_env}\"\nsafe = \"{safe}\"{role}\n");
    let _ = writeln!(out, "[[protect]]\nname = \"{name}\"\naddress = \"{vault}\"");
    let _ = writeln!(out, "drain_threshold_bps = 1000");
    let _ = writeln!(out, "claims = [{{ view = \"balances(address)\", asset = \"eth\" }}]");
    let _ = writeln!(out, "invariants = [\"totalAssets() >= totalDeposits()\"]");
    out
}

/// The attacker's `attack{10 ETH}()` on `attack_contract` (a `VaultReentrancyAttack`), sent to
/// the pool unmined with the demo's fees (`2 × base fee + 1 gwei`, 1 gwei tip); its hash.
pub async fn send_vault_attack(
    rpc_url: &str,
    attack_contract: Address,
) -> Result<B256, DevnetError> {
    let node = DevNode::connect(rpc_url).await?;
    let attacker = Role::Attacker.account();
    let input: Bytes = IEthAttack::attackCall {}.abi_encode().into();
    let request = TransactionRequest::default()
        .from(attacker.address)
        .to(attack_contract)
        .value(whole(10))
        .input(input.clone().into());
    let estimate =
        node.provider.estimate_gas(request).await.map_err(|source| DevnetError::Rpc {
            action: format!("eth_estimateGas for the attack on {attack_contract}"),
            source,
        })?;
    let mut batch = Batch::new(&node);
    let nonce = batch.nonce(attacker.address).await?;
    let fees = node.fees().await?;
    let tx = TypedTransaction::Eip1559(TxEip1559 {
        chain_id: node.chain_id,
        nonce,
        gas_limit: estimate.saturating_mul(3) / 2 + 50_000,
        max_fee_per_gas: fees.max_fee_per_gas,
        max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        to: TxKind::Call(attack_contract),
        value: whole(10),
        access_list: Default::default(),
        input,
    });
    let what = format!("attack on {attack_contract}");
    let raw = node.sign(&attacker.signer, tx, &what)?;
    node.send_raw(&raw, &what).await
}

/// A set-up tx waiting for the next flush.
#[derive(Debug)]
struct Queued {
    step: String,
    from: DevAccount,
    nonce: u64,
    to: TxKind,
    value: U256,
    input: Bytes,
    gas_limit: u64,
}

/// Set-up txs with nonces counted locally (so addresses are known before mining), sent and
/// mined a batch at a time; within a batch only one sender's txs may depend on each other.
#[derive(Debug)]
struct Batch<'a> {
    node: &'a DevNode,
    nonces: HashMap<Address, u64>,
    queued: Vec<Queued>,
}

impl<'a> Batch<'a> {
    fn new(node: &'a DevNode) -> Self {
        Self { node, nonces: HashMap::new(), queued: Vec::new() }
    }

    async fn nonce(&mut self, from: Address) -> Result<u64, DevnetError> {
        let next = match self.nonces.get(&from) {
            Some(n) => *n,
            None => self.node.pending_nonce(from).await?,
        };
        self.nonces.insert(from, next + 1);
        Ok(next)
    }

    async fn deploy(
        &mut self,
        name: &str,
        from: &DevAccount,
        artifact: Artifact,
        args: &[u8],
    ) -> Result<Address, DevnetError> {
        let mut code = artifact.creation_code()?.to_vec();
        code.extend_from_slice(args);
        let nonce = self.nonce(from.address).await?;
        // Code deposit is 200 gas a byte, calldata up to 16; the rest covers constructors.
        let gas_limit = 150_000 + 250 * code.len() as u64;
        self.queued.push(Queued {
            step: format!("deploy {name}"),
            from: from.clone(),
            nonce,
            to: TxKind::Create,
            value: U256::ZERO,
            input: code.into(),
            gas_limit,
        });
        Ok(from.address.create(nonce))
    }

    async fn call(
        &mut self,
        step: impl Into<String>,
        from: &DevAccount,
        to: Address,
        input: Bytes,
        value: U256,
        gas_limit: u64,
    ) -> Result<(), DevnetError> {
        let nonce = self.nonce(from.address).await?;
        self.queued.push(Queued {
            step: step.into(),
            from: from.clone(),
            nonce,
            to: TxKind::Call(to),
            value,
            input,
            gas_limit,
        });
        Ok(())
    }

    /// What `call` returns when run now from `from` (an address it would create, say).
    async fn would_return<C: SolCall<Return = Address>>(
        &self,
        from: Address,
        to: Address,
        call: &C,
        step: &str,
    ) -> Result<Address, DevnetError> {
        let request =
            TransactionRequest::default().from(from).to(to).input(call.abi_encode().into());
        let output =
            self.node.provider.call(request).await.map_err(|source| DevnetError::Rpc {
                action: format!("eth_call to {step}"),
                source,
            })?;
        C::abi_decode_returns(&output).map_err(|e| DevnetError::UnexpectedNodeState {
            what: format!("{step}: the call returned {output}: {e}"),
        })
    }

    /// Signs, sends and mines everything queued.
    async fn flush(&mut self) -> Result<u64, DevnetError> {
        let fees = self.node.fees().await?;
        let mut sent = Vec::with_capacity(self.queued.len());
        for q in std::mem::take(&mut self.queued) {
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
            let raw = self.node.sign(&q.from.signer, tx, &q.step)?;
            let tx = self.node.send_raw(&raw, &q.step).await?;
            sent.push(SentStep { step: q.step, tx });
        }
        self.node.mine_and_check(&sent).await
    }
}
