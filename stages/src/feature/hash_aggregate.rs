//! Grouped aggregation computed straight over Arrow arrays, for what `group_by` is mostly
//! asked: keys of flat types, and count, count_distinct, sum, mean, min and max (recency is a
//! max). For the retail RFM input (400 k rows) planning and running the equivalent DataFusion
//! query cost several times the work itself; shapes not covered here (first/last, decimal
//! sums and means, distinct counts of floats, nested or dictionary keys) still go through the
//! query, as do float keys (the query merges -0.0 with 0.0), and tests hold both paths to
//! the same output. Min/max of floats skip NaN, as pandas and polars do (a group of only
//! NaN gives NaN): here by [`FloatExtreme`], in the query by its NaN-free rewrite
//! (DataFusion's own grouped MIN/MAX of floats is order-dependent once a NaN is among the
//! values).
//!
//! The output matches the query's: the same schema, groups sorted by their keys ascending
//! with NULLs last, a group whose values are all NULL giving NULL (0 for counts), and with
//! no keys exactly one row, even for an empty input. Float sums and means differ in the last
//! bits: they are added in row order with Kahan compensation, as pandas adds them, where the
//! query adds without (and, next to a distinct count, in another order).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayData, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, GenericStringArray,
    Int64Array, OffsetSizeTrait, PrimitiveArray, RecordBatch, UInt32Array, new_empty_array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::{SortColumn, SortOptions, cast, interleave, lexsort_to_indices, take};
use arrow::datatypes::ArrowNativeType;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Field, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, Schema, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, Rows, SortField};
use hashbrown::HashTable;
use sluice_core::short_bytes;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::table::Table;

/// An aggregation function of `group_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    /// Non-NULL values (all rows without a column).
    Count,
    /// Distinct non-NULL values.
    CountDistinct,
    /// Sum of the non-NULL values.
    Sum,
    /// Mean of the non-NULL values.
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// The value on the row with the smallest `order_by` (the query computes it).
    First,
    /// The value on the row with the largest `order_by` (the query computes it).
    Last,
    /// Days since the latest value: here its maximum, turned into days by the caller.
    Recency,
}

/// One output column: `name = func(column)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output<'a> {
    /// Output column name.
    pub name: &'a str,
    /// The function.
    pub func: Func,
    /// Input column index (`None` only for `count(*)`).
    pub column: Option<usize>,
}

