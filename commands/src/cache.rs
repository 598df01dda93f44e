//! Aggregate states as this process last wrote them, so the next command on the same
//! aggregate can decide without loading it first.
//!
//! A cached state may be out of date: another process (or another code path of this one) may
//! have appended to the aggregate since. That is safe for a command that *writes*: its events
//! take the sequences after the cached one, and the event store's primary key turns a stale
//! state into a conflict, after which the caller forgets the entry and retries from a fresh
//! load. A command that is *refused* writes nothing, so nothing would catch a stale refusal:
//! callers re-decide a refusal from a fresh load before answering with it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// A bounded map from aggregate id to (state, sequence); the oldest entries leave first.
pub struct StateCache<A> {
    capacity: usize,
    inner: Mutex<Entries<A>>,
}

struct Entries<A> {
    states: HashMap<String, (A, usize)>,
    /// Insertion order, for eviction; may hold ids already forgotten.
    order: VecDeque<String>,
}

impl<A: Clone> StateCache<A> {
    /// A cache of at most `capacity` aggregates (0 turns it off).
    pub fn new(capacity: usize) -> StateCache<A> {
        StateCache {
            capacity,
            inner: Mutex::new(Entries {
                states: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// The state last recorded for `id`, with its sequence.
    pub fn get(&self, id: &str) -> Option<(A, usize)> {
        let entries = self.inner.lock().ok()?;
        entries.states.get(id).cloned()
    }

    /// Records `state` at `sequence` for `id`, just written by this process.
    pub fn put(&self, id: &str, state: A, sequence: usize) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.inner.lock() else {
            return;
        };
        if entries
            .states
            .insert(id.to_string(), (state, sequence))
            .is_none()
        {
            entries.order.push_back(id.to_string());
        }
        while entries.states.len() > self.capacity {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            entries.states.remove(&oldest);
        }
        // Forgotten ids linger in the order queue, and an id forgotten and cached again is in it
        // twice: keep it from growing without bound (each cached id once, at its latest place).
        if entries.order.len() > 2 * self.capacity {
            let Entries { states, order } = &mut *entries;
            let mut seen = std::collections::HashSet::new();
            let latest: Vec<String> = order
                .drain(..)
                .rev()
                .filter(|id| states.contains_key(id) && seen.insert(id.clone()))
                .collect();
            order.extend(latest.into_iter().rev());
        }
    }

    /// Drops what is known of `id` (after a conflict, or a write whose outcome is unknown).
    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.inner.lock() {
            entries.states.remove(id);
        }
    }

    /// How many aggregates it holds.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |e| e.states.len())
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_state_is_kept_and_the_oldest_entry_leaves_first() {
        let cache = StateCache::new(2);
        cache.put("a", "a1", 1);
        cache.put("b", "b1", 1);
        cache.put("a", "a2", 2);
        assert_eq!(cache.get("a"), Some(("a2", 2)));
        cache.put("c", "c1", 1);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("a"), None, "a was inserted first");
        assert_eq!(cache.get("b"), Some(("b1", 1)));
        assert_eq!(cache.get("c"), Some(("c1", 1)));
    }

    #[test]
    fn a_forgotten_state_is_gone_and_the_queue_stays_bounded() {
        let cache = StateCache::new(3);
        for round in 0..100 {
            cache.put("x", round, round);
            cache.forget("x");
        }
        assert!(cache.is_empty());
        assert!(cache.inner.lock().unwrap().order.len() <= 6);
        cache.put("y", 1, 1);
        assert_eq!(cache.get("y"), Some((1, 1)));
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = StateCache::new(0);
        cache.put("a", 1, 1);
        assert_eq!(cache.get("a"), None);
    }
}
