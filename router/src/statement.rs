//! The verdict of classifying one query string: plain data, so that it can be
//! cached, compared in table tests and handed to the proxy without borrowing
//! the text it came from.

/// What a statement needs from the node it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Access {
    /// Provably safe on a hot standby (subject to the `functions` the
    /// statement calls, see [`Statement::functions`]).
    Read,
    /// A read whose answer describes the node it runs on (its statistics,
    /// locks, backends, WAL and recovery state; see `node_local.rs`): the
    /// primary answers it, as for a client connected there. Still a read:
    /// it moves no WAL position, so nothing is captured after it.
    NodeLocal,
    /// Must run on the primary. Anything not provably read-only lands here.
    Write { why: WriteReason },
}

impl Access {
    /// Whether the statement writes nothing ([`Access::Read`] or
    /// [`Access::NodeLocal`]): not whether a replica may run it.
    pub fn is_read(&self) -> bool {
        matches!(self, Access::Read | Access::NodeLocal)
    }

    /// The access of statements run together: a write over a node-local
    /// read over a read; the first of equals.
    pub(crate) fn stronger(self, other: Access) -> Access {
        let rank = |a: &Access| match a {
            Access::Read => 0,
            Access::NodeLocal => 1,
            Access::Write { .. } => 2,
        };
        if rank(&other) > rank(&self) {
            other
        } else {
            self
        }
    }

    pub(crate) fn write(why: WriteReason) -> Access {
        Access::Write { why }
    }
}

/// Why a statement has to go to the primary. Kept as an enum (not text) so
/// the proxy can count and log it with a bounded label set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WriteReason {
    /// INSERT, UPDATE, DELETE, MERGE.
    Dml,
    /// CREATE, ALTER, DROP, TRUNCATE, GRANT, REVOKE, COMMENT, ...
    Ddl,
    /// `SELECT … FOR UPDATE | SHARE | NO KEY UPDATE | KEY SHARE`.
    LockingRead,
    /// A data-modifying CTE or subquery (`WITH x AS (DELETE …) SELECT …`).
    ModifyingCte,
    /// `SELECT … INTO t` creates a table.
    SelectInto,
    /// `COPY … FROM`, and `COPY … TO 'file' | PROGRAM` (server-side effects).
    CopyFrom,
    /// `EXPLAIN ANALYZE` of a statement that writes executes the write.
    ExplainAnalyzeWrite,
    /// `LOCK TABLE`.
    Lock,
    /// `LISTEN`, `UNLISTEN`, `NOTIFY`: refused during recovery.
    ListenNotify,
    /// `CALL p()`: procedures may do anything.
    Call,
    /// `DO $$ … $$`: anonymous code blocks may do anything.
    Do,
    /// `EXECUTE p`: the classifier does not know what `p` is; the proxy may
    /// know it from the PREPARE it saw and override this.
    Execute,
    /// VACUUM, ANALYZE, CLUSTER, REINDEX, CHECKPOINT, REFRESH MATERIALIZED VIEW.
    Maintenance,
    /// A call of a function on the deny list, or (from
    /// [`crate::Classifier::effective_access`]) one whose volatility is
    /// `Volatile` or not yet known.
    VolatileFunction(String),
    /// BEGIN (read-write), SET TRANSACTION other than READ ONLY,
    /// PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED.
    TransactionControl,
    /// A replica refused this statement shape with SQLSTATE 25006 before
    /// (see [`crate::Classifier::remember_write`]).
    RefusedByReplica,
    /// sqlparser could not parse it: where in doubt, the primary.
    Unparsed,
    /// Parsed, but not a statement kind the classifier knows to be read-only.
    Other,
    /// Longer than `routing.max_parse_size`: not tokenized at all.
    TooLarge,
    /// Calls more functions than a statement may have looked up
    /// ([`crate::MAX_FUNCTIONS`]).
    TooManyFunctions,
}

