//! A stand-in private relay on hyper: JSON-RPC `eth_sendBundle` that checks
//! `X-Flashbots-Signature` as Flashbots does, records each bundle and forwards its txs to anvil.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use alloy::{
    primitives::{Address, B256, Bytes},
    providers::{
        DynProvider, Provider, ProviderBuilder,
        ext::{FLASHBOTS_SIGNATURE_HEADER, FlashbotsSignatureError, verify_flashbots_signature},
    },
    rpc::types::mev::EthSendBundle,
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::http::{Answer, Incoming, serve};

/// One bundle the relay accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedBundle {
    /// The address the signature header recovers to.
    pub signer: Address,
    pub txs: Vec<Bytes>,
    pub block_number: u64,
}

/// A relay on 127.0.0.1; stops (with every open connection) when dropped.
pub struct TestRelay {
    addr: SocketAddr,
    state: Arc<RelayState>,
    task: JoinHandle<()>,
}

struct RelayState {
    anvil: DynProvider,
    bundles: Mutex<Vec<ReceivedBundle>>,
    rejected: AtomicUsize,
}

impl TestRelay {
    /// Binds a free loopback port and serves on the current tokio runtime.
    pub fn start(anvil_http_url: &str) -> TestRelay {
        let url = anvil_http_url.parse().expect("anvil URL");
        let anvil = ProviderBuilder::new().connect_http(url).erased();
        let state = Arc::new(RelayState {
            anvil,
            bundles: Mutex::new(Vec::new()),
            rejected: AtomicUsize::new(0),
        });
        let serving = state.clone();
        let (addr, task) = serve(move |request| {
            let state = serving.clone();
            async move {
                let (status, answer) = state.handle(&request).await;
                Answer { status, content_type: "application/json", body: answer.to_string() }
            }
        });
        TestRelay { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn bundles(&self) -> Vec<ReceivedBundle> {
        self.state.bundles.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Requests refused for a missing or bad signature.
    pub fn rejected(&self) -> usize {
        self.state.rejected.load(Ordering::SeqCst)
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn rpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

impl RelayState {
    async fn handle(&self, request: &Incoming) -> (u16, Value) {
        if request.method != hyper::Method::POST {
            return (405, rpc_error(Value::Null, -32600, "only POST is served"));
        }
        // Authentication comes first, over the exact bytes received, as at Flashbots.
        let header = request.headers.get(FLASHBOTS_SIGNATURE_HEADER).map(|v| v.to_str());
        let signer = match header {
            None => {
                self.rejected.fetch_add(1, Ordering::SeqCst);
                return (
                    403,
                    rpc_error(Value::Null, -32600, "missing X-Flashbots-Signature header"),
                );
            }
            Some(header) => {
                let checked = header
                    .map_err(|e| format!("not text: {e}"))
                    .and_then(|h| verify_flashbots_signature(h, &request.body).map_err(describe));
                match checked {
                    Ok(signer) => signer,
                    Err(reason) => {
                        self.rejected.fetch_add(1, Ordering::SeqCst);
                        let message = format!("invalid X-Flashbots-Signature: {reason}");
                        return (403, rpc_error(Value::Null, -32600, &message));
                    }
                }
            }
        };
        let call: Value = match serde_json::from_slice(&request.body) {
            Ok(call) => call,
            Err(e) => return (400, rpc_error(Value::Null, -32700, &format!("not JSON: {e}"))),
        };
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        if call.get("method").and_then(Value::as_str) != Some("eth_sendBundle") {
            return (200, rpc_error(id, -32601, "only eth_sendBundle is served"));
        }
        let bundle = match parse_bundle(&call) {
            Ok(bundle) => bundle,
            Err(reason) => return (200, rpc_error(id, -32602, &reason)),
        };
        let received =
            ReceivedBundle { signer, txs: bundle.txs.clone(), block_number: bundle.block_number };
        self.bundles.lock().unwrap_or_else(PoisonError::into_inner).push(received);

        for (i, tx) in bundle.txs.iter().enumerate() {
            let sent = self
                .anvil
                .raw_request::<_, B256>("eth_sendRawTransaction".into(), (tx.clone(),))
                .await;
            if let Err(e) = sent {
                // The same bytes may have reached anvil first through its public mempool.
                let text = e.to_string();
                if !text.contains("already imported") && !text.contains("already known") {
                    return (200, rpc_error(id, -32000, &format!("tx {i} rejected: {text}")));
                }
            }
        }
        (200, json!({"jsonrpc": "2.0", "id": id, "result": {"bundleHash": bundle.bundle_hash()}}))
    }
}

/// alloy's reasons, with the mismatch worded as a relay would put it.
fn describe(e: FlashbotsSignatureError) -> String {
    match e {
        FlashbotsSignatureError::SignatureMismatch { expected, actual } => {
            format!("the header claims {expected} but the body was signed by {actual}")
        }
        other => other.to_string(),
    }
}

fn parse_bundle(call: &Value) -> Result<EthSendBundle, String> {
    let params = call
        .get("params")
        .and_then(Value::as_array)
        .and_then(|p| p.first())
        .ok_or("params must be [bundle]")?;
    let bundle: EthSendBundle = serde_json::from_value(params.clone())
        .map_err(|e| format!("not an eth_sendBundle bundle: {e}"))?;
    if bundle.txs.is_empty() {
        return Err("bundle has no txs".into());
    }
    Ok(bundle)
}
