//! PostgreSQL column types to Arrow types, and decoding of PostgreSQL's binary wire format
//! into [`Cell`]s. Values arrive raw (see [`Raw`]) and are decoded here, so no type support
//! of the driver is needed (and none of its optional dependencies).

use std::borrow::Cow;

use ::postgres::types::{FromSql, Kind, Type};
use arrow::datatypes::{DataType, TimeUnit};

use crate::row_batch::Cell;
use crate::values;

/// How the values of one column are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PgKind {
    /// int2.
    I16,
    /// int4.
    I32,
    /// int8.
    I64,
    /// float4.
    F32,
    /// float8.
    F64,
    /// numeric with a declared precision of at most 38: exact.
    Decimal {
        /// Declared precision.
        precision: u8,
        /// Declared scale.
        scale: i8,
    },
    /// numeric without a declared precision (or above 38): rounded to float64.
    NumericFloat,
    /// text, varchar, bpchar, name, json, enum labels.
    Text,
    /// jsonb (a version byte, then the JSON text).
    Jsonb,
    /// bool.
    Bool,
    /// date.
    Date,
    /// timestamp and timestamptz (both microseconds since 2000-01-01).
    Timestamp,
    /// uuid (16 bytes).
    Uuid,
}

/// Days from 1970-01-01 to PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * 86_400_000_000;

/// How a column of type `ty` (with type modifier `typmod`, -1 when none) is read, and its
/// Arrow type; `None` when Sluice cannot read the type.
pub(crate) fn map_type(ty: &Type, typmod: i32) -> Option<(PgKind, DataType)> {
    let ts = |tz: Option<&str>| DataType::Timestamp(TimeUnit::Microsecond, tz.map(Into::into));
    Some(match *ty {
        Type::INT2 => (PgKind::I16, DataType::Int16),
        Type::INT4 => (PgKind::I32, DataType::Int32),
        Type::INT8 => (PgKind::I64, DataType::Int64),
        Type::FLOAT4 => (PgKind::F32, DataType::Float32),
        Type::FLOAT8 => (PgKind::F64, DataType::Float64),
        Type::NUMERIC => match numeric_typmod(typmod) {
            Some((precision, scale)) => {
                (PgKind::Decimal { precision, scale }, DataType::Decimal128(precision, scale))
            }
            None => (PgKind::NumericFloat, DataType::Float64),
        },
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => {
            (PgKind::Text, DataType::Utf8)
        }
        Type::JSONB => (PgKind::Jsonb, DataType::Utf8),
        Type::BOOL => (PgKind::Bool, DataType::Boolean),
        Type::DATE => (PgKind::Date, DataType::Date32),
        Type::TIMESTAMP => (PgKind::Timestamp, ts(None)),
        Type::TIMESTAMPTZ => (PgKind::Timestamp, ts(Some("UTC"))),
        Type::UUID => (PgKind::Uuid, DataType::Utf8),
        _ => match ty.kind() {
            // An enum's binary form is its label; a domain's is its base type's.
            Kind::Enum(_) => (PgKind::Text, DataType::Utf8),
            Kind::Domain(base) => return map_type(base, typmod),
            _ => return None,
        },
    })
}

/// Whether `ty` is `numeric`, or a domain over it: then its type modifier matters.
pub(crate) fn is_numeric(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Domain(base) => is_numeric(base),
        _ => *ty == Type::NUMERIC,
    }
}

/// Whether `ty` is `char(n)` (`bpchar`), or a domain over it: its values arrive padded, but
/// compare (and cast to text) without the padding.
pub(crate) fn is_padded(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Domain(base) => is_padded(base),
        _ => *ty == Type::BPCHAR,
    }
}

/// (precision, scale) of a `numeric(p, s)` type modifier, when Arrow's Decimal128 holds it.
fn numeric_typmod(typmod: i32) -> Option<(u8, i8)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    // The scale is an 11-bit signed number since PostgreSQL 15 (negative scales round left
    // of the point); only the usual 0..=precision is taken as a decimal.
    let scale = t & 0x7ff;
    if (1..=38).contains(&precision) && scale <= precision {
        Some((precision as u8, scale as i8))
    } else {
        None
    }
}

/// A value's bytes, undecoded.
#[derive(Debug)]
pub(crate) struct Raw<'a>(pub &'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A value that cannot be stored in its column's Arrow type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unfit {
    /// The value as PostgreSQL would print it.
    pub value: String,
    /// Why it does not fit.
    pub why: String,
}

fn malformed(kind: PgKind, raw: &[u8]) -> Unfit {
    Unfit { value: format!("{} bytes", raw.len()), why: format!("malformed binary {kind:?} value") }
}

fn fixed<const N: usize>(kind: PgKind, raw: &[u8]) -> Result<[u8; N], Unfit> {
    raw.try_into().map_err(|_| malformed(kind, raw))
}

