//! Parsing field text into typed values. Hand-written because these run once per field of
//! every CSV file: they work on bytes (no UTF-8 check first) and avoid allocation.

/// Parses an optionally signed decimal integer; `None` when not an integer or out of range.
#[inline]
pub(crate) fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() <= 18 {
        // 18 digits cannot overflow, so skip the checked arithmetic.
        let mut v: i64 = 0;
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + i64::from(d);
        }
        return Some(if neg { -v } else { v });
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut v: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if neg { Some(v) } else { v.checked_neg() }
}

/// Whether the text is integer syntax (`-?[0-9]+`), whatever its size.
pub(crate) fn is_integer_syntax(b: &[u8]) -> bool {
    let digits = match b.first() {
        Some(b'-' | b'+') => &b[1..],
        _ => b,
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// Exact powers of ten representable in an f64 (for the fast path below).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22,
];

/// Parses a float with Rust's grammar (`1`, `-2.5`, `1e3`, `.5`, `inf`, `NaN`).
#[inline]
pub(crate) fn parse_f64(b: &[u8]) -> Option<f64> {
    // Fast path for plain decimals (`17850.0`, `-2.55`): when the digits fit in 2^53 and the
    // fraction has at most 22 digits, one correctly rounded division gives the exact result.
    let (neg, rest) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut frac_digits = 0usize;
    let mut seen_dot = false;
    let mut plain = !rest.is_empty() && rest.len() <= 19;
    if plain {
        for &c in rest {
            if c == b'.' && !seen_dot {
                seen_dot = true;
                continue;
            }
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                plain = false;
                break;
            }
            mantissa = mantissa * 10 + u64::from(d);
            digits += 1;
            if seen_dot {
                frac_digits += 1;
            }
        }
    }
    if plain
        && digits > 0
        && mantissa <= (1u64 << 53)
        && let Some(p) = POW10.get(frac_digits)
    {
        // mantissa <= 2^53, so the conversion is exact.
        let v = mantissa as f64 / p;
        return Some(if neg { -v } else { v });
    }
    let v: f64 = std::str::from_utf8(b).ok()?.parse().ok()?;
    // `1e400` overflows to infinity: a number the column cannot hold, unlike `inf` itself.
    if v.is_infinite() && b.iter().any(u8::is_ascii_digit) {
        return None;
    }
    Some(v)
}

/// Parses a float32; like `parse_f64`, a number beyond the type's range is refused.
#[inline]
pub(crate) fn parse_f32(b: &[u8]) -> Option<f32> {
    let v: f32 = std::str::from_utf8(b).ok()?.parse().ok()?;
    if v.is_infinite() && b.iter().any(u8::is_ascii_digit) { None } else { Some(v) }
}

/// Narrows a decimal-comma float to float32, refusing one beyond its range.
#[inline]
pub(crate) fn to_f32(v: f64) -> Option<f32> {
    let narrow = v as f32;
    if narrow.is_infinite() && v.is_finite() { None } else { Some(narrow) }
}

/// Parses a float written with a decimal comma (`1,5`, `-0,25`, `3`). A `.` is refused:
/// with a decimal comma it is a thousands separator, and `1.500` must not read as 1.5.
#[inline]
pub(crate) fn parse_f64_comma(b: &[u8]) -> Option<f64> {
    let mut buf = [0u8; 64];
    let out = buf.get_mut(..b.len())?;
    for (o, &c) in out.iter_mut().zip(b) {
        *o = match c {
            b',' => b'.',
            b'.' => return None,
            c => c,
        };
    }
    parse_f64(out)
}

