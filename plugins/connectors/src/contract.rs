//! `schema = { ... }` on the database connectors: a contract for the result's exact columns.
//!
//! A database decides its result's types itself, so unlike a CSV file there is nothing to
//! infer — but a pipeline still wants to know them without connecting (`sluice validate` in
//! CI has no credentials) and to fail clearly when a table changes under it. The declared
//! schema is therefore the whole output: the result must have exactly the declared columns
//! (any order; the output follows the declaration), and each is converted to its declared
//! type. A column that is missing, extra, or of a type that cannot convert fails before the
//! first row is read, naming the column; a value that does not convert fails naming the
//! column and the value.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Date32Array};
use arrow::compute::{can_cast_types, cast};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use serde_json::{Map, Value};
use sluice_plugin::exact_cast::cast_exact;
use sluice_plugin::types::TYPE_NAMES;
use sluice_plugin::{
    BatchReader, ConfigIssue, ConnectorError, KeySpec, KeyType, Reject, parse_type_name, type_name,
};

use crate::options::Issues;
use crate::schema_decl::declared_columns;
use crate::suggest::did_you_mean;
use crate::values;

/// The `schema` key of the database connectors.
pub(crate) const CONTRACT_KEY: KeySpec = KeySpec::optional(
    "schema",
    KeyType::Table,
    None,
    "The result's exact columns and types, in output order; values are converted to these types and a result with other columns fails. `sluice validate` then checks downstream stages without connecting",
)
.example("schema = { CustomerID = \"int64\", Country = \"string\", Amount = \"decimal(12, 2)\" }");

/// Type names a contract accepts beyond the common ones: what database columns carry.
const EXTRA_TYPES: &[&str] = &["int16", "timestamptz", "decimal(P, S)"];

/// Reads one declared type: the common names, `int16`, `timestamptz` (UTC instants) and
/// `decimal(P, S)`.
fn parse_contract_type(name: &str) -> Option<DataType> {
    if let Some(t) = parse_type_name(name) {
        return Some(t);
    }
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "int16" | "smallint" => return Some(DataType::Int16),
        "timestamptz" => return Some(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
        _ => {}
    }
    let args = lower.strip_prefix("decimal")?.trim().strip_prefix('(')?.strip_suffix(')')?;
    let (p, s) = args.split_once(',')?;
    let (p, s): (u8, i8) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
    (1..=38).contains(&p).then_some(())?;
    (0..=p as i8).contains(&s).then_some(())?;
    Some(DataType::Decimal128(p, s))
}

/// How a contract names a type in messages.
fn contract_type_name(ty: &DataType) -> String {
    match ty {
        DataType::Int16 => "int16".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Decimal128(p, s) => format!("decimal({p}, {s})"),
        other => type_name(other),
    }
}

/// A declared result schema (None when the stage has no `schema` key).
#[derive(Debug, Clone)]
pub(crate) struct Contract {
    schema: SchemaRef,
}

impl Contract {
    /// Reads the `schema` key; problems go to `is`.
    pub(crate) fn from_config(cfg: &Map<String, Value>, is: &mut Issues) -> Option<Self> {
        let before = is.0.len();
        let expected = format!("{}, {}", TYPE_NAMES.join(", "), EXTRA_TYPES.join(", "));
        let columns = declared_columns(cfg, is, parse_contract_type, &expected)?;
        if columns.is_empty() && is.0.len() == before {
            is.push(
                ConfigIssue::new("schema", "declares no columns")
                    .with_help("list every column of the result, or remove `schema`"),
            );
        }
        let fields: Vec<Field> = columns.into_iter().map(|(col, ty)| Field::new(col, ty, true)).collect();
        (is.0.len() == before).then(|| Contract { schema: Arc::new(Schema::new(fields)) })
    }

    /// The output schema the contract fixes.
    pub(crate) fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Whether `column`, of type `source` in the result, reaches the output with its order
    /// unchanged: the same type, or an integer widened or narrowed. Only then does a
    /// watermark, which is kept in the declared type, compare the same way in the database
    /// as in the collect stage; otherwise (text declared as a timestamp, say) the database
    /// would compare text with text and miss rows.
    pub(crate) fn keeps_order(&self, column: &str, source: &DataType) -> bool {
        match self.schema.field_with_name(column) {
            Ok(f) => f.data_type() == source || (f.data_type().is_integer() && source.is_integer()),
            Err(_) => false,
        }
    }