/// Decodes one binary value of a column read as `kind`.
pub(crate) fn decode(kind: PgKind, raw: &[u8]) -> Result<Cell<'_>, Unfit> {
    Ok(match kind {
        PgKind::I16 => Cell::Int(i64::from(i16::from_be_bytes(fixed(kind, raw)?))),
        PgKind::I32 => Cell::Int(i64::from(i32::from_be_bytes(fixed(kind, raw)?))),
        PgKind::I64 => Cell::Int(i64::from_be_bytes(fixed(kind, raw)?)),
        PgKind::F32 => Cell::Float(f64::from(f32::from_be_bytes(fixed(kind, raw)?))),
        PgKind::F64 => Cell::Float(f64::from_be_bytes(fixed(kind, raw)?)),
        PgKind::Bool => Cell::Bool(fixed::<1>(kind, raw)?[0] != 0),
        PgKind::Text => Cell::Text(Cow::Borrowed(utf8(kind, raw)?)),
        PgKind::Jsonb => match raw.split_first() {
            Some((1, json)) => Cell::Text(Cow::Borrowed(utf8(kind, json)?)),
            _ => return Err(malformed(kind, raw)),
        },
        PgKind::Uuid => {
            let b: [u8; 16] = fixed(kind, raw)?;
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let s = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
            Cell::Text(Cow::Owned(s))
        }
        PgKind::Date => {
            let d = i32::from_be_bytes(fixed(kind, raw)?);
            match d {
                i32::MAX => return Err(infinite("infinity", "date")),
                i32::MIN => return Err(infinite("-infinity", "date")),
                // Dates past year 5 million overflow; PostgreSQL stops at 5874897.
                _ => Cell::Days(d.checked_add(PG_EPOCH_DAYS).ok_or_else(|| malformed(kind, raw))?),
            }
        }
        PgKind::Timestamp => {
            let t = i64::from_be_bytes(fixed(kind, raw)?);
            match t {
                i64::MAX => return Err(infinite("infinity", "timestamp")),
                i64::MIN => return Err(infinite("-infinity", "timestamp")),
                _ => Cell::Micros(t.checked_add(PG_EPOCH_MICROS).ok_or_else(|| malformed(kind, raw))?),
            }
        }
        PgKind::NumericFloat => {
            let n = Numeric::parse(raw).ok_or_else(|| malformed(kind, raw))?;
            let f = n.to_f64();
            // A finite number too large for a double is not infinity (numeric's own
            // `Infinity` is, and stays so).
            if f.is_infinite() && n.special.is_none() {
                return Err(Unfit {
                    value: n.to_string(),
                    why: "is beyond the range of float64; cast it to numeric(p, s) with p ≤ 38 or to text in the query".into(),
                });
            }
            Cell::Float(f)
        }
        PgKind::Decimal { precision, scale } => {
            let n = Numeric::parse(raw).ok_or_else(|| malformed(kind, raw))?;
            Cell::Decimal(n.to_decimal(precision, scale).ok_or_else(|| Unfit {
                value: n.to_string(),
                why: format!("does not fit decimal({precision}, {scale})"),
            })?)
        }
    })
}

fn utf8(kind: PgKind, raw: &[u8]) -> Result<&str, Unfit> {
    std::str::from_utf8(raw).map_err(|_| Unfit {
        value: String::from_utf8_lossy(raw).into_owned(),
        why: format!("is not valid UTF-8 ({kind:?})"),
    })
}

fn infinite(value: &str, ty: &str) -> Unfit {
    Unfit {
        value: value.into(),
        why: format!("has no Arrow {ty} equivalent; filter or cast it in the query"),
    }
}

/// A numeric value in PostgreSQL's binary form: base-10000 digits and the weight of the
/// first one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Numeric {
    negative: bool,
    special: Option<&'static str>,
    weight: i16,
    /// Digits after the decimal point in the value's text form.
    dscale: u16,
    digits: Vec<u16>,
}

