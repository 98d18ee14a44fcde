//! `preempt run` as a real process: started with a scenario's config, its JSON log read line by
//! line (kept for the waits and written to a file), stopped with SIGTERM.

use std::{
    fs::File,
    io::{BufRead, BufReader, BufWriter, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use alloy::primitives::B256;
use serde_json::{Map, Value};

use super::CorpusError;

/// anvil's dev account 1, the corpus guardian (a public test key, as in the tests).
pub(crate) const GUARDIAN_KEY: &str =
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// One line of preempt's JSON log.
#[derive(Debug, Clone)]
pub(crate) struct LogEvent {
    pub(crate) message: String,
    pub(crate) fields: Map<String, Value>,
}

impl LogEvent {
    fn parse(line: &str) -> Self {
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(mut top)) => {
                let mut fields = match top.remove("fields") {
                    Some(Value::Object(f)) => f,
                    _ => Map::new(),
                };
                let message = match fields.remove("message") {
                    Some(Value::String(m)) => m,
                    _ => String::new(),
                };
                Self { message, fields }
            }
            // Not JSON (a panic message, say): keep the text as the message.
            _ => Self { message: line.to_string(), fields: Map::new() },
        }
    }

    fn field_str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    fn field_u64(&self, key: &str) -> Option<u64> {
        self.fields.get(key).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
    }
}

/// What preempt logged about one pending tx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Processed {
    /// Simulated; `findings` when the log said how many.
    Simulated { findings: Option<u64> },
    /// Seen but not simulated (invalid, or its state could not be read).
    Skipped,
}

#[derive(Debug)]
pub(crate) struct GuardProcess {
    child: Child,
    events: Arc<Mutex<Vec<LogEvent>>>,
    reader: Option<JoinHandle<()>>,
    pub(crate) incidents: PathBuf,
}

impl GuardProcess {
    /// Starts `bin run --config config` (JSON log, debug level for preempt, so each simulation is
    /// logged) and waits for `ready`. The whole log goes to `log_path`.
    pub(crate) async fn start(
        bin: &Path,
        config: &Path,
        log_path: &Path,
        incidents: PathBuf,
        ready_within: Duration,
    ) -> Result<Self, CorpusError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CorpusError::Io { path, source }
        };
        let mut log = BufWriter::new(File::create(log_path).map_err(io(log_path))?);
        let mut child = Command::new(bin)
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .env("PREEMPT_GUARDIAN_KEY", GUARDIAN_KEY)
            .env("RUST_LOG", "info,preempt=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CorpusError::Guard(format!("cannot start {}: {e}", bin.display())))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| CorpusError::Guard("no stderr pipe from preempt run".into()))?;
        let events: Arc<Mutex<Vec<LogEvent>>> = Arc::default();
        let sink = Arc::clone(&events);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                let event = LogEvent::parse(&line);
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(event);
            }
            let _ = log.flush();
        });
        let mut guard = Self { child, events, reader: Some(reader), incidents };
        let started = Instant::now();
        loop {
            if guard.any(|e| e.message == "ready") {
                return Ok(guard);
            }
            if let Ok(Some(status)) = guard.child.try_wait() {
                let tail = guard.tail(5);
                return Err(CorpusError::Guard(format!(
                    "exited ({status}) before `ready`; log ends: {tail}"
                )));
            }
            if started.elapsed() > ready_within {
                let tail = guard.tail(5);
                return Err(CorpusError::Guard(format!(
                    "not ready within {ready_within:?}; log ends: {tail}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn any(&self, pred: impl Fn(&LogEvent) -> bool) -> bool {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).iter().any(pred)
    }

    fn tail(&self, n: usize) -> String {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let start = events.len().saturating_sub(n);
        events[start..].iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" | ")
    }

    /// What preempt logged about the pending tx `hash`, if anything yet.
    pub(crate) fn processed(&self, hash: B256) -> Option<Processed> {
        let needle = format!("{hash:#x}");
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.iter().find_map(|e| {
            if !e.field_str("tx").is_some_and(|t| t.eq_ignore_ascii_case(&needle)) {
                return None;
            }
            match e.message.as_str() {
                "simulated" => Some(Processed::Simulated { findings: e.field_u64("findings") }),
                "tx not simulated" | "state unavailable; tx skipped" => Some(Processed::Skipped),
                _ => None,
            }
        })
    }

    /// Whether preempt has taken in block `number` (its fork moved there, or it gave up on it).
    pub(crate) fn head_done(&self, number: u64) -> bool {
        self.any(|e| {
            matches!(
                e.message.as_str(),
                "fork at new head" | "new head not processed; retried on the next"
            ) && e.field_u64("block").is_some_and(|b| b >= number)
        })
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits (SIGKILL after 10 s); returns the exit code.
    pub(crate) async fn stop(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        let code = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code();
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        code
    }
}

impl Drop for GuardProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
