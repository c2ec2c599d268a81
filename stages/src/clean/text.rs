//! String normalisation: `trim` (Unicode whitespace at both ends) and `lowercase` (Unicode
//! lowercasing). NULL stays NULL; other columns are untouched.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, GenericStringArray, GenericStringBuilder, OffsetSizeTrait};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use sluice_core::StageError;
use sluice_core::registry::Issue;
use sluice_plugin::type_name;

use super::steps::{ColRef, columns};
use super::table::{Applied, OpError, Table};

/// Which string operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Remove leading and trailing whitespace.
    Trim,
    /// Lowercase.
    Lowercase,
}

/// `trim = ["Description"]` / `lowercase = ["Country"]`.
#[derive(Debug, Clone)]
pub struct TextOp {
    /// What to do.
    pub kind: TextKind,
    /// To which columns.
    pub columns: Vec<ColRef>,
}

impl TextOp {
    /// Reads the op's config.
    pub fn parse(op: &str, value: &Value, key: &str) -> Result<TextOp, Vec<Issue>> {
        let kind = if op == "trim" { TextKind::Trim } else { TextKind::Lowercase };
        Ok(TextOp { kind, columns: columns(value, key, op)? })
    }

    fn name(&self) -> &'static str {
        match self.kind {
            TextKind::Trim => "trim",
            TextKind::Lowercase => "lowercase",
        }
    }

    /// Checks the columns exist and are strings; the schema is unchanged.
    pub fn derive(&self, schema: &SchemaRef, issues: &mut Vec<Issue>) -> SchemaRef {
        for c in &self.columns {
            let Some(i) = c.find(schema, issues) else { continue };
            let ty = schema.field(i).data_type();
            if !is_text(ty) {
                issues.push(
                    Issue::new(
                        &c.key,
                        format!(
                            "`{}` works on strings, but column `{}` is {}",
                            self.name(),
                            c.name,
                            type_name(ty)
                        ),
                    )
                    .with_help(format!("remove `{}` from the list", c.name)),
                );
            }
        }
        schema.clone()
    }

    /// Rewrites the named columns, batches in parallel.
    pub fn apply(&self, table: Table) -> Result<Applied, OpError> {
        let indices: Vec<usize> =
            self.columns.iter().filter_map(|c| table.schema.index_of(&c.name).ok()).collect();
        let schema = table.schema.clone();
        let kind = self.kind;
        let table = table.map(schema, |b| {
            let mut cols = b.columns().to_vec();
            for &i in &indices {
                cols[i] = rewrite(&cols[i], kind)?;
            }
            RecordBatch::try_new(b.schema(), cols).map_err(|e| StageError::arrow("rewriting strings", e))
        })?;
        Ok(Applied::same(table))
    }
}

/// Strings, plain or dictionary-encoded (pandas writes a Categorical column as a
/// dictionary of strings).
fn is_text(ty: &DataType) -> bool {
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text(values),
        _ => false,
    }
}

fn rewrite(col: &ArrayRef, kind: TextKind) -> Result<ArrayRef, StageError> {
    match col.data_type() {
        // Each distinct value is rewritten once and the keys kept: the column stays a
        // dictionary. Two values may become equal (" a" and "a" trimmed); every comparison
        // goes through the values, so they still compare equal.
        DataType::Dictionary(..) => {
            let dict = col.as_any_dictionary();
            Ok(dict.with_values(rewrite(dict.values(), kind)?))
        }
        DataType::Utf8 => Ok(Arc::new(rewrite_strings(col.as_string::<i32>(), kind))),
        DataType::LargeUtf8 => Ok(Arc::new(rewrite_strings(col.as_string::<i64>(), kind))),
        DataType::Utf8View => {
            let plain = cast(col, &DataType::Utf8).map_err(|e| StageError::arrow("rewriting strings", e))?;
            let done: ArrayRef = Arc::new(rewrite_strings(plain.as_string::<i32>(), kind));
            cast(&done, &DataType::Utf8View).map_err(|e| StageError::arrow("rewriting strings", e))
        }
        other => Err(StageError::Internal(format!("string op on a {other} column passed the schema check"))),
    }
}

