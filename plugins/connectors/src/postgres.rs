//! The `postgres` connector: a table or query of a PostgreSQL database, streamed through a
//! server-side cursor (`DECLARE ... CURSOR` in a read-only transaction, then `FETCH` of
//! `batch_size` rows at a time), so neither side ever holds the whole result.
//!
//! Values are read in the binary wire format and decoded by [`types`]; the password of the
//! connection string is masked in every message by [`redact`]. Connections use TLS as
//! libpq's `sslmode` says ([`tls`]), whose parameters [`conn_string`] takes out of the string.

mod conn_string;
mod redact;
mod tls;
mod types;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::postgres::config::Host;
use ::postgres::error::ErrorPosition;
use ::postgres::{Client, Config, Statement};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};
use sluice_plugin::{
    BatchReader, ConfigIssue, Connector, ConnectorError, KeySpec, KeyType, OnError, ReadRequest, Reject,
    Sources,
};

use self::conn_string::SplitError;
use self::redact::Redactor;
use self::tls::{SslMode, TlsFailure, TlsSettings};
use self::types::{PgKind, Raw, Unfit};
use crate::contract::{self, Conforming, Contract};
use crate::options::{self, Issues};
use crate::row_batch::{Cell, RowBatchBuilder};
use crate::sql_source::{self, SqlSource, quote_ident};
use crate::watermark;

/// Reads a table or query of a PostgreSQL database.
#[derive(Debug, Default, Clone, Copy)]
pub struct PostgresConnector;

const KEYS: &[KeySpec] = &[
    KeySpec::required(
        "url",
        KeyType::String,
        "Connection string (`postgres://user:password@host:5432/db` or `host=... dbname=...`), with libpq's `sslmode` and `sslrootcert` for TLS; keep the password in the environment",
    )
    .example("url = \"${env.DATABASE_URL}\""),
    sql_source::QUERY_KEY,
    sql_source::TABLE_KEY,
    contract::CONTRACT_KEY,
    KeySpec::optional(
        "freshness",
        KeyType::String,
        None,
        "How long a read stays valid for the cache (`30m`, `1h`, `1d`); unset: the stage re-reads on every run",
    )
    .example("freshness = \"1h\""),
];

/// How long to wait for a connection when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The cursor every read declares (one per connection, so the name is fixed).
const CURSOR: &str = "sluice_cursor";

/// The connector's options, read from the stage table.
struct PgOptions {
    config: Config,
    tls: TlsSettings,
    redact: Redactor,
    source: SqlSource,
    freshness: Option<Duration>,
    contract: Option<Contract>,
}

