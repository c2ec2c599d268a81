//! The `sqlite` connector: a table or query of an SQLite database file, streamed in batches.
//!
//! SQLite's statement handles borrow their connection, so the query runs on a thread of its
//! own that owns both and hands finished batches over a channel of one slot: at most two
//! batches exist at a time, whatever the size of the result.
//!
//! Column types come from the declared column types (SQLite's affinity rules, plus bool,
//! date and timestamp names); columns without one (expressions) take the type of the values
//! in the first batch.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags, params_from_iter};
use serde_json::Value;
use sluice_plugin::{
    BatchReader, ConfigIssue, Connector, ConnectorError, KeySpec, KeyType, OnError, ReadRequest, Reject,
    Sources,
};

use crate::contract::{self, Conforming, Contract};
use crate::options::{self, Issues};
use crate::row_batch::{Cell, RowBatchBuilder};
use crate::sql_source::{self, SqlSource, quote_ident};
use crate::suggest::did_you_mean;
use crate::values;
use crate::watermark::{self, Bound};

/// Reads a table or query of an SQLite database.
#[derive(Debug, Default, Clone, Copy)]
pub struct SqliteConnector;

const KEYS: &[KeySpec] = &[
    KeySpec::required("path", KeyType::String, "SQLite database file, relative to the pipeline file")
        .example("path = \"data/shop.db\""),
    sql_source::QUERY_KEY,
    sql_source::TABLE_KEY,
    contract::CONTRACT_KEY,
];

/// The connector's options, read from the stage table.
#[derive(Debug, Clone)]
struct SqliteOptions {
    path: PathBuf,
    source: SqlSource,
    contract: Option<Contract>,
}

impl SqliteOptions {
    fn from_config(req: &ReadRequest<'_>) -> Result<Self, Vec<ConfigIssue>> {
        let mut is = Issues::default();
        let path = match req.config.get("path") {
            Some(Value::String(p)) => Some(req.resolve(p)),
            Some(_) => {
                is.push(ConfigIssue::new("path", "must be a string"));
                None
            }
            None => {
                is.push(ConfigIssue::new("path", "is required").with_help("e.g. path = \"data/shop.db\""));
                None
            }
        };
        if let Some(p) = &path
            && !p.is_file()
        {
            let what = if p.exists() { "is not a file" } else { "does not exist" };
            is.push(ConfigIssue::new("path", format!("`{}` {what}", p.display())));
        }
        let source = SqlSource::from_config(req.config, &mut is);
        let contract = Contract::from_config(req.config, &mut is);
        match (path, source) {
            (Some(path), Some(source)) => is.finish(SqliteOptions { path, source, contract }),
            _ => Err(is.0),
        }
    }
}

/// Opens the database read-only (so a mistyped path is never created as an empty database)
/// and makes sure it is one.
fn connect(path: &Path) -> Result<Connection, ConnectorError> {
    let not_db = |e: rusqlite::Error| {
        ConnectorError::config("path", format!("`{}` is not a readable SQLite database: {e}", path.display()))
    };
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(not_db)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())).map_err(not_db)?;
    Ok(conn)
}

