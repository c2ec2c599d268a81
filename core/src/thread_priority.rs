//! Background work yields to the stages: an output's Parquet file can be finished a little
//! later, while the stage running meanwhile is what the rest of the run waits for.

/// How much lower background threads run than the stages' threads (a `nice` increment; at
/// 5 a thread gets about a third of what a normal one gets when they share a core).
const BACKGROUND_NICE: i32 = 5;

/// Lowers the calling thread's scheduling priority by [`BACKGROUND_NICE`]. Best effort: where
/// it cannot be done the thread keeps its priority, which only costs time.
pub(crate) fn lower_current_thread() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid`, `getpriority` and `setpriority` take and return plain integers and
        // touch no memory of ours. With `PRIO_PROCESS` and a thread id, Linux changes only
        // that thread.
        unsafe {
            let tid = libc::gettid() as libc::id_t;
            let current = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, (current + BACKGROUND_NICE).min(19));
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn only_the_calling_thread_is_lowered() {
        // SAFETY: as above, plain integers only.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let before = nice();
        let lowered = std::thread::spawn(move || {
            lower_current_thread();
            nice()
        })
        .join()
        .unwrap_or(before);
        assert_eq!(lowered, (before + BACKGROUND_NICE).min(19));
        assert_eq!(nice(), before, "the spawning thread keeps its priority");
    }
}
