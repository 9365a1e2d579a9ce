//! A small bounded LRU map: `HashMap` from key to slot, slots in a `Vec`
//! linked into a recency list by index. O(1) get/insert, no allocation
//! once full, memory bounded by `capacity` entries.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};

const NIL: usize = usize::MAX;

struct Slot<K, V> {
    key: K,
    value: V,
    prev: usize,
    next: usize,
}

pub(crate) struct Lru<K, V, S = RandomState> {
    map: HashMap<K, usize, S>,
    slots: Vec<Slot<K, V>>,
    /// Most recently used.
    head: usize,
    /// Least recently used: the next to go.
    tail: usize,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// A capacity of 0 is treated as 1, so the map is always usable.
    pub(crate) fn new(capacity: usize) -> Self {
        Lru::with_hasher(capacity, RandomState::new())
    }
}

impl<K: Hash + Eq + Clone, V, S: BuildHasher> Lru<K, V, S> {
    /// [`Lru::new`] with keys hashed by `hasher`.
    pub(crate) fn with_hasher(capacity: usize, hasher: S) -> Self {
        let capacity = capacity.max(1);
        Lru {
            map: HashMap::with_capacity_and_hasher(capacity, hasher),
            slots: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
            capacity,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Looks up without changing recency (usable through `&self`).
    pub(crate) fn peek(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|&i| &self.slots[i].value)
    }

    /// Looks up and marks the entry most recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<&V> {
        let i = *self.map.get(key)?;
        self.unlink(i);
        self.push_front(i);
        Some(&self.slots[i].value)
    }

    /// Inserts or replaces; evicts the least recently used entry when full.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if let Some(&i) = self.map.get(&key) {
            self.slots[i].value = value;
            self.unlink(i);
            self.push_front(i);
            return;
        }
        let i = if self.slots.len() < self.capacity {
            self.slots.push(Slot {
                key: key.clone(),
                value,
                prev: NIL,
                next: NIL,
            });
            self.slots.len() - 1
        } else {
            let i = self.tail;
            self.unlink(i);
            let slot = &mut self.slots[i];
            self.map.remove(&slot.key);
            slot.key = key.clone();
            slot.value = value;
            i
        };
        self.map.insert(key, i);
        self.push_front(i);
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slots[i].prev, self.slots[i].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next].prev = prev;
        }
    }

    fn push_front(&mut self, i: usize) {
        self.slots[i].prev = NIL;
        self.slots[i].next = self.head;
        if self.head != NIL {
            self.slots[self.head].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_evicts_least_recently_used() {
        let mut lru = Lru::new(3);
        for k in 0..3 {
            lru.insert(k, k * 10);
        }
        assert_eq!(lru.get(&0), Some(&0));
        lru.insert(3, 30);
        assert_eq!(lru.len(), 3);
        assert_eq!(lru.peek(&1), None, "1 was least recently used");
        assert_eq!(lru.peek(&0), Some(&0));
        for k in 10..10_000 {
            lru.insert(k, k);
            assert!(lru.len() <= 3);
        }
        assert_eq!(lru.peek(&9_999), Some(&9_999));
        assert_eq!(lru.peek(&9_996), None);
    }

    #[test]
    fn replacing_keeps_one_entry() {
        let mut lru = Lru::new(0);
        lru.insert("a", 1);
        lru.insert("a", 2);
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.get(&"a"), Some(&2));
        lru.insert("b", 3);
        assert_eq!(lru.peek(&"a"), None);
    }
}
