//! Removing unselected rows from a column in place.
//!
//! When clean holds the only reference to a column's buffers, the rows it keeps are moved
//! to the front of those same buffers instead of being copied into new ones. A copy costs a
//! page fault for every fresh page (on a VM, the kernel zeroing fresh pages was a third of
//! the retail RFM run's CPU); memory already mapped costs none. Columns whose buffers are
//! shared (an encoder still reading them) or sliced, and other types, are filtered as usual.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, GenericByteArray, PrimitiveArray,
    downcast_primitive,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::FilterPredicate;
use arrow::datatypes::{
    ArrowNativeType, BinaryType, ByteArrayType, DataType, LargeBinaryType, LargeUtf8Type, Utf8Type,
};
use arrow::error::ArrowError;

/// What compacting one column gave.
enum Compacted {
    /// The kept rows, in the column's own buffers.
    InPlace(ArrayRef),
    /// The buffers are shared or sliced: the column, untouched.
    Shared(ArrayRef),
}

/// The rows of `column` where `mask` is true (in place when its buffers are not shared).
/// `mask` has no NULLs; `predicate` is the same mask, prepared for Arrow's filter.
pub fn compact(
    column: ArrayRef,
    mask: &BooleanArray,
    predicate: &FilterPredicate,
) -> Result<ArrayRef, ArrowError> {
    let data_type = column.data_type().clone();
    let compacted = match &data_type {
        DataType::Utf8 => bytes::<Utf8Type>(column, mask)?,
        DataType::LargeUtf8 => bytes::<LargeUtf8Type>(column, mask)?,
        DataType::Binary => bytes::<BinaryType>(column, mask)?,
        DataType::LargeBinary => bytes::<LargeBinaryType>(column, mask)?,
        data_type => {
            macro_rules! primitive_helper {
                ($t:ty, $column:expr, $mask:expr) => {
                    primitive::<$t>($column, $mask)?
                };
            }
            downcast_primitive! {
                data_type => (primitive_helper, column, mask),
                _ => Compacted::Shared(column),
            }
        }
    };
    match compacted {
        Compacted::InPlace(array) => Ok(array),
        Compacted::Shared(column) => predicate.filter(&column),
    }
}

/// The validity of the kept rows (a new bitmap, one bit per row).
fn kept_nulls(nulls: Option<NullBuffer>, mask: &BooleanArray) -> Result<Option<NullBuffer>, ArrowError> {
    match nulls {
        Some(n) if n.null_count() > 0 => {
            let valid = arrow::compute::filter(&BooleanArray::new(n.into_inner(), None), mask)?;
            Ok(Some(NullBuffer::new(valid.as_boolean().values().clone())))
        }
        _ => Ok(None),
    }
}

/// Fixed-width values: each run of kept rows moves down in one copy.
fn primitive<T: ArrowPrimitiveType>(column: ArrayRef, mask: &BooleanArray) -> Result<Compacted, ArrowError> {
    let array: PrimitiveArray<T> = column.as_primitive::<T>().clone();
    drop(column);
    let (data_type, values, nulls) = array.into_parts();
    let mut buf = match values.into_inner().into_mutable() {
        Ok(buf) => buf,
        Err(shared) => {
            let array = PrimitiveArray::<T>::new(ScalarBuffer::from(shared), nulls).with_data_type(data_type);
            return Ok(Compacted::Shared(Arc::new(array)));
        }
    };
    let values = buf.typed_data_mut::<T::Native>();
    let mut end = 0;
    for (start, stop) in mask.values().set_slices() {
        values.copy_within(start..stop, end);
        end += stop - start;
    }
    buf.truncate(end * std::mem::size_of::<T::Native>());
    let values = ScalarBuffer::<T::Native>::from(Buffer::from(buf));
    let array = PrimitiveArray::<T>::try_new(values, kept_nulls(nulls, mask)?)?.with_data_type(data_type);
    Ok(Compacted::InPlace(Arc::new(array)))
}

