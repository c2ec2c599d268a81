//! `feature-extract`: derives feature tables from its inputs. For now a DataFusion `sql`
//! query over the inputs, each registered under its stage name (`NAME` or `NAME_OUTPUT`).

use serde_json::{Map, Value};
use sluice_core::registry::{Arity, Issue};
use sluice_core::spec::DEFAULT_OUTPUT;
use sluice_core::stage::{Input, Stage, StageContext};
use sluice_core::{Diagnostic, Registry, StageError, StageKind, StageSpec};
use sluice_plugin::{KeySpec, KeyType, Sources};

use crate::sql::{QueryEvent, QueryFailure, parse_query, referenced_tables, run_query};

/// Keys of a feature-extract stage.
pub const FEATURE_KEYS: &[KeySpec] = &[KeySpec::required(
    "sql",
    KeyType::String,
    "A query (SELECT/WITH) over the inputs; each input is a table named after its stage (`NAME`, or `NAME_OUTPUT` for a named output). Identifiers are case-sensitive.",
).example("sql = \"SELECT CustomerID, COUNT(*) AS n FROM orders GROUP BY 1\"")];

/// The `feature-extract` stage kind.
#[derive(Debug)]
pub struct FeatureKind;

impl StageKind for FeatureKind {
    fn name(&self) -> &'static str {
        "feature-extract"
    }

    fn doc(&self) -> &'static str {
        "Derive a feature table from the inputs with a SQL query (DataFusion)."
    }

    fn version(&self) -> &'static str {
        "1"
    }

    fn arity(&self) -> Arity {
        Arity { min: 1, max: None }
    }

    fn keys(&self, _config: &Map<String, Value>, _registry: &Registry) -> Option<Vec<KeySpec>> {
        Some(FEATURE_KEYS.to_vec())
    }

    fn check(&self, stage: &StageSpec, _registry: &Registry) -> Vec<Issue> {
        let Some(sql) = stage.config.get("sql").and_then(Value::as_str) else {
            return Vec::new();
        };
        let stmt = match parse_query(sql) {
            Ok(s) => s,
            Err(e) => {
                let mut issue = Issue::new("sql", format!("SQL: {}", e.message));
                issue.at = e.offset;
                return vec![issue];
            }
        };
        let tables: Vec<String> = stage.inputs.iter().map(|i| i.table_name()).collect();
        let mut issues = Vec::new();
        for t in referenced_tables(&stmt) {
            if !tables.contains(&t) {
                let help = sluice_core::diagnostic::suggestion(&t, tables.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("tables available here: {}.", tables.join(", ")));
                let mut issue = Issue::new(
                    "sql",
                    format!("the query reads table `{t}`, which is not an input of this stage"),
                )
                .with_help(format!("{help} Every table the query reads must be listed in `inputs`."));
                issue.at = find_word(sql, &t);
                issues.push(issue);
            }
        }
        issues
    }

    fn outputs(&self, _config: &Map<String, Value>) -> Vec<String> {
        vec![DEFAULT_OUTPUT.to_string()]
    }

    fn is_result(&self) -> bool {
        true
    }

    fn sources(&self, _stage: &StageSpec, _registry: &Registry) -> Result<Option<Sources>, StageError> {
        Ok(None)
    }

    fn build(&self, stage: &StageSpec, _registry: &Registry) -> Result<Box<dyn Stage>, StageError> {
        let sql = stage
            .config
            .get("sql")
            .and_then(Value::as_str)
            .ok_or_else(|| StageError::Internal("feature-extract without sql passed compile".into()))?;
        Ok(Box::new(SqlStage { sql: sql.to_string() }))
    }
}

/// Byte offset of `word` as a whole word in `text`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        boundary(before) && boundary(after)
    })
}

struct SqlStage {
    sql: String,
}

impl Stage for SqlStage {
    fn run(&self, ctx: &mut StageContext<'_>, inputs: &[Input]) -> Result<(), StageError> {
        let mut writer = None;
        let result = run_query(&self.sql, inputs, |event| match event {
            QueryEvent::Schema(schema) => {
                writer = Some(ctx.output(DEFAULT_OUTPUT, schema)?);
                Ok(())
            }
            QueryEvent::Batch(batch) => match writer.as_mut() {
                Some(w) => {
                    w.write(batch)?;
                    ctx.progress(w.rows(), 0);
                    Ok(())
                }
                None => Err(StageError::Internal("query result before its schema".into())),
            },
        });
        match result {
            Ok(()) => {}
            Err(QueryFailure::Stage(e)) => return Err(e),
            Err(QueryFailure::Sql(e)) => {
                let spec = ctx.spec;
                let issue = Issue {
                    key: "sql".into(),
                    message: format!("SQL: {}", e.message),
                    help: None,
                    at: e.offset,
                };
                let diag: Diagnostic = sluice_core::compile::issue_diagnostic(&spec.file, spec, &issue);
                return Err(StageError::Diagnostic(Box::new(diag)));
            }
        }
        let w = writer.ok_or_else(|| StageError::Internal("query produced no schema".into()))?;
        ctx.finish(w)
    }
}
