//! The `jsonl` connector: one JSON object per line.
//!
//! Lines are decoded a batch at a time with arrow's JSON decoder. When a batch fails, each of
//! its lines is decoded alone to find the culprits, so a bad line is reported with its own
//! line number and text and the good lines around it are kept.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::ReaderBuilder;
use arrow::json::reader::{Decoder, infer_json_schema_from_iterator};
use arrow::record_batch::RecordBatch;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use sluice_plugin::{
    BatchReader, ConfigIssue, Connector, ConnectorError, KeySpec, KeyType, OnError, ReadRequest, Reject,
    Sources,
};

use crate::options::{self, Issues};
use crate::paths;
use crate::rebatch::Rebatcher;
use crate::schema_decl::DeclaredSchema;

/// Reads JSON Lines files.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonlConnector;

const KEYS: &[KeySpec] = &[
    crate::paths::PATH_KEY,
    crate::schema_decl::SCHEMA_KEY,
    KeySpec::optional(
        "infer_rows",
        KeyType::Integer,
        Some("10000"),
        "Lines sampled from the start of the first file to infer columns and types",
    )
    .example("infer_rows = 100000"),
];

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug)]
struct JsonlOptions {
    schema: DeclaredSchema,
    infer_rows: usize,
}

impl JsonlOptions {
    fn from_config(cfg: &Map<String, Value>) -> Result<Self, Vec<ConfigIssue>> {
        let mut is = Issues::default();
        let schema = DeclaredSchema::from_config(cfg, &mut is);
        let infer_rows = options::count_key(cfg, "infer_rows", 10_000, &mut is);
        is.finish(JsonlOptions { schema, infer_rows })
    }
}

/// Reads a file line by line, numbering lines and skipping blank ones.
struct Lines {
    reader: BufReader<File>,
    path: PathBuf,
    line: u64,
}

impl Lines {
    fn open(path: &Path) -> Result<Self, ConnectorError> {
        let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
        Ok(Lines { reader: BufReader::with_capacity(1 << 20, file), path: path.to_path_buf(), line: 0 })
    }