/// Strings and binaries: values and offsets both move down, offsets rebased as they go.
fn bytes<T: ByteArrayType>(column: ArrayRef, mask: &BooleanArray) -> Result<Compacted, ArrowError> {
    let array: GenericByteArray<T> = column.as_bytes::<T>().clone();
    drop(column);
    let (offsets, values, nulls) = array.into_parts();
    let offsets = offsets.into_inner().into_inner();
    // Offsets that do not start at 0 come from a slice: copy those.
    let starts_at_zero = offsets.typed_data::<T::Offset>().first().is_none_or(|o| o.as_usize() == 0);
    let (mut offsets, mut values) = match (starts_at_zero, offsets.into_mutable(), values.into_mutable()) {
        (true, Ok(o), Ok(v)) => (o, v),
        (_, o, v) => {
            let o = o.map_or_else(|b| b, Buffer::from);
            let v = v.map_or_else(|b| b, Buffer::from);
            let array = GenericByteArray::<T>::try_new(OffsetBuffer::new(ScalarBuffer::from(o)), v, nulls)?;
            return Ok(Compacted::Shared(Arc::new(array)));
        }
    };
    let offs = offsets.typed_data_mut::<T::Offset>();
    let bytes = values.as_slice_mut();
    let (mut row, mut byte) = (0usize, 0usize);
    for (start, stop) in mask.values().set_slices() {
        // All rows before `row` are written and `row <= start`: when they are equal, every
        // earlier row was kept and nothing moved, so `offs[start]` is still the original.
        let from = offs[start].as_usize();
        let to = offs[stop].as_usize();
        bytes.copy_within(from..to, byte);
        for i in start..stop {
            let end = byte + (offs[i + 1].as_usize() - from);
            offs[row + 1 + (i - start)] = T::Offset::from_usize(end)
                .ok_or_else(|| ArrowError::ComputeError("offset overflow while removing rows".into()))?;
        }
        row += stop - start;
        byte += to - from;
    }
    offsets.truncate((row + 1) * std::mem::size_of::<T::Offset>());
    values.truncate(byte);
    let offsets = OffsetBuffer::new(ScalarBuffer::from(Buffer::from(offsets)));
    let array = GenericByteArray::<T>::try_new(offsets, Buffer::from(values), kept_nulls(nulls, mask)?)?;
    Ok(Compacted::InPlace(Arc::new(array)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{Float64Array, Int32Array, LargeStringArray, StringArray, TimestampSecondArray};
    use arrow::compute::FilterBuilder;
    use proptest::prelude::*;

    use super::*;

    fn run(column: ArrayRef, keep: &[bool]) -> ArrayRef {
        let mask = BooleanArray::from(keep.to_vec());
        let predicate = FilterBuilder::new(&mask).build();
        compact(column, &mask, &predicate).unwrap()
    }

    #[test]
    fn unshared_columns_are_compacted_in_their_own_buffers() {
        let strings: ArrayRef = Arc::new(StringArray::from(vec![Some("añb"), None, Some(""), Some("zz")]));
        let before = strings.to_data().buffers()[1].as_ptr();
        let kept = run(strings, &[false, true, true, true]);
        assert_eq!(kept.to_data().buffers()[1].as_ptr(), before, "values stay where they were");
        assert_eq!(kept.as_string::<i32>().iter().collect::<Vec<_>>(), [None, Some(""), Some("zz")]);

        let ints: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5]));
        let before = ints.to_data().buffers()[0].as_ptr();
        let kept = run(ints, &[true, false, true, true, false]);
        assert_eq!(kept.to_data().buffers()[0].as_ptr(), before);
        assert_eq!(kept.as_primitive::<arrow::datatypes::Int32Type>().values(), &[1, 3, 4]);
    }

    #[test]
    fn shared_and_sliced_columns_are_copied_and_left_intact() {
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c"]));
        let other = strings.clone();
        let kept = run(strings, &[false, true, false]);
        assert_eq!(kept.as_string::<i32>().value(0), "b");
        assert_eq!(other.as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["a", "b", "c"]);

        let sliced: ArrayRef = Arc::new(StringArray::from(vec!["x", "y", "z", "w"]).slice(1, 3));
        let kept = run(sliced, &[true, false, true]);
        assert_eq!(kept.as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["y", "w"]);

        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0]).slice(1, 2));
        let kept = run(floats, &[false, true]);
        assert_eq!(kept.as_primitive::<arrow::datatypes::Float64Type>().values(), &[3.0]);
    }

    #[test]
    fn types_keep_their_metadata_and_empty_results_are_empty() {
        let ts: ArrayRef = Arc::new(TimestampSecondArray::from(vec![1, 2]).with_timezone("UTC"));
        let kept = run(ts, &[false, false]);
        assert_eq!(kept.len(), 0);
        assert_eq!(
            kept.data_type(),
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Second, Some("UTC".into()))
        );
        let large: ArrayRef = Arc::new(LargeStringArray::from(vec!["q", "r"]));
        assert_eq!(run(large, &[false, true]).as_string::<i64>().value(0), "r");
    }

    proptest! {
        /// In place or not, compacting equals Arrow's filter.
        #[test]
        fn compacting_equals_filtering(
            rows in proptest::collection::vec((proptest::option::of("[a-cä]{0,3}"), proptest::option::of(any::<i64>())), 0..40),
            keep_seed in any::<u64>(),
            share in any::<bool>(),
        ) {
            let keep: Vec<bool> = (0..rows.len()).map(|i| (keep_seed >> (i % 64)) & 1 == 1).collect();
            let mask = BooleanArray::from(keep.clone());
            let strings: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>()));
            let ints: ArrayRef = Arc::new(arrow::array::Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()));
            for column in [strings, ints] {
                let want = arrow::compute::filter(&column, &mask).unwrap();
                let keep_alive = share.then(|| column.clone());
                let got = run(column, &keep);
                prop_assert_eq!(got.to_data(), want.to_data());
                drop(keep_alive);
            }
        }
    }
}
