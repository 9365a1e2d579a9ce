//! Answers to the session SQL that pgrelay handles itself
//! (`SET/SHOW/RESET pgrelay.*`), written in place of a backend's.

use std::time::Duration;

use bytes::BytesMut;
use pgrelay_health::{format_lsn, parse_lsn};
use pgrelay_router::{Consistency, PgrelayCommand};

use crate::config::parse_duration;

use crate::wire::be::{self, Severity};

use super::steer::RouteState;

/// Carries out `command` on the session's routing state and writes the
/// response up to (not including) ReadyForQuery.
pub fn answer(
    command: &PgrelayCommand,
    route: &mut RouteState,
    configured: Consistency,
    configured_max_lag: Duration,
    node_name: impl Fn(usize) -> String,
    out: &mut BytesMut,
) {
    match command {
        PgrelayCommand::SetConsistency(c) => {
            route.consistency = *c;
            be::command_complete(out, "SET");
        }
        PgrelayCommand::ResetConsistency => {
            route.consistency = configured;
            be::command_complete(out, "RESET");
        }
        PgrelayCommand::ShowConsistency => {
            be::show_result(out, "pgrelay.consistency", route.consistency.as_str());
        }
        PgrelayCommand::ShowRoute => {
            let text = match route.last {
                Some((node, reason)) => format!("{} {}", node_name(node), reason.as_str()),
                None => String::new(),
            };
            be::show_result(out, "pgrelay.route", &text);
        }
        PgrelayCommand::SetMaxLag(text) => match parse_duration(text) {
            Ok(lag) => {
                route.max_lag = Some(lag);
                be::command_complete(out, "SET");
            }
            Err(why) => invalid(out, "pgrelay.max_lag", text, &why),
        },
        PgrelayCommand::ResetMaxLag => {
            route.max_lag = None;
            be::command_complete(out, "RESET");
        }
        PgrelayCommand::ShowMaxLag => {
            let lag = route.max_lag.unwrap_or(configured_max_lag);
            be::show_result(out, "pgrelay.max_lag", &format!("{}ms", lag.as_millis()));
        }
        PgrelayCommand::SetMinLsn(text) => match parse_lsn(text.trim()) {
            Some(lsn) => {
                route.min_lsn = lsn;
                be::command_complete(out, "SET");
            }
            None => invalid(out, "pgrelay.min_lsn", text, "an LSN looks like 0/3000060"),
        },
        PgrelayCommand::ResetMinLsn => {
            route.min_lsn = 0;
            be::command_complete(out, "RESET");
        }
        PgrelayCommand::ShowMinLsn => {
            be::show_result(out, "pgrelay.min_lsn", &format_lsn(route.min_lsn));
        }
        PgrelayCommand::ShowLastLsn => {
            be::show_result(out, "pgrelay.last_lsn", &format_lsn(route.capture.last_lsn));
        }
        PgrelayCommand::Invalid { message, sqlstate } => {
            be::error_response(out, Severity::Error, sqlstate, message);
        }
    }
}

fn invalid(out: &mut BytesMut, name: &str, value: &str, why: &str) {
    be::error_response(
        out,
        Severity::Error,
        "22023",
        &format!("invalid value for parameter \"{name}\": \"{value}\" ({why})"),
    );
}
