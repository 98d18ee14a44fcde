//! State fetches in flight, by key: a reader of a key some fetch is already asking the node
//! for waits on that fetch instead of asking again. Measured cases: a pending creation's
//! deployer, warmed at admission and missed by the creation's own first run moments later
//! (a second request, 0.5–2 ms under a race's load); a hot slot missed by several workers
//! at once in a burst.

use dashmap::{DashMap, mapref::entry::Entry};
use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use tokio::sync::oneshot;

use super::StateKey;

/// Resolves once the fetch that claimed a key is over: stored, failed or dropped.
pub(super) type FetchOver = Shared<BoxFuture<'static, ()>>;

#[derive(Debug, Default)]
pub(super) struct InFlight(DashMap<StateKey, FetchOver>);

/// The keys one fetch claimed. Dropping it (once the answer is stored, on an error, or when
/// the fetch is cancelled) releases them, then wakes whoever joined.
pub(super) struct Claim<'a> {
    in_flight: &'a InFlight,
    keys: Vec<StateKey>,
    over: FetchOver,
    // Dropped after `drop` has released the keys: a joiner wakes to find them stored.
    _signal: oneshot::Sender<()>,
}

/// Keys some other fetch had claimed, and the fetches to wait on for them (each once).
#[derive(Default)]
pub(super) struct Joined {
    pub(super) keys: Vec<StateKey>,
    pub(super) fetches: Vec<FetchOver>,
}

impl InFlight {
    /// Claims every key of `keys` no fetch has claimed; the others are joined.
    pub(super) fn claim(&self, keys: impl IntoIterator<Item = StateKey>) -> (Claim<'_>, Joined) {
        let (signal, over) = oneshot::channel::<()>();
        let over: FetchOver = over.map(|_| ()).boxed().shared();
        let mut claim = Claim { in_flight: self, keys: Vec::new(), over, _signal: signal };
        let mut joined = Joined::default();
        for key in keys {
            match self.0.entry(key) {
                Entry::Occupied(e) => {
                    if !joined.fetches.iter().any(|f| f.ptr_eq(e.get())) {
                        joined.fetches.push(e.get().clone());
                    }
                    joined.keys.push(key);
                }
                Entry::Vacant(v) => {
                    v.insert(claim.over.clone());
                    claim.keys.push(key);
                }
            }
        }
        (claim, joined)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl Claim<'_> {
    pub(super) fn keys(&self) -> &[StateKey] {
        &self.keys
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        for key in &self.keys {
            self.in_flight.0.remove_if(key, |_, over| over.ptr_eq(&self.over));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use alloy::primitives::{Address, U256};

    use super::*;

    const A: Address = Address::repeat_byte(0xa);
    const B: Address = Address::repeat_byte(0xb);

    #[test]
    fn a_key_claimed_is_joined_not_claimed_again_until_its_claim_is_dropped() {
        let in_flight = InFlight::default();
        let slot = StateKey::Slot(A, U256::from(1));
        let (first, joined) = in_flight.claim([StateKey::Account(A), slot]);
        assert_eq!((first.keys().len(), joined.keys.len()), (2, 0));
        let (second, joined) = in_flight.claim([StateKey::Account(A), StateKey::Account(B), slot]);
        assert_eq!(second.keys(), &[StateKey::Account(B)]);
        assert_eq!(joined.keys, vec![StateKey::Account(A), slot]);
        assert_eq!(joined.fetches.len(), 1, "one fetch to wait on for both keys");
        let wait = joined.fetches[0].clone();
        assert!(wait.peek().is_none());
        drop(first);
        // Released before the joiner wakes: a new reader claims the key afresh.
        assert_eq!(in_flight.len(), 1, "only the second claim's key is left");
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), wait).await.expect("the joiner wakes");
        });
        let (third, joined) = in_flight.claim([StateKey::Account(A)]);
        assert_eq!((third.keys().len(), joined.keys.len()), (1, 0));
        drop((second, third));
        assert_eq!(in_flight.len(), 0);
    }
}
