//! End-to-end tests of the `sluice` binary: one integration test binary (faster to link),
//! with a module per area.

// Test code: a panic with a message is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod diagnostics;
mod features;
mod on_error;
mod quickstart;
mod resume;
mod runs;
mod sample_data;
mod util;
