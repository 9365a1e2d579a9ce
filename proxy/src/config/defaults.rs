//! Default values and limits, named so the documentation, the reader and
//! the tests all refer to the same number.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::choices::{
    AuthMode, Consistency, FenceMode, LoadBalance, PoolMode, SslMode, WhenNoReplica,
};
use super::units::ByteSize;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

// [listen]
/// 6432 is the port PgBouncer made customary for PostgreSQL proxies.
pub const DEFAULT_LISTEN_ADDR: SocketAddr = SocketAddr::new(LOCALHOST, 6432);
pub const DEFAULT_ADMIN_ADDR: SocketAddr = SocketAddr::new(LOCALHOST, 9187);
pub const DEFAULT_MAX_CLIENT_CONNECTIONS: usize = 10_000;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_MAX_MESSAGE_SIZE: ByteSize = ByteSize::from_mb(64);
/// 0 means one data-path thread per available core.
pub const DEFAULT_WORKERS: usize = 0;

pub const DEFAULT_MAX_SESSION_STATE: ByteSize = ByteSize::from_mb(16);

/// Below this a client could not even send a modest query.
pub const MIN_MESSAGE_SIZE: ByteSize = ByteSize::from_kb(1);
/// PostgreSQL itself refuses messages over 1GB (MaxAllocSize).
pub const MAX_MESSAGE_SIZE: ByteSize = ByteSize::from_gb(1);
/// More threads than this is a typo, not a tuning decision.
pub const MAX_WORKERS: usize = 256;
/// The longest duration any key takes: waits and timeouts of a day are
/// already more than anyone means, and `Instant + d` cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);
/// The largest size any key takes.
pub const MAX_BYTE_SIZE: ByteSize = ByteSize::from_gb(1024);

// [auth]
pub const DEFAULT_AUTH_MODE: AuthMode = AuthMode::ScramSha256;

// [tls]
pub const DEFAULT_SSLMODE: SslMode = SslMode::Prefer;

// [admin]
/// An admin token guards failover: shorter ones can be guessed over HTTP.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

// [monitor]
pub const DEFAULT_MONITOR_USER: &str = "postgres";
pub const DEFAULT_MONITOR_PASSWORD: &str = "";
pub const DEFAULT_MONITOR_DATABASE: &str = "postgres";
pub const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_MONITOR_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_MONITOR_QUERY_TIMEOUT: Duration = Duration::from_secs(1);

// [routing]
pub const DEFAULT_CONSISTENCY: Consistency = Consistency::ReadYourWrites;
pub const DEFAULT_MAX_LAG_BYTES: ByteSize = ByteSize::from_mb(16);
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(1);
pub const DEFAULT_WHEN_NO_REPLICA: WhenNoReplica = WhenNoReplica::Primary;
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_LOAD_BALANCE: LoadBalance = LoadBalance::RoundRobin;
/// Far above any statement an application writes by hand or an ORM
/// generates; a text beyond it is data (a bulk INSERT), not a shape worth
/// a parse.
pub const DEFAULT_MAX_PARSE_SIZE: ByteSize = ByteSize::from_mb(1);
/// A limit below this would send ordinary statements to the primary.
pub const MIN_PARSE_SIZE: ByteSize = ByteSize::from_kb(1);

// [pool]
pub const DEFAULT_POOL_MODE: PoolMode = PoolMode::Transaction;
/// PgBouncer's `default_pool_size`: transaction pooling needs few.
pub const DEFAULT_POOL_SIZE: usize = 20;
/// PostgreSQL's own default `max_connections`.
pub const DEFAULT_MAX_NODE_CONNECTIONS: usize = 100;
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);
pub const DEFAULT_SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_SERVER_LIFETIME: Duration = Duration::from_secs(3600);
pub const DEFAULT_MIN_IDLE: usize = 0;
/// More connections than this to one node is a typo: PostgreSQL's own
/// `max_connections` tops out at 262143.
pub const MAX_POOL_CONNECTIONS: usize = 262_143;

// [failover]
pub const DEFAULT_FAILOVER_ENABLED: bool = true;
pub const DEFAULT_DETECT_AFTER: Duration = Duration::from_secs(1);
pub const DEFAULT_HOLD_WRITES: Duration = Duration::from_secs(30);
/// `{name}` is replaced by the replica's node name, so the new primary can
/// tell its standbys apart in `pg_stat_replication`.
pub const DEFAULT_REPLICA_CONNINFO: &str = "user=postgres application_name={name}";
/// More synchronous standbys than this is a typo (nodes are few).
pub const MAX_SYNCHRONOUS_STANDBYS: usize = 255;
/// `[failover] synchronous.standbys` when the table leaves it out.
pub const DEFAULT_SYNCHRONOUS_STANDBYS: usize = 1;
/// `[failover] synchronous.strict` when the table leaves it out: degrade
/// to fewer confirmations rather than keep commits waiting.
pub const DEFAULT_SYNCHRONOUS_STRICT: bool = false;
/// A fenced old primary that comes back writable is made read-only, so
/// that its direct clients cannot write a dead branch either.
pub const DEFAULT_FENCE: FenceMode = FenceMode::ReadOnly;