impl PgOptions {
    /// `base_dir` resolves a relative `sslrootcert`.
    fn from_config(cfg: &Map<String, Value>, base_dir: &Path) -> Result<Self, Vec<ConfigIssue>> {
        let mut is = Issues::default();
        let conn = match cfg.get("url") {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.as_str()),
            Some(Value::String(_)) => {
                is.push(ConfigIssue::new("url", "is empty").with_help(
                    "is the environment variable it comes from set? e.g. url = \"${env.DATABASE_URL}\"",
                ));
                None
            }
            Some(_) => {
                is.push(ConfigIssue::new("url", "must be a string"));
                None
            }
            None => {
                is.push(
                    ConfigIssue::new("url", "is required").with_help("e.g. url = \"${env.DATABASE_URL}\""),
                );
                None
            }
        };
        let parsed = conn.and_then(|c| {
            // Never echo the string: it may hold the password.
            let invalid = |why: &str| {
                ConfigIssue::new(
                    "url",
                    format!(
                        "is not a valid PostgreSQL connection string: {}",
                        Redactor::new(c, None).clean(why)
                    ),
                )
                .with_help("expected postgres://user:password@host:5432/database")
            };
            let params = conn_string::split(c)
                .map_err(|e| match e {
                    SplitError::Malformed(why) => is.push(invalid(&why)),
                    SplitError::Unsupported { key, why } => is
                        .push(ConfigIssue::new("url", format!("has `{key}`, but {why}")).with_help(
                            "the postgres connector's TLS parameters are sslmode and sslrootcert",
                        )),
                })
                .ok()?;
            let config = Config::from_str(&params.rest)
                .map_err(|e| {
                    // The reason (an unknown option, a bad port) is the error's source.
                    let why = match std::error::Error::source(&e) {
                        Some(cause) => format!("{e}: {cause}"),
                        None => e.to_string(),
                    };
                    is.push(invalid(&why))
                })
                .ok()?;
            let redact = Redactor::new(c, config.get_password());
            let tls = TlsSettings::new(params.sslmode.as_deref(), params.sslrootcert.as_deref(), base_dir)
                .map_err(|i| {
                    let help = i.help.map(|h| redact.clean(&h));
                    let i = ConfigIssue { message: redact.clean(&i.message), help, ..i };
                    is.push(i)
                })
                .ok()?;
            Some((config, tls, redact))
        });
        let source = SqlSource::from_config(cfg, &mut is);
        let contract = Contract::from_config(cfg, &mut is);
        let freshness =
            match cfg.get("freshness") {
                None => None,
                Some(v) => {
                    let d = v.as_str().and_then(parse_duration);
                    if d.is_none() {
                        is.push(ConfigIssue::new("freshness", format!("{v} is not a duration")).with_help(
                            "a positive number and a unit: s, m, h, d or w, e.g. \"1h\" or \"1d\"",
                        ));
                    }
                    d
                }
            };
        match (parsed, source) {
            (Some((mut config, tls, redact)), Some(source)) if is.0.is_empty() => {
                if config.get_connect_timeout().is_none() {
                    config.connect_timeout(CONNECT_TIMEOUT);
                }
                config.ssl_mode(tls.mode.driver_mode());
                Ok(PgOptions { config, tls, redact, source, freshness, contract })
            }
            _ => Err(is.0),
        }
    }

    /// `host:port/database`, for messages (never the user info).
    fn server(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self.config.get_dbname().or(self.config.get_user()).unwrap_or("postgres");
        format!("{host}:{port}/{db}")
    }

    fn error(&self, msg: String) -> ConnectorError {
        ConnectorError::Other(self.redact.clean(&msg))
    }
}

/// Parses `90s`, `30m`, `1h`, `1d`, `2w`.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    let secs = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

/// The server's words for a failed statement: message, position (only when `query` is
/// the user's own text, so the position means something to them), detail and hint.
fn describe_pg_error(e: &::postgres::Error, query: Option<&SqlSource>) -> String {
    let Some(db) = e.as_db_error() else { return e.to_string() };
    let mut msg = db.message().to_owned();
    if let (Some(ErrorPosition::Original(p)), Some(SqlSource::Query(_))) = (db.position(), query) {
        msg.push_str(&format!(" (at character {p} of the query)"));
    }
    if let Some(d) = db.detail() {
        msg.push_str(&format!("; {d}"));
    }
    if let Some(h) = db.hint() {
        msg.push_str(&format!("; hint: {h}"));
    }
    msg
}

/// Opens a connection, encrypted as the `sslmode` says.
fn connect(opts: &PgOptions) -> Result<Client, ConnectorError> {
    let tls = opts.tls.connector().map_err(|e| ConnectorError::config("url", opts.redact.clean(&e)))?;
    let result = match opts.config.connect(tls.clone()) {
        // libpq's `prefer`: when the handshake fails, try again without TLS.
        Err(e) if opts.tls.mode == SslMode::Prefer && TlsFailure::of(&e).is_some() => {
            let mut plain = opts.config.clone();
            plain.ssl_mode(SslMode::Disable.driver_mode());
            plain.connect(tls)
        }
        other => other,
    };
    result.map_err(|e| {
        let user = opts.config.get_user().map(|u| format!(" as `{u}`")).unwrap_or_default();
        let why = match TlsFailure::of(&e) {
            Some(f) => opts.tls.explain(f),
            // The server's own words ("database \"x\" does not exist"), or the I/O cause
            // ("Connection refused"): the driver's top line alone says only "db error".
            None if e.as_db_error().is_some() => describe_pg_error(&e, None),
            None => with_causes(&e),
        };
        opts.error(format!("cannot connect to PostgreSQL at {}{user}: {why}", opts.server()))
    })
}

/// An error and the errors beneath it, joined with ": ".
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}

