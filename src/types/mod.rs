//! Messages passed between pipeline stages: what a stage hands on, and nothing of its insides.

pub mod abi;
mod ledger;

pub use ledger::{
    AccountedBy, Accounting, AssetLedger, Authority, ContractLedger, Flow, MappingKey, PriceRead,
    RoleChange, SlotChange, ThirdPartyDebit, ThirdPartyPull, is_address_word,
};

use std::time::Duration;

use alloy::primitives::{Address, B256, I256, U256};
use serde::Serialize;

use crate::config::{Asset, CompareOp};

/// One call frame seen during a simulation (calls only; creates are recorded with `scheme = "CREATE"`).
#[derive(Debug, Clone, Serialize)]
pub struct CallFrame {
    /// Position in call order (0 = the tx's top-level call).
    pub index: usize,
    pub parent: Option<usize>,
    pub depth: usize,
    pub caller: Address,
    /// The account whose storage and balance the frame runs on.
    pub target: Address,
    /// The account whose code runs (differs from `target` for DELEGATECALL).
    pub code: Address,
    pub scheme: &'static str,
    pub value: U256,
    pub selector: Option<[u8; 4]>,
    pub success: bool,
    pub gas_used: u64,
}

/// An ERC-20 `Transfer(from, to, value)` emitted by a successful frame.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TokenTransfer {
    pub token: Address,
    pub from: Address,
    pub to: Address,
    pub value: U256,
}

/// A protected contract's holdings of one asset before and after the tx.
#[derive(Debug, Clone, Serialize)]
pub struct HoldingChange {
    pub contract: Address,
    pub asset: Asset,
    pub before: U256,
    pub after: U256,
    /// Every counterparty that received this asset from the contract, with the amount.
    pub recipients: Vec<(Address, U256)>,
}

impl HoldingChange {
    pub fn loss(&self) -> U256 {
        self.before.saturating_sub(self.after)
    }
}

/// An account's claim on a protected contract's asset, read through a configured view.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimReading {
    pub contract: Address,
    pub asset: Asset,
    pub view: String,
    pub account: Address,
    pub before: U256,
    pub after: U256,
}

/// A configured invariant evaluated on the state before and after the tx.
#[derive(Debug, Clone, Serialize)]
pub struct InvariantReading {
    pub contract: Address,
    pub invariant: String,
    pub before: InvariantValue,
    pub after: InvariantValue,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InvariantValue {
    Holds {
        lhs: Option<U256>,
        rhs: Option<U256>,
    },
    Violated {
        lhs: Option<U256>,
        rhs: Option<U256>,
        op: Option<CompareOp>,
    },
    /// The view call reverted or returned something undecodable.
    Unreadable {
        reason: String,
    },
}

impl InvariantValue {
    pub fn holds(&self) -> bool {
        matches!(self, Self::Holds { .. })
    }
    pub fn violated(&self) -> bool {
        matches!(self, Self::Violated { .. })
    }
}

/// A protected contract re-entered while one of its frames was live, with the storage slots
/// the inner frame read that the outer frame wrote after the re-entry returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReentryObservation {
    pub contract: Address,
    /// The live frame of the contract that was re-entered.
    pub outer_frame: usize,
    /// The frame that entered the contract again.
    pub inner_frame: usize,
    /// The inner frame (and its sub-calls on the contract) wrote no storage of the contract.
    pub inner_read_only: bool,
    /// Slots the inner frame read and the outer frame wrote after the re-entry (stale reads).
    pub stale_slots: Vec<U256>,
    /// The contract paid out in both the live frame and the re-entry against the same entry
    /// of its books (only the innermost booking it: EtherStore), with the amounts.
    pub double_payout: Option<DoublePayout>,
}

/// A re-entry that paid out twice against one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DoublePayout {
    pub slot: U256,
    pub outer_paid: U256,
    pub inner_paid: U256,
}

/// Everything a simulation of one tx shows; the detectors read only this.
#[derive(Debug, Clone, Serialize)]
pub struct SimOutcome {
    pub tx_hash: B256,
    pub from: Address,
    pub to: Option<Address>,
    pub success: bool,
    pub gas_used: u64,
    /// Revert output or halt reason when `success` is false.
    pub failure: Option<String>,
    pub frames: Vec<CallFrame>,
    pub transfers: Vec<TokenTransfer>,
    pub holdings: Vec<HoldingChange>,
    pub claims: Vec<ClaimReading>,
    pub invariants: Vec<InvariantReading>,
    pub reentries: Vec<ReentryObservation>,
    /// Protected contracts whose code ran or whose state or holdings changed.
    pub touched_protected: Vec<Address>,
    /// The books of each touched protected contract.
    pub ledgers: Vec<ContractLedger>,
    #[serde(serialize_with = "serialize_micros")]
    pub sim_time: Duration,
    pub block_number: u64,
}

fn serialize_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e6)
}