impl WriteReason {
    /// Stable spelling for logs and metric labels (function names omitted to
    /// keep the label set bounded).
    pub fn as_str(&self) -> &'static str {
        match self {
            WriteReason::Dml => "dml",
            WriteReason::Ddl => "ddl",
            WriteReason::LockingRead => "locking read",
            WriteReason::ModifyingCte => "modifying cte",
            WriteReason::SelectInto => "select into",
            WriteReason::CopyFrom => "copy from",
            WriteReason::ExplainAnalyzeWrite => "explain analyze write",
            WriteReason::Lock => "lock",
            WriteReason::ListenNotify => "listen notify",
            WriteReason::Call => "call",
            WriteReason::Do => "do",
            WriteReason::Execute => "execute",
            WriteReason::Maintenance => "maintenance",
            WriteReason::VolatileFunction(_) => "volatile function",
            WriteReason::TransactionControl => "transaction control",
            WriteReason::RefusedByReplica => "refused by replica",
            WriteReason::Unparsed => "unparsed",
            WriteReason::Other => "other",
            WriteReason::TooLarge => "too large",
            WriteReason::TooManyFunctions => "too many functions",
        }
    }
}

/// How a statement changes the session's transaction state. The proxy pins
/// a transaction to one node from `Begin` until `Commit`/`Rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TxEffect {
    None,
    /// BEGIN / START TRANSACTION. `read_only` is true only when the
    /// transaction can run on a hot standby: READ ONLY and not SERIALIZABLE
    /// (standbys refuse serializable transactions).
    Begin {
        read_only: bool,
    },
    /// `SET TRANSACTION READ ONLY` (not SERIALIZABLE).
    SetTransactionReadOnly,
    /// COMMIT, END.
    Commit,
    /// ROLLBACK, ABORT.
    Rollback,
    Savepoint {
        name: String,
    },
    Release {
        name: String,
    },
    RollbackTo {
        name: String,
    },
    /// `PREPARE TRANSACTION 'gid'`: ends the transaction on the primary.
    PrepareTransaction,
}

/// Which `DISCARD` was requested (`DISCARD ALL` is [`SessionEffect::DiscardAll`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscardKind {
    Plans,
    Sequences,
    Temp,
}

/// Session state a statement creates or drops: the things that pin a session
/// to a node or must be replayed on another node before it can serve reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionEffect {
    None,
    /// `SET [SESSION|LOCAL] name …`, `SET TIME ZONE`, `SET ROLE`, `SET NAMES`,
    /// `SET SESSION AUTHORIZATION`. `name` is lowercased.
    Set {
        name: String,
        local: bool,
    },
    /// `RESET name` (`name: None` is `RESET ALL`).
    Reset {
        name: Option<String>,
    },
    /// SQL `PREPARE name AS …`; `inner` is the access of the prepared
    /// statement (deny-listed functions applied), so the proxy can route a
    /// later `EXECUTE name` without re-parsing.
    Prepare {
        name: String,
        inner: Access,
    },
    /// `DEALLOCATE name` (`name: None` is `DEALLOCATE ALL`).
    Deallocate {
        name: Option<String>,
    },
    Listen {
        channel: String,
    },
    /// `UNLISTEN channel` or `UNLISTEN *` (`all`).
    Unlisten {
        all: bool,
    },
    /// CREATE TEMP TABLE / VIEW / SEQUENCE.
    TempObject,
    /// A session-level `pg_advisory_lock*` / `pg_try_advisory_lock*` call.
    AdvisoryLock,
    /// `pg_advisory_unlock_all()`.
    AdvisoryUnlockAll,
    /// `set_config(…)`: changes a GUC whose name is a literal.
    SetConfig,
    /// `pg_backend_pid()`: the answer names one server process, which the
    /// session must keep for the answer to stay true.
    BackendIdentity,
    /// `DECLARE … CURSOR WITH HOLD` outlives its transaction.
    DeclareCursorWithHold,
    DiscardAll,
    Discard(DiscardKind),
    /// A statement that looks like it changes session state (SET, RESET,
    /// PREPARE, DECLARE, LISTEN, CREATE TEMP …) but did not parse: pin the
    /// session to the primary.
    Unknown,
    /// A multi-statement string with more than one effect, in order.
    Many(Vec<SessionEffect>),
}

