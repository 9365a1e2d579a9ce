//! A replica's replay position, asked by the proxy itself (a read that
//! waits for a replica, or one sent to a replica the monitor has not yet
//! seen catch up), together with the WAL page and segment sizes that say
//! whether it sits at a page boundary (`pgrelay_health::WalLayout`).

use pgrelay_health::parse_lsn;

/// Every column as text, so that a simple-query answer reads it too.
pub const REPLAY_POSITION_SQL: &str = "SELECT pg_last_wal_replay_lsn()::text, \
     current_setting('wal_block_size'), \
     pg_size_bytes(current_setting('wal_segment_size'))::text";

/// The position [`REPLAY_POSITION_SQL`]'s columns give, as a session's
/// position names the same place; `None` if it is not one (NULL: the node
/// is not in recovery).
pub fn replay_position(
    lsn: Option<&str>,
    page: Option<&str>,
    segment: Option<&str>,
) -> Option<u64> {
    let replayed = parse_lsn(lsn?)?;
    let size = |text: Option<&str>| text?.parse::<i64>().ok();
    Some(pgrelay_health::replay_position(
        replayed,
        size(page),
        size(segment),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boundary_is_read_past_its_header() {
        let at = |lsn| replay_position(Some(lsn), Some("8192"), Some("16777216"));
        assert_eq!(at("0/4E36000"), Some(0x4E3_6018));
        assert_eq!(at("0/4E36008"), Some(0x4E3_6008));
        assert_eq!(at("nonsense"), None);
        assert_eq!(replay_position(None, Some("8192"), Some("16777216")), None);
        assert_eq!(
            replay_position(Some("0/4E36000"), None, Some("x")),
            Some(0x4E3_6000)
        );
    }
}
