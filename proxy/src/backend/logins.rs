//! One [`LoginKey`] per distinct set of startup parameters on a worker.
//!
//! Pool keys are compared on every lease and release. Sessions that log in
//! alike (pgbench's clients, an application's pool) share one key here,
//! so those comparisons are a pointer comparison rather than a walk over
//! every parameter's name and value.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use super::keys::{LoginKey, hash_params};

#[derive(Debug, Default)]
pub struct Logins {
    /// By the parameters' hash; a bucket holds more than one key only if
    /// two different parameter sets hash alike.
    by_hash: HashMap<u64, Vec<Weak<LoginKey>>, foldhash::fast::RandomState>,
}

impl Logins {
    /// The live key with these parameters, or a new one from now on.
    /// Nothing is copied when the key exists: a login would otherwise
    /// allocate each name and value only to find them here.
    pub fn intern<N: AsRef<str>, V: AsRef<str>>(&mut self, params: &[(N, V)]) -> Arc<LoginKey> {
        let bucket = self.by_hash.entry(hash_params(params)).or_default();
        bucket.retain(|k| k.strong_count() > 0);
        let same = bucket
            .iter()
            .filter_map(Weak::upgrade)
            .find(|k| k.has_params(params));
        if let Some(same) = same {
            return same;
        }
        let owned = params
            .iter()
            .map(|(n, v)| (n.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        let key = Arc::new(LoginKey::new(owned));
        bucket.push(Arc::downgrade(&key));
        key
    }

    /// Forgets the keys no session or connection holds any more.
    pub fn prune(&mut self) {
        self.by_hash.retain(|_, bucket| {
            bucket.retain(|k| k.strong_count() > 0);
            !bucket.is_empty()
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_hash.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(user: &str, app: &str) -> Vec<(String, String)> {
        vec![
            ("user".to_owned(), user.to_owned()),
            ("application_name".to_owned(), app.to_owned()),
        ]
    }

    #[test]
    fn alike_logins_share_one_key_until_nobody_holds_it() {
        let mut logins = Logins::default();
        let a = logins.intern(&params("app", "x"));
        let b = logins.intern(&params("app", "x"));
        let c = logins.intern(&params("app", "y"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b));
        logins.prune();
        assert_eq!(logins.len(), 1, "only y's key is held");
        let again = logins.intern(&params("app", "x"));
        assert_eq!(again.params(), &params("app", "x")[..]);
        assert_eq!(again.params_hash(), hash_params(&params("app", "x")));
    }
}