/// Names of the database's tables and views, for "did you mean".
fn table_names(conn: &Connection) -> Vec<String> {
    let Ok(mut stmt) = conn.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')") else {
        return Vec::new();
    };
    stmt.query_map([], |r| r.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// An error preparing the source's SQL, at the key the SQL came from.
fn sql_error(conn: &Connection, opts: &SqliteOptions, e: &rusqlite::Error) -> ConnectorError {
    if let SqlSource::Table { name, .. } = &opts.source
        && e.to_string().starts_with("no such table")
    {
        let names = table_names(conn);
        let hint = did_you_mean(name, names.iter().map(String::as_str));
        return ConnectorError::config(
            "table",
            format!("{} is not in `{}`{hint}", opts.source.describe(), opts.path.display()),
        );
    }
    let at = match e {
        rusqlite::Error::SqlInputError { offset, .. } if *offset >= 0 => {
            format!(" (at byte {offset} of the query)")
        }
        _ => String::new(),
    };
    let msg = match e {
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    };
    ConnectorError::config(
        opts.source.key(),
        format!("SQLite rejected {}: {msg}{at}", opts.source.describe()),
    )
}

/// The Arrow type of a declared SQLite column type; `None` when nothing is declared.
fn declared_type(decl: &str) -> Option<DataType> {
    let d = decl.to_ascii_uppercase();
    let has = |s: &str| d.contains(s);
    Some(if d.trim().is_empty() {
        return None;
    } else if has("BOOL") {
        DataType::Boolean
    } else if has("DATETIME") || has("TIMESTAMP") {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    } else if has("DATE") {
        DataType::Date32
    } else if has("INT") {
        DataType::Int64
    } else if has("CHAR") || has("CLOB") || has("TEXT") || has("TIME") {
        DataType::Utf8
    } else if has("BLOB") {
        DataType::Binary
    } else {
        // REAL, FLOAT, DOUBLE, and NUMERIC affinity (NUMERIC, DECIMAL, ...).
        DataType::Float64
    })
}

/// The type a column that `schema` declares as `ty` (and the table as `native`) is read
/// in, when this connector reads it better than a generic conversion would: dates and
/// timestamps follow this connector's conventions (ISO text, and integers as seconds since
/// 1970) where a conversion would take an integer for microseconds or days; bools take
/// only 0, 1, `true` and `false`; integers in a column of NUMERIC affinity are read as
/// integers (as float64 first, 9007199254740993 would be rounded); decimals are read as
/// their text, which the contract converts exactly.
fn direct_type(ty: &DataType, decl: Option<&str>) -> Option<DataType> {
    match ty {
        DataType::Boolean | DataType::Date32 | DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Some(ty.clone())
        }
        t if t.is_integer() && decl.is_some_and(numeric_affinity) => Some(DataType::Int64),
        DataType::Decimal128(..) => Some(DataType::Utf8),
        _ => None,
    }
}

/// Whether a declared type gives SQLite's NUMERIC affinity (`NUMERIC`, `DECIMAL(20,0)`,
/// ...), which stores whole numbers as integers; REAL affinity stores them as floats, so
/// reading those as integers would gain nothing.
fn numeric_affinity(decl: &str) -> bool {
    let d = decl.to_ascii_uppercase();
    declared_type(decl) == Some(DataType::Float64) && !["REAL", "FLOA", "DOUB"].iter().any(|r| d.contains(r))
}

/// The type of a column without a declared type, from its values in the first batch.
fn value_type<'a>(values: impl Iterator<Item = ValueRef<'a>>) -> DataType {
    let (mut int, mut real, mut text, mut blob) = (false, false, false, false);
    for v in values {
        match v {
            ValueRef::Null => {}
            ValueRef::Integer(_) => int = true,
            ValueRef::Real(_) => real = true,
            ValueRef::Text(_) => text = true,
            ValueRef::Blob(_) => blob = true,
        }
    }
    match (int, real, text, blob) {
        (_, _, _, true) if !int && !real => DataType::Binary,
        (true, false, false, false) => DataType::Int64,
        (_, true, false, false) => DataType::Float64,
        _ => DataType::Utf8,
    }
}

/// A value as shown in messages.
fn show(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => format!("`{i}` (integer)"),
        ValueRef::Real(f) => format!("`{f}` (real)"),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            let mut out: String = s.chars().take(60).collect();
            if s.chars().count() > 60 {
                out.push('…');
            }
            format!("`{out}` (text)")
        }
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

/// A value as JSON, for the raw text of a quarantined row.
fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        // JSON has no infinity: written out, as JavaScript and PostgreSQL write it.
        ValueRef::Real(f) if f.is_infinite() => Value::from(if f > 0.0 { "Infinity" } else { "-Infinity" }),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            Value::from(format!("x'{hex}'"))
        }
    }
}

