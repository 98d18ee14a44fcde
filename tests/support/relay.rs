//! A stand-in private relay: HTTP/1.1 keep-alive JSON-RPC `eth_sendBundle` that checks
//! `X-Flashbots-Signature` as Flashbots does, records each bundle and forwards its txs to anvil.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use alloy::{
    primitives::{Address, B256, Bytes, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
};
use preempt::submit::verify_flashbots_signature;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};

/// Larger request bodies are refused; a pause bundle is a few hundred bytes.
const MAX_BODY: usize = 1 << 20;

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
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("bound address");
        let listener = TcpListener::from_std(listener).expect("inside a tokio runtime");
        let state = Arc::new(RelayState {
            anvil,
            bundles: Mutex::new(Vec::new()),
            rejected: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
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
        // The connection tasks live in the accept task's JoinSet and are aborted with it.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<RelayState>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, state.clone()));
                }
                Err(_) => return,
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A parsed HTTP/1.1 request: what the relay needs of it.
struct Request {
    method: String,
    signature: Option<String>,
    body: Vec<u8>,
    close: bool,
}

/// Serves requests on one keep-alive connection until the client closes it or errs.
async fn serve_connection(stream: TcpStream, state: Arc<RelayState>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    while let Some(request) = read_request(&mut reader).await {
        let (status, answer, close) = match request {
            Ok(request) if request.method != "POST" => {
                (405, rpc_error(Value::Null, -32600, "only POST is served"), true)
            }
            Ok(request) => {
                let (status, answer) = state.handle(&request).await;
                (status, answer, request.close)
            }
            // The framing is lost: answer, then close.
            Err(reason) => (400, rpc_error(Value::Null, -32700, &reason), true),
        };
        if write_response(&mut write, status, &answer).await.is_err() || close {
            return;
        }
    }
}

/// `None`: the connection ended cleanly between requests.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Option<Result<Request, String>> {
    let mut line = String::new();
    match reader.read_line(&mut line).await {
        Ok(0) | Err(_) => return None,
        Ok(_) => {}
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let version = parts.nth(1).unwrap_or_default().to_string();
    let mut content_length = 0usize;
    let mut signature = None;
    let mut close = version == "HTTP/1.0";
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header).await {
            Ok(0) | Err(_) => return Some(Err("connection ended inside the headers".into())),
            Ok(_) => {}
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Some(Err(format!("malformed header line `{header}`")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => match value.parse() {
                Ok(n) if n <= MAX_BODY => content_length = n,
                _ => return Some(Err(format!("bad Content-Length `{value}`"))),
            },
            "transfer-encoding" => return Some(Err("chunked bodies are not served".into())),
            "x-flashbots-signature" => signature = Some(value.to_string()),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = vec![0; content_length];
    if reader.read_exact(&mut body).await.is_err() {
        return Some(Err("connection ended inside the body".into()));
    }
    Some(Ok(Request { method, signature, body, close }))
}

async fn write_response(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    status: u16,
    body: &Value,
) -> std::io::Result<()> {
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    write.write_all(head.as_bytes()).await?;
    write.write_all(body.as_bytes()).await?;
    write.flush().await
}

fn rpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

impl RelayState {
    async fn handle(&self, request: &Request) -> (u16, Value) {
        // Authentication comes first, over the exact bytes received, as at Flashbots.
        let signer = match &request.signature {
            None => {
                self.rejected.fetch_add(1, Ordering::SeqCst);
                return (
                    403,
                    rpc_error(Value::Null, -32600, "missing X-Flashbots-Signature header"),
                );
            }
            Some(header) => match verify_flashbots_signature(header, &request.body) {
                Ok(signer) => signer,
                Err(e) => {
                    self.rejected.fetch_add(1, Ordering::SeqCst);
                    let message = format!("invalid X-Flashbots-Signature: {e}");
                    return (403, rpc_error(Value::Null, -32600, &message));
                }
            },
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
            Ok((txs, block_number)) => ReceivedBundle { signer, txs, block_number },
            Err(reason) => return (200, rpc_error(id, -32602, &reason)),
        };
        self.bundles.lock().unwrap_or_else(PoisonError::into_inner).push(bundle.clone());

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
        let hashes: Vec<u8> = bundle.txs.iter().flat_map(|tx| keccak256(tx).0).collect();
        (200, json!({"jsonrpc": "2.0", "id": id, "result": {"bundleHash": keccak256(hashes)}}))
    }
}

fn parse_bundle(call: &Value) -> Result<(Vec<Bytes>, u64), String> {
    let params = call
        .get("params")
        .and_then(Value::as_array)
        .and_then(|p| p.first())
        .ok_or("params must be [bundle]")?;
    let txs: Vec<Bytes> = params
        .get("txs")
        .cloned()
        .ok_or("bundle has no `txs`")
        .and_then(|t| serde_json::from_value(t).map_err(|_| "`txs` must be hex strings"))?;
    if txs.is_empty() {
        return Err("bundle has no txs".into());
    }
    let block = params.get("blockNumber").and_then(Value::as_str).ok_or("no `blockNumber`")?;
    let block_number = block
        .strip_prefix("0x")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| format!("`blockNumber` {block} is not a hex quantity"))?;
    Ok((txs, block_number))
}
