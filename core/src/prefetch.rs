//! Cache prefetch hints, for loops that visit rows in an order the hardware cannot guess
//! (a duplicate's first occurrence is anywhere in the table).

/// Asks the CPU to start loading the cache line holding `p`. A hint only: it never faults,
/// whatever `p` points at, and does nothing on targets without the instruction.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint that reads nothing architecturally and cannot fault, even
    // on an invalid address; SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// How many loop iterations ahead of use a prefetch is issued: far enough to cover a
/// memory access (~100 ns), near enough that the line is still cached when used.
pub const AHEAD: usize = 16;
