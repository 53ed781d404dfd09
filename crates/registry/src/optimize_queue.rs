//! The bounded queue of background optimizing compiles.
//!
//! A component compiled by the baseline tier (Winch) is recompiled by Cranelift in the
//! background, one at a time. Each waiting compile holds the component's bytes, so the queue
//! is bounded by count and by the bytes it holds. A component that finds the queue full is not
//! queued: it simply keeps running on its baseline code until its next cold load (after it is
//! evicted from memory or the server restarts, it is compiled again and tries again). Nothing
//! is lost but speed; memory stays bounded.

use crate::ids::Digest;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// Default number of optimizing compiles waiting or running at once.
pub const DEFAULT_MAX_PENDING_OPTIMIZATIONS: usize = 16;
/// Default bytes of components the optimize queue may hold at once.
pub const DEFAULT_MAX_PENDING_OPTIMIZE_BYTES: u64 = 256 * 1024 * 1024;

/// The queue: which components are waiting for (or in) their optimizing compile.
pub(crate) struct OptimizeQueue {
    max_pending: usize,
    max_bytes: u64,
    pending: Arc<Mutex<Pending>>,
    /// Woken whenever the queue becomes empty.
    emptied: Arc<Notify>,
}

#[derive(Default)]
struct Pending {
    digests: HashSet<Digest>,
    bytes: u64,
}

/// What [`OptimizeQueue::enter`] did.
pub(crate) enum Entered {
    /// Queued: the place is held until the slot is dropped.
    Queued(QueuePlace),
    /// The component is queued already.
    AlreadyQueued,
    /// The queue is full (by count or bytes): the component stays on baseline code.
    Full,
}

/// A component's place in the queue, given back when dropped.
pub(crate) struct QueuePlace {
    pending: Arc<Mutex<Pending>>,
    emptied: Arc<Notify>,
    digest: Digest,
    bytes: u64,
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.digests.remove(&self.digest);
        pending.bytes -= self.bytes;
        if pending.digests.is_empty() {
            self.emptied.notify_waiters();
        }
    }
}

impl OptimizeQueue {
    /// A queue of at most `max_pending` components holding at most `max_bytes`.
    pub(crate) fn new(max_pending: usize, max_bytes: u64) -> OptimizeQueue {
        OptimizeQueue {
            max_pending,
            max_bytes,
            pending: Arc::default(),
            emptied: Arc::default(),
        }
    }

    /// Takes a place for `digest`'s `bytes`, if it is not queued already and fits.
    pub(crate) fn enter(&self, digest: &Digest, bytes: u64) -> Entered {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.digests.contains(digest) {
            return Entered::AlreadyQueued;
        }
        if pending.digests.len() >= self.max_pending
            || pending.bytes.saturating_add(bytes) > self.max_bytes
        {
            return Entered::Full;
        }
        pending.digests.insert(digest.clone());
        pending.bytes += bytes;
        Entered::Queued(QueuePlace {
            pending: Arc::clone(&self.pending),
            emptied: Arc::clone(&self.emptied),
            digest: digest.clone(),
            bytes,
        })
    }

    /// Components queued now, and the bytes they hold.
    pub(crate) fn usage(&self) -> (usize, u64) {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        (pending.digests.len(), pending.bytes)
    }

    /// Waits until no component is queued (every place given back).
    pub(crate) async fn emptied(&self) {
        loop {
            // Registered before the check, so an emptying in between still wakes it.
            let emptied = self.emptied.notified();
            if self.usage().0 == 0 {
                return;
            }
            emptied.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_by_count_and_by_bytes() {
        let queue = OptimizeQueue::new(2, 100);
        let digest = |n: u8| Digest::of(&[n]);
        let first = match queue.enter(&digest(1), 40) {
            Entered::Queued(place) => place,
            _ => panic!("an empty queue takes it"),
        };
        assert!(matches!(
            queue.enter(&digest(1), 40),
            Entered::AlreadyQueued
        ));
        assert!(
            matches!(queue.enter(&digest(2), 61), Entered::Full),
            "past the bytes"
        );
        let second = match queue.enter(&digest(2), 60) {
            Entered::Queued(place) => place,
            _ => panic!("fits exactly"),
        };
        assert!(
            matches!(queue.enter(&digest(3), 0), Entered::Full),
            "past the count"
        );
        assert_eq!(queue.usage(), (2, 100));
        drop(first);
        assert_eq!(queue.usage(), (1, 60));
        assert!(matches!(queue.enter(&digest(3), 40), Entered::Queued(_)));
        drop(second);
        assert_eq!(queue.usage(), (0, 0), "a dropped place is given back");
    }

    #[tokio::test]
    async fn emptied_waits_for_the_last_place() {
        let queue = Arc::new(OptimizeQueue::new(2, 100));
        queue.emptied().await;
        let Entered::Queued(place) = queue.enter(&Digest::of(b"a"), 1) else {
            panic!("an empty queue takes it")
        };
        let waiter = tokio::spawn({
            let queue = Arc::clone(&queue);
            async move { queue.emptied().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a place is still held");
        drop(place);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken when the last place is given back")
            .expect("the waiter ran");
    }
}
