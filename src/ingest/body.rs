//! The common pending tx bodies (legacy, EIP-2930, EIP-1559), read straight into their signed
//! form. alloy's own `Transaction` deserializer buffers the whole object before it picks a
//! variant: measured live, right after an idle spell, decoding a frame took ~50 µs against
//! ~5 µs in a hot loop, on the path of every attack.
//!
//! Nothing is trusted on the way: the caller recomputes the hash from the signed fields read
//! here and compares it with the body's own `hash`. A body this reader does not know (another
//! type, an escaped string, a field of the wrong shape), or whose fields do not hash to its
//! claim, goes to alloy's deserializer, which then says what is wrong with it.

use alloy::{
    consensus::{TxEip1559, TxEip2930, TxLegacy, TypedTransaction},
    eips::eip2930::AccessList,
    primitives::{Address, B256, Bytes, Signature, TxKind, U256, hex},
};
use serde::Deserialize;

/// The fields of a body this reader uses; the others (block fields, `gasPrice` of a 1559 tx,
/// `v` beside `yParity`) are skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(rename = "type", default)]
    kind: Option<&'a str>,
    #[serde(default)]
    chain_id: Option<&'a str>,
    nonce: &'a str,
    gas: &'a str,
    #[serde(default)]
    gas_price: Option<&'a str>,
    #[serde(default)]
    max_fee_per_gas: Option<&'a str>,
    #[serde(default)]
    max_priority_fee_per_gas: Option<&'a str>,
    #[serde(default)]
    to: Option<&'a str>,
    value: &'a str,
    input: &'a str,
    #[serde(default)]
    access_list: Option<AccessList>,
    #[serde(default)]
    v: Option<&'a str>,
    #[serde(default)]
    y_parity: Option<&'a str>,
    r: &'a str,
    s: &'a str,
    hash: &'a str,
    from: &'a str,
}

/// A body read into its unsigned tx, signature, claimed hash and claimed sender. `None`: not
/// one this reader knows; alloy's deserializer takes it.
pub(super) fn read(text: &str) -> Option<(TypedTransaction, Signature, B256, Address)> {
    let body: Body<'_> = serde_json::from_str(text).ok()?;
    let claimed: B256 = body.hash.parse().ok()?;
    let from: Address = body.from.parse().ok()?;
    let to = match body.to {
        Some(to) => TxKind::Call(to.parse().ok()?),
        None => TxKind::Create,
    };
    let nonce = quantity(body.nonce)?;
    let gas_limit = quantity(body.gas)?;
    let value: U256 = body.value.parse().ok()?;
    let input = Bytes::from(hex::decode(body.input).ok()?);
    let (r, s) = (body.r.parse::<U256>().ok()?, body.s.parse::<U256>().ok()?);
    let kind = match body.kind {
        Some(k) => quantity(k)?,
        None => 0,
    };
    // A typed tx's parity is `yParity`, or `v` where a node sends only that.
    let typed_parity = || match quantity(body.y_parity.or(body.v)?)? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    };
    let (tx, parity) = match kind {
        0 => {
            // `v` holds the parity, and the chain id since EIP-155 (`35 + 2 * chain + parity`).
            let (chain_id, parity) = match quantity(body.v?)? {
                v @ (27 | 28) => (None, v == 28),
                v if v >= 35 => (Some((v - 35) / 2), (v - 35) % 2 == 1),
                _ => return None,
            };
            let tx = TxLegacy {
                chain_id,
                nonce,
                gas_price: quantity(body.gas_price?)?.into(),
                gas_limit,
                to,
                value,
                input,
            };
            (TypedTransaction::Legacy(tx), parity)
        }
        1 => {
            let tx = TxEip2930 {
                chain_id: quantity(body.chain_id?)?,
                nonce,
                gas_price: quantity(body.gas_price?)?.into(),
                gas_limit,
                to,
                value,
                access_list: body.access_list.unwrap_or_default(),
                input,
            };
            (TypedTransaction::Eip2930(tx), typed_parity()?)
        }
        2 => {
            let tx = TxEip1559 {
                chain_id: quantity(body.chain_id?)?,
                nonce,
                gas_limit,
                max_fee_per_gas: quantity(body.max_fee_per_gas?)?.into(),
                max_priority_fee_per_gas: quantity(body.max_priority_fee_per_gas?)?.into(),
                to,
                value,
                access_list: body.access_list.unwrap_or_default(),
                input,
            };
            (TypedTransaction::Eip1559(tx), typed_parity()?)
        }
        _ => return None,
    };
    Some((tx, Signature::new(r, s, parity), claimed, from))
}

/// A JSON-RPC quantity (`0x`-prefixed hex, no more than 64 bits).
fn quantity(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}
