//! The guardian and relay-auth keys, resolved from their references; never printed, and never
//! the same key. Every copy of key material preempt holds while loading (the text, the
//! decrypted bytes) is wiped when dropped; the signer keeps the key in k256's `SigningKey`,
//! which wipes itself on drop too.

use alloy::signers::local::PrivateKeySigner;
use zeroize::Zeroizing;

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
            signer_from_hex(value.expose()).map(Some).map_err(|()| {
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
            let fail = |e: &dyn std::fmt::Display| {
                RunError::GuardianKey(format!(
                    "{}: key `guardian.keystore`: {}: {e}",
                    config.file.display(),
                    path.display()
                ))
            };
            let secret = Zeroizing::new(
                eth_keystore::decrypt_key(path, password.expose()).map_err(|e| fail(&e))?,
            );
            PrivateKeySigner::from_slice(&secret).map(Some).map_err(|e| fail(&e))
        }
    }
}

/// The key that signs relay requests (`X-Flashbots-Signature`), if relays are configured.
pub fn relay_signer(config: &Config) -> Result<Option<PrivateKeySigner>, RunError> {
    let Some(value) = config.resolve_secret(SecretKey::RelayAuthKey)? else { return Ok(None) };
    signer_from_hex(value.expose()).map(Some).map_err(|()| {
        RunError::RelayKey(format!(
            "{}: key `relay_auth.key`: {:?} does not hold a valid secp256k1 private key",
            config.file.display(),
            config.relay_auth
        ))
    })
}

/// A signer from a hex key (with or without `0x`), decoded into a buffer wiped on drop (alloy's
/// `FromStr` leaves a copy on the stack). The error says nothing about the text.
fn signer_from_hex(text: &str) -> Result<PrivateKeySigner, ()> {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    let mut bytes = Zeroizing::new([0u8; 32]);
    alloy::hex::decode_to_slice(hex, bytes.as_mut_slice()).map_err(|_| ())?;
    PrivateKeySigner::from_slice(bytes.as_slice()).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::signer_from_hex;

    #[test]
    fn hex_keys_load_with_or_without_0x_and_bad_ones_are_refused() {
        let key = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        let want: alloy::primitives::Address =
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".parse().expect("address");
        for text in [key.to_string(), format!("0x{key}"), format!("0X{}", key.to_uppercase())] {
            assert_eq!(signer_from_hex(&text).map(|s| s.address()), Ok(want), "{text}");
        }
        for bad in ["", "0x", &key[2..], &format!("{key}00"), &"0".repeat(64), "zz"] {
            assert!(signer_from_hex(bad).is_err(), "{bad}");
        }
    }
}
