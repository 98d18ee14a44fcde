//! Ranking at ingest: how a pending tx can reach protected state. Not only its `to`: a
//! protected address in its access list or calldata, the code it calls (scanned once per code
//! hash for protected addresses), a creation, a 7702 delegation, a contract deployed since
//! start, a fresh sender.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use alloy::{
    consensus::Transaction as _,
    primitives::{Address, B256, keccak256},
};
use dashmap::DashMap;

use crate::types::PendingTx;

/// A sender whose nonce is below this is fresh (a new account: deploy, then strike).
pub const FRESH_SENDER_NONCE: u64 = 4;
/// "No code" and 7702 delegations can change (a deploy, a new delegation): asked again after this.
const MUTABLE_CODE_TTL: Duration = Duration::from_secs(30);
/// Contract entries are dropped after this (asked again when next needed), bounding the index.
const CONTRACT_TTL: Duration = Duration::from_secs(3600);
/// Scan verdicts kept per code hash before the cache starts over.
const MAX_CODE_HASHES: usize = 200_000;
/// Recently deployed contracts stay "fresh" this long.
const RECENT_FOR: Duration = Duration::from_secs(3600);
/// At most this many accounts whose code a tx's rank needs (its `to`, a delegate, auth targets).
const MAX_CODE_LOOKUPS: usize = 8;

/// Which queue a tx goes to; the workers read them in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Reaches a protected contract by name or by code that names one. Never dropped.
    Protected,
    /// Could reach one through code or data nobody vouches for: creations, fresh contracts,
    /// fresh senders, 7702 delegations, protected addresses carried in calldata.
    Suspicious,
    Other,
}

/// Why a tx got its lane (tests and logs read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    ToProtected,
    AccessList,
    /// The code of `to` (or of its 7702 delegate) holds a protected address.
    CodeReferences,
    /// A creation whose init code (or constructor arguments) holds a protected address.
    CreationReferences,
    /// A 7702 authorization delegating to a protected contract or code that names one.
    DelegationReferences,
    Creation,
    Delegation,
    Calldata,
    FreshContract,
    FreshSender,
    /// A plain call to a contract few pending txs call (see `crowd`).
    UncommonTarget,
    /// Code unknown and not learned in time: simulated, in the lowest lane.
    Unclassified,
    Plain,
}

/// The verdict of `rank`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rank {
    Lane(Lane, Reason),
    /// A value transfer to an account without code: it runs no code.
    Skip,
    /// The code of these accounts decides; fetch it, then rank again.
    NeedsCode(Vec<Address>),
}

/// What an account's code says about reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeFacts {
    /// No code: an EOA (or not deployed yet).
    None,
    /// An EIP-7702 delegation designator to this account's code.
    Delegated(Address),
    Contract {
        /// The code holds a protected address (as a PUSH operand or anywhere in its bytes).
        references_protected: bool,
    },
}

/// The protected addresses, indexed for scanning byte strings.
#[derive(Debug, Clone)]
pub struct ProtectedSet {
    addresses: HashSet<Address>,
    /// First bytes of the addresses: a window is only looked up when its first byte is one.
    first_bytes: [bool; 256],
}

impl Default for ProtectedSet {
    fn default() -> Self {
        Self::new([])
    }
}

impl ProtectedSet {
    pub fn new(addresses: impl IntoIterator<Item = Address>) -> Self {
        let addresses: HashSet<Address> = addresses.into_iter().collect();
        let mut first_bytes = [false; 256];
        for a in &addresses {
            first_bytes[a.0[0] as usize] = true;
        }
        Self { addresses, first_bytes }
    }

    pub fn contains(&self, address: &Address) -> bool {
        self.addresses.contains(address)
    }

