//! Built-in Sluice connectors: `csv`, `parquet` and `jsonl` files.
//!
//! Each connector implements the plugin SDK's [`Connector`] trait exactly as an external
//! plugin would; nothing here is privileged.

mod csv;
mod infer;
mod jsonl;
mod options;
mod parquet;
mod paths;
mod rebatch;
mod schema_decl;
mod suggest;
mod values;

use sluice_plugin::Connector;

pub use crate::csv::CsvConnector;
pub use crate::jsonl::JsonlConnector;
pub use crate::parquet::ParquetConnector;

/// The built-in connectors: csv, parquet, jsonl.
pub fn builtin() -> Vec<Box<dyn Connector>> {
    vec![Box::new(CsvConnector), Box::new(ParquetConnector), Box::new(JsonlConnector)]
}
