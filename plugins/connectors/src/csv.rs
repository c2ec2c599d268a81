//! The `csv` connector: delimited text files, streamed in parallel into Arrow batches.

mod columns;
mod reader;
mod tokenizer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::{Map, Value};
use sluice_plugin::{
    BatchReader, ConfigIssue, Connector, ConnectorError, KeySpec, KeyType, OnError, ReadRequest, Sources,
};

use self::columns::{Column, NullMarkers, Origin};
use self::reader::{BlockFile, CsvReader, DEFAULT_BLOCK, MAX_RECORD, Plan, read_start, too_long};
use self::tokenizer::{Cursor, Dialect, FieldBuf, Step};
use crate::encoding::{ENCODING_NAMES, Encoding};
use crate::infer::{TypeVotes, VoteRules};
use crate::options::{self, Issues};
use crate::paths;
use crate::schema_decl::{DeclaredSchema, with_article};
use crate::suggest::did_you_mean;
use crate::timestamp_format::TimestampFormat;

/// Reads CSV (and other delimited) files.
#[derive(Debug, Default, Clone, Copy)]
pub struct CsvConnector;

const KEYS: &[KeySpec] = &[
    crate::paths::PATH_KEY,
    KeySpec::optional(
        "header",
        KeyType::Bool,
        Some("true"),
        "Whether the first line names the columns (an empty name becomes `column_N`, a repeated one gets `_2`, `_3`, ...); when false columns are `column_1`, `column_2`, ...",
    ).example("header = false"),
    KeySpec::optional(
        "delimiter",
        KeyType::String,
        Some("\",\""),
        "Field separator, one character (write a tab as \"\\t\")",
    ).example("delimiter = \";\""),
    KeySpec::optional(
        "quote",
        KeyType::String,
        Some("'\"'"),
        "Quote character; a quote inside a quoted field is written twice",
    ).example("quote = \"'\""),
    KeySpec::optional(
        "escape",
        KeyType::String,
        None,
        "Character that makes the next one literal inside quotes, e.g. '\\' (doubled quotes still work); unset: RFC 4180 doubled quotes only",
    ).example("escape = \"\\\\\""),
    KeySpec::optional("comment", KeyType::String, None, "Lines starting with this character are skipped").example("comment = \"#\""),
    KeySpec::optional(
        "null_values",
        KeyType::StringList,
        Some("[\"\"]"),
        "Field values read as NULL, compared after unquoting (so a quoted \"\" is NULL too by default)",
    ).example("null_values = [\"\", \"NA\"]"),
    crate::schema_decl::SCHEMA_KEY,
    KeySpec::optional(
        "infer_rows",
        KeyType::Integer,
        Some("10000"),
        "Rows sampled from the start of the first file to infer column types (int64, float64, bool, date, timestamp, else string)",
    ).example("infer_rows = 100000"),
    KeySpec::optional("trim", KeyType::Bool, Some("false"), "Trim spaces and tabs around unquoted fields").example("trim = true"),
    KeySpec::optional(
        "encoding",
        KeyType::String,
        Some("\"utf-8\""),
        "Text encoding of the files: \"utf-8\", \"latin-1\" (ISO-8859-1) or \"windows-1252\"; decoded to UTF-8 while reading",
    ).example("encoding = \"latin-1\""),
    KeySpec::optional(
        "decimal",
        KeyType::String,
        Some("\".\""),
        "Decimal separator of float columns, \".\" or \",\" (with \",\" the delimiter must be another character, and `.` is not accepted in numbers)",
    ).example("decimal = \",\""),
    KeySpec::optional(
        "timestamp_format",
        KeyType::String,
        None,
        "Format of timestamp columns (declared or inferred) instead of ISO 8601, with %Y %y %m %b %d %H %I %p %M %S %f; numbers other than the four-digit %Y may have fewer digits",
    ).example("timestamp_format = \"%d/%m/%Y %H:%M\""),
    KeySpec::optional(
        "timestamp_formats",
        KeyType::Table,
        None,
        "Timestamp formats by column; a column listed here is read as a timestamp in that format",
    ).example("timestamp_formats = { InvoiceDate = \"%m/%d/%Y %H:%M\" }"),
];