    pub fn addresses(&self) -> Vec<Address> {
        self.addresses.iter().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// Any 20-byte run of `bytes` is a protected address (covers ABI words, packed encodings,
    /// PUSH20/PUSH32 operands and immutables).
    pub fn in_bytes(&self, bytes: &[u8]) -> bool {
        if self.addresses.is_empty() || bytes.len() < 20 {
            return false;
        }
        (0..=bytes.len() - 20).any(|i| {
            self.first_bytes[bytes[i] as usize]
                && self.addresses.contains(&Address::from_slice(&bytes[i..i + 20]))
        })
    }

    /// Runtime code holds a protected address: anywhere in its bytes, or as the value of a
    /// shorter PUSH (the compiler drops an address's leading zero bytes).
    pub fn in_code(&self, code: &[u8]) -> bool {
        if self.in_bytes(code) {
            return true;
        }
        let mut i = 0;
        while i < code.len() {
            let op = code[i];
            // PUSH4..PUSH19: shorter operands than these are small constants, not addresses.
            if (0x63..=0x72).contains(&op) {
                let n = (op - 0x5f) as usize;
                if let Some(operand) = code.get(i + 1..i + 1 + n) {
                    let mut padded = [0u8; 20];
                    padded[20 - n..].copy_from_slice(operand);
                    if self.addresses.contains(&Address::from(padded)) {
                        return true;
                    }
                }
            }
            i += if (0x60..=0x7f).contains(&op) { 1 + (op - 0x5f) as usize } else { 1 };
        }
        false
    }
}

#[derive(Debug, Clone, Copy)]
struct CodeEntry {
    facts: CodeFacts,
    at: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Deployment {
    at: Instant,
    /// Its init code (pending creation) named a protected address.
    references_protected: bool,
}

/// What ingest knows about accounts' code, learned on its own node connections: per address,
/// and the scan verdict per code hash (many proxies and clones share one code).
#[derive(Debug, Default)]
pub struct CodeIndex {
    by_address: DashMap<Address, CodeEntry>,
    by_code_hash: DashMap<B256, bool>,
    recent: DashMap<Address, Deployment>,
}

impl CodeIndex {
    /// What is known about `address`'s code, if it is still current.
    pub fn get(&self, address: &Address) -> Option<CodeFacts> {
        let entry = *self.by_address.get(address)?;
        let mutable = matches!(entry.facts, CodeFacts::None | CodeFacts::Delegated(_));
        if mutable && entry.at.elapsed() > MUTABLE_CODE_TTL {
            return None;
        }
        Some(entry.facts)
    }

    /// Records `address`'s runtime code as fetched from a node, scanning it once per code hash.
    pub fn insert_code(
        &self,
        protected: &ProtectedSet,
        address: Address,
        code: &[u8],
    ) -> CodeFacts {
        let facts = if code.is_empty() {
            CodeFacts::None
        } else if let Some(delegate) = delegation_target(code) {
            CodeFacts::Delegated(delegate)
        } else {
            let hash = keccak256(code);
            let references_protected =
                *self.by_code_hash.entry(hash).or_insert_with(|| protected.in_code(code));
            CodeFacts::Contract { references_protected }
        };
        self.by_address.insert(address, CodeEntry { facts, at: Instant::now() });
        facts
    }

    /// A contract appeared at `address` (mined, or a pending creation): its cached code, if
    /// any, is stale, and it counts as fresh for a while.
    pub fn note_deployed(&self, address: Address, references_protected: bool) {
        self.by_address.remove(&address);
        let mut entry = self
            .recent
            .entry(address)
            .or_insert(Deployment { at: Instant::now(), references_protected: false });
        entry.at = Instant::now();
        entry.references_protected |= references_protected;
    }

    fn deployment(&self, address: &Address) -> Option<Deployment> {
        self.recent.get(address).map(|d| *d).filter(|d| d.at.elapsed() < RECENT_FOR)
    }

