//! Which change-log entries this replica has handled, tolerant of ids that commit out of
//! order.
//!
//! Ids come from a sequence (PostgreSQL) or an auto-increment (MySQL, SQLite): two replicas
//! writing at once can commit id 6 before id 5, and a reader that moved straight to 6
//! would never see 5. So the cursor keeps a floor (every id up to it is handled) and the
//! ids above it handled so far; a hole at the floor is waited for, and given up only after
//! [`GAP_WAIT`] (an insert that was rolled back leaves a hole forever).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long a hole in the ids is waited for before it is taken as an insert that never
/// committed. Far longer than the one-statement insert that takes an id.
pub const GAP_WAIT: Duration = Duration::from_secs(5);

/// The handled ids: all up to `floor`, and `above` it.
#[derive(Debug)]
pub struct Cursor {
    floor: i64,
    above: BTreeSet<i64>,
    /// When the hole just above the floor was first seen.
    gap_since: Option<Instant>,
}

impl Cursor {
    /// A cursor that takes every id up to `floor` as handled.
    pub fn new(floor: i64) -> Self {
        Self {
            floor,
            above: BTreeSet::new(),
            gap_since: None,
        }
    }

    /// Every id up to this one is handled: the next read starts after it.
    pub fn floor(&self) -> i64 {
        self.floor
    }

    /// Marks `id` handled; `false` when it already was.
    pub fn take(&mut self, id: i64) -> bool {
        id > self.floor && self.above.insert(id)
    }

    /// Raises the floor over the ids handled without a hole, and over a hole older than
    /// [`GAP_WAIT`] at `now`.
    pub fn settle(&mut self, now: Instant) {
        loop {
            while self.above.remove(&(self.floor + 1)) {
                self.floor += 1;
                self.gap_since = None;
            }
            let Some(&next) = self.above.first() else {
                self.gap_since = None;
                return;
            };
            let since = *self.gap_since.get_or_insert(now);
            if now.duration_since(since) < GAP_WAIT {
                return;
            }
            // The hole below `next` never filled: step over it.
            self.floor = next - 1;
            self.gap_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_order_raise_the_floor() {
        let mut c = Cursor::new(4);
        assert!(c.take(5));
        assert!(c.take(6));
        c.settle(Instant::now());
        assert_eq!(c.floor(), 6);
        assert!(!c.take(6), "an id at or below the floor is handled");
    }

    #[test]
    fn a_hole_holds_the_floor_until_it_fills() {
        let start = Instant::now();
        let mut c = Cursor::new(4);
        assert!(c.take(6));
        c.settle(start);
        assert_eq!(c.floor(), 4, "5 may still commit");
        assert!(!c.take(6), "6 is not handled twice while the floor waits");
        assert!(c.take(5));
        c.settle(start + Duration::from_secs(1));
        assert_eq!(c.floor(), 6);
    }

    #[test]
    fn a_hole_that_never_fills_is_stepped_over() {
        let start = Instant::now();
        let mut c = Cursor::new(4);
        c.take(6);
        c.take(9);
        c.settle(start);
        c.settle(start + GAP_WAIT - Duration::from_millis(1));
        assert_eq!(c.floor(), 4);
        c.settle(start + GAP_WAIT);
        assert_eq!(c.floor(), 6, "5 given up; 7 and 8 are waited for afresh");
        c.settle(start + GAP_WAIT * 2);
        assert_eq!(c.floor(), 9);
    }
}
