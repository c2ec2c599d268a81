//! `sluice gc`: removes artifacts no kept run references, old run records and stray temp
//! dirs, under the exclusive state lock so nothing a running process may read disappears.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::artifact::ArtifactStore;
use crate::error::CoreError;
use crate::record::RunStore;
use crate::state::{PipelineState, StateLock};

/// What to keep.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Newest runs kept per pipeline.
    pub keep_runs: usize,
    /// Report only; delete nothing.
    pub dry_run: bool,
}

/// What gc removed (or would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Run records removed.
    pub runs_removed: Vec<String>,
    /// Artifact keys removed.
    pub artifacts_removed: Vec<String>,
    /// Temp dirs of crashed runs removed.
    pub temp_removed: usize,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Artifacts kept.
    pub artifacts_kept: usize,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

fn remove(path: &Path, dry_run: bool) -> Result<(), CoreError> {
    if dry_run {
        return Ok(());
    }
    fs::remove_dir_all(path).map_err(|e| CoreError::io(path, e))
}

/// Collects garbage. `lock` is the exclusive state lock, taken by the caller (so it can say
/// it is waiting for a running pipeline).
pub fn gc(state_dir: &Path, opts: &GcOptions, _lock: &StateLock) -> Result<GcReport, CoreError> {
    let runs = RunStore::new(state_dir);
    let store = ArtifactStore::new(state_dir);
    let mut report = GcReport { dry_run: opts.dry_run, ..Default::default() };

    let mut by_pipeline: BTreeMap<String, Vec<crate::record::RunRecord>> = BTreeMap::new();
    for id in runs.ids()? {
        // An unreadable record is kept and never blocks gc.
        if let Ok(r) = runs.load(&id) {
            by_pipeline.entry(r.pipeline.clone()).or_default().push(r);
        }
    }
    let mut keep: HashSet<String> = HashSet::new();
    for (pipeline, records) in &by_pipeline {
        // Newest first already.
        for (n, r) in records.iter().enumerate() {
            if n < opts.keep_runs {
                keep.extend(r.stages.iter().map(|s| s.cache_key.clone()));
            } else {
                report.runs_removed.push(r.run_id.clone());
            }
        }
        keep.extend(PipelineState::load(state_dir, pipeline).stages.into_values().map(|s| s.cache_key));
    }
    for id in &report.runs_removed {
        let dir = state_dir.join("runs").join(id);
        report.bytes_freed += dir_size(&dir);
        remove(&dir, opts.dry_run)?;
    }

    if let Ok(entries) = fs::read_dir(store.artifacts_root()) {
        for e in entries.filter_map(Result::ok) {
            let key = e.file_name().to_string_lossy().to_string();
            if keep.contains(&key) {
                report.artifacts_kept += 1;
            } else {
                report.bytes_freed += dir_size(&e.path());
                remove(&e.path(), opts.dry_run)?;
                report.artifacts_removed.push(key);
            }
        }
    }
    // With the exclusive lock held no run is writing, so every temp dir is a crash leftover.
    if let Ok(entries) = fs::read_dir(store.tmp_root()) {
        for e in entries.filter_map(Result::ok) {
            report.bytes_freed += dir_size(&e.path());
            remove(&e.path(), opts.dry_run)?;
            report.temp_removed += 1;
        }
    }
    report.artifacts_removed.sort();
    Ok(report)
}
