//! Timestamps as the API shows them: RFC 3339 in UTC, milliseconds when they
//! are not zero (`2026-11-23T20:00:00Z`, `2026-11-23T20:00:00.250Z`).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Formats Unix milliseconds.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let Ok(t) = OffsetDateTime::from_unix_timestamp(secs) else {
        return String::new();
    };
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if millis == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{millis:03}Z")
    }
}

/// Serializes Unix milliseconds as [`format_ms`] does (a serde
/// `serialize_with` for API types that keep milliseconds inside).
pub fn serialize_ms<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_ms(*ms))
}

/// The first and the last millisecond RFC 3339 can write in UTC
/// (0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z).
const FIRST_MS: i64 = -62_167_219_200_000;
const LAST_MS: i64 = 253_402_300_799_999;

/// Parses an RFC 3339 timestamp (any offset) into Unix milliseconds; `None`
/// also for a time that UTC puts outside the years 0000-9999 (an offset can
/// push 9999-12-31T23:00:00-05:00 there), which could not be shown again.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
    let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()?;
    (FIRST_MS..=LAST_MS).contains(&ms).then_some(ms)
}

/// The earliest time the database stores (MySQL's DATETIME starts at year
/// 1000), in Unix milliseconds: 1000-01-01T00:00:00Z.
pub const MIN_STORABLE_MS: i64 = -30_610_224_000_000;
/// The latest: 9999-12-31T23:59:59.999Z.
pub const MAX_STORABLE_MS: i64 = 253_402_300_799_999;

/// The local clock in Unix milliseconds (only for display and token `iat`
/// checks; queue order and expiry use Redis's clock).
pub fn now_ms() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    (nanos / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_utc_with_optional_millis() {
        assert_eq!(format_ms(1_795_464_000_000), "2026-11-23T20:00:00Z");
        assert_eq!(format_ms(1_795_464_000_250), "2026-11-23T20:00:00.250Z");
    }

    #[test]
    fn the_storable_range_is_the_datetime_range() {
        assert_eq!(
            parse_rfc3339_ms("1000-01-01T00:00:00Z"),
            Some(MIN_STORABLE_MS)
        );
        assert_eq!(
            parse_rfc3339_ms("9999-12-31T23:59:59.999Z"),
            Some(MAX_STORABLE_MS)
        );
    }

    #[test]
    fn parses_any_offset() {
        assert_eq!(
            parse_rfc3339_ms("2026-11-23T20:00:00Z"),
            Some(1_795_464_000_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-23T21:00:00.5+01:00"),
            Some(1_795_464_000_500)
        );
        assert_eq!(parse_rfc3339_ms("2026-11-23 20:00"), None);
    }

    #[test]
    fn every_time_it_parses_it_can_show_again() {
        for s in [
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "0085-12-07T02:34:19.493Z",
        ] {
            assert_eq!(parse_rfc3339_ms(s).map(format_ms).as_deref(), Some(s));
        }
        assert_eq!(parse_rfc3339_ms("9999-12-31T23:00:00-05:00"), None);
        assert_eq!(parse_rfc3339_ms("0000-01-01T00:30:00+01:00"), None);
    }
}