    /// Appends the next non-blank line (without its line break) to `buf`; returns its line
    /// number, or `None` at the end of the file.
    fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>, ConnectorError> {
        loop {
            let start = buf.len();
            let n = self.reader.read_until(b'\n', buf).map_err(|e| ConnectorError::io(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if self.line == 1 && buf[start..].starts_with(BOM) {
                buf.drain(start..start + BOM.len());
            }
            while buf.len() > start && matches!(buf[buf.len() - 1], b'\n' | b'\r') {
                buf.pop();
            }
            if buf[start..].iter().all(u8::is_ascii_whitespace) {
                buf.truncate(start);
                continue;
            }
            return Ok(Some(self.line));
        }
    }
}

/// Infers the schema from the first `infer_rows` lines of `path`, then applies `schema`.
fn infer_schema(path: &Path, opts: &JsonlOptions) -> Result<SchemaRef, ConnectorError> {
    let mut lines = Lines::open(path)?;
    let mut values = Vec::new();
    let mut buf = Vec::new();
    while values.len() < opts.infer_rows {
        buf.clear();
        if lines.next_into(&mut buf)?.is_none() {
            break;
        }
        // Bad lines do not vote; the read reports them in order.
        if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&buf) {
            values.push(v);
        }
    }
    let inferred =
        infer_json_schema_from_iterator(values.iter().map(Ok::<_, ArrowError>)).map_err(|source| {
            ConnectorError::Arrow { context: format!("inferring the schema of {}", path.display()), source }
        })?;
    let mut fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| {
            let ty = match opts.schema.get(f.name()) {
                Some(t) => t.clone(),
                // Only nulls were seen: text is the safe guess (as for CSV).
                None if f.data_type() == &DataType::Null => DataType::Utf8,
                None => f.data_type().clone(),
            };
            Field::new(f.name(), ty, true)
        })
        .collect();
    for (name, ty) in opts.schema.columns() {
        if !fields.iter().any(|f| f.name() == name) {
            fields.push(Field::new(name, ty.clone(), true));
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

fn decoder(schema: &SchemaRef, batch_size: usize) -> Result<Decoder, ConnectorError> {
    ReaderBuilder::new(schema.clone())
        .with_batch_size(batch_size.max(1))
        // Inference widens mixed columns to text; numbers in them must then read as text.
        .with_coerce_primitive(true)
        .build_decoder()
        .map_err(|source| ConnectorError::Arrow { context: "building the JSON decoder".into(), source })
}

/// Decodes lines (each one JSON value) into one batch; fails if any line fails.
fn decode_lines<'a>(
    schema: &SchemaRef,
    lines: impl ExactSizeIterator<Item = &'a [u8]>,
) -> Result<Option<RecordBatch>, ArrowError> {
    let n = lines.len();
    let mut d = ReaderBuilder::new(schema.clone())
        // One spare row, so the decoder never stops early and every line break is consumed.
        .with_batch_size(n + 1)
        .with_coerce_primitive(true)
        .build_decoder()?;
    for line in lines {
        let used = d.decode(line)?;
        let used_nl = d.decode(b"\n")?;
        if used != line.len() || used_nl != 1 || d.has_partial_record() {
            return Err(ArrowError::JsonError("incomplete JSON value".into()));
        }
    }
    if d.len() != n {
        return Err(ArrowError::JsonError("expected exactly one JSON object on the line".into()));
    }
    d.flush()
}

fn strip_arrow_prefix(e: &ArrowError) -> String {
    let s = e.to_string();
    s.strip_prefix("Json error: ").map(str::to_owned).unwrap_or(s)
}

/// Why one line cannot be read, naming the column when one is at fault.
fn line_problem(schema: &SchemaRef, line: &[u8], err: &ArrowError) -> String {
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return format!("invalid JSON: {e}"),
    };
    let Value::Object(map) = value else {
        let kind = match value {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return format!("expected a JSON object, found {kind}");
    };
    // Decode each column alone to find the one that fails.
    for field in schema.fields() {
        let Some(v) = map.get(field.name()) else { continue };
        let single = Arc::new(Schema::new(vec![field.as_ref().clone()]));
        let mut obj = Map::new();
        obj.insert(field.name().clone(), v.clone());
        let text = Value::Object(obj).to_string();
        if let Err(e) = decode_lines(&single, std::iter::once(text.as_bytes())) {
            return format!("column `{}`: {}", field.name(), strip_arrow_prefix(&e));
        }
    }
    strip_arrow_prefix(err)
}

/// Lines read for one batch: their bytes back to back, each line's number and byte range,
/// and the file they came from.
struct LineBatch {
    buf: Vec<u8>,
    lines: Vec<(u64, Range<usize>)>,
    path: PathBuf,
}

struct JsonlReader {
    schema: SchemaRef,
    files: Vec<PathBuf>,
    next_file: usize,
    current: Option<Lines>,
    batch_size: usize,
    on_error: OnError,
    out: Rebatcher,
    rejects: Vec<Reject>,
    finished: bool,
}

impl JsonlReader {
    /// Reads up to `batch_size` lines: their bytes, (line number, range) each, and the file.
    fn read_lines(&mut self) -> Result<Option<LineBatch>, ConnectorError> {
        loop {
            let lines = match &mut self.current {
                Some(l) => l,
                None => {
                    let Some(path) = self.files.get(self.next_file) else { return Ok(None) };
                    self.next_file += 1;
                    self.current.insert(Lines::open(path)?)
                }
            };
            let mut buf = Vec::new();
            let mut ranges = Vec::new();
            while ranges.len() < self.batch_size.max(1) {
                let start = buf.len();
                match lines.next_into(&mut buf)? {
                    Some(line) => ranges.push((line, start..buf.len())),
                    None => break,
                }
            }
            let path = lines.path.clone();
            if ranges.len() < self.batch_size.max(1) {
                self.current = None;
            }
            if !ranges.is_empty() {
                return Ok(Some(LineBatch { buf, lines: ranges, path }));
            }
        }
    }

    fn pull(&mut self) -> Result<Option<RecordBatch>, ConnectorError> {
        let arrow_err = |source| ConnectorError::Arrow { context: "decoding JSON lines".into(), source };
        loop {
            if let Some(b) = self.out.pop_full().map_err(arrow_err)? {
                return Ok(Some(b));
            }
            if self.finished {
                return self.out.pop_rest().map_err(arrow_err);
            }
            let Some(LineBatch { buf, lines: ranges, path }) = self.read_lines()? else {
                self.finished = true;
                continue;
            };
            let all = || ranges.iter().map(|(_, r)| &buf[r.clone()]);
            match decode_lines(&self.schema, all()) {
                Ok(Some(b)) => self.out.push(b),
                Ok(None) => {}
                Err(_) => self.decode_one_by_one(&buf, &ranges, &path)?,
            }
        }
    }

    /// The slow path after a failed batch: finds the bad lines, then decodes the rest.
    fn decode_one_by_one(
        &mut self,
        buf: &[u8],
        ranges: &[(u64, Range<usize>)],
        path: &Path,
    ) -> Result<(), ConnectorError> {
        let mut good = Vec::with_capacity(ranges.len());
        for (line, r) in ranges {
            let text = &buf[r.clone()];
            let ok = serde_json::from_slice::<IgnoredAny>(text).is_ok();
            let result = if ok {
                decode_lines(&self.schema, std::iter::once(text))
            } else {
                Err(ArrowError::JsonError(String::new()))
            };
            match result {
                Ok(_) => good.push(text),
                Err(e) => {
                    let reason = line_problem(&self.schema, text, &e);
                    match self.on_error {
                        OnError::Fail => {
                            return Err(ConnectorError::Malformed {
                                file: path.to_path_buf(),
                                line: *line,
                                reason,
                            });
                        }
                        OnError::Skip | OnError::Quarantine => self.rejects.push(Reject {
                            source: path.display().to_string(),
                            line: *line,
                            reason,
                            raw: if self.on_error == OnError::Quarantine {
                                String::from_utf8_lossy(text).into_owned()
                            } else {
                                String::new()
                            },
                        }),
                    }
                }
            }
        }
        if let Some(b) = decode_lines(&self.schema, good.into_iter()).map_err(|source| {
            ConnectorError::Arrow { context: format!("decoding {}", path.display()), source }
        })? {
            self.out.push(b);
        }
        Ok(())
    }
}

impl BatchReader for JsonlReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Option<Result<RecordBatch, ConnectorError>> {
        match self.pull() {
            Ok(b) => b.map(Ok),
            Err(e) => {
                self.finished = true;
                self.current = None;
                self.next_file = self.files.len();
                self.out = Rebatcher::new(self.schema.clone(), 1);
                Some(Err(e))
            }
        }
    }

    fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }
}

