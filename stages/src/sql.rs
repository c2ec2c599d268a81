//! The embedded SQL engine (Apache DataFusion): one shared tokio runtime, sessions with
//! case-sensitive identifiers, inputs registered as tables, and errors mapped back to a
//! position inside the query so diagnostics point at the pipeline file's line.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, OnceLock};

use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, TableReference};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::{ParquetReadOptions, SessionConfig};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, visit_expressions};
use futures::StreamExt;
use sluice_core::stage::Input;

/// An error with, when known, its byte offset in the query text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// The message, without DataFusion's internal prefixes.
    pub message: String,
    /// Byte offset in the query.
    pub offset: Option<usize>,
}

/// Cores to plan for, looked up once: `available_parallelism` reads cgroup files on every
/// call, which showed up at 6 % of CPU in a 200-stage run.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// The process-wide runtime SQL stages run on.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores())
            .thread_name("sluice-sql")
            .build()
            .map_err(|e| format!("cannot start the SQL runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A session: identifiers are case-sensitive as written (a CSV column `CustomerID` is
/// `CustomerID` in SQL, not `customerid`), and spans are collected for error positions.
pub fn session() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(cores())
        .with_batch_size(8192)
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
        .set_bool("datafusion.sql_parser.collect_spans", true);
    SessionContext::new_with_config(config)
}

/// Why an expression computed row by row (`derive`, `filter`) cannot hold some SQL.
pub const NOT_PER_ROW: &str = "aggregate and window functions and subqueries cannot be used here: \
     the expression is computed row by row (use `group_by` with `aggregations`, or a `sql` stage)";

/// Whether the expression `sql` holds a subquery (`(SELECT …)`, `EXISTS`, `IN (SELECT …)`).
/// Checked on the text, before planning: a subquery's tables do not exist there, and
/// "table not found" would hide the real problem.
pub fn has_subquery(sql: &str) -> bool {
    let Ok(parsed) = DFParser::parse_sql_into_expr(sql) else { return false };
    visit_expressions(&parsed.expr, |e| match e {
        SqlExpr::Subquery(_) | SqlExpr::Exists { .. } | SqlExpr::InSubquery { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Plans one SQL expression over `schema` the way a query plans its expressions: coerced
/// and simplified first. Some functions only run simplified (`coalesce` becomes a CASE,
/// `now()` a constant); planning them directly fails inside DataFusion.
pub fn physical_expr(
    ctx: &SessionContext,
    expr: Expr,
    schema: &DFSchema,
) -> Result<Arc<dyn PhysicalExpr>, DataFusionError> {
    let per_row = |e: &Expr| {
        matches!(
            e,
            Expr::AggregateFunction(_)
                | Expr::WindowFunction(_)
                | Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
        )
    };
    if expr.exists(|e| Ok(per_row(e)))? {
        return Err(DataFusionError::Plan(NOT_PER_ROW.into()));
    }
    let info = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        // The lock, not `state()`: that would clone the whole session state per expression.
        .with_config_options(Arc::clone(ctx.state_ref().read().config_options()))
        .with_current_time()
        .build();
    let simplifier = ExprSimplifier::new(info);
    let expr = simplifier.simplify(simplifier.coerce(expr, schema)?)?;
    ctx.create_physical_expr(expr, schema)
}

/// A session borrowed from a process-wide pool: building one registers hundreds of
/// functions, which cost 10–19 % of CPU in a 200-stage run when every stage built its own.
/// On drop, the tables the stage registered are removed and the session goes back.
pub struct PooledSession {
    ctx: Option<SessionContext>,
}

impl std::fmt::Debug for PooledSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledSession").finish_non_exhaustive()
    }
}

fn pool() -> &'static Mutex<Vec<SessionContext>> {
    static POOL: OnceLock<Mutex<Vec<SessionContext>>> = OnceLock::new();
    POOL.get_or_init(|| Mutex::new(Vec::new()))
}

/// Takes a session from the pool (or builds one). It holds no tables.
pub fn pooled_session() -> PooledSession {
    let reused = pool().lock().ok().and_then(|mut p| p.pop());
    PooledSession { ctx: Some(reused.unwrap_or_else(session)) }
}

impl std::ops::Deref for PooledSession {
    type Target = SessionContext;
    fn deref(&self) -> &SessionContext {
        // Only `drop` takes the context out.
        self.ctx.as_ref().unwrap_or_else(|| unreachable!("pooled session used after drop"))
    }
}

impl Drop for PooledSession {
    fn drop(&mut self) {
        let Some(ctx) = self.ctx.take() else { return };
        // Forget everything the stage registered; a session that cannot be cleaned is
        // simply not reused.
        let names: Vec<String> = ctx
            .catalog("datafusion")
            .and_then(|c| c.schema("public"))
            .map(|s| s.table_names())
            .unwrap_or_default();
        for name in &names {
            if ctx.deregister_table(TableReference::bare(name.as_str())).is_err() {
                return;
            }
        }
        if let Ok(mut p) = pool().lock()
            && p.len() < 2 * cores()
        {
            p.push(ctx);
        }
    }
}

/// Byte offset of a 1-based line/column in `sql`.
fn offset_of(sql: &str, line: u64, column: u64) -> Option<usize> {
    if line == 0 {
        return None;
    }
    let mut start = 0usize;
    for (i, l) in sql.split_inclusive('\n').enumerate() {
        if i as u64 + 1 == line {
            let col = l.char_indices().nth(column.saturating_sub(1) as usize).map_or(l.len(), |(b, _)| b);
            return Some(start + col);
        }
        start += l.len();
    }
    None
}

/// Finds `Line: X, Column: Y` in a parser message.
fn position_in_message(message: &str) -> Option<(u64, u64)> {
    let i = message.rfind("Line: ")?;
    let rest = &message[i + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, col.parse().ok()?))
}

/// Converts a DataFusion error into a message and position in `sql`.
pub fn sql_error(e: &DataFusionError, sql: &str) -> SqlError {
    let located = e
        .diagnostic()
        .and_then(|d| d.span)
        .map(|s| (s.start.line, s.start.column))
        .or_else(|| position_in_message(&e.to_string()));
    let mut message = e.strip_backtrace();
    for prefix in ["SQL error: ", "Error during planning: ", "Schema error: ", "Execution error: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            message = rest.to_string();
        }
    }
    if let Some(inner) = message.strip_prefix("ParserError(\"").and_then(|m| m.strip_suffix("\")")) {
        message = inner.replace("\\\"", "\"");
    }
    if let Some(i) = message.rfind(" at Line: ") {
        message.truncate(i);
    }
    SqlError { message, offset: located.and_then(|(l, c)| offset_of(sql, l, c)) }
}

