//! The guardian and relay-auth keys, resolved from their references; never printed, and never
//! the same key.

use std::str::FromStr;

use alloy::signers::local::PrivateKeySigner;

use super::RunError;
use crate::config::{Config, GuardianKey, SecretKey};

/// The guardian's signer (`None` in alert mode without a key).
pub fn guardian_signer(config: &Config) -> Result<Option<PrivateKeySigner>, RunError> {
    let Some(key) = &config.guardian else { return Ok(None) };
    match key {
        GuardianKey::Raw(secret) => {
            let Some(value) = config.resolve_secret(SecretKey::GuardianKey)? else {
                return Ok(None);
            };
            // The parse error never includes the key text.
            PrivateKeySigner::from_str(value.expose()).map(Some).map_err(|_| {
                RunError::GuardianKey(format!(
                    "{}: key `guardian.key`: {secret:?} does not hold a valid secp256k1 private key",
                    config.file.display()
                ))
            })
        }
        GuardianKey::Keystore { path, .. } => {
            let Some(password) = config.resolve_secret(SecretKey::GuardianPassword)? else {
                return Ok(None);
            };
            PrivateKeySigner::decrypt_keystore(path, password.expose()).map(Some).map_err(|e| {
                RunError::GuardianKey(format!(
                    "{}: key `guardian.keystore`: {}: {e}",
                    config.file.display(),
                    path.display()
                ))
            })
        }
    }
}

/// The key that signs relay requests (`X-Flashbots-Signature`), if relays are configured.
pub fn relay_signer(config: &Config) -> Result<Option<PrivateKeySigner>, RunError> {
    let Some(value) = config.resolve_secret(SecretKey::RelayAuthKey)? else { return Ok(None) };
    PrivateKeySigner::from_str(value.expose()).map(Some).map_err(|_| {
        RunError::RelayKey(format!(
            "{}: key `relay_auth.key`: {:?} does not hold a valid secp256k1 private key",
            config.file.display(),
            config.relay_auth
        ))
    })
}
