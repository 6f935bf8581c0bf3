//! When a job runs: a cron expression (five fields, or six with seconds first) read in a
//! time zone, and the ticks it gives.

use chrono::{DateTime, SubsecRound as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed cron expression and the zone its fields are read in.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    /// Parses `expression` (seconds optional: `0 * * * *` runs hourly, `*/10 * * * * *`
    /// every ten seconds) for `zone`; refuses one that never matches, so a job cannot be
    /// registered that would silently never run. The reason is the parser's words.
    pub(super) fn parse(expression: &str, zone: Tz) -> Result<Self, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expression)
            .map_err(|e| e.to_string())?;
        let schedule = Self { cron, zone };
        schedule
            .next_after(Utc::now())
            .map_err(|e| format!("it never matches a time ({e})"))?;
        Ok(schedule)
    }

    /// The first tick strictly after `after`, always a whole second.
    pub(super) fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        // croner keeps the fraction of a second it is given: without this, `* * * * * *`
        // after 12:00:00.5 would answer 12:00:01.5, and replicas would key different rows.
        let from = after.trunc_subsecs(0).with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&from, false)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_second_gives_the_next_whole_second() {
        let s = Schedule::parse("*/1 * * * * *", Tz::UTC).expect("parses");
        assert_eq!(
            s.next_after(at("2026-03-01T12:00:00.500Z")),
            Ok(at("2026-03-01T12:00:01Z"))
        );
        assert_eq!(
            s.next_after(at("2026-03-01T12:00:01Z")),
            Ok(at("2026-03-01T12:00:02Z"))
        );
    }

    #[test]
    fn five_fields_mean_minutes_at_second_zero() {
        let s = Schedule::parse("*/15 * * * *", Tz::UTC).expect("parses");
        assert_eq!(
            s.next_after(at("2026-03-01T12:07:30Z")),
            Ok(at("2026-03-01T12:15:00Z"))
        );
    }

    #[test]
    fn fields_are_read_in_the_zone() {
        let s = Schedule::parse("0 0 9 * * *", Tz::Europe__Paris).expect("parses");
        // 09:00 in Paris is 08:00 UTC in winter.
        assert_eq!(
            s.next_after(
                Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0)
                    .single()
                    .expect("a time")
            ),
            Ok(at("2026-01-10T08:00:00Z"))
        );
    }

    #[test]
    fn bad_and_impossible_expressions_are_refused() {
        for bad in ["", "* * *", "61 * * * * *", "every minute"] {
            assert!(Schedule::parse(bad, Tz::UTC).is_err(), "{bad:?}");
        }
        let never = Schedule::parse("0 0 0 30 2 *", Tz::UTC).expect_err("30 February");
        assert!(never.contains("never matches"), "{never}");
    }
}