impl Numeric {
    fn parse(raw: &[u8]) -> Option<Self> {
        let word = |i: usize| raw.get(i * 2..i * 2 + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let ndigits = word(0)? as usize;
        let weight = word(1)? as i16;
        let sign = word(2)?;
        let dscale = word(3)?;
        let digits = (0..ndigits).map(|i| word(4 + i).filter(|d| *d < 10_000)).collect::<Option<Vec<_>>>()?;
        let special = match sign {
            0x0000 | 0x4000 => None,
            0xC000 => Some("NaN"),
            0xD000 => Some("Infinity"),
            0xF000 => Some("-Infinity"),
            _ => return None,
        };
        Some(Numeric { negative: sign == 0x4000, special, weight, dscale, digits })
    }

    /// Power of ten of the last digit's units.
    fn exponent(&self) -> i32 {
        4 * (i32::from(self.weight) - self.digits.len() as i32 + 1)
    }

    /// All digits as one decimal integer (the value is that times 10^exponent).
    fn mantissa(&self) -> String {
        let mut m = String::with_capacity(self.digits.len() * 4 + 1);
        if self.negative {
            m.push('-');
        }
        for d in &self.digits {
            m.push_str(&format!("{d:04}"));
        }
        if self.digits.is_empty() {
            m.push('0');
        }
        m
    }

    fn to_f64(&self) -> f64 {
        match self.special {
            Some("NaN") => f64::NAN,
            Some("Infinity") => f64::INFINITY,
            Some(_) => f64::NEG_INFINITY,
            // Rust's parser rounds a long mantissa correctly, so this is the nearest f64.
            None => format!("{}e{}", self.mantissa(), self.exponent()).parse().unwrap_or(f64::NAN),
        }
    }

    /// The unscaled value at `scale`, if it fits `precision` digits exactly.
    fn to_decimal(&self, precision: u8, scale: i8) -> Option<i128> {
        if self.special.is_some() {
            return None;
        }
        let mut acc: i128 = 0;
        for d in &self.digits {
            acc = acc.checked_mul(10_000)?.checked_add(i128::from(*d))?;
        }
        let shift = self.exponent() + i32::from(scale);
        if shift >= 0 {
            acc = acc.checked_mul(10i128.checked_pow(shift as u32)?)?;
        } else {
            let div = 10i128.checked_pow(shift.unsigned_abs())?;
            if acc % div != 0 {
                return None;
            }
            acc /= div;
        }
        if acc >= 10i128.checked_pow(u32::from(precision))? {
            return None;
        }
        Some(if self.negative { -acc } else { acc })
    }
}

impl std::fmt::Display for Numeric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = self.special {
            return f.write_str(s);
        }
        // As PostgreSQL prints it: plain digits with `dscale` of them after the point.
        let mut units: String = self.digits.iter().map(|d| format!("{d:04}")).collect();
        let exponent = self.exponent();
        let mut frac = 0u32;
        if exponent >= 0 {
            units.push_str(&"0".repeat(exponent as usize));
        } else {
            frac = exponent.unsigned_abs();
        }
        // The wire form drops trailing zero groups; `dscale` says how many the text has.
        while frac < u32::from(self.dscale) {
            units.push('0');
            frac += 1;
        }
        while frac > u32::from(self.dscale) && units.ends_with('0') {
            units.pop();
            frac -= 1;
        }
        f.write_str(&plain_decimal(self.negative, &units, frac))
    }
}

/// `units` (unsigned decimal digits) divided by 10^`frac`, written out without an exponent:
/// `("1500", 2)` is `15.00`.
fn plain_decimal(negative: bool, units: &str, frac: u32) -> String {
    let frac = frac as usize;
    let units = units.trim_start_matches('0');
    let padded = format!("{}{units}", "0".repeat((frac + 1).saturating_sub(units.len())));
    let (int, fraction) = padded.split_at(padded.len() - frac);
    let sign = if negative && padded.bytes().any(|b| b != b'0') { "-" } else { "" };
    if frac == 0 { format!("{sign}{int}") } else { format!("{sign}{int}.{fraction}") }
}

/// `Infinity`, `-Infinity` or `NaN`, as PostgreSQL (and JavaScript) write them; other
/// floats in Rust's shortest form.
fn float_text(f: f64) -> String {
    match f {
        f if f.is_nan() => "NaN".into(),
        f if f.is_infinite() && f > 0.0 => "Infinity".into(),
        f if f.is_infinite() => "-Infinity".into(),
        f => f.to_string(),
    }
}

