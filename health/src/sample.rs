//! What one probe of a node saw, decoded from the probe query's row.

use crate::lsn::parse_lsn;
use crate::topology::NodeRole;
use crate::wal_layout::replay_position;

/// Everything the monitor learns from one node in one round trip. Every
/// column comes from the same statement, so they describe one instant.
///
/// The timeline is read where it is current: on a primary from the name of
/// the WAL file it writes (`pg_control_checkpoint()` stays on the old
/// timeline after a promotion until the next checkpoint), on a replica from
/// the WAL receiver.
pub(crate) const PROBE_SQL: &str = "\
WITH r AS (SELECT pg_is_in_recovery() AS recovery) \
SELECT r.recovery, \
       CASE WHEN NOT r.recovery THEN pg_current_wal_lsn()::text END, \
       CASE WHEN NOT r.recovery THEN pg_walfile_name(pg_current_wal_lsn()) END, \
       pg_last_wal_receive_lsn()::text, \
       pg_last_wal_replay_lsn()::text, \
       w.status, w.received_tli, w.sender_host, w.sender_port, \
       CASE WHEN NOT r.recovery THEN \
         (SELECT array_agg(coalesce(application_name, '')) FROM pg_stat_replication \
          WHERE sync_state IN ('sync', 'quorum')) END, \
       current_setting('wal_block_size')::int, \
       pg_size_bytes(current_setting('wal_segment_size')) \
FROM r LEFT JOIN pg_stat_wal_receiver w ON r.recovery";

/// A node that answered, as it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSample {
    /// Not in recovery.
    Primary {
        timeline: u32,
        /// `pg_current_wal_lsn()`: what replicas can have at most.
        wal_lsn: u64,
        /// `application_name`s of the standbys whose `sync_state` is
        /// `sync` or `quorum` (empty without `pg_read_all_stats`).
        sync_standbys: Vec<String>,
    },
    /// In recovery.
    Replica(ReplicaSample),
}

impl NodeSample {
    pub fn role(&self) -> NodeRole {
        match self {
            NodeSample::Primary { .. } => NodeRole::Primary,
            NodeSample::Replica(_) => NodeRole::Replica,
        }
    }
}

/// A replica's positions and WAL receiver.
///
/// The receiver columns are NULL when no WAL receiver runs (its upstream
/// is unreachable, or it replays from an archive) and also when the
/// monitor's user lacks `pg_read_all_stats` (or `pg_monitor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSample {
    /// `pg_last_wal_receive_lsn()`: received and flushed, not yet visible.
    pub receive_lsn: Option<u64>,
    /// `pg_last_wal_replay_lsn()`: what queries on the replica see; at a
    /// WAL page boundary, past that page's header (`WalLayout`).
    pub replay_lsn: Option<u64>,
    /// `pg_stat_wal_receiver.received_tli`.
    pub timeline: Option<u32>,
    /// The receiver's status is `streaming`.
    pub streaming: bool,
    /// `host:port` the receiver is connected to.
    pub upstream: Option<String>,
}

/// The probe row's columns, in [`PROBE_SQL`]'s order.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProbeRow {
    pub(crate) recovery: bool,
    pub(crate) wal_lsn: Option<String>,
    pub(crate) walfile: Option<String>,
    pub(crate) receive_lsn: Option<String>,
    pub(crate) replay_lsn: Option<String>,
    pub(crate) receiver_status: Option<String>,
    pub(crate) received_tli: Option<i32>,
    pub(crate) sender_host: Option<String>,
    pub(crate) sender_port: Option<i32>,
    pub(crate) sync_standbys: Option<Vec<String>>,
    pub(crate) wal_block_size: Option<i32>,
    pub(crate) wal_segment_size: Option<i64>,
}

/// A column whose value makes no sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadColumn {
    pub(crate) column: &'static str,
    pub(crate) value: String,
}

impl ProbeRow {
    pub(crate) fn decode(self) -> Result<NodeSample, BadColumn> {
        if !self.recovery {
            let wal_lsn = lsn("pg_current_wal_lsn", self.wal_lsn.as_deref())?
                .ok_or_else(|| bad("pg_current_wal_lsn", "NULL"))?;
            let walfile = self.walfile.ok_or_else(|| bad("pg_walfile_name", "NULL"))?;
            let timeline =
                timeline_of_walfile(&walfile).ok_or_else(|| bad("pg_walfile_name", &walfile))?;
            return Ok(NodeSample::Primary {
                timeline,
                wal_lsn,
                sync_standbys: self.sync_standbys.unwrap_or_default(),
            });
        }
        let timeline = match self.received_tli {
            None => None,
            Some(tli) => Some(
                u32::try_from(tli)
                    .ok()
                    .filter(|&t| t > 0)
                    .ok_or_else(|| bad("received_tli", &tli.to_string()))?,
            ),
        };
        let upstream = match (self.sender_host, self.sender_port) {
            (Some(host), Some(port)) => {
                let port =
                    u16::try_from(port).map_err(|_| bad("sender_port", &port.to_string()))?;
                Some(host_port(&host, port))
            }
            (Some(host), None) => Some(host),
            (None, _) => None,
        };
        Ok(NodeSample::Replica(ReplicaSample {
            receive_lsn: lsn("pg_last_wal_receive_lsn", self.receive_lsn.as_deref())?,
            replay_lsn: lsn("pg_last_wal_replay_lsn", self.replay_lsn.as_deref())?.map(
                |replayed| {
                    let page = self.wal_block_size.map(i64::from);
                    replay_position(replayed, page, self.wal_segment_size)
                },
            ),
            timeline,
            streaming: self.receiver_status.as_deref() == Some("streaming"),
            upstream,
        }))
    }
}

