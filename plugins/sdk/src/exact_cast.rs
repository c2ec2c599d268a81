//! Conversions that never round: 2.7 is not an int64, 1.005 is not a decimal(6, 2),
//! 9007199254740993 is not a float64, a timestamp with a time of day is not a date. Arrow's
//! cast rounds or truncates such values silently; declared types and `cast` promise that a
//! value which does not fit is refused instead.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::kernels::cmp::distinct;
use arrow::compute::{CastOptions, cast_with_options, nullif};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type, TimeUnit};
use arrow::error::ArrowError;

/// Casts `array` to `to`. A value that does not convert, or converts only approximately (a
/// fraction cut off, decimal places dropped), becomes NULL: callers find refused values
/// as the rows that are NULL now and were not before.
pub fn cast_exact(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    let safe = CastOptions { safe: true, ..Default::default() };
    let out = cast_with_options(array, to, &safe)?;
    let out = match inexact_rows(array, &out, to)? {
        Some(inexact) if inexact.true_count() > 0 => nullif(&out, &inexact)?,
        _ => out,
    };
    match lossy_rows(array, &out, to)? {
        Some(lost) if lost.true_count() > 0 => nullif(&out, &lost),
        _ => Ok(out),
    }
}

/// Rows that a float or a coarser time cannot hold, found by casting back and comparing:
/// an integer or decimal a float cannot hold exactly (9007199254740993 as float64 is
/// 9007199254740992), a timestamp with a time of day cast to a date (as the text
/// "2024-01-05 10:00" is refused), and digits beyond the target's unit (from text, or a
/// nanosecond timestamp), which it would cut off.
fn lossy_rows(from: &ArrayRef, out: &ArrayRef, to: &DataType) -> Result<Option<BooleanArray>, ArrowError> {
    let src = from.data_type();
    let safe = CastOptions { safe: true, ..Default::default() };
    let exact_number = src.is_integer()
        || matches!(
            src,
            DataType::Decimal32(..)
                | DataType::Decimal64(..)
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
        );
    let to_float = to.is_floating() && exact_number;
    // Another time zone is the same instant: only a coarser unit or a date can lose time.
    let to_coarser_time = match (src, to) {
        (DataType::Timestamp(from_unit, _), DataType::Timestamp(to_unit, _)) => finer(from_unit, to_unit),
        (DataType::Timestamp(..) | DataType::Date64, DataType::Date32) => true,
        (DataType::Timestamp(..), DataType::Date64) => true,
        _ => false,
    };
    let lost = if to_float || to_coarser_time {
        let back = cast_with_options(out, src, &safe)?;
        distinct(&back, from)?
    } else if let DataType::Timestamp(unit, tz) = to
        && *unit != TimeUnit::Nanosecond
        && is_text(src)
    {
        // The text read at nanoseconds (where that range reaches): it must come back equal.
        let fine = cast_with_options(from, &DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()), &safe)?;
        let back = cast_with_options(out, fine.data_type(), &safe)?;
        let differs = distinct(&back, &fine)?;
        (0..out.len()).map(|i| Some(fine.is_valid(i) && differs.value(i))).collect()
    } else {
        return Ok(None);
    };
    // Only rows where the cast gave a value: the others are refused already.
    Ok(Some(valid_and(out, &lost)))
}

/// Rows whose converted value differs from the original (`None` when the conversion
/// cannot lose anything that Arrow's cast does not already refuse).
fn inexact_rows(from: &ArrayRef, out: &ArrayRef, to: &DataType) -> Result<Option<BooleanArray>, ArrowError> {
    let exact_target = to.is_integer() || matches!(to, DataType::Decimal128(..) | DataType::Decimal256(..));
    let src = from.data_type();
    let safe = CastOptions { safe: true, ..Default::default() };
    if *to == DataType::Float32 && src != to && (src.is_numeric() || is_text(src)) {
        // A float32 rounds by nature, but a finite number beyond its range is not infinity.
        let orig = cast_with_options(from, &DataType::Float64, &safe)?;
        let (o, v) = (orig.as_primitive::<Float64Type>(), out.as_primitive::<Float32Type>().values());
        let beyond = BooleanBuffer::collect_bool(out.len(), |i| v[i].is_infinite() && o.value(i).is_finite());
        return Ok(Some(valid_and(out, &BooleanArray::new(beyond, None))));
    }
    if !exact_target || src == to {
        return Ok(None);
    }
    let differs = if src.is_floating() {
        // Compared as numbers, not bits: -0.0 → 0 → 0.0 is exact.
        let orig = cast_with_options(from, &DataType::Float64, &safe)?;
        let o = orig.as_primitive::<Float64Type>().values();
        let differs = match out.data_type() {
            // The common case (an ID read as float64) without a converted copy.
            DataType::Int64 => {
                let v = out.as_primitive::<Int64Type>().values();
                BooleanBuffer::collect_bool(out.len(), |i| o[i] != v[i] as f64)
            }
            _ => {
                let back = cast_with_options(out, &DataType::Float64, &safe)?;
                let b = back.as_primitive::<Float64Type>().values();
                BooleanBuffer::collect_bool(out.len(), |i| o[i] != b[i])
            }
        };
        // A NULL `out` holds some value underneath: only rows with a value count.
        let differs = match out.logical_nulls() {
            Some(valid) => &differs & valid.inner(),
            None => differs,
        };
        BooleanArray::new(differs, None)
    } else if matches!(src, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        // Back in the source's type, a value that lost digits comes back different.
        let back = cast_with_options(out, src, &safe)?;
        valid_and(out, &distinct(&back, from)?)
    } else if is_text(src)
        && let DataType::Decimal128(p, s) = to
        && 38 - (*p as i8 - s) > *s
    {
        // Text has no exact numeric twin: compare both at the widest scale that still
        // holds the declared integer digits.
        let wide = DataType::Decimal128(38, 38 - (*p as i8 - s));
        let orig = cast_with_options(from, &wide, &safe)?;
        let back = cast_with_options(out, &wide, &safe)?;
        let d = distinct(&back, &orig)?;
        (0..out.len()).map(|i| Some(out.is_valid(i) && orig.is_valid(i) && d.value(i))).collect()
    } else {
        return Ok(None);
    };
    Ok(Some(differs))
}

