//! End-to-end tests of the `sluice` binary: one integration test binary (faster to link),
//! with a module per area.

// Test code: a panic with a message is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod clean;
mod contracts;
mod diagnostics;
mod features;
mod incremental;
mod on_error;
mod output;
mod quickstart;
mod resume;
mod retail_rfm;
mod runs;
mod sample_data;
mod util;
