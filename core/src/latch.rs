//! A one-shot event threads can wait for: here, "the background encoder no longer holds
//! these rows". A stage that would otherwise copy its input (clean removing rows) waits
//! for it instead and then reuses the input's buffers in place — on a machine whose cores
//! are all busy, the copy and its freshly faulted memory cost more than the wait.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Shared state: whether the latch is open.
#[derive(Debug, Default)]
struct State {
    open: Mutex<bool>,
    opened: Condvar,
}

/// The waiting side; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Latch {
    state: Arc<State>,
}

/// The opening side: opens the latch when dropped, so a failing or panicking holder never
/// leaves a waiter blocked.
#[derive(Debug)]
pub struct Opener {
    state: Arc<State>,
}

impl Latch {
    /// A closed latch and the guard that opens it.
    pub fn new() -> (Latch, Opener) {
        let state = Arc::new(State::default());
        (Latch { state: Arc::clone(&state) }, Opener { state })
    }

    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        *self.state.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until it is open; returns how long that took.
    pub fn wait(&self) -> Duration {
        let started = Instant::now();
        let guard = self.state.open.lock().unwrap_or_else(PoisonError::into_inner);
        let _open =
            self.state.opened.wait_while(guard, |open| !*open).unwrap_or_else(PoisonError::into_inner);
        started.elapsed()
    }
}

impl Drop for Opener {
    fn drop(&mut self) {
        *self.state.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.state.opened.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_wake_when_the_opener_is_dropped() {
        let (latch, opener) = Latch::new();
        assert!(!latch.is_open());
        let waiter = {
            let latch = latch.clone();
            std::thread::spawn(move || {
                latch.wait();
                latch.is_open()
            })
        };
        drop(opener);
        assert!(waiter.join().unwrap());
        // Waiting on an open latch returns at once.
        latch.wait();
        assert!(latch.is_open());
    }

    #[test]
    fn a_panicking_holder_still_opens_it() {
        let (latch, opener) = Latch::new();
        let holder = std::thread::spawn(move || {
            let _opener = opener;
            panic!("encoder failed");
        });
        assert!(holder.join().is_err());
        assert!(latch.is_open());
    }
}
