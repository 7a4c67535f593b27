use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }
    pub fn millis(self) -> i64 {
        self.0
    }
}

/// A restaurant's trading day, counted in days since the epoch. It starts at
/// [`BusinessDay::STARTS_AT_HOUR`] local time, so the late shift after midnight still belongs
/// to the evening it started in and its tickets keep counting up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BusinessDay(pub i64);

impl BusinessDay {
    pub const STARTS_AT_HOUR: i64 = 4;

    pub fn of(at: Timestamp, utc_offset_minutes: i32) -> Self {
        const MS_PER_DAY: i64 = 86_400_000;
        let local = at.0 + i64::from(utc_offset_minutes) * 60_000;
        Self((local - Self::STARTS_AT_HOUR * 3_600_000).div_euclid(MS_PER_DAY))
    }
}

/// The next ticket number: 1 on the first order of a business day, then one more each order.
pub fn next_ticket(last_day: BusinessDay, last_number: i64, today: BusinessDay) -> i64 {
    if today == last_day {
        last_number + 1
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn business_day_turns_at_four_local() {
        let midnight_utc = Timestamp(20_000 * 24 * HOUR);
        let day = BusinessDay::of(midnight_utc, 0);
        assert_eq!(
            BusinessDay::of(Timestamp(midnight_utc.0 + 3 * HOUR), 0),
            day
        );
        assert_eq!(
            BusinessDay::of(Timestamp(midnight_utc.0 + 4 * HOUR), 0).0,
            day.0 + 1
        );
        // Tokyo is UTC+9: 19:00 UTC is 04:00 the next morning there.
        let tokyo = 9 * 60;
        let before = BusinessDay::of(Timestamp(midnight_utc.0 + 18 * HOUR), tokyo);
        let after = BusinessDay::of(Timestamp(midnight_utc.0 + 19 * HOUR), tokyo);
        assert_eq!(after.0, before.0 + 1);
    }

    #[test]
    fn tickets_restart_at_one_each_day() {
        assert_eq!(next_ticket(BusinessDay(10), 41, BusinessDay(10)), 42);
        assert_eq!(next_ticket(BusinessDay(10), 41, BusinessDay(11)), 1);
        assert_eq!(next_ticket(BusinessDay(0), 0, BusinessDay(11)), 1);
    }
}
