//! The alert stage's one task between `notify` and the sinks: drops repeats (the same finding
//! again, a node already known down, a balance already reported at its level), remembers each
//! attack's rule and incident key for the pause alerts that follow, renders once, and offers the
//! alert to every sink without waiting.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    hash::Hash,
    sync::Arc,
};

use alloy::primitives::{Address, B256, U256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    HubStats,
    event::AlertEvent,
    render::{Alert, Context, details, incident_key},
    sink::SinkHandle,
};

/// How many findings, attacks and pauses are remembered for de-duplication and context.
const REMEMBERED: usize = 4_096;

/// A map that forgets its oldest entries beyond a fixed size.
#[derive(Debug)]
struct Recent<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, V> Recent<K, V> {
    fn new() -> Self {
        Self { map: HashMap::new(), order: VecDeque::new() }
    }

    /// Inserts; `false` when the key was already there (its value is then replaced).
    fn insert(&mut self, k: K, v: V) -> bool {
        if self.map.insert(k.clone(), v).is_some() {
            return false;
        }
        self.order.push_back(k);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        true
    }

    fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }
}

/// A guardian balance, in pauses it pays for, as one sink judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BalanceLevel {
    Enough,
    Low,
    Empty,
}

#[derive(Debug)]
pub(crate) struct Router {
    pub(crate) sinks: Vec<SinkHandle>,
    pub(crate) stats: Arc<HubStats>,
    /// Delivery ids: this process's start, then a counter.
    pub(crate) id_prefix: String,
    seq: u64,
    findings: Recent<(B256, Address, String), ()>,
    attacks: Recent<(Address, B256), Context>,
    pauses: Recent<B256, Context>,
    nodes_down: HashSet<String>,
    /// Per sink (thresholds differ): the level last reported.
    balance: Vec<BalanceLevel>,
}

impl Router {
    pub(crate) fn new(sinks: Vec<SinkHandle>, stats: Arc<HubStats>) -> Self {
        let balance = vec![BalanceLevel::Enough; sinks.len()];
        Self {
            sinks,
            stats,
            id_prefix: format!("{:x}", crate::incident::unix_ms()),
            seq: 0,
            findings: Recent::new(),
            attacks: Recent::new(),
            pauses: Recent::new(),
            nodes_down: HashSet::new(),
            balance,
        }
    }

    /// Routes until `stop`, then routes what is already queued and returns (dropping the sinks'
    /// queues, so each sink finishes what it holds and ends).
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<AlertEvent>, stop: CancellationToken) {
        loop {
            tokio::select! {
                biased;
                event = rx.recv() => match event {
                    Some(e) => self.route(e),
                    None => return,
                },
                _ = stop.cancelled() => break,
            }
        }
        while let Ok(e) = rx.try_recv() {
            self.route(e);
        }
    }

    fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("{}-{}", self.id_prefix, self.seq)
    }

    fn suppressed(&self) {
        self.stats.suppressed.increment(1);
    }

    fn offer_all(&self, mut alert: Alert, event: &AlertEvent) {
        alert.details = details(event);
        let alert = Arc::new(alert);
        for s in &self.sinks {
            s.offer(Arc::clone(&alert));
        }
    }

    /// The context a later alert about this pause or attack inherits.
    fn context(&self, contract: Address, pause: Option<B256>, attack: Option<B256>) -> Context {
        pause
            .and_then(|p| self.pauses.get(&p))
            .or_else(|| attack.and_then(|a| self.attacks.get(&(contract, a))))
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn route(&mut self, event: AlertEvent) {
        match &event {
            AlertEvent::Finding(f) => {
                if !self.findings.insert((f.attack_tx, f.contract, f.rule.clone()), ()) {
                    return self.suppressed();
                }
                // The attack's context: its most severe rule so far.
                let key = (f.contract, f.attack_tx);
                let keep = self
                    .attacks
                    .get(&key)
                    .is_none_or(|c| c.severity.is_none_or(|s| s < f.severity));
                if keep {
                    self.attacks.insert(
                        key,
                        Context {
                            rule: Some(f.rule.clone()),
                            severity: Some(f.severity),
                            dedup_key: Some(incident_key(f.contract, Some(f.attack_tx), None)),
                        },
                    );
                }
                let id = self.next_id();
                self.offer_all(Alert::finding(id, f), &event);
            }
            AlertEvent::PauseSent(p) => {
                let ctx = self.context(p.contract, None, p.attack_tx);
                let id = self.next_id();
                let alert = Alert::pause_sent(id, p, &ctx);
                self.pauses.insert(
                    p.pause_tx,
                    Context {
                        rule: p.rule.clone().or(ctx.rule),
                        severity: p.severity.or(ctx.severity),
                        dedup_key: Some(alert.dedup_key.clone()),
                    },
                );
                self.offer_all(alert, &event);
            }
            AlertEvent::PauseLanded(l) => {
                let ctx = self.context(l.contract, Some(l.pause_tx), l.attack_tx);
                let id = self.next_id();
                self.offer_all(Alert::pause_landed(id, l, &ctx), &event);
            }
            AlertEvent::PauseFailed(f) => {
                let ctx = self.context(f.contract, f.pause_tx, f.attack_tx);
                let id = self.next_id();
                self.offer_all(Alert::pause_failed(id, f, &ctx), &event);
            }
            AlertEvent::NodeDown { node, reason } => {
                if !self.nodes_down.insert(node.clone()) {
                    return self.suppressed();
                }
                let id = self.next_id();
                self.offer_all(Alert::node(id, node, Some(reason)), &event);
            }
            AlertEvent::NodeUp { node } => {
                // Only a node that was reported down has recovered; the first `Up` is start-up.
                if !self.nodes_down.remove(node) {
                    return self.suppressed();
                }
                let id = self.next_id();
                self.offer_all(Alert::node(id, node, None), &event);
            }
            AlertEvent::GuardianBalance { guardian, balance_wei, pause_cost_wei } => {
                self.balance(&event, *guardian, *balance_wei, *pause_cost_wei);
            }
        }
    }

    /// Each sink hears of a balance when it crosses that sink's threshold (either way) or
    /// drops below one pause; readings at the level already reported are silent.
    fn balance(&mut self, event: &AlertEvent, guardian: Address, balance: U256, cost: U256) {
        let pauses = balance.checked_div(cost).unwrap_or(U256::MAX);
        let details = details(event);
        for i in 0..self.sinks.len() {
            let keep = self.sinks[i].low_balance_pauses;
            let level = if pauses.is_zero() {
                BalanceLevel::Empty
            } else if pauses < U256::from(keep) {
                BalanceLevel::Low
            } else {
                BalanceLevel::Enough
            };
            if level == self.balance[i] {
                continue;
            }
            self.balance[i] = level;
            let id = self.next_id();
            let mut alert = Alert::balance(id, guardian, balance, cost, pauses, keep);
            alert.details = details.clone();
            self.sinks[i].offer(Arc::new(alert));
        }
    }
}
