//! Node-local views, functions and settings: what a client asks about "the
//! server" that a replica answers differently from the primary. A client
//! connected through pgrelay gets the primary's answer, as if connected to
//! the primary directly ([`crate::Access::NodeLocal`]).
//!
//! The principle: an object is node-local when its answer describes the
//! server process that runs the query (its backends, locks, statistics
//! counters, prepared statements and transactions, memory, replication
//! and recovery state, WAL position, start and reload times) rather than
//! the replicated database contents. Left out on purpose:
//! - `pg_settings`, `SHOW` and `current_setting()` in general (and the
//!   configuration files behind them: `pg_file_settings`,
//!   `pg_hba_file_rules`): configuration is normally the same on every
//!   node, and ORMs read it all the time. Only the two settings that say
//!   whether the node is a standby are node-local ([`setting`]).
//! - `inet_server_addr()`, `inet_server_port()`: the client's server is
//!   pgrelay, whose address no node can give; they are how a client sees
//!   which node served a statement.
//! - `pg_backend_pid()`: it already runs on the session's own primary
//!   connection (a pin, [`crate::SessionEffect::BackendIdentity`]).
//! - `txid_current()`, `pg_current_xact_id()` and the like that assign a
//!   transaction id: they are writes ([`crate::function_lists`]).
//!
//! Names match only unqualified or `pg_catalog.`-qualified: a user's
//! `public.pg_locks` is not PostgreSQL's. Unqualified names cannot be told
//! apart from a user's table of the same name on the search path; such a
//! table (named `pg_stat_…`) goes to the primary, which is safe.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Token;

use crate::pgrelay_cmd::folded;

/// Views (and the catalog-name prefixes of whole families of them).
pub(crate) fn relation(name: &str) -> bool {
    // `pg_stat_*` includes `pg_stat_progress_*`, `pg_stat_activity`,
    // `pg_stat_replication`, `pg_stat_wal_receiver`, `pg_stat_ssl`, …;
    // `pg_stats` and `pg_statistic` (planner statistics, replicated) do
    // not match.
    name.starts_with("pg_stat_")
        || name.starts_with("pg_statio_")
        || matches!(
            name,
            "pg_locks"
                | "pg_prepared_statements"
                | "pg_prepared_xacts"
                | "pg_cursors"
                | "pg_replication_slots"
                | "pg_replication_origin_status"
                | "pg_backend_memory_contexts"
                | "pg_shmem_allocations"
                | "pg_shmem_allocations_numa"
                | "pg_aios"
        )
}

/// Functions, by name without schema. `pg_stat_reset*` and the
/// transaction-id functions are writes: the deny list sees them first.
pub(crate) fn function(name: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        // pg_stat_get_*(), pg_stat_file(), pg_stat_have_stats(), …
        "pg_stat_",
        "pg_current_wal_",
        "pg_last_wal_",
        "pg_wal_replay_",
        "pg_control_",
        "txid_current",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
        || matches!(
            name,
            "pg_is_in_recovery"
                | "pg_last_xact_replay_timestamp"
                | "pg_is_wal_replay_paused"
                | "pg_get_wal_replay_pause_state"
                | "pg_postmaster_start_time"
                | "pg_conf_load_time"
                | "pg_current_snapshot"
                | "pg_current_logfile"
                | "pg_walfile_name"
                | "pg_walfile_name_offset"
                | "pg_lock_status"
                | "pg_blocking_pids"
                | "pg_safe_snapshot_blocking_pids"
                | "pg_prepared_statement"
                | "pg_prepared_xact"
                | "pg_cursor"
                | "pg_get_replication_slots"
                | "pg_get_backend_memory_contexts"
                | "pg_get_shmem_allocations"
                | "pg_log_backend_memory_contexts"
                | "pg_notification_queue_usage"
        )
}

/// Settings whose value says whether the node is a standby: JDBC's
/// `targetServerType=primary` and older libpq's
/// `target_session_attrs=read-write` ask `SHOW transaction_read_only`.
pub(crate) fn setting(name: &str) -> bool {
    matches!(name, "transaction_read_only" | "in_hot_standby")
}

/// Whether `tokens[i]` names a node-local view: a word, unqualified or
/// qualified by `pg_catalog`, and not an alias given with `AS`. Found in
/// the tokens, so it is seen wherever the view is used (FROM, joins,
/// subqueries, CTEs, `TABLE`); a column or CTE of the same name sends the
/// statement to the primary, which is safe.
pub(crate) fn names_relation(tokens: &[&Token], i: usize) -> bool {
    let Some(Token::Word(w)) = tokens.get(i) else {
        return false;
    };
    if !relation(&folded(w)) {
        return false;
    }
    let before = |back: usize| i.checked_sub(back).and_then(|p| tokens.get(p));
    match (before(1), before(2)) {
        (Some(Token::Period), Some(Token::Word(schema))) => folded(schema) == "pg_catalog",
        (Some(Token::Period), _) => false,
        (Some(Token::Word(prev)), _) => prev.quote_style.is_some() || prev.keyword != Keyword::AS,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_match_by_prefix_and_near_misses_do_not() {
        for name in [
            "pg_stat_activity",
            "pg_stat_progress_vacuum",
            "pg_statio_user_tables",
            "pg_locks",
        ] {
            assert!(relation(name), "{name}");
        }
        for name in [
            "pg_stats",
            "pg_statistic",
            "pg_class",
            "pg_settings",
            "stats",
        ] {
            assert!(!relation(name), "{name}");
        }
        for name in ["pg_stat_get_db_xact_commit", "pg_current_wal_lsn"] {
            assert!(function(name), "{name}");
        }
        for name in ["pg_backend_pid", "inet_server_port", "current_setting"] {
            assert!(!function(name), "{name}");
        }
    }
}
