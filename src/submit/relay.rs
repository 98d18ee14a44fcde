//! One private relay: an HTTP keep-alive client that posts signed `eth_sendBundle` requests.

use alloy::primitives::Bytes;
use serde::Serialize;

use super::{FLASHBOTS_SIGNATURE_HEADER, REQUEST_TIMEOUT, SubmitError};
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

#[derive(Serialize)]
struct BundleRequest<'a> {
    jsonrpc: &'static str,
    id: u64,
    method: &'static str,
    params: [BundleParams<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BundleParams<'a> {
    txs: [&'a Bytes; 1],
    block_number: String,
}

/// The exact bytes posted to every relay (and signed once for all of them).
pub(crate) fn bundle_body(raw: &Bytes, target_block: u64) -> bytes::Bytes {
    let request = BundleRequest {
        jsonrpc: "2.0",
        id: 1,
        method: "eth_sendBundle",
        params: [BundleParams { txs: [raw], block_number: format!("{target_block:#x}") }],
    };
    // Serializing strings and hex bytes into a Vec cannot fail.
    serde_json::to_vec(&request).unwrap_or_default().into()
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
    use alloy::primitives::bytes;

    use super::*;

    #[test]
    fn bundle_body_is_the_flashbots_shape() {
        let body = bundle_body(&bytes!("02f86801"), 0x1234);
        assert_eq!(
            std::str::from_utf8(&body).expect("utf-8"),
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[{"txs":["0x02f86801"],"blockNumber":"0x1234"}]}"#
        );
    }
}
