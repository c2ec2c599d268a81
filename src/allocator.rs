//! The process's allocator: mimalloc, told to keep freed memory for a while.
//!
//! Stages allocate and free column buffers of tens of MB each. glibc's malloc returns every
//! one to the kernel and page-faults it back on the next, which made clean ops 14× slower
//! at 10× the rows; mimalloc keeps and reuses them. By default it still hands memory that
//! stayed free for 10 ms back to the kernel, and a later stage faults it in (and has the
//! kernel zero it) again: in the retail RFM run that was 130 MB, and on a VM each fault is
//! dear. A one-second delay keeps the memory for the length of a run; a long-lived
//! `serve` or `schedule` process still gives it back once idle.

use std::ffi::c_long;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: its position in mimalloc v3's `mi_option_e` (libmimalloc-sys
/// exports no constant for it; the test below checks the position).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds freed memory stays with the process before it is returned to the kernel.
const PURGE_DELAY_MS: c_long = 1000;

/// The environment variable with which a user sets the delay themselves.
const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// Sets the purge delay, unless the user set `MIMALLOC_PURGE_DELAY`.
pub fn keep_freed_memory() {
    if std::env::var_os(PURGE_DELAY_ENV).is_none() {
        // SAFETY: stores an integer option; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// The purge delay in effect.
#[cfg(test)]
fn purge_delay() -> c_long {
    // SAFETY: reads an integer option.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Runs only in the child process the next test starts, whose environment sets the delay.
    #[test]
    fn child_reports_the_delay_from_its_environment() {
        if let Some(v) = std::env::var_os("SLUICE_TEST_EXPECT_PURGE_DELAY") {
            let expected: c_long = v.to_str().unwrap().parse().unwrap();
            assert_eq!(purge_delay(), expected, "option {MI_OPTION_PURGE_DELAY} is not the purge delay");
        }
    }

    #[test]
    fn the_option_set_is_the_one_mimalloc_reads_as_the_purge_delay() {
        // mimalloc reads MIMALLOC_PURGE_DELAY at start-up, so a child process with the variable
        // set must see that value at our index: a wrong index sees another option's value.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "allocator::tests::child_reports_the_delay_from_its_environment",
                "--nocapture",
            ])
            .env(PURGE_DELAY_ENV, "4321")
            .env("SLUICE_TEST_EXPECT_PURGE_DELAY", "4321")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("1 passed"), "the child ran no test: {text}");
    }

    #[test]
    fn keep_freed_memory_sets_the_delay_unless_the_user_did() {
        if std::env::var_os(PURGE_DELAY_ENV).is_none() {
            keep_freed_memory();
            assert_eq!(purge_delay(), PURGE_DELAY_MS);
        }
    }
}
