//! The table a chain of transforms passes along (a schema plus batches), and the bridge to
//! DataFusion for the transforms that are best expressed as a query.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;
use futures::StreamExt;
use sluice_core::StageError;

use super::step::Failure;

/// Name of the row-number column added for transforms that need a total order
/// (ties in `order_by` are broken by input position).
pub(crate) const ROW_ID: &str = "__sluice_row";

/// A table in memory.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// Schema of every batch.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl Table {
    /// A table of `batches` with `schema`.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        Table { schema, batches }
    }

    /// No rows.
    pub fn empty(schema: SchemaRef) -> Self {
        Table { schema, batches: Vec::new() }
    }

    /// Row count.
    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }

    /// The arrays of column `index`, batch by batch.
    pub fn column(&self, index: usize) -> Vec<ArrayRef> {
        self.batches.iter().map(|b| Arc::clone(b.column(index))).collect()
    }

    /// Rebuilds every batch with `schema` from the columns `f` returns for it.
    pub fn map_batches<F>(&self, schema: SchemaRef, mut f: F) -> Result<Table, Failure>
    where
        F: FnMut(&RecordBatch) -> Result<Vec<ArrayRef>, Failure>,
    {
        let mut out = Vec::with_capacity(self.batches.len());
        for b in &self.batches {
            let columns = f(b)?;
            out.push(RecordBatch::try_new(Arc::clone(&schema), columns)?);
        }
        Ok(Table::new(schema, out))
    }

    /// The same table with a trailing [`ROW_ID`] column (0, 1, 2, ... in input order).
    pub fn with_row_ids(&self) -> Result<Table, Failure> {
        let mut fields: Vec<Field> = self.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(ROW_ID, DataType::UInt64, false));
        let schema = Arc::new(Schema::new_with_metadata(fields, self.schema.metadata().clone()));
        let mut next = 0u64;
        self.map_batches(Arc::clone(&schema), |b| {
            let n = b.num_rows() as u64;
            let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(next..next + n));
            next += n;
            let mut columns = b.columns().to_vec();
            columns.push(ids);
            Ok(columns)
        })
    }

    /// Runs `sql` with this table registered as `t`; the result in its order.
    pub fn query(&self, sql: &str) -> Result<Table, Failure> {
        let table = self.clone();
        let text = sql.to_string();
        block_on(async move {
            let ctx = session();
            let mem = MemTable::try_new(Arc::clone(&table.schema), vec![table.batches])?;
            ctx.register_table("t", Arc::new(mem))?;
            let df = ctx.sql(&text).await?;
            collect(df).await
        })?
        .map_err(|e: DataFusionError| {
            Failure::Stage(StageError::Internal(format!(
                "a generated feature query failed: {}\n{sql}",
                e.strip_backtrace()
            )))
        })
    }
}

/// Executes a DataFrame into a table (its physical schema, batches in output order).
pub(crate) async fn collect(df: datafusion::dataframe::DataFrame) -> Result<Table, DataFusionError> {
    let mut stream = df.execute_stream().await?;
    let schema = stream.schema();
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        let b = b?;
        if b.num_rows() > 0 {
            batches.push(b);
        }
    }
    Ok(Table::new(schema, batches))
}

/// A DataFusion session for transforms: identifiers case-sensitive like the `sql` key, and
/// one partition, so floating-point aggregates add up in the same order on every run (the
/// stage promises bit-identical output for identical input).
pub(crate) fn session() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(8192)
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
        .set_bool("datafusion.sql_parser.collect_spans", true);
    SessionContext::new_with_config(config)
}

/// Runs a future on the shared SQL runtime.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, StageError> {
    let rt = crate::sql::runtime().map_err(StageError::Failed)?;
    Ok(rt.block_on(f))
}

/// A SQL identifier for a column name, whatever characters it holds.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Where new columns go: a name that exists is replaced in place, others are appended.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    /// The schema with the new columns.
    pub schema: SchemaRef,
    /// For each new column, the slot it replaces (`None` = appended).
    slots: Vec<Option<usize>>,
}

impl Placement {
    /// Places `new` fields into `input`.
    pub fn new(input: &Schema, new: Vec<Field>) -> Self {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut slots = Vec::with_capacity(new.len());
        for f in new {
            match fields.iter().position(|g| g.name() == f.name()) {
                Some(i) => {
                    fields[i] = f;
                    slots.push(Some(i));
                }
                None => {
                    fields.push(f);
                    slots.push(None);
                }
            }
        }
        Placement { schema: Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())), slots }
    }

    /// The batch's columns with `arrays` (one per new field) put in their slots.
    pub fn columns(&self, batch: &RecordBatch, arrays: Vec<ArrayRef>) -> Vec<ArrayRef> {
        let mut columns = batch.columns().to_vec();
        for (slot, a) in self.slots.iter().zip(arrays) {
            match slot {
                Some(i) => columns[*i] = a,
                None => columns.push(a),
            }
        }
        columns
    }
}