/// Groups `input` by the columns `keys` and computes `outputs`; `None` when a key or an
/// aggregation is of a shape this path does not cover (the caller runs the query instead).
pub(crate) fn aggregate(
    input: &Table,
    keys: &[usize],
    outputs: &[Output<'_>],
) -> Result<Option<Table>, ArrowError> {
    let schema = &input.schema;
    if !keys.iter().all(|&k| flat_key(schema.field(k).data_type())) {
        return Ok(None);
    }
    let mut fields: Vec<Field> = keys.iter().map(|&k| schema.field(k).as_ref().clone()).collect();
    let mut folds: Vec<Box<dyn Fold>> = Vec::with_capacity(outputs.len());
    for o in outputs {
        let ty = o.column.map(|c| schema.field(c).data_type().clone());
        let Some((fold, out_type, nullable)) = fold_for(o.func, o.column, ty.as_ref())? else {
            return Ok(None);
        };
        fields.push(Field::new(o.name, out_type, nullable));
        folds.push(fold);
    }
    let key_types: Vec<DataType> = keys.iter().map(|&k| schema.field(k).data_type().clone()).collect();
    let converter = Identity::converter(&key_types)?;
    let mut groups = ByteSet::default();
    // Where each group first occurs (batch, row): its key values are taken from there.
    let mut first: Vec<(usize, usize)> = Vec::new();
    if keys.is_empty() {
        // One group of everything, present even without rows.
        groups.insert(0, &[])?;
    }
    let mut gids: Vec<u32> = Vec::new();
    for (b, batch) in input.batches.iter().enumerate() {
        gids.clear();
        if keys.is_empty() {
            gids.resize(batch.num_rows(), 0);
        } else {
            let columns: Vec<ArrayRef> = keys.iter().map(|&k| Arc::clone(batch.column(k))).collect();
            let identity = Identity::new(&columns, converter.as_ref())?;
            let mut prev: Option<(&[u8], u32)> = None;
            let mut failed = None;
            identity.each(|row, key| {
                // Rows often come in runs of one key (an invoice's lines): no lookup then.
                let found = match (key, prev) {
                    (Some(k), Some((p, g))) if short_bytes::equal(k, p) => Ok((g, false)),
                    (Some(k), _) => groups.insert(0, k),
                    // A single key's NULL: a group of its own.
                    (None, _) => groups.insert(1, &[]),
                };
                match found {
                    Ok((g, new)) => {
                        if new {
                            first.push((b, row));
                        }
                        gids.push(g);
                        prev = key.map(|k| (k, g));
                    }
                    Err(e) => failed = Some(e),
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
        }
        for fold in &mut folds {
            fold.update(batch, &gids, groups.len())?;
        }
    }
    // Each group's key values (in group order), then the groups sorted by them.
    let key_columns: Vec<ArrayRef> = keys
        .iter()
        .map(|&k| {
            let parts: Vec<&dyn Array> = input.batches.iter().map(|b| b.column(k).as_ref()).collect();
            if first.is_empty() {
                Ok(new_empty_array(schema.field(k).data_type()))
            } else {
                interleave(&parts, &first)
            }
        })
        .collect::<Result<_, _>>()?;
    let order: Vec<u32> = if keys.is_empty() {
        vec![0]
    } else {
        let sort = SortOptions { descending: false, nulls_first: false };
        let by: Vec<SortColumn> =
            key_columns.iter().map(|c| SortColumn { values: Arc::clone(c), options: Some(sort) }).collect();
        lexsort_to_indices(&by, None)?.values().to_vec()
    };
    let positions = UInt32Array::from(order.clone());
    let mut columns: Vec<ArrayRef> =
        key_columns.iter().map(|c| take(c.as_ref(), &positions, None)).collect::<Result<_, _>>()?;
    for fold in folds {
        columns.push(fold.finish(&order, groups.len())?);
    }
    let out_schema = Arc::new(Schema::new(fields));
    let batches = if order.is_empty() {
        Vec::new()
    } else {
        vec![RecordBatch::try_new(Arc::clone(&out_schema), columns)?]
    };
    Ok(Some(Table::new(out_schema, batches)))
}

/// What identifies a row's value(s) for grouping and distinct counts: byte strings that are
/// equal exactly when the values are.
enum Identity {
    /// Several columns, or one without a plain byte form: Arrow's row format, with the
    /// column's NULLs when it is a single one.
    Rows(Rows, Option<NullBuffer>),
    /// One string or binary column: its bytes (`large`: 64-bit offsets).
    Bytes(ArrayData, bool),
    /// One fixed-width column: each value's bytes.
    Fixed(ArrayData, usize),
}

impl Identity {
    /// The row format's converter, when columns of these types need it.
    fn converter(types: &[DataType]) -> Result<Option<RowConverter>, ArrowError> {
        match types {
            [] => Ok(None),
            [t] if Self::plain(t) => Ok(None),
            _ => RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect()).map(Some),
        }
    }

    /// Types whose own bytes identify their values.
    fn plain(ty: &DataType) -> bool {
        matches!(ty, DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary)
            || (ty.is_primitive() && ty.primitive_width().is_some())
    }

    fn new(columns: &[ArrayRef], converter: Option<&RowConverter>) -> Result<Self, ArrowError> {
        match (columns, converter) {
            ([c], None) => {
                let data = c.to_data();
                Ok(match c.data_type() {
                    DataType::Utf8 | DataType::Binary => Identity::Bytes(data, false),
                    DataType::LargeUtf8 | DataType::LargeBinary => Identity::Bytes(data, true),
                    t => {
                        let width = t.primitive_width().ok_or_else(|| {
                            ArrowError::ComputeError(format!("no byte form for grouping by {t}"))
                        })?;
                        Identity::Fixed(data, width)
                    }
                })
            }
            (_, Some(converter)) => {
                let nulls = match columns {
                    [c] => c.logical_nulls(),
                    _ => None,
                };
                converter.convert_columns(columns).map(|rows| Identity::Rows(rows, nulls))
            }
            (_, None) => Err(ArrowError::ComputeError("several grouping columns need the row format".into())),
        }
    }

    /// Calls `f(row, bytes)` for every row; `bytes` is `None` for a NULL of a single column
    /// (several columns encode NULLs in their rows).
    fn each<'a>(&'a self, mut f: impl FnMut(usize, Option<&'a [u8]>)) {
        match self {
            Identity::Rows(rows, nulls) => {
                for (row, r) in rows.iter().enumerate() {
                    let null = nulls.as_ref().is_some_and(|n| n.is_null(row));
                    f(row, (!null).then(|| r.data()));
                }
            }
            Identity::Bytes(data, true) => each_text::<i64>(data, f),
            Identity::Bytes(data, false) => each_text::<i32>(data, f),
            Identity::Fixed(data, width) => {
                let bytes = data.buffers()[0].as_slice();
                let base = data.offset() * width;
                for row in 0..data.len() {
                    if data.is_null(row) {
                        f(row, None);
                    } else {
                        let s = base + row * width;
                        f(row, Some(&bytes[s..s + width]));
                    }
                }
            }
        }
    }
}

/// Key (and distinct-count) types whose equal values are equal bytes, in their own form or
/// in the row format. Not floats: the query puts -0.0 and 0.0 in one group.
fn flat_key(ty: &DataType) -> bool {
    ty.is_primitive()
        && !ty.is_floating()
        && !matches!(ty, DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Interval(_))
        || matches!(
            ty,
            DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Binary
                | DataType::LargeBinary
        )
}

/// The accumulator for `func` over a column of type `ty`, with its output type and
/// nullability; `None` for shapes the query handles.
#[allow(clippy::type_complexity)]
fn fold_for(
    func: Func,
    column: Option<usize>,
    ty: Option<&DataType>,
) -> Result<Option<(Box<dyn Fold>, DataType, bool)>, ArrowError> {
    let (Some(c), Some(ty)) = (column, ty) else {
        return Ok((func == Func::Count)
            .then(|| (Box::new(Count::new(None)) as Box<dyn Fold>, DataType::Int64, false)));
    };
    let integer = matches!(ty, DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64);
    let unsigned = matches!(ty, DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64);
    let float = matches!(ty, DataType::Float32 | DataType::Float64);
    let fold: (Box<dyn Fold>, DataType, bool) = match func {
        Func::Count => (Box::new(Count::new(Some(c))), DataType::Int64, false),
        Func::CountDistinct if flat_key(ty) => {
            let converter = Identity::converter(std::slice::from_ref(ty))?;
            let fold = Distinct { column: c, converter, seen: ByteSet::default(), counts: Vec::new() };
            (Box::new(fold), DataType::Int64, false)
        }
        Func::Sum if integer => (Box::new(Sum::<Int64Type>::new(c)), DataType::Int64, true),
        Func::Sum if unsigned => (Box::new(Sum::<UInt64Type>::new(c)), DataType::UInt64, true),
        Func::Sum if float => (Box::new(FloatSum::new(c, false)), DataType::Float64, true),
        Func::Mean if integer || unsigned || float => {
            (Box::new(FloatSum::new(c, true)), DataType::Float64, true)
        }
        Func::Min | Func::Max | Func::Recency => {
            let max = func != Func::Min;
            let Some(fold) = extreme(ty, c, max) else { return Ok(None) };
            (fold, ty.clone(), true)
        }
        _ => return Ok(None),
    };
    Ok(Some(fold))
}

/// Min or max over a column of type `ty`, when the type is covered.
fn extreme(ty: &DataType, column: usize, max: bool) -> Option<Box<dyn Fold>> {
    fn of<T: ArrowPrimitiveType>(column: usize, max: bool, ty: &DataType) -> Option<Box<dyn Fold>> {
        Some(Box::new(Extreme::<T> { column, max, ty: ty.clone(), best: Vec::new(), seen: Vec::new() }))
    }
    match ty {
        DataType::Int8 => of::<Int8Type>(column, max, ty),
        DataType::Int16 => of::<Int16Type>(column, max, ty),
        DataType::Int32 => of::<Int32Type>(column, max, ty),
        DataType::Int64 => of::<Int64Type>(column, max, ty),
        DataType::UInt8 => of::<UInt8Type>(column, max, ty),
        DataType::UInt16 => of::<UInt16Type>(column, max, ty),
        DataType::UInt32 => of::<UInt32Type>(column, max, ty),
        DataType::UInt64 => of::<UInt64Type>(column, max, ty),
        DataType::Float32 => Some(Box::new(FloatExtreme::<Float32Type>::new(column, max))),
        DataType::Float64 => Some(Box::new(FloatExtreme::<Float64Type>::new(column, max))),
        DataType::Date32 => of::<Date32Type>(column, max, ty),
        DataType::Date64 => of::<Date64Type>(column, max, ty),
        DataType::Timestamp(TimeUnit::Second, _) => of::<TimestampSecondType>(column, max, ty),
        DataType::Timestamp(TimeUnit::Millisecond, _) => of::<TimestampMillisecondType>(column, max, ty),
        DataType::Timestamp(TimeUnit::Microsecond, _) => of::<TimestampMicrosecondType>(column, max, ty),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => of::<TimestampNanosecondType>(column, max, ty),
        DataType::Time32(TimeUnit::Second) => of::<Time32SecondType>(column, max, ty),
        DataType::Time32(TimeUnit::Millisecond) => of::<Time32MillisecondType>(column, max, ty),
        DataType::Time64(TimeUnit::Microsecond) => of::<Time64MicrosecondType>(column, max, ty),
        DataType::Time64(TimeUnit::Nanosecond) => of::<Time64NanosecondType>(column, max, ty),
        DataType::Duration(TimeUnit::Second) => of::<DurationSecondType>(column, max, ty),
        DataType::Duration(TimeUnit::Millisecond) => of::<DurationMillisecondType>(column, max, ty),
        DataType::Duration(TimeUnit::Microsecond) => of::<DurationMicrosecondType>(column, max, ty),
        DataType::Duration(TimeUnit::Nanosecond) => of::<DurationNanosecondType>(column, max, ty),
        DataType::Utf8 => Some(Box::new(TextExtreme::<i32>::new(column, max))),
        DataType::LargeUtf8 => Some(Box::new(TextExtreme::<i64>::new(column, max))),
        _ => None,
    }
}

/// Distinct byte strings, each under a 32-bit tag, numbered in order of first appearance.
#[derive(Default)]
struct ByteSet {
    /// Each entry's number, tag and place in `bytes`, keyed by hash. Held in the table, so a
    /// lookup that finds a different tag or length touches no other memory, and one that
    /// matches touches only the bytes: with many distinct values in no useful order (a
    /// customer's invoices spread over a shuffled file) each extra access is a cache miss.
    table: HashTable<SetEntry>,
    /// Each entry's hash, by number (to grow the table without re-hashing).
    hashes: Vec<u64>,
    bytes: Vec<u8>,
}

/// One [`ByteSet`] entry.
#[derive(Clone, Copy)]
struct SetEntry {
    number: u32,
    tag: u32,
    start: usize,
    len: u32,
}

impl ByteSet {
    /// The number of `(tag, value)`, and whether it is new.
    #[inline]
    fn insert(&mut self, tag: u32, value: &[u8]) -> Result<(u32, bool), ArrowError> {
        let hash = xxh3_64_with_seed(value, u64::from(tag));
        let bytes = &self.bytes;
        let same = |e: &SetEntry| {
            e.tag == tag && short_bytes::equal(&bytes[e.start..e.start + e.len as usize], value)
        };
        if let Some(e) = self.table.find(hash, same) {
            return Ok((e.number, false));
        }
        let number = u32::try_from(self.hashes.len())
            .map_err(|_| ArrowError::ComputeError("more than 4 billion groups".into()))?;
        let len = u32::try_from(value.len())
            .map_err(|_| ArrowError::ComputeError("a key of 4 GiB or more".into()))?;
        let entry = SetEntry { number, tag, start: self.bytes.len(), len };
        self.bytes.extend_from_slice(value);
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.table.insert_unique(hash, entry, |e| hashes[e.number as usize]);
        Ok((number, true))
    }

    fn len(&self) -> usize {
        self.hashes.len()
    }
}

/// [`Identity::each`] over a string or binary column with offsets of type `O`.
fn each_text<'a, O: ArrowNativeType>(data: &'a ArrayData, mut f: impl FnMut(usize, Option<&'a [u8]>)) {
    let values = data.buffers()[1].as_slice();
    let offsets = &data.buffers()[0].typed_data::<O>()[data.offset()..=data.offset() + data.len()];
    for (row, ends) in offsets.windows(2).enumerate() {
        if data.is_null(row) {
            f(row, None);
        } else {
            f(row, Some(&values[ends[0].as_usize()..ends[1].as_usize()]));
        }
    }
}

/// A per-group accumulator.
trait Fold {
    /// Adds a batch whose row `i` belongs to group `gids[i]`; `groups` groups exist so far.
    fn update(&mut self, batch: &RecordBatch, gids: &[u32], groups: usize) -> Result<(), ArrowError>;
    /// The results of the groups in `order` (`groups` in all).
    fn finish(self: Box<Self>, order: &[u32], groups: usize) -> Result<ArrayRef, ArrowError>;
}

/// The validity of the groups in `order`, from a per-group flag.
fn validity(seen: &[bool], order: &[u32]) -> Option<NullBuffer> {
    let valid = NullBuffer::new(BooleanBuffer::from_iter(order.iter().map(|&g| seen[g as usize])));
    (valid.null_count() > 0).then_some(valid)
}

/// Calls `f(row, group)` for every row of `array` that is not NULL.
#[inline]
fn each_valid(array: &dyn Array, gids: &[u32], mut f: impl FnMut(usize, usize)) {
    match array.logical_nulls() {
        Some(nulls) if nulls.null_count() > 0 => {
            for row in nulls.valid_indices() {
                f(row, gids[row] as usize);
            }
        }
        _ => {
            for (row, &g) in gids.iter().enumerate() {
                f(row, g as usize);
            }
        }
    }
}

struct Count {
    column: Option<usize>,
    counts: Vec<i64>,
}

impl Count {
    fn new(column: Option<usize>) -> Self {
        Count { column, counts: Vec::new() }
    }
}

impl Fold for Count {
    fn update(&mut self, batch: &RecordBatch, gids: &[u32], groups: usize) -> Result<(), ArrowError> {
        self.counts.resize(groups, 0);
        let counts = &mut self.counts;
        match self.column {
            None => gids.iter().for_each(|&g| counts[g as usize] += 1),
            Some(c) => each_valid(batch.column(c).as_ref(), gids, |_, g| counts[g] += 1),
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, order: &[u32], groups: usize) -> Result<ArrayRef, ArrowError> {
        self.counts.resize(groups, 0);
        Ok(Arc::new(Int64Array::from_iter_values(order.iter().map(|&g| self.counts[g as usize]))))
    }
}

struct Distinct {
    column: usize,
    converter: Option<RowConverter>,
    /// (group, value) pairs seen.
    seen: ByteSet,
    counts: Vec<i64>,
}

impl Fold for Distinct {
    fn update(&mut self, batch: &RecordBatch, gids: &[u32], groups: usize) -> Result<(), ArrowError> {
        self.counts.resize(groups, 0);
        let column = batch.column(self.column);
        let identity = Identity::new(std::slice::from_ref(column), self.converter.as_ref())?;
        let mut failed = None;
        let mut prev: Option<(u32, short_bytes::Inline<'_>)> = None;
        let (seen, counts) = (&mut self.seen, &mut self.counts);
        identity.each(|row, value| {
            let Some(v) = value else { return };
            let g = gids[row];
            // A value repeating on the next row of the same group is no news.
            let key = Some((g, short_bytes::Inline(v)));
            if prev == key {
                return;
            }
            prev = key;
            match seen.insert(g, v) {
                Ok((_, true)) => counts[g as usize] += 1,
                Ok(_) => {}
                Err(e) => failed = Some(e),
            }
        });
        failed.map_or(Ok(()), Err)
    }

    fn finish(mut self: Box<Self>, order: &[u32], groups: usize) -> Result<ArrayRef, ArrowError> {
        self.counts.resize(groups, 0);
        Ok(Arc::new(Int64Array::from_iter_values(order.iter().map(|&g| self.counts[g as usize]))))
    }
}

/// Integer sums in the accumulator type `A` (Int64 or UInt64), wrapping on overflow as the
/// query's SUM does.
struct Sum<A: ArrowPrimitiveType> {
    column: usize,
    sums: Vec<A::Native>,
    seen: Vec<bool>,
}

impl<A: ArrowPrimitiveType> Sum<A> {
    fn new(column: usize) -> Self {
        Sum { column, sums: Vec::new(), seen: Vec::new() }
    }
}

impl<A: ArrowPrimitiveType> Fold for Sum<A> {
    fn update(&mut self, batch: &RecordBatch, gids: &[u32], groups: usize) -> Result<(), ArrowError> {
        self.sums.resize(groups, A::Native::ZERO);
        self.seen.resize(groups, false);
        let values = cast(batch.column(self.column), &A::DATA_TYPE)?;
        let v = values.as_primitive::<A>().values();
        let (sums, seen) = (&mut self.sums, &mut self.seen);
        each_valid(values.as_ref(), gids, |row, g| {
            sums[g] = sums[g].add_wrapping(v[row]);
            seen[g] = true;
        });
        Ok(())
    }

    fn finish(mut self: Box<Self>, order: &[u32], groups: usize) -> Result<ArrayRef, ArrowError> {
        self.sums.resize(groups, A::Native::ZERO);
        self.seen.resize(groups, false);
        let values: Vec<A::Native> = order.iter().map(|&g| self.sums[g as usize]).collect();
        Ok(Arc::new(PrimitiveArray::<A>::new(values.into(), validity(&self.seen, order))))
    }
}

/// Per-group float sums with Kahan compensation, added in row order the way pandas' groupby
/// adds them (an infinite value resets the compensation rather than turning it into NaN).
#[derive(Default)]
struct Compensated {
    sums: Vec<f64>,
    compensation: Vec<f64>,
}

impl Compensated {
    fn resize(&mut self, groups: usize) {
        self.sums.resize(groups, 0.0);
        self.compensation.resize(groups, 0.0);
    }

    #[inline]
    fn add(&mut self, g: usize, value: f64) {
        let y = value - self.compensation[g];
        let t = self.sums[g] + y;
        let c = t - self.sums[g] - y;
        self.compensation[g] = if c.is_nan() { 0.0 } else { c };
        self.sums[g] = t;
    }
}

/// A float sum (of floats, or of integers for the mean), compensated.
struct FloatSum {
    column: usize,
    /// Divide by the count: the mean.
    mean: bool,
    sums: Compensated,
    counts: Vec<u64>,
}

impl FloatSum {
    fn new(column: usize, mean: bool) -> Self {
        FloatSum { column, mean, sums: Compensated::default(), counts: Vec::new() }
    }
}

impl Fold for FloatSum {
    fn update(&mut self, batch: &RecordBatch, gids: &[u32], groups: usize) -> Result<(), ArrowError> {
        self.sums.resize(groups);
        self.counts.resize(groups, 0);
        let values = cast(batch.column(self.column), &DataType::Float64)?;
        let v = values.as_primitive::<Float64Type>().values();
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        each_valid(values.as_ref(), gids, |row, g| {
            sums.add(g, v[row]);
            counts[g] += 1;
        });
        Ok(())
    }

    fn finish(mut self: Box<Self>, order: &[u32], groups: usize) -> Result<ArrayRef, ArrowError> {
        self.sums.resize(groups);
        self.counts.resize(groups, 0);
        let seen: Vec<bool> = self.counts.iter().map(|&n| n > 0).collect();
        let values: Vec<f64> = order
            .iter()
            .map(|&g| {
                let (sum, n) = (self.sums.sums[g as usize], self.counts[g as usize]);
                if self.mean && n > 0 { sum / n as f64 } else { sum }
            })
            .collect();
        Ok(Arc::new(PrimitiveArray::<Float64Type>::new(values.into(), validity(&seen, order))))
    }
}

/// Min or max of an integer or temporal column, in the column's own type.
struct Extreme<T: ArrowPrimitiveType> {
    column: usize,
    max: bool,
    ty: DataType,
    best: Vec<T::Native>,
    seen: Vec<bool>,
}

impl<T: ArrowPrimitiveType> Fold for Extreme<T> {
    fn update(&mut self, batch: &RecordBatch, gids: &[u32], groups: usize) -> Result<(), ArrowError> {
        self.best.resize(groups, T::Native::default());
        self.seen.resize(groups, false);
        let array = batch.column(self.column);
        let v = array.as_primitive::<T>().values();
        let (best, seen, max) = (&mut self.best, &mut self.seen, self.max);
        each_valid(array.as_ref(), gids, |row, g| {
            let x = v[row];
            if !seen[g] || (if max { x.is_gt(best[g]) } else { x.is_lt(best[g]) }) {
                best[g] = x;
                seen[g] = true;
            }
        });
        Ok(())
    }

    fn finish(mut self: Box<Self>, order: &[u32], groups: usize) -> Result<ArrayRef, ArrowError> {
        self.best.resize(groups, T::Native::default());
        self.seen.resize(groups, false);
        let values: Vec<T::Native> = order.iter().map(|&g| self.best[g as usize]).collect();
        let array =
            PrimitiveArray::<T>::new(values.into(), validity(&self.seen, order)).with_data_type(self.ty);
        Ok(Arc::new(array))
    }
}

/// Min or max of a float column, skipping NaN: a group with values but none other than
/// NaN gives NaN, one without values NULL. Among numbers -0.0 is below 0.0, as the query
/// orders them.
struct FloatExtreme<T: ArrowPrimitiveType> {
    column: usize,
    max: bool,
    best: Vec<T::Native>,
    /// Per group: 0 no value yet, 1 only NaN so far, 2 a number.
    state: Vec<u8>,
}

impl<T: ArrowPrimitiveType> FloatExtreme<T> {
    fn new(column: usize, max: bool) -> Self {
        FloatExtreme { column, max, best: Vec::new(), state: Vec::new() }
    }
}

/// The float native types.
trait Nan {
    fn nan(self) -> bool;
}

impl Nan for f32 {
    fn nan(self) -> bool {
        self.is_nan()
    }
}

impl Nan for f64 {
    fn nan(self) -> bool {
        self.is_nan()
    }
}

impl<T: ArrowPrimitiveType> Fold for FloatExtreme<T>
where
    T::Native: Nan,
{
    fn update(&mut self, batch: &RecordBatch, gids: &[u32], groups: usize) -> Result<(), ArrowError> {
        self.best.resize(groups, T::Native::default());
        self.state.resize(groups, 0);
        let array = batch.column(self.column);
        let v = array.as_primitive::<T>().values();
        let (best, state, max) = (&mut self.best, &mut self.state, self.max);
        each_valid(array.as_ref(), gids, |row, g| {
            let x = v[row];
            if x.nan() {
                if state[g] == 0 {
                    best[g] = x;
                    state[g] = 1;
                }
            } else if state[g] < 2 || (if max { x.is_gt(best[g]) } else { x.is_lt(best[g]) }) {
                best[g] = x;
                state[g] = 2;
            }
        });
        Ok(())
    }

    fn finish(mut self: Box<Self>, order: &[u32], groups: usize) -> Result<ArrayRef, ArrowError> {
        self.best.resize(groups, T::Native::default());
        self.state.resize(groups, 0);
        let seen: Vec<bool> = self.state.iter().map(|&s| s > 0).collect();
        let values: Vec<T::Native> = order.iter().map(|&g| self.best[g as usize]).collect();
        Ok(Arc::new(PrimitiveArray::<T>::new(values.into(), validity(&seen, order))))
    }
}

/// Min or max of a text column (byte order, as the query compares strings).
struct TextExtreme<O: OffsetSizeTrait> {
    column: usize,
    max: bool,
    best: Vec<Option<String>>,
    _offsets: std::marker::PhantomData<O>,
}

impl<O: OffsetSizeTrait> TextExtreme<O> {
    fn new(column: usize, max: bool) -> Self {
        TextExtreme { column, max, best: Vec::new(), _offsets: std::marker::PhantomData }
    }
}

impl<O: OffsetSizeTrait> Fold for TextExtreme<O> {
    fn update(&mut self, batch: &RecordBatch, gids: &[u32], groups: usize) -> Result<(), ArrowError> {
        self.best.resize(groups, None);
        let array = batch.column(self.column);
        let text = array.as_string::<O>();
        let (best, max) = (&mut self.best, self.max);
        each_valid(array.as_ref(), gids, |row, g| {
            let x = text.value(row);
            let better = match &best[g] {
                None => true,
                Some(b) => {
                    if max {
                        x > b.as_str()
                    } else {
                        x < b.as_str()
                    }
                }
            };
            if better {
                best[g] = Some(x.to_owned());
            }
        });
        Ok(())
    }

    fn finish(mut self: Box<Self>, order: &[u32], groups: usize) -> Result<ArrayRef, ArrowError> {
        self.best.resize(groups, None);
        let array: GenericStringArray<O> = order.iter().map(|&g| self.best[g as usize].as_deref()).collect();
        Ok(Arc::new(array))
    }
}