fn lsn(column: &'static str, text: Option<&str>) -> Result<Option<u64>, BadColumn> {
    text.map(|t| parse_lsn(t).ok_or_else(|| bad(column, t)))
        .transpose()
}

fn bad(column: &'static str, value: &str) -> BadColumn {
    BadColumn {
        column,
        value: value.to_owned(),
    }
}

/// WAL file names are `TTTTTTTTXXXXXXXXYYYYYYYY`: the first eight hex
/// digits are the timeline.
fn timeline_of_walfile(name: &str) -> Option<u32> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(name.get(..8)?, 16)
        .ok()
        .filter(|&t| t > 0)
}

/// `host:port`, bracketing IPv6 addresses.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary_row(lsn: &str, walfile: &str) -> ProbeRow {
        ProbeRow {
            recovery: false,
            wal_lsn: Some(lsn.into()),
            walfile: Some(walfile.into()),
            ..ProbeRow::default()
        }
    }

    #[test]
    fn a_primary_reports_its_position_and_timeline() {
        let row = primary_row("0/3000060", "000000020000000000000003");
        assert_eq!(
            row.decode(),
            Ok(NodeSample::Primary {
                timeline: 2,
                wal_lsn: 0x300_0060,
                sync_standbys: Vec::new(),
            })
        );
    }

    #[test]
    fn a_primary_with_nonsense_is_an_error_not_a_guess() {
        let cases = [
            (
                primary_row("x/1", "000000010000000000000003"),
                "pg_current_wal_lsn",
            ),
            (primary_row("0/1", "0000000100000000"), "pg_walfile_name"),
            (
                primary_row("0/1", "000000000000000000000003"),
                "pg_walfile_name",
            ),
            (
                primary_row("0/1", "0000000G0000000000000003"),
                "pg_walfile_name",
            ),
            (
                ProbeRow {
                    wal_lsn: None,
                    ..primary_row("0/1", "000000010000000000000003")
                },
                "pg_current_wal_lsn",
            ),
        ];
        for (row, column) in cases {
            assert_eq!(row.decode().map_err(|e| e.column), Err(column));
        }
    }

    #[test]
    fn a_streaming_replica_reports_positions_timeline_and_upstream() {
        let row = ProbeRow {
            recovery: true,
            receive_lsn: Some("0/5000000".into()),
            replay_lsn: Some("0/4FFFFF0".into()),
            receiver_status: Some("streaming".into()),
            received_tli: Some(1),
            sender_host: Some("127.0.0.1".into()),
            sender_port: Some(5432),
            ..ProbeRow::default()
        };
        assert_eq!(
            row.decode(),
            Ok(NodeSample::Replica(ReplicaSample {
                receive_lsn: Some(0x500_0000),
                replay_lsn: Some(0x4FF_FFF0),
                timeline: Some(1),
                streaming: true,
                upstream: Some("127.0.0.1:5432".into()),
            }))
        );
    }

    #[test]
    fn a_replay_position_at_a_page_boundary_is_past_the_pages_header() {
        let replica = |replayed: &str, page, segment| ProbeRow {
            recovery: true,
            replay_lsn: Some(replayed.into()),
            wal_block_size: page,
            wal_segment_size: segment,
            ..ProbeRow::default()
        };
        let replayed = |row: ProbeRow| match row.decode() {
            Ok(NodeSample::Replica(r)) => r.replay_lsn,
            other => panic!("a replica: {other:?}"),
        };
        let defaults = (Some(8192), Some(16 << 20));
        assert_eq!(
            replayed(replica("0/4E36000", defaults.0, defaults.1)),
            Some(0x4E3_6018)
        );
        assert_eq!(
            replayed(replica("0/4E35800", defaults.0, defaults.1)),
            Some(0x4E3_5800)
        );
        // Sizes unknown or senseless: the position as reported.
        assert_eq!(replayed(replica("0/4E36000", None, None)), Some(0x4E3_6000));
        assert_eq!(
            replayed(replica("0/4E36000", Some(8000), defaults.1)),
            Some(0x4E3_6000)
        );
    }

    #[test]
    fn a_replica_without_a_receiver_is_not_streaming() {
        let row = ProbeRow {
            recovery: true,
            replay_lsn: Some("0/4000000".into()),
            ..ProbeRow::default()
        };
        let Ok(NodeSample::Replica(r)) = row.decode() else {
            panic!("a replica");
        };
        assert!(!r.streaming);
        assert_eq!((r.timeline, r.upstream, r.receive_lsn), (None, None, None));
    }

    #[test]
    fn a_replica_with_nonsense_is_an_error() {
        let base = ProbeRow {
            recovery: true,
            ..ProbeRow::default()
        };
        let cases = [
            (
                ProbeRow {
                    replay_lsn: Some("zz".into()),
                    ..base.clone()
                },
                "pg_last_wal_replay_lsn",
            ),
            (
                ProbeRow {
                    received_tli: Some(-1),
                    ..base.clone()
                },
                "received_tli",
            ),
            (
                ProbeRow {
                    sender_host: Some("h".into()),
                    sender_port: Some(70000),
                    ..base
                },
                "sender_port",
            ),
        ];
        for (row, column) in cases {
            assert_eq!(row.decode().map_err(|e| e.column), Err(column));
        }
    }

    #[test]
    fn ipv6_upstreams_are_bracketed() {
        assert_eq!(host_port("::1", 5433), "[::1]:5433");
    }
}
