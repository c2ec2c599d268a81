//! The `sluice` command line. Thin: parses arguments, calls the library crates, renders
//! results for people (or JSON for machines) and maps outcomes to exit codes:
//! 0 ok, 1 a stage or the environment failed, 2 invalid input or usage.

mod cli;
mod commands;
mod console;
mod huge_pages;
mod logging;
mod output;
mod progress;

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

fn main() {
    huge_pages::opt_out(std::env::var_os(huge_pages::KEEP_VAR).as_deref());
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout (exit 0), usage errors to stderr (exit 2); a
            // lost output is an error either way, unless its reader left.
            let code = u8::try_from(e.exit_code()).unwrap_or(2);
            exit(console::exit_code(code, e.print().err().as_ref()))
        }
    };
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    let code = match commands::dispatch(cli) {
        Outcome::Ok => 0,
        Outcome::Failed => 1,
        Outcome::Invalid => 2,
    };
    exit(console::finish(code))
}

/// Ends the process once everything of the command is dropped and its output flushed,
/// skipping exit handlers. The one that would run is mimalloc's, which hands every free
/// page back to the kernel one `madvise` at a time just before the kernel frees them all:
/// about 2 ms of the 8 between a retail RFM run's finished record and its exit.
fn exit(code: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes a plain integer and does not return; files are closed and
    // renamed by now, and the streams above are flushed (`console::finish` reported a
    // failure to flush stdout).
    unsafe { libc::_exit(i32::from(code)) }
}