/// Converts one value to its column's type; `Err` says why it does not fit.
fn to_cell<'a>(ty: &DataType, v: ValueRef<'a>) -> Result<Cell<'a>, String> {
    let cell = match (ty, v) {
        (_, ValueRef::Null) => Some(Cell::Null),
        (DataType::Int64, ValueRef::Integer(i)) => Some(Cell::Int(i)),
        (DataType::Int64, ValueRef::Text(t)) => {
            std::str::from_utf8(t).ok().and_then(|s| s.parse().ok()).map(Cell::Int)
        }
        // A whole number stored as REAL is still that integer; 2^63 and beyond are not.
        (DataType::Int64, ValueRef::Real(f))
            if f.fract() == 0.0 && (i64::MIN as f64..-(i64::MIN as f64)).contains(&f) =>
        {
            Some(Cell::Int(f as i64))
        }
        (DataType::Float64, ValueRef::Integer(i)) => Some(Cell::Float(i as f64)),
        (DataType::Float64, ValueRef::Real(f)) => Some(Cell::Float(f)),
        (DataType::Boolean, ValueRef::Integer(i @ (0 | 1))) => Some(Cell::Bool(i == 1)),
        (DataType::Boolean, ValueRef::Text(t)) => values::parse_bool(t).map(Cell::Bool),
        (DataType::Utf8, ValueRef::Text(t)) => std::str::from_utf8(t).ok().map(|s| Cell::Text(s.into())),
        (DataType::Utf8, ValueRef::Integer(i)) => Some(Cell::Text(i.to_string().into())),
        (DataType::Utf8, ValueRef::Real(f)) => Some(Cell::Text(f.to_string().into())),
        (DataType::Binary, ValueRef::Blob(b) | ValueRef::Text(b)) => Some(Cell::Bytes(b)),
        (DataType::Date32, ValueRef::Text(t)) => values::parse_date(t).map(Cell::Days),
        (DataType::Timestamp(_, _), ValueRef::Text(t)) => values::parse_timestamp(t).map(Cell::Micros),
        // SQLite's own convention for times stored as numbers: seconds since 1970.
        (DataType::Timestamp(_, _), ValueRef::Integer(s)) => s.checked_mul(1_000_000).map(Cell::Micros),
        _ => None,
    };
    cell.ok_or_else(|| {
        let expected = match ty {
            DataType::Date32 => "a date (YYYY-MM-DD)".to_owned(),
            DataType::Timestamp(_, _) => {
                "a timestamp (ISO 8601 text, or integer seconds since 1970)".to_owned()
            }
            DataType::Utf8 => "valid UTF-8 text".to_owned(),
            other => crate::schema_decl::with_article(other),
        };
        format!("{} is not {expected}", show(v))
    })
}

/// A value kept past its row (rusqlite's own owned value refuses text that is not UTF-8,
/// which must reach the per-row error handling instead).
enum Owned {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl From<ValueRef<'_>> for Owned {
    fn from(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => Owned::Null,
            ValueRef::Integer(i) => Owned::Integer(i),
            ValueRef::Real(f) => Owned::Real(f),
            ValueRef::Text(t) => Owned::Text(t.to_vec()),
            ValueRef::Blob(b) => Owned::Blob(b.to_vec()),
        }
    }
}

impl Owned {
    fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Owned::Null => ValueRef::Null,
            Owned::Integer(i) => ValueRef::Integer(*i),
            Owned::Real(f) => ValueRef::Real(*f),
            Owned::Text(t) => ValueRef::Text(t),
            Owned::Blob(b) => ValueRef::Blob(b),
        }
    }
}

/// Everything the reading thread needs.
struct Job {
    opts: SqliteOptions,
    on_error: OnError,
    batch_size: usize,
    watermark: Option<(String, Value)>,
}

/// What the reading thread sends after the schema.
enum Msg {
    /// Good rows, and the rows refused since the previous message.
    Batch(RecordBatch, Vec<Reject>),
    /// Reading failed; nothing follows.
    Failed(ConnectorError),
    /// The whole result was read.
    End,
}

/// Text that starts like an ISO date (`2024-01-05…`): the only text a date or timestamp
/// watermark is compared with in the database.
const ISO_DATE_GLOB: &str = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*";

