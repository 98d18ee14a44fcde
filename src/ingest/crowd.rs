//! How crowded each call target is in the recent pool: a burst of ordinary txs goes to a few
//! popular contracts (a token, a router), an attack to a contract few call. A plain call to an
//! uncommon target is simulated ahead of the crowd, and a fresh sender calling a crowded one
//! waits with it, so ten thousand token transfers cannot stand between an attack and a worker.
//! This orders work only: nothing is dropped or paused on it.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use alloy::primitives::Address;

use super::rank::{Lane, Rank, Reason};

/// Txs counted per target over one to two of these (the counts roll over whole windows).
const WINDOW: Duration = Duration::from_secs(12);
/// A target with this many txs in the window is crowded.
pub const CROWDED_AT: u32 = 8;

#[derive(Debug)]
struct Windows {
    started: Instant,
    current: HashMap<Address, u32>,
    previous: HashMap<Address, u32>,
}

/// Recent txs per call target, kept for two windows at most (bounded by the pool's own rate).
#[derive(Debug)]
pub struct TargetCrowd {
    windows: Mutex<Windows>,
}

impl Default for TargetCrowd {
    fn default() -> Self {
        Self {
            windows: Mutex::new(Windows {
                started: Instant::now(),
                current: HashMap::new(),
                previous: HashMap::new(),
            }),
        }
    }
}

impl TargetCrowd {
    /// Counts one tx to `to` (call once per tx, at first sight).
    pub fn note(&self, to: Address) {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        w.roll(Instant::now());
        *w.current.entry(to).or_default() += 1;
    }

    /// Txs to `to` seen in the last one to two windows.
    pub fn count(&self, to: &Address) -> u32 {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        w.roll(Instant::now());
        w.current.get(to).copied().unwrap_or(0) + w.previous.get(to).copied().unwrap_or(0)
    }

    pub fn is_crowded(&self, to: &Address) -> bool {
        self.count(to) >= CROWDED_AT
    }
}

impl Windows {
    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed < WINDOW {
            return;
        }
        // More than two windows quiet: nothing recent is left.
        self.previous =
            if elapsed < 2 * WINDOW { std::mem::take(&mut self.current) } else { HashMap::new() };
        self.current.clear();
        self.started = now;
    }
}

/// The lane once the crowd is known: a plain call to an uncommon target moves up, a fresh
/// sender's call to a crowded one moves down. Every other verdict stands.
pub fn by_crowd(rank: Rank, crowded: bool) -> Rank {
    match rank {
        Rank::Lane(Lane::Other, Reason::Plain | Reason::Unclassified) if !crowded => {
            Rank::Lane(Lane::Suspicious, Reason::UncommonTarget)
        }
        Rank::Lane(Lane::Suspicious, Reason::FreshSender) if crowded => {
            Rank::Lane(Lane::Other, Reason::FreshSender)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: Address = Address::repeat_byte(0x70);
    const RARE: Address = Address::repeat_byte(0x71);

    #[test]
    fn a_target_is_crowded_from_its_eighth_tx_in_the_window() {
        let crowd = TargetCrowd::default();
        for _ in 0..CROWDED_AT - 1 {
            crowd.note(TOKEN);
        }
        assert!(!crowd.is_crowded(&TOKEN));
        crowd.note(TOKEN);
        assert!(crowd.is_crowded(&TOKEN));
        crowd.note(RARE);
        assert_eq!(crowd.count(&RARE), 1);
        assert!(!crowd.is_crowded(&RARE));
    }

    #[test]
    fn counts_roll_over_and_then_expire() {
        let crowd = TargetCrowd::default();
        for _ in 0..CROWDED_AT {
            crowd.note(TOKEN);
        }
        let mut w = crowd.windows.lock().expect("not poisoned");
        let start = w.started;
        // One window later the old counts still count...
        w.roll(start + WINDOW);
        assert_eq!(w.previous.get(&TOKEN), Some(&CROWDED_AT));
        // ...two quiet windows later they are gone.
        let again = w.started;
        w.roll(again + 2 * WINDOW);
        assert!(w.previous.is_empty() && w.current.is_empty());
    }

    #[test]
    fn only_plain_calls_and_fresh_senders_move() {
        let plain = Rank::Lane(Lane::Other, Reason::Plain);
        assert_eq!(
            by_crowd(plain.clone(), false),
            Rank::Lane(Lane::Suspicious, Reason::UncommonTarget)
        );
        assert_eq!(by_crowd(plain.clone(), true), plain);
        let fresh = Rank::Lane(Lane::Suspicious, Reason::FreshSender);
        assert_eq!(by_crowd(fresh.clone(), true), Rank::Lane(Lane::Other, Reason::FreshSender));
        assert_eq!(by_crowd(fresh.clone(), false), fresh);
        // A protected address in calldata stays suspicious however crowded its target.
        let calldata = Rank::Lane(Lane::Suspicious, Reason::Calldata);
        assert_eq!(by_crowd(calldata.clone(), true), calldata);
        let protected = Rank::Lane(Lane::Protected, Reason::CodeReferences);
        assert_eq!(by_crowd(protected.clone(), true), protected);
        assert_eq!(by_crowd(Rank::Skip, false), Rank::Skip);
    }
}
