//! Bookkeeping of idle pooled connections: grouped by key, bounded per
//! node, and expired after a while. Generic over the connection type so the
//! rules can be tested without sockets.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Something that belongs to one node.
pub trait OnNode {
    fn node(&self) -> usize;
}

#[derive(Debug)]
struct Entry<T> {
    item: T,
    since: Instant,
}

#[derive(Debug)]
pub struct IdleSet<K, T> {
    /// Looked up on every lease and release; the keys a pool uses carry
    /// keyed hashes of their own, so a fast seeded hasher is enough.
    by_key: HashMap<K, Vec<Entry<T>>, foldhash::fast::RandomState>,
    max_per_node: usize,
    max_age: Duration,
}

impl<K: Hash + Eq + Clone + OnNode, T> IdleSet<K, T> {
    pub fn new(max_per_node: usize, max_age: Duration) -> IdleSet<K, T> {
        IdleSet {
            by_key: HashMap::default(),
            max_per_node,
            max_age,
        }
    }

    /// The most recently parked item of `key` that `pick` accepts, if it is
    /// usable (an unusable one is dropped).
    pub fn take_picked(
        &mut self,
        key: &K,
        pick: impl Fn(&T) -> bool,
        usable: impl Fn(&T) -> bool,
    ) -> Option<T> {
        let list = self.by_key.get_mut(key)?;
        let at = list.iter().rposition(|e| pick(&e.item))?;
        let entry = list.remove(at);
        usable(&entry.item).then_some(entry.item)
    }

    /// The usable item for `key` that `rank` puts first (lowest), the most
    /// recently parked among equals; unusable candidates are dropped on the
    /// way (others stay until they are candidates or expire). Nothing is
    /// taken if the best ranks worse than `ranks.at_most`. No item ranks
    /// below `ranks.lowest`: the first that does, from the most recent on,
    /// is taken without ranking the rest.
    pub fn take_ranked(
        &mut self,
        key: &K,
        usable: impl Fn(&T) -> bool,
        rank: impl Fn(&T) -> u8,
        ranks: Ranks,
    ) -> Option<T> {
        let list = self.by_key.get_mut(key)?;
        // Only the candidate is checked: checking every item (a socket
        // poll each) cost more than the rest of a lease.
        loop {
            let mut best: Option<(usize, u8)> = None;
            for i in (0..list.len()).rev() {
                let r = rank(&list[i].item);
                if best.is_none_or(|(_, b)| r < b) {
                    best = Some((i, r));
                }
                if r <= ranks.lowest {
                    break;
                }
            }
            let (best, r) = best?;
            if r > ranks.at_most {
                return None;
            }
            let entry = list.remove(best);
            if usable(&entry.item) {
                return Some(entry.item);
            }
        }
    }

    /// Parks an item; if its node already has `max_per_node` idle ones, the
    /// oldest of them makes room. Distinct startup parameters (say, one
    /// `application_name` per client) must not pile up idle connections
    /// until the server runs out of `max_connections`.
    pub fn put(&mut self, key: K, item: T, now: Instant) {
        let node = key.node();
        // Counting walks every key: only when there is a bound to keep.
        if self.max_per_node != usize::MAX && self.count_on(node) >= self.max_per_node {
            self.evict_oldest_on(node);
        }
        if self.max_per_node > 0 {
            self.by_key
                .entry(key)
                .or_default()
                .push(Entry { item, since: now });
        }
    }

    /// Drops items idle for longer than the maximum age, except the
    /// `keep` most recently parked of each key.
    pub fn expire(&mut self, now: Instant, keep: usize) {
        let max_age = self.max_age;
        for list in self.by_key.values_mut() {
            let newest = list.len().saturating_sub(keep);
            let mut i = 0;
            list.retain(|e| {
                i += 1;
                i > newest || now.saturating_duration_since(e.since) < max_age
            });
        }
        self.by_key.retain(|_, list| !list.is_empty());
    }

    /// Takes out every item `pick` accepts, with its key.
    pub fn take_all(&mut self, pick: impl Fn(&T) -> bool) -> Vec<(K, T)> {
        let mut taken = Vec::new();
        for (key, list) in &mut self.by_key {
            let mut i = 0;
            while i < list.len() {
                if pick(&list[i].item) {
                    taken.push((key.clone(), list.remove(i).item));
                } else {
                    i += 1;
                }
            }
        }
        self.by_key.retain(|_, list| !list.is_empty());
        taken
    }

    /// The keys with items that `pick` accepts.
    pub fn keys_of(&self, pick: impl Fn(&K) -> bool) -> Vec<K> {
        self.by_key.keys().filter(|k| pick(k)).cloned().collect()
    }

