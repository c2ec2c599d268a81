//! The stage kind as compile sees it: config checks and the schema contract, with the
//! diagnostics pointing at the right line and column of a pipeline file.

use std::path::Path;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use sluice_core::{CompileOptions, Pipeline, SourceFile, compile};

use super::*;

/// The columns of a cleaned Online Retail table.
fn retail() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("InvoiceNo", DataType::Utf8, true),
        Field::new("StockCode", DataType::Utf8, true),
        Field::new("Description", DataType::Utf8, true),
        Field::new("Quantity", DataType::Int64, true),
        Field::new("InvoiceDate", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("UnitPrice", DataType::Float64, true),
        Field::new("CustomerID", DataType::Float64, true),
        Field::new("Country", DataType::Utf8, true),
    ]))
}

fn text(stage: &str) -> String {
    format!(
        "[pipeline]\nname = \"t\"\n\n[stages.orders]\nkind = \"collect\"\nconnector = \"csv\"\npath = \"data/orders.csv\"\n\n[stages.rfm]\nkind = \"feature-extract\"\ninputs = [\"orders\"]\n{stage}"
    )
}

/// `line:col` of the first `needle` in the pipeline around `stage`.
fn at(stage: &str, needle: &str) -> String {
    let text = text(stage);
    let offset = text.find(needle).unwrap_or_else(|| panic!("{needle} not in {text}"));
    let (l, c) = SourceFile::new("t.toml", text.as_str()).line_col(offset);
    format!("{l}:{c}")
}

fn pipeline(stage: &str) -> (SourceFile, Pipeline) {
    let text = text(stage);
    let file = SourceFile::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/t.toml"), text);
    let env = |_: &str| None;
    let registry = crate::registry();
    match compile(&file, &registry, &CompileOptions { overrides: &[], env: &env }) {
        Ok(p) => (file, p),
        Err(d) => panic!("{}", d.iter().map(|d| d.render()).collect::<Vec<_>>().join("\n")),
    }
}

/// Derives the `rfm` stage's schema from the retail schema; issues as `line:col message`.
fn derive(stage: &str) -> (Option<SchemaRef>, Vec<String>) {
    let (file, p) = pipeline(stage);
    let spec = p.stages.iter().find(|s| s.name == "rfm").unwrap();
    let d = FeatureKind.derive_schemas(spec, &[Some(retail())], &crate::registry());
    let issues = d
        .issues
        .iter()
        .map(|i| {
            let diag = sluice_core::compile::issue_diagnostic(&file, spec, i);
            let (_, l, c) = diag.location().unwrap();
            format!("{l}:{c} {}", i.message)
        })
        .collect();
    (d.outputs[0].1.clone(), issues)
}

fn fields(s: &SchemaRef) -> Vec<(String, DataType)> {
    s.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
}

#[test]
fn rfm_in_a_few_lines_has_a_known_schema() {
    let (schema, issues) = derive(
        "derive = { amount = \"Quantity * UnitPrice\" }\n\
         group_by = [\"CustomerID\"]\n\
         aggregations = { recency = { recency = \"InvoiceDate\", reference = \"max\" }, frequency = { count_distinct = \"InvoiceNo\" }, monetary = { sum = \"amount\" } }\n",
    );
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(
        fields(&schema.unwrap()),
        [
            ("CustomerID".to_string(), DataType::Float64),
            ("recency".to_string(), DataType::Int64),
            ("frequency".to_string(), DataType::Int64),
            ("monetary".to_string(), DataType::Float64),
        ]
    );
}

#[test]
fn unknown_aggregation_column_points_at_its_value() {
    let stage = "group_by = [\"CustomerID\"]\naggregations = { orders = { count_distinct = \"InvoiceNo\" }, monetary = { sum = \"amount\" } }\n";
    let (schema, issues) = derive(stage);
    assert!(schema.is_none());
    assert_eq!(issues, [format!("{} unknown column `amount`", at(stage, "\"amount\""))]);
}

#[test]
fn sum_of_text_is_a_type_error() {
    let stage = "group_by = \"CustomerID\"\n[stages.rfm.aggregations.m]\nsum = \"Country\"\n";
    let (_, issues) = derive(stage);
    assert_eq!(
        issues,
        [format!("{} sum needs a numeric column; `Country` is string", at(stage, "\"Country\""))]
    );
}

#[test]
fn sql_is_planned_against_the_input_schema() {
    let (schema, issues) = derive("sql = \"SELECT CustomerID, SUM(Quantity) AS q FROM orders GROUP BY 1\"\n");
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(
        fields(&schema.unwrap()),
        [("CustomerID".to_string(), DataType::Float64), ("q".to_string(), DataType::Int64)]
    );
    let stage = "sql = \"\"\"\nSELECT CustomerID,\n  SUM(Quantty) AS q\nFROM orders GROUP BY 1\"\"\"\n";
    let (schema, issues) = derive(stage);
    assert!(schema.is_none());
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(issues[0].starts_with(&format!("{} SQL: ", at(stage, "Quantty"))), "{issues:?}");
    assert!(issues[0].contains("Quantty"), "{issues:?}");
}

#[test]
fn sql_with_a_column_name_twice_is_refused_at_validation() {
    let stage = "sql = \"SELECT * FROM orders a JOIN orders b ON a.InvoiceNo = b.InvoiceNo\"\n";
    let (schema, issues) = derive(stage);
    assert!(schema.is_none());
    assert_eq!(
        issues,
        [format!("{} the query's result has more than one column named `InvoiceNo`", at(stage, "\"SELECT"))]
    );
}