    /// Drops entries past their use, keeping the index bounded over months.
    pub fn prune(&self) {
        self.by_address.retain(|_, e| {
            let ttl = match e.facts {
                CodeFacts::None | CodeFacts::Delegated(_) => MUTABLE_CODE_TTL,
                CodeFacts::Contract { .. } => CONTRACT_TTL,
            };
            e.at.elapsed() < ttl
        });
        self.recent.retain(|_, d| d.at.elapsed() < RECENT_FOR);
        if self.by_code_hash.len() > MAX_CODE_HASHES {
            self.by_code_hash.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.by_address.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }
}

/// The EIP-7702 designator `0xef0100 || address`.
pub fn delegation_target(code: &[u8]) -> Option<Address> {
    match code {
        [0xef, 0x01, 0x00, rest @ ..] if rest.len() == 20 => Some(Address::from_slice(rest)),
        _ => None,
    }
}

/// Ranks `tx`. `no_code` answers for accounts the index does not know (the fork's cache):
/// `Some(false)` = known to have no code.
pub fn rank(
    tx: &PendingTx,
    protected: &ProtectedSet,
    code: &CodeIndex,
    no_code: impl Fn(&Address) -> Option<bool>,
) -> Rank {
    let inner = tx.tx.inner();
    let to = inner.to();
    if to.is_some_and(|to| protected.contains(&to)) {
        return Rank::Lane(Lane::Protected, Reason::ToProtected);
    }
    if inner.access_list().is_some_and(|l| l.iter().any(|i| protected.contains(&i.address))) {
        return Rank::Lane(Lane::Protected, Reason::AccessList);
    }
    let mut need = Vec::new();
    let lookup = |a: &Address, need: &mut Vec<Address>| -> Option<CodeFacts> {
        let facts = code.get(a).or_else(|| (no_code(a) == Some(false)).then_some(CodeFacts::None));
        if facts.is_none() && need.len() < MAX_CODE_LOOKUPS && !need.contains(a) {
            need.push(*a);
        }
        facts
    };
    // Code behind an address: a delegation is followed one hop.
    let references = |a: &Address, need: &mut Vec<Address>| -> Option<bool> {
        if protected.contains(a) {
            return Some(true);
        }
        if code.deployment(a).is_some_and(|d| d.references_protected) {
            return Some(true);
        }
        match lookup(a, need)? {
            CodeFacts::None => Some(false),
            CodeFacts::Contract { references_protected } => Some(references_protected),
            CodeFacts::Delegated(d) if protected.contains(&d) => Some(true),
            CodeFacts::Delegated(d) => match lookup(&d, need)? {
                CodeFacts::Contract { references_protected } => Some(references_protected),
                CodeFacts::None | CodeFacts::Delegated(_) => Some(false),
            },
        }
    };

    let delegates: Vec<Address> = inner
        .authorization_list()
        .map(|l| l.iter().map(|a| a.address).collect())
        .unwrap_or_default();
    let mut delegate_unknown = false;
    for d in &delegates {
        match references(d, &mut need) {
            Some(true) => return Rank::Lane(Lane::Protected, Reason::DelegationReferences),
            Some(false) => {}
            None => delegate_unknown = true,
        }
    }
    let calldata = protected.in_bytes(inner.input());

    let Some(to) = to else {
        return if calldata {
            Rank::Lane(Lane::Protected, Reason::CreationReferences)
        } else {
            Rank::Lane(Lane::Suspicious, Reason::Creation)
        };
    };
    let fresh = code.deployment(&to).is_some();
    match references(&to, &mut need) {
        Some(true) => return Rank::Lane(Lane::Protected, Reason::CodeReferences),
        Some(false) => {}
        None => return Rank::NeedsCode(need),
    }
    if delegate_unknown {
        return Rank::NeedsCode(need);
    }
    let runs_code = !matches!(code.get(&to), Some(CodeFacts::None) | None) || fresh;
    if !runs_code
        && inner.input().is_empty()
        && delegates.is_empty()
        && inner.access_list().is_none_or(|l| l.is_empty())
    {
        return Rank::Skip;
    }
    let lane = |reason| Rank::Lane(Lane::Suspicious, reason);
    if calldata {
        return lane(Reason::Calldata);
    }
    if !delegates.is_empty() {
        return lane(Reason::Delegation);
    }
    if fresh {
        return lane(Reason::FreshContract);
    }
    if runs_code && inner.nonce() < FRESH_SENDER_NONCE {
        return lane(Reason::FreshSender);
    }
    Rank::Lane(Lane::Other, Reason::Plain)
}

/// The address a creation by `tx` deploys to.
pub fn created_address(tx: &PendingTx) -> Option<Address> {
    let inner = tx.tx.inner();
    inner.to().is_none().then(|| tx.tx.signer().create(inner.nonce()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use alloy::{
        consensus::{
            SignableTransaction, TxEip1559, TxEip7702, TxEnvelope, transaction::Recovered,
        },
        eips::{
            eip2930::{AccessList, AccessListItem},
            eip7702::Authorization,
        },
        primitives::{Bytes, Signature, TxKind, U256},
    };

    use super::*;

    const VAULT: Address = Address::new([
        0x5f, 0xbd, 0xb2, 0x31, 0x56, 0x78, 0xaf, 0xec, 0xb3, 0x67, 0xf0, 0x32, 0xd9, 0x3f, 0x64,
        0x2f, 0x64, 0x18, 0x0a, 0xa3,
    ]);
    const ATTACKER_CONTRACT: Address = Address::repeat_byte(0xa7);
    const ROUTER: Address = Address::repeat_byte(0x12);
    const EOA: Address = Address::repeat_byte(0xe0);

    fn set() -> ProtectedSet {
        ProtectedSet::new([VAULT])
    }

    fn pending(envelope: TxEnvelope) -> PendingTx {
        let now = Instant::now();
        PendingTx {
            hash: *envelope.tx_hash(),
            tx: Recovered::new_unchecked(envelope, Address::repeat_byte(0x5e)),
            seen_at: now,
            decoded_at: now,
            queued_at: now,
            source: Arc::from("t"),
            sender_check: None,
        }
    }

    fn call(to: TxKind, nonce: u64, input: Vec<u8>, access_list: AccessList) -> PendingTx {
        let tx = TxEip1559 {
            chain_id: 1,
            nonce,
            gas_limit: 100_000,
            max_fee_per_gas: 2,
            max_priority_fee_per_gas: 1,
            to,
            value: U256::ZERO,
            access_list,
            input: input.into(),
        };
        pending(tx.into_signed(Signature::test_signature()).into())
    }

    fn to(addr: Address, input: Vec<u8>) -> PendingTx {
        call(TxKind::Call(addr), 100, input, AccessList::default())
    }

    /// Runtime code with `addr` as a PUSH20 operand (`PUSH20 addr; BALANCE; STOP`).
    fn code_pushing(addr: Address) -> Vec<u8> {
        let mut code = vec![0x73];
        code.extend_from_slice(addr.as_slice());
        code.extend_from_slice(&[0x31, 0x00]);
        code
    }

    fn known(index: &CodeIndex, entries: &[(Address, Vec<u8>)]) {
        for (a, code) in entries {
            index.insert_code(&set(), *a, code);
        }
    }

    fn rank_of(tx: &PendingTx, index: &CodeIndex) -> Rank {
        rank(tx, &set(), index, |_| None)
    }

    #[test]
    fn the_attackers_contract_naming_the_vault_in_its_code_is_protected() {
        let index = CodeIndex::default();
        let tx = to(ATTACKER_CONTRACT, vec![0x9e, 0x5f, 0xaa, 0xfc]);
        assert_eq!(rank_of(&tx, &index), Rank::NeedsCode(vec![ATTACKER_CONTRACT]));
        known(&index, &[(ATTACKER_CONTRACT, code_pushing(VAULT))]);
        assert_eq!(rank_of(&tx, &index), Rank::Lane(Lane::Protected, Reason::CodeReferences));
    }

    #[test]
    fn code_scan_finds_immutables_push32_and_short_pushes() {
        let s = set();
        // An immutable: a PUSH32 whose low 20 bytes are the address.
        let mut push32 = vec![0x7f];
        push32.extend_from_slice(&[0u8; 12]);
        push32.extend_from_slice(VAULT.as_slice());
        assert!(s.in_code(&push32));
        // An address with leading zero bytes is pushed short (PUSH18 here).
        let short =
            Address::new([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]);
        let s_short = ProtectedSet::new([short]);
        let mut push18 = vec![0x71];
        push18.extend_from_slice(&short.as_slice()[2..]);
        assert!(s_short.in_code(&push18));
        // The same bytes as PUSH data of another opcode's operand are not a short push.
        assert!(!s.in_code(&[0x60, 0x01, 0x31, 0x00]));
        assert!(!s.in_code(&code_pushing(ROUTER)));
    }

    #[test]
    fn the_scan_verdict_is_cached_per_code_hash() {
        let index = CodeIndex::default();
        let code = code_pushing(VAULT);
        index.insert_code(&set(), Address::repeat_byte(1), &code);
        // A clone of the same code scanned against an empty set keeps the first verdict.
        let facts = index.insert_code(&ProtectedSet::default(), Address::repeat_byte(2), &code);
        assert_eq!(facts, CodeFacts::Contract { references_protected: true });
        assert_eq!(index.by_code_hash.len(), 1);
    }

    #[test]
    fn direct_reach_is_protected_without_any_code_lookup() {
        let index = CodeIndex::default();
        assert_eq!(
            rank_of(&to(VAULT, vec![]), &index),
            Rank::Lane(Lane::Protected, Reason::ToProtected)
        );
        let list = AccessList(vec![AccessListItem { address: VAULT, storage_keys: vec![] }]);
        let tx = call(TxKind::Call(ROUTER), 100, vec![1], list);
        assert_eq!(rank_of(&tx, &index), Rank::Lane(Lane::Protected, Reason::AccessList));
    }

    #[test]
    fn a_protected_address_in_calldata_is_suspicious_at_any_offset() {
        let index = CodeIndex::default();
        known(&index, &[(ROUTER, code_pushing(ROUTER))]);
        for offset in [4 + 12, 4 + 32 + 12, 7] {
            let mut input = vec![0u8; offset + 40];
            input[offset..offset + 20].copy_from_slice(VAULT.as_slice());
            assert_eq!(
                rank_of(&to(ROUTER, input), &index),
                Rank::Lane(Lane::Suspicious, Reason::Calldata),
                "offset {offset}"
            );
        }
        assert_eq!(
            rank_of(&to(ROUTER, vec![1, 2, 3, 4]), &index),
            Rank::Lane(Lane::Other, Reason::Plain)
        );
    }

    #[test]
    fn creations_are_suspicious_and_protected_when_their_init_code_names_a_protected_address() {
        let index = CodeIndex::default();
        let plain = call(TxKind::Create, 0, vec![0x60, 0x00], AccessList::default());
        assert_eq!(rank_of(&plain, &index), Rank::Lane(Lane::Suspicious, Reason::Creation));
        let mut init = vec![0x60, 0x00];
        init.extend_from_slice(&[0u8; 12]);
        init.extend_from_slice(VAULT.as_slice());
        let naming = call(TxKind::Create, 0, init, AccessList::default());
        assert_eq!(
            rank_of(&naming, &index),
            Rank::Lane(Lane::Protected, Reason::CreationReferences)
        );
        // A later call to the not-yet-mined contract is ranked by what its creation named.
        let created = created_address(&naming).expect("creation");
        index.note_deployed(created, true);
        assert_eq!(
            rank_of(&to(created, vec![]), &index),
            Rank::Lane(Lane::Protected, Reason::CodeReferences)
        );
    }

    #[test]
    fn plain_transfers_to_eoas_are_skipped_unless_the_account_was_just_deployed() {
        let index = CodeIndex::default();
        known(&index, &[(EOA, vec![])]);
        assert_eq!(rank_of(&to(EOA, vec![]), &index), Rank::Skip);
        // Deployed in a pending tx: not at `latest` yet, but its receive() will run.
        index.note_deployed(EOA, false);
        assert_eq!(rank_of(&to(EOA, vec![]), &index), Rank::NeedsCode(vec![EOA]));
        known(&index, &[(EOA, vec![])]);
        assert_eq!(
            rank_of(&to(EOA, vec![]), &index),
            Rank::Lane(Lane::Suspicious, Reason::FreshContract)
        );
    }

    #[test]
    fn fresh_senders_calling_code_are_suspicious() {
        let index = CodeIndex::default();
        known(&index, &[(ROUTER, code_pushing(ROUTER))]);
        let tx = call(TxKind::Call(ROUTER), 1, vec![1], AccessList::default());
        assert_eq!(rank_of(&tx, &index), Rank::Lane(Lane::Suspicious, Reason::FreshSender));
    }

    #[test]
    fn delegations_are_followed_to_the_delegates_code() {
        let index = CodeIndex::default();
        let delegate = Address::repeat_byte(0xde);
        let mut designator = vec![0xef, 0x01, 0x00];
        designator.extend_from_slice(delegate.as_slice());
        known(&index, &[(EOA, designator)]);
        assert_eq!(rank_of(&to(EOA, vec![]), &index), Rank::NeedsCode(vec![delegate]));
        known(&index, &[(delegate, code_pushing(VAULT))]);
        assert_eq!(
            rank_of(&to(EOA, vec![]), &index),
            Rank::Lane(Lane::Protected, Reason::CodeReferences)
        );

        // A set-code tx whose authorization delegates to code naming the vault.
        let auth = Authorization { chain_id: U256::from(1), address: delegate, nonce: 0 }
            .into_signed(Signature::test_signature());
        let tx = TxEip7702 {
            chain_id: 1,
            nonce: 9,
            gas_limit: 100_000,
            max_fee_per_gas: 2,
            max_priority_fee_per_gas: 1,
            to: ROUTER,
            value: U256::ZERO,
            access_list: Default::default(),
            authorization_list: vec![auth],
            input: Bytes::new(),
        };
        let tx = pending(tx.into_signed(Signature::test_signature()).into());
        assert_eq!(rank_of(&tx, &index), Rank::Lane(Lane::Protected, Reason::DelegationReferences));
    }

    #[test]
    fn the_forks_no_code_answers_for_unknown_accounts() {
        let index = CodeIndex::default();
        let tx = to(EOA, vec![]);
        assert_eq!(rank(&tx, &set(), &index, |a| (*a == EOA).then_some(false)), Rank::Skip);
    }
}
