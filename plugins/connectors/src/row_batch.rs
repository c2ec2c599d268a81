//! Assembling Arrow record batches row by row, for the database connectors: a database
//! hands out rows, Arrow wants columns. Each connector decodes a row into [`Cell`]s first
//! (so a row with one bad value can be refused whole), then appends the cells here.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::array::{ArrayBuilder, ArrayRef};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use sluice_plugin::ConnectorError;

/// One decoded value, already of the Arrow type of its column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    /// NULL.
    Null,
    /// An integer for an Int16, Int32 or Int64 column (in range for it).
    Int(i64),
    /// A float for a Float32 or Float64 column.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text for a Utf8 column.
    Text(Cow<'a, str>),
    /// Bytes for a Binary column.
    Bytes(&'a [u8]),
    /// Days since 1970-01-01 for a Date32 column.
    Days(i32),
    /// Microseconds since 1970-01-01 00:00 for a Timestamp column.
    Micros(i64),
    /// The unscaled value for a Decimal128 column.
    Decimal(i128),
}

/// A builder for one column.
enum ColumnBuilder {
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Micros(TimestampMicrosecondBuilder),
    Decimal(Decimal128Builder),
}

fn internal(what: String) -> ConnectorError {
    ConnectorError::Other(format!("internal error (this is a bug): {what}"))
}

impl ColumnBuilder {
    fn new(ty: &DataType, cap: usize) -> Result<Self, ConnectorError> {
        Ok(match ty {
            DataType::Int16 => ColumnBuilder::I16(Int16Builder::with_capacity(cap)),
            DataType::Int32 => ColumnBuilder::I32(Int32Builder::with_capacity(cap)),
            DataType::Int64 => ColumnBuilder::I64(Int64Builder::with_capacity(cap)),
            DataType::Float32 => ColumnBuilder::F32(Float32Builder::with_capacity(cap)),
            DataType::Float64 => ColumnBuilder::F64(Float64Builder::with_capacity(cap)),
            DataType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(cap)),
            DataType::Utf8 => ColumnBuilder::Utf8(StringBuilder::with_capacity(cap, cap * 16)),
            DataType::Binary => ColumnBuilder::Binary(BinaryBuilder::with_capacity(cap, cap * 16)),
            DataType::Date32 => ColumnBuilder::Date(Date32Builder::with_capacity(cap)),
            DataType::Timestamp(TimeUnit::Microsecond, _) => ColumnBuilder::Micros(
                TimestampMicrosecondBuilder::with_capacity(cap).with_data_type(ty.clone()),
            ),
            DataType::Decimal128(_, _) => {
                ColumnBuilder::Decimal(Decimal128Builder::with_capacity(cap).with_data_type(ty.clone()))
            }
            other => return Err(internal(format!("no row builder for Arrow type {other}"))),
        })
    }

    /// Whether `cell` can be appended to this column.
    fn accepts(&self, cell: &Cell<'_>) -> bool {
        matches!(
            (self, cell),
            (_, Cell::Null)
                | (ColumnBuilder::I16(_) | ColumnBuilder::I32(_) | ColumnBuilder::I64(_), Cell::Int(_))
                | (ColumnBuilder::F32(_) | ColumnBuilder::F64(_), Cell::Float(_))
                | (ColumnBuilder::Bool(_), Cell::Bool(_))
                | (ColumnBuilder::Utf8(_), Cell::Text(_))
                | (ColumnBuilder::Binary(_), Cell::Bytes(_))
                | (ColumnBuilder::Date(_), Cell::Days(_))
                | (ColumnBuilder::Micros(_), Cell::Micros(_))
                | (ColumnBuilder::Decimal(_), Cell::Decimal(_))
        )
    }

    /// Appends `cell`, which [`accepts`](Self::accepts) has approved; anything else
    /// becomes NULL.
    fn append(&mut self, cell: &Cell<'_>) {
        // The narrowing casts are safe: decoders only produce values in range for the column.
        match (self, cell) {
            (ColumnBuilder::I16(b), Cell::Int(v)) => b.append_value(*v as i16),
            (ColumnBuilder::I32(b), Cell::Int(v)) => b.append_value(*v as i32),
            (ColumnBuilder::I64(b), Cell::Int(v)) => b.append_value(*v),
            (ColumnBuilder::F32(b), Cell::Float(v)) => b.append_value(*v as f32),
            (ColumnBuilder::F64(b), Cell::Float(v)) => b.append_value(*v),
            (ColumnBuilder::Bool(b), Cell::Bool(v)) => b.append_value(*v),
            (ColumnBuilder::Utf8(b), Cell::Text(v)) => b.append_value(v),
            (ColumnBuilder::Binary(b), Cell::Bytes(v)) => b.append_value(v),
            (ColumnBuilder::Date(b), Cell::Days(v)) => b.append_value(*v),
            (ColumnBuilder::Micros(b), Cell::Micros(v)) => b.append_value(*v),
            (ColumnBuilder::Decimal(b), Cell::Decimal(v)) => b.append_value(*v),
            (ColumnBuilder::I16(b), _) => b.append_null(),
            (ColumnBuilder::I32(b), _) => b.append_null(),
            (ColumnBuilder::I64(b), _) => b.append_null(),
            (ColumnBuilder::F32(b), _) => b.append_null(),
            (ColumnBuilder::F64(b), _) => b.append_null(),
            (ColumnBuilder::Bool(b), _) => b.append_null(),
            (ColumnBuilder::Utf8(b), _) => b.append_null(),
            (ColumnBuilder::Binary(b), _) => b.append_null(),
            (ColumnBuilder::Date(b), _) => b.append_null(),
            (ColumnBuilder::Micros(b), _) => b.append_null(),
            (ColumnBuilder::Decimal(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::I16(b) => Arc::new(b.finish()),
            ColumnBuilder::I32(b) => Arc::new(b.finish()),
            ColumnBuilder::I64(b) => Arc::new(b.finish()),
            ColumnBuilder::F32(b) => Arc::new(b.finish()),
            ColumnBuilder::F64(b) => Arc::new(b.finish()),
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Micros(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            ColumnBuilder::I16(b) => b.len(),
            ColumnBuilder::I32(b) => b.len(),
            ColumnBuilder::I64(b) => b.len(),
            ColumnBuilder::F32(b) => b.len(),
            ColumnBuilder::F64(b) => b.len(),
            ColumnBuilder::Bool(b) => b.len(),
            ColumnBuilder::Utf8(b) => b.len(),
            ColumnBuilder::Binary(b) => b.len(),
            ColumnBuilder::Date(b) => b.len(),
            ColumnBuilder::Micros(b) => b.len(),
            ColumnBuilder::Decimal(b) => b.len(),
        }
    }
}

/// Collects rows of cells into record batches of one schema.
pub(crate) struct RowBatchBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl RowBatchBuilder {
    /// A builder for `schema`, sized for `capacity` rows per batch.
    pub(crate) fn new(schema: SchemaRef, capacity: usize) -> Result<Self, ConnectorError> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type(), capacity))
            .collect::<Result<_, _>>()?;
        Ok(RowBatchBuilder { schema, columns, rows: 0 })
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Appends one row; `cells` has one cell per column, each of its column's type.
    pub(crate) fn push_row(&mut self, cells: &[Cell<'_>]) -> Result<(), ConnectorError> {
        if cells.len() != self.columns.len() {
            return Err(internal(format!(
                "row of {} values for {} columns",
                cells.len(),
                self.columns.len()
            )));
        }
        // Check the whole row first: appending part of a row would leave the columns with
        // different lengths.
        if let Some((_, c)) = self.columns.iter().zip(cells).find(|(b, c)| !b.accepts(c)) {
            return Err(internal(format!("value {c:?} does not match its column's builder")));
        }
        for (b, c) in self.columns.iter_mut().zip(cells) {
            b.append(c);
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows appended so far as one batch; the builder starts empty again.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, ConnectorError> {
        debug_assert!(self.columns.iter().all(|c| c.len() == self.rows));
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|source| ConnectorError::Arrow { context: "assembling a batch of rows".into(), source })
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Decimal128Type, Field, Int16Type, Schema, TimestampMicrosecondType};

    use super::*;

    #[test]
    fn rows_of_cells_become_typed_columns_with_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int16, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("d", DataType::Date32, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("n", DataType::Decimal128(10, 2), true),
        ]));
        let mut b = RowBatchBuilder::new(schema.clone(), 4).unwrap();
        b.push_row(&[
            Cell::Int(7),
            Cell::Text("x".into()),
            Cell::Days(3),
            Cell::Micros(5),
            Cell::Decimal(150),
        ])
        .unwrap();
        b.push_row(&[Cell::Null, Cell::Null, Cell::Null, Cell::Null, Cell::Null]).unwrap();
        assert_eq!(b.rows(), 2);
        let batch = b.finish().unwrap();
        assert_eq!(batch.schema(), schema);
        assert_eq!(batch.column(0).as_primitive::<Int16Type>().value(0), 7);
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "x");
        assert_eq!(batch.column(2).as_primitive::<Date32Type>().value(0), 3);
        assert_eq!(batch.column(3).as_primitive::<TimestampMicrosecondType>().value(0), 5);
        assert_eq!(batch.column(4).as_primitive::<Decimal128Type>().value(0), 150);
        assert!(batch.columns().iter().all(|c| c.is_null(1)));
        assert_eq!(b.rows(), 0);
    }

    #[test]
    fn a_cell_of_the_wrong_kind_is_an_internal_error_not_a_panic() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let mut b = RowBatchBuilder::new(schema, 1).unwrap();
        b.push_row(&[Cell::Int(0), Cell::Int(0)]).unwrap();
        let err = b.push_row(&[Cell::Int(1), Cell::Text("x".into())]).unwrap_err().to_string();
        assert!(err.contains("this is a bug"), "{err}");
        assert!(b.push_row(&[Cell::Int(1)]).is_err());
        b.push_row(&[Cell::Int(1), Cell::Int(2)]).unwrap();
        // The refused rows left nothing behind; the good ones are intact.
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(1).as_primitive::<arrow::datatypes::Int64Type>().values(), &[0, 2]);
    }
}
