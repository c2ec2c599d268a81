//! Column statistics that `fill_nulls` and `clip` derive their values from: mean,
//! quantiles (linear interpolation, as numpy and pandas do by default) and mode.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use sluice_core::StageError;

/// Whether `ty` is a number type the numeric ops take.
pub fn is_numeric(ty: &DataType) -> bool {
    ty.is_numeric()
}

/// The non-NULL, non-NaN values of a numeric column as f64.
fn finite_values(col: &ArrayRef) -> Result<Vec<f64>, StageError> {
    let f = cast_with_options(col, &DataType::Float64, &CastOptions::default())
        .map_err(|e| StageError::arrow("reading numbers", e))?;
    let f = f.as_primitive::<arrow::datatypes::Float64Type>();
    Ok(f.iter().flatten().filter(|v| !v.is_nan()).collect())
}

/// Mean of the non-NULL values; `None` when there are none.
pub fn mean(col: &ArrayRef) -> Result<Option<f64>, StageError> {
    let values = finite_values(col)?;
    if values.is_empty() {
        return Ok(None);
    }
    Ok(Some(values.iter().sum::<f64>() / values.len() as f64))
}

/// Quantiles `qs` (each in 0..=1) of the non-NULL values; `None` when there are none.
pub fn quantiles(col: &ArrayRef, qs: &[f64]) -> Result<Option<Vec<f64>>, StageError> {
    let mut values = finite_values(col)?;
    if values.is_empty() {
        return Ok(None);
    }
    values.sort_unstable_by(f64::total_cmp);
    let last = (values.len() - 1) as f64;
    Ok(Some(
        qs.iter()
            .map(|q| {
                let pos = q.clamp(0.0, 1.0) * last;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
            })
            .collect(),
    ))
}

/// Index of the most frequent non-NULL value (ties: the one seen first); `None` when every
/// value is NULL.
pub fn mode(col: &ArrayRef) -> Result<Option<usize>, StageError> {
    let converter = RowConverter::new(vec![SortField::new(col.data_type().clone())])
        .map_err(|e| StageError::arrow("counting values", e))?;
    let rows = converter
        .convert_columns(std::slice::from_ref(col))
        .map_err(|e| StageError::arrow("counting values", e))?;
    let mut counts: HashMap<&[u8], (usize, usize)> = HashMap::new();
    for i in 0..col.len() {
        if col.is_valid(i) {
            counts.entry(rows.row(i).data()).or_insert((0, i)).0 += 1;
        }
    }
    Ok(counts.values().max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1))).map(|&(_, first)| first))
}

/// A one-row array of type `ty` holding `v` (rounded first when `ty` is an integer type).
pub fn number_as(v: f64, ty: &DataType) -> Result<ArrayRef, String> {
    let v = if ty.is_integer() { v.round() } else { v };
    let array: ArrayRef = std::sync::Arc::new(Float64Array::from(vec![v]));
    let options = CastOptions { safe: false, ..Default::default() };
    cast_with_options(&array, ty, &options).map_err(|e| e.to_string())
}

/// The median of an integer or decimal (precision ≤ 38) column computed exactly, as a
/// one-row array of the column's type: through f64, integers past 2^53 lose their last
/// digits. Between two middle values it is their mean, a half rounded away from zero (as
/// integer fills are rounded). `Ok(None)` when the column has no values, or a type this
/// does not handle (the caller goes through f64).
pub fn exact_median(col: &ArrayRef) -> Result<Option<ArrayRef>, StageError> {
    let ty = col.data_type();
    let wide = match decimal_shape(ty) {
        _ if ty.is_integer() => DataType::Decimal128(38, 0),
        Some((p, s)) if p <= 38 => DataType::Decimal128(38, s),
        _ => return Ok(None),
    };
    let options = CastOptions { safe: false, ..Default::default() };
    let unscaled =
        cast_with_options(col, &wide, &options).map_err(|e| StageError::arrow("reading numbers", e))?;
    let mut values: Vec<i128> =
        unscaled.as_primitive::<arrow::datatypes::Decimal128Type>().iter().flatten().collect();
    if values.is_empty() {
        return Ok(None);
    }
    values.sort_unstable();
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        // Two values of the column's type: their sum fits 128 bits.
        let sum = values[n / 2 - 1] + values[n / 2];
        let half = sum / 2;
        if sum % 2 == 0 { half } else { half + sum.signum() }
    };
    let DataType::Decimal128(_, scale) = wide else { return Ok(None) };
    let one = arrow::array::Decimal128Array::from(vec![median])
        .with_precision_and_scale(38, scale)
        .map_err(|e| StageError::arrow("computing the median", e))?;
    cast_with_options(&one, ty, &options).map(Some).map_err(|e| StageError::arrow("computing the median", e))
}