/// The type modifier (`numeric(10, 2)`) of a numeric result column, -1 when it has none.
/// The server sends it with the column for table columns, casts and expressions
/// (`x::numeric(12, 2)`); a domain over `numeric(p, s)` keeps its own in `pg_type`.
fn type_modifier(client: &mut Client, col: &::postgres::Column) -> i32 {
    let ty = col.type_();
    if col.type_modifier() >= 0 || !matches!(ty.kind(), ::postgres::types::Kind::Domain(_)) {
        return col.type_modifier();
    }
    client
        .query_opt("SELECT typtypmod FROM pg_type WHERE oid = $1", &[&ty.oid()])
        .ok()
        .flatten()
        .and_then(|r| r.try_get::<_, i32>(0).ok())
        .unwrap_or(-1)
}

/// One result column.
struct PgColumn {
    name: String,
    kind: PgKind,
    pg_type: String,
    /// `char(n)`: read padded, compared unpadded by the server.
    padded: bool,
}

/// Prepares the source's SELECT and works out the output columns.
fn describe(client: &mut Client, opts: &PgOptions) -> Result<(Vec<PgColumn>, SchemaRef), ConnectorError> {
    let sql = opts.source.select();
    let stmt = client.prepare(&sql).map_err(|e| {
        let key = opts.source.key();
        let msg = format!(
            "PostgreSQL rejected {}: {}",
            opts.source.describe(),
            describe_pg_error(&e, Some(&opts.source))
        );
        ConnectorError::config(key, opts.redact.clean(&msg))
    })?;
    let mut columns = Vec::new();
    let mut fields = Vec::new();
    for col in stmt.columns() {
        let typmod = if types::is_numeric(col.type_()) { type_modifier(client, col) } else { -1 };
        let Some((kind, ty)) = types::map_type(col.type_(), typmod) else {
            let how = match opts.source {
                SqlSource::Query(_) => "cast it in the query",
                SqlSource::Table { .. } => "read it with `query` and cast it",
            };
            return Err(ConnectorError::config(
                opts.source.key(),
                format!(
                    "column `{}` of {} has PostgreSQL type `{}`, which Sluice cannot read; {how}, e.g. `{}::text`",
                    col.name(),
                    opts.source.describe(),
                    col.type_().name(),
                    quote_ident(col.name())
                ),
            ));
        };
        let (kind, ty) = exact_numeric(kind, ty, opts.contract.as_ref().and_then(|c| c.declared(col.name())));
        fields.push(Field::new(col.name(), ty, true));
        columns.push(PgColumn {
            name: col.name().to_owned(),
            kind,
            pg_type: col.type_().name().to_owned(),
            padded: types::is_padded(col.type_()),
        });
    }
    Ok((columns, Arc::new(Schema::new(fields))))
}

/// How a `numeric` without precision is read when the contract declares it exact: as the
/// declared decimal, or (for an integer type) as a whole-number decimal the contract then
/// narrows. Read as float64 first, 9007199254740993 would arrive rounded.
fn exact_numeric(kind: PgKind, ty: DataType, declared: Option<&DataType>) -> (PgKind, DataType) {
    match (kind, declared) {
        (PgKind::NumericFloat, Some(&DataType::Decimal128(precision, scale))) => {
            (PgKind::Decimal { precision, scale }, DataType::Decimal128(precision, scale))
        }
        (PgKind::NumericFloat, Some(d)) if d.is_integer() => {
            (PgKind::Decimal { precision: 38, scale: 0 }, DataType::Decimal128(38, 0))
        }
        (kind, _) => (kind, ty),
    }
}

