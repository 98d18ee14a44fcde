//! Re-entry analysis: which protected contracts were entered again while live, and which of
//! their storage slots the re-entrant frame read before the live frame wrote them.

use alloy::primitives::{Address, U256, map::HashMap};

use super::{
    facts::MappingIndex,
    inspector::{FrameSpan, StorageAccess},
};
use crate::types::{CallFrame, DoublePayout, ReentryObservation, TokenTransfer};

/// A protected contract's live entry frame and a later frame that entered it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) contract: Address,
    pub(crate) outer: usize,
    pub(crate) inner: usize,
}

/// Re-entries visible at call level. `frames` must carry effective success.
pub(crate) fn candidates(frames: &[CallFrame], protected: &[Address]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for frame in frames {
        if !frame.success || !protected.contains(&frame.target) {
            continue;
        }
        // Entered from outside the contract's own context (a DELEGATECALL inside it is not a re-entry).
        let Some(parent) = frame.parent else { continue };
        if frames[parent].target == frame.target {
            continue;
        }
        let Some(outer) = entry_frame_above(frames, parent, frame.target) else { continue };
        out.push(Candidate { contract: frame.target, outer, inner: frame.index });
    }
    out
}

/// The outermost frame of the nearest run of frames running on `contract` above `from`.
fn entry_frame_above(frames: &[CallFrame], from: usize, contract: Address) -> Option<usize> {
    let mut cursor = Some(from);
    while let Some(i) = cursor {
        if frames[i].target == contract {
            let mut entry = i;
            while let Some(p) = frames[entry].parent {
                if frames[p].target != contract {
                    break;
                }
                entry = p;
            }
            return Some(entry);
        }
        cursor = frames[i].parent;
    }
    None
}

/// One contract's storage accesses in run order, each searched by position: a re-entry's
/// evidence lies between two frame boundaries, and a deep re-entrancy has a candidate per
/// level, so each one reads only its own stretch instead of the whole log.
struct Stretches<'a> {
    accesses: Vec<&'a StorageAccess>,
}

impl<'a> Stretches<'a> {
    fn of(accesses: impl Iterator<Item = &'a StorageAccess>) -> Self {
        let mut accesses: Vec<&StorageAccess> = accesses.collect();
        // Recorded in order already; the stable sort then costs one pass.
        accesses.sort_by_key(|a| a.seq);
        Self { accesses }
    }

    /// The accesses strictly between `after` and `before`.
    fn between(&self, after: u64, before: u64) -> &[&'a StorageAccess] {
        let from = self.accesses.partition_point(|a| a.seq <= after);
        let to = self.accesses.partition_point(|a| a.seq < before).max(from);
        &self.accesses[from..to]
    }
}

/// Per contract, built on first use: candidates of one contract share it.
fn stretches_for<'a, 'm>(
    made: &'m mut Vec<(Address, Stretches<'a>)>,
    contract: Address,
    build: impl FnOnce() -> Stretches<'a>,
) -> &'m Stretches<'a> {
    let at = match made.iter().position(|(c, _)| *c == contract) {
        Some(at) => at,
        None => {
            made.push((contract, build()));
            made.len() - 1
        }
    };
    &made[at].1
}