    /// Takes out the most recently parked item of `key`, with when it was
    /// parked (to [`put`](Self::put) it back as it was).
    pub fn take_newest(&mut self, key: &K) -> Option<(T, Instant)> {
        let list = self.by_key.get_mut(key)?;
        let entry = list.pop()?;
        if list.is_empty() {
            self.by_key.remove(key);
        }
        Some((entry.item, entry.since))
    }

    /// Keeps only the items `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&T) -> bool) {
        for list in self.by_key.values_mut() {
            list.retain(|e| keep(&e.item));
        }
        self.by_key.retain(|_, list| !list.is_empty());
    }

    /// Keeps only the items of keys `keep` accepts.
    pub fn retain_keys(&mut self, keep: impl Fn(&K) -> bool) {
        self.by_key.retain(|key, _| keep(key));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_key.values().map(Vec::len).sum()
    }

    pub fn clear(&mut self) {
        self.by_key.clear();
    }

    /// Drops every item parked for `node`.
    pub fn clear_node(&mut self, node: usize) {
        self.by_key.retain(|key, _| key.node() != node);
    }

    /// Items parked for `node`.
    pub fn count_on(&self, node: usize) -> usize {
        self.by_key
            .iter()
            .filter(|(k, _)| k.node() == node)
            .map(|(_, list)| list.len())
            .sum()
    }

    /// Lists are in parking order, so each key's oldest item is its first.
    fn evict_oldest_on(&mut self, node: usize) {
        let oldest = self
            .by_key
            .iter()
            .filter(|(k, _)| k.node() == node)
            .filter_map(|(k, list)| list.first().map(|e| (e.since, k.clone())))
            .min_by_key(|(since, _)| *since);
        let Some((_, key)) = oldest else {
            return;
        };
        if let Some(list) = self.by_key.get_mut(&key) {
            list.remove(0);
            if list.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }
}

