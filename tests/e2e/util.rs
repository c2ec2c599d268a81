//! Helpers for driving the `sluice` binary in a scratch directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the repo root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory with its own state dir.
pub struct Scratch {
    /// Kept alive for the test's duration.
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> PathBuf {
        self.path().join("state")
    }

    /// Writes a file relative to the scratch dir.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Copies the shipped quickstart (pipeline + data) into the scratch dir.
    pub fn quickstart(&self) -> PathBuf {
        let data = std::fs::read_to_string(repo().join("pipelines/data/orders.csv")).unwrap();
        self.write("data/orders.csv", &data);
        let text = std::fs::read_to_string(repo().join("pipelines/quickstart.toml")).unwrap();
        self.write("quickstart.toml", &text)
    }

    /// A `sluice` command running in the scratch dir with its state dir.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.current_dir(self.path())
            .args(args)
            .env("SLUICE_HOME", self.state())
            .env_remove("SLUICE_STATE_DIR")
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `sluice` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn sluice")
    }

    /// `sluice run FILE --json` → the run record.
    pub fn run_json(&self, file: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
        let f = file.to_str().unwrap();
        let mut args = vec!["run", f, "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let code = out.status.code().unwrap_or(-1);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "run --json printed no JSON ({e}); exit {code}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, v)
    }
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Stage name → field value from a run record.
pub fn stage_field<'a>(record: &'a serde_json::Value, stage: &str, field: &str) -> &'a serde_json::Value {
    record["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == stage))
        .map(|s| &s[field])
        .unwrap_or_else(|| panic!("no stage {stage} in record"))
}

/// Names of stages whose cache status is `value` ("hit"/"miss").
pub fn stages_with_cache(record: &serde_json::Value, value: &str) -> Vec<String> {
    record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["cache"] == value)
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// Every batch of a Parquet file (a stage output).
pub fn read_parquet(path: impl AsRef<Path>) -> Vec<arrow::record_batch::RecordBatch> {
    let f = std::fs::File::open(path.as_ref()).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A Parquet file as a printed table.
pub fn parquet_table(path: impl AsRef<Path>) -> String {
    arrow::util::pretty::pretty_format_batches(&read_parquet(path)).unwrap().to_string()
}

/// A pipeline `name` whose first stage `orders` collects `data/orders.csv`, then `rest`.
pub fn orders_pipeline(name: &str, rest: &str) -> String {
    format!(
        "[pipeline]\nname = \"{name}\"\n\n[stages.orders]\nkind = \"collect\"\nconnector = \"csv\"\npath = \"data/orders.csv\"\n\n{rest}"
    )
}
