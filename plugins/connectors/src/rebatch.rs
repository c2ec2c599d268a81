//! Regrouping record batches to the requested batch size, so the batches a reader yields do
//! not depend on how it happened to split its input internally.

use std::collections::VecDeque;

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// Buffers batches of any size and hands them out `size` rows at a time.
#[derive(Debug)]
pub(crate) struct Rebatcher {
    schema: SchemaRef,
    size: usize,
    queue: VecDeque<RecordBatch>,
    rows: usize,
}

impl Rebatcher {
    /// A rebatcher producing batches of `size` rows (at least 1).
    pub(crate) fn new(schema: SchemaRef, size: usize) -> Self {
        Rebatcher { schema, size: size.max(1), queue: VecDeque::new(), rows: 0 }
    }

    /// Adds rows.
    pub(crate) fn push(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.rows += batch.num_rows();
            self.queue.push_back(batch);
        }
    }

    /// A full batch, if enough rows are buffered.
    pub(crate) fn pop_full(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows >= self.size { self.take(self.size).map(Some) } else { Ok(None) }
    }

    /// Whatever is left (at the end of the input).
    pub(crate) fn pop_rest(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows > 0 { self.take(self.rows).map(Some) } else { Ok(None) }
    }

    fn take(&mut self, n: usize) -> Result<RecordBatch, ArrowError> {
        let mut pieces = Vec::new();
        let mut need = n;
        while need > 0 {
            let Some(front) = self.queue.pop_front() else { break };
            let len = front.num_rows();
            if len <= need {
                need -= len;
                pieces.push(front);
            } else {
                // Slicing is zero-copy; only batches straddling a boundary get copied below.
                pieces.push(front.slice(0, need));
                self.queue.push_front(front.slice(need, len - need));
                need = 0;
            }
        }
        self.rows -= n - need;
        match pieces.len() {
            1 => Ok(pieces.swap_remove(0)),
            _ => concat_batches(&self.schema, &pieces),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(schema: &SchemaRef, vals: std::ops::Range<i64>) -> RecordBatch {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(vals))]).unwrap()
    }

    #[test]
    fn batches_come_out_at_the_requested_size_whatever_goes_in() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let mut r = Rebatcher::new(schema.clone(), 4);
        r.push(batch(&schema, 0..3));
        assert!(r.pop_full().unwrap().is_none());
        r.push(batch(&schema, 3..10));
        let mut out = Vec::new();
        while let Some(b) = r.pop_full().unwrap() {
            out.push(b);
        }
        out.extend(r.pop_rest().unwrap());
        let sizes: Vec<_> = out.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let last = out[2].column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(last.values(), &[8, 9]);
        assert!(r.pop_rest().unwrap().is_none());
    }
}