/// How bad a finding is; the policy table maps each rule at each severity to an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a line in the record (an admin action, a re-entry with no consequence).
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] =
        [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// One rule's verdict on one contract, with the numbers a person needs to re-check it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub contract: Address,
    pub contract_name: String,
    pub summary: String,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Findings are rare and never on the hot path: a flat enum reads better than boxes.
#[allow(clippy::large_enum_variant)]
pub enum Evidence {
    Drain {
        asset: Asset,
        holdings_before: U256,
        holdings_after: U256,
        loss: U256,
        /// Loss nothing in the contract's own books accounts for.
        unmatched_loss: U256,
        loss_bps: u64,
        threshold_bps: u32,
        claim_debits: Vec<ClaimReading>,
        /// What the books do account for, and how.
        accounted: Vec<Accounting>,
        recipients: Vec<(Address, U256)>,
    },
    /// Value moved, or a role changed hands, on the authority of a key held before the tx.
    AdminAction {
        asset: Option<Asset>,
        loss: U256,
        loss_bps: u64,
        authority: Authority,
        role_change: Option<RoleChange>,
    },
    /// Prices the contract read moved inside the tx, and it lost value on them.
    PriceManipulation {
        reads: Vec<PriceRead>,
        bound_bps: u32,
        /// Per asset: the loss, and the part of it unaccounted (bps of the holdings).
        losses: Vec<(Asset, U256, u64)>,
    },
    /// Unaccounted takes, each under the threshold, that sum past it within the window.
    CumulativeDrain(Box<CumulativeEvidence>),
    /// A privileged role given by someone who held no authority to give it.
    RoleTakeover {
        change: RoleChange,
    },
    Reentrancy {
        outer: CallFrame,
        inner: CallFrame,
        /// Frames from the outer frame down to the re-entry.
        path: Vec<CallFrame>,
        stale_slots: Vec<U256>,
        /// Paid out in both frames against one entry of the books.
        double_payout: Option<DoublePayout>,
    },
    /// The contract, as spender, drew on accounts that did not sign the tx.
    ApprovalDrain {
        pulls: Vec<ThirdPartyPull>,
        threshold_bps: u32,
    },
    /// Balances in the contract's own books moved from accounts that did not consent.
    LedgerTheft {
        debits: Vec<ThirdPartyDebit>,
        threshold_bps: u32,
    },
    Invariant {
        invariant: String,
        before: InvariantValue,
        after: InvariantValue,
    },
    /// A new contract, called from its deployer on the state right after its deployment,
    /// tripped these rules: the exploit before its tx exists.
    Probe {
        deployed: Address,
        deployer: Address,
        /// How the new contract reaches the protected one.
        reach: ProbeReach,
        /// The entry point called (a name, a selector, or `(no calldata)`).
        entry: String,
        selector: Option<String>,
        /// ETH sent along with the call.
        value: U256,
        /// Calls the probe made, and how long it took.
        calls: usize,
        elapsed_us: u64,
        /// The findings of the probed call.
        findings: Vec<Finding>,
    },
}

/// How a new contract can reach a protected one (why it was probed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "by", content = "contract", rename_all = "snake_case")]
pub enum ProbeReach {
    /// The protected address is in its runtime code (an immutable or a constant).
    Code(Address),
    /// Its constructor stored the protected address.
    Storage(Address),
    /// Its deployment called the protected contract.
    Deployment(Address),
}

/// The running sum behind a cumulative-drain finding.
#[derive(Debug, Clone, Serialize)]
pub struct CumulativeEvidence {
    pub asset: Asset,
    /// The initiator or beneficiary the takes add up for.
    pub actor: Address,
    pub takes: Vec<crate::detect::Take>,
    pub holdings_before: U256,
    pub sum_bps: u64,
    pub threshold_bps: u32,
    pub window_blocks: u64,
}

/// A signed value of a holding, for printing.
pub fn signed_delta(before: U256, after: U256) -> I256 {
    I256::from_raw(after).wrapping_sub(I256::from_raw(before))
}

/// Whether a pending tx's claimed sender is the one its signature recovers. Ingest queues a
/// plain call on the node's claim and recovers the signer right after, beside the tx's
/// simulation (recovery is ~40 µs, a third of the hot path's own CPU); a worker acts on the
/// sender (its chain, a pause) only once this is settled.
#[derive(Debug, Default)]
pub struct SenderCheck(std::sync::atomic::AtomicU8);

const SENDER_UNCHECKED: u8 = 0;
const SENDER_SIGNED: u8 = 1;
const SENDER_FORGED: u8 = 2;

impl SenderCheck {
    /// Settles the check once: `signed` if the signature recovers the claimed sender.
    pub fn settle(&self, signed: bool) {
        let to = if signed { SENDER_SIGNED } else { SENDER_FORGED };
        let _ = self.0.compare_exchange(
            SENDER_UNCHECKED,
            to,
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
        );
    }

    /// `Some(true)`: the claimed sender signed it; `Some(false)`: forged; `None`: not checked yet.
    pub fn settled(&self) -> Option<bool> {
        match self.0.load(std::sync::atomic::Ordering::Acquire) {
            SENDER_SIGNED => Some(true),
            SENDER_FORGED => Some(false),
            _ => None,
        }
    }
}

/// A pending tx as it leaves ingest: decoded, stamped when first seen, its sender recovered
/// (or, for a plain call, being recovered: `sender_check`).
#[derive(Debug, Clone)]
pub struct PendingTx {
    pub hash: B256,
    pub tx: alloy::consensus::transaction::Recovered<alloy::consensus::TxEnvelope>,
    /// When the first copy's frame arrived (any node).
    pub seen_at: std::time::Instant,
    /// When it was decoded into a tx.
    pub decoded_at: std::time::Instant,
    /// When the filter queued it for a worker.
    pub queued_at: std::time::Instant,
    /// Name of the node it came from first.
    pub source: std::sync::Arc<str>,
    /// `None`: the sender was recovered before the tx was queued; else the check ingest runs
    /// beside the simulation, on which a worker waits before it acts on the sender.
    pub sender_check: Option<std::sync::Arc<SenderCheck>>,
}

/// A new head as a node announced it.
#[derive(Debug, Clone)]
pub struct NewHead {
    pub number: u64,
    pub hash: B256,
    pub source: std::sync::Arc<str>,
}