/// Storage evidence for each candidate, from the storage-tracking re-run.
pub(crate) fn observe(
    candidates: &[Candidate],
    frames: &[CallFrame],
    spans: &[FrameSpan],
    accesses: &[StorageAccess],
) -> Vec<ReentryObservation> {
    let mut success = vec![false; frames.len()];
    for f in frames {
        success[f.index] = f.success && f.parent.is_none_or(|p| success[p]);
    }
    // Only accesses of frames that took effect count.
    let mut made = Vec::new();
    let mut out = Vec::new();
    for c in candidates {
        let (Some(inner), Some(outer)) = (spans.get(c.inner), spans.get(c.outer)) else { continue };
        let log = stretches_for(&mut made, c.contract, || {
            Stretches::of(accesses.iter().filter(|a| {
                a.address == c.contract && success.get(a.frame).copied().unwrap_or(false)
            }))
        });
        let inside = log.between(inner.start, inner.end);
        let mut reads: Vec<U256> = inside.iter().filter(|a| !a.write).map(|a| a.slot).collect();
        reads.sort_unstable();
        reads.dedup();
        let inner_read_only = !inside.iter().any(|a| a.write);
        let mut stale: Vec<U256> = log
            .between(inner.end, outer.end)
            .iter()
            .filter(|a| a.write && reads.binary_search(&a.slot).is_ok())
            .map(|a| a.slot)
            .collect();
        stale.sort_unstable();
        stale.dedup();
        if !stale.is_empty() {
            out.push(ReentryObservation {
                contract: c.contract,
                outer_frame: c.outer,
                inner_frame: c.inner,
                inner_read_only,
                stale_slots: stale,
                double_payout: None,
            });
        }
    }
    out
}

/// A token transfer and the frame that emitted it.
pub(crate) type FramedTransfer = (usize, TokenTransfer);

