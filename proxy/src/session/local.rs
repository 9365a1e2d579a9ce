//! Answers to the session SQL that pgrelay handles itself
//! (`SET/SHOW/RESET pgrelay.*`), written in place of a backend's, for a
//! simple Query or an extended-protocol batch.

use std::time::Duration;

use bytes::BytesMut;
use pgrelay_health::{format_lsn, parse_lsn};
use pgrelay_router::{Consistency, PgrelayCommand, Scope};

use crate::config::parse_duration;
use crate::sqlstate;
use crate::wire::be::{self, Severity};
use crate::wire::tag;

use super::batch::BatchItem;
use super::steer::RouteState;

/// What carrying out a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `SET` / `RESET`: a command tag.
    Done(&'static str),
    /// `SHOW`: one text value.
    Value { column: &'static str, value: String },
    Error {
        sqlstate: &'static str,
        message: String,
    },
}

/// The session's configured defaults, for `RESET` and `SHOW`.
pub struct Defaults<'a> {
    pub consistency: Consistency,
    pub scope: Scope,
    pub max_lag: Duration,
    pub node_name: &'a dyn Fn(usize) -> String,
}

/// Carries out `command` on the session's routing state.
pub fn execute(command: &PgrelayCommand, route: &mut RouteState, defaults: &Defaults) -> Reply {
    let show = |column, value| Reply::Value { column, value };
    match command {
        PgrelayCommand::SetConsistency(c) => {
            route.consistency = *c;
            Reply::Done("SET")
        }
        PgrelayCommand::ResetConsistency => {
            route.consistency = defaults.consistency;
            Reply::Done("RESET")
        }
        PgrelayCommand::ShowConsistency => {
            show("pgrelay.consistency", route.consistency.as_str().to_owned())
        }
        PgrelayCommand::SetScope(scope) => {
            route.scope = *scope;
            Reply::Done("SET")
        }
        PgrelayCommand::ResetScope => {
            route.scope = defaults.scope;
            Reply::Done("RESET")
        }
        PgrelayCommand::ShowScope => show("pgrelay.scope", route.scope.as_str().to_owned()),
        PgrelayCommand::ShowRoute => {
            let text = match route.last {
                Some((node, reason)) => {
                    format!("{} {}", (defaults.node_name)(node), reason.as_str())
                }
                None => String::new(),
            };
            show("pgrelay.route", text)
        }
        PgrelayCommand::SetMaxLag(text) => match parse_duration(text) {
            Ok(lag) => {
                route.max_lag = Some(lag);
                Reply::Done("SET")
            }
            Err(why) => invalid("pgrelay.max_lag", text, &why),
        },
        PgrelayCommand::ResetMaxLag => {
            route.max_lag = None;
            Reply::Done("RESET")
        }
        PgrelayCommand::ShowMaxLag => {
            let lag = route.max_lag.unwrap_or(defaults.max_lag);
            show("pgrelay.max_lag", format!("{}ms", lag.as_millis()))
        }
        PgrelayCommand::SetMinLsn(text) => match parse_lsn(text.trim()) {
            Some(lsn) => {
                route.min_lsn = lsn;
                Reply::Done("SET")
            }
            None => invalid("pgrelay.min_lsn", text, "an LSN looks like 0/3000060"),
        },
        PgrelayCommand::ResetMinLsn => {
            route.min_lsn = 0;
            Reply::Done("RESET")
        }
        PgrelayCommand::ShowMinLsn => show("pgrelay.min_lsn", format_lsn(route.min_lsn)),
        PgrelayCommand::ShowLastLsn => show("pgrelay.last_lsn", format_lsn(route.capture.last_lsn)),
        PgrelayCommand::Invalid { message, sqlstate } => Reply::Error {
            sqlstate,
            message: message.clone(),
        },
    }
}

/// The `SET` a startup setting (`pgrelay.<name>=<value>` in the startup
/// packet) stands for, as pgrelay would run it.
pub fn startup_sql(name: &str, value: &str) -> Result<String, String> {
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    if !plain {
        return Err(format!(
            "unrecognized configuration parameter \"pgrelay.{name}\""
        ));
    }
    Ok(format!(
        "SET pgrelay.{name} = '{}'",
        value.replace('\'', "''")
    ))
}

/// Whether `command`, from a startup setting, can be carried out: what
/// is wrong with it, as `SET` would say.
pub fn startup_problem(command: &PgrelayCommand) -> Option<String> {
    match command {
        PgrelayCommand::Invalid { message, .. } => Some(message.clone()),
        PgrelayCommand::SetMaxLag(text) => parse_duration(text).err().map(|why| {
            format!("invalid value for parameter \"pgrelay.max_lag\": \"{text}\" ({why})")
        }),
        PgrelayCommand::SetMinLsn(text) => parse_lsn(text.trim()).is_none().then(|| {
            format!(
                "invalid value for parameter \"pgrelay.min_lsn\": \"{text}\" \
                 (an LSN looks like 0/3000060)"
            )
        }),
        PgrelayCommand::SetConsistency(_) | PgrelayCommand::SetScope(_) => None,
        _ => Some("only pgrelay settings can be given at startup".into()),
    }
}

fn invalid(name: &str, value: &str, why: &str) -> Reply {
    Reply::Error {
        sqlstate: sqlstate::INVALID_PARAMETER_VALUE,
        message: format!("invalid value for parameter \"{name}\": \"{value}\" ({why})"),
    }
}

/// The response to a simple Query, up to (not including) ReadyForQuery.
pub fn write_simple(reply: &Reply, out: &mut BytesMut) {
    match reply {
        Reply::Done(tag) => be::command_complete(out, tag),
        Reply::Value { column, value } => be::show_result(out, column, value),
        Reply::Error { sqlstate, message } => {
            be::error_response(out, Severity::Error, sqlstate, message)
        }
    }
}

