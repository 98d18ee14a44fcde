//! A stand-in for Slack, Discord, PagerDuty and a webhook endpoint: HTTP/1.1 on hyper, on
//! 127.0.0.1, that records every request, answers from a script (`500` n times, hold a request
//! unanswered, then `200`), and checks `X-Preempt-Signature` itself, with its own HMAC.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::{sync::Notify, task::JoinHandle};

use super::http::{Answer, Incoming, serve};

/// What the receiver does with the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Status(u16),
    /// Keep the request unanswered until `release` (or the client gives up).
    Hold,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// With a key set: whether the signature and timestamp checked out (`None`: unsigned).
    pub signature_ok: Option<bool>,
    /// What the receiver answered (`None`: held).
    pub answered: Option<u16>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} body is not JSON ({e}): {:?}", self.path, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct State {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
    otherwise: Mutex<Reply>,
    hmac_key: Option<Vec<u8>>,
    arrived: Notify,
    release: Notify,
}

impl State {
    fn next_reply(&self) -> Reply {
        let scripted = self.script.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        scripted.unwrap_or(*self.otherwise.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The receiver; stops (with every open connection) when dropped.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Answers 200 to everything until scripted otherwise.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Also checks `X-Preempt-Signature` / `X-Preempt-Timestamp` with `key`, and answers 401 to
    /// a signed request that does not check out.
    pub fn with_hmac_key(key: &[u8]) -> Self {
        Self::start_with(Some(key.to_vec()))
    }

    fn start_with(hmac_key: Option<Vec<u8>>) -> Self {
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            otherwise: Mutex::new(Reply::Status(200)),
            hmac_key,
            arrived: Notify::new(),
            release: Notify::new(),
        });
        let serving = state.clone();
        let (addr, task) = serve(move |request| answer(serving.clone(), request));
        Self { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next `n` requests get `reply`; then the script goes on (or `otherwise`).
    pub fn script(&self, n: usize, reply: Reply) {
        let mut script = self.state.script.lock().unwrap_or_else(PoisonError::into_inner);
        script.extend(std::iter::repeat_n(reply, n));
    }

    /// What every request gets once the script is used up.
    pub fn otherwise(&self, reply: Reply) {
        *self.state.otherwise.lock().unwrap_or_else(PoisonError::into_inner) = reply;
    }

    /// Answers every held request (200).
    pub fn release(&self) {
        self.otherwise(Reply::Status(200));
        self.state.release.notify_waiters();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    /// Waits until `n` requests have arrived (panics after `within`), and returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            let now = self.requests();
            if now.len() >= n {
                return now;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let paths: Vec<String> = now.iter().map(|r| r.path.clone()).collect();
                panic!("{} of {n} requests arrived within {within:?}: {paths:?}", now.len());
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(state: Arc<State>, request: Incoming) -> Answer {
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| {
            (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
        })
        .collect();
    let body = request.body.to_vec();
    let signature_ok = state.hmac_key.as_deref().and_then(|k| check_signature(k, &headers, &body));
    let mut reply = state.next_reply();
    if signature_ok == Some(false) {
        reply = Reply::Status(401);
    }
    let index = {
        let mut requests = state.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests.push(Recorded {
            path: request.path,
            headers,
            body,
            at: Instant::now(),
            signature_ok,
            answered: None,
        });
        requests.len() - 1
    };
    state.arrived.notify_waiters();
    let status = match reply {
        Reply::Status(s) => s,
        Reply::Hold => {
            state.release.notified().await;
            200
        }
    };
    state.requests.lock().unwrap_or_else(PoisonError::into_inner)[index].answered = Some(status);
    let body = if status < 300 { "ok" } else { "scripted failure" };
    Answer { status, content_type: "text/plain", body: body.to_owned() }
}

/// The receiver's side of the webhook contract, written from the documented format (not with
/// preempt's own code): `sha256=hex(HMAC-SHA256(key, "{timestamp}.{body}"))`, timestamp within
/// five minutes of now.
fn check_signature(key: &[u8], headers: &[(String, String)], body: &[u8]) -> Option<bool> {
    let get = |n: &str| headers.iter().find(|(h, _)| h == n).map(|(_, v)| v.as_str());
    let signature = get("x-preempt-signature")?;
    let Some(timestamp) = get("x-preempt-timestamp").and_then(|t| t.parse::<u64>().ok()) else {
        return Some(false);
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if now.abs_diff(timestamp) > 300 {
        return Some(false);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let want = format!("sha256={}", alloy::primitives::hex::encode(mac.finalize().into_bytes()));
    Some(want == signature)
}

/// Time between two requests, for backoff checks.
pub fn gap(a: &Recorded, b: &Recorded) -> Duration {
    b.at.saturating_duration_since(a.at)
}