/// Re-entries in which the contract paid out both in its live frame (before the re-entry)
/// and inside the re-entry, both after reading the same entry of its books: the entry was
/// charged once but paid twice or more (only the innermost frame booking the withdrawal).
pub(crate) fn double_payouts(
    candidates: &[Candidate],
    frames: &[CallFrame],
    spans: &[FrameSpan],
    accesses: &[StorageAccess],
    transfers: &[FramedTransfer],
    index: &MappingIndex,
) -> Vec<ReentryObservation> {
    // Reads of the contract's books: entries of a mapping keyed by an address. Each slot is
    // decoded once, however often it is read.
    let mut keyed: HashMap<U256, bool> = HashMap::default();
    let mut made = Vec::new();
    let mut out: Vec<ReentryObservation> = Vec::new();
    for c in candidates {
        let (Some(inner), Some(outer)) = (spans.get(c.inner), spans.get(c.outer)) else { continue };
        let in_inner = |seq: u64| seq > inner.start && seq < inner.end;
        let in_outer_only = |seq: u64| seq > outer.start && seq < outer.end && !in_inner(seq);
        let start_of = |frame: usize| spans.get(frame).map(|s| s.start).unwrap_or_default();
        // Per asset (None: ETH): paid before the re-entry, and inside it.
        let mut paid: Vec<(Option<Address>, U256, U256)> = Vec::new();
        let mut add = |asset: Option<Address>, at: u64, value: U256| {
            let i = match paid.iter().position(|p| p.0 == asset) {
                Some(i) => i,
                None => {
                    paid.push((asset, U256::ZERO, U256::ZERO));
                    paid.len() - 1
                }
            };
            if in_inner(at) {
                paid[i].2 = paid[i].2.saturating_add(value);
            } else if in_outer_only(at) {
                paid[i].1 = paid[i].1.saturating_add(value);
            }
        };
        for f in frames.iter().filter(|f| f.success && f.caller == c.contract && !f.value.is_zero())
        {
            add(None, start_of(f.index), f.value);
        }
        for (frame, t) in transfers.iter().filter(|(_, t)| t.from == c.contract) {
            add(Some(t.token), start_of(*frame), t.value);
        }
        // The same asset paid on both sides of the re-entry (a loan out and collateral back in
        // another asset is a flash loan, not a leak).
        let Some(&(_, outer_paid, inner_paid)) =
            paid.iter().find(|p| !p.1.is_zero() && !p.2.is_zero())
        else {
            continue;
        };
        let log = stretches_for(&mut made, c.contract, || {
            Stretches::of(accesses.iter().filter(|a| {
                a.address == c.contract
                    && !a.write
                    && *keyed.entry(a.slot).or_insert_with(|| {
                        index.decode(a.slot).is_some_and(|k| k.addresses().next().is_some())
                    })
            }))
        });
        let mut inner_reads: Vec<U256> =
            log.between(inner.start, inner.end).iter().map(|a| a.slot).collect();
        inner_reads.sort_unstable();
        let Some(slot) = log
            .between(outer.start, outer.end)
            .iter()
            .filter(|a| in_outer_only(a.seq))
            .map(|a| a.slot)
            .find(|s| inner_reads.binary_search(s).is_ok())
        else {
            continue;
        };
        out.push(ReentryObservation {
            contract: c.contract,
            outer_frame: c.outer,
            inner_frame: c.inner,
            inner_read_only: false,
            stale_slots: Vec::new(),
            double_payout: Some(DoublePayout { slot, outer_paid, inner_paid }),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Address = Address::with_last_byte(0xaa);
    const A: Address = Address::with_last_byte(0xbb);

    fn frame(
        index: usize,
        parent: Option<usize>,
        caller: Address,
        target: Address,
        scheme: &'static str,
    ) -> CallFrame {
        CallFrame {
            index,
            parent,
            depth: 0,
            caller,
            target,
            code: target,
            scheme,
            value: U256::ZERO,
            selector: None,
            success: true,
            gas_used: 0,
        }
    }

    fn access(seq: u64, frame: usize, slot: u64, write: bool) -> StorageAccess {
        StorageAccess { seq, frame, address: P, slot: U256::from(slot), write }
    }

    /// P (frame 0) calls A (frame 1), which calls back into P (frame 2).
    fn reentered() -> (Vec<CallFrame>, Vec<FrameSpan>) {
        let frames = vec![
            frame(0, None, A, P, "CALL"),
            frame(1, Some(0), P, A, "CALL"),
            frame(2, Some(1), A, P, "CALL"),
        ];
        let spans = vec![
            FrameSpan { start: 1, end: 20 },
            FrameSpan { start: 2, end: 10 },
            FrameSpan { start: 3, end: 9 },
        ];
        (frames, spans)
    }

    #[test]
    fn delegatecall_inside_the_contract_is_not_a_reentry() {
        let frames = vec![frame(0, None, A, P, "CALL"), frame(1, Some(0), A, P, "DELEGATECALL")];
        assert!(candidates(&frames, &[P]).is_empty());
    }

    #[test]
    fn call_back_into_a_live_contract_is_a_candidate() {
        let (frames, _) = reentered();
        assert_eq!(candidates(&frames, &[P]), vec![Candidate { contract: P, outer: 0, inner: 2 }]);
        assert!(candidates(&frames, &[A]).is_empty(), "A is never entered twice");
    }

    #[test]
    fn slot_read_inside_and_written_after_is_stale() {
        let (frames, spans) = reentered();
        let c = candidates(&frames, &[P]);
        let accesses = vec![access(4, 2, 1, false), access(5, 2, 1, true), access(12, 0, 1, true)];
        let obs = observe(&c, &frames, &spans, &accesses);
        assert_eq!(obs.len(), 1);
        assert_eq!(obs[0].stale_slots, vec![U256::from(1)]);
        assert!(!obs[0].inner_read_only);
    }

    #[test]
    fn writes_only_before_the_reentry_or_to_other_slots_are_safe() {
        let (frames, spans) = reentered();
        let c = candidates(&frames, &[P]);
        // Outer writes slot 1 before the call; after the call it writes slot 7, which the re-entry never read.
        let accesses = vec![access(1, 0, 1, true), access(4, 2, 1, false), access(12, 0, 7, true)];
        assert!(observe(&c, &frames, &spans, &accesses).is_empty());
    }

    #[test]
    fn a_reading_reentry_is_read_only() {
        let (frames, spans) = reentered();
        let c = candidates(&frames, &[P]);
        let accesses = vec![access(4, 2, 5, false), access(12, 0, 5, true)];
        let obs = observe(&c, &frames, &spans, &accesses);
        assert_eq!(obs.len(), 1);
        assert!(obs[0].inner_read_only);
    }

    #[test]
    fn reverted_reentry_counts_for_nothing() {
        let (mut frames, _) = reentered();
        frames[2].success = false;
        let c = candidates(&frames, &[P]);
        assert!(c.is_empty());
    }

    /// Property tests (issue 9 item 8): these functions are crate-private, so their fuzzing
    /// lives here rather than in `tests/it/fuzz.rs`.
    mod properties {
        use proptest::{prelude::*, sample::Index};

        use super::*;
        use crate::simulate::inspector::KeccakInput;

        const POOL: [Address; 4] =
            [P, A, Address::with_last_byte(0xcc), Address::with_last_byte(0xdd)];

        /// A call tree as the inspector records it (each frame's parent is an earlier frame),
        /// with any targets, schemes and success flags.
        fn call_tree() -> impl Strategy<Value = Vec<CallFrame>> {
            let spec = (any::<Index>(), any::<Index>(), any::<bool>(), any::<bool>());
            prop::collection::vec(spec, 1..16).prop_map(|specs| {
                specs
                    .iter()
                    .enumerate()
                    .map(|(i, (parent, target, success, delegate))| {
                        let parent = (i > 0).then(|| parent.index(i));
                        let scheme = if *delegate { "DELEGATECALL" } else { "CALL" };
                        let mut f = frame(i, parent, A, *target.get(&POOL), scheme);
                        f.success = *success;
                        f
                    })
                    .collect()
            })
        }

        /// Spans and accesses with no relation to the tree: out-of-range frames, any order.
        fn log() -> impl Strategy<Value = (Vec<FrameSpan>, Vec<StorageAccess>)> {
            let span = (0..64u64, 0..64u64).prop_map(|(start, end)| FrameSpan { start, end });
            let access = (0..64u64, 0..20usize, any::<Index>(), 0..4u64, any::<bool>()).prop_map(
                |(seq, frame, address, slot, write)| StorageAccess {
                    seq,
                    frame,
                    address: *address.get(&POOL),
                    slot: U256::from(slot),
                    write,
                },
            );
            (prop::collection::vec(span, 0..20), prop::collection::vec(access, 0..40))
        }

        fn is_ancestor(frames: &[CallFrame], ancestor: usize, mut of: usize) -> bool {
            while let Some(p) = frames[of].parent {
                if p == ancestor {
                    return true;
                }
                of = p;
            }
            false
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 2048,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            /// Never a panic, and never a re-entry for a contract not entered twice: each one
            /// names a live outer frame and a successful inner frame on the same protected
            /// contract, entered from another contract.
            #[test]
            fn reentry_is_reported_only_for_a_contract_entered_twice(
                frames in call_tree(),
                (spans, accesses) in log(),
                protected in prop::sample::subsequence(POOL.to_vec(), 0..=4),
            ) {
                let found = candidates(&frames, &protected);
                for c in &found {
                    let entries = frames.iter().filter(|f| f.target == c.contract).count();
                    prop_assert!(entries >= 2, "{c:?} with {entries} frame(s) on it");
                    prop_assert!(protected.contains(&c.contract));
                    prop_assert_eq!(frames[c.outer].target, c.contract);
                    prop_assert_eq!(frames[c.inner].target, c.contract);
                    prop_assert!(frames[c.inner].success);
                    prop_assert!(is_ancestor(&frames, c.outer, c.inner), "{c:?}");
                    let parent = frames[c.inner].parent.map(|p| frames[p].target);
                    prop_assert!(parent.is_some_and(|t| t != c.contract), "{c:?}");
                }
                for o in observe(&found, &frames, &spans, &accesses) {
                    let c = Candidate { contract: o.contract, outer: o.outer_frame, inner: o.inner_frame };
                    prop_assert!(found.contains(&c), "{o:?} is not a candidate");
                    prop_assert!(!o.stale_slots.is_empty());
                    prop_assert!(o.stale_slots.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
                }
            }

            /// Searching each candidate's own stretch of the log finds what scanning the whole
            /// log finds: the same stale slots, read-only flags and double payouts (the log in
            /// run order, as the inspector records it; `observe` in any order).
            #[test]
            fn the_stretch_search_agrees_with_the_whole_log_scan(
                (frames, spans, mut accesses) in paying_run(),
                index in books(),
                protected in prop::sample::subsequence(POOL[..2].to_vec(), 1..=2),
            ) {
                let found = candidates(&frames, &protected);
                prop_assert_eq!(
                    observe(&found, &frames, &spans, &accesses),
                    reference::observe(&found, &frames, &spans, &accesses)
                );
                accesses.sort_by_key(|a| a.seq);
                let leaks: Vec<(Candidate, U256)> =
                    double_payouts(&found, &frames, &spans, &accesses, &[], &index)
                        .into_iter()
                        .map(|o| {
                            let c = Candidate { contract: o.contract, outer: o.outer_frame, inner: o.inner_frame };
                            (c, o.double_payout.expect("a double payout").slot)
                        })
                        .collect();
                prop_assert_eq!(
                    leaks,
                    reference::double_payout_slots(&found, &frames, &spans, &accesses, &index)
                );
            }
        }

        /// The first, straightforward versions (each candidate scans the whole log): the
        /// oracle the per-stretch search must agree with.
        mod reference {
            use super::super::*;

            pub(super) fn observe(
                candidates: &[Candidate],
                frames: &[CallFrame],
                spans: &[FrameSpan],
                accesses: &[StorageAccess],
            ) -> Vec<ReentryObservation> {
                let mut success = vec![false; frames.len()];
                for f in frames {
                    success[f.index] = f.success && f.parent.is_none_or(|p| success[p]);
                }
                let mut out = Vec::new();
                for c in candidates {
                    let (Some(inner), Some(outer)) = (spans.get(c.inner), spans.get(c.outer))
                    else {
                        continue;
                    };
                    let counts = |a: &&StorageAccess| {
                        a.address == c.contract && success.get(a.frame).copied().unwrap_or(false)
                    };
                    let inside = |a: &StorageAccess| a.seq > inner.start && a.seq < inner.end;
                    let reads: Vec<U256> = accesses
                        .iter()
                        .filter(counts)
                        .filter(|a| !a.write && inside(a))
                        .map(|a| a.slot)
                        .collect();
                    let inner_read_only =
                        !accesses.iter().filter(counts).any(|a| a.write && inside(a));
                    let mut stale: Vec<U256> = accesses
                        .iter()
                        .filter(counts)
                        .filter(|a| {
                            a.write
                                && a.seq > inner.end
                                && a.seq < outer.end
                                && reads.contains(&a.slot)
                        })
                        .map(|a| a.slot)
                        .collect();
                    stale.sort();
                    stale.dedup();
                    if !stale.is_empty() {
                        out.push(ReentryObservation {
                            contract: c.contract,
                            outer_frame: c.outer,
                            inner_frame: c.inner,
                            inner_read_only,
                            stale_slots: stale,
                            double_payout: None,
                        });
                    }
                }
                out
            }

            /// The slot of the first book read outside the re-entry that it read too, per
            /// candidate with the same asset paid on both sides.
            pub(super) fn double_payout_slots(
                candidates: &[Candidate],
                frames: &[CallFrame],
                spans: &[FrameSpan],
                accesses: &[StorageAccess],
                index: &MappingIndex,
            ) -> Vec<(Candidate, U256)> {
                let mut out = Vec::new();
                for c in candidates {
                    let (Some(inner), Some(outer)) = (spans.get(c.inner), spans.get(c.outer))
                    else {
                        continue;
                    };
                    let in_inner = |seq: u64| seq > inner.start && seq < inner.end;
                    let in_outer_only =
                        |seq: u64| seq > outer.start && seq < outer.end && !in_inner(seq);
                    let start_of =
                        |frame: usize| spans.get(frame).map(|s| s.start).unwrap_or_default();
                    let paid = |inside: &dyn Fn(u64) -> bool| {
                        frames.iter().any(|f| {
                            f.success
                                && f.caller == c.contract
                                && !f.value.is_zero()
                                && inside(start_of(f.index))
                        })
                    };
                    if !paid(&in_inner) || !paid(&in_outer_only) {
                        continue;
                    }
                    let reads = |inside: &dyn Fn(u64) -> bool| -> Vec<U256> {
                        accesses
                            .iter()
                            .filter(|a| a.address == c.contract && !a.write && inside(a.seq))
                            .map(|a| a.slot)
                            .filter(|s| {
                                index.decode(*s).is_some_and(|k| k.addresses().next().is_some())
                            })
                            .collect()
                    };
                    let inner_reads = reads(&in_inner);
                    if let Some(slot) =
                        reads(&in_outer_only).into_iter().find(|s| inner_reads.contains(s))
                    {
                        out.push((*c, slot));
                    }
                }
                out
            }
        }

        /// Mapping entries keyed by an address at slots 0..4 (some of them), so reads of those
        /// slots are book reads.
        fn books() -> impl Strategy<Value = MappingIndex> {
            prop::collection::vec(any::<bool>(), 4).prop_map(|keyed| {
                let inputs: Vec<KeccakInput> = keyed
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| **k)
                    .map(|(slot, _)| {
                        let mut input = [0u8; 64];
                        input[31] = 0xa0 + slot as u8;
                        input[12] = 1;
                        KeccakInput { address: P, input, slot: Some(U256::from(slot)) }
                    })
                    .collect();
                MappingIndex::build(&inputs, |_| true)
            })
        }

        /// Each frame's span as the inspector numbers a run: a child's inside its parent's,
        /// siblings one after another.
        fn nested_spans(frames: &[CallFrame]) -> Vec<FrameSpan> {
            fn visit(frames: &[CallFrame], at: usize, next: &mut u64, spans: &mut [FrameSpan]) {
                spans[at].start = *next;
                *next += 4;
                for child in frames.iter().filter(|f| f.parent == Some(at)) {
                    visit(frames, child.index, next, spans);
                }
                spans[at].end = *next;
                *next += 4;
            }
            let mut spans = vec![FrameSpan::default(); frames.len()];
            let mut next = 0;
            for root in frames.iter().filter(|f| f.parent.is_none()) {
                visit(frames, root.index, &mut next, &mut spans);
            }
            spans
        }

        /// A paying call tree, its nested spans, and storage accesses inside its frames.
        fn paying_run()
        -> impl Strategy<Value = (Vec<CallFrame>, Vec<FrameSpan>, Vec<StorageAccess>)> {
            paying_tree().prop_flat_map(|frames| {
                let spans = nested_spans(&frames);
                let access = (any::<Index>(), any::<Index>(), 0..4u64, any::<bool>());
                let log = prop::collection::vec(access, 0..60);
                (Just(frames), Just(spans), log).prop_map(|(frames, spans, log)| {
                    let mut accesses: Vec<StorageAccess> = log
                        .iter()
                        .map(|(frame, at, slot, write)| {
                            let frame = frame.index(frames.len());
                            let span = spans[frame];
                            StorageAccess {
                                seq: span.start
                                    + at.index((span.end - span.start).max(1) as usize) as u64,
                                frame,
                                // Storage is the running contract's.
                                address: frames[frame].target,
                                slot: U256::from(*slot),
                                write: *write,
                            }
                        })
                        .collect();
                    accesses.sort_by_key(|a| a.seq);
                    (frames, spans, accesses)
                })
            })
        }

        /// A call tree in which any contract of the pool calls, with or without value.
        fn paying_tree() -> impl Strategy<Value = Vec<CallFrame>> {
            let spec =
                (any::<Index>(), any::<Index>(), any::<Index>(), any::<bool>(), any::<bool>());
            prop::collection::vec(spec, 1..16).prop_map(|specs| {
                specs
                    .iter()
                    .enumerate()
                    .map(|(i, (parent, caller, target, success, pays))| {
                        let parent = (i > 0).then(|| parent.index(i));
                        // Two contracts calling each other re-enter often.
                        let mut f = frame(
                            i,
                            parent,
                            *caller.get(&POOL[..2]),
                            *target.get(&POOL[..2]),
                            "CALL",
                        );
                        f.success = *success;
                        f.value = U256::from(u8::from(*pays));
                        f
                    })
                    .collect()
            })
        }
    }
}
