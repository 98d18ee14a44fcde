//! `--live`: the live pipeline exactly as `run` runs it (`run::run_with`), with the mode forced
//! to dry-run, a throwaway guardian key, no relays, no alert sinks and the incident records in
//! a private temp dir; after the time asked for, the report is built from those records.

use std::{
    future::Future,
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use serde_json::Value;

use super::{
    ShadowError,
    replay::{connect, dry_run_config},
    report::{Decided, ReportHeader, SeenFinding, ShadowReport, Tally, Would},
};
use crate::{
    config::{Config, GuardianKey, NodeConfig, SecretRef},
    types::Severity,
};

/// How long the pipeline may take to connect and warm up before the watch starts.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// A directory only this user can read, removed on drop: the throwaway key and the records.
#[derive(Debug)]
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> Result<Self, ShadowError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path =
            std::env::temp_dir().join(format!("preempt-shadow-{}-{nanos}", std::process::id()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).map_err(|source| ShadowError::Io { path: path.clone(), source })?;
        Ok(Self(path))
    }

    /// Writes `text` to a new file only this user can read.
    fn write_private(&self, name: &str, text: &str) -> Result<PathBuf, ShadowError> {
        let path = self.0.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file =
            options.open(&path).map_err(|source| ShadowError::Io { path: path.clone(), source })?;
        file.write_all(text.as_bytes())
            .map_err(|source| ShadowError::Io { path: path.clone(), source })?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The config `run` gets for a shadow watch: what it decides is what the operator's config
/// decides, and nothing leaves the process but reads.
fn shadow_run_config(config: &Config, rpc: Option<&str>, key: &Path, incidents: &Path) -> Config {
    let mut c = dry_run_config(config);
    if let Some(url) = rpc {
        c.nodes = vec![NodeConfig { name: "rpc".into(), url: url.to_string(), pending: true }];
    }
    c.guardian = Some(GuardianKey::Raw(SecretRef::File(key.to_path_buf())));
    c.relays.clear();
    c.relay_auth = None;
    c.alerts.clear();
    c.incidents_path = Some(incidents.to_path_buf());
    c.incidents_store = None;
    c
}

/// Runs the pipeline for `duration` once it is ready (or until `interrupt`), then reports.
pub(super) async fn watch(
    operator_config: &Config,
    rpc: Option<&str>,
    duration: Duration,
    interrupt: impl Future<Output = ()>,
) -> Result<ShadowReport, ShadowError> {
    let started = Instant::now();
    let dir = PrivateDir::create()?;
    // A fresh key, never funded, never the guardian's: dry-run pauses are signed with it.
    let signer = PrivateKeySigner::random();
    let key = dir.write_private("throwaway.key", &format!("{}", signer.to_bytes()))?;
    drop(signer);
    let incidents = dir.0.join("incidents.jsonl");
    let config = shadow_run_config(operator_config, rpc, &key, &incidents);

    // The head before and after, for the number of blocks the watch saw.
    let (source, node) = connect(&config, None).await?;
    let head = || async {
        source.with_failover(0, |n| async move { n.latest_block_number().await }).await
    };
    let first_head = head().await?;

    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Instant>();
    let mut watched = None;
    let shutdown = async {
        tokio::pin!(interrupt);
        tokio::select! {
            _ = &mut interrupt => {}
            _ = tokio::time::sleep(READY_WITHIN) => {}
            ready = ready_rx => if let Ok(at) = ready {
                watched = Some(at);
                tokio::select! {
                    _ = &mut interrupt => {}
                    _ = tokio::time::sleep(duration) => {}
                }
            },
        }
    };
    crate::run::run_with(config.clone(), shutdown, move || {
        let _ = ready_tx.send(Instant::now());
    })
    .await
    .map_err(|e| ShadowError::Run(e.to_string()))?;
    let Some(ready_at) = watched else {
        return Err(ShadowError::NotReady(READY_WITHIN.as_secs()));
    };
    let watched_s = ready_at.elapsed().as_secs_f64();
    let last_head = head().await.unwrap_or(first_head);

    let text = match std::fs::read_to_string(&incidents) {
        Ok(t) => t,
        // No record written: nothing had findings.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(ShadowError::Io { path: incidents, source }),
    };
    let mut tally = Tally::new(operator_config);
    let mut header = ReportHeader {
        source: "live",
        node,
        duration_s: Some((watched_s * 10.0).round() / 10.0),
        blocks: last_head.saturating_sub(first_head),
        ..ReportHeader::default()
    };
    let mut seen: Vec<B256> = Vec::new();
    let (mut unreadable, mut repeats) = (0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            unreadable += 1;
            continue;
        };
        if record["kind"] != "detection" {
            continue;
        }
        let Some(d) = decided_of(&record) else {
            unreadable += 1;
            continue;
        };
        // A pending tx and then the same tx mined: one tx, reported once (first sighting).
        if seen.contains(&d.tx) {
            repeats += 1;
            continue;
        }
        seen.push(d.tx);
        tally.add(d);
    }
    if repeats > 0 {
        header.notes.push(format!(
            "{repeats} later detection(s) of txs already reported (seen pending, then mined) not counted again"
        ));
    }
    if unreadable > 0 {
        header.notes.push(format!("{unreadable} incident line(s) could not be read"));
    }
    header.wall_time_s = started.elapsed().as_secs_f64();
    Ok(tally.finish(header))
}

/// One detection record (as the submit stage writes it) as a decided tx.
pub(super) fn decided_of(record: &Value) -> Option<Decided> {
    let parse_address = |v: &Value| v.as_str().and_then(|s| s.parse::<Address>().ok());
    let tx = record["attack_tx"].as_str()?.parse::<B256>().ok()?;
    let from = parse_address(&record["attack_from"])?;
    let to = parse_address(&record["attack_to"]);
    let mined = record["source"] == "block-guard";
    let findings = record["findings"]
        .as_array()?
        .iter()
        .map(|f| {
            let severity = f["severity"].as_str()?;
            Some(SeenFinding {
                contract: parse_address(&f["contract"])?,
                rule: f["rule"].as_str()?.to_string(),
                severity: Severity::ALL.into_iter().find(|s| s.as_str() == severity)?,
                summary: f["summary"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    // decisions: [[contract, {"action": ...}], ...]
    let decisions = record["decisions"]
        .as_array()?
        .iter()
        .map(|d| Some((parse_address(&d[0])?, Would::of_action(d[1]["action"].as_str()?)?)))
        .collect::<Option<Vec<_>>>()?;
    Some(Decided {
        block: if mined { record["sim_block"].as_u64() } else { None },
        index: None,
        tx,
        from,
        to,
        seen_in: if mined { "block" } else { "mempool" },
        findings,
        decisions,
    })
}
