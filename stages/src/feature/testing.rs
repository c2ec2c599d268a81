//! Building small tables and reading columns back, for the transforms' unit tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::{cast, concat};
use arrow::datatypes::{DataType, Field, Schema};

use super::table::Table;

/// A one-batch table from named columns (all nullable).
pub(crate) fn batch(columns: Vec<(&str, ArrayRef)>) -> Table {
    let fields: Vec<Field> =
        columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    let schema = Arc::new(Schema::new(fields));
    let b = RecordBatch::try_new(Arc::clone(&schema), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    Table::new(schema, vec![b])
}

/// A column over all batches, cast to `ty`.
fn column(t: &Table, name: &str, ty: &DataType) -> ArrayRef {
    let i = t.schema.index_of(name).unwrap_or_else(|_| panic!("no column {name} in {:?}", t.schema));
    let parts: Vec<ArrayRef> = t.batches.iter().map(|b| cast(b.column(i), ty).unwrap()).collect();
    if parts.is_empty() {
        return arrow::array::new_empty_array(ty);
    }
    let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
    concat(&refs).unwrap()
}

/// A column as integers.
pub(crate) fn i64s(t: &Table, name: &str) -> Vec<Option<i64>> {
    let a = column(t, name, &DataType::Int64);
    a.as_any().downcast_ref::<Int64Array>().unwrap().iter().collect()
}

/// A column as floats.
pub(crate) fn f64s(t: &Table, name: &str) -> Vec<Option<f64>> {
    let a = column(t, name, &DataType::Float64);
    a.as_any().downcast_ref::<Float64Array>().unwrap().iter().collect()
}

/// A column as text.
pub(crate) fn strs(t: &Table, name: &str) -> Vec<Option<String>> {
    let a = column(t, name, &DataType::Utf8);
    a.as_any().downcast_ref::<StringArray>().unwrap().iter().map(|s| s.map(str::to_string)).collect()
}
