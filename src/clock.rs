//! Time as the store keeps it: RFC 3339 UTC text with millisecond precision, so that the same
//! column sorts correctly as text on SQLite and PostgreSQL.
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// Renders a time the way every timestamp column stores it (`2026-02-18T12:34:56.123Z`).
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let ms = t.millisecond();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        ms
    )
}

pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

pub fn from_now(d: Duration) -> String {
    format(OffsetDateTime::now_utc() + d)
}

pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fixed_width_utc() {
        let t = time::macros::datetime!(2026-02-18 12:34:56.123 +02:00);
        assert_eq!(format(t), "2026-02-18T10:34:56.123Z");
        assert_eq!(parse("2026-02-18T10:34:56.123Z"), Some(t));
    }

    #[test]
    fn text_order_is_time_order() {
        let a = format(time::macros::datetime!(2026-02-18 09:59:59.999 UTC));
        let b = format(time::macros::datetime!(2026-02-18 10:00:00.000 UTC));
        assert!(a < b);
    }
}