/// The cursor's query, with the incremental filter when there is one. The watermark is
/// sent as text and cast to the column's type by the server, which parses it exactly.
fn cursor_query(
    opts: &PgOptions,
    columns: &[PgColumn],
    schema: &Schema,
    incremental: Option<&sluice_plugin::Watermark>,
) -> Result<(String, Option<String>), ConnectorError> {
    let inner = opts.source.select();
    let Some((column, after)) = incremental.and_then(|w| w.after.as_ref().map(|a| (&w.column, a))) else {
        return Ok((inner, None));
    };
    let Some(i) = columns.iter().position(|c| &c.name == column) else {
        return Err(watermark::unknown_column(
            column,
            &opts.source.describe(),
            columns.iter().map(|c| c.name.as_str()),
        ));
    };
    let ty = schema.field(i).data_type();
    if opts.contract.as_ref().is_some_and(|c| !c.keeps_order(column, ty)) {
        // The watermark is in the declared type and would compare differently here: the
        // collect stage filters instead, in the declared type.
        return Ok((inner, None));
    }
    let mut text = watermark::bound(column, ty, after)?.to_text();
    if matches!(ty, DataType::Timestamp(_, Some(_))) {
        // Watermarks of a UTC column are UTC, whatever the session's time zone.
        text.push_str("+00");
    }
    let c = quote_ident(column);
    let condition = match ty {
        // The collect stage compares strings byte by byte; the server would use the
        // column's collation (`'a' < 'B'` in most), so it compares in "C" (byte order)
        // too. `char(n)` arrives padded but the server compares it unpadded, which orders
        // some values differently: the stage filters those alone.
        DataType::Utf8 if columns[i].padded => return Ok((inner, None)),
        DataType::Utf8 => format!("CAST({c} AS text) COLLATE \"C\" > $1::text COLLATE \"C\""),
        _ => format!("{c} > CAST($1::text AS {})", columns[i].pg_type),
    };
    Ok((sql_source::filtered(&inner, &condition), Some(text)))
}

/// The PostgreSQL [`BatchReader`].
struct PgReader {
    client: Client,
    fetch: Statement,
    opts: PgOptions,
    columns: Vec<PgColumn>,
    schema: SchemaRef,
    builder: RowBatchBuilder,
    on_error: OnError,
    rejects: Vec<Reject>,
    /// 1-based number of the last row of the result seen.
    row: u64,
    finished: bool,
}

impl PgReader {
    fn open(req: &ReadRequest<'_>) -> Result<Self, ConnectorError> {
        let opts = PgOptions::from_config(req.config, req.base_dir).map_err(options::to_error)?;
        let mut client = connect(&opts)?;
        let (columns, schema) = describe(&mut client, &opts)?;
        let (sql, param) = cursor_query(&opts, &columns, &schema, req.incremental)?;
        let batch_size = req.batch_size.max(1);
        let fail = |what: &str, e: ::postgres::Error| {
            opts.error(format!(
                "PostgreSQL {} failed {what} {}: {}",
                opts.server(),
                opts.source.describe(),
                describe_pg_error(&e, None)
            ))
        };
        // Read-only: a query can never change the data it reads.
        client.batch_execute("BEGIN READ ONLY").map_err(|e| fail("starting a transaction for", e))?;
        let declare = format!("DECLARE {CURSOR} NO SCROLL CURSOR FOR {sql}");
        match &param {
            Some(p) => client.execute(declare.as_str(), &[p]),
            None => client.execute(declare.as_str(), &[]),
        }
        .map_err(|e| fail("opening a cursor on", e))?;
        let fetch = client
            .prepare(&format!("FETCH FORWARD {batch_size} FROM {CURSOR}"))
            .map_err(|e| fail("preparing to read", e))?;
        let builder = RowBatchBuilder::new(schema.clone(), batch_size)?;
        Ok(PgReader {
            client,
            fetch,
            opts,
            columns,
            schema,
            builder,
            on_error: req.on_error,
            rejects: Vec::new(),
            row: 0,
            finished: false,
        })
    }

