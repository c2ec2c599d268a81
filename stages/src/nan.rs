//! One NaN. Floats have many NaNs (sign and payload bits), and Arrow compares floats by
//! total order, where a NaN with the sign bit set (what `0.0 / 0.0` gives on x86) sorts
//! below every number and differs from other NaNs. The docs promise that NaN equals NaN
//! and sorts above every number, whatever its bits, so the stages store every NaN as one.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use sluice_core::StageError;

/// The one NaN every float value is stored as: quiet, sign bit clear (as PostgreSQL and
/// `f64::NAN` print it).
const CANONICAL_NAN64: u64 = 0x7ff8_0000_0000_0000;
const CANONICAL_NAN32: u32 = 0x7fc0_0000;

/// `array` with every NaN replaced by the canonical one, or `None` when it holds no other
/// NaN (the common case: nothing is copied). NaNs differ in their sign and payload bits,
/// and Arrow compares floats by total order, by which a NaN with the sign bit set (what
/// `0.0 / 0.0` gives on x86) sorts below every number and differs from other NaNs; the
/// docs promise NaN equals NaN and sorts above every number, whatever its bits.
pub(crate) fn canonical_nans(array: &ArrayRef) -> Option<ArrayRef> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Float32Type, Float64Type};
    match array.data_type() {
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            let odd = |v: &f64| v.is_nan() && v.to_bits() != CANONICAL_NAN64;
            a.values().iter().any(odd).then(|| {
                let nan = f64::from_bits(CANONICAL_NAN64);
                Arc::new(a.unary::<_, Float64Type>(|v| if v.is_nan() { nan } else { v })) as ArrayRef
            })
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            let odd = |v: &f32| v.is_nan() && v.to_bits() != CANONICAL_NAN32;
            a.values().iter().any(odd).then(|| {
                let nan = f32::from_bits(CANONICAL_NAN32);
                Arc::new(a.unary::<_, Float32Type>(|v| if v.is_nan() { nan } else { v })) as ArrayRef
            })
        }
        _ => None,
    }
}

/// `batch` with every float column's NaNs made canonical (see [`canonical_nans`]).
pub(crate) fn canonical_nan_batch(batch: &RecordBatch) -> Result<RecordBatch, StageError> {
    let replaced: Vec<Option<ArrayRef>> = batch.columns().iter().map(canonical_nans).collect();
    if replaced.iter().all(Option::is_none) {
        return Ok(batch.clone());
    }
    let columns =
        replaced.into_iter().zip(batch.columns()).map(|(r, c)| r.unwrap_or_else(|| c.clone())).collect();
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(batch.schema(), columns, &options)
        .map_err(|e| StageError::arrow("making NaNs canonical", e))
}
