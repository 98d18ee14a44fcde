//! `[[protect]]` tables → `ProtectedContract`s: address, tokens, threshold, claims, invariants,
//! and the pause call.

use std::{collections::HashSet, str::FromStr};

use alloy::primitives::{Address, Bytes, hex};

use super::{
    Asset, ClaimView, ConfigError, Invariant, PAUSE_SELECTOR, PauseCall, ProtectedContract, limits,
    raw::{RawClaim, RawPause, RawProtected},
    selector,
    validate::Validator,
};

/// Longest text an error quotes back as "not an address": an address is 42 characters, and
/// anything much longer is not a typo of one (it may be a key).
const QUOTABLE_ADDRESS_LEN: usize = 44;

impl Validator<'_> {
    pub(super) fn protected(
        &self,
        raw: Vec<RawProtected>,
    ) -> Result<Vec<ProtectedContract>, ConfigError> {
        let mut seen = HashSet::new();
        let mut protected = Vec::with_capacity(raw.len());
        for (i, p) in raw.into_iter().enumerate() {
            let contract = self.contract(i, p)?;
            if !seen.insert(contract.address) {
                let reason = format!("{} is protected twice", contract.address);
                return Err(self.invalid(&format!("protect[{i}].address"), &reason));
            }
            protected.push(contract);
        }
        if protected.is_empty() {
            return Err(self.invalid("protect", "no contract to protect: add a [[protect]] table"));
        }
        Ok(protected)
    }

    fn contract(&self, i: usize, p: RawProtected) -> Result<ProtectedContract, ConfigError> {
        let key = |k: &str| format!("protect[{i}].{k}");
        if p.name.trim().is_empty() {
            return Err(self.invalid(&key("name"), "must not be empty"));
        }
        let address = self.address(&key("address"), &p.address)?;
        let tokens = p
            .tokens
            .iter()
            .enumerate()
            .map(|(j, t)| self.address(&key(&format!("tokens[{j}]")), t))
            .collect::<Result<Vec<_>, _>>()?;
        let drain_threshold_bps = self.in_range(
            &key("drain_threshold_bps"),
            p.drain_threshold_bps,
            &limits::DRAIN_THRESHOLD_BPS,
            "basis points of the holdings: 0 flags every wei, above 10000 nothing",
        )? as u32;
        let claims = p
            .claims
            .iter()
            .enumerate()
            .map(|(j, c)| self.claim(&key(&format!("claims[{j}]")), c, &tokens))
            .collect::<Result<Vec<_>, _>>()?;
        let invariants = p
            .invariants
            .iter()
            .enumerate()
            .map(|(j, s)| {
                Invariant::from_str(s)
                    .map_err(|r| self.invalid(&key(&format!("invariants[{j}]")), &r))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pause = self.pause_call(&key("pause"), p.pause, address)?;
        let trusted = p
            .trusted
            .iter()
            .enumerate()
            .map(|(j, t)| self.address(&key(&format!("trusted[{j}]")), t))
            .collect::<Result<Vec<_>, _>>()?;
        let price_move_bps = self.in_range(
            &key("price_move_bps"),
            p.price_move_bps,
            &limits::PRICE_MOVE_BPS,
            "basis points a read price may move inside one tx: under 10 every honest swap \
             trips it, above 10000 nothing does",
        )? as u32;
        Ok(ProtectedContract {
            name: p.name,
            address,
            tokens,
            drain_threshold_bps,
            claims,
            invariants,
            pause,
            trusted,
            price_move_bps,
            pulls_from_third_parties: p.pulls_from_third_parties,
        })
    }

    pub(super) fn address(&self, key: &str, s: &str) -> Result<Address, ConfigError> {
        Address::from_str(s.trim()).map_err(|e| {
            let what = if s.len() <= QUOTABLE_ADDRESS_LEN {
                format!("`{s}`")
            } else {
                "the value".to_string()
            };
            self.invalid(key, &format!("{what} is not an address: {e}"))
        })
    }

    fn claim(&self, key: &str, c: &RawClaim, tokens: &[Address]) -> Result<ClaimView, ConfigError> {
        let view = c.view.trim();
        if !view.ends_with("(address)") {
            let reason = format!("`{view}` must take one address, like `balances(address)`");
            return Err(self.invalid(&format!("{key}.view"), &reason));
        }
        let asset = if c.asset.eq_ignore_ascii_case("eth") {
            Asset::Eth
        } else {
            let token = self.address(&format!("{key}.asset"), &c.asset)?;
            if !tokens.contains(&token) {
                let reason = format!("{token} is not in this contract's `tokens`");
                return Err(self.invalid(&format!("{key}.asset"), &reason));
            }
            Asset::Token(token)
        };
        Ok(ClaimView { signature: view.to_string(), selector: selector(view), asset })
    }

    fn pause_call(
        &self,
        key: &str,
        raw: Option<RawPause>,
        contract: Address,
    ) -> Result<PauseCall, ConfigError> {
        let raw = raw.unwrap_or(RawPause { target: None, calldata: None });
        let target = match raw.target {
            Some(t) => self.address(&format!("{key}.target"), &t)?,
            None => contract,
        };
        let calldata =
            match raw.calldata {
                Some(c) => Bytes::from(hex::decode(c.trim()).map_err(|e| {
                    self.invalid(&format!("{key}.calldata"), &format!("not hex: {e}"))
                })?),
                None => Bytes::copy_from_slice(&PAUSE_SELECTOR),
            };
        Ok(PauseCall { target, calldata })
    }
}
