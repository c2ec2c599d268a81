//! The `parquet` connector: Parquet files streamed row group by row group.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::parquet::arrow::ProjectionMask;
use ::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};
use sluice_plugin::{
    BatchReader, ConfigIssue, Connector, ConnectorError, KeySpec, KeyType, ReadRequest, Reject, Sources,
    type_name,
};

use crate::options::{self, Issues};
use crate::paths;
use crate::schema_decl::DeclaredSchema;
use crate::suggest::did_you_mean;

/// Reads Parquet files.
#[derive(Debug, Default, Clone, Copy)]
pub struct ParquetConnector;

const KEYS: &[KeySpec] = &[
    crate::paths::PATH_KEY,
    KeySpec::optional(
        "columns",
        KeyType::StringList,
        None,
        "Columns to read, in this order (default: all, in file order)",
    )
    .example("columns = [\"CustomerID\", \"Quantity\"]"),
    KeySpec::optional(
        "schema",
        KeyType::Table,
        None,
        "Expected column types by name, e.g. { Quantity = \"int64\" }; a file that differs is an error",
    )
    .example("schema = { Quantity = \"int64\", InvoiceDate = \"timestamp\" }"),
];

#[derive(Debug)]
struct ParquetOptions {
    columns: Option<Vec<String>>,
    schema: DeclaredSchema,
}

impl ParquetOptions {
    fn from_config(cfg: &Map<String, Value>) -> Result<Self, Vec<ConfigIssue>> {
        let mut is = Issues::default();
        let columns = options::string_list_key(cfg, "columns", false, &mut is);
        if let Some(cols) = &columns {
            if cols.is_empty() {
                is.push(ConfigIssue::new("columns", "must list at least one column"));
            }
            for (i, c) in cols.iter().enumerate() {
                if cols[..i].contains(c) {
                    is.push(ConfigIssue::new("columns", format!("`{c}` is listed twice")));
                }
            }
        }
        let schema = DeclaredSchema::from_config(cfg, &mut is);
        is.finish(ParquetOptions { columns, schema })
    }
}

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Other(format!("{}: cannot read as Parquet: {e}", path.display()))
}

/// A file's metadata and the indices of the columns to read, in output order.
struct Opened {
    meta: ArrowReaderMetadata,
    indices: Vec<usize>,
}

fn open_metadata(path: &Path, opts: &ParquetOptions) -> Result<Opened, ConnectorError> {
    let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::default())
        .map_err(|e| parquet_error(path, e))?;
    let schema = meta.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let missing = |col: &str, key: String| {
        let hint = did_you_mean(col, names.iter().copied());
        ConnectorError::config(key, format!("column `{col}` is not in `{}`{hint}", path.display()))
    };
    let indices = match &opts.columns {
        None => (0..names.len()).collect(),
        Some(cols) => cols
            .iter()
            .map(|c| names.iter().position(|n| n == c).ok_or_else(|| missing(c, "columns".into())))
            .collect::<Result<_, _>>()?,
    };
    for (col, want) in opts.schema.columns() {
        let Ok(field) = schema.field_with_name(col) else {
            return Err(missing(col, format!("schema.{col}")));
        };
        if type_name(want) != type_name(field.data_type()) {
            return Err(ConnectorError::config(
                format!("schema.{col}"),
                format!(
                    "column `{col}` of `{}` is {}, but `schema` declares {}",
                    path.display(),
                    type_name(field.data_type()),
                    type_name(want)
                ),
            ));
        }
    }
    Ok(Opened { meta, indices })
}

/// The fields `o` reads, in output order.
fn projected(o: &Opened) -> Vec<Field> {
    let fields = o.meta.schema().fields();
    o.indices.iter().map(|&i| fields[i].as_ref().clone()).collect()
}