/// The connector's options, read from the stage table.
#[derive(Debug)]
struct CsvOptions {
    header: bool,
    dialect: Dialect,
    null_values: Vec<String>,
    schema: DeclaredSchema,
    infer_rows: usize,
    encoding: Encoding,
    decimal_comma: bool,
    timestamp_format: Option<Arc<TimestampFormat>>,
    timestamp_formats: Vec<(String, Arc<TimestampFormat>)>,
}

/// A timestamp format key's value, compiled.
fn format_key(key: &str, v: &Value, is: &mut Issues) -> Option<Arc<TimestampFormat>> {
    let Some(text) = v.as_str() else {
        is.push(ConfigIssue::new(key, format!("must be a format string, not {v}")));
        return None;
    };
    match TimestampFormat::new(text) {
        Ok(f) => Some(Arc::new(f)),
        Err(why) => {
            is.push(ConfigIssue::new(key, format!("`{text}` {why}")).with_help("e.g. \"%d/%m/%Y %H:%M\""));
            None
        }
    }
}

impl CsvOptions {
    fn from_config(cfg: &Map<String, Value>) -> Result<Self, Vec<ConfigIssue>> {
        let mut is = Issues::default();
        let header = options::bool_key(cfg, "header", true, &mut is);
        let delimiter = options::char_key(cfg, "delimiter", &mut is).unwrap_or(b',');
        let quote = options::char_key(cfg, "quote", &mut is).unwrap_or(b'"');
        // An escape equal to the quote is just the doubled-quote rule.
        let escape = options::char_key(cfg, "escape", &mut is).filter(|e| *e != quote);
        let comment = options::char_key(cfg, "comment", &mut is);
        if delimiter == quote {
            is.push(ConfigIssue::new("quote", "cannot be the same character as `delimiter`"));
        }
        if escape == Some(delimiter) {
            is.push(ConfigIssue::new("escape", "cannot be the same character as `delimiter`"));
        }
        if comment.is_some_and(|c| c == delimiter || c == quote) {
            is.push(ConfigIssue::new("comment", "cannot be the delimiter or quote character"));
        }
        let null_values = options::string_list_key(cfg, "null_values", false, &mut is)
            .unwrap_or_else(|| vec![String::new()]);
        let schema = DeclaredSchema::from_config(cfg, &mut is);
        let infer_rows = options::count_key(cfg, "infer_rows", 10_000, &mut is);
        let trim = options::bool_key(cfg, "trim", false, &mut is);
        let dialect = Dialect { delimiter, quote, escape, comment, trim };
        let encoding = match cfg.get("encoding") {
            None => Encoding::Utf8,
            Some(v) => v.as_str().and_then(Encoding::parse).unwrap_or_else(|| {
                is.push(
                    ConfigIssue::new("encoding", format!("unknown encoding {v}"))
                        .with_help(format!("expected one of: {}", ENCODING_NAMES.join(", "))),
                );
                Encoding::Utf8
            }),
        };
        let decimal_comma = match cfg.get("decimal").map(|v| (v, v.as_str())) {
            None | Some((_, Some("."))) => false,
            Some((_, Some(","))) => {
                if delimiter == b',' {
                    is.push(
                        ConfigIssue::new("decimal", "cannot be \",\" while the delimiter is \",\" too")
                            .with_help("files with decimal commas usually separate fields with `;`: set delimiter = \";\""),
                    );
                }
                true
            }
            Some((v, _)) => {
                is.push(ConfigIssue::new("decimal", format!("must be \".\" or \",\", not {v}")));
                false
            }
        };
        let timestamp_format =
            cfg.get("timestamp_format").and_then(|v| format_key("timestamp_format", v, &mut is));
        let mut timestamp_formats = Vec::new();
        match cfg.get("timestamp_formats") {
            None => {}
            Some(Value::Object(table)) => {
                for (col, v) in table {
                    let key = format!("timestamp_formats.{col}");
                    let Some(f) = format_key(&key, v, &mut is) else { continue };
                    match schema.get(col) {
                        Some(ty) if !matches!(ty, DataType::Timestamp(..)) => is.push(ConfigIssue::new(
                            key,
                            format!(
                                "column `{col}` is declared as {} in `schema`, not as a timestamp",
                                with_article(ty)
                            ),
                        )),
                        _ => timestamp_formats.push((col.clone(), f)),
                    }
                }
            }
            Some(_) => is.push(
                ConfigIssue::new("timestamp_formats", "must be a table of column name = format")
                    .with_help("e.g. timestamp_formats = { InvoiceDate = \"%m/%d/%Y %H:%M\" }"),
            ),
        }
        is.finish(CsvOptions {
            header,
            dialect,
            null_values,
            schema,
            infer_rows,
            encoding,
            decimal_comma,
            timestamp_format,
            timestamp_formats,
        })
    }
}

