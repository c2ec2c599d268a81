//! Explicit timestamp formats (`timestamp_format = "%d/%m/%Y %H:%M"`), a strftime subset.
//! Numbers other than the year may be written with fewer digits than their maximum
//! (`12/1/2010 8:26` matches `%m/%d/%Y %H:%M`), which is how spreadsheets export them.

use crate::values;

/// The directives a format may use, for messages and docs.
pub(crate) const DIRECTIVES: &str = "%Y %y %m %b %B %d %H %I %p %M %S %f %F (= %Y-%m-%d) %T (= %H:%M:%S) %%";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Year,
    Year2,
    Month,
    Day,
    Hour,
    Hour12,
    Minute,
    Second,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// A byte written as is.
    Literal(u8),
    /// A number of 1 to `max` digits.
    Number(Field, usize),
    /// A month name, full or abbreviated (`%b`, `%B`).
    MonthName,
    /// `AM` / `PM` (`%p`).
    AmPm,
    /// A fraction of a second, 1 to 9 digits (`%f`).
    Fraction,
}

/// A compiled timestamp format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimestampFormat {
    text: String,
    items: Vec<Item>,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl TimestampFormat {
    /// Compiles `text`; `Err` says what is wrong with it.
    pub(crate) fn new(text: &str) -> Result<Self, String> {
        let items = Self::items(text)?;
        let has = |f: Field| items.contains(&Item::Number(f, if matches!(f, Field::Year) { 4 } else { 2 }));
        if !(has(Field::Year) || has(Field::Year2))
            || !(has(Field::Month) || items.contains(&Item::MonthName))
            || !has(Field::Day)
        {
            return Err("must contain a year (%Y or %y), a month (%m or %b) and a day (%d)".into());
        }
        if has(Field::Hour12) != items.contains(&Item::AmPm) {
            return Err("%I (12-hour clock) and %p (AM/PM) go together".into());
        }
        Ok(TimestampFormat { text: text.to_owned(), items })
    }

    /// The items of `text`, unchecked.
    fn items(text: &str) -> Result<Vec<Item>, String> {
        let mut items = Vec::new();
        let mut bytes = text.bytes();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                items.push(Item::Literal(b));
                continue;
            }
            let d = bytes.next().ok_or("ends with a lone `%` (write `%%` for a percent sign)")?;
            match d {
                b'Y' => items.push(Item::Number(Field::Year, 4)),
                b'y' => items.push(Item::Number(Field::Year2, 2)),
                b'm' => items.push(Item::Number(Field::Month, 2)),
                b'b' | b'B' | b'h' => items.push(Item::MonthName),
                b'd' | b'e' => items.push(Item::Number(Field::Day, 2)),
                b'H' => items.push(Item::Number(Field::Hour, 2)),
                b'I' => items.push(Item::Number(Field::Hour12, 2)),
                b'p' => items.push(Item::AmPm),
                b'M' => items.push(Item::Number(Field::Minute, 2)),
                b'S' => items.push(Item::Number(Field::Second, 2)),
                b'f' => items.push(Item::Fraction),
                b'F' => items.extend(Self::items("%Y-%m-%d")?),
                b'T' => items.extend(Self::items("%H:%M:%S")?),
                b'%' => items.push(Item::Literal(b'%')),
                other => {
                    return Err(format!(
                        "`%{}` is not a supported directive; supported: {DIRECTIVES}",
                        char::from(other)
                    ));
                }
            }
        }
        Ok(items)
    }

    /// The format as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Microseconds since 1970-01-01 00:00 of `input`, if it matches the format exactly.
    pub(crate) fn parse(&self, input: &[u8]) -> Option<i64> {
        let (mut year, mut month, mut day, mut hour, mut minute, mut second) =
            (None, None, None, 0u32, 0u32, 0u32);
        let mut micros = 0i64;
        let mut pm = None;
        let mut pos = 0;
        for item in &self.items {
            let rest = &input[pos..];
            match item {
                Item::Literal(b) => {
                    if rest.first() != Some(b) {
                        return None;
                    }
                    pos += 1;
                }
                Item::Number(field, max) => {
                    let n = rest.iter().take(*max).take_while(|c| c.is_ascii_digit()).count();
                    // A year is four digits: `1/1/70` read with %Y would be the year 70
                    // (two-digit years are %y).
                    if n == 0 || (*field == Field::Year && n != 4) {
                        return None;
                    }
                    let v = rest[..n].iter().fold(0u32, |a, c| a * 10 + u32::from(c - b'0'));
                    pos += n;
                    match field {
                        Field::Year => year = Some(v as i32),
                        Field::Year2 => year = Some(if v >= 69 { 1900 + v as i32 } else { 2000 + v as i32 }),
                        Field::Month => month = Some(v),
                        Field::Day => day = Some(v),
                        Field::Hour => hour = v,
                        Field::Hour12 => {
                            if !(1..=12).contains(&v) {
                                return None;
                            }
                            hour = v % 12;
                        }
                        Field::Minute => minute = v,
                        Field::Second => second = v,
                    }
                }
                Item::MonthName => {
                    let (m, len) = MONTHS.iter().enumerate().find_map(|(i, name)| {
                        let full = name.len();
                        if rest.len() >= full && rest[..full].eq_ignore_ascii_case(name.as_bytes()) {
                            Some((i, full))
                        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(&name.as_bytes()[..3]) {
                            Some((i, 3))
                        } else {
                            None
                        }
                    })?;
                    month = Some(m as u32 + 1);
                    pos += len;
                }
                Item::AmPm => {
                    let two = rest.get(..2)?;
                    pm = Some(if two.eq_ignore_ascii_case(b"pm") {
                        true
                    } else if two.eq_ignore_ascii_case(b"am") {
                        false
                    } else {
                        return None;
                    });
                    pos += 2;
                }
                Item::Fraction => {
                    let n = rest.iter().take(9).take_while(|c| c.is_ascii_digit()).count();
                    if n == 0 {
                        return None;
                    }
                    let mut us = 0i64;
                    for (i, c) in rest[..n].iter().enumerate() {
                        if i < 6 {
                            us = us * 10 + i64::from(c - b'0');
                        }
                    }
                    for _ in n..6 {
                        us *= 10;
                    }
                    micros = us;
                    pos += n;
                }
            }
        }
        if pos != input.len() {
            return None;
        }
        if pm == Some(true) {
            hour += 12;
        }
        let (y, m, d) = (year?, month?, day?);
        if !(1..=12).contains(&m) || d == 0 || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let days = values::days_from_civil(y, m, d);
        // 31 February would silently become 3 March: the calendar must give the day back.
        if values::civil_from_days(days) != (y, m, d) {
            return None;
        }
        let secs = i64::from(days) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
        Some(secs * 1_000_000 + micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(f: &str, s: &str) -> Option<String> {
        TimestampFormat::new(f).unwrap().parse(s.as_bytes()).map(values::format_timestamp)
    }

    #[test]
    fn formats_match_with_short_numbers_names_and_fractions() {
        assert_eq!(at("%m/%d/%Y %H:%M", "12/1/2010 8:26").as_deref(), Some("2010-12-01 08:26:00.000000"));
        assert_eq!(at("%d/%m/%Y %H:%M", "01/12/2010 08:26").as_deref(), Some("2010-12-01 08:26:00.000000"));
        assert_eq!(at("%Y%m%d%H%M%S", "20101201082659").as_deref(), Some("2010-12-01 08:26:59.000000"));
        assert_eq!(
            at("%d %b %Y %I:%M %p", "1 dec 2010 8:26 PM").as_deref(),
            Some("2010-12-01 20:26:00.000000")
        );
        assert_eq!(at("%d %B %y", "9 December 11").as_deref(), Some("2011-12-09 00:00:00.000000"));
        assert_eq!(at("%F %T.%f", "2011-12-09 12:50:00.25").as_deref(), Some("2011-12-09 12:50:00.250000"));
        assert_eq!(
            at("%d/%m/%Y %I:%M %p", "1/12/2010 12:05 am").as_deref(),
            Some("2010-12-01 00:05:00.000000")
        );
    }

    #[test]
    fn values_that_do_not_match_exactly_are_refused() {
        for s in [
            "13/1/2010 8:26",
            "12/1/2010",
            "12/1/2010 8:26 ",
            "2/30/2010 8:26",
            "12/1/2010 24:00",
            "x",
            "2/28/10 1:00",
            "2/28/010 1:00",
        ] {
            assert_eq!(at("%m/%d/%Y %H:%M", s), None, "{s}");
        }
    }

    #[test]
    fn bad_formats_say_what_is_wrong() {
        assert!(
            TimestampFormat::new("%Y-%m-%d %Q").unwrap_err().contains("`%Q` is not a supported directive")
        );
        assert!(TimestampFormat::new("%H:%M").unwrap_err().contains("must contain a year"));
        assert!(TimestampFormat::new("%Y-%m-%d %I:%M").unwrap_err().contains("go together"));
        assert!(TimestampFormat::new("%Y-%m-%d %").unwrap_err().contains("lone `%`"));
        assert_eq!(TimestampFormat::new("%d.%m.%Y").unwrap().as_str(), "%d.%m.%Y");
    }
}