impl Connector for JsonlConnector {
    fn name(&self) -> &str {
        "jsonl"
    }

    fn doc(&self) -> &str {
        "JSON Lines files: one JSON object per line, columns inferred or declared"
    }

    fn version(&self) -> &str {
        "1"
    }

    fn keys(&self) -> &[KeySpec] {
        KEYS
    }

    fn check(&self, req: &ReadRequest<'_>) -> Vec<ConfigIssue> {
        let mut issues = JsonlOptions::from_config(req.config).err().unwrap_or_default();
        issues.extend(paths::expand(req).err().unwrap_or_default());
        issues
    }

    fn sources(&self, req: &ReadRequest<'_>) -> Result<Sources, ConnectorError> {
        paths::expand(req).map(Sources::Files).map_err(options::to_error)
    }

    fn read(&self, req: &ReadRequest<'_>) -> Result<Box<dyn BatchReader>, ConnectorError> {
        let opts = JsonlOptions::from_config(req.config).map_err(options::to_error)?;
        let files = paths::expand(req).map_err(options::to_error)?;
        let first = files.first().ok_or_else(|| ConnectorError::config("path", "matches no file"))?;
        let schema = infer_schema(first, &opts)?;
        // Fail early if the decoder cannot handle the schema (e.g. an unsupported type).
        decoder(&schema, req.batch_size)?;
        Ok(Box::new(JsonlReader {
            out: Rebatcher::new(schema.clone(), req.batch_size),
            schema,
            files,
            next_file: 0,
            current: None,
            batch_size: req.batch_size,
            on_error: req.on_error,
            rejects: Vec::new(),
            finished: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimeUnit};
    use serde_json::json;

    use super::*;
    use crate::test_support::Out;

    fn read(dir: &Path, cfg: Value, on_error: OnError) -> Result<Out, ConnectorError> {
        let mut cfg = cfg.as_object().unwrap().clone();
        // Infer from the first two good lines only, so `"id": "four"` later is a bad value.
        cfg.entry("infer_rows").or_insert(json!(2));
        let req = ReadRequest {
            stage: "s",
            config: &cfg,
            base_dir: dir,
            on_error,
            batch_size: 2,
            incremental: None,
        };
        Out::drain(JsonlConnector.read(&req)?.as_mut())
    }

    const MIXED: &str = "{\"id\": 1, \"name\": \"a\", \"price\": 2.5, \"tags\": [\"x\"], \"meta\": {\"k\": 1}}\n\
        \n\
        {\"id\": 2, \"name\": null, \"price\": 3}\r\n\
        {\"id\": 3, \"name\": \"c\", \"price\": \n\
        {\"id\": \"four\", \"name\": \"d\", \"price\": 1}\n\
        [1, 2]\n\
        {\"id\": 6, \"name\": \"f\", \"price\": 0.5}";

    #[test]
    fn types_are_inferred_and_nested_values_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jsonl"), MIXED).unwrap();
        let out = read(dir.path(), json!({"path": "a.jsonl"}), OnError::Skip).unwrap();
        let schema = out.batches[0].schema();
        assert_eq!(schema.field_with_name("id").unwrap().data_type(), &DataType::Int64);
        assert_eq!(schema.field_with_name("price").unwrap().data_type(), &DataType::Float64);
        assert!(matches!(schema.field_with_name("tags").unwrap().data_type(), DataType::List(_)));
        assert!(matches!(schema.field_with_name("meta").unwrap().data_type(), DataType::Struct(_)));
        assert_eq!(out.rows(), 3);
        let ids: Vec<i64> = out
            .batches
            .iter()
            .flat_map(|b| b.column_by_name("id").unwrap().as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, [1, 2, 6]);
        let price = out.batches[0].column_by_name("price").unwrap().as_primitive::<Float64Type>();
        assert_eq!(price.value(1), 3.0);
    }

    #[test]
    fn malformed_lines_fail_with_their_line_number() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jsonl"), MIXED).unwrap();
        let err = read(dir.path(), json!({"path": "a.jsonl"}), OnError::Fail).err().unwrap();
        let ConnectorError::Malformed { file, line, reason } = err else { panic!("{err}") };
        assert!(file.ends_with("a.jsonl"));
        assert_eq!(line, 4);
        assert!(reason.starts_with("invalid JSON"), "{reason}");
    }

    #[test]
    fn quarantine_returns_each_bad_line_once_with_its_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jsonl"), MIXED).unwrap();
        let out = read(dir.path(), json!({"path": "a.jsonl"}), OnError::Quarantine).unwrap();
        let got: Vec<(u64, &str)> = out.rejects.iter().map(|r| (r.line, r.raw.as_str())).collect();
        assert_eq!(
            got,
            [
                (4, "{\"id\": 3, \"name\": \"c\", \"price\": "),
                (5, "{\"id\": \"four\", \"name\": \"d\", \"price\": 1}"),
                (6, "[1, 2]"),
            ]
        );
        assert!(out.rejects[1].reason.starts_with("column `id`:"), "{}", out.rejects[1].reason);
        assert_eq!(out.rejects[2].reason, "expected a JSON object, found an array");
        assert_eq!(out.rows(), 3);
    }

    #[test]
    fn declared_types_override_inference_and_files_concatenate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.jsonl"), "{\"t\": \"2010-12-01T08:26:00\", \"n\": 2}\n").unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "\u{feff}{\"t\": \"2010-12-01 08:26:00\", \"n\": 1}\n")
            .unwrap();
        let cfg = json!({"path": "*.jsonl", "schema": {"t": "timestamp", "n": "float64", "extra": "string"}});
        let out = read(dir.path(), cfg, OnError::Fail).unwrap();
        let all = out.combined();
        let schema = all.schema();
        assert_eq!(schema.field(0).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, None));
        assert_eq!(schema.field(1).data_type(), &DataType::Float64);
        assert_eq!(schema.field(2).name(), "extra");
        let n = all.column(1).as_primitive::<Float64Type>();
        assert_eq!(n.values(), &[1.0, 2.0]);
        assert!(all.column(2).is_null(0));
    }
}
