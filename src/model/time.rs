use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A UTC instant with millisecond precision, emitted as `2025-10-21T09:15:02.481Z` (docs/protocol.md §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self(ms)
    }

    /// From Unix milliseconds.
    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Unix milliseconds.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Unix seconds (floor).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Parses any RFC 3339 date-time; a value without an offset is read as UTC.
    pub fn parse(s: &str) -> Option<Self> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
            let with_z = format!("{s}Z");
            OffsetDateTime::parse(&with_z, &Rfc3339).ok()
        })?;
        Some(Self((dt.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(dt) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.millisecond()
            ),
            Err(_) => f.write_str("1970-01-01T00:00:00.000Z"),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        let t = Timestamp::parse("2025-10-21T09:15:02.481Z");
        assert_eq!(
            t.map(|t| t.to_string()).as_deref(),
            Some("2025-10-21T09:15:02.481Z")
        );
        let t = Timestamp::parse("2025-10-21T12:15:02+03:00");
        assert_eq!(
            t.map(|t| t.to_string()).as_deref(),
            Some("2025-10-21T09:15:02.000Z")
        );
        let naive = Timestamp::parse("2025-10-21T09:15:02");
        assert_eq!(
            naive.map(|t| t.to_string()).as_deref(),
            Some("2025-10-21T09:15:02.000Z")
        );
    }
}
