//! Held frames pgrelay asks the backend about before judging them again:
//! the session's LSN after a write, and the volatility of the functions a
//! statement calls.

use bytes::BytesMut;
use pgrelay_router::Volatility;
use tracing::debug;

use crate::error::ProxyError;
use crate::wire;

use super::super::core::{Session, Step};
use super::super::steer::{ClusterAsk, HeadFrame};
use super::super::{exchange, functions};

impl Session<'_> {
    /// Asks the primary for the WAL position of the session's last write
    /// (`Pending::CaptureLsn`), then judges the frame again.
    pub(super) async fn on_capture_lsn(&mut self) -> Result<Step, ProxyError> {
        self.capture_position().await?;
        self.up.resume();
        Ok(Step::Continue)
    }

    /// A write's position that could not be asked behind it, asked while
    /// the client is idle: every session's reads (global scope) see the
    /// write from now on, and the client gets its token on its own.
    pub(in crate::session) async fn position_while_idle(&mut self) -> Result<(), ProxyError> {
        let before = self.route.capture.last_lsn;
        self.capture_position().await?;
        if self.route.capture.last_lsn > before {
            self.announce_position().await?;
        }
        Ok(())
    }

    /// Asks the primary, on the session's connection there, for the WAL
    /// position of the session's last write, which could not be asked
    /// right behind it (a COPY in a batch, a batch read partway): the
    /// session's position and every session's (global scope) rise to it.
    pub(in crate::session) async fn capture_position(&mut self) -> Result<(), ProxyError> {
        let Some(leases) = self.held.as_mut() else {
            return Ok(());
        };
        self.route.lsn_ask.asked_before_read();
        let primary = self.ctx.shared.topology.primary();
        if let Some(lease) = primary.and_then(|p| leases.on_node_mut(p)) {
            let mut request = BytesMut::new();
            wire::fe::query(&mut request, b"SELECT pg_current_wal_insert_lsn()::text");
            let answer = exchange::exchange(lease.conn_mut(), &request).await?;
            let lsn = answer
                .rows
                .first()
                .and_then(|r| r.first().cloned().flatten())
                .and_then(|text| pgrelay_health::parse_lsn(&text));
            if let Some(lsn) = lsn {
                let capture = &mut self.route.capture;
                capture.last_lsn = capture.last_lsn.max(lsn);
                // A COPY or unparsed write, acknowledged before its position
                // was known: other sessions' reads see it from now on.
                let acknowledged = self.ctx.router.acknowledged_lsn();
                acknowledged.fetch_max(lsn, std::sync::atomic::Ordering::AcqRel);
            }
        }
        Ok(())
    }

    /// Learns the primary's position as of `since` for a read in `cluster`
    /// scope (`Pending::ClusterPosition`), then judges the frame again.
    pub(super) async fn on_cluster_position(
        &mut self,
        since: std::time::Instant,
    ) -> Result<Step, ProxyError> {
        let clock = &self.ctx.router.cluster_clock;
        match clock.position_since(since, &self.ctx.shared).await {
            Ok(lsn) => {
                self.route.cluster_lsn = lsn;
                self.route.cluster = ClusterAsk::Learned;
            }
            Err(e) => {
                debug!(error = %e, "reading on the primary");
                self.route.cluster = ClusterAsk::Unknown;
            }
        }
        self.up.resume();
        Ok(Step::Continue)
    }

    /// Looks up in `pg_proc` the functions the held statement calls
    /// (`Pending::Resolve`), then judges it again with what was learned.
    pub(super) async fn on_resolve(&mut self, names: Vec<String>) -> Result<Step, ProxyError> {
        let Some(leases) = self.held.as_mut() else {
            return Ok(Step::Continue);
        };
        let conn = leases.current_mut().conn_mut();
        let request = functions::lookup_request(&names);
        let answer = exchange::exchange(conn, &request).await?;
        let learned = if answer.error.is_none() {
            functions::volatilities(&names, &answer.rows)
        } else {
            // A catalog the session cannot read: the primary it is.
            names
                .into_iter()
                .map(|n| (n, Volatility::Volatile))
                .collect()
        };
        let router = &self.ctx.router;
        router.learn_volatility(&self.route.database, &learned);
        // The frame is inspected again, now with what was learned.
        self.route.head = HeadFrame::LookedUp;
        self.up.resume();
        Ok(Step::Continue)
    }
}