/// Makes header names usable as column names: an empty name becomes `column_N` (N is its
/// 1-based position) and a repeated name gets `_2`, `_3`, ... in order of appearance.
fn unique_names(raw: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, name) in raw.iter().enumerate() {
        let base = if name.is_empty() { format!("column_{}", i + 1) } else { name.clone() };
        let mut unique = base.clone();
        let mut k = 2;
        while seen.contains(&unique) {
            unique = format!("{base}_{k}");
            k += 1;
        }
        seen.insert(unique.clone());
        out.push(unique);
    }
    out
}

/// What the start of the first file says about the columns.
struct Sample {
    header: Option<Vec<String>>,
    ncols: usize,
    votes: Vec<TypeVotes>,
    rows: usize,
}

/// Reads the header and up to `infer_rows` records of `path`, voting on column types.
fn sample(path: &Path, opts: &CsvOptions, block: usize) -> Result<Sample, ConnectorError> {
    let mut src = BlockFile::open(path, opts.encoding)?;
    let rules = VoteRules { decimal_comma: opts.decimal_comma, timestamp: opts.timestamp_format.as_deref() };
    let start = read_start(&mut src, opts.dialect, opts.header, block)?;
    let nulls = NullMarkers::new(&opts.null_values);
    let mut ncols = start.header.as_ref().map(Vec::len);
    let mut votes = vec![TypeVotes::default(); ncols.unwrap_or(0)];
    let mut rows = 0;
    let mut buf = start.rest;
    let mut fb = FieldBuf::default();
    loop {
        let mut cur = Cursor::new(&buf, opts.dialect, src.eof);
        loop {
            if rows >= opts.infer_rows && ncols.is_some() {
                return Ok(Sample { header: start.header, ncols: ncols.unwrap_or(0), votes, rows });
            }
            fb.clear();
            match cur.next_record(&mut fb) {
                Step::Record(r) => {
                    let n = *ncols.get_or_insert(r.fields);
                    votes.resize(n, TypeVotes::default());
                    if r.fields == n && rows < opts.infer_rows {
                        for (v, s) in votes.iter_mut().zip(&fb.spans) {
                            let text = fb.get(&buf, *s);
                            if !nulls.is_null(text) {
                                v.vote_with(text, rules);
                            }
                        }
                        rows += 1;
                    }
                }
                Step::Incomplete { .. } => break,
                Step::Unterminated { .. } | Step::End => {
                    if src.eof {
                        return Ok(Sample { header: start.header, ncols: ncols.unwrap_or(0), votes, rows });
                    }
                    break;
                }
            }
        }
        let consumed = cur.pos;
        buf.drain(..consumed);
        if buf.len() > MAX_RECORD {
            return Err(too_long(path, None));
        }
        src.fill(&mut buf, block)?;
    }
}