    /// Decodes one row; `Err` names the column that does not fit.
    fn decode_row<'r>(&self, row: &'r ::postgres::Row) -> Result<Vec<Cell<'r>>, (usize, Unfit)> {
        let mut cells = Vec::with_capacity(self.columns.len());
        for (i, col) in self.columns.iter().enumerate() {
            let raw = row
                .try_get::<_, Option<Raw<'_>>>(i)
                .map_err(|e| (i, Unfit { value: String::new(), why: format!("cannot be read: {e}") }))?;
            cells.push(match raw {
                None => Cell::Null,
                Some(Raw(bytes)) => types::decode(col.kind, bytes).map_err(|u| (i, u))?,
            });
        }
        Ok(cells)
    }

    fn refuse(&mut self, row: &::postgres::Row, col: usize, unfit: Unfit) -> Result<(), ConnectorError> {
        let reason = format!(
            "{}, row {}, column `{}`: `{}` {}",
            self.opts.source.describe(),
            self.row,
            self.columns[col].name,
            unfit.value,
            unfit.why
        );
        let source = format!("postgres {} ({})", self.opts.server(), self.opts.source.describe());
        match self.on_error {
            OnError::Fail => Err(self.opts.error(format!("{source}: {reason}"))),
            OnError::Skip => {
                self.rejects.push(Reject { source, line: self.row, reason, raw: String::new() });
                Ok(())
            }
            OnError::Quarantine => {
                // The row as JSON, with the value that does not fit as PostgreSQL prints it.
                let mut obj = Map::new();
                for (i, c) in self.columns.iter().enumerate() {
                    let v = match (i == col, row.try_get::<_, Option<Raw<'_>>>(i)) {
                        (true, _) => Value::from(unfit.value.clone()),
                        // Another value that does not fit either keeps its text too.
                        (false, Ok(Some(Raw(b)))) => match types::decode(c.kind, b) {
                            Ok(cell) => types::cell_text(&cell, self.schema.field(i).data_type()),
                            Err(u) => Value::from(u.value),
                        },
                        (false, _) => Value::Null,
                    };
                    obj.insert(c.name.clone(), v);
                }
                let raw = Value::Object(obj).to_string();
                self.rejects.push(Reject { source, line: self.row, reason, raw });
                Ok(())
            }
        }
    }

    fn pull(&mut self) -> Result<Option<RecordBatch>, ConnectorError> {
        while !self.finished {
            let rows = self.client.query(&self.fetch, &[]).map_err(|e| {
                self.opts.error(format!(
                    "PostgreSQL {} failed reading {}: {}",
                    self.opts.server(),
                    self.opts.source.describe(),
                    describe_pg_error(&e, None)
                ))
            })?;
            if rows.is_empty() {
                self.finished = true;
                // Ending the transaction releases the cursor's snapshot; the connection
                // closes when the reader is dropped.
                let _ = self.client.batch_execute("COMMIT");
                break;
            }
            for row in &rows {
                self.row += 1;
                match self.decode_row(row) {
                    Ok(cells) => self.builder.push_row(&cells)?,
                    Err((col, unfit)) => self.refuse(row, col, unfit)?,
                }
            }
            if self.builder.rows() > 0 {
                return self.builder.finish().map(Some);
            }
        }
        Ok(None)
    }
}

impl BatchReader for PgReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Option<Result<RecordBatch, ConnectorError>> {
        match self.pull() {
            Ok(b) => b.map(Ok),
            Err(e) => {
                self.finished = true;
                Some(Err(e))
            }
        }
    }

    fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }
}

impl Connector for PostgresConnector {
    fn name(&self) -> &str {
        "postgres"
    }

    fn doc(&self) -> &str {
        "A table or query of a PostgreSQL database, streamed through a server-side cursor"
    }

    fn version(&self) -> &str {
        // 2: values changed (strict contract conversions, numerics beyond float64 refused).
        "2"
    }

    fn keys(&self) -> &[KeySpec] {
        KEYS
    }

    fn check(&self, req: &ReadRequest<'_>) -> Vec<ConfigIssue> {
        // No connection here: validating a pipeline must work without the database.
        PgOptions::from_config(req.config, req.base_dir).err().unwrap_or_default()
    }

    fn sources(&self, req: &ReadRequest<'_>) -> Result<Sources, ConnectorError> {
        let opts = PgOptions::from_config(req.config, req.base_dir).map_err(options::to_error)?;
        Ok(match opts.freshness {
            // The token changes when the current period does: a read is reused within it.
            Some(period) => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
                let bucket = now / period.as_secs().max(1);
                Sources::Token(format!("postgres freshness {}s period {bucket}", period.as_secs()))
            }
            None => Sources::Volatile,
        })
    }

    fn declared_schema(&self, req: &ReadRequest<'_>) -> Option<SchemaRef> {
        // Only the `schema` key: validation runs where the URL's variables may be unset.
        let mut is = Issues::default();
        Contract::from_config(req.config, &mut is).map(|c| c.schema())
    }

    fn read(&self, req: &ReadRequest<'_>) -> Result<Box<dyn BatchReader>, ConnectorError> {
        let reader = PgReader::open(req)?;
        match reader.opts.contract.clone() {
            Some(c) => {
                let source = reader.opts.source.describe();
                Conforming::wrap(Box::new(reader), &c, &source)
            }
            None => Ok(Box::new(reader)),
        }
    }
}

#[cfg(test)]
mod tests;
