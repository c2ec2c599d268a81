//! Turning tokenized fields into Arrow arrays, one column at a time (one type dispatch per
//! column, tight loops per value). Values that do not parse are reported per row; the
//! caller drops those rows.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{ArrayRef, BooleanArray, BooleanBufferBuilder, PrimitiveArray, StringArray};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType,
};

use super::tokenizer::{FieldBuf, Span};
use crate::schema_decl::with_article;
use crate::timestamp_format::TimestampFormat;
use crate::values::{self, DateCache};

/// Which field texts mean NULL.
#[derive(Debug, Clone)]
pub(crate) struct NullMarkers {
    /// The common case (`null_values = [""]`), tested without comparing strings.
    empty_only: bool,
    markers: Vec<Vec<u8>>,
}

impl NullMarkers {
    /// Markers from the `null_values` key.
    pub(crate) fn new(values: &[String]) -> Self {
        let markers: Vec<Vec<u8>> = values.iter().map(|v| v.as_bytes().to_vec()).collect();
        NullMarkers { empty_only: markers.len() == 1 && markers[0].is_empty(), markers }
    }

    /// Whether `field` is NULL.
    #[inline]
    pub(crate) fn is_null(&self, field: &[u8]) -> bool {
        if self.empty_only { field.is_empty() } else { self.markers.iter().any(|m| m == field) }
    }
}

/// Why a column has its type, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Declared in `schema`.
    Declared,
    /// Inferred from this many sampled rows.
    Inferred(usize),
}

/// One output column.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    /// Column name.
    pub name: String,
    /// Arrow type (one of those `parse_type_name` produces).
    pub ty: DataType,
    /// Why it has that type.
    pub origin: Origin,
    /// Floats use a decimal comma.
    pub decimal_comma: bool,
    /// The format of a timestamp column, when not ISO 8601.
    pub timestamp_format: Option<Arc<TimestampFormat>>,
}

/// A value that did not parse: (row index, reason).
pub(crate) type BadValue = (usize, String);

/// The fields of `rows` records, `ncols` per record, as they sit in a `FieldBuf`.
pub(crate) struct Fields<'a> {
    /// Tokenizer input.
    pub input: &'a [u8],
    /// Tokenizer output.
    pub buf: &'a FieldBuf,
    /// Fields per record.
    pub ncols: usize,
    /// Number of records.
    pub rows: usize,
}

impl Fields<'_> {
    fn column(&self, c: usize) -> impl Iterator<Item = Span> + '_ {
        self.buf.spans.iter().skip(c).step_by(self.ncols.max(1)).copied().take(self.rows)
    }
}

