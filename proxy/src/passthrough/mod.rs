//! SCRAM pass-through: clients log in as the cluster's own roles without
//! pgrelay holding a password list. pgrelay reads a user's verifier with
//! `auth_query`, checks the client against it, and logs in to the nodes
//! with the ClientKey the client's proof reveals (for md5 verifiers, the
//! stored hash suffices). No cleartext password exists anywhere.

mod cache;
mod fetch;
mod stored;

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::config::AuthQueryConfig;
use crate::error::ProxyError;
use crate::shared::Shared;

pub use cache::{Cached, SecretCache};
pub use stored::StoredSecret;

/// Look-ups running at once; logins beyond wait. A flood of new names
/// must not become a flood of connections to the cluster.
const CONCURRENT_LOOKUPS: usize = 4;
/// A user whose login failed is looked up again, but not more often than
/// this, so wrong passwords cannot hammer the cluster.
const REFRESH_AFTER_FAILURE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct SecretSource {
    query: AuthQueryConfig,
    cache: Mutex<SecretCache>,
    lookups: Semaphore,
}

impl SecretSource {
    pub fn new(query: AuthQueryConfig) -> SecretSource {
        SecretSource {
            cache: Mutex::new(SecretCache::new(query.cache_ttl)),
            query,
            lookups: Semaphore::new(CONCURRENT_LOOKUPS),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, SecretCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `user`'s secret, from the cache or the cluster.
    pub async fn lookup(
        &self,
        user: &str,
        shared: &Shared,
        timeout: Duration,
    ) -> Result<Option<StoredSecret>, ProxyError> {
        if let Cached::Fresh(secret) = self.cache().get(user, Instant::now()) {
            return Ok(secret);
        }
        let _turn = self
            .lookups
            .acquire()
            .await
            .map_err(|_| ProxyError::ShuttingDown)?;
        // Another login may have looked it up while this one waited.
        if let Cached::Fresh(secret) = self.cache().get(user, Instant::now()) {
            return Ok(secret);
        }
        let secret = fetch::fetch(&self.query, user, shared, timeout).await?;
        self.cache().put(user, secret.clone(), Instant::now());
        Ok(secret)
    }

    /// A login against `user`'s cached secret failed: the password may
    /// have changed, so the next one asks the cluster (at most once per
    /// [`REFRESH_AFTER_FAILURE`]).
    pub fn failed(&self, user: &str) {
        let mut cache = self.cache();
        if cache
            .age(user, Instant::now())
            .is_some_and(|age| age >= REFRESH_AFTER_FAILURE)
        {
            cache.forget(user);
        }
    }
}