/// Text of a cell for the raw column of a quarantined row.
pub(crate) fn cell_text(cell: &Cell<'_>, ty: &DataType) -> serde_json::Value {
    use serde_json::Value;
    match cell {
        Cell::Null => Value::Null,
        Cell::Int(i) => Value::from(*i),
        // JSON has no infinity or NaN: written as PostgreSQL writes them.
        Cell::Float(f) => {
            serde_json::Number::from_f64(*f).map_or_else(|| Value::from(float_text(*f)), Value::Number)
        }
        Cell::Bool(b) => Value::from(*b),
        Cell::Text(s) => Value::from(s.as_ref()),
        Cell::Bytes(b) => Value::from(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        Cell::Days(d) => Value::from(values::format_date(*d)),
        Cell::Micros(t) => Value::from(values::format_timestamp(*t)),
        Cell::Decimal(v) => {
            let scale = match ty {
                DataType::Decimal128(_, s) => u32::try_from(*s).unwrap_or(0),
                _ => 0,
            };
            Value::from(plain_decimal(*v < 0, &v.unsigned_abs().to_string(), scale))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary form of a numeric from its parts.
    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, dscale] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_decode_exactly_into_decimals_and_nearly_into_floats() {
        let dec = PgKind::Decimal { precision: 10, scale: 2 };
        // 1234.5 = digits [1234, 5000], weight 0
        let v = numeric(0, 0, 1, &[1234, 5000]);
        assert_eq!(decode(dec, &v), Ok(Cell::Decimal(123_450)));
        assert_eq!(decode(PgKind::NumericFloat, &v), Ok(Cell::Float(1234.5)));
        // -0.0001 = digits [1], weight -1
        let v = numeric(-1, 0x4000, 4, &[1]);
        assert_eq!(decode(PgKind::Decimal { precision: 5, scale: 4 }, &v), Ok(Cell::Decimal(-1)));
        // 20000 = digits [2], weight 1
        assert_eq!(decode(dec, &numeric(1, 0, 0, &[2])), Ok(Cell::Decimal(2_000_000)));
        assert_eq!(decode(dec, &numeric(0, 0, 0, &[])), Ok(Cell::Decimal(0)));
        let nan = decode(dec, &numeric(0, 0xC000, 0, &[])).unwrap_err();
        assert_eq!((nan.value.as_str(), nan.why.as_str()), ("NaN", "does not fit decimal(10, 2)"));
        assert!(
            matches!(decode(PgKind::NumericFloat, &numeric(0, 0xC000, 0, &[])), Ok(Cell::Float(f)) if f.is_nan())
        );
        // 10^400 is beyond float64: refused rather than infinity; numeric's Infinity is not.
        let huge = decode(PgKind::NumericFloat, &numeric(100, 0, 0, &[1])).unwrap_err();
        assert!(huge.why.contains("beyond the range of float64"), "{}", huge.why);
        assert_eq!(decode(PgKind::NumericFloat, &numeric(0, 0xD000, 0, &[])), Ok(Cell::Float(f64::INFINITY)));
        // 10^8 does not fit decimal(8, 0)
        assert!(decode(PgKind::Decimal { precision: 8, scale: 0 }, &numeric(2, 0, 0, &[1])).is_err());
        assert!(decode(dec, &[0, 1]).is_err());
    }

    #[test]
    fn numerics_print_as_postgresql_does() {
        let text = |weight, sign, dscale, digits: &[u16]| {
            Numeric::parse(&numeric(weight, sign, dscale, digits)).unwrap().to_string()
        };
        assert_eq!(text(0, 0, 1, &[1234, 5000]), "1234.5");
        assert_eq!(text(-1, 0x4000, 4, &[1]), "-0.0001");
        assert_eq!(text(1, 0, 0, &[2]), "20000");
        assert_eq!(text(0, 0, 3, &[7]), "7.000");
        assert_eq!(text(0, 0, 0, &[]), "0");
        assert_eq!(text(0, 0, 2, &[]), "0.00");
        assert_eq!(text(0, 0xD000, 0, &[]), "Infinity");
        let dec = DataType::Decimal128(20, 10);
        assert_eq!(cell_text(&Cell::Decimal(15_000_000_000), &dec), serde_json::json!("1.5000000000"));
        assert_eq!(cell_text(&Cell::Decimal(-5), &dec), serde_json::json!("-0.0000000005"));
        assert_eq!(cell_text(&Cell::Decimal(42), &DataType::Decimal128(5, 0)), serde_json::json!("42"));
    }

    #[test]
    fn type_modifiers_give_precision_and_scale() {
        assert_eq!(numeric_typmod(((10 << 16) | 2) + 4), Some((10, 2)));
        assert_eq!(numeric_typmod(((39 << 16) | 2) + 4), None);
        assert_eq!(numeric_typmod(-1), None);
        assert_eq!(map_type(&Type::NUMERIC, -1).map(|m| m.1), Some(DataType::Float64));
        assert_eq!(map_type(&Type::POINT, -1), None);
    }

    #[test]
    fn dates_timestamps_and_uuids_decode_from_their_wire_forms() {
        assert_eq!(decode(PgKind::Date, &0i32.to_be_bytes()), Ok(Cell::Days(10_957)));
        assert_eq!(decode(PgKind::Timestamp, &(-1i64).to_be_bytes()), Ok(Cell::Micros(PG_EPOCH_MICROS - 1)));
        let inf = decode(PgKind::Date, &i32::MAX.to_be_bytes()).unwrap_err();
        assert_eq!(inf.value, "infinity");
        let u: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            decode(PgKind::Uuid, &u),
            Ok(Cell::Text("00010203-0405-0607-0809-0a0b0c0d0e0f".to_owned().into()))
        );
        assert_eq!(decode(PgKind::Jsonb, b"\x01{\"a\":1}"), Ok(Cell::Text("{\"a\":1}".into())));
        assert!(decode(PgKind::I32, &[0, 1]).is_err());
    }
}
