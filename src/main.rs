//! The `sluice` command line. Thin: parses arguments, calls the library crates, renders
//! results for people (or JSON for machines) and maps outcomes to exit codes:
//! 0 ok, 1 a stage or the environment failed, 2 invalid input or usage.

mod cli;
mod commands;
mod huge_pages;
mod logging;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

// Stages allocate and free column buffers of tens of MB each; glibc's malloc returns every
// one to the kernel and page-faults it back on the next, which made clean ops 14× slower
// at 10× the rows. mimalloc keeps and reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How a command ended.
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: a stage failed or I/O broke.
    Failed,
    /// Exit 2: the user's input or usage is wrong.
    Invalid,
}

fn main() -> ExitCode {
    huge_pages::opt_out(std::env::var_os(huge_pages::KEEP_VAR).as_deref());
    let cli = cli::Cli::parse();
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    match commands::dispatch(cli) {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::Failed => ExitCode::from(1),
        Outcome::Invalid => ExitCode::from(2),
    }
}