impl SessionEffect {
    /// Whether the statement leaves no session state: asked of every
    /// statement, and cheaper than the derived `==`, which compares the
    /// whole value through a call (about 50 instructions per `-S`
    /// transaction).
    pub fn is_none(&self) -> bool {
        matches!(self, SessionEffect::None)
    }
}

/// Per-statement routing override from a leading `/* pgrelay:… */` comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hint {
    Primary,
    /// Ignored by the router for writes: a hint never sends a write to a replica.
    Replica,
}

/// A statement's own lag budget (leading `/* pgrelay:max_lag=… */` and
/// `/* pgrelay:max_lag_bytes=… */` comments); `None`: the session's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Staleness {
    pub max_lag_millis: Option<u64>,
    pub max_lag_bytes: Option<u64>,
}

/// A session's read consistency policy (`SET pgrelay.consistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Consistency {
    Strong,
    Eventual,
    ReadYourWrites,
}

impl Consistency {
    /// Parses the spelling used in the config file and in `SET pgrelay.consistency`.
    pub fn parse(s: &str) -> Option<Consistency> {
        match s.to_ascii_lowercase().as_str() {
            "strong" => Some(Consistency::Strong),
            "eventual" => Some(Consistency::Eventual),
            "read-your-writes" => Some(Consistency::ReadYourWrites),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Strong => "strong",
            Consistency::Eventual => "eventual",
            Consistency::ReadYourWrites => "read-your-writes",
        }
    }
}

/// Whose commits a session's reads must see (`[routing] scope`, `SET
/// pgrelay.scope`), under read-your-writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Its own.
    Session,
    /// Every commit this pgrelay acknowledged to any client before the
    /// read began.
    Global,
    /// Every commit on the primary before the read began, through any
    /// pgrelay or none.
    Cluster,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Session, Scope::Global, Scope::Cluster];

    /// Parses the spelling used in the config file and in `SET pgrelay.scope`.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Session => "session",
            Scope::Global => "global",
            Scope::Cluster => "cluster",
        }
    }
}

/// Session SQL that pgrelay answers itself and never forwards. Durations and
/// LSNs stay strings: the proxy parses them with its config parsers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PgrelayCommand {
    SetConsistency(Consistency),
    ResetConsistency,
    ShowConsistency,
    SetScope(Scope),
    ResetScope,
    ShowScope,
    SetMaxLag(String),
    ResetMaxLag,
    ShowMaxLag,
    SetMinLsn(String),
    ResetMinLsn,
    ShowMinLsn,
    ShowLastLsn,
    ShowRoute,
    /// Unknown `pgrelay.*` setting (`sqlstate` 42704) or a bad value or
    /// form (22023). The proxy answers with an ErrorResponse.
    Invalid {
        message: String,
        sqlstate: &'static str,
    },
}

/// Everything the router and proxy need to know about one query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub access: Access,
    pub transaction: TxEffect,
    pub session: SessionEffect,
    pub pgrelay: Option<PgrelayCommand>,
    pub hint: Option<Hint>,
    /// `/* pgrelay:max_lag=200ms */`, `/* pgrelay:max_lag_bytes=1MB */`:
    /// this statement's staleness budget, in place of the session's.
    pub staleness: Staleness,
    /// Lowercased names (schema-qualified as written) of functions called by
    /// a `Read` statement that are on neither the built-in allow nor deny
    /// list. Empty for writes. The proxy resolves them in `pg_proc`; a name
    /// `pg_proc` does not know is not a function call the classifier could
    /// tell apart from syntax (e.g. a CTE column list) and should be learned
    /// as `Stable`.
    pub functions: Vec<String>,
}

impl Statement {
    /// A read with no effects: the starting point of every classification.
    pub fn read() -> Statement {
        Statement {
            access: Access::Read,
            transaction: TxEffect::None,
            session: SessionEffect::None,
            pgrelay: None,
            hint: None,
            staleness: Staleness::default(),
            functions: Vec::new(),
        }
    }
}