/// The SQL to run and its parameters, with the incremental filter when there is one.
fn statement_sql(
    job: &Job,
    inner: &str,
    names: &[String],
    decls: &[Option<DataType>],
) -> Result<(String, Vec<SqlValue>), ConnectorError> {
    let Some((column, after)) = &job.watermark else { return Ok((inner.to_owned(), Vec::new())) };
    let Some(i) = names.iter().position(|n| n == column) else {
        return Err(watermark::unknown_column(
            column,
            &job.opts.source.describe(),
            names.iter().map(String::as_str),
        ));
    };
    if let Some(contract) = &job.opts.contract {
        // The watermark is in the contract's type; only a column read in that very type
        // compares the same way here (text declared as a timestamp would compare as text
        // and miss rows). Otherwise the collect stage filters, in the declared type.
        match &decls[i] {
            Some(ty) if contract.keeps_order(column, ty) => {}
            _ => return Ok((inner.to_owned(), Vec::new())),
        }
    }
    // Without a declared type, the watermark's own JSON type says how to compare.
    let ty = decls[i].clone().unwrap_or(match after {
        Value::Number(n) if n.is_i64() => DataType::Int64,
        Value::Number(_) => DataType::Float64,
        _ => DataType::Utf8,
    });
    let c = quote_ident(column);
    let (condition, params) = match watermark::bound(column, &ty, after)? {
        Bound::Int(v) => (format!("{c} > ?1"), vec![SqlValue::Integer(v)]),
        Bound::Float(v) => (format!("{c} > ?1"), vec![SqlValue::Real(v)]),
        Bound::Timestamp(t) => (
            // Stored either as ISO text (`T` or space) or as seconds since 1970. Any other
            // value is let through: the stage refuses it under `on_error`, where a text
            // comparison here would drop it unseen (`1/2/2024` sorts below any year).
            format!(
                "CASE WHEN typeof({c}) IN ('integer', 'real') THEN {c} > ?2 WHEN {c} GLOB '{ISO_DATE_GLOB}' THEN replace({c}, 'T', ' ') COLLATE BINARY > ?1 WHEN {c} IS NULL THEN 0 ELSE 1 END"
            ),
            vec![SqlValue::Text(values::format_timestamp(t)), SqlValue::Real(t as f64 / 1e6)],
        ),
        // Dates are ISO text; anything else goes to the stage, as for timestamps.
        Bound::Date(d) => (
            format!(
                "CASE WHEN {c} GLOB '{ISO_DATE_GLOB}' THEN {c} COLLATE BINARY > ?1 WHEN {c} IS NULL THEN 0 ELSE 1 END"
            ),
            vec![SqlValue::Text(values::format_date(d))],
        ),
        // Byte order, as the collect stage compares, whatever collation the column has
        // (`COLLATE NOCASE` would put `a` before `B`).
        b => (format!("{c} COLLATE BINARY > ?1"), vec![SqlValue::Text(b.to_text())]),
    };
    Ok((sql_source::filtered(inner, &condition), params))
}

/// Collects converted rows into batches and refused rows into rejects, and sends them.
struct Sink<'j> {
    job: &'j Job,
    schema: SchemaRef,
    builder: RowBatchBuilder,
    rejects: Vec<Reject>,
    /// 1-based number of the last row of the result seen.
    row: u64,
    /// Rows (kept or refused) since the last message.
    pending: usize,
    tx: &'j SyncSender<Msg>,
}

