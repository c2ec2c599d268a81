//! Writing to stdout and stderr without panicking when they fail.
//!
//! `println!` panics when stdout cannot be written — a pipe whose reader has gone
//! (`sluice runs | head -1`), a full disk — which printed a backtrace and turned a run's exit
//! code into 101. Here the first failure of each stream is remembered and later writes to it
//! are skipped, so a run goes on and finishes its record. At exit a broken pipe stays quiet
//! (the reader chose to stop) and keeps the command's exit code; any other failure to write
//! the output is reported on stderr and makes the exit code 1.

use std::fmt;
use std::io::{self, ErrorKind, Write};
use std::sync::OnceLock;

/// The first error writing stdout, if any.
static STDOUT_FAILED: OnceLock<io::Error> = OnceLock::new();

/// Whether writing stderr has failed (nothing is left to report it on).
static STDERR_FAILED: OnceLock<()> = OnceLock::new();

/// Writes to stdout; after a failure, nothing.
pub fn write_out(args: fmt::Arguments<'_>) {
    if STDOUT_FAILED.get().is_some() {
        return;
    }
    if let Err(e) = io::stdout().lock().write_fmt(args) {
        let _ = STDOUT_FAILED.set(e);
    }
}

/// Writes to stderr; after a failure, nothing.
pub fn write_err(args: fmt::Arguments<'_>) {
    if STDERR_FAILED.get().is_some() {
        return;
    }
    if io::stderr().lock().write_fmt(args).is_err() {
        let _ = STDERR_FAILED.set(());
    }
}

/// Flushes stdout and gives the exit code: `code`, or 1 when the output was lost for a
/// reason other than its reader going away (which is then said on stderr).
pub fn finish(code: u8) -> u8 {
    if STDOUT_FAILED.get().is_none()
        && let Err(e) = io::stdout().flush()
    {
        let _ = STDOUT_FAILED.set(e);
    }
    let _ = io::stderr().flush();
    exit_code(code, STDOUT_FAILED.get())
}

/// The exit code of a command that ends with `code` after writing stdout ended with
/// `failure`, which is reported on stderr unless the reader left.
pub fn exit_code(code: u8, failure: Option<&io::Error>) -> u8 {
    if let Some(e) = failure
        && e.kind() != ErrorKind::BrokenPipe
    {
        write_err(format_args!("error: could not write the output: {e}\n"));
    }
    code_after(code, failure)
}

/// [`exit_code`] without the report.
fn code_after(code: u8, failure: Option<&io::Error>) -> u8 {
    match failure {
        Some(e) if e.kind() != ErrorKind::BrokenPipe => code.max(1),
        _ => code,
    }
}

/// `print!` that does not panic when stdout fails.
macro_rules! out {
    ($($arg:tt)*) => { $crate::console::write_out(format_args!($($arg)*)) };
}

/// `println!` that does not panic when stdout fails.
macro_rules! outln {
    () => { $crate::console::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that does not panic when stderr fails.
macro_rules! errln {
    () => { $crate::console::write_err(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::write_err(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {errln, out, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_output_fails_the_command_unless_its_reader_left() {
        assert_eq!(code_after(0, None), 0);
        assert_eq!(code_after(2, None), 2);
        let gone = io::Error::from(ErrorKind::BrokenPipe);
        assert_eq!(code_after(0, Some(&gone)), 0, "`| head` is not a failure");
        assert_eq!(code_after(1, Some(&gone)), 1, "a failed run keeps its code");
        let full = io::Error::from_raw_os_error(28);
        assert_eq!(code_after(0, Some(&full)), 1, "a full disk loses the output");
        assert_eq!(code_after(2, Some(&full)), 2);
    }
}
