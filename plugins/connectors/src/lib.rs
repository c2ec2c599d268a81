//! Built-in Sluice connectors: `csv`, `parquet` and `jsonl` files, and `sqlite` and
//! `postgres` databases.
//!
//! Each connector implements the plugin SDK's [`Connector`] trait exactly as an external
//! plugin would; nothing here is privileged.

mod contract;
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
#[cfg(test)]
mod test_support;
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn connectors_have_unique_names_and_every_key_a_doc_and_an_example() {
        let all = builtin();
        let names: HashSet<&str> = all.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), all.len());
        assert!(names.contains("sqlite") && names.contains("postgres"));
        for c in &all {
            assert!(!c.doc().is_empty(), "{}", c.name());
            let mut keys = HashSet::new();
            for k in c.keys() {
                assert!(keys.insert(k.name), "{}: `{}` declared twice", c.name(), k.name);
                assert!(!k.doc.is_empty(), "{}: `{}` has no doc", c.name(), k.name);
                let ex = k.example.unwrap_or_else(|| panic!("{}: `{}` has no example", c.name(), k.name));
                assert!(ex.starts_with(k.name), "{}: example `{ex}` is not for `{}`", c.name(), k.name);
            }
        }
    }
}
