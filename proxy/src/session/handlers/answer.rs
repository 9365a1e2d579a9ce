//! Held frames pgrelay answers itself: pgrelay commands, a `DEALLOCATE`
//! it dealt with, and errors sent in place of a statement.

use bytes::BytesMut;
use pgrelay_router::PgrelayCommand;

use crate::error::ProxyError;
use crate::wire::be::{self, Severity};

use super::super::SessionContext;
use super::super::core::{Session, Step};
use super::super::local;
use super::super::steer::{consistency_from_config, scope_from_config};
use super::super::tracker::TxStatus;

impl Session<'_> {
    /// Answers the held Query with CommandComplete `tag`
    /// (`Pending::Complete`).
    pub(super) async fn on_complete(&mut self, tag: &str) -> Result<Step, ProxyError> {
        let mut out = BytesMut::new();
        be::command_complete(&mut out, tag);
        be::ready_for_query(&mut out, self.tracker.status().as_byte());
        self.send(&out).await?;
        self.up.skip_head();
        if let Some(note) = &mut self.route.trace {
            note.abandon();
        }
        Ok(Step::Continue)
    }

    /// Carries out the pgrelay command of the held Query and answers it
    /// (`Pending::Local`).
    pub(super) async fn on_local(&mut self, command: &PgrelayCommand) -> Result<Step, ProxyError> {
        let mut out = BytesMut::new();
        let route = &mut self.route;
        let reply = with_defaults(self.ctx, |defaults| {
            local::execute(command, route, defaults)
        });
        local::write_simple(&reply, &mut out);
        be::ready_for_query(&mut out, self.tracker.status().as_byte());
        self.send(&out).await?;
        self.up.skip_head();
        if let Some(note) = &mut self.route.trace {
            note.abandon();
        }
        Ok(Step::Continue)
    }

    /// Answers the held extended-protocol batch of `len` bytes that uses a
    /// pgrelay command (`Pending::LocalBatch`).
    pub(super) async fn on_local_batch(
        &mut self,
        command: Option<&PgrelayCommand>,
        len: usize,
    ) -> Result<Step, ProxyError> {
        let status = self.tracker.status().as_byte();
        let (held, route) = (self.up.held(), &mut self.route);
        let out = with_defaults(self.ctx, |defaults| {
            local::answer_batch(held, command, route, defaults, status)
        });
        self.send(&out).await?;
        self.up.skip(len);
        if let Some(note) = &mut self.route.trace {
            note.abandon();
        }
        Ok(Step::Continue)
    }

    /// Answers the held statement with an error (`Pending::Refuse`);
    /// `aborts`: the client's transaction is failed from now on.
    pub(super) async fn on_refuse(
        &mut self,
        error: (&str, &str),
        batch_len: Option<usize>,
        aborts: bool,
    ) -> Result<Step, ProxyError> {
        if aborts {
            self.tracker.set_status(TxStatus::Failed);
        }
        self.refuse(error, batch_len).await?;
        Ok(Step::Continue)
    }

    /// Answers the held Query (or the held batch of `batch_len` bytes) with
    /// `error` and ReadyForQuery, and skips it.
    pub(super) async fn refuse(
        &mut self,
        (sqlstate, message): (&str, &str),
        batch_len: Option<usize>,
    ) -> Result<(), ProxyError> {
        let mut out = BytesMut::new();
        be::error_response(&mut out, Severity::Error, sqlstate, message);
        be::ready_for_query(&mut out, self.tracker.status().as_byte());
        self.send(&out).await?;
        match batch_len {
            Some(len) => self.up.skip(len),
            None => self.up.skip_head(),
        }
        if let Some(note) = &mut self.route.trace {
            note.abandon();
        }
        Ok(())
    }

    /// Sends pgrelay's own answer to the client.
    /// The session's position, as ParameterStatus `pgrelay.last_lsn`, sent
    /// on its own: a client between requests takes ParameterStatus
    /// messages whenever they come (libpq keeps them).
    pub(in crate::session) async fn announce_position(&mut self) -> Result<(), ProxyError> {
        let mut out = BytesMut::new();
        let lsn = pgrelay_health::format_lsn(self.route.capture.last_lsn);
        be::parameter_status(&mut out, super::super::forward::LAST_LSN_PARAMETER, &lsn);
        self.send(&out).await
    }

    pub(super) async fn send(&mut self, out: &[u8]) -> Result<(), ProxyError> {
        self.client
            .send_all(out)
            .await
            .map_err(ProxyError::ClientIo)
    }
}

/// Runs `f` with the session's configured defaults, for `RESET` and
/// `SHOW` of pgrelay settings.
fn with_defaults<R>(ctx: &SessionContext, f: impl FnOnce(&local::Defaults<'_>) -> R) -> R {
    let config = ctx.shared.config();
    let names = |i: usize| {
        config
            .nodes
            .get(i)
            .map(|n| n.name.to_string())
            .unwrap_or_default()
    };
    let defaults = local::Defaults {
        consistency: consistency_from_config(config.routing.consistency),
        scope: scope_from_config(config.routing.scope),
        max_lag: config.routing.max_lag,
        node_name: &names,
    };
    f(&defaults)
}
