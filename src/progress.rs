//! Progress on a terminal: one spinner per running stage. Only used when stderr is a TTY.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_core::observer::{RunEvent, RunObserver};
use sluice_core::record::{CacheStatus, StageStatus};

/// Draws running stages and prints a line as each finishes.
pub struct Progress {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// A progress display on stderr.
    pub fn new() -> Self {
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl RunObserver for Progress {
    fn on_event(&self, event: &RunEvent<'_>) {
        let Ok(mut bars) = self.bars.lock() else { return };
        match event {
            RunEvent::StageStarted { stage, .. } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.set_prefix(stage.name.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(stage.name.clone(), bar);
            }
            RunEvent::StageProgress { stage, rows, .. } => {
                if let Some(bar) = bars.get(*stage) {
                    bar.set_message(format!("{} rows", crate::output::thousands(*rows)));
                }
            }
            RunEvent::StageFinished { stage, .. } => {
                if let Some(bar) = bars.remove(&stage.name) {
                    bar.finish_and_clear();
                }
                let mark = match (stage.status, stage.cache) {
                    (StageStatus::Succeeded, Some(CacheStatus::Hit)) => "cached ",
                    (StageStatus::Succeeded, _) => "done   ",
                    (StageStatus::Failed, _) => "FAILED ",
                    _ => "skipped",
                };
                let _ = self.multi.println(format!("{mark} {}", stage.name));
            }
            RunEvent::RunStarted { .. } | RunEvent::RunFinished { .. } => {}
        }
    }
}