/// The ranks [`IdleSet::take_ranked`] takes items of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranks {
    /// No item ranks lower.
    pub lowest: u8,
    /// None ranked higher is taken.
    pub at_most: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_best<T>(
        set: &mut IdleSet<Key, T>,
        key: &Key,
        usable: impl Fn(&T) -> bool,
        rank: impl Fn(&T) -> u8,
        at_most: u8,
    ) -> Option<T> {
        set.take_ranked(key, usable, rank, Ranks { lowest: 0, at_most })
    }

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    struct Key(usize, &'static str);

    impl OnNode for Key {
        fn node(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn takes_the_latest_usable_item_of_its_key() {
        let now = Instant::now();
        let mut set = IdleSet::new(10, Duration::from_secs(60));
        set.put(Key(0, "a"), 1, now);
        set.put(Key(0, "a"), 2, now);
        set.put(Key(0, "b"), 3, now);
        assert_eq!(
            take_best(&mut set, &Key(0, "a"), |_| true, |_| 0, u8::MAX),
            Some(2)
        );
        assert_eq!(
            take_best(&mut set, &Key(0, "a"), |&i| i != 1, |_| 0, u8::MAX),
            None,
            "1 is rejected and dropped"
        );
        assert_eq!(
            take_best(&mut set, &Key(0, "a"), |_| true, |_| 0, u8::MAX),
            None
        );
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn an_item_of_the_lowest_rank_is_taken_without_ranking_the_rest() {
        let now = Instant::now();
        let mut set = IdleSet::new(10, Duration::from_secs(60));
        for i in [1, 2, 3, 4] {
            set.put(Key(0, "a"), i, now);
        }
        let ranked = std::cell::Cell::new(0);
        let rank = |_: &i32| {
            ranked.set(ranked.get() + 1);
            1
        };
        let ranks = Ranks {
            lowest: 1,
            at_most: u8::MAX,
        };
        let taken = set.take_ranked(&Key(0, "a"), |_| true, rank, ranks);
        assert_eq!(
            (taken, ranked.get()),
            (Some(4), 1),
            "the latest, ranked alone"
        );
        let ranks = Ranks { lowest: 0, ..ranks };
        let taken = set.take_ranked(&Key(0, "a"), |_| true, rank, ranks);
        assert_eq!((taken, ranked.get()), (Some(3), 4), "3, 2 and 1 ranked");
    }

    #[test]
    fn a_picked_item_is_taken_if_usable() {
        let now = Instant::now();
        let mut set = IdleSet::new(10, Duration::from_secs(60));
        for i in [1, 2, 3, 1] {
            set.put(Key(0, "a"), i, now);
        }
        assert_eq!(
            set.take_picked(&Key(0, "a"), |&i| i == 2, |_| true),
            Some(2)
        );
        assert_eq!(set.take_picked(&Key(0, "a"), |&i| i == 2, |_| true), None);
        assert_eq!(set.take_picked(&Key(0, "a"), |&i| i == 3, |_| false), None);
        assert_eq!(set.len(), 2, "the unusable one is dropped");
        assert_eq!(set.take_picked(&Key(0, "b"), |_| true, |_| true), None);
    }

    #[test]
    fn an_item_ranked_worse_than_asked_stays() {
        let now = Instant::now();
        let mut set = IdleSet::new(10, Duration::from_secs(60));
        set.put(Key(0, "a"), 5, now);
        assert_eq!(take_best(&mut set, &Key(0, "a"), |_| true, |&i| i, 1), None);
        assert_eq!(set.len(), 1);
        assert_eq!(
            take_best(&mut set, &Key(0, "a"), |_| true, |&i| i, 5),
            Some(5)
        );
    }

    #[test]
    fn the_best_ranked_item_comes_first_then_the_latest() {
        let now = Instant::now();
        let mut set = IdleSet::new(10, Duration::from_secs(60));
        for i in [1, 2, 3, 4] {
            set.put(Key(0, "a"), i, now);
        }
        let rank = |&i: &i32| if i == 2 { 0 } else { 1 };
        assert_eq!(
            take_best(&mut set, &Key(0, "a"), |_| true, rank, u8::MAX),
            Some(2)
        );
        assert_eq!(
            take_best(&mut set, &Key(0, "a"), |_| true, rank, u8::MAX),
            Some(4)
        );
        assert_eq!(
            take_best(&mut set, &Key(0, "a"), |&i| i != 3, rank, u8::MAX),
            Some(1)
        );
        assert_eq!(set.len(), 0, "3 was unusable and dropped");
    }

    #[test]
    fn each_node_keeps_at_most_its_share_evicting_the_oldest() {
        let t0 = Instant::now();
        let mut set = IdleSet::new(2, Duration::from_secs(60));
        set.put(Key(0, "app1"), 1, t0);
        set.put(Key(0, "app2"), 2, t0 + Duration::from_secs(1));
        set.put(Key(1, "app1"), 10, t0);
        set.put(Key(0, "app3"), 3, t0 + Duration::from_secs(2));
        assert_eq!(set.len(), 3);
        assert_eq!(
            take_best(&mut set, &Key(0, "app1"), |_| true, |_| 0, u8::MAX),
            None,
            "oldest on node 0 evicted"
        );
        assert_eq!(
            take_best(&mut set, &Key(0, "app3"), |_| true, |_| 0, u8::MAX),
            Some(3)
        );
        assert_eq!(
            take_best(&mut set, &Key(1, "app1"), |_| true, |_| 0, u8::MAX),
            Some(10),
            "node 1 untouched"
        );
    }

    #[test]
    fn old_items_expire() {
        let t0 = Instant::now();
        let mut set = IdleSet::new(10, Duration::from_secs(60));
        set.put(Key(0, "a"), 1, t0);
        set.put(Key(0, "a"), 2, t0 + Duration::from_secs(50));
        set.expire(t0 + Duration::from_secs(70), 0);
        assert_eq!(set.len(), 1);
        assert_eq!(
            take_best(&mut set, &Key(0, "a"), |_| true, |_| 0, u8::MAX),
            Some(2)
        );
        set.expire(t0 + Duration::from_secs(200), 0);
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn the_newest_few_of_each_key_outlive_the_idle_timeout() {
        let t0 = Instant::now();
        let mut set = IdleSet::new(10, Duration::from_secs(60));
        for i in 0..3 {
            set.put(Key(0, "a"), i, t0 + Duration::from_secs(i));
        }
        set.put(Key(0, "b"), 10, t0);
        set.expire(t0 + Duration::from_secs(500), 2);
        assert_eq!(set.len(), 3, "a keeps 1 and 2, b keeps 10");
        assert_eq!(
            take_best(&mut set, &Key(0, "a"), |_| true, |_| 0, u8::MAX),
            Some(2)
        );
        assert_eq!(
            take_best(&mut set, &Key(0, "a"), |_| true, |_| 0, u8::MAX),
            Some(1)
        );
        assert_eq!(
            take_best(&mut set, &Key(0, "a"), |_| true, |_| 0, u8::MAX),
            None
        );
        set.retain(|&i| i != 10);
        assert_eq!(set.len(), 0);
    }
}
