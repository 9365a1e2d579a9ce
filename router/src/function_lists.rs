//! The built-in function lists: calls that always need the primary (and
//! the session state some of them create), and well-known harmless
//! functions that need no `pg_proc` lookup. Everything else is resolved by
//! the proxy ([`crate::Classifier::learn_volatility`]).

use crate::statement::SessionEffect;

/// What the built-in lists say about a function name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Known {
    /// Well-known immutable/stable/harmless: no lookup needed.
    Allowed,
    /// Must run on the primary; some calls also change session state.
    Denied(SessionEffect),
    /// Answers about the node it runs on: the primary answers, no write
    /// ([`crate::node_local`]).
    NodeLocal,
    /// Ask `pg_proc`.
    Unknown,
}

/// Looks a folded, possibly schema-qualified name up in the built-in lists.
/// The deny list matches whatever the schema; the node-local and allow
/// lists only apply to unqualified or `pg_catalog.` names (a user's
/// `myschema.lower` is not PostgreSQL's `lower`).
pub(crate) fn lookup(name: &str) -> Known {
    let (schema, base) = match name.rsplit_once('.') {
        Some((s, b)) => (Some(s), b),
        None => (None, name),
    };
    if let Some(effect) = denied(base) {
        return Known::Denied(effect);
    }
    let builtin = matches!(schema, None | Some("pg_catalog"));
    if builtin && crate::node_local::function(base) {
        Known::NodeLocal
    } else if builtin && allowed(base) {
        Known::Allowed
    } else {
        Known::Unknown
    }
}

fn denied(f: &str) -> Option<SessionEffect> {
    let session_lock = matches!(
        f,
        "pg_advisory_lock"
            | "pg_advisory_lock_shared"
            | "pg_try_advisory_lock"
            | "pg_try_advisory_lock_shared"
    );
    if session_lock {
        return Some(SessionEffect::AdvisoryLock);
    }
    match f {
        "pg_advisory_unlock_all" => return Some(SessionEffect::AdvisoryUnlockAll),
        "set_config" => return Some(SessionEffect::SetConfig),
        "pg_backend_pid" => return Some(SessionEffect::BackendIdentity),
        _ => {}
    }
    let exact = matches!(
        f,
        "nextval"
            | "setval"
            | "currval"
            | "lastval"
            | "txid_current"
            | "txid_current_if_assigned"
            | "pg_current_xact_id"
            | "pg_current_xact_id_if_assigned"
            | "pg_notify"
            | "dblink_exec"
            | "pg_promote"
            | "pg_drop_replication_slot"
            | "pg_replication_slot_advance"
            | "pg_switch_wal"
            | "pg_terminate_backend"
            | "pg_cancel_backend"
            | "pg_reload_conf"
            | "pg_rotate_logfile"
            | "pg_logical_emit_message"
            | "pg_create_restore_point"
            | "pg_import_system_collations"
    );
    let prefixed = [
        "pg_advisory_",
        "pg_try_advisory_",
        "lo_",
        "pg_stat_reset",
        "pg_replication_origin_",
    ]
    .iter()
    .any(|p| f.starts_with(p));
    let slots = (f.starts_with("pg_create_") || f.starts_with("pg_copy_"))
        && f.ends_with("_replication_slot");
    (exact || prefixed || slots).then_some(SessionEffect::None)
}

fn allowed(f: &str) -> bool {
    const PREFIXES: [&str; 13] = [
        "json_",
        "jsonb_",
        "array_",
        "regexp_",
        "string_",
        "to_",
        "date_",
        "pg_get_",
        "has_",
        "pg_size_",
        "ts_",
        "pg_encoding_",
        "current_",
    ];
    PREFIXES.iter().any(|p| f.starts_with(p)) || ALLOWED_NAMES.binary_search(&f).is_ok()
}