/// Which way a value that falls between two values of a column type moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// To the next value above (a lower bound moving inwards).
    Up,
    /// To the next value below (an upper bound moving inwards).
    Down,
}

/// The precision and scale of a decimal type.
pub fn decimal_shape(ty: &DataType) -> Option<(u8, i8)> {
    match *ty {
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => Some((p, s)),
        _ => None,
    }
}

/// A number written in decimal (`-12.345`, `1e-3`, as a user writes it or Rust prints an
/// f64) as (unscaled digits, scale): the exact value is `digits × 10^-scale`. `None` for
/// anything else or more digits than 128 bits hold.
pub fn parse_decimal(text: &str) -> Option<(i128, i32)> {
    let t = text.trim();
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
        None => (t, 0),
    };
    let (negative, digits) = match mantissa.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty()) || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut m: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        m = m.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    let scale = i32::try_from(frac.len()).ok()?.checked_sub(exp)?;
    Some((if negative { -m } else { m }, scale))
}

/// `m × 10^-from` as a multiple of `10^-to`, moved `round` when it falls between two, and
/// whether it was exact; `None` when the result does not fit 128 bits.
pub fn rescale(m: i128, from: i32, to: i32, round: Round) -> Option<(i128, bool)> {
    if to >= from {
        let factor = 10i128.checked_pow(u32::try_from(to - from).ok()?)?;
        return Some((m.checked_mul(factor)?, true));
    }
    let (floor, rest) = match u32::try_from(from - to).ok().and_then(|d| 10i128.checked_pow(d)) {
        Some(div) => (m.div_euclid(div), m.rem_euclid(div)),
        // The divisor is above every i128, so |m| is below it.
        None => (if m >= 0 { 0 } else { -1 }, m),
    };
    let exact = rest == 0;
    Some(match round {
        Round::Down => (floor, exact),
        Round::Up => (floor + i128::from(!exact), exact),
    })
}

/// A one-row decimal array of type `ty` holding `unscaled × 10^-scale` of `ty`; an error
/// when it has more digits than `ty`'s precision.
pub fn decimal_as(unscaled: i128, ty: &DataType) -> Result<ArrayRef, String> {
    let (precision, scale) = decimal_shape(ty).ok_or_else(|| format!("{ty} is not a decimal type"))?;
    let fits = 10i128.checked_pow(u32::from(precision)).is_none_or(|limit| unscaled.abs() < limit);
    if !fits {
        return Err(format!("the value has more than {precision} digits"));
    }
    let array = arrow::array::Decimal128Array::from(vec![unscaled])
        .with_precision_and_scale(38, scale)
        .map_err(|e| e.to_string())?;
    let options = CastOptions { safe: false, ..Default::default() };
    cast_with_options(&array, ty, &options).map_err(|e| e.to_string())
}