/// Parses exactly one query (`SELECT`/`WITH`/`VALUES`).
pub fn parse_query(sql: &str) -> Result<Statement, SqlError> {
    let mut statements = DFParser::parse_sql(sql).map_err(|e| sql_error(&e, sql))?;
    if statements.len() != 1 {
        return Err(SqlError {
            message: format!("expected one query, found {} statements", statements.len()),
            offset: None,
        });
    }
    let stmt =
        statements.pop_front().ok_or_else(|| SqlError { message: "empty query".into(), offset: None })?;
    match &stmt {
        Statement::Statement(s) if matches!(**s, datafusion::sql::sqlparser::ast::Statement::Query(_)) => {
            Ok(stmt)
        }
        _ => Err(SqlError {
            message: "only queries (SELECT, WITH, VALUES) are allowed; a stage's output is its query result"
                .into(),
            offset: Some(0),
        }),
    }
}

/// Table names a query reads (CTE names excluded).
pub fn referenced_tables(stmt: &Statement) -> Vec<String> {
    datafusion::sql::resolve::resolve_table_references(stmt, false)
        .map(|(tables, _)| tables.iter().map(|t| t.table().to_string()).collect())
        .unwrap_or_default()
}

/// Registers each input as a table: in memory when it is, else its Parquet file.
pub async fn register_inputs(ctx: &SessionContext, inputs: &[Input]) -> Result<(), DataFusionError> {
    let parts = cores();
    for input in inputs {
        let ds = &input.dataset;
        match ds.memory() {
            Some(batches) => {
                // Round-robin the batches over partitions so the query can use every core.
                let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts.min(batches.len()).max(1)];
                let n = partitions.len();
                for (i, b) in batches.iter().enumerate() {
                    partitions[i % n].push(b.clone());
                }
                let table = MemTable::try_new(ds.schema.clone(), partitions)?;
                // Bare: a `&str` would be parsed as SQL and lowercased (`Orders` → `orders`).
                ctx.register_table(TableReference::bare(input.table_name.as_str()), Arc::new(table))?;
            }
            None => {
                let path = ds.path.to_string_lossy().to_string();
                ctx.register_parquet(
                    TableReference::bare(input.table_name.as_str()),
                    &path,
                    ParquetReadOptions::default(),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// What a running query hands its consumer: the schema first, then batches.
#[derive(Debug)]
pub enum QueryEvent {
    /// The result schema (exactly once, before any batch).
    Schema(arrow::datatypes::SchemaRef),
    /// A result batch.
    Batch(RecordBatch),
}

/// Runs a query over `inputs`, streaming the result into `sink`.
pub fn run_query<F>(sql: &str, inputs: &[Input], mut sink: F) -> Result<(), QueryFailure>
where
    F: FnMut(QueryEvent) -> Result<(), sluice_core::StageError>,
{
    let rt = runtime().map_err(|m| QueryFailure::Stage(sluice_core::StageError::Failed(m)))?;
    rt.block_on(async {
        let ctx = pooled_session();
        register_inputs(&ctx, inputs).await.map_err(|e| QueryFailure::Sql(sql_error(&e, sql)))?;
        let df = ctx.sql(sql).await.map_err(|e| QueryFailure::Plan(sql_error(&e, sql)))?;
        let mut stream = df.execute_stream().await.map_err(|e| QueryFailure::Sql(sql_error(&e, sql)))?;
        sink(QueryEvent::Schema(stream.schema())).map_err(QueryFailure::Stage)?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| QueryFailure::Sql(sql_error(&e, sql)))?;
            sink(QueryEvent::Batch(batch)).map_err(QueryFailure::Stage)?;
        }
        Ok(())
    })
}

/// Why a query failed: the SQL (user's fault, has a position) or the stage around it.
#[derive(Debug)]
pub enum QueryFailure {
    /// The query does not fit its inputs: it names a column or function that is not there,
    /// or mixes types (found while planning, before any row is read).
    Plan(SqlError),
    /// The query failed on the data.
    Sql(SqlError),
    /// Writing the result failed.
    Stage(sluice_core::StageError),
}

/// The issue when the query's result names a column twice (`SELECT * FROM a JOIN b`):
/// DataFusion keeps both, told apart by their table, but a stage's output is a file whose
/// columns are found by name, so the next stage would fail far from the cause.
pub(crate) fn duplicate_columns(
    schema: &arrow::datatypes::Schema,
    key: &str,
) -> Option<sluice_core::registry::Issue> {
    let mut seen = std::collections::HashSet::new();
    let name = schema.fields().iter().map(|f| f.name()).find(|n| !seen.insert(n.as_str()))?;
    Some(
        sluice_core::registry::Issue::new(
            key,
            format!("the query's result has more than one column named `{name}`"),
        )
        .with_help(format!(
            "give each column its own name with an alias, e.g. `a.{name} AS a_{name}, b.{name} AS b_{name}`, \
             or select only one of them"
        )),
    )
}

/// `MIN` or `MAX` (`func`) of the float column `c` that skips NaN, as pandas and the
/// native aggregates do; values of only NaN give NaN. The engine alone compares floats by
/// a partial or total order, where a NaN wins or loses by its sign bit, and its grouped
/// form is order-dependent (apache/datafusion#24432). `over` is a window clause, or empty.
pub(crate) fn float_min_max(func: &str, c: &str, over: &str) -> String {
    format!(
        "COALESCE({func}(CASE WHEN isnan({c}) THEN NULL ELSE {c} END) {over}, {func}(CASE WHEN isnan({c}) THEN {c} END) {over})"
    )
}

/// The mean of the decimal column `c` as float64, as `mean` is documented: the engine's
/// own decimal `AVG` widens the scale and can overflow (decimal(38, 18) fails outright).
pub(crate) fn decimal_mean(c: &str, over: &str) -> String {
    format!("AVG(CAST({c} AS DOUBLE)) {over}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_has_position() {
        let sql = "SELECT a\nFROM t\nGROUP a";
        let e = parse_query(sql).unwrap_err();
        assert_eq!(e.message, "Expected: end of statement, found: GROUP");
        let off = e.offset.unwrap();
        assert_eq!(&sql[off..off + 5], "GROUP");
    }

    #[test]
    fn pooled_sessions_forget_their_tables() {
        let rt = runtime().unwrap();
        rt.block_on(async {
            {
                let ctx = pooled_session();
                ctx.sql("CREATE VIEW leftover AS SELECT 1 AS a").await.unwrap().collect().await.unwrap();
                assert!(ctx.table("leftover").await.is_ok());
            }
            let ctx = pooled_session();
            assert!(ctx.table("leftover").await.is_err(), "a reused session must start empty");
        });
    }

    #[test]
    fn only_queries_are_allowed() {
        assert!(parse_query("CREATE TABLE x (a INT)").is_err());
        assert!(parse_query("SELECT 1; SELECT 2").is_err());
        let s = parse_query("WITH c AS (SELECT * FROM orders) SELECT * FROM c JOIN Customers USING (id)")
            .unwrap();
        let mut t = referenced_tables(&s);
        t.sort();
        assert_eq!(t, ["Customers", "orders"]);
    }
}