/// Functions that read and keep nothing, by exact name (sorted: looked up
/// by binary search; a test keeps it so).
const ALLOWED_NAMES: &[&str] = &[
    "abs",
    "age",
    "array_agg",
    "ascii",
    "avg",
    "bit_and",
    "bit_length",
    "bit_or",
    "bool_and",
    "bool_or",
    "btrim",
    "cardinality",
    "ceil",
    "ceiling",
    "char_length",
    "chr",
    "clock_timestamp",
    "coalesce",
    "col_description",
    "concat",
    "concat_ws",
    "count",
    "current_database",
    "current_schema",
    "current_schemas",
    "current_setting",
    "current_user",
    "decode",
    "degrees",
    "dense_rank",
    "div",
    "encode",
    "every",
    "exp",
    "extract",
    "factorial",
    "family",
    "first_value",
    "floor",
    "format",
    "format_type",
    "gcd",
    "gen_random_uuid",
    "generate_series",
    "greatest",
    "hashtext",
    "host",
    "inet_client_addr",
    "inet_server_addr",
    "inet_server_port",
    "initcap",
    "isempty",
    "json_agg",
    "jsonb_agg",
    "lag",
    "last_value",
    "lcm",
    "lead",
    "least",
    "left",
    "length",
    "ln",
    "log",
    "lower",
    "lower_inf",
    "lpad",
    "ltrim",
    "make_date",
    "make_interval",
    "make_timestamp",
    "max",
    "md5",
    "min",
    "mod",
    "netmask",
    "now",
    "ntile",
    "nullif",
    "obj_description",
    "octet_length",
    "overlay",
    "percentile_cont",
    "percentile_disc",
    "pg_char_to_encoding",
    "pg_collation_is_visible",
    "pg_column_size",
    "pg_conversion_is_visible",
    "pg_database_size",
    "pg_function_is_visible",
    "pg_indexes_size",
    "pg_is_other_temp_schema",
    "pg_my_temp_schema",
    "pg_opclass_is_visible",
    "pg_operator_is_visible",
    "pg_options_to_table",
    "pg_relation_filenode",
    "pg_relation_filepath",
    "pg_relation_size",
    "pg_sleep",
    "pg_table_is_visible",
    "pg_table_size",
    "pg_tablespace_databases",
    "pg_tablespace_location",
    "pg_total_relation_size",
    "pg_ts_config_is_visible",
    "pg_type_is_visible",
    "pg_typeof",
    "pg_wal_lsn_diff",
    "pi",
    "position",
    "power",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "radians",
    "random",
    "rank",
    "regclass",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "row_number",
    "row_to_json",
    "rpad",
    "rtrim",
    "session_user",
    "sha256",
    "shobj_description",
    "sign",
    "split_part",
    "sqrt",
    "starts_with",
    "statement_timestamp",
    "stddev",
    "string_agg",
    "strpos",
    "substr",
    "substring",
    "sum",
    "timeofday",
    "transaction_timestamp",
    "translate",
    "trim",
    "trunc",
    "unnest",
    "upper",
    "upper_inf",
    "uuid_generate_v4",
    "variance",
    "version",
    "width_bucket",
    "xmlagg",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_names_are_sorted_and_unique() {
        assert!(ALLOWED_NAMES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn lists_apply_by_base_name_and_schema() {
        assert_eq!(lookup("nextval"), Known::Denied(SessionEffect::None));
        assert_eq!(
            lookup("pg_catalog.nextval"),
            Known::Denied(SessionEffect::None)
        );
        assert_eq!(
            lookup("pg_advisory_lock"),
            Known::Denied(SessionEffect::AdvisoryLock)
        );
        assert_eq!(
            lookup("pg_advisory_xact_lock"),
            Known::Denied(SessionEffect::None)
        );
        assert_eq!(
            lookup("pg_create_logical_replication_slot"),
            Known::Denied(SessionEffect::None)
        );
        assert_eq!(lookup("lower"), Known::Allowed);
        assert_eq!(lookup("pg_catalog.lower"), Known::Allowed);
        assert_eq!(lookup("myschema.lower"), Known::Unknown);
        assert_eq!(lookup("my_func"), Known::Unknown);
        assert_eq!(lookup("pg_is_in_recovery"), Known::NodeLocal);
        assert_eq!(lookup("pg_catalog.pg_stat_get_numscans"), Known::NodeLocal);
        assert_eq!(lookup("myschema.pg_is_in_recovery"), Known::Unknown);
        assert_eq!(lookup("pg_stat_reset"), Known::Denied(SessionEffect::None));
        assert_eq!(lookup("txid_current"), Known::Denied(SessionEffect::None));
    }
}
