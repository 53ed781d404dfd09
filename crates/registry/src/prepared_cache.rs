//! The in-memory LRU of prepared components, bounded by entries and by bytes.
//!
//! Counting entries alone bounds nothing: one compiled JavaScript component holds tens of MiB
//! of code, a Rust one a few hundred KiB. Each entry is weighed by the bytes of compiled code it
//! keeps mapped (`Prepared::code_bytes`, read from wasmtime without serializing anything), and
//! the least recently used entries are evicted until the cache is within both bounds. An entry
//! heavier than the whole byte bound is not kept at all: its call runs, and the next call
//! loads it again (from this node's artifact on disk, or by compiling it).

use lru::LruCache;
use std::hash::Hash;

/// What the cache holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Entries kept.
    pub entries: usize,
    /// Their weight (bytes of compiled code), summed.
    pub bytes: u64,
}

/// An LRU map bounded by entry count and by the summed weight of its values.
pub(crate) struct WeightedLru<K: Hash + Eq, V> {
    entries: LruCache<K, (V, u64)>,
    max_entries: usize,
    max_bytes: u64,
    bytes: u64,
}

impl<K: Hash + Eq + Clone, V> WeightedLru<K, V> {
    /// An empty cache of at most `max_entries` entries (at least 1) weighing at most
    /// `max_bytes`.
    pub(crate) fn new(max_entries: usize, max_bytes: u64) -> WeightedLru<K, V> {
        WeightedLru {
            entries: LruCache::unbounded(),
            max_entries: max_entries.max(1),
            max_bytes,
            bytes: 0,
        }
    }

    /// The value of `key`, now the most recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Keeps `value` (of `weight` bytes) as the most recently used, then evicts the least
    /// recently used entries until both bounds hold. A value heavier than the byte bound is
    /// not kept (and any older value of `key` goes).
    pub(crate) fn put(&mut self, key: K, value: V, weight: u64) {
        self.pop(&key);
        if weight > self.max_bytes {
            return;
        }
        self.entries.put(key, (value, weight));
        self.bytes += weight;
        self.evict();
    }

    /// Replaces the value of `key` only if it is kept, without changing its place in the LRU
    /// order; then evicts as [`Self::put`] does. Returns whether it was kept.
    pub(crate) fn replace(&mut self, key: &K, value: V, weight: u64) -> bool {
        let Some(entry) = self.entries.peek_mut(key) else {
            return false;
        };
        let old = std::mem::replace(entry, (value, weight)).1;
        self.bytes = self.bytes - old + weight;
        if weight > self.max_bytes {
            self.pop(key);
            return false;
        }
        self.evict();
        true
    }

    /// Removes `key`'s entry.
    pub(crate) fn pop(&mut self, key: &K) -> Option<V> {
        let (value, weight) = self.entries.pop(key)?;
        self.bytes -= weight;
        Some(value)
    }

    /// Entries and bytes kept now.
    pub(crate) fn usage(&self) -> CacheUsage {
        CacheUsage {
            entries: self.entries.len(),
            bytes: self.bytes,
        }
    }

    fn evict(&mut self) {
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            match self.entries.pop_lru() {
                Some((_, (_, weight))) => self.bytes -= weight,
                None => break,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_until_within_the_byte_bound() {
        let mut cache = WeightedLru::new(100, 10);
        cache.put("a", 'a', 4);
        cache.put("b", 'b', 4);
        assert_eq!(cache.get(&"a"), Some(&'a'), "a is now the most recent");
        cache.put("c", 'c', 4);
        assert_eq!(cache.get(&"b"), None, "b was the least recently used");
        assert_eq!(
            cache.usage(),
            CacheUsage {
                entries: 2,
                bytes: 8
            }
        );
        cache.put("d", 'd', 10);
        assert_eq!(
            cache.usage(),
            CacheUsage {
                entries: 1,
                bytes: 10
            }
        );
    }

    #[test]
    fn evicts_past_the_entry_bound_too() {
        let mut cache = WeightedLru::new(2, u64::MAX);
        for (key, weight) in [("a", 1), ("b", 1), ("c", 1)] {
            cache.put(key, (), weight);
        }
        assert_eq!(cache.get(&"a"), None);
        assert_eq!(cache.usage().entries, 2);
    }

    #[test]
    fn a_value_heavier_than_the_bound_is_not_kept() {
        let mut cache = WeightedLru::new(10, 10);
        cache.put("a", 1, 5);
        cache.put("a", 2, 11);
        assert_eq!(cache.get(&"a"), None, "the older value of the key goes too");
        assert_eq!(cache.usage(), CacheUsage::default());
    }

    #[test]
    fn replacing_reweighs_keeps_the_order_and_never_revives() {
        let mut cache = WeightedLru::new(10, 10);
        cache.put("a", 1, 2);
        cache.put("b", 1, 2);
        assert!(cache.replace(&"a", 2, 6), "a is still kept");
        assert_eq!(cache.usage().bytes, 8);
        // `a` stayed the least recently used: growing `b` past the bound evicts `a`.
        assert!(cache.replace(&"b", 2, 5));
        assert_eq!(cache.get(&"a"), None);
        assert_eq!(cache.get(&"b"), Some(&2));
        assert_eq!(cache.usage().bytes, 5);
        assert!(
            !cache.replace(&"gone", 3, 1),
            "an evicted key is not put back"
        );
        assert!(!cache.replace(&"b", 3, 11), "too heavy: dropped");
        assert_eq!(cache.usage(), CacheUsage::default());
    }
}
