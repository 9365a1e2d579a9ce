//! `SHOW CONFIG` and `RELOAD`.

use super::reply::{Reply, text};
use crate::config::listing;
use crate::reload::{ReloadError, reload};
use crate::shared::Shared;
use crate::sqlstate;

/// Every effective setting as `key | value` (passwords masked).
pub fn show_config(shared: &Shared) -> Reply {
    let rows = listing(&shared.config())
        .into_iter()
        .map(|(key, value)| vec![text(key), text(value)])
        .collect();
    Reply::Rows {
        columns: &["key", "value"],
        rows,
        tag: "SHOW",
    }
}

/// Re-reads the config file: one row per changed key, saying whether the
/// new value is in effect or waits for a restart. A bad file is an error
/// listing its problems (config_file_error); nothing is changed then.
pub fn reload_config(shared: &Shared) -> Reply {
    let reloaded = match reload(shared) {
        Ok(reloaded) => reloaded,
        Err(e @ ReloadError::NoFile) => {
            return Reply::error(sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE, e.to_string());
        }
        Err(e @ ReloadError::Invalid(_)) => {
            return Reply::error(sqlstate::CONFIG_FILE_ERROR, e.to_string());
        }
    };
    let config = shared.config();
    let effective = listing(&config);
    let value = |key: &str| {
        effective
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let applied = reloaded
        .applied
        .iter()
        .map(|key| vec![text(key), value(key), text("applied")]);
    let waiting = reloaded
        .restart_needed
        .iter()
        .map(|key| vec![text(key), value(key), text("restart needed")]);
    Reply::Rows {
        columns: &["key", "running_value", "status"],
        rows: applied.chain(waiting).collect(),
        tag: "RELOAD",
    }
}
