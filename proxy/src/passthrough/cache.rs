//! Looked-up secrets by user name, trusted for a while. Pure: the time
//! is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::stored::StoredSecret;

/// Entries kept at most: unknown names are cached too (so a flood of
/// them does not become a flood of queries), and must not grow the map
/// without end.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
struct Entry {
    /// `None`: the cluster has no such user (or no usable secret).
    secret: Option<StoredSecret>,
    fetched: Instant,
}

#[derive(Debug)]
pub struct SecretCache {
    ttl: Duration,
    entries: HashMap<String, Entry>,
}

/// What the cache knows of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Fresh(Option<StoredSecret>),
    /// Absent or older than the TTL: ask the cluster.
    Stale,
}

impl SecretCache {
    pub fn new(ttl: Duration) -> SecretCache {
        SecretCache {
            ttl,
            entries: HashMap::new(),
        }
    }

    pub fn get(&self, user: &str, now: Instant) -> Cached {
        match self.entries.get(user) {
            Some(entry) if now.saturating_duration_since(entry.fetched) < self.ttl => {
                Cached::Fresh(entry.secret.clone())
            }
            _ => Cached::Stale,
        }
    }

    pub fn put(&mut self, user: &str, secret: Option<StoredSecret>, now: Instant) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(user) {
            let ttl = self.ttl;
            self.entries
                .retain(|_, e| now.saturating_duration_since(e.fetched) < ttl);
            if self.entries.len() >= MAX_ENTRIES
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.fetched)
                    .map(|(name, _)| name.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        let entry = Entry {
            secret,
            fetched: now,
        };
        self.entries.insert(user.to_owned(), entry);
    }

    /// How long ago `user` was looked up, if it is cached.
    pub fn age(&self, user: &str, now: Instant) -> Option<Duration> {
        self.entries
            .get(user)
            .map(|e| now.saturating_duration_since(e.fetched))
    }

    /// A login failed against the cached secret: the password may have
    /// changed, so the next login asks the cluster again.
    pub fn forget(&mut self, user: &str) {
        self.entries.remove(user);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5(n: u8) -> Option<StoredSecret> {
        Some(StoredSecret::Md5(format!("md5{n:032x}")))
    }

    #[test]
    fn entries_live_for_the_ttl_and_failures_forget_them() {
        let start = Instant::now();
        let mut cache = SecretCache::new(Duration::from_secs(30));
        assert_eq!(cache.get("app", start), Cached::Stale);
        cache.put("app", md5(1), start);
        cache.put("ghost", None, start);
        let later = start + Duration::from_secs(29);
        assert_eq!(cache.get("app", later), Cached::Fresh(md5(1)));
        assert_eq!(cache.get("ghost", later), Cached::Fresh(None));
        assert_eq!(
            cache.get("app", start + Duration::from_secs(30)),
            Cached::Stale
        );
        cache.forget("app");
        assert_eq!(cache.get("app", later), Cached::Stale);
    }

    #[test]
    fn a_flood_of_names_stays_bounded() {
        let start = Instant::now();
        let mut cache = SecretCache::new(Duration::from_secs(30));
        for i in 0..MAX_ENTRIES + 100 {
            let now = start + Duration::from_millis(i as u64);
            cache.put(&format!("user{i}"), None, now);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        // The oldest went first.
        assert_eq!(cache.get("user0", start), Cached::Stale);
        let last = format!("user{}", MAX_ENTRIES + 99);
        assert_eq!(
            cache.get(&last, start + Duration::from_secs(1)),
            Cached::Fresh(None)
        );
    }
}
