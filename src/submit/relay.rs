//! One private relay: an HTTP keep-alive client that posts signed `eth_sendBundle` requests.
//!
//! The request is alloy's (`EthSendBundle` in a JSON-RPC `Request`) and so is its
//! `X-Flashbots-Signature` (`sign_flashbots_payload`); the post is ours, on a client kept warm
//! per relay, so a pause does not wait on a provider's transport.

use alloy::{
    primitives::Bytes,
    providers::ext::{FLASHBOTS_SIGNATURE_HEADER, sign_flashbots_payload},
    rpc::{
        json_rpc::{Id, Request},
        types::mev::EthSendBundle,
    },
    signers::local::PrivateKeySigner,
};

use super::{REQUEST_TIMEOUT, SubmitError};
use crate::config::RelayConfig;

/// How much of a relay's error answer is kept in a report.
const MAX_ERROR_TEXT: usize = 300;

#[derive(Debug)]
pub(crate) struct RelayEndpoint {
    pub(crate) name: String,
    url: reqwest::Url,
    client: reqwest::Client,
}

impl RelayEndpoint {
    pub(crate) fn new(config: &RelayConfig) -> Result<Self, SubmitError> {
        let url = reqwest::Url::parse(&config.url).map_err(|e| SubmitError::RelayUrl {
            name: config.name.clone(),
            url: config.url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SubmitError::RelayUrl {
                name: config.name.clone(),
                url: config.url.clone(),
                reason: "not an http(s) URL".into(),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            // A relay connection idle between incidents is re-opened, not found dead mid-race.
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| SubmitError::RelayClient {
                name: config.name.clone(),
                reason: error_chain(&e),
            })?;
        Ok(Self { name: config.name.clone(), url, client })
    }

    /// Posts `body` (already signed into `signature`, if any); `Err` carries what went wrong.
    pub(crate) async fn send(
        &self,
        body: bytes::Bytes,
        signature: Option<&str>,
    ) -> Result<(), String> {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header(FLASHBOTS_SIGNATURE_HEADER, signature);
        }
        let response = request.send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        let answer = response.bytes().await.map_err(|e| describe(&e))?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", excerpt(&answer)));
        }
        let answer: serde_json::Value = serde_json::from_slice(&answer)
            .map_err(|e| format!("not a JSON-RPC answer ({e}): {}", excerpt(&answer)))?;
        if let Some(error) = answer.get("error") {
            let code = error.get("code").and_then(serde_json::Value::as_i64);
            let message = error.get("message").and_then(serde_json::Value::as_str);
            return Err(match (code, message) {
                (Some(code), Some(message)) => format!("relay error {code}: {message}"),
                _ => format!("relay error: {error}"),
            });
        }
        if answer.get("result").is_none() {
            return Err(format!("answer has neither result nor error: {answer}"));
        }
        Ok(())
    }
}

/// The exact text posted to every relay (and signed once for all of them): a one-tx
/// `eth_sendBundle` for `target_block`.
pub(crate) fn bundle_body(raw: &Bytes, target_block: u64) -> String {
    let bundle =
        EthSendBundle { txs: vec![raw.clone()], block_number: target_block, ..Default::default() };
    let request = Request::new("eth_sendBundle", Id::Number(1), (bundle,));
    // Serializing strings and hex quantities cannot fail.
    serde_json::to_string(&request).unwrap_or_default()
}

/// The `X-Flashbots-Signature` value for `body`: `<address>:<EIP-191 signature of the hex of
/// keccak256(body)>`, as relays check it.
pub(crate) async fn sign_body(
    signer: &PrivateKeySigner,
    body: &str,
) -> Result<String, SubmitError> {
    sign_flashbots_payload(body.to_owned(), signer)
        .await
        .map_err(|source| SubmitError::Sign { source })
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() { format!("no answer within {REQUEST_TIMEOUT:?}") } else { error_chain(e) }
}

/// reqwest's own message is "error sending request"; the cause (refused, reset, DNS) is below.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use alloy::{
        primitives::{b256, bytes},
        providers::ext::verify_flashbots_signature,
    };

    use super::*;

    #[test]
    fn bundle_body_is_the_flashbots_shape() {
        let body = bundle_body(&bytes!("02f86801"), 0x1234);
        assert_eq!(
            body,
            r#"{"method":"eth_sendBundle","params":[{"txs":["0x02f86801"],"blockNumber":"0x1234"}],"id":1,"jsonrpc":"2.0"}"#
        );
    }

    #[tokio::test]
    async fn signed_body_verifies_to_the_relay_key_and_not_over_another_body() {
        let key = b256!("0000000000000000000000000000000000000000000000000000000000123456");
        let signer = PrivateKeySigner::from_bytes(&key).expect("valid test key");
        let body = bundle_body(&bytes!("02f86801"), 0x10);
        let header = sign_body(&signer, &body).await.expect("sign");
        assert!(header.starts_with("0xd5F5175D014F28c85F7D67A111C2c9335D7CD771:0x"), "{header}");
        let by = verify_flashbots_signature(&header, body.as_bytes()).expect("verifies");
        assert_eq!(by, signer.address());
        let other = bundle_body(&bytes!("02f86801"), 0x11);
        assert!(verify_flashbots_signature(&header, other.as_bytes()).is_err());
    }
}
