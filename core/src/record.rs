//! Run records: `runs/<run-id>/run.json`, the one account of what a run did.

use std::fs;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::state::write_atomic;

/// Overall state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Still going (or killed: see [`RunRecord::effective_status`]).
    Running,
    /// Every selected stage succeeded.
    Succeeded,
    /// At least one stage failed.
    Failed,
    /// The process ended without finishing the record (killed).
    Interrupted,
}

/// State of one stage within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// Not started yet.
    Pending,
    /// Executing.
    Running,
    /// Done: executed or reused from cache.
    Succeeded,
    /// Failed; see `error`.
    Failed,
    /// Not run: upstream failed or not selected.
    Skipped,
}

/// Whether a stage's output came from cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheStatus {
    /// Reused.
    Hit,
    /// Computed.
    Miss,
}

/// One stage in a run record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageRecord {
    /// Stage name.
    pub name: String,
    /// Stage kind.
    pub kind: String,
    /// Outcome.
    pub status: StageStatus,
    /// Hit or miss (absent for skipped stages).
    pub cache: Option<CacheStatus>,
    /// Why it ran, was reused or skipped.
    pub reason: String,
    /// Cache key of its outputs.
    pub cache_key: String,
    /// Start time (RFC 3339, microseconds).
    pub started_at: Option<String>,
    /// End time.
    pub finished_at: Option<String>,
    /// Wall time.
    pub duration_ms: Option<f64>,
    /// Rows read from inputs.
    pub rows_in: Option<u64>,
    /// Rows written (all outputs but `rejects`).
    pub rows_out: Option<u64>,
    /// Parquet bytes written.
    pub bytes_out: Option<u64>,
    /// Output name → Parquet path.
    pub outputs: IndexMap<String, String>,
    /// Stage-specific counters (rows skipped, rejected, ...).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metrics: serde_json::Map<String, serde_json::Value>,
    /// The error, for a failed stage.
    pub error: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// Unique, time-sortable id.
    pub run_id: String,
    /// `[pipeline] name`.
    pub pipeline: String,
    /// The pipeline file as given.
    pub pipeline_file: String,
    /// Hash of the file and effective params.
    pub pipeline_hash: String,
    /// Effective params.
    pub params: serde_json::Value,
    /// Outcome.
    pub status: RunStatus,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End.
    pub finished_at: Option<String>,
    /// Wall time.
    pub duration_ms: Option<f64>,
    /// Process that ran it.
    pub pid: u32,
    /// Version of sluice.
    pub sluice_version: String,
    /// Command that re-runs (and so resumes) this run.
    pub resume_command: String,
    /// Stages in execution order.
    pub stages: Vec<StageRecord>,
}

impl RunRecord {
    /// Status as a reader should see it: a `running` record whose process is gone was killed.
    pub fn effective_status(&self) -> RunStatus {
        if self.status == RunStatus::Running && !process_alive(self.pid) {
            RunStatus::Interrupted
        } else {
            self.status
        }
    }

    /// The record of a stage.
    pub fn stage(&self, name: &str) -> Option<&StageRecord> {
        self.stages.iter().find(|s| s.name == name)
    }
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") { Path::new(&format!("/proc/{pid}")).exists() } else { true }
}

/// The `runs/` directory of a state dir.
#[derive(Debug, Clone)]
pub struct RunStore {
    dir: PathBuf,
}

impl RunStore {
    /// The run store under a state dir.
    pub fn new(state_dir: &Path) -> Self {
        RunStore { dir: state_dir.join("runs") }
    }

    /// Path of a run's record.
    pub fn path(&self, run_id: &str) -> PathBuf {
        self.dir.join(run_id).join("run.json")
    }

    /// Writes a record atomically.
    pub fn save(&self, record: &RunRecord) -> Result<(), CoreError> {
        let path = self.path(&record.run_id);
        let text = serde_json::to_vec_pretty(record)
            .map_err(|e| CoreError::Corrupt { path: path.clone(), message: e.to_string() })?;
        write_atomic(&path, &text)
    }

    /// Reads one record.
    pub fn load(&self, run_id: &str) -> Result<RunRecord, CoreError> {
        let path = self.path(run_id);
        let text = fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| CoreError::Corrupt { path, message: e.to_string() })
    }

    /// Run ids, newest first.
    pub fn ids(&self) -> Result<Vec<String>, CoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CoreError::io(&self.dir, e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join("run.json").is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// All records, newest first (unreadable ones are reported, not hidden).
    pub fn list(&self) -> Result<Vec<RunRecord>, CoreError> {
        self.ids()?.iter().map(|id| self.load(id)).collect()
    }

    /// Finds a run by id, unique id prefix, or `latest`.
    pub fn resolve(&self, query: &str) -> Result<RunRecord, CoreError> {
        let ids = self.ids()?;
        if query == "latest" || query == "last" {
            return match ids.first() {
                Some(id) => self.load(id),
                None => Err(CoreError::Usage(format!("no runs recorded in {}", self.dir.display()))),
            };
        }
        let matches: Vec<&String> = ids.iter().filter(|id| id.starts_with(query)).collect();
        match matches.as_slice() {
            [one] => self.load(one),
            [] => Err(CoreError::Usage(format!(
                "no run `{query}` in {} (`sluice runs` lists them)",
                self.dir.display()
            ))),
            many => Err(CoreError::Usage(format!(
                "`{query}` matches {} runs ({}, ...); give more of the id",
                many.len(),
                many.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Removes a run's directory.
    pub fn remove(&self, run_id: &str) -> Result<(), CoreError> {
        let dir = self.dir.join(run_id);
        fs::remove_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))
    }
}