#[test]
fn steps_are_checked_in_order_with_their_index() {
    let stage = "steps = [\n  { derive = { amount = \"Quantity * UnitPrice\" } },\n  { datetime = { column = \"InvoiceDate\", parts = [\"hour\"] } },\n  { one_hot = { Countryy = { top = 3 } } },\n]\n";
    let (schema, issues) = derive(stage);
    assert!(schema.is_none());
    assert_eq!(issues, [format!("{} unknown column `Countryy`", at(stage, "Countryy"))]);

    // One-hot columns depend on data: the schema is unknown from there on, without error.
    let (schema, issues) =
        derive("steps = [{ one_hot = { Country = { top = 3 } } }, { hash = { StockCode = 8 } }]\n");
    assert!(schema.is_none() && issues.is_empty(), "{issues:?}");

    let (schema, issues) = derive(
        "steps = [{ hash = { StockCode = 8 } }, { datetime = { column = \"InvoiceDate\", parts = [\"hour\", \"is_weekend\"] } }]\n",
    );
    assert!(issues.is_empty(), "{issues:?}");
    let f = fields(&schema.unwrap());
    assert_eq!(f[1], ("StockCode".to_string(), DataType::Int32));
    assert_eq!(f[8], ("InvoiceDate_hour".to_string(), DataType::Int32));
    assert_eq!(f[9], ("InvoiceDate_is_weekend".to_string(), DataType::Int8));
}

#[test]
fn datetime_on_text_is_a_type_error() {
    let stage = "datetime = { column = \"Country\", parts = [\"hour\"] }\n";
    let (_, issues) = derive(stage);
    assert_eq!(
        issues,
        [format!(
            "{} datetime needs a date or timestamp column; `Country` is string",
            at(stage, "\"Country\"")
        )]
    );
}

#[test]
fn unknown_input_schema_derives_nothing() {
    let (_, p) = pipeline("derive = { amount = \"Quantity * UnitPrice\" }\n");
    let spec = p.stages.iter().find(|s| s.name == "rfm").unwrap();
    let d = FeatureKind.derive_schemas(spec, &[None], &crate::registry());
    assert!(d.outputs[0].1.is_none() && d.issues.is_empty());
}

#[test]
fn config_mistakes_are_compile_errors_at_the_key() {
    let text = "[pipeline]\nname = \"t\"\n[stages.orders]\nkind = \"collect\"\nconnector = \"csv\"\npath = \"data/orders.csv\"\n[stages.f]\nkind = \"feature-extract\"\ninputs = [\"orders\"]\nsql = \"SELECT 1\"\nhash = { StockCode = 8 }\n";
    let file = SourceFile::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/t.toml"), text);
    let env = |_: &str| None;
    let diags =
        compile(&file, &crate::registry(), &CompileOptions { overrides: &[], env: &env }).unwrap_err();
    let d = diags.iter().find(|d| d.message.contains("cannot be combined")).unwrap();
    assert_eq!(d.location().unwrap().1, 10);
}

/// Compile errors of a feature-extract stage, as `line message`.
fn compile_errors(stage: &str) -> Vec<String> {
    let file =
        SourceFile::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/t.toml"), text(stage));
    let env = |_: &str| None;
    match compile(&file, &crate::registry(), &CompileOptions { overrides: &[], env: &env }) {
        Ok(_) => Vec::new(),
        Err(diags) => diags.iter().map(|d| format!("{} {}", d.location().unwrap().1, d.message)).collect(),
    }
}

#[test]
fn every_output_column_is_named_once() {
    let errors = compile_errors(
        "group_by = [\"CustomerID\", \"CustomerID\"]\naggregations = { n = { count = \"*\" } }\n",
    );
    assert!(
        errors.iter().any(|e| e.starts_with("12 ") && e.contains("`CustomerID` is listed twice")),
        "{errors:?}"
    );
    let errors =
        compile_errors("group_by = \"CustomerID\"\naggregations = { CustomerID = { count = \"*\" } }\n");
    assert!(errors.iter().any(|e| e.contains("`CustomerID` is already a `group_by` column")), "{errors:?}");

    let (_, issues) = derive("tfidf = { column = \"Description\", key = \"term\" }\n");
    assert!(issues.iter().any(|i| i.contains("`term` would appear twice")), "{issues:?}");
}

#[test]
fn derive_refuses_aggregates_and_plans_functions_that_need_simplifying() {
    let stage = "derive = { total = \"sum(Quantity)\" }\n";
    let (_, issues) = derive(stage);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].contains("aggregate and window functions and subqueries cannot be used here"),
        "{issues:?}"
    );
    let (_, issues) = derive("derive = { big = \"Quantity > (SELECT max(Quantity) FROM orders)\" }\n");
    assert!(issues[0].contains("subqueries cannot be used here"), "{issues:?}");
    let (schema, issues) =
        derive("derive = { c = \"coalesce(Country, 'none')\", n = \"nvl(CustomerID, 0)\", t = \"now()\" }\n");
    assert!(issues.is_empty(), "{issues:?}");
    let schema = schema.unwrap();
    assert_eq!(schema.field_with_name("c").unwrap().data_type(), &DataType::Utf8);
}
