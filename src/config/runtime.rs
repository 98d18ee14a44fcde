//! Checks that need more than the file: what `run` needs, secrets, and fee caps against the
//! chain. Each error names the file and the key, like a parse error.

use alloy::primitives::Address;

use super::{Config, ConfigError, GuardianKey, ResponseMode, SecretKey, SecretRef, SecretValue};

const GWEI: u128 = 1_000_000_000;

impl Config {
    /// What `run` needs beyond a valid file: a node to watch, and a guardian key unless the
    /// mode only alerts. (`check` runs without either, so `parse` does not demand them.)
    pub fn check_runnable(&self) -> Result<(), ConfigError> {
        if self.nodes.is_empty() {
            return Err(ConfigError::invalid(
                &self.file,
                "node",
                "no node to watch: add a [[node]] table with a `url`",
            ));
        }
        if self.guardian.is_none() && self.respond.mode != ResponseMode::Alert {
            let reason = "this mode signs pauses and needs a [guardian] key (or set \
                          respond.mode = \"alert\")";
            return Err(ConfigError::invalid(&self.file, "guardian", reason));
        }
        Ok(())
    }

    /// The reference configured under `which`, if any.
    pub fn secret_ref(&self, which: SecretKey) -> Option<&SecretRef> {
        match (which, &self.guardian) {
            (SecretKey::GuardianKey, Some(GuardianKey::Raw(r))) => Some(r),
            (SecretKey::GuardianPassword, Some(GuardianKey::Keystore { password, .. })) => {
                Some(password)
            }
            (SecretKey::RelayAuthKey, _) => self.relay_auth.as_ref(),
            _ => None,
        }
    }

    /// Reads the secret under `which` (`None` when the file has none there). An unset variable
    /// or unreadable file is an error naming the file and the key:
    /// `preempt.toml: key `guardian.key`: environment variable X is not set`.
    pub fn resolve_secret(&self, which: SecretKey) -> Result<Option<SecretValue>, ConfigError> {
        let Some(reference) = self.secret_ref(which) else { return Ok(None) };
        reference
            .resolve()
            .map(Some)
            .map_err(|reason| ConfigError::secret(&self.file, which.as_str(), &reason))
    }

    /// The guardian and the relay-auth key, once resolved, must differ (the file already
    /// refuses one reference for both; two references can still hold one key). Compare the
    /// signers' addresses: the same key gives the same address.
    pub fn check_distinct_keys(
        &self,
        guardian: Address,
        relay_auth: Address,
    ) -> Result<(), ConfigError> {
        if guardian != relay_auth {
            return Ok(());
        }
        let reason = format!(
            "holds the guardian's key ({guardian}): the relay-auth key must be a separate key, \
             so that what signs bundle headers can never sign a pause"
        );
        Err(ConfigError::secret(&self.file, SecretKey::RelayAuthKey.as_str(), &reason))
    }

    /// At start, against the chain: a max-fee cap that cannot pay at least twice the next base
    /// fee plus 1 gwei gives pauses the node refuses, or that wait while the attack lands.
    pub fn check_fee_caps(&self, next_base_fee_wei: u128) -> Result<(), ConfigError> {
        let min_wei = next_base_fee_wei.saturating_mul(2).saturating_add(GWEI);
        let cap_wei = self.respond.max_fee_per_gas_cap;
        if cap_wei >= min_wei {
            return Ok(());
        }
        Err(ConfigError::FeeCapBelowBaseFee {
            file: self.file.clone(),
            cap_wei,
            base_fee_wei: next_base_fee_wei,
            min_wei,
        })
    }
}
