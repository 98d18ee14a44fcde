//! Ingest's word to an idle worker that a pending tx is being decoded. A sleeping worker
//! takes 60–200 µs to run again once woken (measured on a 2-vCPU host with the node beside it);
//! woken by the nudge as a frame arrives, it is running by the time the tx is decoded and
//! routed, and polls its queues until then. The wake-up overlaps the decode instead of
//! following it. A cold tx traced ahead is routed once the node's answer is stored: the
//! answer's arrival nudges a worker the same way (`expect_within`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, Sender};

/// The longest a nudged worker polls for the frame's tx: past the slowest decode seen, short
/// enough that a stalled ingest thread costs little.
const MAX_POLL: Duration = Duration::from_micros(1_000);

/// Frames being decoded, and the wake-up an idle worker sleeps on beside its queues.
#[derive(Debug)]
pub struct Nudge {
    decoding: AtomicUsize,
    wake: Sender<()>,
    /// Work is expected until then (ns after `epoch`).
    expected_until: AtomicU64,
    epoch: Instant,
}

/// Held while one frame is decoded and routed; dropping it ends the frame's part of the poll.
#[derive(Debug)]
#[must_use = "the frame is over once this is dropped"]
pub struct Decoding<'a>(&'a Nudge);

impl Drop for Decoding<'_> {
    fn drop(&mut self) {
        self.0.decoding.fetch_sub(1, Ordering::Release);
    }
}

impl Nudge {
    /// The nudge, and the receiver workers sleep on. One wake-up waits at most: a worker busy
    /// when it was sent finds it stale (nothing decoding) and goes back to sleep.
    pub fn channel() -> (Arc<Self>, Receiver<()>) {
        let (wake, rx) = crossbeam_channel::bounded(1);
        let nudge = Self {
            decoding: AtomicUsize::new(0),
            wake,
            expected_until: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        (Arc::new(nudge), rx)
    }

    /// A frame starts decoding: the first of a burst wakes a worker (the others find one
    /// awake or busy).
    pub fn decoding(&self) -> Decoding<'_> {
        if self.decoding.fetch_add(1, Ordering::AcqRel) == 0 {
            // Full: a wake-up is already waiting. Gone: no workers (shutdown).
            let _ = self.wake.try_send(());
        }
        Decoding(self)
    }

    /// A tx is expected within `within` (a cold tx's state has just arrived; it is routed once
    /// stored): wakes an idle worker, which polls until then.
    pub fn expect_within(&self, within: Duration) {
        let until = self.now_ns().saturating_add(within.as_nanos() as u64);
        self.expected_until.fetch_max(until, Ordering::AcqRel);
        let _ = self.wake.try_send(());
    }

    /// Whether some frame is still being decoded, or a tx is still expected.
    pub fn busy(&self) -> bool {
        self.decoding.load(Ordering::Acquire) > 0
            || self.now_ns() < self.expected_until.load(Ordering::Acquire)
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Polls `take` while a frame is being decoded or a tx is expected, for at most `MAX_POLL`;
    /// then once more, for what the last frame routed as it ended.
    pub fn poll<W>(&self, mut take: impl FnMut() -> Option<W>) -> Option<W> {
        let started = Instant::now();
        while self.busy() && started.elapsed() < MAX_POLL {
            if let Some(work) = take() {
                return Some(work);
            }
            std::thread::yield_now();
        }
        take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_frame_of_a_burst_wakes_one_worker_and_the_poll_ends_with_the_last_frame() {
        let (nudge, woken) = Nudge::channel();
        assert!(!nudge.busy());
        let first = nudge.decoding();
        let second = nudge.decoding();
        assert_eq!(woken.try_recv(), Ok(()));
        assert!(woken.try_recv().is_err(), "one wake-up for the burst");
        assert!(nudge.busy());
        drop(first);
        assert!(nudge.busy(), "a frame is still decoding");
        drop(second);
        assert!(!nudge.busy());
        let _third = nudge.decoding();
        assert_eq!(woken.try_recv(), Ok(()), "idle again: the next frame wakes a worker");
    }

    #[test]
    fn a_poll_returns_what_the_frame_routed_and_gives_up_when_no_frame_is_decoding() {
        let (nudge, _woken) = Nudge::channel();
        // Nothing decoding: one look, no wait.
        let started = Instant::now();
        assert_eq!(nudge.poll(|| None::<u8>), None);
        assert!(started.elapsed() < MAX_POLL);

        let decoding = nudge.decoding();
        let mut looks = 0;
        assert_eq!(
            nudge.poll(|| {
                looks += 1;
                (looks == 3).then_some(7u8)
            }),
            Some(7)
        );
        drop(decoding);

        // A frame that routes nothing: the poll ends when it is dropped, from another thread.
        let nudge2 = Arc::clone(&nudge);
        let decoding = std::thread::spawn(move || {
            let guard = nudge2.decoding();
            std::thread::sleep(Duration::from_micros(200));
            drop(guard);
        });
        while !nudge.busy() && !decoding.is_finished() {
            std::hint::spin_loop();
        }
        assert_eq!(nudge.poll(|| None::<u8>), None);
        decoding.join().expect("thread");
        assert!(!nudge.busy());
    }

    #[test]
    fn an_expected_tx_keeps_the_poll_going_until_it_is_routed_or_the_expectation_runs_out() {
        let (nudge, woken) = Nudge::channel();
        nudge.expect_within(Duration::from_millis(50));
        assert_eq!(woken.try_recv(), Ok(()), "an idle worker is woken");
        assert!(nudge.busy(), "nothing decoding, but a tx is expected");
        // The tx is routed from another thread while the worker polls.
        let (routed_tx, routed) = crossbeam_channel::bounded::<u8>(1);
        let router = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(300));
            routed_tx.send(9).expect("routed");
        });
        assert_eq!(nudge.poll(|| routed.try_recv().ok()), Some(9));
        router.join().expect("thread");
        // A short expectation that nothing meets: the poll ends once it runs out.
        let (nudge, _woken) = Nudge::channel();
        let started = Instant::now();
        nudge.expect_within(Duration::from_micros(200));
        assert_eq!(nudge.poll(|| None::<u8>), None);
        assert!(started.elapsed() >= Duration::from_micros(200), "{:?}", started.elapsed());
        assert!(!nudge.busy());
    }
}
