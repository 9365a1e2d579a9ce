//! The coordination task: keeps the session with etcd, campaigns, reports,
//! reads, publishes the view, and serves the failover task's writes.

use std::time::SystemTime;

use pgrelay_health::coordination::{
    CoordinationEnds, CoordinationView, InstanceReport, StateWrite, WriteRefused, unix_ms,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::CoordError;
use crate::etcd::{Reading, Session};
use crate::settings::CoordSettings;

/// Starts the task on the current tokio runtime; it stops (and gives its
/// lease back) when `shutdown` is cancelled. Await the handle before the
/// runtime goes, so that the lease is given back.
pub fn spawn_coordination(
    settings: CoordSettings,
    ends: CoordinationEnds,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    info!(instance = %settings.instance_id, endpoints = ?settings.endpoints,
        prefix = %settings.prefix, "coordinating through etcd");
    let task = Coordination {
        settings,
        ends,
        session: None,
        lost_lease: None,
        renew_at: Instant::now(),
        report_due: true,
    };
    tokio::spawn(task.run(shutdown))
}

struct Coordination {
    settings: CoordSettings,
    ends: CoordinationEnds,
    /// `None`: out of touch; the next round opens a new one.
    session: Option<Session>,
    /// The lease of the session last lost, given back by the next one.
    lost_lease: Option<i64>,
    renew_at: Instant,
    /// What this instance sees changed, or its report needs refreshing.
    report_due: bool,
}

impl Coordination {
    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            match self.round().await {
                Ok(reading) => self.publish(reading),
                Err(e) => self.lost(&e),
            }
            let pause = self.settings.read_every();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
                // Another instance wrote (the leader's record, a report):
                // read it now rather than at the next round.
                _ = watch(&mut self.session) => {}
                changed = self.ends.sighting.changed() => {
                    // The failover task is gone when the sender is: stop.
                    if changed.is_err() { break; }
                    self.report_due = true;
                }
                write = self.ends.writes.recv() => match write {
                    Some(write) => self.write(write).await,
                    None => break,
                },
            }
        }
        if let Some(session) = self.session.take() {
            session.close().await;
        }
    }

    /// One round: renew the lease when due, report when due, read
    /// everything, campaign if nobody leads.
    async fn round(&mut self) -> Result<Reading, CoordError> {
        if self.session.is_none() {
            let mut session = Session::open(&self.settings).await?;
            if let Some(lease) = self.lost_lease.take() {
                session.revoke(lease).await;
            }
            self.session = Some(session);
            info!(instance = %self.settings.instance_id, "connected to etcd");
            self.renew_at = Instant::now();
            self.report_due = true;
        }
        let Some(session) = self.session.as_mut() else {
            return Err(CoordError::LeaseExpired);
        };
        if Instant::now() >= self.renew_at {
            session.keep_alive().await?;
            self.renew_at = Instant::now() + self.settings.renew_every();
            self.report_due = true;
        }
        if self.report_due {
            let sighting = self.ends.sighting.borrow_and_update().clone();
            let report = InstanceReport {
                id: self.settings.instance_id.clone(),
                at_ms: unix_ms(SystemTime::now()),
                primary: sighting.primary,
                sees_primary: sighting.sees_primary,
            };
            session.report(&report).await?;
            self.report_due = false;
        }
        let mut reading = session.read().await?;
        if reading.leader.is_none() {
            session.campaign().await?;
            reading = session.read().await?;
            if reading.leader.as_deref() == Some(self.settings.instance_id.as_str()) {
                info!(instance = %self.settings.instance_id, "leading failover");
            }
        }
        Ok(reading)
    }

    fn publish(&self, reading: Reading) {
        let Reading {
            leader,
            state,
            revision,
            mut instances,
        } = reading;
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        self.ends.view.send_if_modified(|view| {
            if !view.up {
                info!(instance = %view.me, ?leader, "coordination up");
            } else if view.leader != leader {
                info!(instance = %view.me, ?leader, "failover leader changed");
            }
            let next = CoordinationView {
                me: view.me.clone(),
                up: true,
                leader,
                instances,
                state,
                revision,
            };
            let changed = *view != next;
            *view = next;
            changed
        });
    }

    /// Out of touch: say so (once), drop the session, keep the picture.
    fn lost(&mut self, error: &CoordError) {
        if let Some(session) = self.session.take() {
            self.lost_lease = Some(session.lease());
        }
        self.ends.view.send_if_modified(|view| {
            if view.up {
                warn!(instance = %view.me, %error,
                    "coordination down: routing to the last known primary, promoting nothing");
            } else {
                debug!(%error, "etcd still out of reach");
            }
            let was = view.up;
            view.up = false;
            was
        });
    }

    async fn write(&mut self, write: StateWrite) {
        let StateWrite {
            expected,
            state,
            reply,
        } = write;
        let Some(session) = self.session.as_mut() else {
            let _ = reply.send(Err(WriteRefused::Unavailable("out of touch".into())));
            return;
        };
        let answer = match session.write_state(expected, &state).await {
            Ok(Some(revision)) => {
                // Seen at once by the writer's next step, not a read later.
                self.ends.view.send_modify(|view| {
                    view.state = Some(state);
                    view.revision = revision;
                });
                Ok(revision)
            }
            Ok(None) => Err(WriteRefused::Conflict),
            Err(e) => {
                let refused = WriteRefused::Unavailable(e.to_string());
                self.lost(&e);
                Err(refused)
            }
        };
        let _ = reply.send(answer);
    }
}

async fn watch(session: &mut Option<Session>) {
    match session {
        Some(session) => session.changed().await,
        None => std::future::pending().await,
    }
}
