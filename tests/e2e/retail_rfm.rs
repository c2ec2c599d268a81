//! `pipelines/retail-rfm.toml` on the real Online Retail data: the standard counts per
//! cleaning step, 4,339 customers, and RFM values checked against figures computed
//! independently (pandas, see bench/rfm_peers.py).

use std::path::PathBuf;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};

use crate::util::*;

fn retail_csv() -> PathBuf {
    let csv = std::env::var("SLUICE_RETAIL_CSV").map(PathBuf::from).unwrap_or_else(|_| {
        repo().join("..").join("shared").join("data").join("online-retail").join("online_retail.csv")
    });
    assert!(csv.is_file(), "the shared retail data must exist at {} (set SLUICE_RETAIL_CSV)", csv.display());
    csv
}

#[test]
fn rfm_on_online_retail_matches_the_standard_figures() {
    let csv = retail_csv();
    let s = Scratch::new();
    let pipeline = repo().join("pipelines").join("retail-rfm.toml");
    let data = format!("data={}", csv.display());
    let (code, r) = s.run_json(&pipeline, &["--param", &data]);
    assert_eq!(code, 0, "{r:#}");

    assert_eq!(stage_field(&r, "orders", "rows_out"), 541_909);
    let ops: Vec<(String, u64, u64)> = stage_field(&r, "clean", "metrics")["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["op"].as_str().unwrap().to_string(),
                o["rows_in"].as_u64().unwrap(),
                o["rows_out"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops[..3],
        [
            ("drop_nulls".to_string(), 541_909, 406_829),
            ("dedup".to_string(), 406_829, 401_604),
            ("filter".to_string(), 401_604, 392_732),
        ]
    );
    assert_eq!(stage_field(&r, "rfm", "rows_out"), 4_339, "customers");
    assert_eq!(stage_field(&r, "segments", "rows_out"), 4_339);

    let rfm = read_parquet(stage_field(&r, "rfm", "outputs")["data"].as_str().unwrap());
    let mut seen = 0;
    for b in &rfm {
        let id = b.column_by_name("CustomerID").unwrap().as_primitive::<Int64Type>();
        let rec = b.column_by_name("recency").unwrap().as_primitive::<Int64Type>();
        let freq = b.column_by_name("frequency").unwrap().as_primitive::<Int64Type>();
        let mon = b.column_by_name("monetary").unwrap().as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            assert!(!id.is_null(i));
            // Computed with pandas: (max(InvoiceDate) + 1 day - last invoice).days,
            // nunique(InvoiceNo), sum(Quantity * UnitPrice).
            let expected = match id.value(i) {
                12346 => (326, 1, 77_183.60),
                12347 => (2, 7, 4_310.00),
                12348 => (75, 4, 1_797.24),
                _ => continue,
            };
            assert_eq!((rec.value(i), freq.value(i)), (expected.0, expected.1), "customer {}", id.value(i));
            assert!((mon.value(i) - expected.2).abs() < 1e-6, "customer {}: {}", id.value(i), mon.value(i));
            seen += 1;
        }
    }
    assert_eq!(seen, 3, "the three reference customers are in the output");
}
