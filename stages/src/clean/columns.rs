//! Column-shaping operations: `select`, `drop` and `rename`. They change the schema, never
//! the rows.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_core::StageError;
use sluice_core::registry::Issue;

use super::steps::ColRef;
use super::table::Table;

/// The column indices to keep for `select` (in the listed order) or `drop`.
fn projection(schema: &Schema, cols: &[ColRef], select: bool, issues: &mut Vec<Issue>) -> Vec<usize> {
    let named: Vec<usize> = cols.iter().filter_map(|c| c.find(schema, issues)).collect();
    for (i, c) in cols.iter().enumerate() {
        if cols[..i].iter().any(|d| d.name == c.name) {
            issues.push(Issue::new(&c.key, format!("column `{}` is listed twice", c.name)));
        }
    }
    if select {
        let mut keep = Vec::with_capacity(named.len());
        for i in named {
            if !keep.contains(&i) {
                keep.push(i);
            }
        }
        keep
    } else {
        (0..schema.fields().len()).filter(|i| !named.contains(i)).collect()
    }
}

/// Schema after `select` / `drop`.
pub fn derive_projection(
    schema: &SchemaRef,
    cols: &[ColRef],
    select: bool,
    key: &str,
    issues: &mut Vec<Issue>,
) -> SchemaRef {
    let keep = projection(schema, cols, select, issues);
    if keep.is_empty() && !schema.fields().is_empty() {
        issues.push(Issue::new(key, "this step leaves no columns"));
    }
    Arc::new(Schema::new_with_metadata(
        keep.iter().map(|&i| schema.field(i).clone()).collect::<Vec<Field>>(),
        schema.metadata().clone(),
    ))
}

/// Schema after `rename`; a new name that collides with a column is an issue.
pub fn derive_rename(schema: &SchemaRef, renames: &[(ColRef, String)], issues: &mut Vec<Issue>) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (col, new) in renames {
        if let Some(i) = col.find(schema, issues) {
            fields[i] = fields[i].clone().with_name(new);
        }
    }
    for (i, f) in fields.iter().enumerate() {
        if fields[..i].iter().any(|g| g.name() == f.name()) {
            let key = renames.iter().find(|(_, n)| n == f.name()).map_or("rename", |(c, _)| c.key.as_str());
            issues.push(
                Issue::new(key, format!("after renaming, two columns are called `{}`", f.name()))
                    .with_help("pick a name no other column has, or drop that column first"),
            );
        }
    }
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Applies `select`/`drop`: the derived schema names the columns to keep.
pub fn apply_projection(table: Table, out: SchemaRef) -> Result<Table, StageError> {
    let indices: Vec<usize> = out
        .fields()
        .iter()
        .map(|f| table.schema.index_of(f.name()))
        .collect::<Result<_, _>>()
        .map_err(|e| StageError::arrow("selecting columns", e))?;
    table.map(out.clone(), |b| {
        let cols = indices.iter().map(|&i| b.column(i).clone()).collect();
        RecordBatch::try_new(out.clone(), cols).map_err(|e| StageError::arrow("selecting columns", e))
    })
}

/// Applies `rename`: same columns, new schema.
pub fn apply_rename(table: Table, out: SchemaRef) -> Result<Table, StageError> {
    table.map(out.clone(), |b| {
        RecordBatch::try_new(out.clone(), b.columns().to_vec())
            .map_err(|e| StageError::arrow("renaming columns", e))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::DataType;

    use super::*;

    fn input() -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("名前", DataType::Utf8, true),
            Field::new("c", DataType::Int64, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("é"), None])),
                Arc::new(Int64Array::from(vec![None::<i64>, None])),
            ],
        )
        .unwrap();
        Table::from_input(schema, vec![b])
    }

    fn cols(names: &[&str]) -> Vec<ColRef> {
        names.iter().enumerate().map(|(i, n)| ColRef::new(*n, format!("k.{i}"))).collect()
    }

    #[test]
    fn select_reorders_and_drop_removes() {
        let t = input();
        let mut issues = Vec::new();
        let s = derive_projection(&t.schema, &cols(&["c", "名前"]), true, "k", &mut issues);
        assert!(issues.is_empty());
        let out = apply_projection(t.clone(), s).unwrap();
        assert_eq!(out.batches[0].schema().field(0).name(), "c");
        assert_eq!(out.batches[0].num_columns(), 2);
        let s = derive_projection(&t.schema, &cols(&["a"]), false, "k", &mut issues);
        let out = apply_projection(t, s).unwrap();
        assert_eq!(out.schema.fields().len(), 2);
        assert_eq!(out.rows(), 2);
    }

    #[test]
    fn unknown_and_repeated_columns_are_issues() {
        let t = input();
        let mut issues = Vec::new();
        derive_projection(&t.schema, &cols(&["aa", "c", "c"]), true, "k", &mut issues);
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].key, "k.0");
        assert_eq!(issues[0].help.as_deref(), Some("did you mean `a`?"));
        assert_eq!(issues[1].key, "k.2");
        let mut issues = Vec::new();
        derive_projection(&t.schema, &cols(&["a", "名前", "c"]), false, "k", &mut issues);
        assert_eq!(issues[0].message, "this step leaves no columns");
    }

    #[test]
    fn rename_keeps_data_and_refuses_collisions() {
        let t = input();
        let mut issues = Vec::new();
        let s = derive_rename(&t.schema, &[(ColRef::new("名前", "rename.名前"), "name".into())], &mut issues);
        assert!(issues.is_empty());
        let out = apply_rename(t.clone(), s).unwrap();
        assert_eq!(out.batches[0].schema().field(1).name(), "name");
        derive_rename(&t.schema, &[(ColRef::new("a", "rename.a"), "c".into())], &mut issues);
        assert_eq!(issues[0].key, "rename.a");
    }
}