impl Sink<'_> {
    fn row(&mut self, vals: &[ValueRef<'_>]) -> Result<(), ConnectorError> {
        self.row += 1;
        self.pending += 1;
        let mut cells = Vec::with_capacity(vals.len());
        let mut refused = None;
        for (v, f) in vals.iter().zip(self.schema.fields()) {
            match to_cell(f.data_type(), *v) {
                Ok(c) => cells.push(c),
                Err(why) => {
                    refused = Some(format!("column `{}`: {why}", f.name()));
                    break;
                }
            }
        }
        match refused {
            None => self.builder.push_row(&cells)?,
            Some(why) => self.refuse(why, vals)?,
        }
        if self.pending >= self.job.batch_size {
            self.flush()?;
        }
        Ok(())
    }

    fn refuse(&mut self, why: String, vals: &[ValueRef<'_>]) -> Result<(), ConnectorError> {
        let reason = format!("{}, row {}, {why}", self.job.opts.source.describe(), self.row);
        match self.job.on_error {
            OnError::Fail => {
                Err(ConnectorError::Malformed { file: self.job.opts.path.clone(), line: self.row, reason })
            }
            OnError::Skip | OnError::Quarantine => {
                let raw = if self.job.on_error == OnError::Quarantine {
                    Value::Array(vals.iter().map(|v| to_json(*v)).collect()).to_string()
                } else {
                    String::new()
                };
                self.rejects.push(Reject {
                    source: format!("{} ({})", self.job.opts.path.display(), self.job.opts.source.describe()),
                    line: self.row,
                    reason,
                    raw,
                });
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> Result<(), ConnectorError> {
        self.pending = 0;
        if self.builder.rows() == 0 && self.rejects.is_empty() {
            return Ok(());
        }
        let batch = self.builder.finish()?;
        self.tx
            .send(Msg::Batch(batch, std::mem::take(&mut self.rejects)))
            .map_err(|_| ConnectorError::Other("the SQLite reader was dropped".into()))
    }
}

/// Runs the query; sends the schema on `setup`, then batches on `tx`.
fn stream(
    job: &Job,
    setup: &mut Option<SyncSender<Result<SchemaRef, ConnectorError>>>,
    tx: &SyncSender<Msg>,
) -> Result<(), ConnectorError> {
    let conn = connect(&job.opts.path)?;
    let inner = job.opts.source.select();
    let (names, decls) = {
        let stmt = conn.prepare(&inner).map_err(|e| sql_error(&conn, &job.opts, &e))?;
        let names: Vec<String> = stmt.columns().map(|c| c.name().to_owned()).collect();
        let decls: Vec<Option<DataType>> = stmt
            .columns()
            .map(|c| {
                let contract = job.opts.contract.as_ref().and_then(|k| k.declared(c.name()));
                let native = c.decl_type().and_then(declared_type);
                contract.and_then(|t| direct_type(t, c.decl_type())).or(native)
            })
            .collect();
        (names, decls)
    };
    let (sql, params) = statement_sql(job, &inner, &names, &decls)?;
    let mut stmt = conn.prepare(&sql).map_err(|e| sql_error(&conn, &job.opts, &e))?;
    let mut rows = stmt.query(params_from_iter(params)).map_err(|e| sql_error(&conn, &job.opts, &e))?;
    let read_err = |e: rusqlite::Error| {
        ConnectorError::Other(format!(
            "{}: reading {} failed: {e}",
            job.opts.path.display(),
            job.opts.source.describe()
        ))
    };

    // Columns without a declared type need a look at values first: keep the first batch.
    let batch_size = job.batch_size.max(1);
    let mut first: Vec<Vec<Owned>> = Vec::new();
    if decls.iter().any(Option::is_none) {
        while first.len() < batch_size {
            let Some(row) = rows.next().map_err(read_err)? else { break };
            let vals = (0..names.len())
                .map(|i| row.get_ref(i).map(Owned::from))
                .collect::<Result<Vec<_>, _>>()
                .map_err(read_err)?;
            first.push(vals);
        }
    }
    let fields: Vec<Field> = names
        .iter()
        .zip(&decls)
        .enumerate()
        .map(|(i, (name, decl))| {
            let ty = decl.clone().unwrap_or_else(|| value_type(first.iter().map(|r| r[i].as_ref())));
            Field::new(name, ty, true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    if let Some(s) = setup.take() {
        s.send(Ok(schema.clone()))
            .map_err(|_| ConnectorError::Other("the SQLite reader was dropped".into()))?;
    }

    let builder = RowBatchBuilder::new(schema.clone(), batch_size)?;
    let mut sink = Sink { job, schema, builder, rejects: Vec::new(), row: 0, pending: 0, tx };
    for vals in &first {
        let refs: Vec<ValueRef<'_>> = vals.iter().map(Owned::as_ref).collect();
        sink.row(&refs)?;
    }
    drop(first);
    while let Some(row) = rows.next().map_err(read_err)? {
        let refs =
            (0..names.len()).map(|i| row.get_ref(i)).collect::<Result<Vec<_>, _>>().map_err(read_err)?;
        sink.row(&refs)?;
    }
    sink.flush()
}

fn worker(job: Job, setup: SyncSender<Result<SchemaRef, ConnectorError>>, tx: SyncSender<Msg>) {
    let mut setup = Some(setup);
    // A panic (a bug) must reach the caller as an error, never look like the end of the data.
    let err = match catch_unwind(AssertUnwindSafe(|| stream(&job, &mut setup, &tx))) {
        Ok(Ok(())) => {
            let _ = tx.send(Msg::End);
            return;
        }
        Ok(Err(e)) => e,
        Err(_) => ConnectorError::Other("internal error (this is a bug): the SQLite reader panicked".into()),
    };
    match setup.take() {
        Some(s) => {
            let _ = s.send(Err(err));
        }
        None => {
            let _ = tx.send(Msg::Failed(err));
        }
    }
}

/// The SQLite [`BatchReader`].
struct SqliteReader {
    schema: SchemaRef,
    rx: Receiver<Msg>,
    rejects: Vec<Reject>,
    finished: bool,
}

impl BatchReader for SqliteReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Option<Result<RecordBatch, ConnectorError>> {
        while !self.finished {
            match self.rx.recv() {
                Ok(Msg::Batch(b, rejects)) => {
                    self.rejects.extend(rejects);
                    if b.num_rows() > 0 {
                        return Some(Ok(b));
                    }
                }
                Ok(Msg::End) => self.finished = true,
                Ok(Msg::Failed(e)) => {
                    self.finished = true;
                    return Some(Err(e));
                }
                Err(_) => {
                    self.finished = true;
                    return Some(Err(ConnectorError::Other("the SQLite reader thread stopped".into())));
                }
            }
        }
        None
    }

    fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }
}

impl Connector for SqliteConnector {
    fn name(&self) -> &str {
        "sqlite"
    }

    fn doc(&self) -> &str {
        "A table or query of an SQLite database file, with types from the declared column types"
    }

    fn version(&self) -> &str {
        // 2: values changed (declared dates, timestamps and bools read by this connector's
        // own rules, strict contract conversions).
        "2"
    }

    fn keys(&self) -> &[KeySpec] {
        KEYS
    }

    fn check(&self, req: &ReadRequest<'_>) -> Vec<ConfigIssue> {
        let opts = match SqliteOptions::from_config(req) {
            Ok(o) => o,
            Err(issues) => return issues,
        };
        // Preparing a statement reads only the schema: cheap, and it catches unknown tables,
        // columns and syntax errors before anything runs.
        let result = connect(&opts.path).and_then(|conn| {
            conn.prepare(&opts.source.select()).map(drop).map_err(|e| sql_error(&conn, &opts, &e))
        });
        match result {
            Ok(()) => Vec::new(),
            Err(ConnectorError::Config { key, message }) => vec![ConfigIssue::new(key, message)],
            Err(other) => vec![ConfigIssue::new("path", other.to_string())],
        }
    }

    fn sources(&self, req: &ReadRequest<'_>) -> Result<Sources, ConnectorError> {
        let opts = SqliteOptions::from_config(req).map_err(options::to_error)?;
        // In WAL mode recent writes sit in `-wal` until a checkpoint: it counts too.
        let mut wal = opts.path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let mut files = vec![opts.path];
        if wal.is_file() {
            files.push(wal);
        }
        Ok(Sources::Files(files))
    }

    fn read(&self, req: &ReadRequest<'_>) -> Result<Box<dyn BatchReader>, ConnectorError> {
        let opts = SqliteOptions::from_config(req).map_err(options::to_error)?;
        let contract = opts.contract.clone();
        let source = opts.source.describe();
        let watermark = req.incremental.and_then(|w| w.after.clone().map(|a| (w.column.clone(), a)));
        let job = Job { opts, on_error: req.on_error, batch_size: req.batch_size.max(1), watermark };
        let (setup_tx, setup_rx) = sync_channel(1);
        let (tx, rx) = sync_channel(1);
        std::thread::Builder::new()
            .name("sluice-sqlite".into())
            .spawn(move || worker(job, setup_tx, tx))
            .map_err(|e| ConnectorError::Other(format!("cannot start the SQLite reader thread: {e}")))?;
        let schema = setup_rx
            .recv()
            .map_err(|_| ConnectorError::Other("the SQLite reader thread stopped".into()))??;
        let reader = Box::new(SqliteReader { schema, rx, rejects: Vec::new(), finished: false });
        match contract {
            Some(c) => Conforming::wrap(reader, &c, &source),
            None => Ok(reader),
        }
    }

    fn declared_schema(&self, req: &ReadRequest<'_>) -> Option<SchemaRef> {
        // Only the config: the database file may not exist where validation runs.
        let mut is = Issues::default();
        Contract::from_config(req.config, &mut is).map(|c| c.schema())
    }
}

#[cfg(test)]
mod tests;
