//! What the connectors' tests share: reading a connector to the end, and looking at the
//! result.

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use sluice_plugin::{BatchReader, ConnectorError, Reject};

/// Everything a read produced.
#[derive(Debug)]
pub(crate) struct Out {
    /// The batches (one empty batch when the read produced none, so the schema is known).
    pub batches: Vec<RecordBatch>,
    /// Rows refused, in order.
    pub rejects: Vec<Reject>,
}

impl Out {
    /// Reads `r` to the end, checking every batch has the reader's schema.
    pub fn drain(r: &mut dyn BatchReader) -> Result<Out, ConnectorError> {
        let mut batches = Vec::new();
        let mut rejects = Vec::new();
        while let Some(b) = r.next_batch() {
            let b = b?;
            assert_eq!(b.schema(), r.schema());
            batches.push(b);
            rejects.extend(r.take_rejects());
        }
        rejects.extend(r.take_rejects());
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(r.schema()));
        }
        Ok(Out { batches, rejects })
    }

    /// The schema of the output.
    pub fn schema(&self) -> SchemaRef {
        self.batches[0].schema()
    }

    /// All rows as one batch: what was read, whatever the batch boundaries.
    pub fn combined(&self) -> RecordBatch {
        arrow::compute::concat_batches(&self.schema(), &self.batches).unwrap()
    }

    /// Row count.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Column types.
    pub fn types(&self) -> Vec<DataType> {
        self.schema().fields().iter().map(|f| f.data_type().clone()).collect()
    }

    /// Column names.
    pub fn names(&self) -> Vec<String> {
        self.schema().fields().iter().map(|f| f.name().clone()).collect()
    }

    /// Every row as displayed strings (`None` for NULL).
    pub fn table(&self) -> Vec<Vec<Option<String>>> {
        self.table_with(|c, r| array_value_to_string(c, r).unwrap())
    }

    /// Every row with each non-NULL value displayed by `show`.
    pub fn table_with(&self, show: impl Fn(&ArrayRef, usize) -> String) -> Vec<Vec<Option<String>>> {
        let mut out = Vec::new();
        for b in &self.batches {
            for r in 0..b.num_rows() {
                out.push(b.columns().iter().map(|c| (!c.is_null(r)).then(|| show(c, r))).collect());
            }
        }
        out
    }
}
