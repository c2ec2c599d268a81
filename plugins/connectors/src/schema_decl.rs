//! The `schema` key: column types declared by the user (`schema = { Quantity = "int64" }`).

use arrow::datatypes::DataType;
use serde_json::{Map, Value};
use sluice_plugin::types::TYPE_NAMES;
use sluice_plugin::{ConfigIssue, ConnectorError, parse_type_name, type_name};

use crate::options::Issues;
use crate::suggest::did_you_mean;

/// Declared column types, in the order written.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeclaredSchema {
    columns: Vec<(String, DataType)>,
}

impl DeclaredSchema {
    /// Reads the `schema` key (absent means nothing declared).
    pub(crate) fn from_config(cfg: &Map<String, Value>, is: &mut Issues) -> Self {
        let columns = declared_columns(cfg, is, parse_type_name, &TYPE_NAMES.join(", "));
        DeclaredSchema { columns: columns.unwrap_or_default() }
    }

    /// The declared type of `column`, if any.
    pub(crate) fn get(&self, column: &str) -> Option<&DataType> {
        self.columns.iter().find(|(c, _)| c == column).map(|(_, t)| t)
    }

    /// Declared columns in the order written.
    pub(crate) fn columns(&self) -> &[(String, DataType)] {
        &self.columns
    }

    /// Fails when a declared column is not among `names` (a typo would otherwise be ignored).
    pub(crate) fn check_present(&self, names: &[String], source: &str) -> Result<(), ConnectorError> {
        for (col, _) in &self.columns {
            if !names.iter().any(|n| n == col) {
                let hint = did_you_mean(col, names.iter().map(String::as_str));
                return Err(ConnectorError::config(
                    format!("schema.{col}"),
                    format!("column `{col}` is not in {source}{hint}"),
                ));
            }
        }
        Ok(())
    }
}

/// Reads `schema = { COLUMN = "type", ... }` in the order written, naming types with
/// `parse` (`expected` lists the accepted names for the help). `None` when the key is
/// absent or not a table; each bad entry is reported at `schema.COLUMN` and left out.
pub(crate) fn declared_columns(
    cfg: &Map<String, Value>,
    is: &mut Issues,
    parse: fn(&str) -> Option<DataType>,
    expected: &str,
) -> Option<Vec<(String, DataType)>> {
    let v = cfg.get("schema")?;
    let Some(table) = v.as_object() else {
        is.push(
            ConfigIssue::new("schema", "must be a table of column name = type name")
                .with_help("e.g. schema = { Quantity = \"int64\" }"),
        );
        return None;
    };
    let mut columns = Vec::with_capacity(table.len());
    for (col, ty) in table {
        let key = format!("schema.{col}");
        let Some(name) = ty.as_str() else {
            is.push(ConfigIssue::new(key, format!("must be a type name string, not {ty}")));
            continue;
        };
        match parse(name) {
            Some(dt) => columns.push((col.clone(), dt)),
            None => is.push(
                ConfigIssue::new(key, format!("unknown type `{name}`"))
                    .with_help(format!("expected one of: {expected}")),
            ),
        }
    }
    Some(columns)
}

/// "a" or "an" before a type name, for messages like "`abc` is not an int64".
pub(crate) fn with_article(ty: &DataType) -> String {
    let name = type_name(ty);
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {name}")
}

/// The `schema` key of connectors that infer types (interpreted by [`DeclaredSchema`]).
pub(crate) const SCHEMA_KEY: sluice_plugin::KeySpec = sluice_plugin::KeySpec::optional(
    "schema",
    sluice_plugin::KeyType::Table,
    None,
    "Column types by name, e.g. { Quantity = \"int64\" }; columns not listed are inferred",
)
.example("schema = { Quantity = \"int64\", InvoiceDate = \"timestamp\" }");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_type_names_are_reported_at_the_column_key_with_the_valid_names() {
        let cfg = json!({"schema": {"Quantity": "int64", "Price": "decimal", "Id": 5}});
        let mut is = Issues::default();
        let s = DeclaredSchema::from_config(cfg.as_object().unwrap(), &mut is);
        assert_eq!(s.get("Quantity"), Some(&DataType::Int64));
        assert_eq!(is.0.len(), 2);
        assert_eq!(is.0[0].key, "schema.Price");
        assert!(is.0[0].help.as_deref().unwrap().contains("int64, int32, float64"));
        assert_eq!(is.0[1].key, "schema.Id");
    }

    #[test]
    fn declared_columns_missing_from_the_source_name_a_close_match() {
        let cfg = json!({"schema": {"Quantty": "int"}});
        let mut is = Issues::default();
        let s = DeclaredSchema::from_config(cfg.as_object().unwrap(), &mut is);
        let err = s.check_present(&["Quantity".into()], "`a.csv`").unwrap_err().to_string();
        assert!(err.contains("schema.Quantty") && err.contains("did you mean `Quantity`"), "{err}");
        assert_eq!(with_article(&DataType::Int64), "an int64");
        assert_eq!(with_article(&DataType::Float64), "a float64");
    }
}
