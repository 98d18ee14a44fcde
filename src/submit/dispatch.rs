//! The one owner of what happens after a decision: it hands every pause to the sockets the
//! moment it arrives (each submit its own task, so a slow destination never delays the next
//! pause), tracks pauses until a block holds them, re-sends them, answers findings in mined
//! blocks, re-arms contracts whose pause was lifted, and writes every incident record.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Instant,
};

use alloy::{
    consensus::Transaction as _,
    primitives::{Address, B256},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{EarlyWrites, SubmitReport, Submitter, metrics::SubmitMetrics};
use crate::{
    alert::{AlertEvent, AlertHub},
    config::Config,
    fork::StateSource,
    guard::GuardReport,
    incident::{
        DetectionRecord, DetectionSource, HoldingKept, IncidentLog, OutcomeRecord, RearmRecord,
        ResendRecord, unix_ms,
    },
    respond::{Decision, HeadNonces, PausePlan, Responder, decide_all},
    telemetry::Telemetry,
    worker::{Detection, StageTimes},
};

/// A pause sent and not yet seen in a block.
#[derive(Debug, Clone)]
struct InFlight {
    plan: PausePlan,
    first_target: u64,
}

/// Blocks whose landed pauses are remembered, to send them again if a reorg drops the block.
const LANDED_KEPT: usize = 64;

/// What the submit tasks hand back to be recorded.
#[derive(Debug)]
enum Finished {
    Detection(Box<DetectionRecord>),
    Resend(ResendRecord),
}

/// Everything the dispatcher owns or shares.
#[derive(Debug)]
pub struct Dispatcher {
    config: Config,
    submitter: Arc<Submitter>,
    responder: Arc<Mutex<Responder>>,
    incidents: Arc<IncidentLog>,
    source: StateSource,
    /// The block pending txs target now (the guard's head + 1).
    target: u64,
    in_flight: HashMap<B256, InFlight>,
    landed: VecDeque<(u64, Vec<InFlight>)>,
    finished_tx: mpsc::UnboundedSender<Finished>,
    finished_rx: mpsc::UnboundedReceiver<Finished>,
    /// Told of contracts each block creates (ingest ranks txs to fresh contracts higher).
    on_deployed: Option<DeployedHook>,
    /// Submit tasks whose record has not come back yet.
    outstanding: usize,
    alerts: AlertHub,
    metrics: Arc<Mutex<SubmitMetrics>>,
}

/// What is told of the contracts a block creates.
pub type DeployedFn = dyn Fn(&[Address]) + Send + Sync;

/// Called with the contracts each block creates.
#[derive(Clone)]
pub struct DeployedHook(pub Arc<DeployedFn>);

impl std::fmt::Debug for DeployedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeployedHook")
    }
}

impl Dispatcher {
    pub fn new(
        config: Config,
        submitter: Arc<Submitter>,
        responder: Arc<Mutex<Responder>>,
        incidents: Arc<IncidentLog>,
        source: StateSource,
        head: u64,
    ) -> Self {
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(Mutex::new(SubmitMetrics::new(&config, &Telemetry::new())));
        Self {
            metrics,
            config,
            submitter,
            responder,
            incidents,
            source,
            target: head + 1,
            in_flight: HashMap::new(),
            landed: VecDeque::new(),
            finished_tx,
            finished_rx,
            on_deployed: None,
            outstanding: 0,
            alerts: AlertHub::disabled(),
        }
    }

    /// Where findings and pauses are told (Slack, PagerDuty, webhooks); never waits.
    pub fn alerting(mut self, alerts: AlertHub) -> Self {
        self.alerts = alerts;
        self
    }

    /// Counts on the guard's metrics (else on a recorder of its own).
    pub fn metered(mut self, telemetry: &Telemetry) -> Self {
        self.metrics = Arc::new(Mutex::new(SubmitMetrics::new(&self.config, telemetry)));
        self
    }

    pub fn on_deployed(mut self, f: DeployedHook) -> Self {
        self.on_deployed = Some(f);
        self
    }

