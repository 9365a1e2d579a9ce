//! The statement kind from sqlparser's AST: which top-level statements are
//! reads, which change transaction or session state, and which write.
//! Anything not matched explicitly is a write.

use sqlparser::ast::{
    CopySource, CopyTarget, DiscardObject, Expr, Ident, ObjectName, Reset, Set, Statement as Ast,
    TransactionAccessMode, TransactionIsolationLevel, TransactionMode, UtilityOption,
};

use crate::classify::{Part, many, with_calls};
use crate::functions::Features;
use crate::statement::{Access, DiscardKind, SessionEffect, TxEffect, WriteReason};

/// A query's own access: reads unless the tokens show a write inside it.
fn query_access(f: &Features) -> Part {
    if f.modifying {
        Part::write(WriteReason::ModifyingCte)
    } else if f.locking {
        Part::write(WriteReason::LockingRead)
    } else if f.into {
        Part::write(WriteReason::SelectInto)
    } else {
        Part::read()
    }
}

pub(crate) fn classify_ast(stmt: &Ast, f: &Features) -> Part {
    use WriteReason as W;
    let part = match stmt {
        Ast::Query(_) => query_access(f),
        Ast::Insert(_) | Ast::Update(_) | Ast::Delete(_) | Ast::Merge(_) => Part::write(W::Dml),
        Ast::Copy {
            source, to, target, ..
        } => match (to, target, source) {
            (true, CopyTarget::Stdout, CopySource::Query(_)) => query_access(f),
            (true, CopyTarget::Stdout, CopySource::Table { .. }) => Part::read(),
            _ => Part::write(W::CopyFrom),
        },
        Ast::Explain {
            analyze,
            statement,
            options,
            ..
        } => {
            return explain(*analyze, statement, options.as_deref(), f);
        }
        Ast::Prepare {
            name, statement, ..
        } => {
            let inner = classify_ast(statement, f);
            let effect = SessionEffect::Prepare {
                name: fold(name),
                inner: inner.access,
            };
            return Part::read().session(effect);
        }
        Ast::ShowVariable { variable } => match variable.as_slice() {
            [name] if crate::node_local::setting(&fold(name)) => Part {
                access: Access::NodeLocal,
                ..Part::read()
            },
            _ => Part::read(),
        },
        Ast::ShowVariables { .. } => Part::read(),
        Ast::StartTransaction {
            modes, statements, ..
        } if statements.is_empty() => {
            let read_only = tx_read_only(modes);
            let part = if read_only {
                Part::read()
            } else {
                Part::write(W::TransactionControl)
            };
            part.tx(TxEffect::Begin { read_only })
        }
        Ast::Commit { .. } => Part::read().tx(TxEffect::Commit),
        Ast::Rollback {
            savepoint: None, ..
        } => Part::read().tx(TxEffect::Rollback),
        Ast::Rollback {
            savepoint: Some(name),
            ..
        } => Part::read().tx(TxEffect::RollbackTo { name: fold(name) }),
        Ast::Savepoint { name } => Part::read().tx(TxEffect::Savepoint { name: fold(name) }),
        Ast::ReleaseSavepoint { name } => Part::read().tx(TxEffect::Release { name: fold(name) }),
        Ast::Set(set) => set_statement(set),
        Ast::Reset(r) => Part::read().session(SessionEffect::Reset {
            name: match &r.reset {
                Reset::ALL => None,
                Reset::SessionAuthorization => Some("session_authorization".to_owned()),
                Reset::ConfigurationParameter(n) => Some(guc_name(n)),
            },
        }),
        Ast::Deallocate { name, .. } => Part::read().session(SessionEffect::Deallocate {
            name: (name.quote_style.is_some() || !name.value.eq_ignore_ascii_case("all"))
                .then(|| fold(name)),
        }),
        Ast::Discard { object_type } => Part::read().session(match object_type {
            DiscardObject::ALL => SessionEffect::DiscardAll,
            DiscardObject::PLANS => SessionEffect::Discard(DiscardKind::Plans),
            DiscardObject::SEQUENCES => SessionEffect::Discard(DiscardKind::Sequences),
            DiscardObject::TEMP => SessionEffect::Discard(DiscardKind::Temp),
        }),
        Ast::Declare { stmts, .. } => {
            let hold = stmts.iter().any(|d| d.hold == Some(true));
            let part = query_access(f);
            if hold {
                part.session(SessionEffect::DeclareCursorWithHold)
            } else {
                part
            }
        }
        Ast::Fetch { .. } | Ast::Close { .. } => Part::read(),
        Ast::LISTEN { channel } => Part::write(W::ListenNotify).session(SessionEffect::Listen {
            channel: fold(channel),
        }),
        Ast::UNLISTEN { channel } => {
            Part::write(W::ListenNotify).session(SessionEffect::Unlisten {
                all: channel.value == "*",
            })
        }
        Ast::NOTIFY { .. } => Part::write(W::ListenNotify),
        Ast::Lock(_) | Ast::LockTables { .. } => Part::write(W::Lock),
        Ast::Call(_) => Part::write(W::Call),
        Ast::Execute { .. } => Part::write(W::Execute),
        Ast::Vacuum(_) | Ast::Analyze(_) => Part::write(W::Maintenance),
        Ast::CreateTable(t) => temp(Part::write(W::Ddl), t.temporary),
        Ast::CreateView(v) => temp(Part::write(W::Ddl), v.temporary),
        Ast::CreateSequence { temporary, .. } => temp(Part::write(W::Ddl), *temporary),
        other => Part::write(ddl_or_other(other)),
    };
    with_calls(part, f)
}

