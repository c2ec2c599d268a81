//! What a database connector reads: exactly one of `query` (any SELECT) or `table`
//! (optionally `schema.table`), and the SQL text generated around it.

use serde_json::{Map, Value};
use sluice_plugin::{ConfigIssue, KeySpec, KeyType};

use crate::options::Issues;

/// The `query` key.
pub(crate) const QUERY_KEY: KeySpec = KeySpec::optional(
    "query",
    KeyType::String,
    None,
    "SQL query whose result is read (give this or `table`); a trailing `;` is ignored",
)
.example("query = \"SELECT * FROM orders WHERE status = 'paid'\"");

/// The `table` key.
pub(crate) const TABLE_KEY: KeySpec = KeySpec::optional(
    "table",
    KeyType::String,
    None,
    "Table (or view) read whole (give this or `query`); `schema.table` qualifies it",
)
.example("table = \"orders\"");

/// The source of a database read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlSource {
    /// A query, as written (without a trailing `;`).
    Query(String),
    /// A table, optionally schema-qualified.
    Table {
        /// `schema` in `schema.table`.
        schema: Option<String>,
        /// The table name.
        name: String,
    },
}

impl SqlSource {
    /// Reads `query` / `table` from the stage config.
    pub(crate) fn from_config(cfg: &Map<String, Value>, is: &mut Issues) -> Option<Self> {
        let text = |key: &str, is: &mut Issues| match cfg.get(key) {
            None => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::String(_)) => {
                is.push(ConfigIssue::new(key, "is empty"));
                None
            }
            Some(_) => {
                is.push(ConfigIssue::new(key, "must be a string"));
                None
            }
        };
        let query = text("query", is);
        let table = text("table", is);
        match (query, table) {
            (Some(_), Some(_)) => {
                is.push(
                    ConfigIssue::new("table", "cannot be given together with `query`")
                        .with_help("read a table with `table = \"name\"`, or anything else with `query`"),
                );
                None
            }
            (Some(q), None) => {
                let trimmed = q.trim_end().trim_end_matches(';').trim_end();
                Some(SqlSource::Query(trimmed.to_owned()))
            }
            (None, Some(t)) => Some(match t.split_once('.') {
                Some((schema, name)) => {
                    SqlSource::Table { schema: Some(schema.to_owned()), name: name.to_owned() }
                }
                None => SqlSource::Table { schema: None, name: t },
            }),
            (None, None) => {
                if !cfg.contains_key("query") && !cfg.contains_key("table") {
                    is.push(
                        ConfigIssue::new("query", "either `query` or `table` is required")
                            .with_help("e.g. table = \"orders\", or query = \"SELECT * FROM orders\""),
                    );
                }
                None
            }
        }
    }

    /// The config key this source came from, for messages.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            SqlSource::Query(_) => "query",
            SqlSource::Table { .. } => "table",
        }
    }

    /// "table `orders`" or "the query", for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            SqlSource::Query(_) => "the query".into(),
            SqlSource::Table { schema: Some(s), name } => format!("table `{s}.{name}`"),
            SqlSource::Table { schema: None, name } => format!("table `{name}`"),
        }
    }

    /// The SELECT that reads the source.
    pub(crate) fn select(&self) -> String {
        match self {
            SqlSource::Query(q) => q.clone(),
            SqlSource::Table { schema: Some(s), name } => {
                format!("SELECT * FROM {}.{}", quote_ident(s), quote_ident(name))
            }
            SqlSource::Table { schema: None, name } => format!("SELECT * FROM {}", quote_ident(name)),
        }
    }
}

/// A double-quoted SQL identifier (inner quotes doubled), so any name is taken literally.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `inner` restricted by `condition` (which refers to the result's columns). The line
/// breaks keep a `--` comment at the end of a user's query from swallowing the `)`.
pub(crate) fn filtered(inner: &str, condition: &str) -> String {
    format!("SELECT * FROM (\n{inner}\n) AS sluice_src WHERE {condition}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(v: Value) -> (Option<SqlSource>, Vec<ConfigIssue>) {
        let mut is = Issues::default();
        let s = SqlSource::from_config(v.as_object().unwrap(), &mut is);
        (s, is.0)
    }

    #[test]
    fn exactly_one_of_query_or_table_is_accepted() {
        let (s, is) = read(json!({"query": "SELECT 1;  \n"}));
        assert_eq!(s, Some(SqlSource::Query("SELECT 1".into())));
        assert!(is.is_empty());
        let (s, _) = read(json!({"table": "sales.orders"}));
        let s = s.unwrap();
        assert_eq!(s.select(), "SELECT * FROM \"sales\".\"orders\"");
        assert_eq!(s.describe(), "table `sales.orders`");
        let (s, is) = read(json!({"table": "t", "query": "SELECT 1"}));
        assert!(s.is_none());
        assert_eq!(is[0].key, "table");
        assert!(is[0].message.contains("together with `query`"));
        let (_, is) = read(json!({}));
        assert_eq!(
            (is[0].key.as_str(), is[0].message.as_str()),
            ("query", "either `query` or `table` is required")
        );
        let (_, is) = read(json!({"query": "  "}));
        assert_eq!((is[0].key.as_str(), is[0].message.as_str()), ("query", "is empty"));
    }

    #[test]
    fn identifiers_are_quoted_and_filters_survive_trailing_comments() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        let sql = filtered("SELECT * FROM t -- all", "\"id\" > ?");
        assert_eq!(sql, "SELECT * FROM (\nSELECT * FROM t -- all\n) AS sluice_src WHERE \"id\" > ?");
    }
}