    /// The declared type of `column`, if the contract declares it.
    pub(crate) fn declared(&self, column: &str) -> Option<&DataType> {
        self.schema.field_with_name(column).ok().map(|f| f.data_type())
    }

    /// Matches the result's actual schema against the contract; `source` describes the
    /// query or table for messages.
    pub(crate) fn bind(&self, actual: &Schema, source: &str) -> Result<Conform, ConnectorError> {
        let names: Vec<&str> = actual.fields().iter().map(|f| f.name().as_str()).collect();
        // Missing columns first: a renamed column then points at its declaration.
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for want in self.schema.fields() {
            let key = format!("schema.{}", want.name());
            let Some(i) = names.iter().position(|n| n == want.name()) else {
                return Err(ConnectorError::config(
                    key,
                    format!(
                        "column `{}` is declared but {source} has no such column{}",
                        want.name(),
                        // Only a result column nothing declares can be the one meant.
                        did_you_mean(
                            want.name(),
                            names.iter().copied().filter(|n| self.schema.field_with_name(n).is_err())
                        )
                    ),
                ));
            };
            let have = actual.field(i).data_type();
            if let Some(why) = refused(have, want.data_type()) {
                return Err(ConnectorError::config(
                    key,
                    format!(
                        "column `{}` of {source} is {}, which cannot be converted to the declared {}: {why}",
                        want.name(),
                        contract_type_name(have),
                        contract_type_name(want.data_type())
                    ),
                ));
            }
            if have != want.data_type() && !can_cast_types(have, want.data_type()) {
                return Err(ConnectorError::config(
                    key,
                    format!(
                        "column `{}` of {source} is {}, which cannot be converted to the declared {}",
                        want.name(),
                        contract_type_name(have),
                        contract_type_name(want.data_type())
                    ),
                ));
            }
            columns.push(i);
        }
        for f in actual.fields() {
            if self.schema.field_with_name(f.name()).is_err() {
                return Err(ConnectorError::config(
                    "schema",
                    format!(
                        "{source} has column `{}` ({}), which `schema` does not declare{}",
                        f.name(),
                        contract_type_name(f.data_type()),
                        did_you_mean(
                            f.name(),
                            self.schema
                                .fields()
                                .iter()
                                .map(|f| f.name().as_str())
                                .filter(|d| !names.contains(d))
                        )
                    ),
                ));
            }
        }
        Ok(Conform { schema: self.schema(), columns })
    }
}

/// Why a conversion Arrow could make is refused anyway, when it is.
fn refused(have: &DataType, want: &DataType) -> Option<&'static str> {
    let number = have.is_numeric();
    let time = matches!(want, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64);
    if number && time {
        // Arrow reads an integer as microseconds or days; a database's integer times are
        // usually seconds. Guessing gives wrong values (or dates no reader can open).
        return Some(
            "a number is not a date or time (seconds? milliseconds? days?); convert it in the query, e.g. `to_timestamp(v)` in PostgreSQL",
        );
    }
    if number && !have.is_integer() && *want == DataType::Boolean {
        return Some("only the integers 0 and 1 and the text `true` and `false` are bools");
    }
    None
}

/// `col` converted to `want`, strictly: a value that does not convert (or only
/// approximately) becomes NULL, which the caller reports. Arrow's own cast is used except
/// where it is lenient: to bool it takes any non-zero number as true and text such as
/// `yes`, and to date text with a time of day.
fn convert(col: &ArrayRef, want: &DataType) -> Result<ArrayRef, ArrowError> {
    let have = col.data_type();
    match want {
        DataType::Boolean if have.is_integer() => {
            // Unsigned values beyond int64 become NULL here, and so are refused.
            let ints = cast(col, &DataType::Int64)?;
            let out: BooleanArray = ints
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| match v {
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    _ => None,
                })
                .collect();
            Ok(Arc::new(out))
        }
        DataType::Boolean if is_text(have) => from_text::<BooleanArray, _>(col, values::parse_bool),
        // Arrow takes `2020-01-01 10:00:00` as a date and drops the time; a date is
        // `YYYY-MM-DD` here, as in the csv and sqlite connectors.
        DataType::Date32 if is_text(have) => from_text::<Date32Array, _>(col, values::parse_date),
        _ => cast_exact(col, want),
    }
}