/// A clip bound `v` as a one-row array of `ty`, moved to a value `ty` holds in direction
/// `round` (inwards: a lower bound up, an upper bound down), so no value ends outside the
/// bound as written. `None` when the bound lies outside the type's range.
pub fn bound_as(v: f64, ty: &DataType, round: Round) -> Option<ArrayRef> {
    if ty.is_integer() {
        return number_as(if round == Round::Up { v.ceil() } else { v.floor() }, ty).ok();
    }
    if let Some((_, scale)) = decimal_shape(ty) {
        // Rust prints the shortest digits that read back as `v`: 4.999 stays 4.999.
        let (m, from) = parse_decimal(&format!("{v}"))?;
        let (unscaled, _) = rescale(m, from, i32::from(scale), round)?;
        return decimal_as(unscaled, ty).ok();
    }
    number_as(v, ty).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn mean_and_quantiles_skip_nulls() {
        let col: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(2), Some(3), Some(10)]));
        assert_eq!(mean(&col).unwrap(), Some(4.0));
        assert_eq!(quantiles(&col, &[0.0, 0.5, 1.0, 0.25]).unwrap(), Some(vec![1.0, 2.5, 10.0, 1.75]));
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![None::<i64>, None]));
        assert_eq!(mean(&nulls).unwrap(), None);
        assert_eq!(quantiles(&nulls, &[0.5]).unwrap(), None);
    }

    #[test]
    fn mode_prefers_the_first_of_equals_and_ignores_nulls() {
        let col: ArrayRef =
            Arc::new(StringArray::from(vec![None, Some("b"), Some("ä"), None, Some("ä"), Some("b")]));
        assert_eq!(mode(&col).unwrap(), Some(1));
        let nulls: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>, None, None]));
        assert_eq!(mode(&nulls).unwrap(), None);
    }

    #[test]
    fn decimals_parse_exactly_and_rescale_in_the_asked_direction() {
        assert_eq!(parse_decimal("4.999"), Some((4999, 3)));
        assert_eq!(parse_decimal("-0.005"), Some((-5, 3)));
        assert_eq!(parse_decimal("1e-3"), Some((1, 3)));
        assert_eq!(parse_decimal("12"), Some((12, 0)));
        assert_eq!(parse_decimal("1.5x"), None);
        assert_eq!(rescale(4999, 3, 2, Round::Down), Some((499, false)));
        assert_eq!(rescale(4999, 3, 2, Round::Up), Some((500, false)));
        assert_eq!(rescale(-5, 3, 2, Round::Up), Some((0, false)));
        assert_eq!(rescale(-5, 3, 2, Round::Down), Some((-1, false)));
        assert_eq!(rescale(1500, 3, 2, Round::Down), Some((150, true)));
        assert_eq!(rescale(15, 1, 3, Round::Down), Some((1500, true)));
        // A divisor past 128 bits: the value is a tiny fraction.
        assert_eq!(rescale(3, 60, 2, Round::Up), Some((1, false)));
        assert_eq!(rescale(-3, 60, 2, Round::Up), Some((0, false)));
        assert!(decimal_as(12345, &DataType::Decimal128(4, 2)).is_err());
    }

    /// Regression: the median of an int64 column went through f64, so two values of
    /// 9007199254740993 filled 9007199254740992.
    #[test]
    fn integer_and_decimal_medians_are_exact() {
        let median = |col: ArrayRef| {
            let m = exact_median(&col).unwrap().unwrap();
            arrow::util::display::array_value_to_string(&m, 0).unwrap()
        };
        let big = 9007199254740993i64;
        assert_eq!(median(Arc::new(Int64Array::from(vec![Some(big), None, Some(big)]))), big.to_string());
        assert_eq!(
            median(Arc::new(Int64Array::from(vec![i64::MAX, i64::MAX - 2]))),
            (i64::MAX - 1).to_string()
        );
        // Halves round away from zero.
        assert_eq!(median(Arc::new(Int64Array::from(vec![1, 2, 9, 0]))), "2");
        assert_eq!(median(Arc::new(Int64Array::from(vec![-1, -2]))), "-2");
        assert_eq!(median(Arc::new(Int64Array::from(vec![3, 1, 2]))), "2");
        let d = arrow::array::Decimal128Array::from(vec![101, 102]).with_precision_and_scale(10, 2).unwrap();
        assert_eq!(median(Arc::new(d)), "1.02");
        assert!(
            exact_median(&(Arc::new(Int64Array::from(vec![None::<i64>])) as ArrayRef)).unwrap().is_none()
        );
    }

    #[test]
    fn numbers_round_for_integer_columns() {
        let a = number_as(2.5, &DataType::Int64).unwrap();
        assert_eq!(a.as_primitive::<arrow::datatypes::Int64Type>().value(0), 3);
        assert!(number_as(1e30, &DataType::Int32).is_err());
    }
}
