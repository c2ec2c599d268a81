//! Built-in Sluice connectors: `csv`, `parquet` and `jsonl` files, and `sqlite` and
//! `postgres` databases.
//!
//! Each connector implements the plugin SDK's [`Connector`] trait exactly as an external
//! plugin would; nothing here is privileged.

mod csv;
mod encoding;
mod infer;
mod jsonl;
mod options;
mod parquet;
mod paths;
mod postgres;
mod rebatch;
mod row_batch;
mod schema_decl;
mod sql_source;
mod sqlite;
mod suggest;
mod timestamp_format;
mod values;
mod watermark;

use sluice_plugin::Connector;

pub use crate::csv::CsvConnector;
pub use crate::jsonl::JsonlConnector;
pub use crate::parquet::ParquetConnector;
pub use crate::postgres::PostgresConnector;
pub use crate::sqlite::SqliteConnector;

/// The built-in connectors: csv, parquet, jsonl, sqlite, postgres.
pub fn builtin() -> Vec<Box<dyn Connector>> {
    vec![
        Box::new(CsvConnector),
        Box::new(ParquetConnector),
        Box::new(JsonlConnector),
        Box::new(SqliteConnector),
        Box::new(PostgresConnector),
    ]
}
