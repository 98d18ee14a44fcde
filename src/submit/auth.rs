//! The `X-Flashbots-Signature` header: signing a request body, and checking one as a relay does.

use alloy::{
    primitives::{Address, Signature, hex, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
};

use super::SubmitError;

/// The header relays read the bundle signer from.
pub const FLASHBOTS_SIGNATURE_HEADER: &str = "X-Flashbots-Signature";

/// The message a relay expects signed: the `0x`-prefixed lowercase hex of `keccak256(body)`.
fn signed_message(body: &[u8]) -> String {
    hex::encode_prefixed(keccak256(body))
}

/// Flashbots auth header value: `"<0x address>:<0x signature>"`, where the signature is the
/// EIP-191 personal-sign of the `0x`-prefixed lowercase hex string of `keccak256(body)`.
///
/// The recovery byte is written as 0/1 (what `crypto.Sign` in the relays' Go code yields and
/// what alloy's `sign_flashbots_payload` writes); relays accept 27/28 as well.
pub fn flashbots_signature(signer: &PrivateKeySigner, body: &[u8]) -> Result<String, SubmitError> {
    let signature = signer
        .sign_message_sync(signed_message(body).as_bytes())
        .map_err(|source| SubmitError::Sign { source })?;
    let mut raw = [0u8; 65];
    raw[..32].copy_from_slice(&signature.r().to_be_bytes::<32>());
    raw[32..64].copy_from_slice(&signature.s().to_be_bytes::<32>());
    raw[64] = u8::from(signature.v());
    Ok(format!("{}:{}", signer.address(), hex::encode_prefixed(raw)))
}

/// Checks a header value against a body exactly as a relay does; returns the signer.
///
/// Like the Flashbots relay: `address:signature`, a 65-byte signature whose last byte is 0, 1,
/// 27 or 28, recovered over the EIP-191 message of the body's hash; the address recovered must
/// be the one claimed (compared as bytes, so checksum case does not matter).
pub fn verify_flashbots_signature(header: &str, body: &[u8]) -> Result<Address, SubmitError> {
    let malformed = |reason: String| SubmitError::MalformedSignatureHeader { reason };
    let (address, signature) = header
        .trim()
        .split_once(':')
        .ok_or_else(|| malformed("expected `<address>:<signature>`".into()))?;
    let claimed: Address =
        address.parse().map_err(|e| malformed(format!("`{address}` is not an address: {e}")))?;
    let raw =
        hex::decode(signature).map_err(|e| malformed(format!("the signature is not hex: {e}")))?;
    let raw: [u8; 65] = raw
        .as_slice()
        .try_into()
        .map_err(|_| malformed(format!("the signature is {} bytes, not 65", raw.len())))?;
    let parity = match raw[64] {
        0 | 27 => false,
        1 | 28 => true,
        v => return Err(malformed(format!("recovery byte {v} is none of 0, 1, 27, 28"))),
    };
    let recovered = Signature::from_bytes_and_parity(&raw[..64], parity)
        .recover_address_from_msg(signed_message(body).as_bytes())
        .map_err(|e| malformed(format!("no signer can be recovered: {e}")))?;
    if recovered != claimed {
        return Err(SubmitError::SignatureMismatch { claimed, recovered });
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{address, b256};

    use super::*;

    /// alloy's published test vector for `sign_flashbots_payload` (alloy-provider, `ext::mev`).
    const VECTOR_BODY: &[u8] = b"sign this message";
    const VECTOR_HEADER: &str = "0xd5F5175D014F28c85F7D67A111C2c9335D7CD771:0x983dc7c520db0d287faff3cd0aef81d5a7f4ffd3473440d3f705da16299724271f660b6fe367f455b205bc014eff3e20defd011f92000f94d39365ca0bc7867200";

    fn vector_signer() -> PrivateKeySigner {
        let key = b256!("0000000000000000000000000000000000000000000000000000000000123456");
        PrivateKeySigner::from_bytes(&key).expect("valid test key")
    }

    #[test]
    fn signature_matches_the_published_vector() {
        let header = flashbots_signature(&vector_signer(), VECTOR_BODY).expect("sign");
        assert_eq!(header, VECTOR_HEADER);
    }

    #[test]
    fn signature_round_trips_to_the_signer_address() {
        let signer = vector_signer();
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[]}"#;
        let header = flashbots_signature(&signer, body).expect("sign");
        assert_eq!(verify_flashbots_signature(&header, body).expect("verifies"), signer.address());
        // A relay built on alloy accepts it too.
        let by_alloy = alloy::providers::ext::verify_flashbots_signature(&header, body)
            .expect("alloy verifies");
        assert_eq!(by_alloy, signer.address());
    }

    #[test]
    fn tampered_body_fails_with_the_recovered_address() {
        let signer = vector_signer();
        let header = flashbots_signature(&signer, b"{\"blockNumber\":\"0x10\"}").expect("sign");
        match verify_flashbots_signature(&header, b"{\"blockNumber\":\"0x11\"}") {
            Err(SubmitError::SignatureMismatch { claimed, recovered }) => {
                assert_eq!(claimed, signer.address());
                assert_ne!(recovered, signer.address());
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
    }

    #[test]
    fn recovery_byte_27_is_accepted_and_others_are_not() {
        let v27 = format!("{}1b", &VECTOR_HEADER[..VECTOR_HEADER.len() - 2]);
        assert_eq!(
            verify_flashbots_signature(&v27, VECTOR_BODY).expect("v=27 verifies"),
            address!("d5F5175D014F28c85F7D67A111C2c9335D7CD771")
        );
        let v2 = format!("{}02", &VECTOR_HEADER[..VECTOR_HEADER.len() - 2]);
        assert!(matches!(
            verify_flashbots_signature(&v2, VECTOR_BODY),
            Err(SubmitError::MalformedSignatureHeader { .. })
        ));
    }

    #[test]
    fn lowercase_address_is_accepted() {
        let lower = VECTOR_HEADER.to_lowercase();
        assert!(verify_flashbots_signature(&lower, VECTOR_BODY).is_ok());
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        for (header, says) in [
            ("no-colon", "expected `<address>:<signature>`"),
            ("0x1234:0x00", "is not an address"),
            ("0xd5F5175D014F28c85F7D67A111C2c9335D7CD771:0xzz", "not hex"),
            ("0xd5F5175D014F28c85F7D67A111C2c9335D7CD771:0x0102", "2 bytes, not 65"),
        ] {
            let err = verify_flashbots_signature(header, VECTOR_BODY).expect_err(header);
            assert!(err.to_string().contains(says), "{header}: {err}");
        }
    }
}