/// Opens every file's metadata up front (cheap: only footers), so schema differences fail
/// before any data is read.
fn plan(opts: &ParquetOptions, files: &[PathBuf]) -> Result<(SchemaRef, Vec<Vec<usize>>), ConnectorError> {
    let mut out_fields: Vec<Field> = Vec::new();
    let mut indices = Vec::with_capacity(files.len());
    for (k, path) in files.iter().enumerate() {
        let o = open_metadata(path, opts)?;
        let fields = projected(&o);
        if k == 0 {
            out_fields = fields;
        } else {
            let first = files[0].display();
            for (a, b) in out_fields.iter_mut().zip(&fields) {
                if a.name() != b.name() || a.data_type() != b.data_type() {
                    return Err(ConnectorError::Other(format!(
                        "{}: schema differs from `{first}`: column `{}` {} here but `{}` {} there",
                        path.display(),
                        b.name(),
                        b.data_type(),
                        a.name(),
                        a.data_type()
                    )));
                }
                // Files may disagree on whether a column can be null; the output can.
                if b.is_nullable() && !a.is_nullable() {
                    *a = a.clone().with_nullable(true);
                }
            }
            if out_fields.len() != fields.len() {
                return Err(ConnectorError::Other(format!(
                    "{}: schema differs from `{first}`: {} columns here, {} there",
                    path.display(),
                    fields.len(),
                    out_fields.len()
                )));
            }
        }
        indices.push(o.indices);
    }
    Ok((Arc::new(Schema::new(out_fields)), indices))
}

struct ParquetReader {
    schema: SchemaRef,
    files: Vec<PathBuf>,
    indices: Vec<Vec<usize>>,
    next_file: usize,
    current: Option<(ParquetRecordBatchReader, Vec<usize>)>,
    batch_size: usize,
}

impl ParquetReader {
    fn open_next(&mut self) -> Result<bool, ConnectorError> {
        let Some(path) = self.files.get(self.next_file) else { return Ok(false) };
        let wanted = &self.indices[self.next_file];
        self.next_file += 1;
        let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, e))?;
        // The projection mask yields columns in file order; remember how to reorder them.
        let mut sorted = wanted.clone();
        sorted.sort_unstable();
        let order: Vec<usize> = wanted.iter().filter_map(|w| sorted.iter().position(|s| s == w)).collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), sorted);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(self.batch_size.max(1))
            .build()
            .map_err(|e| parquet_error(path, e))?;
        self.current = Some((reader, order));
        Ok(true)
    }

    fn pull(&mut self) -> Result<Option<RecordBatch>, ConnectorError> {
        loop {
            if let Some((reader, order)) = &mut self.current {
                match reader.next() {
                    Some(Ok(b)) => {
                        let cols = order.iter().map(|&i| b.column(i).clone()).collect();
                        let path = &self.files[self.next_file - 1];
                        return RecordBatch::try_new(self.schema.clone(), cols).map(Some).map_err(|source| {
                            ConnectorError::Arrow { context: format!("reading {}", path.display()), source }
                        });
                    }
                    Some(Err(e)) => return Err(parquet_error(&self.files[self.next_file - 1], e)),
                    None => self.current = None,
                }
            } else if !self.open_next()? {
                return Ok(None);
            }
        }
    }
}

impl BatchReader for ParquetReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Option<Result<RecordBatch, ConnectorError>> {
        match self.pull() {
            Ok(b) => b.map(Ok),
            Err(e) => {
                self.current = None;
                self.next_file = self.files.len();
                Some(Err(e))
            }
        }
    }

    fn take_rejects(&mut self) -> Vec<Reject> {
        // Parquet rows are typed on write; there is nothing to refuse.
        Vec::new()
    }
}

impl Connector for ParquetConnector {
    fn name(&self) -> &str {
        "parquet"
    }

    fn doc(&self) -> &str {
        "Parquet files, optionally projected to some columns"
    }

    fn version(&self) -> &str {
        "1"
    }

    fn keys(&self) -> &[KeySpec] {
        KEYS
    }

    fn check(&self, req: &ReadRequest<'_>) -> Vec<ConfigIssue> {
        let opts = ParquetOptions::from_config(req.config);
        let files = paths::expand(req);
        match (opts, files) {
            // Reading the first footer is cheap and catches misspelled columns early.
            (Ok(opts), Ok(files)) => match files.first().map(|f| open_metadata(f, &opts)) {
                Some(Err(ConnectorError::Config { key, message })) => vec![ConfigIssue::new(key, message)],
                Some(Err(other)) => vec![ConfigIssue::new("path", other.to_string())],
                _ => Vec::new(),
            },
            (opts, files) => {
                let mut issues = opts.err().unwrap_or_default();
                issues.extend(files.err().unwrap_or_default());
                issues
            }
        }
    }