/// Parses `true` / `false` in any letter case.
#[inline]
pub(crate) fn parse_bool(b: &[u8]) -> Option<bool> {
    if b.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if b.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

#[inline]
fn digits2(b: &[u8]) -> Option<u32> {
    let hi = b[0].wrapping_sub(b'0');
    let lo = b[1].wrapping_sub(b'0');
    if hi > 9 || lo > 9 { None } else { Some(u32::from(hi) * 10 + u32::from(lo)) }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01; the inverse of [`days_from_civil`].
pub(crate) fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
pub(crate) fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` of microseconds since 1970-01-01 00:00.
pub(crate) fn format_timestamp(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rest = micros.rem_euclid(MICROS_PER_DAY);
    let secs = rest / 1_000_000;
    // Out-of-range day counts cannot come from parsed input (four-digit years).
    let date = format_date(i32::try_from(days).unwrap_or(i32::MAX));
    format!("{date} {:02}:{:02}:{:02}.{:06}", secs / 3600, secs / 60 % 60, secs % 60, rest % 1_000_000)
}

/// Parses `YYYY-MM-DD` into days since the Unix epoch.
#[inline]
pub(crate) fn parse_date(b: &[u8]) -> Option<i32> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits2(&b[0..2])? * 100 + digits2(&b[2..4])?;
    let m = digits2(&b[5..7])?;
    let d = digits2(&b[8..10])?;
    let y = y as i32;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Microseconds in a day.
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Parses an ISO timestamp without time zone into microseconds since the Unix epoch:
/// `YYYY-MM-DD`, then optionally `T` or a space, `HH:MM`, `:SS`, `.fraction` (up to 9 digits,
/// truncated to microseconds) and a final `Z`. A bare date is midnight.
#[inline]
pub(crate) fn parse_timestamp(b: &[u8]) -> Option<i64> {
    let days = parse_date(b.get(..10)?)?;
    timestamp_from_parts(days, &b[10..])
}

/// The timestamp `days` after the epoch plus the time written in `rest` (what follows the
/// date in [`parse_timestamp`]'s format). Split out so callers can cache the date part.
#[inline]
pub(crate) fn timestamp_from_parts(days: i32, mut rest: &[u8]) -> Option<i64> {
    let mut micros = i64::from(days) * MICROS_PER_DAY;
    if rest.is_empty() {
        return Some(micros);
    }
    if rest[0] != b'T' && rest[0] != b' ' {
        return None;
    }
    rest = &rest[1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let h = digits2(&rest[0..2])?;
    let mi = digits2(&rest[3..5])?;
    if h > 23 || mi > 59 {
        return None;
    }
    micros += (i64::from(h) * 3600 + i64::from(mi) * 60) * 1_000_000;
    rest = &rest[5..];
    if rest.first() == Some(&b':') {
        if rest.len() < 3 {
            return None;
        }
        let s = digits2(&rest[1..3])?;
        if s > 59 {
            return None;
        }
        micros += i64::from(s) * 1_000_000;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let frac = &rest[1..];
            let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            let mut us: i64 = 0;
            for (i, &c) in frac[..n].iter().enumerate() {
                if i < 6 {
                    us = us * 10 + i64::from(c - b'0');
                }
            }
            for _ in n..6 {
                us *= 10;
            }
            micros += us;
            rest = &frac[n..];
        }
    }
    match rest {
        b"" | b"Z" => Some(micros),
        _ => None,
    }
}

/// Remembers dates already parsed, in a small direct-mapped table: a file holds few distinct
/// days (sorted files in runs, shuffled ones all mixed), and comparing ten bytes is much
/// cheaper than calendar arithmetic.
#[derive(Debug)]
pub(crate) struct DateCache {
    /// (date text, days since the epoch), or an empty slot.
    slots: Vec<Option<([u8; 10], i32)>>,
}

/// Slots in a [`DateCache`]: enough for every day of a year or two.
const DATE_SLOTS: usize = 1024;

impl Default for DateCache {
    fn default() -> Self {
        DateCache { slots: vec![None; DATE_SLOTS] }
    }
}

impl DateCache {
    /// [`parse_date`] of the first ten bytes of `b`, remembered.
    #[inline]
    pub(crate) fn date(&mut self, b: &[u8]) -> Option<i32> {
        let key: [u8; 10] = b.get(..10)?.try_into().ok()?;
        // Bytes 2..10 hold the year's last digits, month and day of `YYYY-MM-DD`.
        let mut word = [0u8; 8];
        word.copy_from_slice(&key[2..]);
        let slot = (u64::from_le_bytes(word).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize;
        let entry = &mut self.slots[slot % DATE_SLOTS];
        if let Some((k, d)) = *entry
            && k == key
        {
            return Some(d);
        }
        let d = parse_date(&key)?;
        *entry = Some((key, d));
        Some(d)
    }

    /// [`parse_date`], using the cache.
    #[inline]
    pub(crate) fn parse_date(&mut self, b: &[u8]) -> Option<i32> {
        if b.len() == 10 { self.date(b) } else { None }
    }

    /// [`parse_timestamp`], using the cache for the date part.
    #[inline]
    pub(crate) fn parse_timestamp(&mut self, b: &[u8]) -> Option<i64> {
        let days = self.date(b)?;
        timestamp_from_parts(days, &b[10..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_beyond_the_range_are_refused_but_infinity_is_not() {
        assert_eq!(parse_f64(b"1e400"), None);
        assert_eq!(parse_f64(b"-1e400"), None);
        assert_eq!(parse_f64(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e300"), Some(1e300));
        assert_eq!(parse_f32(b"3.4e39"), None);
        assert_eq!(parse_f32(b"3.4e38"), Some(3.4e38));
        assert_eq!(parse_f32(b"inf"), Some(f32::INFINITY));
        assert_eq!(parse_f64_comma(b"1,5e400").and_then(to_f32), None);
        assert_eq!(parse_f64_comma(b"1,5").and_then(to_f32), Some(1.5));
    }

    #[test]
    fn integers_parse_to_the_edges_of_i64() {
        assert_eq!(parse_i64(b"6"), Some(6));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"+7"), Some(7));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert!(is_integer_syntax(b"9223372036854775808"));
        for bad in [&b""[..], b"-", b"1.0", b"1e3", b" 1", b"abc", b"C536379"] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn floats_parse_exactly_like_std() {
        for s in [
            "17850.0",
            "2.55",
            "-2.5",
            "1e3",
            ".5",
            "5.",
            "0.1",
            "123456789012345678",
            "3.14159",
            "-0.0",
            "0.000000000000000000001",
            "12345678901234567890.5",
            "inf",
            "NaN",
        ] {
            let want: f64 = s.parse().unwrap();
            let got = parse_f64(s.as_bytes()).unwrap();
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{s}");
        }
        for bad in ["", ".", "-", "1.2.3", "abc", "1,5", "17850.0x"] {
            assert_eq!(parse_f64(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn dates_and_timestamps_parse_iso_forms() {
        assert_eq!(parse_date(b"1970-01-01"), Some(0));
        assert_eq!(parse_date(b"2010-12-01"), Some(14_944));
        assert_eq!(parse_date(b"2000-02-29"), Some(11_016));
        assert_eq!(parse_date(b"1900-02-29"), None);
        assert_eq!(parse_date(b"2010-13-01"), None);
        assert_eq!(parse_date(b"1969-12-31"), Some(-1));
        let base = 14_944 * MICROS_PER_DAY;
        let t = base + (8 * 3600 + 26 * 60) * 1_000_000;
        assert_eq!(parse_timestamp(b"2010-12-01 08:26:00"), Some(t));
        assert_eq!(parse_timestamp(b"2010-12-01T08:26:00"), Some(t));
        assert_eq!(parse_timestamp(b"2010-12-01T08:26"), Some(t));
        assert_eq!(parse_timestamp(b"2010-12-01T08:26:00Z"), Some(t));
        assert_eq!(parse_timestamp(b"2010-12-01 08:26:00.5"), Some(t + 500_000));
        assert_eq!(parse_timestamp(b"2010-12-01 08:26:00.123456789"), Some(t + 123_456));
        assert_eq!(parse_timestamp(b"2010-12-01"), Some(base));
        for bad in ["2010-12-01 24:00:00", "2010-12-01 08:26:00+01:00", "2010-12-01x", "12/01/2010"] {
            assert_eq!(parse_timestamp(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn the_date_cache_gives_the_same_answers() {
        let mut c = DateCache::default();
        for s in ["2010-12-01 08:26:00", "2010-12-01 09:00:00", "2010-12-02", "2010-12-02x", "2010-12-0"] {
            assert_eq!(c.parse_timestamp(s.as_bytes()), parse_timestamp(s.as_bytes()), "{s}");
            assert_eq!(c.parse_date(s.as_bytes()), parse_date(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn day_counts_format_back_to_the_dates_they_came_from() {
        for s in ["1970-01-01", "2000-02-29", "1969-12-31", "2010-12-01", "0001-01-01", "9999-12-31"] {
            let days = parse_date(s.as_bytes()).unwrap();
            assert_eq!(format_date(days), s);
        }
        let t = parse_timestamp(b"1969-12-31 23:59:59.5").unwrap();
        assert_eq!(format_timestamp(t), "1969-12-31 23:59:59.500000");
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00.000000");
    }

    #[test]
    fn decimal_commas_parse_and_points_are_refused() {
        assert_eq!(parse_f64_comma(b"1,5"), Some(1.5));
        assert_eq!(parse_f64_comma(b"-0,25"), Some(-0.25));
        assert_eq!(parse_f64_comma(b"3"), Some(3.0));
        assert_eq!(parse_f64_comma(b"1.5"), None);
        assert_eq!(parse_f64_comma(b"1,2,3"), None);
        assert_eq!(parse_f64_comma(&[b'1'; 65]), None);
    }

    #[test]
    fn booleans_ignore_case() {
        assert_eq!(parse_bool(b"TRUE"), Some(true));
        assert_eq!(parse_bool(b"False"), Some(false));
        assert_eq!(parse_bool(b"yes"), None);
    }

    #[test]
    fn the_date_cache_gives_what_parsing_gives_in_any_order() {
        let mut cache = DateCache::default();
        let days: Vec<String> = (0..3000)
            .map(|i| format!("{:04}-{:02}-{:02}", 1990 + (i * 7) % 40, 1 + (i * 5) % 12, 1 + (i * 11) % 28))
            .collect();
        for round in 0..2 {
            for d in days.iter().rev().chain(&days) {
                assert_eq!(cache.parse_date(d.as_bytes()), parse_date(d.as_bytes()), "{d} (round {round})");
            }
        }
        assert_eq!(cache.parse_date(b"2011-02-30"), None);
        assert_eq!(cache.parse_date(&[0; 10]), None, "an empty slot never matches");
        assert_eq!(cache.parse_timestamp(b"2010-12-01 08:26:00"), parse_timestamp(b"2010-12-01 08:26:00"));
    }
}
