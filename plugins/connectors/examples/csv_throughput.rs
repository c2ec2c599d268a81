//! Measures end-to-end CSV read throughput (open, infer, parse to Arrow, drain all batches).
//!
//! `cargo run -p sluice-connectors --profile bench-fast --example csv_throughput -- [FILE [RUNS [BATCH_SIZE]]]`

use std::path::Path;
use std::time::Instant;

use sluice_plugin::serde_json::{Map, Value};
use sluice_plugin::{OnError, ReadRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let default =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/online-retail/online_retail.csv");
    let file = args.next().filter(|f| !f.is_empty()).unwrap_or_else(|| default.to_owned());
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let batch_size: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(65_536);
    let size = std::fs::metadata(&file)?.len() as f64;
    let csv =
        sluice_connectors::builtin().into_iter().find(|c| c.name() == "csv").ok_or("no csv connector")?;
    let mut config = Map::new();
    config.insert("path".into(), Value::String(file.clone()));
    let req = ReadRequest {
        stage: "bench",
        config: &config,
        base_dir: Path::new("."),
        on_error: OnError::Fail,
        batch_size,
        incremental: None,
    };
    let mut best = f64::MAX;
    for run in 0..runs {
        let t = Instant::now();
        let mut reader = csv.read(&req)?;
        let mut rows = 0;
        while let Some(batch) = reader.next_batch() {
            rows += batch?.num_rows();
        }
        let secs = t.elapsed().as_secs_f64();
        best = best.min(secs);
        println!("run {run}: {rows} rows in {:.1} ms = {:.0} MB/s", secs * 1e3, size / secs / 1e6);
    }
    println!("best: {:.1} ms = {:.0} MB/s ({:.1} MB)", best * 1e3, size / best / 1e6, size / 1e6);
    Ok(())
}
