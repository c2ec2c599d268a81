//! Declarative feature transforms: RFM from a few lines of TOML, and schema errors found
//! before anything runs.

use crate::util::*;

const ORDERS: &str = "\
InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
1,A,2,2011-12-01 10:00:00,1.50,17850,United Kingdom
1,B,1,2011-12-01 10:00:00,4.00,17850,United Kingdom
2,A,4,2011-12-05 09:00:00,1.50,17850,United Kingdom
3,C,10,2011-12-09 12:00:00,0.50,12583,France
4,B,3,2011-12-09 18:00:00,4.00,,United Kingdom
";

const RFM: &str = r#"
[pipeline]
name = "rfm"

[stages.orders]
kind = "collect"
connector = "csv"
path = "data/orders.csv"

[stages.rfm]
kind = "feature-extract"
inputs = ["orders"]
derive = { amount = "Quantity * UnitPrice" }
group_by = ["CustomerID"]
aggregations = { recency = { recency = "InvoiceDate", reference = "max" }, frequency = { count_distinct = "InvoiceNo" }, monetary = { sum = "amount" } }
"#;

#[test]
fn rfm_from_a_csv_in_a_few_lines() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let file = s.write("rfm.toml", RFM);
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0, "{r}");
    let out = stage_field(&r, "rfm", "outputs")["data"].as_str().unwrap().to_string();
    // The latest order is 2011-12-09 18:00, so the reference is 2011-12-10 18:00.
    // 17850: last order 12-05 09:00 → 5 days 9 hours → 5; 2 invoices; 3 + 4 + 6 = 13.
    // 12583: 12-09 12:00 → 1 day 6 hours → 1. The line without a customer is its own group.
    let expected = "\
+------------+---------+-----------+----------+
| CustomerID | recency | frequency | monetary |
+------------+---------+-----------+----------+
| 12583      | 1       | 1         | 5.0      |
| 17850      | 5       | 2         | 13.0     |
|            | 1       | 1         | 12.0     |
+------------+---------+-----------+----------+";
    assert_eq!(parquet_table(&out), expected);
    let ops = &stage_field(&r, "rfm", "metrics")["operations"];
    assert_eq!(ops[0]["op"], "derive");
    assert_eq!(ops[0]["rows_in"], 5);
    assert_eq!(ops[1]["op"], "group_by");
    assert_eq!(ops[1]["rows_out"], 3);

    // Same input, same output: a forced re-run writes identical values.
    let (_, again) = s.run_json(&file, &["--force", "rfm"]);
    let out2 = stage_field(&again, "rfm", "outputs")["data"].as_str().unwrap().to_string();
    assert_eq!(parquet_table(&out2), expected);
}

#[test]
fn validate_reports_unknown_columns_in_aggregations_and_sql() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let bad_agg = RFM.replace("sum = \"amount\"", "sum = \"amount_gbp\"");
    let file = s.write("bad_agg.toml", &bad_agg);
    // Nothing has run yet, so the CSV's schema is unknown without reading it: valid as far
    // as anyone can tell without data.
    let out = s.run(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // --data reads the source's first batch and checks the columns against it.
    let out = s.run(&["validate", "--data", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("amount_gbp"), "{}", stderr(&out));

    let bad_sql = r#"
[pipeline]
name = "bad-sql"

[stages.orders]
kind = "collect"
connector = "csv"
path = "data/orders.csv"

[stages.rfm]
kind = "feature-extract"
inputs = ["orders"]
sql = "SELECT CustomerID, SUM(Quantty) AS q FROM orders GROUP BY 1"
"#;
    let file = s.write("bad_sql.toml", bad_sql);
    let out = s.run(&["validate", "--data", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("Quantty"), "{}", stderr(&out));
}

#[test]
fn run_reports_an_unknown_aggregation_column_at_its_line_and_column() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let bad = RFM.replace("sum = \"amount\"", "sum = \"amount_gbp\"");
    let file = s.write("bad.toml", &bad);
    let out = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let offset = bad.find("\"amount_gbp\"").unwrap();
    let line = bad[..offset].matches('\n').count() + 1;
    let col = offset - bad[..offset].rfind('\n').unwrap();
    let err = stderr(&out);
    assert!(err.contains(&format!("bad.toml:{line}:{col}")), "{err}");
    assert!(err.contains("unknown column `amount_gbp`") && err.contains("columns here:"), "{err}");
}

#[test]
fn validate_checks_against_the_schema_recorded_by_the_last_run() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    let good = s.write("rfm.toml", RFM);
    let (code, _) = s.run_json(&good, &[]);
    assert_eq!(code, 0);
    // Same pipeline, now with a typo: the collect's schema is known from its last artifact,
    // so plain validate (no --data, nothing read from the source) catches it.
    let bad = s.write("rfm.toml", &RFM.replace("sum = \"amount\"", "sum = \"amount_gbp\""));
    let out = s.run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("amount_gbp"), "{}", stderr(&out));
}

