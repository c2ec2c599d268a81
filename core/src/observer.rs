//! One observer interface for everything that watches a run: the progress display, the run
//! record writer, and later the scheduler and UI.

use crate::record::{RunRecord, StageRecord};

/// Something that happened during a run.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// The run began; `run` lists every stage as pending/skipped/cached.
    RunStarted {
        /// The record so far.
        run: &'a RunRecord,
    },
    /// A stage began executing.
    StageStarted {
        /// The stage's record.
        stage: &'a StageRecord,
        /// The record so far.
        run: &'a RunRecord,
    },
    /// Rows and bytes a running stage has produced so far (from worker threads).
    StageProgress {
        /// Stage name.
        stage: &'a str,
        /// Rows so far.
        rows: u64,
        /// Bytes so far (input bytes read, when the stage knows them).
        bytes: u64,
    },
    /// A stage ended: succeeded (executed or cache hit), failed or skipped.
    StageFinished {
        /// The stage's final record.
        stage: &'a StageRecord,
        /// The record so far.
        run: &'a RunRecord,
    },
    /// The run ended.
    RunFinished {
        /// The final record.
        run: &'a RunRecord,
    },
}

/// Watches a run. Called from the executor's thread, except `StageProgress`, which comes
/// from the stage's worker thread.
pub trait RunObserver: Send + Sync {
    /// Handles an event. Must not block for long: the run waits for it.
    fn on_event(&self, event: &RunEvent<'_>);
}

/// Keeps `runs/<id>/run.json` current: written at once when the run starts and ends, and
/// in between by a background thread at most every [`FLUSH_EVERY`], so a killed run leaves a
/// record at most that far behind while a 200-stage run does not rewrite a growing file 600
/// times.
#[derive(Debug)]
pub struct RecordWriter {
    store: crate::record::RunStore,
    shared: std::sync::Arc<(std::sync::Mutex<Pending>, std::sync::Condvar)>,
    flusher: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How far the record on disk may lag behind the run.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

#[derive(Debug, Default)]
struct Pending {
    /// The writer's own copy of the record; stage events patch one stage of it, so the
    /// executor thread never copies the whole record (that grew with the pipeline).
    record: Option<RunRecord>,
    dirty: bool,
    done: bool,
    errors: Vec<String>,
}

impl RecordWriter {
    /// A writer into the state dir's run store.
    pub fn new(state_dir: &std::path::Path) -> Self {
        RecordWriter {
            store: crate::record::RunStore::new(state_dir),
            shared: Default::default(),
            flusher: std::sync::Mutex::new(None),
        }
    }

    /// Write failures seen (reported after the run instead of aborting it).
    pub fn errors(&self) -> Vec<String> {
        self.shared.0.lock().map(|p| p.errors.clone()).unwrap_or_default()
    }

    fn save_now(&self, run: &RunRecord) {
        if let Err(e) = self.store.save(run)
            && let Ok(mut p) = self.shared.0.lock()
        {
            p.errors.push(e.to_string());
        }
    }

    fn start_flusher(&self) {
        let shared = std::sync::Arc::clone(&self.shared);
        let store = self.store.clone();
        let handle = std::thread::Builder::new().name("run-record".into()).spawn(move || {
            let (lock, cv) = &*shared;
            let mut last_write: Option<std::time::Instant> = None;
            loop {
                let record = {
                    let Ok(mut p) = lock.lock() else { return };
                    while !p.dirty && !p.done {
                        p = match cv.wait(p) {
                            Ok(p) => p,
                            Err(_) => return,
                        };
                    }
                    // Throttle, but wake at once when the run ends: it writes the final
                    // record itself, and must not wait out a sleep here.
                    while let Some(t) = last_write {
                        let elapsed = t.elapsed();
                        if p.done || elapsed >= FLUSH_EVERY {
                            break;
                        }
                        p = match cv.wait_timeout(p, FLUSH_EVERY - elapsed) {
                            Ok((p, _)) => p,
                            Err(_) => return,
                        };
                    }
                    if p.done {
                        return;
                    }
                    p.dirty = false;
                    p.record.clone()
                };
                if let Some(r) = record
                    && let Err(e) = store.save(&r)
                    && let Ok(mut p) = lock.lock()
                {
                    p.errors.push(e.to_string());
                }
                last_write = Some(std::time::Instant::now());
            }
        });
        if let (Ok(h), Ok(mut slot)) = (handle, self.flusher.lock()) {
            *slot = Some(h);
        }
    }

    fn stop_flusher(&self) {
        if let Ok(mut p) = self.shared.0.lock() {
            p.done = true;
            p.dirty = false;
        }
        self.shared.1.notify_all();
        if let Some(h) = self.flusher.lock().ok().and_then(|mut s| s.take()) {
            let _ = h.join();
        }
    }
}

impl RunObserver for RecordWriter {
    fn on_event(&self, event: &RunEvent<'_>) {
        match event {
            RunEvent::RunStarted { run } => {
                self.save_now(run);
                if let Ok(mut p) = self.shared.0.lock() {
                    p.record = Some((*run).clone());
                }
                self.start_flusher();
            }
            RunEvent::StageStarted { stage, run } | RunEvent::StageFinished { stage, run } => {
                if let Ok(mut p) = self.shared.0.lock() {
                    let patched = p
                        .record
                        .as_mut()
                        .and_then(|r| r.stages.iter_mut().find(|s| s.name == stage.name))
                        .map(|slot| *slot = (*stage).clone())
                        .is_some();
                    if !patched {
                        // A stage the start record did not list: take the whole record.
                        p.record = Some((*run).clone());
                    }
                    p.dirty = true;
                }
                self.shared.1.notify_one();
            }
            RunEvent::RunFinished { run } => {
                // Stop the flusher first so it cannot overwrite the final record.
                self.stop_flusher();
                self.save_now(run);
            }
            RunEvent::StageProgress { .. } => {}
        }
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        self.stop_flusher();
    }
}
