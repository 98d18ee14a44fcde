//! The submit stage's metrics: pause copies per destination, pauses per protected contract
//! (landed, replaced, given up, in flight, paused on chain), findings per rule and contract,
//! the guardian's balance and nonce, and the last stage's latency (`stage="sent"`).

use std::collections::HashMap;

use alloy::primitives::{Address, U256};
use metrics::{Counter, Gauge, Histogram};

use super::SubmitReport;
use crate::{
    config::Config,
    telemetry::{Telemetry, seconds_of_us},
    types::Finding,
    worker::stage_histogram,
};

/// One destination's handles (a node or a relay, by its config name).
#[derive(Debug)]
struct DestinationMetrics {
    name: String,
    /// Copies handed to it (first sends and re-sends).
    sent: Counter,
    /// Copies it refused or never answered.
    failed: Counter,
    /// Copies a simulation worker wrote itself, as soon as the pause was signed.
    by_worker: Counter,
}

/// One protected contract's handles.
#[derive(Debug)]
struct ContractMetrics {
    address: Address,
    landed: Counter,
    replaced: Counter,
    given_up: Counter,
    /// 1 while `paused()` reads true on the guard's fork (by us or anyone).
    paused: Gauge,
    /// Our pauses sent and not yet seen in a block.
    in_flight: Gauge,
}

/// Registered when the dispatcher is built: every destination and contract is in the config.
#[derive(Debug)]
pub(super) struct SubmitMetrics {
    destinations: Vec<DestinationMetrics>,
    contracts: Vec<ContractMetrics>,
    /// Per (rule, contract), registered at a rule's first finding on a contract: findings are
    /// rare, counted after the pause left, and the rule names are the detectors' own.
    findings: HashMap<(&'static str, Address), Counter>,
    sent_latency: Histogram,
    guardian_balance: Gauge,
    guardian_nonce: Gauge,
    resends: Counter,
    telemetry: Telemetry,
}

impl SubmitMetrics {
    pub(super) fn new(config: &Config, t: &Telemetry) -> Self {
        let destination = |name: &str| DestinationMetrics {
            name: name.to_string(),
            sent: t.counter("preempt_pauses_sent_total", &[("destination", name.to_string())]),
            failed: t.counter("preempt_pauses_failed_total", &[("destination", name.to_string())]),
            by_worker: t.counter(
                "preempt_pauses_written_by_worker_total",
                &[("destination", name.to_string())],
            ),
        };
        let destinations = config
            .nodes
            .iter()
            .map(|n| destination(&n.name))
            .chain(config.relays.iter().map(|r| destination(&r.name)))
            .collect();
        let contracts = config
            .protected
            .iter()
            .map(|p| {
                let l = || [("contract", p.name.clone())];
                ContractMetrics {
                    address: p.address,
                    landed: t.counter("preempt_pauses_landed_total", &l()),
                    replaced: t.counter("preempt_pauses_replaced_total", &l()),
                    given_up: t.counter("preempt_pauses_given_up_total", &l()),
                    paused: t.gauge("preempt_contract_paused", &l()),
                    in_flight: t.gauge("preempt_pauses_in_flight", &l()),
                }
            })
            .collect();
        Self {
            destinations,
            contracts,
            findings: HashMap::new(),
            sent_latency: stage_histogram(t, "sent"),
            guardian_balance: t.gauge("preempt_guardian_balance_wei", &[]),
            guardian_nonce: t.gauge("preempt_guardian_nonce", &[]),
            resends: t.counter("preempt_pause_resends_total", &[]),
            telemetry: t.clone(),
        }
    }

    /// Each copy of `report` by destination; `sent_us`: µs from the attack's frame to the first
    /// write (a pending-tx detection's first send only).
    pub(super) fn sent(&self, report: &SubmitReport, sent_us: Option<f64>) {
        for r in &report.results {
            let Some(d) = self.destinations.iter().find(|d| d.name == r.destination) else {
                continue;
            };
            d.sent.increment(1);
            if r.by_worker {
                d.by_worker.increment(1);
            }
            if !r.ok {
                d.failed.increment(1);
            }
        }
        if let Some(us) = sent_us {
            self.sent_latency.record(seconds_of_us(us));
        }
    }

    pub(super) fn resent(&self, report: &SubmitReport) {
        self.resends.increment(1);
        self.sent(report, None);
    }

    pub(super) fn findings(&mut self, findings: &[Finding]) {
        for f in findings {
            let telemetry = &self.telemetry;
            self.findings
                .entry((f.rule, f.contract))
                .or_insert_with(|| {
                    telemetry.counter(
                        "preempt_findings_total",
                        &[("rule", f.rule.to_string()), ("contract", f.contract_name.clone())],
                    )
                })
                .increment(1);
        }
    }

    fn contract(&self, address: &Address) -> Option<&ContractMetrics> {
        self.contracts.iter().find(|c| c.address == *address)
    }

    pub(super) fn landed(&self, contract: &Address) {
        if let Some(c) = self.contract(contract) {
            c.landed.increment(1);
        }
    }

    pub(super) fn replaced(&self, contract: &Address) {
        if let Some(c) = self.contract(contract) {
            c.replaced.increment(1);
        }
    }

    pub(super) fn given_up(&self, contract: &Address) {
        if let Some(c) = self.contract(contract) {
            c.given_up.increment(1);
        }
    }

    pub(super) fn paused(&self, contract: &Address, paused: bool) {
        if let Some(c) = self.contract(contract) {
            c.paused.set(if paused { 1.0 } else { 0.0 });
        }
    }

    /// Pauses in flight per contract, from the dispatcher's own table (every contract set, so
    /// one whose pause landed reads 0).
    pub(super) fn in_flight<'a>(&self, contracts: impl Iterator<Item = &'a Address>) {
        let mut counts: Vec<(Address, u32)> =
            self.contracts.iter().map(|c| (c.address, 0)).collect();
        for a in contracts {
            if let Some((_, n)) = counts.iter_mut().find(|(c, _)| c == a) {
                *n += 1;
            }
        }
        for (c, (_, n)) in self.contracts.iter().zip(counts) {
            c.in_flight.set(f64::from(n));
        }
    }

    /// `preempt_guardian_info{address}` = 1: who signs the pauses, for `preempt status`.
    pub(super) fn guardian_address(&self, address: Address) {
        self.telemetry
            .gauge("preempt_guardian_info", &[("address", address.to_checksum(None))])
            .set(1.0);
    }

    pub(super) fn guardian(&self, balance: Option<U256>, nonce: Option<u64>) {
        if let Some(b) = balance {
            self.guardian_balance.set(f64::from(b));
        }
        if let Some(n) = nonce {
            self.guardian_nonce.set(n as f64);
        }
    }
}