/// Text parsed value by value with the connectors' own rules; what does not parse is NULL.
fn from_text<A, V>(col: &ArrayRef, parse: impl Fn(&[u8]) -> Option<V>) -> Result<ArrayRef, ArrowError>
where
    A: Array + FromIterator<Option<V>> + 'static,
{
    let text = cast(col, &DataType::Utf8)?;
    let out: A = text.as_string::<i32>().iter().map(|v| v.and_then(|s| parse(s.as_bytes()))).collect();
    Ok(Arc::new(out))
}

fn is_text(ty: &DataType) -> bool {
    matches!(ty, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// A bound contract: where each declared column comes from in the result.
#[derive(Debug, Clone)]
pub(crate) struct Conform {
    schema: SchemaRef,
    columns: Vec<usize>,
}

impl Conform {
    /// One result batch in the declared order and types.
    pub(crate) fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, ConnectorError> {
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (want, i) in self.schema.fields().iter().zip(&self.columns) {
            let col = batch.column(*i);
            if col.data_type() == want.data_type() {
                out.push(Arc::clone(col));
                continue;
            }
            let declared = || format!("schema.{}", want.name());
            let described = || contract_type_name(want.data_type());
            // Strict: a value that does not convert exactly is an error, never a silent
            // NULL or a rounded number.
            let cast = convert(col, want.data_type()).map_err(|e| {
                ConnectorError::config(
                    declared(),
                    format!(
                        "column `{}` cannot be converted to the declared {}: {e}",
                        want.name(),
                        described()
                    ),
                )
            })?;
            if cast.null_count() != col.null_count()
                && let Some(row) = (0..col.len()).find(|&r| cast.is_null(r) && col.is_valid(r))
            {
                let value = array_value_to_string(col, row).unwrap_or_default();
                return Err(ConnectorError::config(
                    declared(),
                    format!(
                        "`{value}` in column `{}` is not {} (the declared type); declare a type that holds it",
                        want.name(),
                        described()
                    ),
                ));
            }
            out.push(cast);
        }
        RecordBatch::try_new(Arc::clone(&self.schema), out)
            .map_err(|source| ConnectorError::Arrow { context: "applying `schema`".into(), source })
    }
}

/// A reader whose batches are conformed to a contract.
pub(crate) struct Conforming {
    inner: Box<dyn BatchReader>,
    conform: Conform,
}

impl Conforming {
    /// Wraps `inner`, after checking its schema against `contract`.
    pub(crate) fn wrap(
        inner: Box<dyn BatchReader>,
        contract: &Contract,
        source: &str,
    ) -> Result<Box<dyn BatchReader>, ConnectorError> {
        let conform = contract.bind(&inner.schema(), source)?;
        Ok(Box::new(Conforming { inner, conform }))
    }
}

impl BatchReader for Conforming {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.conform.schema)
    }

    fn next_batch(&mut self) -> Option<Result<RecordBatch, ConnectorError>> {
        Some(self.inner.next_batch()?.and_then(|b| self.conform.apply(&b)))
    }

    fn take_rejects(&mut self) -> Vec<Reject> {
        self.inner.take_rejects()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::array::{Array, Decimal128Array, Float64Array, Int32Array, StringArray};
    use serde_json::json;

    use super::*;

    fn contract(v: serde_json::Value) -> Result<Contract, Vec<ConfigIssue>> {
        let mut is = Issues::default();
        let c = Contract::from_config(v.as_object().unwrap(), &mut is);
        match c {
            Some(c) if is.0.is_empty() => Ok(c),
            _ => Err(is.0),
        }
    }

    fn result() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new("id", DataType::Int32, true),
            Field::new("code", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(
                    Decimal128Array::from(vec![Some(1250), None]).with_precision_and_scale(10, 2).unwrap(),
                ),
                Arc::new(Int32Array::from(vec![Some(7), Some(8)])),
                Arc::new(StringArray::from(vec![Some("12"), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_result_is_reordered_and_converted_to_the_declared_types() {
        let c = contract(json!({"schema": {"id": "int64", "code": "int32", "amount": "float64"}})).unwrap();
        let r = result();
        let out = c.bind(&r.schema(), "query").unwrap().apply(&r).unwrap();
        let names: Vec<String> = out.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["id", "code", "amount"]);
        assert_eq!(out.column(0).data_type(), &DataType::Int64);
        assert_eq!(out.column(1).as_any().downcast_ref::<Int32Array>().unwrap().value(0), 12);
        let amount = out.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(amount.value(0), 12.5);
        assert!(amount.is_null(1), "NULL stays NULL");
    }

    #[test]
    fn missing_extra_and_unconvertible_columns_are_named() {
        let r = result();
        let c = contract(json!({"schema": {"id": "int64", "amount": "float64"}})).unwrap();
        let e = c.bind(&r.schema(), "query").unwrap_err().to_string();
        assert!(e.contains("column `code` (string), which `schema` does not declare"), "{e}");

        let c = contract(json!({"schema": {"idd": "int64", "code": "string", "amount": "decimal(10,2)"}}))
            .unwrap();
        let e = c.bind(&r.schema(), "table `t`").unwrap_err().to_string();
        assert!(e.contains("`schema.idd`") && e.contains("no such column (did you mean `id`?)"), "{e}");

        let c = contract(json!({"schema": {"id": "int64", "code": "string", "amount": "date"}})).unwrap();
        let e = c.bind(&r.schema(), "query").unwrap_err().to_string();
        assert!(
            e.contains("`schema.amount`") && e.contains("decimal(10, 2), which cannot be converted"),
            "{e}"
        );
    }

    #[test]
    fn a_value_that_does_not_convert_fails_naming_the_column() {
        let schema = Schema::new(vec![Field::new("code", DataType::Utf8, true)]);
        let r = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(StringArray::from(vec!["12", "1x"]))])
            .unwrap();
        let c = contract(json!({"schema": {"code": "int64"}})).unwrap();
        let e = c.bind(&r.schema(), "query").unwrap().apply(&r).unwrap_err().to_string();
        assert!(e.contains("`schema.code`") && e.contains("1x"), "{e}");
    }

    #[test]
    fn a_value_that_would_be_rounded_fails_naming_the_value() {
        let r = result();
        // 12.50 fits decimal(6, 1) exactly and int64 not at all.
        let c = contract(json!({"schema": {"id": "int64", "code": "string", "amount": "decimal(6, 1)"}}))
            .unwrap();
        let out = c.bind(&r.schema(), "query").unwrap().apply(&r).unwrap();
        assert_eq!(arrow::util::display::array_value_to_string(out.column(2), 0).unwrap(), "12.5");
        let c = contract(json!({"schema": {"id": "int64", "code": "string", "amount": "int64"}})).unwrap();
        let e = c.bind(&r.schema(), "query").unwrap().apply(&r).unwrap_err().to_string();
        assert!(
            e.contains("`schema.amount`") && e.contains("`12.50` in column `amount` is not int64"),
            "{e}"
        );

        let schema = Schema::new(vec![Field::new("f", DataType::Float64, true)]);
        let r = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(Float64Array::from(vec![3.0, 2.7]))])
            .unwrap();
        let c = contract(json!({"schema": {"f": "int64"}})).unwrap();
        let e = c.bind(&r.schema(), "query").unwrap().apply(&r).unwrap_err().to_string();
        assert!(e.contains("`2.7` in column `f` is not int64"), "{e}");
    }

    #[test]
    fn bad_declarations_are_reported_per_column() {
        let issues =
            contract(json!({"schema": {"a": "decimal(50, 2)", "b": 3, "c": "timestamptz"}})).unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["schema.a", "schema.b"]);
        assert!(issues[0].help.as_deref().unwrap().contains("decimal(P, S)"));
        assert_eq!(contract(json!({"schema": {}})).unwrap_err()[0].message, "declares no columns");
        assert_eq!(
            parse_contract_type("Decimal(12, 2)"),
            Some(DataType::Decimal128(12, 2)),
            "case and spaces do not matter"
        );
    }
}
