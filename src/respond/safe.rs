//! The pause through a Safe (1.4.1) that holds the pause role: the guardian's tx calls the
//! Safe's `execTransaction` wrapping the containment call, with the guardian's owner signature
//! (EIP-712 over the Safe transaction when the Safe's nonce is known, else the owner's approval
//! as the tx's own sender), or `execTransactionFromModule` when the guardian is a module.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::{Eip712Domain, SolCall, SolStruct},
    transports::TransportError,
};
use thiserror::Error;

use super::pauser::SigningKey;
use crate::{
    config::{GuardianSafe, SafeRole, pause_gas_floor},
    types::abi::{ISafe, SafeTx},
};

/// `Enum.Operation.Call`: the Safe calls the target (never a delegatecall).
const CALL: u8 = 0;

/// Gas `execTransaction` adds around the containment call, measured on anvil (tests/it/safe.rs)
/// for a 1-of-2 Safe 1.4.1 behind its proxy: `EthVault.pause()` took 44,701 gas sent directly
/// and 92,923 through the Safe (+48.2k, the Safe's nonce going 0 → 1, a fresh storage write;
/// ~17k less once it is non-zero), its ~600 bytes of calldata included. Kept with room: a
/// pause that runs out of gas inside the Safe is a pause that did not happen.
pub const SAFE_OWNER_OVERHEAD_GAS: u64 = 60_000;

/// The same for `execTransactionFromModule` (no signature, no nonce): 57,730 gas, +13.0k.
pub const SAFE_MODULE_OVERHEAD_GAS: u64 = 30_000;

/// What the containment call itself needs beyond `pause_gas_floor`'s one slot rewrite: a pause
/// flag usually goes from 0 to 1, a fresh write (22,100 instead of 5,000).
const PAUSE_FLAG_SET_GAS: u64 = 17_100;

/// The least gas a pause through the Safe may be sent with, for containment `calldata`.
pub fn safe_pause_gas_floor(role: SafeRole, calldata: &[u8]) -> u64 {
    let overhead = match role {
        SafeRole::Owner => SAFE_OWNER_OVERHEAD_GAS,
        SafeRole::Module => SAFE_MODULE_OVERHEAD_GAS,
    };
    pause_gas_floor(calldata) + PAUSE_FLAG_SET_GAS + overhead
}

/// The hash an owner signs for the Safe at `safe` to call `to` with `data` (no value, a plain
/// call, no refund: the outer tx pays its own gas), at Safe nonce `nonce`.
pub fn safe_tx_hash(chain_id: u64, safe: Address, to: Address, data: &Bytes, nonce: u64) -> B256 {
    let tx = SafeTx {
        to,
        value: U256::ZERO,
        data: data.clone(),
        operation: CALL,
        safeTxGas: U256::ZERO,
        baseGas: U256::ZERO,
        gasPrice: U256::ZERO,
        gasToken: Address::ZERO,
        refundReceiver: Address::ZERO,
        nonce: U256::from(nonce),
    };
    // Safe 1.4.1's domain has no name or version: `EIP712Domain(uint256 chainId,address verifyingContract)`.
    let domain = Eip712Domain::new(None, None, Some(U256::from(chain_id)), Some(safe), None);
    tx.eip712_signing_hash(&domain)
}

/// The calldata the guardian sends to the Safe to make the containment call `(to, data)`.
/// `safe_nonce` known: the owner's EIP-712 signature for it; unknown: the owner's approval as
/// the tx's sender (`v = 1`, valid whatever the Safe's nonce, because the guardian sends it).
pub(super) fn wrap(
    safe: &GuardianSafe,
    owner: Address,
    key: &SigningKey,
    chain_id: u64,
    to: Address,
    data: &Bytes,
    safe_nonce: Option<u64>,
) -> Bytes {
    if safe.role == SafeRole::Module {
        let call = ISafe::execTransactionFromModuleCall {
            to,
            value: U256::ZERO,
            data: data.clone(),
            operation: CALL,
        };
        return call.abi_encode().into();
    }
    let signature = match safe_nonce {
        Some(nonce) => {
            let (compact, parity) =
                key.sign_hash(safe_tx_hash(chain_id, safe.address, to, data, nonce));
            let mut sig = Vec::with_capacity(65);
            sig.extend_from_slice(&compact);
            sig.push(27 + u8::from(parity));
            sig
        }
        None => approved_by_sender(owner),
    };
    let call = ISafe::execTransactionCall {
        to,
        value: U256::ZERO,
        data: data.clone(),
        operation: CALL,
        safeTxGas: U256::ZERO,
        baseGas: U256::ZERO,
        gasPrice: U256::ZERO,
        gasToken: Address::ZERO,
        refundReceiver: Address::ZERO,
        signatures: signature.into(),
    };
    call.abi_encode().into()
}

