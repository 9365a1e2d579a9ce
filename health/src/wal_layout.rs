//! Where WAL pages begin, and why a replica's position is moved past a
//! page header.
//!
//! A record that ends exactly where a WAL page ends leaves two names for
//! the same place: the page boundary, which a replica reports as the end
//! of what it replayed (`pg_last_wal_replay_lsn()`), and the first byte
//! after the next page's header, which `pg_current_wal_insert_lsn()` (a
//! session's position) reports. No record lies between them. Compared as
//! numbers, the replica would look behind the write it already has, until
//! the primary writes something more, which an idle one may not do for
//! minutes. The monitor and the proxy therefore take a replica's replay
//! position at a boundary as the position after that page's header.

/// A page header that is not the first of its segment
/// (`SizeOfXLogShortPHD`, 64-bit builds).
const SHORT_PAGE_HEADER: u64 = 24;
/// The header of a segment's first page (`SizeOfXLogLongPHD`).
const LONG_PAGE_HEADER: u64 = 40;

/// A cluster's WAL page and segment sizes (`wal_block_size`,
/// `wal_segment_size`), fixed for its life and the same on its replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalLayout {
    page: u64,
    segment: u64,
}

impl WalLayout {
    /// `None` unless both are powers of two and a page fits a segment
    /// (what PostgreSQL allows): a position is never moved on a guess.
    pub fn new(page: i64, segment: i64) -> Option<WalLayout> {
        let page = u64::try_from(page).ok()?;
        let segment = u64::try_from(segment).ok()?;
        let sane = page.is_power_of_two()
            && segment.is_power_of_two()
            && page > LONG_PAGE_HEADER
            && page <= segment;
        sane.then_some(WalLayout { page, segment })
    }

    /// A replica's replay position as a session's position names the same
    /// place: at a page boundary, past that page's header.
    pub fn past_page_header(self, replayed: u64) -> u64 {
        if replayed == 0 || !replayed.is_multiple_of(self.page) {
            replayed
        } else if replayed.is_multiple_of(self.segment) {
            replayed + LONG_PAGE_HEADER
        } else {
            replayed + SHORT_PAGE_HEADER
        }
    }
}

/// `replayed` as a session's position names the same place, with the page
/// and segment sizes the server reported alongside it; as reported when
/// either is missing or senseless.
pub fn replay_position(replayed: u64, page: Option<i64>, segment: Option<i64>) -> u64 {
    let layout = page
        .zip(segment)
        .and_then(|(page, segment)| WalLayout::new(page, segment));
    layout.map_or(replayed, |l| l.past_page_header(replayed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 8192;
    const SEGMENT: u64 = 16 << 20;

    fn layout() -> WalLayout {
        WalLayout::new(8192, 16 << 20).expect("PostgreSQL's defaults")
    }

    #[test]
    fn a_boundary_moves_past_its_pages_header() {
        let l = layout();
        // 0/4E36000 replayed; the insert position was 0/4E36018.
        assert_eq!(l.past_page_header(0x4E3_6000), 0x4E3_6018);
        assert_eq!(l.past_page_header(3 * SEGMENT), 3 * SEGMENT + 40);
        assert_eq!(
            l.past_page_header(3 * SEGMENT + PAGE),
            3 * SEGMENT + PAGE + 24
        );
    }

    #[test]
    fn other_positions_stay() {
        let l = layout();
        for lsn in [
            0,
            1,
            0x4E3_5800,
            0x4E3_6018,
            PAGE - 8,
            PAGE + 40,
            SEGMENT + 8,
        ] {
            assert_eq!(l.past_page_header(lsn), lsn, "{lsn:X}");
        }
    }

    #[test]
    fn a_larger_page_has_fewer_boundaries() {
        let l = WalLayout::new(32768, 64 << 20).expect("a valid build");
        assert_eq!(
            l.past_page_header(PAGE),
            PAGE,
            "not a boundary of a 32 kB page"
        );
        assert_eq!(l.past_page_header(4 * PAGE), 4 * PAGE + 24);
    }

    #[test]
    fn nonsense_sizes_move_nothing() {
        for (page, segment) in [
            (0, 0),
            (8192, 0),
            (-8192, 16 << 20),
            (8000, 16 << 20),
            (32, 1024),
            (1 << 21, 1 << 20),
        ] {
            assert_eq!(WalLayout::new(page, segment), None, "{page} {segment}");
        }
    }
}