fn rewrite_strings<O: OffsetSizeTrait>(
    input: &GenericStringArray<O>,
    kind: TextKind,
) -> GenericStringArray<O> {
    let mut out = GenericStringBuilder::<O>::with_capacity(input.len(), input.value_data().len());
    let mut lowered = String::new();
    for v in input.iter() {
        match (v, kind) {
            (None, _) => out.append_null(),
            (Some(s), TextKind::Trim) => out.append_value(s.trim()),
            (Some(s), TextKind::Lowercase) if !s.chars().any(char::is_uppercase) => out.append_value(s),
            (Some(s), TextKind::Lowercase) if s.is_ascii() => {
                // One reused buffer: no allocation per row.
                lowered.clear();
                lowered.push_str(s);
                lowered.make_ascii_lowercase();
                out.append_value(&lowered);
            }
            // `str::to_lowercase` knows the rules a character alone cannot tell (a Greek
            // capital sigma becomes ς at the end of a word).
            (Some(s), TextKind::Lowercase) => out.append_value(s.to_lowercase()),
        }
    }
    out.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use serde_json::json;

    use super::*;

    fn input() -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("  ÄPFEL \t"),
                    None,
                    Some("\u{3000}İstanbul"),
                    Some(""),
                ])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            ],
        )
        .unwrap();
        Table::from_input(schema, vec![b])
    }

    fn strings(a: &Applied) -> Vec<Option<String>> {
        let c = a.table.column(0).unwrap();
        c.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect()
    }

    #[test]
    fn lowercase_follows_word_final_rules() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let values = StringArray::from(vec![Some("ΣΊΣΥΦΟΣ ΟΔΟΣ"), Some("ÀB"), Some("AbC"), None]);
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
        let l = TextOp::parse("lowercase", &json!("s"), "lowercase")
            .unwrap()
            .apply(Table::from_input(schema, vec![b]));
        let expected = [Some("σίσυφος οδος"), Some("àb"), Some("abc"), None];
        assert_eq!(strings(&l.unwrap()), expected.map(|v| v.map(str::to_string)));
    }

    #[test]
    fn trim_then_lowercase_unicode() {
        let t = TextOp::parse("trim", &json!(["s"]), "trim").unwrap().apply(input()).unwrap();
        assert_eq!(strings(&t), [Some("ÄPFEL".into()), None, Some("İstanbul".into()), Some(String::new())]);
        let l = TextOp::parse("lowercase", &json!("s"), "lowercase").unwrap().apply(t.table).unwrap();
        assert_eq!(strings(&l)[0].as_deref(), Some("äpfel"));
        assert_eq!(strings(&l)[2].as_deref(), Some("i\u{307}stanbul"));
    }

    /// Regression: dictionary-encoded strings (a pandas Categorical in Parquet) were
    /// refused as not strings.
    #[test]
    fn dictionary_encoded_strings_are_rewritten_and_stay_dictionaries() {
        use arrow::array::DictionaryArray;
        use arrow::datatypes::Int32Type;

        let ty = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let schema = Arc::new(Schema::new(vec![Field::new("c", ty.clone(), true)]));
        let values: DictionaryArray<Int32Type> =
            vec![Some(" UK "), Some("France"), None, Some(" UK ")].into_iter().collect();
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
        let t = Table::from_input(schema.clone(), vec![b]);
        for op in ["trim", "lowercase"] {
            let mut issues = Vec::new();
            TextOp::parse(op, &json!(["c"]), op).unwrap().derive(&schema, &mut issues);
            assert!(issues.is_empty(), "{op}: {issues:?}");
        }
        let trimmed = TextOp::parse("trim", &json!(["c"]), "trim").unwrap().apply(t).unwrap();
        let lowered =
            TextOp::parse("lowercase", &json!(["c"]), "lowercase").unwrap().apply(trimmed.table).unwrap();
        let col = lowered.table.column(0).unwrap();
        assert_eq!(col.data_type(), &ty);
        let plain = cast(&col, &DataType::Utf8).unwrap();
        let got: Vec<Option<&str>> = plain.as_string::<i32>().iter().collect();
        assert_eq!(got, [Some("uk"), Some("france"), None, Some("uk")]);
    }

    #[test]
    fn non_string_columns_are_refused() {
        let mut issues = Vec::new();
        TextOp::parse("trim", &json!(["n", "x"]), "steps.0.trim")
            .unwrap()
            .derive(&input().schema, &mut issues);
        assert_eq!(issues[0].key, "steps.0.trim.0");
        assert_eq!(issues[0].message, "`trim` works on strings, but column `n` is int64");
        assert_eq!(issues[1].key, "steps.0.trim.1");
    }
}
