//! Answers to the session SQL that pgrelay handles itself
//! (`SET/SHOW/RESET pgrelay.*`), written in place of a backend's.

use bytes::BytesMut;
use pgrelay_router::{Consistency, PgrelayCommand};

use crate::wire::be::{self, Severity};

use super::steer::RouteState;

/// Carries out `command` on the session's routing state and writes the
/// response up to (not including) ReadyForQuery.
pub fn answer(
    command: &PgrelayCommand,
    route: &mut RouteState,
    configured: Consistency,
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
        PgrelayCommand::Invalid { message, sqlstate } => {
            be::error_response(out, Severity::Error, sqlstate, message);
        }
        other => be::error_response(
            out,
            Severity::Error,
            "0A000",
            &format!("{} is not supported by this pgrelay yet", describe(other)),
        ),
    }
}

fn describe(command: &PgrelayCommand) -> &'static str {
    match command {
        PgrelayCommand::SetMaxLag(_) | PgrelayCommand::ResetMaxLag | PgrelayCommand::ShowMaxLag => {
            "pgrelay.max_lag"
        }
        PgrelayCommand::SetMinLsn(_) | PgrelayCommand::ResetMinLsn | PgrelayCommand::ShowMinLsn => {
            "pgrelay.min_lsn"
        }
        PgrelayCommand::ShowLastLsn => "pgrelay.last_lsn",
        _ => "this pgrelay command",
    }
}