    /// Runs until `cancel`, then sends what is already queued and records it (bounded time).
    pub async fn run(
        mut self,
        mut detections: mpsc::Receiver<Detection>,
        mut blocks: mpsc::Receiver<GuardReport>,
        cancel: CancellationToken,
    ) {
        self.note_guardian();
        loop {
            tokio::select! {
                biased;
                Some(d) = detections.recv() => self.on_detection(d),
                Some(done) = self.finished_rx.recv() => self.record(done),
                Some(report) = blocks.recv() => self.on_block(report).await,
                _ = cancel.cancelled() => break,
            }
        }
        // The last detections go out and are recorded before exit, within a bounded time.
        while let Ok(d) = detections.try_recv() {
            self.on_detection(d);
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(1_200);
        while self.outstanding > 0 {
            match tokio::time::timeout_at(deadline, self.finished_rx.recv()).await {
                Ok(Some(done)) => self.record(done),
                _ => break,
            }
        }
    }

    fn record(&mut self, done: Finished) {
        self.outstanding = self.outstanding.saturating_sub(1);
        match done {
            Finished::Detection(r) => self.incidents.record(&*r),
            Finished::Resend(r) => self.incidents.record(&r),
        }
    }

    /// Sends every pause of a pending-tx detection at once; records it when all have answered.
    fn on_detection(&mut self, mut d: Detection) {
        let target = self.target;
        let handed_us = micros(d.tx.seen_at);
        let plans = plans_of(&d.decisions);
        for plan in &plans {
            self.in_flight
                .insert(plan.tx_hash, InFlight { plan: plan.clone(), first_target: target });
        }
        // The pause goes first (where the worker has not written it already); logs and alerts
        // after.
        let submitter = Arc::clone(&self.submitter);
        let finished = self.finished_tx.clone();
        let alerts = self.alerts.clone();
        let metrics = Arc::clone(&self.metrics);
        self.outstanding += 1;
        let early = std::mem::take(&mut d.early);
        let (findings, decisions) = (d.findings.clone(), d.decisions.clone());
        let (attack, sim_block) = (d.tx.hash, d.outcome.block_number);
        let to_send = plans.clone();
        tokio::spawn(async move {
            let reports = submit_all(&submitter, &to_send, target, Some(d.tx.seen_at), early).await;
            // Counted once the pause is out: nothing here comes before it.
            count_detection(&metrics, &reports, &d.findings, &d.decisions, true);
            for (plan, (report, _)) in to_send.iter().zip(&reports) {
                alerts.notify(AlertEvent::pause_sent(plan, report, &d.findings, Some(d.tx.hash)));
            }
            let answered_us = (!reports.is_empty()).then(|| micros(d.tx.seen_at));
            let record = DetectionRecord {
                kind: "detection",
                at_unix_ms: unix_ms(),
                source: DetectionSource::Mempool,
                attack_tx: d.tx.hash,
                attack_from: d.tx.tx.signer(),
                attack_to: d.tx.tx.inner().to(),
                attack_fees: Some(d.attack_fees),
                seen_from: d.tx.source.to_string(),
                sim_block: d.outcome.block_number,
                sim_gas_used: d.outcome.gas_used,
                sim_time_us: d.outcome.sim_time.as_secs_f64() * 1e6,
                seen_unix_us: Some(crate::incident::unix_us_at(d.tx.seen_at)),
                findings: d.findings,
                holdings: d.outcome.holdings,
                ledgers: d.outcome.ledgers,
                decisions: d.decisions,
                times: d.times,
                submit_started_us: (!to_send.is_empty()).then_some(handed_us),
                sent_us: reports.iter().filter_map(|(_, sent)| *sent).reduce(f64::min),
                answered_us,
                submitted: reports.into_iter().map(|(r, _)| r).collect(),
            };
            let _ = finished.send(Finished::Detection(Box::new(record)));
        });
        for f in &findings {
            tracing::warn!(%attack, rule = f.rule, contract = %f.contract_name, "{}", f.summary);
            self.alerts.notify(AlertEvent::finding(f, attack, DetectionSource::Mempool, sim_block));
        }
        self.alert_unsigned(&decisions, Some(attack));
        if !plans.is_empty() {
            // A second attack in the same block finds a pause ready at the next nonce.
            let (responder, protected) =
                (Arc::clone(&self.responder), self.config.protected.clone());
            tokio::task::spawn_blocking(move || crate::respond::refill(&responder, &protected));
        }
        lock(&self.metrics).in_flight(self.in_flight.values().map(|p| &p.plan.contract));
    }

    async fn on_block(&mut self, report: GuardReport) {
        let number = report.number;
        self.target = number + 1;
        if !report.reorged.is_empty() {
            self.after_reorg(&report.reorged);
        }
        if let Some(f) = &self.on_deployed
            && !report.deployed.is_empty()
        {
            (f.0)(&report.deployed);
        }
        self.record_landed(&report);
        self.follow_paused_state(&report);
        self.answer_mined_attacks(&report);
        self.resend(number);
        self.prepare_pauses(report.next_base_fee);
        lock(&self.metrics).in_flight(self.in_flight.values().map(|p| &p.plan.contract));
    }

    /// A reorg dropped blocks that held our pauses: they are in flight again.
    fn after_reorg(&mut self, dropped: &[u64]) {
        let mut responder = lock(&self.responder);
        self.landed.retain(|(block, pauses)| {
            if !dropped.contains(block) {
                return true;
            }
            for p in pauses {
                tracing::warn!(pause = %p.plan.tx_hash, block, "reorg dropped the block holding our pause; sending it again");
                responder.mark_unpaused(&p.plan.contract);
                self.in_flight.insert(p.plan.tx_hash, p.clone());
            }
            false
        });
    }

    fn record_landed(&mut self, report: &GuardReport) {
        let number = report.number;
        let index_of = |h: &B256| report.txs.iter().position(|(t, _)| t == h);
        let landed: Vec<B256> =
            self.in_flight.keys().copied().filter(|h| index_of(h).is_some()).collect();
        let mut kept = Vec::new();
        for hash in landed {
            let Some(p) = self.in_flight.remove(&hash) else { continue };
            let pause_index = index_of(&hash);
            let attack_index = p.plan.attack_tx.and_then(|a| index_of(&a));
            let paused =
                report.paused.iter().find(|(c, _)| *c == p.plan.contract).and_then(|(_, v)| *v);
            let holdings = report
                .holdings
                .iter()
                .find(|(c, _)| *c == p.plan.contract)
                .map(|(_, h)| {
                    h.iter()
                        .map(|(asset, before, after)| HoldingKept {
                            asset: *asset,
                            before: *before,
                            after: *after,
                            kept: after >= before,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let record = OutcomeRecord {
                kind: "outcome",
                at_unix_ms: unix_ms(),
                block: number,
                contract: p.plan.contract,
                contract_name: p.plan.contract_name.clone(),
                pause_tx: hash,
                pause_landed: true,
                pause_succeeded: pause_index.map(|i| report.txs[i].1),
                pause_index,
                attack_tx: p.plan.attack_tx,
                attack_index,
                attack_succeeded: attack_index.map(|i| report.txs[i].1),
                same_block: attack_index.is_some(),
                pause_before_attack: matches!((pause_index, attack_index), (Some(p), Some(a)) if p < a),
                contract_paused: paused,
                holdings,
            };
            tracing::info!(
                block = number,
                contract = %p.plan.contract_name,
                pause_index = ?record.pause_index,
                attack_index = ?record.attack_index,
                attack_succeeded = ?record.attack_succeeded,
                "pause landed"
            );
            self.incidents.record(&record);
            lock(&self.metrics).landed(&p.plan.contract);
            self.alerts.notify(AlertEvent::pause_landed(&record));
            lock(&self.responder)
                .mark_paused(p.plan.contract, &format!("our pause landed in block {number}"));
            kept.push(p);
        }
        if !kept.is_empty() {
            if self.landed.len() == LANDED_KEPT {
                self.landed.pop_front();
            }
            self.landed.push_back((number, kept));
        }
    }

    /// Contracts paused on chain (by us or anyone) are not raced; one whose pause was lifted is.
    fn follow_paused_state(&mut self, report: &GuardReport) {
        let mut responder = lock(&self.responder);
        let metrics = lock(&self.metrics);
        for (contract, paused) in &report.paused {
            if let Some(p) = paused {
                metrics.paused(contract, *p);
            }
            let name = self
                .config
                .protected(*contract)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| contract.to_string());
            match paused {
                Some(true) if !responder.is_paused(contract) => {
                    responder.mark_paused(
                        *contract,
                        &format!("paused() true at block {}", report.number),
                    );
                    tracing::info!(contract = %name, block = report.number, "contract is paused");
                }
                Some(false) if responder.is_paused(contract) => {
                    let was = responder.mark_unpaused(contract).unwrap_or_default();
                    responder.forget_in_flight(contract);
                    tracing::warn!(contract = %name, block = report.number, "contract unpaused; guard re-armed");
                    self.incidents.record(&RearmRecord {
                        kind: "rearmed",
                        at_unix_ms: unix_ms(),
                        contract: *contract,
                        contract_name: name,
                        unpaused_at_block: report.number,
                        was,
                    });
                }
                _ => {}
            }
        }
    }

    /// Findings in txs already mined: pause at once, for the next block.
    fn answer_mined_attacks(&mut self, report: &GuardReport) {
        for found in &report.findings {
            let decisions = decide_all(
                &self.responder,
                &self.config,
                &found.findings,
                None,
                report.next_base_fee,
            );
            tracing::warn!(
                block = report.number,
                attack = %found.tx.hash,
                findings = found.findings.len(),
                "block guard: mined tx with findings"
            );
            let plans = plans_of(&decisions);
            for plan in &plans {
                self.in_flight.insert(
                    plan.tx_hash,
                    InFlight { plan: plan.clone(), first_target: self.target },
                );
            }
            for f in &found.findings {
                self.alerts.notify(AlertEvent::finding(
                    f,
                    found.tx.hash,
                    DetectionSource::BlockGuard,
                    report.number,
                ));
            }
            self.alert_unsigned(&decisions, Some(found.tx.hash));
            let (submitter, finished, target) =
                (Arc::clone(&self.submitter), self.finished_tx.clone(), self.target);
            let alerts = self.alerts.clone();
            let metrics = Arc::clone(&self.metrics);
            let started = Instant::now();
            let (hash, tx, outcome, findings) =
                (found.tx.hash, found.tx.tx.clone(), found.outcome.clone(), found.findings.clone());
            let counted_decisions = decisions.clone();
            let number = report.number;
            self.outstanding += 1;
            tokio::spawn(async move {
                let reports =
                    submit_all(&submitter, &plans, target, Some(started), Vec::new()).await;
                // A mined tx has no frame to time the stages from: no `sent` latency.
                count_detection(&metrics, &reports, &findings, &counted_decisions, false);
                for (plan, (report, _)) in plans.iter().zip(&reports) {
                    alerts.notify(AlertEvent::pause_sent(plan, report, &findings, Some(hash)));
                }
                let record = DetectionRecord {
                    kind: "detection",
                    at_unix_ms: unix_ms(),
                    source: DetectionSource::BlockGuard,
                    attack_tx: hash,
                    attack_from: tx.signer(),
                    attack_to: tx.inner().to(),
                    attack_fees: None,
                    seen_from: "block".into(),
                    sim_block: number,
                    sim_gas_used: outcome.gas_used,
                    sim_time_us: outcome.sim_time.as_secs_f64() * 1e6,
                    seen_unix_us: None,
                    findings,
                    holdings: outcome.holdings,
                    ledgers: outcome.ledgers,
                    decisions,
                    times: StageTimes::default(),
                    submit_started_us: Some(0.0),
                    sent_us: reports.iter().filter_map(|(_, sent)| *sent).reduce(f64::min),
                    answered_us: Some(micros(started)),
                    submitted: reports.into_iter().map(|(r, _)| r).collect(),
                };
                let _ = finished.send(Finished::Detection(Box::new(record)));
            });
            // After the pause has left: what the tx read, for `check --replay`.
            if let Some(prestate) = &found.prestate {
                self.incidents.record_prestate((**prestate).clone());
            }
        }
    }

    /// Pauses not seen in a block yet go out again for the next one, within `resend_blocks`.
    fn resend(&mut self, number: u64) {
        let limit = self.config.respond.resend_blocks;
        let due: Vec<InFlight> = self.in_flight.values().cloned().collect();
        for p in due {
            if number + 1 > p.first_target + limit {
                self.in_flight.remove(&p.plan.tx_hash);
                lock(&self.responder).forget_in_flight(&p.plan.contract);
                tracing::warn!(pause = %p.plan.tx_hash, "pause not included within resend_blocks; given up");
                lock(&self.metrics).given_up(&p.plan.contract);
                self.alerts.notify(AlertEvent::pause_given_up(&p.plan, number, limit));
                continue;
            }
            if lock(&self.responder).is_paused(&p.plan.contract) {
                self.in_flight.remove(&p.plan.tx_hash);
                continue;
            }
            let (submitter, finished, target) =
                (Arc::clone(&self.submitter), self.finished_tx.clone(), number + 1);
            let metrics = Arc::clone(&self.metrics);
            self.outstanding += 1;
            tokio::spawn(async move {
                let report = submitter.submit(p.plan.raw.clone(), p.plan.tx_hash, target).await;
                lock(&metrics).resent(&report);
                let _ = finished.send(Finished::Resend(ResendRecord {
                    kind: "resend",
                    at_unix_ms: unix_ms(),
                    pause_tx: p.plan.tx_hash,
                    contract: p.plan.contract,
                    report,
                }));
            });
        }
    }

    /// On each head, off this task: the guardian's nonce (and balance, for the low-balance
    /// alert) from the chain, then the pauses for the next block pre-signed at a ladder of fee
    /// levels, so the hot path only picks one.
    fn prepare_pauses(&self, next_base_fee: u64) {
        let Some(address) = lock(&self.responder).pauser().map(|p| p.address()) else { return };
        let (source, responder) = (self.source.clone(), Arc::clone(&self.responder));
        let (alerts, respond) = (self.alerts.clone(), self.config.respond.clone());
        let protected = self.config.protected.clone();
        let metrics = Arc::clone(&self.metrics);
        tokio::spawn(async move {
            let (balance, nonce) = read_guardian(&source, address).await;
            if let Some(balance) = balance {
                alerts.notify(AlertEvent::guardian_balance(address, balance, &respond));
            }
            lock(&metrics).guardian(balance, nonce);
            let Some(guardian_nonce) = nonce else { return };
            // The Safe's own approval by its owner-sender (v = 1) needs no Safe nonce, so a pause
            // never reverts because another Safe tx moved it.
            let head = HeadNonces { next_base_fee, guardian_nonce, safe_nonce: None };
            let signed = tokio::task::spawn_blocking(move || {
                crate::respond::prepare(&responder, &protected, head)
            })
            .await;
            if let Ok(report) = signed {
                tracing::debug!(?report, "pauses pre-signed for the next block");
            }
        });
    }
}

impl Dispatcher {
    /// The guardian's balance and nonce at start, for `preempt status` before the first head
    /// (each head refreshes them in `prepare_pauses`).
    fn note_guardian(&self) {
        let Some(address) = lock(&self.responder).pauser().map(|p| p.address()) else { return };
        lock(&self.metrics).guardian_address(address);
        let (source, metrics) = (self.source.clone(), Arc::clone(&self.metrics));
        tokio::spawn(async move {
            let (balance, nonce) = read_guardian(&source, address).await;
            lock(&metrics).guardian(balance, nonce);
        });
    }

    /// A pause the policy wanted and could not sign is told at once.
    fn alert_unsigned(&self, decisions: &[(Address, Decision)], attack: Option<B256>) {
        for (contract, d) in decisions {
            if let Decision::Failed { error } = d {
                let name = self
                    .config
                    .protected(*contract)
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| contract.to_string());
                self.alerts.notify(AlertEvent::pause_not_signed(*contract, &name, attack, error));
            }
        }
    }
}

/// The guardian's balance and nonce from the chain (`None`: no node answered).
async fn read_guardian(
    source: &StateSource,
    address: Address,
) -> (Option<alloy::primitives::U256>, Option<u64>) {
    let balance = source
        .with_failover(0, |node| async move {
            alloy::providers::Provider::get_balance(&node.provider(), address)
                .await
                .map_err(|e| crate::fork::NodeError::Rpc(e.to_string()))
        })
        .await
        .ok();
    let nonce = source
        .with_failover(0, |node| async move {
            alloy::providers::Provider::get_transaction_count(&node.provider(), address)
                .await
                .map_err(|e| crate::fork::NodeError::Rpc(e.to_string()))
        })
        .await
        .ok();
    (balance, nonce)
}

/// A detection's pauses per destination (with the `sent` stage's latency), its findings per
/// rule and contract, and the pauses that replaced one in flight.
fn count_detection(
    metrics: &Mutex<SubmitMetrics>,
    reports: &[(SubmitReport, Option<f64>)],
    findings: &[crate::types::Finding],
    decisions: &[(Address, Decision)],
    from_frame: bool,
) {
    let mut m = lock(metrics);
    for (report, sent_us) in reports {
        m.sent(report, sent_us.filter(|_| from_frame));
    }
    m.findings(findings);
    for (contract, d) in decisions {
        if matches!(d, Decision::Replace { .. }) {
            m.replaced(contract);
        }
    }
}

fn plans_of(decisions: &[(Address, Decision)]) -> Vec<PausePlan> {
    decisions
        .iter()
        .filter_map(|(_, d)| match d {
            Decision::Pause { plan } | Decision::Replace { plan, .. } => Some(plan.clone()),
            _ => None,
        })
        .collect()
}

/// Every plan to every destination at once; with each report, when its first copy's bytes were
/// written to a socket (µs after `since`).
async fn submit_all(
    submitter: &Submitter,
    plans: &[PausePlan],
    target: u64,
    since: Option<Instant>,
    mut early: Vec<(B256, EarlyWrites)>,
) -> Vec<(SubmitReport, Option<f64>)> {
    let early: Vec<EarlyWrites> = plans
        .iter()
        .map(|plan| match early.iter().position(|(hash, _)| *hash == plan.tx_hash) {
            Some(at) => early.swap_remove(at).1,
            None => EarlyWrites::none(),
        })
        .collect();
    let sends = plans.iter().zip(early).map(|(plan, early)| async move {
        let report = submitter.submit_after(early, plan.raw.clone(), plan.tx_hash, target).await;
        // The write to a socket where the transport tells it, else the hand-over to it.
        let sent = since.map(|since| {
            StageTimes::since(since, report.first_written_at.unwrap_or(report.started_at))
        });
        tracing::warn!(
            attack = ?plan.attack_tx,
            contract = %plan.contract_name,
            pause = %plan.tx_hash,
            max_fee = plan.max_fee_per_gas,
            tip = plan.max_priority_fee_per_gas,
            accepted = report.results.iter().filter(|r| r.ok).count(),
            destinations = report.results.len(),
            "pause sent"
        );
        (report, sent)
    });
    futures::future::join_all(sends).await
}

fn micros(since: Instant) -> f64 {
    StageTimes::since(since, Instant::now())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
