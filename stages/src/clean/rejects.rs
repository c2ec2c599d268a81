//! The `rejects` output of a clean stage: each removed row as it came in (the stage's input
//! columns), plus which step removed it and why.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, UInt64Array};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_core::StageError;
use sluice_core::registry::Issue;

use super::steps::Step;

/// Columns added after the input's.
pub const EXTRA_COLUMNS: [&str; 3] = ["rejected_step", "rejected_op", "rejected_reason"];

const CHUNK: usize = 64 * 1024;

/// The rejects schema for an input schema.
pub fn schema(input: &SchemaRef) -> Result<SchemaRef, Issue> {
    let mut fields: Vec<Field> =
        input.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    if let Some(clash) = EXTRA_COLUMNS.iter().find(|c| input.index_of(c).is_ok()) {
        return Err(Issue::new(
            "keep_rejects",
            format!("the input already has a column `{clash}`, which the rejects output adds"),
        )
        .with_help("rename that column in an upstream stage"));
    }
    fields.push(Field::new(EXTRA_COLUMNS[0], DataType::UInt64, false));
    fields.push(Field::new(EXTRA_COLUMNS[1], DataType::Utf8, false));
    fields.push(Field::new(EXTRA_COLUMNS[2], DataType::Utf8, true));
    Ok(Arc::new(Schema::new(fields)))
}

/// Removed rows collected over the steps.
#[derive(Debug)]
pub struct Rejects {
    keep: bool,
    rows: Vec<(u64, u32, &'static str, Option<String>)>,
}

impl Rejects {
    /// Collects only when `keep`.
    pub fn new(keep: bool) -> Self {
        Rejects { keep, rows: Vec::new() }
    }

    /// Records the rows `step` removed (input positions, with reasons when it gave them).
    pub fn add(&mut self, step: &Step, removed: Vec<u64>, reasons: Option<Vec<String>>) {
        if !self.keep {
            return;
        }
        let mut reasons = reasons.map(Vec::into_iter);
        for id in removed {
            let reason = reasons.as_mut().and_then(Iterator::next);
            self.rows.push((id, step.index as u32, step.name, reason));
        }
    }

    /// The rejects in input order, in batches of `schema` gathered from the input batches.
    pub fn batches(
        mut self,
        schema: &SchemaRef,
        input: &[RecordBatch],
    ) -> Result<Vec<RecordBatch>, StageError> {
        self.rows.sort_by_key(|r| r.0);
        let mut starts = Vec::with_capacity(input.len());
        let mut total = 0u64;
        for b in input {
            starts.push(total);
            total += b.num_rows() as u64;
        }
        let locate = |id: u64| -> Result<(usize, usize), StageError> {
            let b = starts
                .partition_point(|&s| s <= id)
                .checked_sub(1)
                .filter(|&b| b < input.len() && id < total);
            b.map(|b| (b, (id - starts[b]) as usize))
                .ok_or_else(|| StageError::Internal(format!("rejected row {id} is not in the input")))
        };
        let width = schema.fields().len() - EXTRA_COLUMNS.len();
        let mut out = Vec::new();
        for chunk in self.rows.chunks(CHUNK) {
            let indices = chunk.iter().map(|r| locate(r.0)).collect::<Result<Vec<_>, _>>()?;
            let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
            for c in 0..width {
                let parts: Vec<&dyn Array> = input.iter().map(|b| b.column(c).as_ref()).collect();
                cols.push(
                    interleave(&parts, &indices)
                        .map_err(|e| StageError::arrow("gathering rejected rows", e))?,
                );
            }
            cols.push(Arc::new(UInt64Array::from_iter_values(chunk.iter().map(|r| u64::from(r.1)))));
            cols.push(Arc::new(StringArray::from_iter_values(chunk.iter().map(|r| r.2))));
            cols.push(Arc::new(chunk.iter().map(|r| r.3.as_deref()).collect::<StringArray>()));
            out.push(
                RecordBatch::try_new(schema.clone(), cols)
                    .map_err(|e| StageError::arrow("building the rejects batch", e))?,
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use serde_json::json;

    use super::super::steps::parse;
    use super::*;

    #[test]
    fn rejects_come_back_in_input_order_with_step_and_reason() {
        let input_schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batches: Vec<RecordBatch> = [vec![10, 11], vec![12, 13, 14]]
            .into_iter()
            .map(|v| RecordBatch::try_new(input_schema.clone(), vec![Arc::new(Int64Array::from(v))]).unwrap())
            .collect();
        let (steps, _) = parse(json!({"filter": "a > 0", "dedup": true}).as_object().unwrap());
        let mut r = Rejects::new(true);
        r.add(&steps[1], vec![4], None);
        r.add(&steps[0], vec![1, 2], Some(vec!["x".into(), "y".into()]));
        let schema = schema(&input_schema).unwrap();
        let out = r.batches(&schema, &batches).unwrap();
        let b = &out[0];
        assert_eq!(b.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec(), [11, 12, 14]);
        assert_eq!(b.column(1).as_primitive::<arrow::datatypes::UInt64Type>().values().to_vec(), [0, 0, 1]);
        assert_eq!(b.column(2).as_string::<i32>().value(2), "dedup");
        assert_eq!(b.column(3).as_string::<i32>().iter().collect::<Vec<_>>(), [Some("x"), Some("y"), None]);
    }

    #[test]
    fn a_clashing_input_column_is_an_issue_and_nothing_is_kept_when_off() {
        let s = Arc::new(Schema::new(vec![Field::new("rejected_op", DataType::Utf8, true)]));
        assert_eq!(schema(&s).unwrap_err().key, "keep_rejects");
        let (steps, _) = parse(json!({"dedup": true}).as_object().unwrap());
        let mut r = Rejects::new(false);
        r.add(&steps[0], vec![1], None);
        assert!(r.rows.is_empty());
    }
}
