//! Column type inference for text formats: every sampled value votes against the types it
//! cannot be; the narrowest type left standing wins.

use arrow::datatypes::{DataType, TimeUnit};

use crate::timestamp_format::TimestampFormat;
use crate::values;

/// How values are written, when that differs from the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct VoteRules<'a> {
    /// Floats use a decimal comma (`1,5`).
    pub decimal_comma: bool,
    /// Timestamps are written in this format instead of ISO 8601.
    pub timestamp: Option<&'a TimestampFormat>,
}

const INT: u8 = 1;
const FLOAT: u8 = 2;
const BOOL: u8 = 4;
const DATE: u8 = 8;
const TIMESTAMP: u8 = 16;
const ALL: u8 = INT | FLOAT | BOOL | DATE | TIMESTAMP;

/// The evidence gathered so far about one text column.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TypeVotes {
    possible: u8,
    seen: bool,
}

impl Default for TypeVotes {
    fn default() -> Self {
        TypeVotes { possible: ALL, seen: false }
    }
}

impl TypeVotes {
    /// Records one non-null value written the default way.
    #[cfg(test)]
    pub(crate) fn vote(&mut self, v: &[u8]) {
        self.vote_with(v, VoteRules::default());
    }

    /// Records one non-null value written as `rules` say.
    pub(crate) fn vote_with(&mut self, v: &[u8], rules: VoteRules<'_>) {
        self.seen = true;
        let p = self.possible;
        if p == 0 {
            return;
        }
        let mut keep = 0;
        if p & (INT | FLOAT) != 0 {
            let int_ok = values::parse_i64(v).is_some();
            if int_ok {
                keep |= INT;
            }
            // An integer too large for int64 would lose digits as a float: keep it text.
            let float = if rules.decimal_comma { values::parse_f64_comma(v) } else { values::parse_f64(v) };
            if (int_ok || !values::is_integer_syntax(v)) && float.is_some() {
                keep |= FLOAT;
            }
        }
        if p & BOOL != 0 && values::parse_bool(v).is_some() {
            keep |= BOOL;
        }
        if p & DATE != 0 && values::parse_date(v).is_some() {
            keep |= DATE;
        }
        let timestamp = match rules.timestamp {
            Some(f) => f.parse(v).is_some(),
            None => values::parse_timestamp(v).is_some(),
        };
        if p & TIMESTAMP != 0 && timestamp {
            keep |= TIMESTAMP;
        }
        self.possible = p & keep;
    }

    /// The inferred type: int64, float64, bool, date, timestamp, else string (also when
    /// every sampled value was null).
    pub(crate) fn result(&self) -> DataType {
        let p = self.possible;
        if !self.seen {
            DataType::Utf8
        } else if p & INT != 0 {
            DataType::Int64
        } else if p & FLOAT != 0 {
            DataType::Float64
        } else if p & BOOL != 0 {
            DataType::Boolean
        } else if p & DATE != 0 {
            DataType::Date32
        } else if p & TIMESTAMP != 0 {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        } else {
            DataType::Utf8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(vals: &[&str]) -> DataType {
        let mut v = TypeVotes::default();
        for s in vals {
            v.vote(s.as_bytes());
        }
        v.result()
    }

    #[test]
    fn each_type_is_inferred_from_its_values() {
        assert_eq!(infer(&["1", "-2", "30"]), DataType::Int64);
        assert_eq!(infer(&["1", "17850.0", "1e3", "-2.5"]), DataType::Float64);
        assert_eq!(infer(&["true", "FALSE", "True"]), DataType::Boolean);
        assert_eq!(infer(&["2010-12-01", "2011-01-31"]), DataType::Date32);
        assert_eq!(
            infer(&["2010-12-01 08:26:00", "2010-12-01T08:26:00.25", "2010-12-02"]),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(infer(&["536365", "C536379"]), DataType::Utf8);
        assert_eq!(infer(&[]), DataType::Utf8);
    }

    #[test]
    fn decimal_commas_and_timestamp_formats_change_what_votes_for_what() {
        let fmt = TimestampFormat::new("%m/%d/%Y %H:%M").unwrap();
        let rules = VoteRules { decimal_comma: true, timestamp: Some(&fmt) };
        let infer_with = |vals: &[&str]| {
            let mut v = TypeVotes::default();
            for s in vals {
                v.vote_with(s.as_bytes(), rules);
            }
            v.result()
        };
        assert_eq!(infer_with(&["1,5", "2", "-0,25"]), DataType::Float64);
        assert_eq!(infer_with(&["1.5"]), DataType::Utf8);
        assert_eq!(
            infer_with(&["12/1/2010 8:26", "1/13/2011 17:05"]),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(infer_with(&["2010-12-01 08:26:00"]), DataType::Utf8);
        assert_eq!(infer(&["12/1/2010 8:26"]), DataType::Utf8);
    }

    #[test]
    fn integers_beyond_int64_stay_text_rather_than_rounded_floats() {
        assert_eq!(infer(&["1", "99999999999999999999"]), DataType::Utf8);
        assert_eq!(infer(&["1.5", "99999999999999999999"]), DataType::Utf8);
        assert_eq!(infer(&["1.5", "2"]), DataType::Float64);
    }
}
