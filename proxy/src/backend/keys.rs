//! What pooled connections are told apart by: the startup parameters a
//! session logs in with, and the node.

use std::sync::Arc;

use super::idle::OnNode;
use super::limits::PoolId;

/// Who a session logs in to nodes as: its startup parameters, built once
/// per session and shared by its pool keys.
#[derive(Debug)]
pub struct LoginKey {
    params: Vec<(String, String)>,
    user: Arc<str>,
    database: Arc<str>,
    /// Of `params`: pool keys are hashed on every lease and release.
    params_hash: u64,
    /// Of user and database (the pool's [`PoolId`]).
    login_hash: u64,
}

impl LoginKey {
    pub fn new(params: Vec<(String, String)>) -> LoginKey {
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        let user: Arc<str> = param("user").into();
        let database = match param("database") {
            "" => Arc::clone(&user),
            db => db.into(),
        };
        let params_hash = hash_params(&params);
        let login_hash = super::limits::login_hash(&user, &database);
        LoginKey {
            user,
            database,
            params,
            params_hash,
            login_hash,
        }
    }

    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The user, to share rather than copy.
    pub fn shared_user(&self) -> &Arc<str> {
        &self.user
    }

    /// The database (the user's name when the client named an empty one,
    /// as in PostgreSQL), to share rather than copy.
    pub fn shared_database(&self) -> &Arc<str> {
        &self.database
    }

    pub fn params_hash(&self) -> u64 {
        self.params_hash
    }

    /// Whether these are the key's parameters, in its order.
    pub fn has_params<N: AsRef<str>, V: AsRef<str>>(&self, params: &[(N, V)]) -> bool {
        self.params.len() == params.len()
            && self
                .params
                .iter()
                .zip(params)
                .all(|((a, b), (n, v))| a == n.as_ref() && b == v.as_ref())
    }
}

/// The hash a [`LoginKey`] is found by, of owned or borrowed parameters
/// alike (so a login looks its key up before it copies anything). foldhash
/// seeded once per process: clients choose these strings, so the seed is
/// secret, and SipHash's 13 calls per login cost about 740 instructions.
pub fn hash_params<N: AsRef<str>, V: AsRef<str>>(params: &[(N, V)]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static STATE: std::sync::OnceLock<foldhash::fast::RandomState> = std::sync::OnceLock::new();
    let mut h = STATE.get_or_init(Default::default).build_hasher();
    h.write_usize(params.len());
    for (name, value) in params {
        h.write(name.as_ref().as_bytes());
        h.write_u8(0xff);
        h.write(value.as_ref().as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

impl PartialEq for LoginKey {
    fn eq(&self, other: &LoginKey) -> bool {
        std::ptr::eq(self, other) || self.params == other.params
    }
}

impl Eq for LoginKey {}

impl std::hash::Hash for LoginKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.params_hash);
    }
}

/// Connections are interchangeable only for the same node and the same
/// startup parameters (user, database, client_encoding, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub node: usize,
    pub login: Arc<LoginKey>,
}

impl PoolKey {
    /// The pool whose `pool.size` this connection counts in.
    pub fn id(&self) -> PoolId {
        let login = &self.login;
        let names = (Arc::clone(&login.user), Arc::clone(&login.database));
        PoolId::with_hash(self.node, names, login.login_hash)
    }
}

impl OnNode for PoolKey {
    fn node(&self) -> usize {
        self.node
    }
}