/// Whether `a` is a finer time unit than `b`.
fn finer(a: &TimeUnit, b: &TimeUnit) -> bool {
    let rank = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    };
    rank(a) > rank(b)
}

/// `mask` limited to the rows where `out` holds a value.
fn valid_and(out: &ArrayRef, mask: &BooleanArray) -> BooleanArray {
    (0..out.len()).map(|i| Some(out.is_valid(i) && mask.is_valid(i) && mask.value(i))).collect()
}

fn is_text(ty: &DataType) -> bool {
    matches!(ty, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Decimal128Array, Float64Array, Int64Array, StringArray};

    use super::*;

    fn values(a: &ArrayRef) -> Vec<Option<String>> {
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| arrow::util::display::array_value_to_string(a, i).unwrap()))
            .collect()
    }

    #[test]
    fn floats_with_a_fraction_do_not_become_integers() {
        let a: ArrayRef =
            Arc::new(Float64Array::from(vec![Some(2.0), Some(2.7), None, Some(-1.5), Some(-0.0)]));
        let out = cast_exact(&a, &DataType::Int64).unwrap();
        let out = out.as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(out.iter().collect::<Vec<_>>(), [Some(2), None, None, None, Some(0)]);
        // NaN and values beyond the range are refused as well.
        let a: ArrayRef = Arc::new(Float64Array::from(vec![f64::NAN, 1e30]));
        assert_eq!(cast_exact(&a, &DataType::Int64).unwrap().null_count(), 2);
    }

    #[test]
    fn decimals_keep_every_digit_or_are_refused() {
        let a: ArrayRef =
            Arc::new(Decimal128Array::from(vec![1005, 1010, -2000]).with_precision_and_scale(10, 3).unwrap());
        let out = cast_exact(&a, &DataType::Decimal128(6, 2)).unwrap();
        assert_eq!(values(&out), [None, Some("1.01".into()), Some("-2.00".into())]);
        let out = cast_exact(&a, &DataType::Int64).unwrap();
        assert_eq!(values(&out), [None, None, Some("-2".into())]);
        let f: ArrayRef = Arc::new(Float64Array::from(vec![0.1, 2.555, 0.3]));
        let out = cast_exact(&f, &DataType::Decimal128(10, 2)).unwrap();
        assert_eq!(values(&out), [Some("0.10".into()), None, Some("0.30".into())]);
    }

    #[test]
    fn text_to_decimal_refuses_extra_places() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("2.5"), Some("2.555"), None, Some("x")]));
        let out = cast_exact(&a, &DataType::Decimal128(10, 2)).unwrap();
        assert_eq!(values(&out), [Some("2.50".into()), None, None, None]);
    }

    #[test]
    fn integers_a_float_cannot_hold_and_times_of_day_are_refused() {
        // 2^53 + 1 and i64::MAX have no float64; 2^53 has.
        let a: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(1),
            None,
            Some(i64::MAX),
            Some(1 << 53),
            Some((1 << 53) + 1),
        ]));
        let out = cast_exact(&a, &DataType::Float64).unwrap();
        assert_eq!(values(&out), [Some("1.0".into()), None, None, Some("9007199254740992.0".into()), None]);
        // A timestamp is a date only at midnight; a coarser unit must not cut digits.
        let day = 19_727 * 86_400_000_000i64;
        let t: ArrayRef = Arc::new(arrow::array::TimestampMicrosecondArray::from(vec![day, day + 1]));
        assert_eq!(values(&cast_exact(&t, &DataType::Date32).unwrap()), [Some("2024-01-05".into()), None]);
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        assert_eq!(cast_exact(&t, &ms).unwrap().null_count(), 1);
        let text: ArrayRef =
            Arc::new(StringArray::from(vec!["2024-01-05 10:00:00.1234560", "2024-01-05 10:00:00.1234567"]));
        let us = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert_eq!(cast_exact(&text, &us).unwrap().null_count(), 1);
        // Another zone is the same instant, never refused.
        let paris: ArrayRef = Arc::new(
            arrow::array::TimestampMicrosecondArray::from(vec![day, day + 1]).with_timezone("Europe/Paris"),
        );
        assert_eq!(cast_exact(&paris, &us).unwrap().null_count(), 0);
        assert_eq!(
            cast_exact(&paris, &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
                .unwrap()
                .null_count(),
            0
        );
    }

    #[test]
    fn float32_rounds_but_does_not_overflow() {
        let f: ArrayRef = Arc::new(Float64Array::from(vec![0.1, 1e40, f64::INFINITY, f64::NAN]));
        let out = cast_exact(&f, &DataType::Float32).unwrap();
        assert_eq!(values(&out), [Some("0.1".into()), None, Some("inf".into()), Some("NaN".into())]);
    }
}