/// Works out the output columns and everything else a read needs.
fn plan(
    opts: CsvOptions,
    files: Vec<PathBuf>,
    block_size: usize,
    on_error: OnError,
) -> Result<Plan, ConnectorError> {
    let first = files.first().ok_or_else(|| ConnectorError::config("path", "matches no file"))?;
    let s = sample(first, &opts, block_size)?;
    let (names, source) = match &s.header {
        Some(h) => (unique_names(h), format!("the header of `{}`", first.display())),
        None => (
            (1..=s.ncols).map(|i| format!("column_{i}")).collect(),
            format!(
                "`{}` (without a header its columns are column_1 to column_{})",
                first.display(),
                s.ncols
            ),
        ),
    };
    opts.schema.check_present(&names, &source)?;
    for (col, _) in &opts.timestamp_formats {
        if !names.contains(col) {
            let hint = did_you_mean(col, names.iter().map(String::as_str));
            return Err(ConnectorError::config(
                format!("timestamp_formats.{col}"),
                format!("column `{col}` is not in {source}{hint}"),
            ));
        }
    }
    let columns: Vec<Column> = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let own_format = opts.timestamp_formats.iter().find(|(c, _)| *c == name).map(|(_, f)| f.clone());
            let (ty, origin) = match (opts.schema.get(&name), &own_format) {
                (Some(ty), _) => (ty.clone(), Origin::Declared),
                (None, Some(_)) => (DataType::Timestamp(TimeUnit::Microsecond, None), Origin::Declared),
                (None, None) => (s.votes[i].result(), Origin::Inferred(s.rows)),
            };
            let timestamp_format = match ty {
                DataType::Timestamp(..) => own_format.or_else(|| opts.timestamp_format.clone()),
                _ => None,
            };
            Column { ty, name, origin, decimal_comma: opts.decimal_comma, timestamp_format }
        })
        .collect();
    let fields: Vec<Field> = columns.iter().map(|c| Field::new(&c.name, c.ty.clone(), true)).collect();
    Ok(Plan {
        dialect: opts.dialect,
        schema: Arc::new(Schema::new(fields)),
        columns,
        nulls: NullMarkers::new(&opts.null_values),
        header: opts.header,
        first_header: s.header,
        files,
        block_size: block_size.max(1),
        keep_raw: on_error == OnError::Quarantine,
        encoding: opts.encoding,
    })
}

/// Opens a reader that reads files in blocks of `block_size` bytes.
fn open(req: &ReadRequest<'_>, block_size: usize) -> Result<CsvReader, ConnectorError> {
    let opts = CsvOptions::from_config(req.config).map_err(options::to_error)?;
    let files = paths::expand(req).map_err(options::to_error)?;
    let plan = plan(opts, files, block_size, req.on_error)?;
    CsvReader::start(plan, req.on_error, req.batch_size)
}

impl Connector for CsvConnector {
    fn name(&self) -> &str {
        "csv"
    }

    fn doc(&self) -> &str {
        "Delimited text files (CSV, TSV, ...), with column types declared or inferred"
    }

    fn version(&self) -> &str {
        "1"
    }

    fn keys(&self) -> &[KeySpec] {
        KEYS
    }

    fn check(&self, req: &ReadRequest<'_>) -> Vec<ConfigIssue> {
        let opts = CsvOptions::from_config(req.config);
        let files = paths::expand(req);
        let mut issues = Vec::new();
        match (opts, files) {
            (Ok(opts), Ok(files)) => {
                // Cheap enough to do here: the header of the first file, to catch misspelled
                // `schema` columns before anything runs.
                let probe = CsvOptions { infer_rows: 0, ..opts };
                if let Err(e) = plan(probe, files, 64 << 10, OnError::Fail) {
                    issues.push(match e {
                        ConnectorError::Config { key, message } => ConfigIssue::new(key, message),
                        other => ConfigIssue::new("path", other.to_string()),
                    });
                }
            }
            (opts, files) => {
                issues.extend(opts.err().unwrap_or_default());
                issues.extend(files.err().unwrap_or_default());
            }
        }
        issues
    }

    fn sources(&self, req: &ReadRequest<'_>) -> Result<Sources, ConnectorError> {
        paths::expand(req).map(Sources::Files).map_err(options::to_error)
    }

    fn read(&self, req: &ReadRequest<'_>) -> Result<Box<dyn BatchReader>, ConnectorError> {
        Ok(Box::new(open(req, DEFAULT_BLOCK)?))
    }
}

#[cfg(test)]
mod tests;