fn show(field: &[u8]) -> String {
    let s = String::from_utf8_lossy(field);
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

fn bad_value_reason(col: &Column, field: &[u8]) -> String {
    if let (DataType::Timestamp(..), Some(f)) = (&col.ty, &col.timestamp_format) {
        return format!(
            "column `{}`: `{}` does not match the timestamp format `{}`",
            col.name,
            show(field),
            f.as_str()
        );
    }
    let why = match col.origin {
        Origin::Declared => "declared in `schema`".to_owned(),
        Origin::Inferred(n) => format!(
            "type inferred from the first {n} rows; declare it in `schema` to read it as another type"
        ),
    };
    format!("column `{}`: `{}` is not {} ({why})", col.name, show(field), with_article(&col.ty))
}

/// Builds column `c`; unparsable values become NULL and are reported in `bad`.
pub(crate) fn build(
    col: &Column,
    c: usize,
    f: &Fields<'_>,
    nulls: &NullMarkers,
    bad: &mut Vec<BadValue>,
) -> ArrayRef {
    match &col.ty {
        DataType::Int64 => Arc::new(primitive::<Int64Type>(col, c, f, nulls, bad, values::parse_i64)),
        DataType::Int32 => Arc::new(primitive::<Int32Type>(col, c, f, nulls, bad, |b| {
            values::parse_i64(b).and_then(|v| i32::try_from(v).ok())
        })),
        DataType::Float64 if col.decimal_comma => {
            Arc::new(primitive::<Float64Type>(col, c, f, nulls, bad, values::parse_f64_comma))
        }
        DataType::Float64 => Arc::new(primitive::<Float64Type>(col, c, f, nulls, bad, values::parse_f64)),
        DataType::Float32 if col.decimal_comma => {
            Arc::new(primitive::<Float32Type>(col, c, f, nulls, bad, |b| {
                values::parse_f64_comma(b).and_then(values::to_f32)
            }))
        }
        DataType::Float32 => Arc::new(primitive::<Float32Type>(col, c, f, nulls, bad, values::parse_f32)),
        DataType::Timestamp(TimeUnit::Microsecond, None) if col.timestamp_format.is_some() => {
            let format = col.timestamp_format.clone();
            Arc::new(primitive::<TimestampMicrosecondType>(col, c, f, nulls, bad, |b| {
                format.as_ref().and_then(|fmt| fmt.parse(b))
            }))
        }
        DataType::Date32 => {
            let mut cache = DateCache::default();
            Arc::new(primitive::<Date32Type>(col, c, f, nulls, bad, |b| cache.parse_date(b)))
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            let mut cache = DateCache::default();
            Arc::new(primitive::<TimestampMicrosecondType>(col, c, f, nulls, bad, |b| {
                cache.parse_timestamp(b)
            }))
        }
        DataType::Boolean => Arc::new(boolean(col, c, f, nulls, bad)),
        // Utf8, and anything else `parse_type_name` might learn later, is read as text.
        _ => Arc::new(utf8(col, c, f, nulls, bad)),
    }
}

fn primitive<T: ArrowPrimitiveType>(
    col: &Column,
    c: usize,
    f: &Fields<'_>,
    nulls: &NullMarkers,
    bad: &mut Vec<BadValue>,
    mut parse: impl FnMut(&[u8]) -> Option<T::Native>,
) -> PrimitiveArray<T> {
    let mut vals: Vec<T::Native> = Vec::with_capacity(f.rows);
    let mut valid = NullBufferBuilder::new(f.rows);
    for (row, span) in f.column(c).enumerate() {
        let text = f.buf.get(f.input, span);
        if nulls.is_null(text) {
            vals.push(T::Native::default());
            valid.append_null();
            continue;
        }
        match parse(text) {
            Some(v) => {
                vals.push(v);
                valid.append_non_null();
            }
            None => {
                bad.push((row, bad_value_reason(col, text)));
                vals.push(T::Native::default());
                valid.append_null();
            }
        }
    }
    PrimitiveArray::new(ScalarBuffer::from(vals), valid.finish())
}

fn boolean(
    col: &Column,
    c: usize,
    f: &Fields<'_>,
    nulls: &NullMarkers,
    bad: &mut Vec<BadValue>,
) -> BooleanArray {
    let mut vals = BooleanBufferBuilder::new(f.rows);
    let mut valid = NullBufferBuilder::new(f.rows);
    for (row, span) in f.column(c).enumerate() {
        let text = f.buf.get(f.input, span);
        let v = if nulls.is_null(text) {
            None
        } else {
            let v = values::parse_bool(text);
            if v.is_none() {
                bad.push((row, bad_value_reason(col, text)));
            }
            v
        };
        vals.append(v.unwrap_or(false));
        valid.append(v.is_some());
    }
    BooleanArray::new(vals.finish(), valid.finish())
}

fn utf8(col: &Column, c: usize, f: &Fields<'_>, nulls: &NullMarkers, bad: &mut Vec<BadValue>) -> StringArray {
    let (offsets, data, valid) = utf8_parts(c, f, nulls, None);
    // Arrow validates the whole value buffer at once, which is much cheaper than checking
    // each field; only when that fails do we look for the culprit rows.
    match StringArray::try_new(offsets, Buffer::from_vec(data), valid) {
        Ok(a) => a,
        Err(_) => {
            let mut invalid = vec![false; f.rows];
            for (row, span) in f.column(c).enumerate() {
                if std::str::from_utf8(f.buf.get(f.input, span)).is_err() {
                    invalid[row] = true;
                    bad.push((row, format!("column `{}`: invalid UTF-8", col.name)));
                }
            }
            let (offsets, data, valid) = utf8_parts(c, f, nulls, Some(&invalid));
            StringArray::try_new(offsets, Buffer::from_vec(data), valid)
                .unwrap_or_else(|_| StringArray::new_null(f.rows))
        }
    }
}

/// Appends a field's text. Most fields are short: copying a fixed 16-byte window (then
/// cutting back) is much cheaper than a `memcpy` call per field.
#[inline]
fn push_text(data: &mut Vec<u8>, text: &[u8], window: Option<&[u8; 16]>) {
    let len = data.len();
    match window {
        Some(w) if text.len() <= 16 && data.capacity() - len >= 16 => {
            data.extend_from_slice(w);
            data.truncate(len + text.len());
        }
        _ => data.extend_from_slice(text),
    }
}

/// Offsets, bytes and validity of a text column; `skip` rows become NULL.
fn utf8_parts(
    c: usize,
    f: &Fields<'_>,
    nulls: &NullMarkers,
    skip: Option<&[bool]>,
) -> (OffsetBuffer<i32>, Vec<u8>, Option<NullBuffer>) {
    // 16 spare bytes let `push_text` copy in fixed-size blocks up to the very end.
    let mut data: Vec<u8> = Vec::with_capacity(FieldBuf::text_len(f.column(c)) + 16);
    let mut offsets: Vec<i32> = Vec::with_capacity(f.rows + 1);
    offsets.push(0);
    let mut valid = NullBufferBuilder::new(f.rows);
    for (row, span) in f.column(c).enumerate() {
        let text = f.buf.get(f.input, span);
        if nulls.is_null(text) || skip.is_some_and(|s| s[row]) {
            valid.append_null();
        } else {
            push_text(&mut data, text, f.buf.window16(f.input, span));
            valid.append_non_null();
        }
        // The tokenizer input is below 2 GiB (MAX_INPUT), so the text of one column fits i32.
        offsets.push(data.len() as i32);
    }
    (OffsetBuffer::new(ScalarBuffer::from(offsets)), data, valid.finish())
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};

    use super::super::tokenizer::{Cursor, Dialect, Step};
    use super::*;

    fn tokenize(input: &[u8]) -> (FieldBuf, usize) {
        let mut fb = FieldBuf::default();
        let mut cur = Cursor::new(input, Dialect::default(), true);
        let mut rows = 0;
        while let Step::Record(_) = cur.next_record(&mut fb) {
            rows += 1;
        }
        (fb, rows)
    }

    fn col(name: &str, ty: DataType, origin: Origin) -> Column {
        Column { name: name.into(), ty, origin, decimal_comma: false, timestamp_format: None }
    }

    #[test]
    fn values_parse_into_typed_arrays_with_nulls_and_bad_rows() {
        let input = b"1,x,2.5,true,NA\n,y,NA,FALSE,3\nabc,\xff,1e3,maybe,4\n";
        let (fb, rows) = tokenize(input);
        let f = Fields { input, buf: &fb, ncols: 5, rows };
        let nulls = NullMarkers::new(&["".into(), "NA".into()]);
        let mut bad = Vec::new();
        let ints = build(&col("n", DataType::Int64, Origin::Inferred(10)), 0, &f, &nulls, &mut bad);
        let ints = ints.as_primitive::<Int64Type>();
        assert_eq!((ints.value(0), ints.is_null(1), ints.is_null(2)), (1, true, true));
        assert_eq!(bad, [(2, "column `n`: `abc` is not an int64 (type inferred from the first 10 rows; declare it in `schema` to read it as another type)".to_owned())]);
        bad.clear();
        let s = build(&col("s", DataType::Utf8, Origin::Inferred(10)), 1, &f, &nulls, &mut bad);
        assert_eq!(s.as_string::<i32>().value(1), "y");
        assert_eq!(bad, [(2, "column `s`: invalid UTF-8".to_owned())]);
        bad.clear();
        let fl = build(&col("f", DataType::Float64, Origin::Declared), 2, &f, &nulls, &mut bad);
        assert_eq!(fl.as_primitive::<Float64Type>().value(2), 1000.0);
        assert!(fl.is_null(1));
        let b = build(&col("b", DataType::Boolean, Origin::Declared), 3, &f, &nulls, &mut bad);
        assert!(!b.as_boolean().value(1));
        assert_eq!(bad, [(2, "column `b`: `maybe` is not a bool (declared in `schema`)".to_owned())]);
    }
}