fn ddl_or_other(stmt: &Ast) -> WriteReason {
    match stmt {
        Ast::Truncate(_)
        | Ast::Drop { .. }
        | Ast::DropFunction(_)
        | Ast::DropTrigger(_)
        | Ast::DropExtension(_)
        | Ast::CreateIndex(_)
        | Ast::CreateRole(_)
        | Ast::CreateSchema { .. }
        | Ast::CreateDatabase { .. }
        | Ast::CreateFunction(_)
        | Ast::CreateTrigger(_)
        | Ast::CreateExtension(_)
        | Ast::CreateType { .. }
        | Ast::CreateDomain(_)
        | Ast::CreatePolicy(_)
        | Ast::CreateProcedure { .. }
        | Ast::AlterTable(_)
        | Ast::AlterIndex { .. }
        | Ast::AlterView { .. }
        | Ast::AlterRole { .. }
        | Ast::AlterSchema(_)
        | Ast::AlterType(_)
        | Ast::AlterFunction(_)
        | Ast::AlterPolicy(_)
        | Ast::Grant(_)
        | Ast::Revoke(_)
        | Ast::Comment { .. }
        | Ast::RenameTable(_) => WriteReason::Ddl,
        _ => WriteReason::Other,
    }
}

fn temp(part: Part, temporary: bool) -> Part {
    if temporary {
        part.session(SessionEffect::TempObject)
    } else {
        part
    }
}

/// EXPLAIN executes its statement only with ANALYZE (`EXPLAIN ANALYZE x`,
/// or `EXPLAIN (ANALYZE [true|on|1]) x`, which sqlparser keeps in options).
fn explain(analyze: bool, inner: &Ast, options: Option<&[UtilityOption]>, f: &Features) -> Part {
    let mut cacheable = true;
    let mut analyze = analyze;
    for o in options.unwrap_or_default() {
        if o.name.value.eq_ignore_ascii_case("analyze") {
            let (on, literal) = option_enabled(o.arg.as_ref());
            analyze |= on;
            cacheable &= !literal;
        }
    }
    let mut part = if analyze {
        let inner = classify_ast(inner, f);
        if inner.access.is_read() {
            // It runs the statement: a node-local one errs on a replica
            // (`pg_current_wal_lsn()`) or measures that node.
            Part {
                access: inner.access,
                functions: inner.functions,
                ..Part::read()
            }
        } else {
            Part::write(WriteReason::ExplainAnalyzeWrite)
        }
    } else {
        Part::read()
    };
    part.cacheable = cacheable;
    part
}

/// Whether a boolean option argument is on, and whether it was a literal.
fn option_enabled(arg: Option<&Expr>) -> (bool, bool) {
    let Some(arg) = arg else { return (true, false) };
    let text = arg.to_string().trim_matches('\'').to_ascii_lowercase();
    let literal = matches!(arg, Expr::Value(_));
    let off = matches!(text.as_str(), "false" | "off" | "0" | "no");
    (!off, literal)
}

fn tx_read_only(modes: &[TransactionMode]) -> bool {
    let read_only = modes.iter().any(|m| {
        matches!(
            m,
            TransactionMode::AccessMode(TransactionAccessMode::ReadOnly)
        )
    });
    let serializable = modes.iter().any(|m| {
        matches!(
            m,
            TransactionMode::IsolationLevel(TransactionIsolationLevel::Serializable)
        )
    });
    read_only && !serializable
}

fn set_statement(set: &Set) -> Part {
    let set_name = |name: &str, local: bool| SessionEffect::Set {
        name: name.to_owned(),
        local,
    };
    let effect = match set {
        Set::SingleAssignment {
            scope, variable, ..
        } => SessionEffect::Set {
            name: guc_name(variable),
            local: is_local(scope.as_ref()),
        },
        Set::MultipleAssignments { assignments } => many(
            assignments
                .iter()
                .map(|a| SessionEffect::Set {
                    name: guc_name(&a.name),
                    local: is_local(a.scope.as_ref()),
                })
                .collect(),
        ),
        Set::ParenthesizedAssignments { variables, .. } => many(
            variables
                .iter()
                .map(|v| SessionEffect::Set {
                    name: guc_name(v),
                    local: false,
                })
                .collect(),
        ),
        Set::SetSessionAuthorization(_) => set_name("session_authorization", false),
        Set::SetRole {
            context_modifier, ..
        } => set_name("role", is_local(context_modifier.as_ref())),
        Set::SetTimeZone { local, .. } => set_name("timezone", *local),
        Set::SetNames { .. } | Set::SetNamesDefault {} => set_name("client_encoding", false),
        Set::SetTransaction {
            modes,
            session: true,
            ..
        } if !modes.is_empty() => set_name("default_transaction_characteristics", false),
        Set::SetTransaction {
            modes,
            session: false,
            ..
        } => {
            return if tx_read_only(modes) {
                Part::read().tx(TxEffect::SetTransactionReadOnly)
            } else {
                Part::write(WriteReason::TransactionControl)
            };
        }
        _ => return Part::write(WriteReason::Other),
    };
    Part::read().session(effect)
}

fn is_local(scope: Option<&sqlparser::ast::ContextModifier>) -> bool {
    matches!(scope, Some(sqlparser::ast::ContextModifier::Local))
}

/// GUC names are case-insensitive: lowercase, quotes dropped.
fn guc_name(name: &ObjectName) -> String {
    name.to_string().replace('"', "").to_lowercase()
}

/// An identifier as PostgreSQL folds it: unquoted lowercased, quoted verbatim.
fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}
