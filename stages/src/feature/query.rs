//! The `sql` form of feature-extract: validation (the query parses and reads only inputs),
//! its output schema planned against empty tables, and the runtime stage.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use sluice_core::registry::Issue;
use sluice_core::spec::DEFAULT_OUTPUT;
use sluice_core::stage::{Input, Stage, StageContext};
use sluice_core::{Diagnostic, StageError, StageSpec};

use super::table::block_on;
use crate::sql::{QueryEvent, QueryFailure, parse_query, referenced_tables, run_query, sql_error};

/// Byte offset of `word` as a whole word in `text`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        boundary(before) && boundary(after)
    })
}

/// Checks that the query parses and reads only tables that are inputs of the stage.
pub(crate) fn check(sql: &str, stage: &StageSpec) -> Vec<Issue> {
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

/// Plans the query against empty tables with the inputs' schemas. `Ok(None)` when it cannot
/// be planned here (an input's schema is unknown, or `check` already reported a problem).
pub(crate) fn output_schema(
    sql: &str,
    stage: &StageSpec,
    inputs: &[Option<SchemaRef>],
) -> Result<Option<SchemaRef>, Issue> {
    if !check(sql, stage).is_empty() || inputs.len() != stage.inputs.len() {
        return Ok(None);
    }
    let mut tables = Vec::with_capacity(inputs.len());
    for (input, schema) in stage.inputs.iter().zip(inputs) {
        match schema {
            Some(s) => tables.push((input.table_name(), Arc::clone(s))),
            None => return Ok(None),
        }
    }
    let planned = block_on(async {
        let ctx = crate::sql::session();
        for (name, schema) in tables {
            let table = MemTable::try_new(schema, vec![Vec::new()])?;
            // Bare: a `&str` would be parsed as SQL and lowercased (`Orders` → `orders`).
            ctx.register_table(TableReference::bare(name.as_str()), Arc::new(table))?;
        }
        let df = ctx.sql(sql).await?;
        Ok::<SchemaRef, datafusion::error::DataFusionError>(Arc::clone(df.schema().inner()))
    });
    match planned {
        Ok(Ok(schema)) => match crate::sql::duplicate_columns(&schema, "sql") {
            Some(issue) => Err(issue),
            None => Ok(Some(schema)),
        },
        Ok(Err(e)) => {
            let s = sql_error(&e, sql);
            let mut issue = Issue::new("sql", format!("SQL: {}", s.message));
            issue.at = s.offset;
            Err(issue)
        }
        // No runtime, no planning: the run will report it.
        Err(_) => Ok(None),
    }
}

/// Runs the query and streams its result into the output.
#[derive(Debug)]
pub(crate) struct SqlStage {
    /// The query.
    pub sql: String,
}

impl Stage for SqlStage {
    fn run(&self, ctx: &mut StageContext<'_>, inputs: &mut [Input]) -> Result<(), StageError> {
        let mut writer = None;
        let result = run_query(&self.sql, inputs, |event| match event {
            QueryEvent::Schema(schema) => {
                // Checked again here: validation may not have known the inputs' schemas.
                if let Some(issue) = crate::sql::duplicate_columns(&schema, "sql") {
                    let diag = sluice_core::compile::issue_diagnostic(&ctx.spec.file, ctx.spec, &issue);
                    return Err(StageError::Diagnostic(Box::new(diag)));
                }
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
        let (e, code) = match result {
            Ok(()) => {
                let w = writer.ok_or_else(|| StageError::Internal("query produced no schema".into()))?;
                return ctx.finish(w);
            }
            Err(QueryFailure::Stage(e)) => return Err(e),
            // The same diagnostic `derive_schemas` gives before the run.
            Err(QueryFailure::Plan(e)) => (e, Some("schema")),
            Err(QueryFailure::Sql(e)) => (e, None),
        };
        let spec = ctx.spec;
        let issue =
            Issue { key: "sql".into(), message: format!("SQL: {}", e.message), help: None, at: e.offset };
        let mut diag: Diagnostic = sluice_core::compile::issue_diagnostic(&spec.file, spec, &issue);
        if let Some(code) = code {
            diag.code = code;
        }
        Err(StageError::Diagnostic(Box::new(diag)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn a_result_with_a_column_name_twice_is_refused_with_the_name_and_a_fix() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
            Field::new("id", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
        ]);
        let issue = crate::sql::duplicate_columns(&schema, "sql").expect("id is there twice");
        assert_eq!(issue.key, "sql");
        assert_eq!(issue.message, "the query's result has more than one column named `id`");
        assert!(issue.help.as_deref().unwrap().contains("AS a_id"), "{issue:?}");
        let unique = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
        assert!(crate::sql::duplicate_columns(&unique, "sql").is_none());
    }
}