    fn sources(&self, req: &ReadRequest<'_>) -> Result<Sources, ConnectorError> {
        paths::expand(req).map(Sources::Files).map_err(options::to_error)
    }

    fn read(&self, req: &ReadRequest<'_>) -> Result<Box<dyn BatchReader>, ConnectorError> {
        let opts = ParquetOptions::from_config(req.config).map_err(options::to_error)?;
        let files = paths::expand(req).map_err(options::to_error)?;
        let (schema, indices) = plan(&opts, &files)?;
        Ok(Box::new(ParquetReader {
            schema,
            files,
            indices,
            next_file: 0,
            current: None,
            batch_size: req.batch_size,
        }))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Int64Type};
    use serde_json::json;
    use sluice_plugin::OnError;

    use super::*;

    fn write(path: &Path, ids: &[i64], names: &[&str], price_nullable: bool) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("price", DataType::Float64, price_nullable),
        ]));
        let prices: Vec<f64> = ids.iter().map(|i| *i as f64 * 1.5).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
                Arc::new(Float64Array::from(prices)),
            ],
        )
        .unwrap();
        let file = File::create(path).unwrap();
        let props = ::parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut w = ::parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn read_all(dir: &Path, cfg: Value, batch_size: usize) -> Result<Vec<RecordBatch>, ConnectorError> {
        let cfg = cfg.as_object().unwrap().clone();
        let req = ReadRequest {
            stage: "s",
            config: &cfg,
            base_dir: dir,
            on_error: OnError::Fail,
            batch_size,
            incremental: None,
        };
        let mut r = ParquetConnector.read(&req)?;
        let mut out = Vec::new();
        while let Some(b) = r.next_batch() {
            out.push(b?);
        }
        Ok(out)
    }

    #[test]
    fn files_stream_in_sorted_order_with_projection_in_the_listed_order() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("b.parquet"), &[4, 5], &["d", "e"], true);
        write(&dir.path().join("a.parquet"), &[1, 2, 3], &["a", "b", "c"], false);
        let batches =
            read_all(dir.path(), json!({"path": "*.parquet", "columns": ["name", "id"]}), 2).unwrap();
        let schema = batches[0].schema();
        assert_eq!(schema.field(0).name(), "name");
        assert_eq!(schema.field(1).name(), "id");
        assert!(batches.iter().all(|b| b.num_rows() <= 2));
        let ids: Vec<i64> =
            batches.iter().flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec()).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        let names: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                b.column(0).as_string::<i32>().iter().map(|s| s.unwrap().to_owned()).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        // One file declares price non-nullable, the other nullable: the output allows nulls.
        let all = read_all(dir.path(), json!({"path": "*.parquet"}), 10).unwrap();
        assert!(all[0].schema().field(2).is_nullable());
    }

    #[test]
    fn unknown_columns_and_type_mismatches_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a.parquet"), &[1], &["a"], true);
        let err = read_all(dir.path(), json!({"path": "a.parquet", "columns": ["nme"]}), 10)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid `columns`: column `nme` is not in") && err.contains("did you mean `name`"),
            "{err}"
        );
        let err = read_all(dir.path(), json!({"path": "a.parquet", "schema": {"id": "string"}}), 10)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("column `id`") && err.contains("is int64, but `schema` declares string"),
            "{err}"
        );
        assert!(read_all(dir.path(), json!({"path": "a.parquet", "schema": {"id": "int"}}), 10).is_ok());

        let cfg = json!({"path": "a.parquet", "columns": ["nme"]});
        let cfg = cfg.as_object().unwrap();
        let req = ReadRequest {
            stage: "s",
            config: cfg,
            base_dir: dir.path(),
            on_error: OnError::Fail,
            batch_size: 1,
            incremental: None,
        };
        let issues = ParquetConnector.check(&req);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "columns");
    }

    #[test]
    fn files_with_different_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a.parquet"), &[1], &["a"], true);
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["x"]))]).unwrap();
        let mut w = ::parquet::arrow::ArrowWriter::try_new(
            File::create(dir.path().join("b.parquet")).unwrap(),
            schema,
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let err = read_all(dir.path(), json!({"path": "*.parquet"}), 10).unwrap_err().to_string();
        assert!(
            err.contains("b.parquet") && err.contains("schema differs") && err.contains("a.parquet"),
            "{err}"
        );
    }
}
