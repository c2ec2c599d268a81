//! sluice runs without transparent huge pages.
//!
//! mimalloc asks Linux for huge pages, and the kernel then zeroes 2 MiB at the first touch
//! of any byte in it. On the 2-core VMs sluice is benchmarked on, memory the process has not
//! touched before is slow to fault in whenever the host has taken it back, which it does
//! within seconds of another process freeing it: a retail RFM run started after a 3-second
//! pause took 323 ms with huge pages and 150 ms without (alternating runs; back to back,
//! 122 and 143 ms). docs/decisions.md has the measurements.

use std::ffi::OsStr;

/// The variable that keeps huge pages on when set (mimalloc's own switch, so
/// `MIMALLOC_ALLOW_THP=1` restores its default and `=0` is what sluice does anyway).
pub const KEEP_VAR: &str = "MIMALLOC_ALLOW_THP";

/// Turns transparent huge pages off for this process (and processes it starts) unless
/// [`KEEP_VAR`] is set. Best effort: elsewhere than Linux, or if the kernel refuses, nothing
/// changes but speed.
pub fn opt_out(keep: Option<&OsStr>) {
    if keep.is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` takes plain integers and touches
        // no memory of ours; it only sets a flag on the process.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn disabled() -> bool {
        // SAFETY: as above; the query takes integers only.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
    }

    #[test]
    fn huge_pages_go_off_unless_the_variable_keeps_them() {
        // SAFETY: as above. Starts from huge pages allowed, whatever the test runner set.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) };
        opt_out(Some(OsStr::new("1")));
        assert!(!disabled(), "MIMALLOC_ALLOW_THP keeps them");
        opt_out(None);
        assert!(disabled());
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
            assert!(line.ends_with('0'), "{line}");
        }
    }
}
