//! The guardian and relay-auth keys, resolved from their references; never printed.

use std::str::FromStr;

use alloy::signers::local::PrivateKeySigner;

use super::RunError;
use crate::config::{Config, GuardianKey, ResponseMode};

/// The guardian's signer (`None` in alert mode without a key).
pub fn guardian_signer(config: &Config) -> Result<Option<PrivateKeySigner>, RunError> {
    let Some(key) = &config.guardian else {
        return match config.respond.mode {
            ResponseMode::Alert => Ok(None),
            _ => Err(RunError::GuardianKey(
                "mode needs a [guardian] key (or set respond.mode = \"alert\")".into(),
            )),
        };
    };
    match key {
        GuardianKey::Raw(secret) => {
            let value = secret.resolve().map_err(RunError::GuardianKey)?;
            // The parse error never includes the key text.
            PrivateKeySigner::from_str(value.expose()).map(Some).map_err(|_| {
                RunError::GuardianKey(format!(
                    "{secret:?} does not hold a valid secp256k1 private key"
                ))
            })
        }
        GuardianKey::Keystore { path, password } => {
            let password = password.resolve().map_err(RunError::GuardianKey)?;
            PrivateKeySigner::decrypt_keystore(path, password.expose())
                .map(Some)
                .map_err(|e| RunError::GuardianKey(format!("keystore {}: {e}", path.display())))
        }
    }
}

/// The key that signs relay requests (`X-Flashbots-Signature`), if relays are configured.
pub fn relay_signer(config: &Config) -> Result<Option<PrivateKeySigner>, RunError> {
    let Some(secret) = &config.relay_auth else { return Ok(None) };
    let value = secret.resolve().map_err(RunError::RelayKey)?;
    PrivateKeySigner::from_str(value.expose()).map(Some).map_err(|_| {
        RunError::RelayKey(format!("{secret:?} does not hold a valid secp256k1 private key"))
    })
}