#[test]
fn validate_checks_sql_against_a_declared_database_schema_without_connecting() {
    let s = Scratch::new();
    // Port 1 on localhost: nothing listens, so any attempt to connect would fail the check.
    let pipeline = r#"
[pipeline]
name = "db-contract"

[stages.orders]
kind = "collect"
connector = "postgres"
url = "postgres://nobody@127.0.0.1:1/shop"
table = "orders"
schema = { CustomerID = "int64", Amount = "decimal(12, 2)", Country = "string" }

[stages.totals]
kind = "feature-extract"
inputs = ["orders"]
sql = "SELECT CustomerID, SUM(Amount) AS total FROM orders GROUP BY 1"
"#;
    let good = s.write("good.toml", pipeline);
    let out = s.run(&["validate", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let bad = s.write("bad.toml", &pipeline.replace("SUM(Amount)", "SUM(Amont)"));
    let out = s.run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("Amont") && err.contains("Amount"), "{err}");
    assert!(!err.contains("connect"), "validation must not try the database: {err}");
}

#[test]
fn a_stage_named_with_capitals_is_a_table_of_that_name() {
    let s = Scratch::new();
    s.write("data/orders.csv", ORDERS);
    // Two SQL stages one after the other: the second gets the first one's pooled session,
    // which must have let go of `Orders`.
    let file = s.write(
        "caps.toml",
        r#"
[pipeline]
name = "caps"

[stages.Orders]
kind = "collect"
connector = "csv"
path = "data/orders.csv"

[stages.per_country]
kind = "feature-extract"
inputs = ["Orders"]
sql = "SELECT Country, COUNT(*) AS n FROM Orders GROUP BY Country ORDER BY Country"

[stages.per_code]
kind = "feature-extract"
inputs = ["Orders", "per_country"]
sql = "SELECT StockCode, COUNT(*) AS n FROM Orders WHERE Country IN (SELECT Country FROM per_country) GROUP BY StockCode ORDER BY StockCode"
"#,
    );
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0, "{r}");
    let out = stage_field(&r, "per_country", "outputs")["data"].as_str().unwrap().to_string();
    let table = parquet_table(&out);
    assert!(table.contains("France") && table.contains("United Kingdom"), "{table}");
    assert_eq!(stage_field(&r, "per_code", "rows_out"), 3);
}

/// Regression: the NaN of `0 / 0` (sign bit set on x86) and a NaN read from the data were
/// two groups, one sorted before every number; NaN is one value and sorts last.
#[test]
fn every_nan_is_one_group_key() {
    let s = Scratch::new();
    s.write("data/r.csv", "a,b\n0,0\n1,0\nNaN,1\n2,2\n");
    let file = s.write(
        "p.toml",
        "[pipeline]\nname = \"p\"\n\n[stages.src]\nkind = \"collect\"\nconnector = \"csv\"\npath = \"data/r.csv\"\nschema = { a = \"float64\", b = \"float64\" }\n\n[stages.ratio]\nkind = \"feature-extract\"\ninputs = [\"src\"]\nsteps = [{ derive = { r = \"a / b\" } }, { group_by = [\"r\"], aggregations = { n = { count = \"*\" } } }]\n",
    );
    let (code, r) = s.run_json(&file, &[]);
    assert_eq!(code, 0, "{r}");
    let path = stage_field(&r, "ratio", "outputs")["data"].as_str().unwrap().to_string();
    let b = &read_parquet(path)[0];
    use arrow::array::AsArray;
    let keys: Vec<String> = b
        .column(0)
        .as_primitive::<arrow::datatypes::Float64Type>()
        .values()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let n: Vec<i64> = b.column(1).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
    assert_eq!((keys, n), (vec!["1".into(), "inf".into(), "NaN".into()], vec![1, 1, 2]));
}