/// The response to a whole extended-protocol batch (`bytes` starts with it
/// and holds it through its Sync) that uses a pgrelay command: the
/// server's answers to each message, the command carried out at each
/// Execute. `command: None`: the batch mixes a pgrelay command with other
/// statements, which cannot run on one node; it is refused whole.
pub fn answer_batch(
    bytes: &[u8],
    command: Option<&PgrelayCommand>,
    route: &mut RouteState,
    defaults: &Defaults,
    status: u8,
) -> BytesMut {
    let mut out = BytesMut::new();
    let Some(command) = command else {
        be::error_response(
            &mut out,
            Severity::Error,
            sqlstate::FEATURE_NOT_SUPPORTED,
            "pgrelay commands cannot be combined with other statements in one batch",
        );
        be::ready_for_query(&mut out, status);
        return out;
    };
    let mut items = Vec::new();
    if let Ok(Some(header)) = crate::wire::frame::FrameHeader::parse(bytes) {
        let first = bytes.get(..header.len).unwrap_or(bytes);
        let ahead = bytes.get(first.len()..).unwrap_or_default();
        super::batch::scan(header, first, ahead, |item| items.push(item));
    }
    // Describing needs the reply's shape, not its effect: SHOW commands
    // describe one text column, the rest no data.
    let describe = match command {
        PgrelayCommand::ShowConsistency
        | PgrelayCommand::ShowScope
        | PgrelayCommand::ShowRoute
        | PgrelayCommand::ShowMaxLag
        | PgrelayCommand::ShowMinLsn
        | PgrelayCommand::ShowLastLsn => Reply::Value {
            column: "",
            value: String::new(),
        },
        _ => Reply::Done(""),
    };
    let describe = match (&describe, execute_preview(command)) {
        (Reply::Value { .. }, Some(column)) => Reply::Value {
            column,
            value: String::new(),
        },
        _ => describe,
    };
    write_batch(
        &items,
        &describe,
        || execute(command, route, defaults),
        status,
        &mut out,
    );
    out
}

/// The column a SHOW command answers with.
fn execute_preview(command: &PgrelayCommand) -> Option<&'static str> {
    match command {
        PgrelayCommand::ShowConsistency => Some("pgrelay.consistency"),
        PgrelayCommand::ShowScope => Some("pgrelay.scope"),
        PgrelayCommand::ShowRoute => Some("pgrelay.route"),
        PgrelayCommand::ShowMaxLag => Some("pgrelay.max_lag"),
        PgrelayCommand::ShowMinLsn => Some("pgrelay.min_lsn"),
        PgrelayCommand::ShowLastLsn => Some("pgrelay.last_lsn"),
        _ => None,
    }
}

/// The response to each message of an extended-protocol batch whose
/// statement is a pgrelay command, through the ReadyForQuery of its Sync.
/// `run` carries the command out (once per Execute). After an error the
/// rest of the batch is skipped, as a server would.
pub fn write_batch(
    items: &[BatchItem<'_>],
    describe: &Reply,
    mut run: impl FnMut() -> Reply,
    status: u8,
    out: &mut BytesMut,
) {
    let describe_rows = |out: &mut BytesMut| match describe {
        Reply::Value { column, .. } => be::text_row_description(out, column),
        _ => be::empty(out, tag::NO_DATA),
    };
    for item in items {
        match item {
            BatchItem::Parse { .. } => be::empty(out, tag::PARSE_COMPLETE),
            BatchItem::Bind { .. } => be::empty(out, tag::BIND_COMPLETE),
            BatchItem::CloseStatement { .. } | BatchItem::ClosePortal => {
                be::empty(out, tag::CLOSE_COMPLETE)
            }
            BatchItem::DescribeStatement { .. } => {
                be::no_parameters(out);
                describe_rows(out);
            }
            BatchItem::DescribePortal => describe_rows(out),
            BatchItem::Execute => match run() {
                Reply::Done(tag) => be::command_complete(out, tag),
                Reply::Value { value, .. } => {
                    be::text_data_row(out, &value);
                    be::command_complete(out, "SHOW");
                }
                Reply::Error { sqlstate, message } => {
                    be::error_response(out, Severity::Error, sqlstate, &message);
                    break;
                }
            },
        }
    }
    be::ready_for_query(out, status);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gets_a_servers_answers_in_order() {
        let items = [
            BatchItem::Parse {
                name: b"",
                sql: b"SHOW pgrelay.route",
            },
            BatchItem::Bind { statement: b"" },
            BatchItem::DescribePortal,
            BatchItem::Execute,
        ];
        let value = Reply::Value {
            column: "pgrelay.route",
            value: "pg2 replica read".into(),
        };
        let mut out = BytesMut::new();
        write_batch(&items, &value, || value.clone(), b'I', &mut out);
        let tags: Vec<u8> = frames(&out).iter().map(|f| f.0).collect();
        assert_eq!(tags, b"12TDCZ");
        let mut out = BytesMut::new();
        let error = Reply::Error {
            sqlstate: "22023",
            message: "bad".into(),
        };
        let items = [BatchItem::Execute, BatchItem::Execute];
        write_batch(&items, &error, || error.clone(), b'I', &mut out);
        let tags: Vec<u8> = frames(&out).iter().map(|f| f.0).collect();
        assert_eq!(tags, b"EZ", "the rest of the batch is skipped");
    }

    fn frames(mut bytes: &[u8]) -> Vec<(u8, usize)> {
        let mut out = Vec::new();
        while let Ok(Some(f)) = crate::wire::frame::split_frame(bytes) {
            out.push((f.tag, f.len));
            bytes = &bytes[f.len..];
        }
        out
    }
}
