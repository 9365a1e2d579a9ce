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
    PREFIXES.iter().any(|p| f.starts_with(p))
        || matches!(
            f,
            "now"
                | "count"
                | "sum"
                | "avg"
                | "min"
                | "max"
                | "coalesce"
                | "nullif"
                | "greatest"
                | "least"
                | "lower"
                | "upper"
                | "length"
                | "char_length"
                | "octet_length"
                | "substring"
                | "substr"
                | "position"
                | "strpos"
                | "overlay"
                | "trim"
                | "btrim"
                | "ltrim"
                | "rtrim"
                | "left"
                | "right"
                | "lpad"
                | "rpad"
                | "replace"
                | "concat"
                | "concat_ws"
                | "format"
                | "split_part"
                | "reverse"
                | "repeat"
                | "initcap"
                | "md5"
                | "sha256"
                | "encode"
                | "decode"
                | "random"
                | "clock_timestamp"
                | "statement_timestamp"
                | "transaction_timestamp"
                | "timeofday"
                | "gen_random_uuid"
                | "uuid_generate_v4"
                | "pg_sleep"
                | "extract"
                | "age"
                | "make_date"
                | "make_timestamp"
                | "make_interval"
                | "abs"
                | "ceil"
                | "ceiling"
                | "floor"
                | "round"
                | "trunc"
                | "mod"
                | "power"
                | "sqrt"
                | "ln"
                | "log"
                | "exp"
                | "sign"
                | "bool_and"
                | "bool_or"
                | "every"
                | "bit_and"
                | "bit_or"
                | "stddev"
                | "variance"
                | "percentile_cont"
                | "percentile_disc"
                | "row_number"
                | "rank"
                | "dense_rank"
                | "lag"
                | "lead"
                | "first_value"
                | "last_value"
                | "ntile"
                | "unnest"
                | "generate_series"
                | "cardinality"
                | "row_to_json"
                | "quote_ident"
                | "quote_literal"
                | "quote_nullable"
                | "format_type"
                | "obj_description"
                | "col_description"
                | "shobj_description"
                | "pg_table_is_visible"
                | "pg_type_is_visible"
                | "pg_function_is_visible"
                | "pg_wal_lsn_diff"
                | "pg_relation_size"
                | "pg_total_relation_size"
                | "pg_table_size"
                | "pg_indexes_size"
                | "pg_database_size"
                | "pg_tablespace_location"
                | "pg_typeof"
                | "pg_column_size"
                | "pg_relation_filenode"
                | "pg_relation_filepath"
                | "pg_tablespace_databases"
                | "pg_options_to_table"
                | "pg_is_other_temp_schema"
                | "pg_my_temp_schema"
                | "pg_char_to_encoding"
                | "pg_collation_is_visible"
                | "pg_opclass_is_visible"
                | "pg_operator_is_visible"
                | "pg_conversion_is_visible"
                | "pg_ts_config_is_visible"
                | "version"
                | "current_setting"
                | "current_user"
                | "current_database"
                | "current_schema"
                | "current_schemas"
                | "session_user"
                | "inet_server_addr"
                | "inet_server_port"
                | "inet_client_addr"
                | "array_agg"
                | "string_agg"
                | "json_agg"
                | "jsonb_agg"
                | "xmlagg"
                | "regclass"
                | "upper_inf"
                | "lower_inf"
                | "isempty"
                | "host"
                | "family"
                | "netmask"
                | "hashtext"
                | "translate"
                | "ascii"
                | "chr"
                | "starts_with"
                | "bit_length"
                | "width_bucket"
                | "pi"
                | "degrees"
                | "radians"
                | "div"
                | "gcd"
                | "lcm"
                | "factorial"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

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