/// Safe's "pre-validated" signature: `r` = the owner, `s` = 0, `v` = 1; accepted when the
/// owner is `msg.sender` of `execTransaction`.
fn approved_by_sender(owner: Address) -> Vec<u8> {
    let mut sig = vec![0u8; 65];
    sig[12..32].copy_from_slice(owner.as_slice());
    sig[64] = 1;
    sig
}

/// Reading a Safe's state from a node failed.
#[derive(Debug, Error)]
pub enum SafeError {
    #[error("Safe {safe}: eth_call {function}: {source}")]
    Rpc {
        safe: Address,
        function: &'static str,
        #[source]
        source: TransportError,
    },
    #[error("Safe {safe}: {function} returned {output}, which is not a Safe's answer")]
    Decode { safe: Address, function: &'static str, output: Bytes },
    #[error(
        "Safe {safe}: the guardian {guardian} is not an owner of it, or it needs {threshold} \
         signatures (a pause needs a 1-of-N Safe)"
    )]
    NotSoleSigner { safe: Address, guardian: Address, threshold: u64 },
    #[error("Safe {safe}: the guardian {guardian} is not an enabled module of it")]
    NotModule { safe: Address, guardian: Address },
}

async fn view<P: Provider, C: SolCall>(
    provider: &P,
    safe: Address,
    function: &'static str,
    call: C,
) -> Result<C::Return, SafeError> {
    let request = TransactionRequest::default().to(safe).input(call.abi_encode().into());
    let output =
        provider.call(request).await.map_err(|source| SafeError::Rpc { safe, function, source })?;
    C::abi_decode_returns(&output).map_err(|_| SafeError::Decode { safe, function, output })
}

/// The Safe's nonce at the node's latest block: what the next `execTransaction` must be signed
/// for. Read on each head by whoever calls `prepare`.
pub async fn read_safe_nonce<P: Provider>(provider: &P, safe: Address) -> Result<u64, SafeError> {
    let nonce = view(provider, safe, "nonce()", ISafe::nonceCall {}).await?;
    u64::try_from(nonce).map_err(|_| SafeError::Decode {
        safe,
        function: "nonce()",
        output: Bytes::from(nonce.to_be_bytes_vec()),
    })
}

/// At start: the guardian can pause through the Safe on its own (an owner of a Safe whose
/// threshold is 1, or an enabled module). A Safe that needs two signatures would take every
/// pause and revert it.
pub async fn check_safe_guardian<P: Provider>(
    provider: &P,
    safe: &GuardianSafe,
    guardian: Address,
) -> Result<(), SafeError> {
    let address = safe.address;
    match safe.role {
        SafeRole::Module => {
            let call = ISafe::isModuleEnabledCall { module: guardian };
            if !view(provider, address, "isModuleEnabled(address)", call).await? {
                return Err(SafeError::NotModule { safe: address, guardian });
            }
        }
        SafeRole::Owner => {
            let owner =
                view(provider, address, "isOwner(address)", ISafe::isOwnerCall { owner: guardian })
                    .await?;
            let threshold =
                view(provider, address, "getThreshold()", ISafe::getThresholdCall {}).await?;
            let threshold = u64::try_from(threshold).unwrap_or(u64::MAX);
            if !owner || threshold != 1 {
                return Err(SafeError::NotSoleSigner { safe: address, guardian, threshold });
            }
        }
    }
    Ok(())
}
