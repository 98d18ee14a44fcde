//! `preempt run` as a real process beside a devnet: its config, its log, and waits on both.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::primitives::{Address, B256};

use super::Devnet;

/// anvil's dev account 1, the demo guardian (a public test key).
pub const GUARDIAN_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// anvil's dev account 8, used to sign relay requests (a public test key).
pub const RELAY_AUTH_KEY: &str =
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97";

pub struct RunningGuard {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    pub incidents: PathBuf,
    _dir: tempfile::TempDir,
}

impl RunningGuard {
    /// Starts `preempt run` with the devnet's config plus `extra` TOML, and waits for `ready`.
    pub fn start(devnet: &Devnet, node_url: &str, extra: &str) -> Self {
        Self::start_with(devnet, node_url, extra, true)
    }

    /// As `start`; `pending = false` makes the node feed heads and state only.
    pub fn start_with(devnet: &Devnet, node_url: &str, extra: &str, pending: bool) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let incidents = dir.path().join("incidents.jsonl");
        let mut base =
            preempt::devnet::config_toml(&devnet.deployment, node_url, "PREEMPT_GUARDIAN_KEY");
        if !pending {
            base = base.replacen(
                &format!("url = \"{node_url}\""),
                &format!("url = \"{node_url}\"\npending = false"),
                1,
            );
        }
        let config = format!("{base}\n[incidents]\npath = \"{}\"\n{extra}\n", incidents.display());
        let path = dir.path().join("preempt.toml");
        std::fs::write(&path, config).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_preempt"))
            .args(["run", "--config"])
            .arg(&path)
            .env("PREEMPT_GUARDIAN_KEY", GUARDIAN_KEY)
            .env("PREEMPT_RELAY_AUTH_KEY", RELAY_AUTH_KEY)
            .env("RUST_LOG", "info,preempt=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn preempt run");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let guard = Self { child, log, incidents, _dir: dir };
        guard.wait_log(|l| l.contains(" ready"), Duration::from_secs(30), "ready");
        guard
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn count_log(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.log().iter().filter(|l| pred(l)).count()
    }

    /// Waits for a log line; panics with the log so far on timeout.
    pub fn wait_log(&self, pred: impl Fn(&str) -> bool, limit: Duration, what: &str) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.log().iter().any(|l| pred(l)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("preempt never logged {what} within {limit:?}:\n{}", self.log().join("\n"));
    }

    pub fn incident_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.incidents)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// SIGTERM, then waits; returns the exit code.
    pub fn stop(self) -> Option<i32> {
        self.stop_timed().0
    }

    /// SIGTERM, then waits up to 10 s; the exit code (None: still running) and how long the
    /// process took to exit after the signal.
    pub fn stop_timed(mut self) -> (Option<i32>, Duration) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.code(), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (None, started.elapsed())
    }

    /// SIGTERM, waits for the exit, and returns the `stopped` line with the final counters
    /// (and the whole log, for messages).
    pub fn stop_with_counters(self) -> (Option<i32>, StoppedLine, Vec<String>) {
        let (code, _, stopped, lines) = self.stop_timed_with_counters();
        (code, stopped, lines)
    }

    /// As `stop_with_counters`, with how long the exit took after SIGTERM.
    pub fn stop_timed_with_counters(self) -> (Option<i32>, Duration, StoppedLine, Vec<String>) {
        let log = Arc::clone(&self.log);
        let (code, exit) = self.stop_timed();
        // The reader thread may still be copying the last lines out of the pipe.
        let started = Instant::now();
        loop {
            let lines = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(line) = lines.iter().find(|l| l.contains(" stopped ")) {
                return (code, exit, StoppedLine(line.clone()), lines);
            }
            if started.elapsed() > Duration::from_secs(2) {
                panic!("no `stopped` line (exit {code:?}):\n{}", lines.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The `stopped` line `preempt run` logs at shutdown: the ingest, worker and guard counters in
/// their Debug form (`IngestCounts { received: 3, …, nodes: [NodeCounts { node: "a", … }] }`).
#[derive(Debug, Clone)]
pub struct StoppedLine(pub String);

impl StoppedLine {
    /// The first `name: N` on the line: the ingest totals come first, then the workers'.
    pub fn total(&self, name: &str) -> u64 {
        number_after(&self.0, name)
            .unwrap_or_else(|| panic!("no `{name}` in the stopped line: {}", self.0))
    }

    /// `name: N` within node `node`'s counters.
    pub fn node(&self, node: &str, name: &str) -> u64 {
        let needle = format!("NodeCounts {{ node: \"{node}\"");
        let at = self
            .0
            .find(&needle)
            .unwrap_or_else(|| panic!("no counters for node {node}: {}", self.0));
        let rest = &self.0[at..];
        let end = rest[1..].find("NodeCounts").map(|e| e + 1).unwrap_or(rest.len());
        number_after(&rest[..end], name)
            .unwrap_or_else(|| panic!("no `{name}` for node {node}: {}", self.0))
    }

    /// `name: N` within the workers' counters.
    pub fn worker(&self, name: &str) -> u64 {
        let at = self.0.find("WorkerCounts").unwrap_or_else(|| panic!("no workers: {}", self.0));
        number_after(&self.0[at..], name)
            .unwrap_or_else(|| panic!("no worker `{name}`: {}", self.0))
    }
}

fn number_after(text: &str, name: &str) -> Option<u64> {
    let needle = format!(" {name}: ");
    let at = text.find(&needle)? + needle.len();
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pending txs from `from` in the node's pool.
pub async fn pending_from(devnet: &Devnet, from: Address) -> Vec<B256> {
    let content: serde_json::Value = devnet.rpc("txpool_content", serde_json::json!([])).await;
    let key = format!("{from:#x}");
    content["pending"]
        .as_object()
        .and_then(|senders| {
            senders.iter().find(|(k, _)| k.eq_ignore_ascii_case(&key)).map(|(_, v)| v.clone())
        })
        .and_then(|by_nonce| by_nonce.as_object().cloned())
        .map(|txs| {
            txs.values().filter_map(|t| t["hash"].as_str().and_then(|h| h.parse().ok())).collect()
        })
        .unwrap_or_default()
}

/// Waits until `from` has `count` pending txs in the pool.
pub async fn wait_pending_from(
    devnet: &Devnet,
    from: Address,
    count: usize,
    limit: Duration,
) -> Vec<B256> {
    let started = Instant::now();
    loop {
        let found = pending_from(devnet, from).await;
        if found.len() >= count || started.elapsed() > limit {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
